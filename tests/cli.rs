//! The command line as a user runs it: zero-config serve, send, sign, config check, and clean
//! shutdown on SIGTERM.

mod common;

use std::io::{BufRead, Read};
use std::process::{Command, Stdio};

use common::*;
use tradehook::ingest::signature::Scheme;

fn tradehook(dir: &std::path::Path) -> Command {
    let mut command = Command::new(binary());
    command.current_dir(dir).env_remove("TRADEHOOK_SECRET").env_remove("TRADEHOOK_CONFIG");
    command
}

/// Starts `serve` with no configuration in `dir` and returns it with its banner (up to the
/// suggested `tradehook send` line); the rest of its output is drained.
fn zero_config_serve(dir: &std::path::Path) -> (std::process::Child, String) {
    serve_with_env(dir, &[])
}

/// [`zero_config_serve`] with these `TRADEHOOK_*` variables set too.
fn serve_with_env(dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut child = tradehook(dir)
        .arg("serve")
        .env("TRADEHOOK_SERVER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains(" send order.created");
        banner.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    (child, banner.join("\n"))
}

#[test]
fn config_check_accepts_the_example_file() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tradehook.example.toml");
    let dir = tempfile::tempdir().unwrap();
    let output = tradehook(dir.path()).args(["config", "check", "--config"]).arg(&example).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("configuration ok"));
    // Formats as a config file spells them, so the line can be pasted back.
    for format in ["format=vibetrading", "format=tradingview", "format=generic"] {
        assert!(stdout.contains(format), "{format}: {stdout}");
    }
    assert!(!stdout.contains("s3cret"), "secrets are not printed: {stdout}");
}

#[test]
fn send_to_a_source_the_configuration_lacks_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let output = tradehook(dir.path()).args(["send", "--source", "nope", "--secret", "s"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no source `nope`") && stderr.contains("it has: default"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_connection_the_server_breaks_is_reported_not_a_silent_sigpipe() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("big.json");
    std::fs::write(&body, format!("{{\"pad\":\"{}\"}}", "x".repeat(20 << 20))).unwrap();
    // A server that reads a little of the request and closes the connection (with unread data:
    // a reset), while the client is still writing the body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.read(&mut [0u8; 1024]);
        }
    });
    for _ in 0..3 {
        let output = tradehook(dir.path())
            .args(["send", "--secret", "s", "--url", &url, "--file"])
            .arg(&body)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.signal(),
            None,
            "killed by a signal, nothing said: {:?} {stderr}",
            output.status
        );
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.starts_with("error: ") && stderr.trim().lines().count() == 1, "{stderr}");
    }
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_as_cat_does() {
    use std::os::unix::process::ExitStatusExt;
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tradehook.example.toml");
    let dir = tempfile::tempdir().unwrap();
    // `tradehook config check | head -0`: the reader is gone before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = tradehook(dir.path())
        .args(["config", "check", "--config"])
        .arg(&example)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.signal(), Some(13), "ended by SIGPIPE: {:?} {stderr}", output.status);
}

#[test]
fn config_check_and_its_errors_never_print_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("TRADEHOOK_STORE__URL", "postgres://tradehook:pw-s3cret@db.internal:5432/tradehook"),
        ("TRADEHOOK_STORE__URL", "postgres://db.internal/th?password=pw-s3cret"),
        // SPEC §7's short form: the store as just its URL.
        ("TRADEHOOK_STORE", "postgres://tradehook:pw-s3cret@db.internal/tradehook"),
    ];
    for (variable, url) in cases {
        let output = tradehook(dir.path()).args(["config", "check"]).env(variable, url).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(!stdout.contains("pw-s3cret") && stdout.contains("***"), "{stdout}");
        assert!(stdout.contains("db.internal"), "the rest of the URL is shown: {stdout}");
    }
    // A typo in the scheme: the error quotes the URL, without its password.
    let output = tradehook(dir.path())
        .args(["config", "check"])
        .env("TRADEHOOK_STORE__URL", "postgress://tradehook:pw-s3cret@db.internal/tradehook")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("store.url") && !stderr.contains("pw-s3cret"), "{stderr}");
}

/// `config check` refuses what `serve` would refuse at start-up: it said "configuration ok" for
/// these and `serve` then stopped on them.
#[test]
fn config_check_refuses_a_postgres_url_the_store_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    for (url, expected) in [
        ("postgres://u:pw-s3cret@localhost:99999/db", "invalid value for option `port`"),
        ("postgres://u:pw-s3cret@db.internal/db?sslmode=verify", "sslmode=verify is not one of"),
        (
            "postgres://u:pw-s3cret@db.internal/db?sslmode=verify-ca&sslrootcert=/nonexistent/root.pem",
            "cannot read the certificate file /nonexistent/root.pem",
        ),
    ] {
        let stderr = refused_store_url(dir.path(), url);
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(!stderr.contains("pw-s3cret"), "{stderr}");
    }
}

/// Runs `config check` with `store.url` = `url`, which must be refused with exit code 1 and one
/// line naming `store.url`; returns that line.
fn refused_store_url(dir: &std::path::Path, url: &str) -> String {
    let output = tradehook(dir).args(["config", "check"]).env("TRADEHOOK_STORE__URL", url).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{url}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{url}: one line: {stderr}");
    assert!(stderr.contains("store.url"), "{url}: {stderr}");
    stderr
}

/// `config check` refuses the store URLs `serve` then refused or misread (a directory, a file
/// named `t.db?mode=ro`, a PostgreSQL URL without a host), and quotes a URL as written.
#[test]
fn config_check_refuses_a_store_url_serve_would_misread() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for (url, expected) in [
        ("sqlite://data/", "is a directory, not a database file"),
        ("sqlite://data", "is a directory, not a database file"),
        ("sqlite://data/t.db?mode=ro", "takes no `?` parameters"),
        ("postgres://", "no host"),
        ("SQLITE://data/t.db", "`SQLITE://data/t.db` must start with sqlite:// or postgres://"),
    ] {
        let stderr = refused_store_url(dir.path(), url);
        assert!(stderr.contains(expected), "{url}: {stderr}");
    }
    // Nothing was created for them.
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("data")).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?}");
}

#[test]
fn the_store_given_as_a_url_keeps_it_when_variables_set_other_store_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("short.toml");
    std::fs::write(&file, "store = \"postgres://tradehook@db.internal/tradehook\"\n").unwrap();
    // A store variable merged over the file's bare URL replaced it: the gateway ran on SQLite.
    for (variable, value) in [("TRADEHOOK_STORE__POOL_SIZE", "4"), ("TRADEHOOK_STORE__RETENTION", "1d")] {
        let output = tradehook(dir.path())
            .args(["config", "check", "--config"])
            .arg(&file)
            .env(variable, value)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("postgres://tradehook@db.internal/tradehook"), "{variable}: {stdout}");
    }
    // And TRADEHOOK_STORE=<url> sets only the URL: the file's other store keys still hold.
    let table = dir.path().join("table.toml");
    std::fs::write(&table, "[store]\npool_size = 1\n").unwrap();
    let output = tradehook(dir.path())
        .args(["config", "check", "--config"])
        .arg(&table)
        .env("TRADEHOOK_STORE", "postgres://tradehook@db.internal/tradehook")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("store.pool_size"), "{stderr}");
}

#[test]
fn variables_an_exec_action_gives_its_command_are_not_taken_for_config_keys() {
    // An `exec:` action's command gets TRADEHOOK_EVENT_ID and TRADEHOOK_EVENT_TYPE; one that runs
    // tradehook itself (to send an event on, say) must still load its configuration.
    let dir = tempfile::tempdir().unwrap();
    let output = tradehook(dir.path())
        .args(["config", "check"])
        .env("TRADEHOOK_EVENT_ID", "evt_42")
        .env("TRADEHOOK_EVENT_TYPE", "order.updated")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Other unknown names are still typos worth stopping for.
    let output =
        tradehook(dir.path()).args(["config", "check"]).env("TRADEHOOK_SERVE__LISTEN", "x").output().unwrap();
    assert!(!output.status.success());
}

#[test]
fn an_all_digit_admin_token_from_the_environment_is_used_exactly_as_written() {
    // figment reads variables as TOML values: this was a number, with its leading zeros gone.
    let dir = tempfile::tempdir().unwrap();
    let token = "0012345678901234567";
    let check = tradehook(dir.path())
        .args(["config", "check"])
        .env("TRADEHOOK_API__ADMIN_TOKEN", token)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let (mut child, banner) = serve_with_env(dir.path(), &[("TRADEHOOK_API__ADMIN_TOKEN", token)]);
    let url = banner.split("--url ").nth(1).unwrap().trim().to_string();
    let base = url.split("/webhook").next().unwrap().to_string();
    let get = |token: &str| {
        let auth = format!("Bearer {token}");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let url = format!("{base}/api/v1/webhooks");
        runtime.block_on(request(http::Method::GET, &url, &[("authorization", &auth)], Vec::new())).status
    };
    assert_eq!(get(token), http::StatusCode::OK);
    assert_eq!(get(token.trim_start_matches('0')), http::StatusCode::UNAUTHORIZED);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_environment_override_stops_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = tradehook(dir.path())
        .args(["config", "check"])
        .env("TRADEHOOK_SERVER__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("server.listen"), "{stderr}");
}

#[test]
fn serve_refuses_invalid_file_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[store]\nretention = \"soon\"\n").unwrap();
    let output = tradehook(dir.path()).args(["serve", "--config", "bad.toml"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("store.retention"), "{stderr}");
}

#[test]
fn zero_config_serve_generates_a_secret_once_and_send_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, banner) = zero_config_serve(dir.path());
    let secret = std::fs::read_to_string(dir.path().join("data/default-source.secret")).unwrap();
    assert!(banner.contains(secret.trim()), "the generated secret is shown once: {banner}");
    assert!(dir.path().join("data/tradehook.db").exists());
    let url = banner.split("--url ").nth(1).unwrap().trim().to_string();

    let send = tradehook(dir.path()).args(["send", "order.created", "--url", &url]).output().unwrap();
    assert!(send.status.success(), "{}", String::from_utf8_lossy(&send.stderr));
    let stdout = String::from_utf8_lossy(&send.stdout);
    assert!(stdout.starts_with("200 OK in "), "{stdout}");
    assert!(stdout.contains("\"accepted\""), "{stdout}");

    let twice = |id: &str| {
        tradehook(dir.path()).args(["send", "position.updated", "--id", id, "--url", &url]).output().unwrap()
    };
    assert!(String::from_utf8_lossy(&twice("same").stdout).contains("accepted"));
    assert!(String::from_utf8_lossy(&twice("same").stdout).contains("duplicate"));

    let wrong = tradehook(dir.path()).args(["send", "--secret", "wrong", "--url", &url]).output().unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stdout).starts_with("401"));

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");

    // A second start reuses the saved secret and does not print it again.
    let (mut again, second) = zero_config_serve(dir.path());
    assert!(!second.contains(secret.trim()), "{second}");
    assert!(second.contains("default-source.secret"), "{second}");
    assert!(!second.contains("TRADEHOOK_SECRET"), "{second}");
    let _ = again.kill();
    let _ = again.wait();

    // With TRADEHOOK_SECRET the pasted send would sign with the saved secret: the banner says so.
    let (mut third, banner) = serve_with_env(dir.path(), &[("TRADEHOOK_SECRET", "from-the-environment-1")]);
    assert!(banner.contains("TRADEHOOK_SECRET"), "{banner}");
    assert!(!banner.contains("from-the-environment-1"), "{banner}");
    let _ = third.kill();
    let _ = third.wait();

    // A configuration file that defines `default` itself: TRADEHOOK_SECRET is not used, so the
    // banner must not send the user after it.
    let config = dir.path().join("tradehook.toml");
    std::fs::write(
        &config,
        "[[source]]\nname = \"default\"\nsignature = \"hmac-sha256\"\nsecrets = [\"from-the-file-123\"]\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let env = [("TRADEHOOK_SECRET", "from-the-environment-1"), ("TRADEHOOK_CONFIG", config)];
    let (mut fourth, banner) = serve_with_env(dir.path(), &env);
    assert!(banner.contains("tradehook --config"), "{banner}");
    assert!(!banner.contains("TRADEHOOK_SECRET"), "{banner}");
    let _ = fourth.kill();
    let _ = fourth.wait();
}

/// `TRADEHOOK_SECRET` reads alike in every command: trimmed, and blank as unset. `serve` keyed
/// the source with the trimmed value (or generated a secret for a blank one) while `send` and
/// `sign` signed with the value as written: 401.
#[test]
fn every_command_reads_tradehook_secret_trimmed_and_blank_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    let send = |url: &str, secret: &str| {
        let output = tradehook(dir.path())
            .args(["send", "order.created", "--url", url])
            .env("TRADEHOOK_SECRET", secret)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    };
    // Each server is stopped before anything is asserted, so a failure leaves none running.
    let (mut child, banner) = serve_with_env(dir.path(), &[("TRADEHOOK_SECRET", " spaced-secret-1\n")]);
    let url = banner.split("--url ").nth(1).unwrap().trim().to_string();
    let spaced = send(&url, " spaced-secret-1\n");
    let _ = child.kill();
    let _ = child.wait();
    // Blank: `serve` generates a secret, and `send` signs with it (not with the blank).
    let (mut child, banner) = serve_with_env(dir.path(), &[("TRADEHOOK_SECRET", "  ")]);
    let url = banner.split("--url ").nth(1).unwrap().trim().to_string();
    let blank = send(&url, "  ");
    let _ = child.kill();
    let _ = child.wait();
    assert!(spaced.starts_with("200 OK"), "{spaced}");
    assert!(dir.path().join("data/default-source.secret").exists(), "{banner}");
    assert!(blank.starts_with("200 OK"), "{blank}");

    // `sign` gives the signature of the trimmed secret, and with a blank one has none.
    let sign = |secret: Option<&str>, env: &str| {
        let mut command = tradehook(dir.path());
        command.args(["sign", "--body", "{}", "--timestamp", "1700000000"]).env("TRADEHOOK_SECRET", env);
        if let Some(secret) = secret {
            command.args(["--secret", secret]);
        }
        command.output().unwrap()
    };
    let from_env = sign(None, "\tspaced-secret-1 ");
    let given = sign(Some("spaced-secret-1"), "");
    assert!(from_env.status.success(), "{}", String::from_utf8_lossy(&from_env.stderr));
    assert_eq!(String::from_utf8_lossy(&from_env.stdout), String::from_utf8_lossy(&given.stdout));
    let output = sign(None, " ");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--secret") && stderr.trim().lines().count() == 1, "{stderr}");
}

#[test]
fn bench_plots_the_latency_distribution_as_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, banner) = zero_config_serve(dir.path());
    let secret = std::fs::read_to_string(dir.path().join("data/default-source.secret")).unwrap();
    let url = banner.split("--url ").nth(1).unwrap().trim().to_string();
    let plot = dir.path().join("latency.svg");
    let bench = |url: &str, plot: &std::path::Path, count: &str| {
        tradehook(dir.path())
            .args(["bench", "--url", url, "--secret", secret.trim(), "--connections", "4", "--count", count])
            .args(["--warmup", "0s", "--no-progress", "--plot"])
            .arg(plot)
            .output()
            .unwrap()
    };
    let output = bench(&url, &plot, "400");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    for text in ["percentile", "latency (ms)", "90%", "99%", "4 connections"] {
        assert!(svg.contains(text), "{text} missing: {svg}");
    }
    assert!(svg.contains("<polyline"), "the latency line is drawn: {svg}");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();

    // Nothing answered ok: nothing to plot, one line and a non-zero exit, no file.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let empty = dir.path().join("empty.svg");
    let output = bench(&format!("http://127.0.0.1:{port}/webhook"), &empty, "8");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no request was answered ok"), "{stderr}");
    assert!(!empty.exists());
}

#[test]
fn bench_fails_when_every_request_is_refused_and_refuses_impossible_connection_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, banner) = zero_config_serve(dir.path());
    let url = banner.split("--url ").nth(1).unwrap().trim().to_string();
    // A wrong secret: every request answered 401. The report says so, and the exit fails.
    let output = tradehook(dir.path())
        .args(["bench", "--url", &url, "--secret", "not-the-secret", "--connections", "2", "--count", "20"])
        .args(["--warmup", "0s", "--no-progress"])
        .output()
        .unwrap();
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("401: 20"), "the answers are reported: {stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no request was answered ok (20 sent)"), "{stderr}");

    for count in ["0", "100000", "many"] {
        let output = tradehook(dir.path())
            .args(["bench", "--url", "http://127.0.0.1:9/webhook", "--secret", "s", "--connections", count])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{count}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("from 1 to 10000"), "{count}: {stderr}");
    }
}

/// `bench --admin-token` on a store with history: the end-to-end figures count this run's
/// events, not every event the store ever processed.
#[test]
fn bench_with_the_admin_token_counts_only_the_events_of_this_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let url = format!("http://{}/webhook", server.addr);
    let bench = |count: &str, admin: bool| {
        let mut command = tradehook(dir.path());
        command
            .args(["bench", "--url", &url, "--secret", SECRET, "--connections", "2", "--count", count])
            .args(["--warmup", "0s", "--json"]);
        if admin {
            command.args(["--admin-token", ADMIN_TOKEN]);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    // History: 30 events processed before the measured run.
    assert_eq!(bench("30", true)["processing"]["processed"], 30);
    let report = bench("20", true);
    assert_eq!(report["ok"], 20, "{report}");
    assert_eq!(report["processing"]["processed"], 20, "{report}");
    // Without the admin token there is nothing to wait for.
    assert!(bench("5", false).get("processing").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_with_an_id_shows_de_duplication_on_a_standard_webhooks_source_too() {
    const WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let server = TestServer::start_with(|config| {
        let source = tradehook::config::SourceConfig::new("sw", Scheme::StandardWebhooks, vec![WHSEC.into()]);
        config.sources.push(source);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("/webhooks/sw");
    let send = || {
        let output = tradehook(dir.path())
            .args([
                "send",
                "order.created",
                "--scheme",
                "standard-webhooks",
                "--secret",
                WHSEC,
                "--url",
                &url,
            ])
            .args(["--id", "msg_same"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first = tokio::task::block_in_place(send);
    assert!(first.contains("accepted"), "{first}");
    let second = tokio::task::block_in_place(send);
    assert!(second.contains("duplicate"), "{second}");
    server.stop().await;
}

#[test]
fn send_lists_samples_and_rejects_unknown_types_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = tradehook(dir.path()).args(["send", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("account.margin_call"));
    let bad = tradehook(dir.path()).args(["send", "order.exploded", "--secret", "x"]).output().unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("order.exploded"));
}

#[test]
fn sign_prints_the_seed_001_signature_header() {
    let dir = tempfile::tempdir().unwrap();
    let output = tradehook(dir.path())
        .args(["sign", "--body", "Hello, World!", "--secret", "It's a Secret to Everybody"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "X-Webhook-Signature: 757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn graceful_shutdown_keeps_every_acked_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = server.addr;
    let ids: Vec<String> = runtime.block_on(async move {
        let url = format!("http://{addr}/webhook");
        let mut ids = Vec::new();
        for i in 0..20 {
            let body = order_event(&format!("g{i}"));
            let answer = post_signed(
                &url,
                tradehook::ingest::signature::Scheme::HmacSha256,
                SECRET,
                body.as_bytes(),
                &[],
            )
            .await;
            ids.push(answer.json["id"].as_str().unwrap().to_string());
        }
        ids
    });
    assert!(server.terminate().success());
    let server = ServerProcess::start(dir.path());
    let addr = server.addr;
    runtime.block_on(async move {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        for id in ids {
            let url = format!("http://{addr}/api/v1/events/{id}");
            let answer = request(http::Method::GET, &url, &[("authorization", &auth)], Vec::new()).await;
            assert_eq!(answer.status, http::StatusCode::OK);
        }
    });
}

#[test]
fn events_dlq_and_replay_commands_talk_to_a_running_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let url = format!("http://{}", server.addr);
    let cli = |args: &[&str]| {
        let output = tradehook(dir.path())
            .args(args)
            .args(["--url", &url])
            .env("TRADEHOOK_API__ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TRADEHOOK_SECRET", SECRET)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let send = |event: &str| {
        let output = tradehook(dir.path())
            .args(["send", event, "--url", &format!("{url}/webhook"), "--secret", SECRET])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    send("order.created");
    // Two events without an order id: both dead-lettered (dlq_1, dlq_2).
    for (file, status) in [("bad.json", "filled"), ("bad2.json", "open")] {
        let body = format!(
            r#"{{"event":"order.updated","timestamp":"2024-01-15T10:30:01Z","data":{{"status":"{status}","n":1E+2,"n":123456789012345678901234567890}}}}"#
        );
        std::fs::write(dir.path().join(file), body).unwrap();
        let bad = tradehook(dir.path())
            .args(["send", "--file", file, "--url", &format!("{url}/webhook"), "--secret", SECRET])
            .output()
            .unwrap();
        assert!(bad.status.success());
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let (ok, listed) = cli(&["events", "list"]);
    assert!(ok, "{listed}");
    assert!(listed.contains("evt_1") && listed.contains("order.created"), "{listed}");
    // Each line ends with how processing ended: the order applied, the two refused ones dead.
    let status_of = |id: &str| {
        let line = listed.lines().find(|line| line.starts_with(&format!("{id} "))).unwrap_or_default();
        line.split_whitespace().last().unwrap_or_default().to_string()
    };
    assert_eq!(
        (status_of("evt_1"), status_of("evt_2"), status_of("evt_3")),
        ("applied".into(), "dead".into(), "dead".into()),
        "{listed}"
    );
    let (ok, shown) = cli(&["events", "show", "evt_1"]);
    assert!(ok && shown.contains("\"orderId\""), "{shown}");
    // Shown as stored: a long number keeps its digits, a repeated key both values.
    let exact = "\"n\": 1E+2,\n      \"n\": 123456789012345678901234567890";
    let (ok, shown) = cli(&["events", "show", "evt_2"]);
    assert!(ok && shown.contains(exact), "{shown}");
    let (ok, listed) = cli(&["events", "list", "--json"]);
    assert!(ok && listed.contains("123456789012345678901234567890") && listed.contains("1E+2"), "{listed}");
    let (ok, dlq) = cli(&["dlq", "list"]);
    assert!(ok && dlq.contains("dlq_1") && dlq.contains("orderId"), "{dlq}");
    // Paged: the newest, then where the next page starts, then the rest.
    let (ok, page) = cli(&["dlq", "list", "--limit", "1"]);
    assert!(ok && page.starts_with("dlq_2 ") && page.contains("more: add --before dlq_2"), "{page}");
    let (ok, rest) = cli(&["dlq", "list", "--limit", "1", "--before", "dlq_2"]);
    assert!(ok && rest.starts_with("dlq_1 ") && !rest.contains("dlq_2"), "{rest}");
    let (ok, detail) = cli(&["dlq", "show", "dlq_1"]);
    assert!(ok && detail.contains("history"), "{detail}");
    let (ok, replayed) = cli(&["dlq", "replay", "dlq_1"]);
    assert!(ok && replayed.contains("replayed 1"), "{replayed}");
    let (ok, requeued) = cli(&["replay", "evt_1"]);
    assert!(ok && requeued.contains("requeued: true"), "{requeued}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (ok, dlq) = cli(&["dlq", "list"]);
    assert!(ok, "{dlq}");
    let newest = dlq.split_whitespace().next().unwrap().to_string();
    let (ok, discarded) = cli(&["dlq", "discard", &newest]);
    assert!(ok && discarded.contains("discarded"), "{discarded}");
    let (ok, missing) = cli(&["dlq", "show", &newest]);
    assert!(!ok && missing.contains("404"), "{missing}");
    assert_eq!(missing.trim().lines().count(), 1, "{missing}");
}

#[test]
fn events_tail_prints_new_events_and_goes_on_across_a_gateway_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let env = [("TRADEHOOK_SERVER__LISTEN", listen.as_str())];
    let (mut server, banner) = serve_with_env(dir.path(), &env);
    let url = banner.split("--url ").nth(1).unwrap().trim().to_string();
    let base = format!("http://{listen}");
    let send = |event_type: &str| {
        let output = tradehook(dir.path()).args(["send", event_type, "--url", &url]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    send("order.created");

    let mut tail = tradehook(dir.path())
        .args(["events", "tail", "--url", &base])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, printed) = std::sync::mpsc::channel();
    for stream in [
        Box::new(tail.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(tail.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    let wait_for = |what: &str| -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match printed.recv_timeout(left) {
                Ok(line) if line.contains(what) => return seen,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("tail printed no line with `{what}` within 15 s; it printed: {seen:?}");
    };
    // Give the tail time to find where it starts (the newest event), then send one more.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    send("position.updated");
    let before = wait_for("position.updated");
    assert!(before.iter().all(|line| !line.contains("order.created")), "only new events: {before:?}");

    // The gateway restarts on the same address; the tail says so and goes on.
    let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
    assert!(server.wait().unwrap().success());
    wait_for("trying again");
    let (mut again, _) = serve_with_env(dir.path(), &env);
    send("order.updated");
    wait_for("order.updated");

    // Restarted with another admin token: asking again will not help; the tail stops and says so.
    let _ = Command::new("kill").arg("-TERM").arg(again.id().to_string()).status();
    assert!(again.wait().unwrap().success());
    let rotated = [env[0], ("TRADEHOOK_API__ADMIN_TOKEN", "a-rotated-admin-token-0123456789")];
    let (mut rotated, _) = serve_with_env(dir.path(), &rotated);
    wait_for("401");
    let exited = (0..100).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        tail.try_wait().unwrap()
    });
    assert!(exited.is_some_and(|status| !status.success()), "{exited:?}");
    let _ = rotated.kill();
    let _ = rotated.wait();
}

#[test]
fn a_source_of_the_file_gets_its_secret_from_the_environment() {
    // SPEC §9: every key can be set by a variable, a source's secrets too (kept out of the file).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tradehook.toml");
    std::fs::write(
        &file,
        "[[source]]\nname = \"tv\"\nformat = \"tradingview\"\nsignature = \"token\"\nsecrets = [\"from-the-file\"]\n",
    )
    .unwrap();
    let check = |name: &str, value: &str| {
        tradehook(dir.path())
            .args(["config", "check", "--config"])
            .arg(&file)
            .env(name, value)
            .output()
            .unwrap()
    };
    let wrong = check("TRADEHOOK_SOURCE__VIBE__SECRETS", "x");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TRADEHOOK_SOURCE__VIBE__SECRETS"), "{stderr}");

    let mut child = tradehook(dir.path())
        .args(["serve", "--config"])
        .arg(&file)
        .env("TRADEHOOK_SERVER__LISTEN", "127.0.0.1:0")
        .env("TRADEHOOK_SOURCE__TV__SECRETS", "0123456789")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("http://").nth(1).map(|rest| rest.split('/').next().unwrap_or("").to_owned())
        })
        .expect("serve printed where it listens");
    std::thread::spawn(move || lines.for_each(drop));
    let post = |passphrase: &str| {
        let body =
            serde_json::json!({"passphrase": passphrase, "ticker": "BTCUSD", "action": "buy", "price": 1});
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let url = format!("http://{address}/webhooks/tv");
        runtime.block_on(request(http::Method::POST, &url, &[], body.to_string().into_bytes())).status
    };
    assert_eq!(post("0123456789"), http::StatusCode::OK, "the secret from the variable, as written");
    assert_eq!(post("from-the-file"), http::StatusCode::UNAUTHORIZED, "the variable replaces the file's");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn rebuild_state_names_the_applied_events_it_cannot_read_now() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, banner) = serve_with_env(dir.path(), &[("TRADEHOOK_SECRET", "rebuild-secret-123")]);
    let url = banner.split("--url ").nth(1).unwrap().trim().to_string();
    let send = tradehook(dir.path())
        .args(["send", "order.created", "--url", &url, "--secret", "rebuild-secret-123"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&send.stdout).contains("accepted"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
    let _ = server.wait();
    // The source it came from is gone from the configuration now.
    std::fs::write(dir.path().join("other.toml"), "[[source]]\nname = \"other\"\nsecrets = [\"x\"]\n")
        .unwrap();
    let output =
        tradehook(dir.path()).args(["rebuild-state", "--check", "--config", "other.toml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "the order is missing from the recomputed state: {stdout}");
    assert!(stdout.contains("1 applied events cannot be read now"), "{stdout}");
    assert!(stdout.contains("evt_1: source `default` is not configured any more"), "{stdout}");
}

#[test]
fn a_refused_rebuild_state_leaves_the_data_directory_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) =
        serve_with_env(dir.path(), &[("TRADEHOOK_SECRET", "the-secret-of-the-running-gateway")]);
    let secret_file = dir.path().join("data/default-source.secret");
    assert!(!secret_file.exists(), "the gateway was given its secret");
    let output = tradehook(dir.path()).arg("rebuild-state").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("in use"), "{stderr}");
    // A secret written now would be what `send` signs with: every send would be refused.
    assert!(!secret_file.exists(), "no secret file appeared");
    let _ = server.kill();
    let _ = server.wait();

    // Where there is no store, there is nothing to rebuild: said, and nothing is created.
    let empty = tempfile::tempdir().unwrap();
    let output = tradehook(empty.path()).args(["rebuild-state", "--check"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(stderr.contains("no store at data/tradehook.db"), "{stderr}");
    assert!(!empty.path().join("data").exists(), "no store was created");
}

/// `serve` logging at info level into a pipe, its stdout piped too.
fn serve_logging_to_a_pipe(dir: &std::path::Path) -> std::process::Child {
    tradehook(dir)
        .arg("serve")
        .env("TRADEHOOK_SERVER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A log shipper restarted, or `serve 2>&1 | head`: with its log pipe closed the gateway still
/// stops on SIGTERM, cleanly. (The log line of the shutdown used to panic the signal task before
/// it cancelled anything, so SIGTERM did nothing and only SIGKILL stopped the gateway.)
#[test]
fn serve_whose_log_pipe_is_closed_still_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_logging_to_a_pipe(dir.path());
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map(Result::unwrap)
        .find_map(|line| line.split("--url ").nth(1).map(|url| url.trim().to_string()))
        .expect("the banner names the URL");
    std::thread::spawn(move || lines.for_each(drop));
    // The reader of its log goes away.
    drop(child.stderr.take());
    // Something to log at info level while nobody reads it; the gateway still answers.
    let send = tradehook(dir.path()).args(["send", "order.created", "--url", &url]).output().unwrap();
    assert!(String::from_utf8_lossy(&send.stdout).contains("accepted"), "{send:?}");

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("SIGTERM did not stop a gateway whose stderr pipe is closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
}

/// `kill -HUP`, as log rotation and service managers send it, leaves a plain-HTTP gateway
/// serving (only TLS has something to reload). SIGHUP's default action used to end it at once,
/// exit 129, with no drain.
#[tokio::test]
async fn sighup_leaves_a_plain_http_gateway_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path());
    for _ in 0..2 {
        let _ = Command::new("kill").arg("-HUP").arg(server.child.id().to_string()).status();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(server.child.try_wait().unwrap().is_none(), "the gateway exited on SIGHUP");
        let health =
            request(http::Method::GET, &format!("http://{}/healthz", server.addr), &[], Vec::new()).await;
        assert_eq!(health.status, http::StatusCode::OK);
    }
    assert!(server.terminate().success(), "SIGTERM still drains and exits 0");
}

/// A store that cannot be opened stops `serve` with one line that says which one and why: the
/// SQLite file's path, and for PostgreSQL the cause under "error connecting to server" (a name
/// that does not resolve and a refused port are fixed differently) or the TLS setting at fault.
#[test]
fn a_store_that_cannot_be_opened_is_named_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("notes.db"),
        "not a database, but a text file long enough to have a header".repeat(4),
    )
    .unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = format!("postgres://postgres@127.0.0.1:{closed_port}/test");
    for (url, expected) in [
        (
            "sqlite://notes.db",
            "cannot open the SQLite store notes.db: store unavailable: file is not a database",
        ),
        (refused.as_str(), "error connecting to server: Connection refused"),
        ("postgres://postgres@127.0.0.1/test?sslmode=verify", "sslmode=verify is not one of disable, allow"),
        (
            "postgres://postgres@127.0.0.1/test?sslmode=verify-ca&sslrootcert=/nonexistent/root.pem",
            "sslrootcert: cannot read the certificate file /nonexistent/root.pem",
        ),
    ] {
        let output = tradehook(dir.path())
            .arg("serve")
            .env("TRADEHOOK_STORE__URL", url)
            .env("TRADEHOOK_SERVER__LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{url}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.contains(expected), "{url}: {last}");
    }
}

/// A database address that accepts connections and never answers (a half-open proxy, a frozen
/// host) stops `serve` after the URL's `connect_timeout` with one line; it used to wait forever.
#[test]
fn a_store_that_accepts_and_never_answers_stops_serve_after_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The kernel completes the handshakes of a listener that never accepts.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut child = tradehook(dir.path())
        .arg("serve")
        .env("TRADEHOOK_STORE__URL", format!("postgres://postgres@127.0.0.1:{port}/test?connect_timeout=2"))
        .env("TRADEHOOK_SERVER__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve still waiting for the database after 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("did not complete the connection within 2 s"), "{last}");
    drop(silent);
}

/// Logs written to a file or a pipe (a log shipper, `2> serve.log`) carry no colour codes.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_logging_to_a_pipe(dir.path());
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(stdout.next().is_some(), "a banner");
    std::thread::spawn(move || stdout.for_each(drop));
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("tradehook is listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a piped log: {log:?}");
}
