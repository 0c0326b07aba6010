//! `TRADEHOOK_*` environment variables over the file: every key can be set, `__` nesting
//! (`TRADEHOOK_API__ADMIN_TOKEN` is `api.admin_token`).
//!
//! figment's `Env` provider does most of it. Two things it cannot, done here:
//! - text settings keep the text as written (figment reads a value as TOML would, so an
//!   all-digit token became a number);
//! - entries of the `[[source]]`, `[[route]]` and `[api] keys` lists: a variable picks one by its
//!   position (`TRADEHOOK_ROUTE__0__ACTIONS`) or, for sources, by name
//!   (`TRADEHOOK_SOURCE__TV__SECRETS`), and sets a key of it; the entry must be in the file.

use figment::providers::Env;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::ConfigError;

/// What every variable of ours starts with.
const PREFIX: &str = "TRADEHOOK_";

/// `TRADEHOOK_*` variables that are not configuration keys: the zero-config secret, the config
/// file, what an `exec:` action's command is given (`TRADEHOOK_EVENT_ID`, …; so a command may run
/// `tradehook send`), and the benchmark client's thread count. Any other `TRADEHOOK_*` name must
/// be a key: a typo is an error, not silently ignored.
pub(super) const NOT_CONFIG_KEYS: [&str; 5] = ["SECRET", "CONFIG", "EVENT_ID", "EVENT_TYPE", "BENCH_CLIENT_THREADS"];

/// Keys whose value is text, taken from `TRADEHOOK_*` exactly as written. figment reads a
/// variable's value as TOML would, so an all-digit admin token or broker secret became a number
/// (refused as "expected a string", or with its leading zeros gone and a long one rounded).
pub(super) const TEXT_KEYS: [&str; 11] = [
    "server.listen",
    "store.url",
    "api.admin_token",
    "alerts.url",
    "alerts.node",
    "nats.url",
    "nats.stream",
    "broker.url",
    "broker.api_key",
    "broker.secret",
    "log.level",
];

/// Lists of tables, and the field that names an entry (besides its position).
const LISTS: [(&str, Option<&str>); 3] = [("source", Some("name")), ("route", None), ("api.keys", Some("key"))];

/// Keys of a list entry whose value is text; `secrets` also takes one secret without brackets.
const ENTRY_TEXT_KEYS: [&str; 5] = ["name", "secret", "key", "token_field", "secrets"];

/// `figment` with the process's `TRADEHOOK_*` configuration keys merged over it.
pub(super) fn from_environment(figment: Figment) -> Result<Figment, ConfigError> {
    let figment = store_url_as_table(figment);
    let env = Env::prefixed(PREFIX)
        .ignore(&NOT_CONFIG_KEYS)
        .split("__")
        // `TRADEHOOK_STORE=<url>` is the store's URL: the file's other store keys stay.
        .map(|key| if key == "store" { "store.url".into() } else { key.into() })
        .filter(|key| list_of(key.as_str()).is_none());
    let text: Vec<(String, String)> = env
        .iter()
        .filter(|(key, _)| TEXT_KEYS.iter().any(|text| key == *text))
        .map(|(key, value)| (key.as_str().to_ascii_lowercase(), value))
        .collect();
    let mut figment = figment.merge(env);
    for (key, value) in text {
        figment = figment.merge(Variables::at(&key, Value::from(value)));
    }
    // Not `std::env::vars`, which panics on a variable that is not UTF-8 (any variable, not only
    // ours); such ones are skipped, as figment's own reader does.
    list_entries(figment, std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
}

/// The file's `store = "<url>"` as `[store] url = "<url>"`. A variable that sets another store
/// key (`TRADEHOOK_STORE__POOL_SIZE`) is a table merged over the file's value: over a bare URL it
/// replaced it, and the store silently fell back to its default, SQLite.
fn store_url_as_table(figment: Figment) -> Figment {
    match figment.find_value("store") {
        Ok(Value::String(_, url)) => figment.merge(Variables::at("store.url", Value::from(url))),
        _ => figment,
    }
}

/// Whether variable `name` is one of ours (the prefix in any case, as figment takes it).
fn ours(name: &str) -> bool {
    name.get(..PREFIX.len()).is_some_and(|start| start.eq_ignore_ascii_case(PREFIX))
}

/// `figment` with the list entries `vars` (`TRADEHOOK_*` variables) set merged over it.
fn list_entries(mut figment: Figment, vars: impl Iterator<Item = (String, String)>) -> Result<Figment, ConfigError> {
    let vars: Vec<(String, String)> = vars.filter(|(name, _)| ours(name)).collect();
    for (list, naming) in LISTS {
        let mut entries: Option<Vec<Value>> = None;
        for (name, value) in &vars {
            let key = key_of(name);
            let Some((found, rest)) = list_of(&key) else { continue };
            if found != list {
                continue;
            }
            if entries.is_none() {
                entries = Some(figment.extract_inner::<Vec<Value>>(list).unwrap_or_default());
            }
            let all = entries.get_or_insert_with(Vec::new);
            set_in_entry(all, list, naming, rest, value).map_err(|e| ConfigError(format!("`{name}`: {e}")))?;
        }
        if let Some(all) = entries {
            figment = figment.merge(Variables::at(list, Value::from(all)));
        }
    }
    Ok(figment)
}

/// Values set by variables, so errors say where they came from.
struct Variables(Dict);

impl Variables {
    /// `value` at dotted `key`.
    fn at(key: &str, value: Value) -> Self {
        match figment::util::nest(key, value) {
            Value::Dict(_, dict) => Variables(dict),
            _ => Variables(Dict::new()),
        }
    }
}

impl Provider for Variables {
    fn metadata(&self) -> Metadata {
        Metadata::named("`TRADEHOOK_` environment variable(s)")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// The dotted, lowercase key of variable `name` (`TRADEHOOK_SOURCE__TV__SECRETS` →
/// `source.tv.secrets`).
fn key_of(name: &str) -> String {
    name[PREFIX.len()..].split("__").collect::<Vec<_>>().join(".").to_ascii_lowercase()
}

/// Which list `key` sets an entry of, and the rest of the key (`tv.secrets`).
fn list_of(key: &str) -> Option<(&'static str, &str)> {
    let key_lower = key.to_ascii_lowercase();
    LISTS.iter().find_map(|(list, _)| {
        let prefix = format!("{list}.");
        key_lower.starts_with(&prefix).then(|| (*list, &key[prefix.len()..]))
    })
}

/// Sets `rest` (`<position or name>.<key>[.<key>…]`) to `raw` in one of `entries`.
fn set_in_entry(entries: &mut [Value], list: &str, naming: Option<&str>, rest: &str, raw: &str) -> Result<(), String> {
    let (selector, path) = rest.split_once('.').ok_or_else(|| {
        format!("name an entry and a key of it, e.g. TRADEHOOK_{}__0__<KEY>", list.replace('.', "__").to_uppercase())
    })?;
    let position = match selector.parse::<usize>() {
        Ok(position) if position < entries.len() => Some(position),
        Ok(_) => None,
        Err(_) => naming.and_then(|field| {
            entries.iter().position(|entry| {
                entry.find_ref(field).and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(selector))
            })
        }),
    };
    let Some(position) = position else {
        let how = naming.map(|field| format!(" or {field}")).unwrap_or_default();
        return Err(format!(
            "the configuration has no `{list}` entry at position{how} `{selector}` ({} entries); \
             a variable changes an entry of the file, it cannot add one",
            entries.len()
        ));
    };
    let mut keys: Vec<&str> = path.split('.').collect();
    let last = keys.pop().unwrap_or_default();
    let mut dict = match &mut entries[position] {
        Value::Dict(_, dict) => dict,
        _ => return Err(format!("`{list}` entry `{selector}` is not a table")),
    };
    for key in keys {
        let inner = dict.entry(key.to_owned()).or_insert_with(|| Value::from(Dict::new()));
        dict = match inner {
            Value::Dict(_, inner) => inner,
            _ => return Err(format!("`{key}` is not a table")),
        };
    }
    dict.insert(last.to_owned(), entry_value(last, raw)?);
    Ok(())
}

/// The value of entry key `key` from a variable's text: text as written for text keys (a list
/// of quoted strings, or one secret without brackets, for `secrets`), else read as TOML would.
/// An error never quotes the text: it may be a secret.
fn entry_value(key: &str, raw: &str) -> Result<Value, String> {
    if !ENTRY_TEXT_KEYS.contains(&key) {
        return Ok(raw.parse().unwrap_or_else(|_| Value::from(raw.to_owned())));
    }
    if key == "secrets" && raw.trim_start().starts_with('[') {
        return match raw.parse::<Value>() {
            Ok(Value::Array(tag, items)) if items.iter().all(|item| item.as_str().is_some()) => {
                Ok(Value::Array(tag, items))
            }
            _ => Err("`secrets` is a list of quoted strings, e.g. [\"new\", \"old\"], or one secret \
                      without brackets"
                .into()),
        };
    }
    if key == "secrets" {
        return Ok(Value::from(vec![raw.to_owned()]));
    }
    Ok(Value::from(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use figment::providers::{Format as _, Serialized, Toml};

    const FILE: &str = r#"
        [[source]]
        name = "vibe"
        signature = "hmac-sha256"
        secrets = ["file-secret"]

        [[source]]
        name = "tv"
        format = "tradingview"
        signature = "token"
        secrets = ["old-pass"]
        allow_ips = ["127.0.0.1/32"]

        [[route]]
        events = ["order.*"]
        actions = ["nats:orders"]
    "#;

    fn load(vars: &[(&str, &str)]) -> Result<Config, String> {
        let figment = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(FILE));
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let figment = list_entries(figment, vars).map_err(|e| e.0)?;
        figment.extract::<Config>().map_err(|e| e.to_string())
    }

    #[test]
    fn a_source_is_picked_by_name_or_position_and_its_other_entries_stay() {
        let config = load(&[
            ("TRADEHOOK_SOURCE__TV__SECRETS", "0042"),
            ("TRADEHOOK_SOURCE__0__SECRETS", r#"["new", "file-secret"]"#),
            ("TRADEHOOK_SOURCE__TV__RATE_LIMIT__PER_SECOND", "5"),
            ("TRADEHOOK_SOURCE__TV__RATE_LIMIT__BURST", "10"),
        ])
        .unwrap();
        assert_eq!(config.sources.len(), 2);
        assert_eq!(config.sources[0].secrets, ["new", "file-secret"]);
        assert_eq!(config.sources[1].secrets, ["0042"], "one secret, as written");
        assert_eq!(config.sources[1].name, "tv");
        assert_eq!(config.sources[1].allow_ips.len(), 1, "keys not named stay as in the file");
        let limit = serde_json::to_value(&config.sources[1]).unwrap()["rate_limit"]["per_second"].clone();
        assert_eq!(limit, 5);
    }

    #[test]
    fn a_route_is_picked_by_position() {
        let config = load(&[("TRADEHOOK_ROUTE__0__ACTIONS", r#"["nats:fills", "exec:true"]"#)]).unwrap();
        assert_eq!(config.routes[0].actions, ["nats:fills", "exec:true"]);
        assert_eq!(config.routes[0].events, ["order.*"]);
    }

    #[test]
    fn an_entry_the_file_does_not_have_is_named_in_the_error() {
        let error = load(&[("TRADEHOOK_SOURCE__NOPE__SECRETS", "x")]).unwrap_err();
        assert!(error.contains("TRADEHOOK_SOURCE__NOPE__SECRETS") && error.contains("no `source` entry"), "{error}");
        let error = load(&[("TRADEHOOK_ROUTE__3__ACTIONS", "[]")]).unwrap_err();
        assert!(error.contains("TRADEHOOK_ROUTE__3__ACTIONS"), "{error}");
        let error = load(&[("TRADEHOOK_SOURCE__TV", "x")]).unwrap_err();
        assert!(error.contains("name an entry and a key"), "{error}");
        // A list that is not of strings: said without quoting what may be a secret.
        for raw in ["[0042]", "[s3cret"] {
            let error = load(&[("TRADEHOOK_SOURCE__TV__SECRETS", raw)]).unwrap_err();
            assert!(error.contains("quoted strings") && !error.contains("42") && !error.contains("s3cret"), "{error}");
        }
        // Our prefix in any case, as for the other keys.
        let config = load(&[("tradehook_source__tv__secrets", "lower")]).unwrap();
        assert_eq!(config.sources[1].secrets, ["lower"]);
        // A key the entry does not have is refused like in the file.
        let error = load(&[("TRADEHOOK_SOURCE__TV__SECRET", "x")]).unwrap_err();
        assert!(error.contains("secret"), "{error}");
    }
}
