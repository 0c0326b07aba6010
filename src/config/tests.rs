//! Configuration loading and validation: what a user writes and the one-line errors they get.

use super::*;

fn load_toml(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path))
}

#[test]
fn defaults_are_valid_and_match_the_spec() {
    let config = Config::default();
    config.validate().unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:8080");
    assert_eq!(config.store.retention, Duration::from_secs(30 * 86400));
    assert_eq!(config.retry.delays.len(), 5);
    assert_eq!(config.data_dir(), PathBuf::from("data"));
}

#[test]
fn file_values_are_parsed_with_units() {
    let config = load_toml(
        r#"
        [store]
        retention = "7d"
        [[source]]
        name = "vibe"
        secrets = ["a", "b"]
        max_body = "1KiB"
        rate_limit = { per_second = 10, burst = 20 }
        "#,
    )
    .unwrap();
    assert_eq!(config.store.retention, Duration::from_secs(7 * 86400));
    assert_eq!(config.sources[0].max_body, 1024);
    assert_eq!(config.sources[0].signature, Scheme::HmacSha256);
    assert_eq!(config.sources[0].rate_limit, Some(RateLimit { per_second: 10, burst: 20 }));
}

#[test]
fn unknown_key_is_named_in_the_error() {
    let err = load_toml("[server]\nlisten_on = \"x\"\n").unwrap_err().to_string();
    assert!(err.contains("listen_on"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn a_tradingview_mapping_that_cannot_work_is_named() {
    let source = |mapping: &str| {
        format!(
            "[[source]]\nname = \"tv\"\nformat = \"tradingview\"\nsignature = \"token\"\nsecrets = [\"p\"]\n\
             [source.tradingview]\n{mapping}\n"
        )
    };
    let cases = [
        ("symbl = [\"/tick\"]", "symbl"),
        ("quantity = [\"contracts\"]", "source[0].tradingview.quantity"),
        ("action = []", "source[0].tradingview.action"),
    ];
    for (mapping, named) in cases {
        let err = load_toml(&source(mapping)).unwrap_err().to_string();
        assert!(err.contains(named), "{mapping}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
    let fine = load_toml(&source("quantity = [\"/size\", \"/contracts\"]")).unwrap();
    assert_eq!(fine.sources[0].tradingview.as_ref().unwrap().quantity, ["/size", "/contracts"]);
}

#[test]
fn a_log_level_that_would_silence_the_logs_is_refused() {
    for level in ["debgu", "loud", "info,tradehook"] {
        let err = load_toml(&format!("[log]\nlevel = \"{level}\"\n")).unwrap_err().to_string();
        assert!(err.contains("log.level") && err.contains("is not a level"), "{level}: {err}");
    }
    for level in ["warn", "INFO", "tradehook=debug,info", "tower_http=off, debug", "tradehook=5", "tradehook::worker=debug"] {
        load_toml(&format!("[log]\nlevel = \"{level}\"\n")).unwrap_or_else(|e| panic!("{level}: {e}"));
    }
}

#[test]
fn a_route_that_could_never_match_or_act_is_named() {
    let route = |body: &str| format!("[[route]]\nevents = [\"order.*\"]\n{body}\n");
    let cases = [
        ("actions = []", "route[0].actions", "at least one action"),
        ("actions = [\"forward:\"]", "route[0].actions", "needs a subscription"),
        ("actions = [\"forward:svc\"]\nstatuses = [\"fileld\"]", "route[0].statuses", "`fileld`"),
        ("actions = [\"forward:svc\"]\nsources = [\"nosuch\"]", "route[0].sources", "`nosuch`"),
    ];
    for (body, key, problem) in cases {
        let err = load_toml(&route(body)).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(problem), "{body}: {err}");
    }
    let fine = "actions = [\"forward:svc\"]\nstatuses = [\"Filled\"]\nsources = [\"Default\", \"paper\"]";
    load_toml(&route(fine)).unwrap();
    // Other events have statuses of their own (a withdrawal's `completed`).
    let withdrawals = "[[route]]\nevents = [\"account.*\"]\nstatuses = [\"completed\"]\nactions = [\"forward:svc\"]\n";
    load_toml(withdrawals).unwrap();
}

#[test]
fn bad_listen_address_is_named() {
    let err = load_toml("[server]\nlisten = \"nowhere\"\n").unwrap_err().to_string();
    assert!(err.contains("server.listen"), "{err}");
}

#[test]
fn bad_duration_is_named() {
    let err = load_toml("[store]\nretention = \"forever\"\n").unwrap_err().to_string();
    assert!(err.contains("store.retention") && err.contains("forever"), "{err}");
    // A retention shorter than senders retry would end de-duplication before their retries.
    for short in ["\"0s\"", "\"59m\"", "30"] {
        let err = load_toml(&format!("[store]\nretention = {short}\n")).unwrap_err().to_string();
        assert!(err.contains("store.retention") && err.contains("at least 1h"), "{short}: {err}");
    }
    assert!(load_toml("[store]\nretention = \"1h\"\n").is_ok());
    // A number that is not whole says what is expected.
    let err = load_toml("[store]\nretention = 30.5\n").unwrap_err().to_string();
    assert!(err.contains("store.retention") && err.contains("whole number of seconds"), "{err}");
    let source = "[[source]]\nname = \"a\"\nsignature = \"hmac-sha256\"\nsecrets = [\"s3cret-value\"]\nmax_body = 1.5\n";
    let err = load_toml(source).unwrap_err().to_string();
    assert!(err.contains("whole number of bytes"), "{err}");
}

/// Values that parse but would break `serve` (every event refused, every request timed out, an
/// allocation abort or a panic at start-up, events kept only in memory) fail `config check`.
#[test]
fn limits_that_would_break_serving_are_named() {
    for (text, key) in [
        ("[store]\nmax_backlog = 0\n", "store.max_backlog"),
        ("[server]\nbody_timeout = \"0s\"\n", "server.body_timeout"),
        ("[store]\nmax_batch = 0\n", "store.max_batch"),
        ("[store]\nmax_batch = 100000000000\n", "store.max_batch"),
        ("[store]\nqueue_capacity = 0\n", "store.queue_capacity"),
        ("[store]\nqueue_capacity = 4611686018427387904\n", "store.queue_capacity"),
        ("[store]\nurl = \"sqlite://:memory:\"\n", "store.url"),
        ("[store]\nurl = \"sqlite://file:x?mode=memory\"\n", "store.url"),
    ] {
        let err = load_toml(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
    let edges = "[server]\nbody_timeout = \"100ms\"\n[store]\nmax_backlog = 1\nmax_batch = 100000\nqueue_capacity = 10000000\n";
    assert!(load_toml(edges).is_ok());
}

/// A list entry is named one way whichever check finds the problem: the parser (an unknown key,
/// a wrong type) or validation.
#[test]
fn list_entries_are_named_alike_by_parsing_and_validation() {
    let parsed = load_toml("[[source]]\nname = \"a\"\nsecrets = [\"s3cret-value\"]\nmax_body = \"big\"\n")
        .unwrap_err()
        .to_string();
    assert!(parsed.contains("`source[0].max_body`"), "{parsed}");
    let validated = load_toml("[[source]]\nname = \"a b\"\nsecrets = [\"s3cret-value\"]\n").unwrap_err().to_string();
    assert!(validated.contains("`source[0].name`"), "{validated}");
}

#[test]
fn unsigned_source_needs_allow_list() {
    let err = load_toml("[[source]]\nname = \"x\"\nsignature = \"none\"\nallow_unsigned = true\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("source[0].signature"), "{err}");
}

#[test]
fn signed_source_needs_a_secret() {
    let err = load_toml("[[source]]\nname = \"x\"\n").unwrap_err().to_string();
    assert!(err.contains("source[0].secrets"), "{err}");
}

#[test]
fn bad_cidr_is_named() {
    let err = load_toml("[[source]]\nname = \"x\"\nsecrets = [\"s\"]\nallow_ips = [\"10.0.0.0/99\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("source[0].allow_ips"), "{err}");
}

#[test]
fn missing_file_is_reported() {
    let err = Config::load(Some(Path::new("/nonexistent/tradehook.toml"))).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tradehook.example.toml");
    Config::load(Some(&path)).unwrap();
}

#[test]
fn debug_output_hides_secrets() {
    let source = SourceConfig::new("x", Scheme::HmacSha256, vec!["hunter2-secret".into()]);
    let key = ApiKey { key: "ak".into(), secret: "api-hunter2".into() };
    let text = format!("{source:?} {key:?}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn a_credential_of_the_wrong_type_is_named_but_never_echoed() {
    for (text, key) in [
        ("[[source]]\nname = \"x\"\nsecrets = \"supersecretvalue-hunter2\"\n", "source[0].secrets"),
        ("[[source]]\nname = \"x\"\nsecrets = [4242424242424242]\n", "source[0].secrets[0]"),
        ("[api]\nadmin_token = 4242424242424242\n", "api.admin_token"),
        ("[api]\nkeys = [{ key = \"ak_1\", secret = 4242424242424242 }]\n", "api.keys[0].secret"),
    ] {
        let error = load_toml(text).unwrap_err().to_string();
        assert!(error.contains(key), "names the key: {error}");
        assert!(error.contains("expected"), "says what was expected: {error}");
        assert!(!error.contains("hunter2") && !error.contains("42424242"), "no value: {error}");
    }
    // A syntax error says where, without quoting the line.
    let error = load_toml("[api]\nadmin_token = hunter2hunter2\n").unwrap_err().to_string();
    assert!(error.contains("line 2"), "says where: {error}");
    assert!(!error.contains("hunter2"), "no value: {error}");
    // Elsewhere the value is shown: it helps and it is no secret.
    let error = load_toml("[worker]\nbatch = \"lots\"\n").unwrap_err().to_string();
    assert!(error.contains("lots"), "{error}");
}

#[test]
fn the_store_may_be_given_as_just_its_url() {
    let config = load_toml(r#"store = "postgres://tradehook@db.internal/tradehook""#).unwrap();
    assert_eq!(config.store.url, "postgres://tradehook@db.internal/tradehook");
    assert_eq!(config.store.retention, StoreConfig::default().retention, "the other keys keep their defaults");
    assert!(matches!(config.store_location(), Ok(StoreLocation::Postgres(_))));
    // The table form keeps naming the key of a bad value.
    let error = load_toml("[store]\nretention = \"soon\"\n").unwrap_err().to_string();
    assert!(error.contains("store.retention"), "{error}");
    let error = load_toml("store = 5").unwrap_err().to_string();
    assert!(error.contains("store") && error.contains("a store URL or a [store] table"), "{error}");
}

#[test]
fn every_text_key_is_a_text_setting() {
    // What `from_environment` sets as text must be text: a numeric key would no longer take its
    // variable, and a misspelt one would be refused as unknown.
    for key in env::TEXT_KEYS {
        let figment = Figment::from(Serialized::defaults(Config::default())).merge(Serialized::default(key, "0123"));
        let config: Result<Config, _> = figment.extract();
        assert!(config.is_ok(), "{key}: {config:?}");
    }
}

#[test]
fn format_names_are_the_ones_a_config_file_accepts() {
    for format in [Format::Vibetrading, Format::Tradingview, Format::Generic] {
        let spelled: Format = serde_json::from_value(serde_json::json!(format.name())).unwrap();
        assert_eq!(spelled, format);
        assert_eq!(format.to_string(), format.name());
    }
}

#[test]
fn settings_that_pass_parsing_but_defeat_their_purpose_are_refused() {
    let cases = [
        (
            "[[source]]\nname = \"x\"\nsignature = \"none\"\nallow_unsigned = true\nallow_ips = [\"10.0.0.0/8\", \"0.0.0.0/0\"]\n",
            "source[0].allow_ips",
            "every address",
        ),
        (
            "[[source]]\nname = \"x\"\nsignature = \"none\"\nallow_unsigned = true\nallow_ips = [\"::/0\"]\n",
            "source[0].allow_ips",
            "every address",
        ),
        (
            "[[source]]\nname = \"x\"\nsignature = \"none\"\nallow_unsigned = true\nallow_ips = [\"0.0.0.0/1\", \"128.0.0.0/1\"]\n",
            "source[0].allow_ips",
            "every address",
        ),
        (
            "[[source]]\nname = \"x\"\nsignature = \"stripe\"\nsecrets = [\"whsec_s\"]\ntolerance = \"0s\"\n",
            "source[0].tolerance",
            "at least 1s",
        ),
        (
            "[[source]]\nname = \"x\"\nsignature = \"standard-webhooks\"\nsecrets = [\"whsec_c2VjcmV0\"]\ntolerance = \"999ms\"\n",
            "source[0].tolerance",
            "at least 1s",
        ),
        (
            "[[source]]\nname = \"x\"\nsecrets = [\"s\", \"   \"]\n",
            "source[0].secrets",
            "secret #2 is invalid for hmac-sha256: the secret is empty",
        ),
        (
            "[[source]]\nname = \"x\"\nsignature = \"token\"\nsecrets = [\"long-enough-token\"]\ntoken_field = \" \"\n",
            "source[0].token_field",
            "must name",
        ),
        (
            "[server]\nmax_tracked_ips = 0\nip_rate_limit = { per_second = 10, burst = 20 }\n",
            "server.max_tracked_ips",
            "shares one bucket",
        ),
    ];
    for (toml, key, problem) in cases {
        let err = load_toml(toml).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(problem), "{toml}: {err}");
    }
    load_toml("[[source]]\nname = \"x\"\nsignature = \"none\"\nallow_unsigned = true\nallow_ips = [\"10.0.0.0/8\"]\n")
        .unwrap();
    // A scheme without a signed timestamp does not use the tolerance.
    load_toml("[[source]]\nname = \"x\"\nsecrets = [\"s\"]\ntolerance = \"0s\"\n").unwrap();
}

/// Store URLs that `config check` passed and `serve` then refused or misread: a directory for
/// the SQLite file, a `?` query taken as part of the file name, a PostgreSQL URL without a host.
#[test]
fn store_urls_serve_would_refuse_or_misread_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().display().to_string();
    for (url, problem) in [
        ("sqlite://data/".to_owned(), "`data/` is a directory, not a database file"),
        (format!("sqlite://{existing}"), "is a directory, not a database file"),
        ("sqlite://data/t.db?mode=ro".to_owned(), "takes no `?` parameters"),
        ("postgres://".to_owned(), "no host"),
        ("postgresql://u:pw-s3cret@/db".to_owned(), "no host"),
    ] {
        let err = load_toml(&format!("[store]\nurl = \"{url}\"\n")).unwrap_err().to_string();
        assert!(err.contains("`store.url`") && err.contains(problem), "{url}: {err}");
        assert!(!err.contains("pw-s3cret") && !err.contains('\n'), "{url}: {err}");
    }
    assert!(load_toml(&format!("[store]\nurl = \"sqlite://{existing}/t.db\"\n")).is_ok());
    assert!(load_toml("[store]\nurl = \"postgres:///db?host=/var/run/postgresql\"\n").is_ok());
}

/// A URL with an unknown scheme is quoted as written (the URL parser lower-cases the scheme),
/// with its password still masked.
#[test]
fn an_unknown_store_scheme_is_quoted_as_written() {
    let err = load_toml("[store]\nurl = \"SQLITE://data/t.db\"\n").unwrap_err().to_string();
    assert!(err.contains("`SQLITE://data/t.db` must start with"), "{err}");
    let err = load_toml("[store]\nurl = \"POSTGRESS://u:pw-s3cret@db.internal/th\"\n").unwrap_err().to_string();
    assert!(err.contains("`POSTGRESS://u:***@db.internal/th` must start with"), "{err}");
    assert_eq!(printable_store_url("Postgres://u@h/db?password=pw-s3cret"), "Postgres://u@h/db?password=***");
}
