//! `tradehook sign`: print the headers (and query) that sign a body, for use with curl.

use std::path::PathBuf;

use anyhow::Context;

use crate::ingest::signature::{self, Scheme, SignContext};

/// Arguments of `sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The body to sign, as text.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    pub body: Option<String>,
    /// A file whose exact bytes are signed.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Signature scheme.
    #[arg(long, default_value = "hmac-sha256")]
    pub scheme: Scheme,
    /// Signing secret; default: TRADEHOOK_SECRET (trimmed, as `serve` reads it).
    #[arg(long)]
    pub secret: Option<String>,
    /// Unix timestamp to sign (schemes with a timestamp); default now.
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// Message id for standard-webhooks; default a new one.
    #[arg(long)]
    pub id: Option<String>,
    /// Print curl `-H` arguments instead of plain header lines.
    #[arg(long)]
    pub curl: bool,
}

/// Signs and prints.
pub fn run(args: SignArgs) -> anyhow::Result<()> {
    let body = match (&args.body, &args.file) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => anyhow::bail!("give --body or --file"),
    };
    let context = SignContext {
        timestamp: args.timestamp.unwrap_or_else(|| chrono::Utc::now().timestamp()),
        message_id: args.id.clone().unwrap_or_else(|| format!("msg_{}", ulid::Ulid::new())),
        token_field: None,
    };
    let secret = args
        .secret
        .clone()
        .or_else(crate::server::secret_from_env_var)
        .context("sign needs --secret (or TRADEHOOK_SECRET)")?;
    let signed = signature::sign(args.scheme, &secret, &body, &context)?;
    for (name, value) in &signed.headers {
        if args.curl {
            println!("-H '{name}: {value}' \\");
        } else {
            println!("{name}: {value}");
        }
    }
    if let Some(query) = &signed.query {
        println!("query: ?{query}");
    }
    Ok(())
}
