//! The dashboard (SPEC §6): one page at `GET /ui` and its script, stylesheet and icon, compiled
//! into the binary so it works offline and always matches the server it came with.
//!
//! The page itself needs no credentials: it asks for the admin token, keeps it in the browser's
//! `sessionStorage` (gone when the tab closes, never in a URL), and sends it as
//! `Authorization: Bearer …` on every `/api/v1` call it makes — the live feed included, which is
//! read with `fetch` because `EventSource` cannot send headers. A strict Content-Security-Policy
//! allows only this origin's scripts, styles and connections: no CDN, no inline script.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;

/// The page.
const INDEX: &str = include_str!("assets/index.html");

/// The files the page loads from `/ui/{file}`: name, content type, content.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("assets/app.js")),
    ("core.js", "text/javascript; charset=utf-8", include_bytes!("assets/core.js")),
    ("live.js", "text/javascript; charset=utf-8", include_bytes!("assets/live.js")),
    ("trading.js", "text/javascript; charset=utf-8", include_bytes!("assets/trading.js")),
    ("deliveries.js", "text/javascript; charset=utf-8", include_bytes!("assets/deliveries.js")),
    ("dlq.js", "text/javascript; charset=utf-8", include_bytes!("assets/dlq.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("assets/app.css")),
    ("icon.svg", "image/svg+xml", include_bytes!("assets/icon.svg")),
];

/// Only this origin's files and API; nothing inline, nothing framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The dashboard routes.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(page)).routes(routes!(asset))
}

/// Headers every dashboard file is served with.
fn served(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Small files: revalidate every time so a new binary's page is never mixed with old files.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// The dashboard: live ingest and events, trading state, deliveries and dead letters.
#[utoipa::path(
    get,
    path = "/ui",
    tag = "ui",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String))
)]
async fn page() -> Response {
    served("text/html; charset=utf-8", INDEX.as_bytes())
}

/// A file of the dashboard (`app.js` and the modules it imports, `app.css`, `icon.svg`).
#[utoipa::path(
    get,
    path = "/ui/{file}",
    tag = "ui",
    params(("file" = String, Path, description = "The file name", example = "app.js")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml")
        )),
        (status = 404, description = "No such file", body = ErrorBody)
    )
)]
async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, content_type, body)| served(content_type, body))
        .ok_or_else(|| ApiError::not_found("no such dashboard file"))
}
