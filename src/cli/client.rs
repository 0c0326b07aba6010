//! A small HTTP client for the commands that talk to a running gateway (`send`, `events`,
//! `dlq`, `replay`): where the gateway is and how to authenticate, taken from the same
//! configuration the gateway uses.

use anyhow::Context;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::Config;
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
}

/// Sends one request and returns the status and body.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder.body(Full::new(Bytes::from(body))).context("cannot build the request")?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client.request(request).await.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.into_body().collect().await.context("cannot read the answer")?.to_bytes();
    Ok((status, body))
}

/// A client of `/api/v1` of one gateway.
pub struct ApiClient {
    base: String,
    token: String,
}

impl ApiClient {
    /// Resolves the URL and token from the arguments and the configuration.
    pub fn new(args: &ApiArgs, config: &Config) -> anyhow::Result<ApiClient> {
        let base = args.url.clone().unwrap_or_else(|| format!("http://{}", config.server.listen));
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
        Ok(ApiClient { base: base.trim_end_matches('/').to_string(), token })
    }

    /// Calls `/api/v1{path}` and returns the JSON answer; a non-2xx answer is an error naming
    /// the gateway's reason.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut headers = vec![("authorization".to_string(), format!("Bearer {}", self.token))];
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, answer) = request(method, &url, &headers, bytes).await?;
        let json: serde_json::Value = serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let reason = json["reason"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&answer).into_owned());
            anyhow::bail!("{} answered {}: {reason}", url, status.as_u16());
        }
        Ok(json)
    }
}
