//! A small HTTP client for the commands that talk to a running gateway (`send`, `events`,
//! `dlq`, `replay`): where the gateway is and how to authenticate, taken from the same
//! configuration the gateway uses. Speaks HTTP and HTTPS; `--cacert` trusts a given CA or
//! self-signed certificate instead of the system's roots (see `cacert`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::value::RawValue;

use crate::config::Config;
use crate::ingest::signature::RawObject;
use crate::server::ADMIN_TOKEN_FILE;

/// Where the management API is and the token for it.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// Base URL of the gateway; default: the configured listen address.
    #[arg(long)]
    pub url: Option<String>,
    /// Admin token; default: TRADEHOOK_API__ADMIN_TOKEN, the configured one, or data/admin-token.
    #[arg(long, env = "TRADEHOOK_API__ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the CA (or self-signed certificate) to trust for https:// instead of the
    /// system's roots; default: `server.tls.cert` when the configuration has TLS.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
}

/// The URL scheme of the configured listener.
pub fn scheme(config: &Config) -> &'static str {
    if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// The `--cacert` to use: the given one, else the configured server certificate.
pub fn cacert(given: Option<&Path>, config: &Config) -> Option<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| config.server.tls.as_ref().map(|tls| tls.cert.clone()))
}

/// Sends one request and returns the status and body; `cacert` replaces the trusted roots.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    cacert: Option<&Path>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    crate::tls::install_crypto_provider();
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy();
    if let Some(path) = cacert {
        builder = builder.tls_backend_preconfigured(super::cacert::client_config(path)?);
    }
    let client = builder.build().context("cannot build the HTTP client")?;
    let mut request = client.request(method, url).body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.map_err(|error| {
        // A refused certificate in words; any other failure with reqwest's chain of causes.
        match super::cacert::refusal(&error, cacert) {
            Some(reason) => anyhow::anyhow!(reason),
            None => error.into(),
        }
        .context(format!("cannot reach {url}"))
    })?;
    let status = response.status();
    let body = response.bytes().await.context("cannot read the answer")?;
    Ok((status, body))
}

/// A client of `/api/v1` of one gateway.
pub struct ApiClient {
    base: String,
    token: String,
    cacert: Option<PathBuf>,
}

impl ApiClient {
    /// Resolves the URL and token from the arguments and the configuration.
    pub fn new(args: &ApiArgs, config: &Config) -> anyhow::Result<ApiClient> {
        let base =
            args.url.clone().unwrap_or_else(|| format!("{}://{}", scheme(config), config.server.listen));
        let token = match (&args.token, &config.api.admin_token) {
            (Some(token), _) | (None, Some(token)) => token.clone(),
            (None, None) => {
                let path = config.data_dir().join(ADMIN_TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_string())
                    .ok()
                    .filter(|t| !t.is_empty())
                    .with_context(|| {
                        format!(
                            "no admin token: pass --token or run `tradehook serve` once to create {}",
                            path.display()
                        )
                    })?
            }
        };
        let cacert = cacert(args.cacert.as_deref(), config);
        Ok(ApiClient { base: base.trim_end_matches('/').to_string(), token, cacert })
    }

    /// Calls `/api/v1{path}` and returns the JSON answer; a non-2xx answer is an error naming
    /// the gateway's reason.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let answer = self.call_raw(method, path, body).await?;
        Ok(serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null))
    }

    /// [`call`](Self::call), returning the answer's bytes as the gateway sent them: a payload
    /// read into a `Value` loses digits of long numbers and all but one of repeated keys.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Bytes> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut headers = vec![("authorization".to_string(), format!("Bearer {}", self.token))];
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, answer) = request(method, &url, &headers, bytes, self.cacert.as_deref()).await?;
        if !status.is_success() {
            let json: serde_json::Value = serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null);
            let reason = json["reason"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
            return Err(Refused { status: status.as_u16(), message: format!("{url} answered {}: {reason}", status.as_u16()) }.into());
        }
        Ok(answer)
    }
}

/// The gateway answered, with an error status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    /// The HTTP status.
    pub status: u16,
    message: String,
}

impl Refused {
    /// Whether asking again later may succeed: the gateway is busy or unavailable (429, 5xx),
    /// not refusing this request (a wrong token, a missing path).
    pub fn is_transient(&self) -> bool {
        self.status == 408 || self.status == 429 || self.status >= 500
    }
}

/// `json` indented as `serde_json::to_string_pretty` does, with every number, string and repeated
/// key as the gateway wrote it (a `Value` made 123456789012345678901234567890 into
/// 1.2345678901234568e29 and 1E+2 into 100.0). `Err` when it is not JSON.
pub fn pretty(json: &[u8]) -> anyhow::Result<String> {
    let value: &RawValue = serde_json::from_slice(json)?;
    let mut out = String::new();
    write_pretty(value, 0, &mut out)?;
    Ok(out)
}

fn write_pretty(value: &RawValue, depth: usize, out: &mut String) -> anyhow::Result<()> {
    let text = value.get().trim();
    let indent = |out: &mut String, depth: usize| out.extend(std::iter::repeat_n("  ", depth));
    // Each item with its name when it is an object's member.
    type Items = Vec<(Option<String>, Box<RawValue>)>;
    let (open, close, items): (char, char, Items) = match text.as_bytes().first() {
        Some(b'{') => {
            let RawObject(members) = serde_json::from_str(text)?;
            ('{', '}', members.into_iter().map(|(name, member)| (Some(name), member)).collect())
        }
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text)?;
            ('[', ']', items.into_iter().map(|item| (None, item)).collect())
        }
        _ => {
            out.push_str(text);
            return Ok(());
        }
    };
    out.push(open);
    for (i, (name, item)) in items.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { ",\n" });
        indent(out, depth + 1);
        if let Some(name) = name {
            out.push_str(&serde_json::to_string(name)?);
            out.push_str(": ");
        }
        write_pretty(item, depth + 1, out)?;
    }
    if !items.is_empty() {
        out.push('\n');
        indent(out, depth);
    }
    out.push(close);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn pretty_keeps_every_number_string_and_repeated_key_as_written() {
        let answer = br#"{"id":"evt_1","payload":{"big":123456789012345678901234567890,"f":0.1000000000000000055511151231257827,"e":1E+2,"s":"a\u0041","dup":1,"dup":2,"list":[1.50,[],{}]}}"#;
        let expected = r#"{
  "id": "evt_1",
  "payload": {
    "big": 123456789012345678901234567890,
    "f": 0.1000000000000000055511151231257827,
    "e": 1E+2,
    "s": "a\u0041",
    "dup": 1,
    "dup": 2,
    "list": [
      1.50,
      [],
      {}
    ]
  }
}"#;
        assert_eq!(pretty(answer).unwrap(), expected);
        // Without repeated keys or long numbers it is serde_json's own pretty form.
        let plain = br#"{"a":[1,{"b":null}],"c":"x"}"#;
        let value: serde_json::Value = serde_json::from_slice(plain).unwrap();
        assert_eq!(pretty(plain).unwrap(), serde_json::to_string_pretty(&value).unwrap());
        assert!(pretty(b"not json").is_err());
    }
}
