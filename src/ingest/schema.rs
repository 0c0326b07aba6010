//! What the OpenAPI document says a webhook request may carry: the headers that the signature
//! schemes and the event-id rule read. Which of them a source needs depends on its configured
//! scheme, so all are optional here; a missing or wrong one answers 401. (The `token` scheme's
//! `?token=` query parameter is listed on the operations themselves.)

/// Headers read by ingest (see SPEC §1 for each scheme).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Describes the request for the document; the handler reads the raw headers.
pub struct IngestHeaders {
    /// `hmac-sha256`: hex HMAC-SHA256 of the raw body (`sha256=<hex>` accepted).
    #[param(rename = "X-Webhook-Signature")]
    webhook_signature: Option<String>,
    /// `github`: `sha256=<hex>`.
    #[param(rename = "X-Hub-Signature-256")]
    hub_signature: Option<String>,
    /// `stripe`: `t=<unix>,v1=<hex>[,v1=…]` over `"{t}.{body}"`.
    #[param(rename = "Stripe-Signature")]
    stripe_signature: Option<String>,
    /// `standard-webhooks`: the message id (also the event id); `svix-id` is accepted too.
    #[param(rename = "webhook-id")]
    standard_id: Option<String>,
    /// `standard-webhooks`: unix seconds, within the source's tolerance.
    #[param(rename = "webhook-timestamp")]
    standard_timestamp: Option<String>,
    /// `standard-webhooks`: `v1,<base64>` and/or `v1a,<base64>`, space separated.
    #[param(rename = "webhook-signature")]
    standard_signature: Option<String>,
    /// The event id (de-duplication key) when no `webhook-id` is sent.
    #[param(rename = "X-Event-Id")]
    event_id: Option<String>,
}
