//! The OpenAPI document of the whole HTTP surface (`GET /api/openapi.json`), generated from the
//! handlers so that the routes and the document cannot drift apart.
//!
//! Every handler carries a `#[utoipa::path]` annotation, and every resource file's `router()`
//! returns a [`utoipa_axum::router::OpenApiRouter`] built with `routes!(…)`: that one call adds
//! the route to axum and its operation (parameters, request body, responses) to the document.
//! A route added with plain `.route(…)` would be served but missing from the document, so
//! `tests/openapi_http.rs` refuses `.route(` anywhere in `src/`, and compares the document with its
//! own list of every (method, path) the server has.
//!
//! # Adding a resource (e.g. `src/api/webhooks.rs`)
//!
//! 1. Annotate each handler. The path is relative to `/api/v1`; name path parameters as the
//!    document should show them (`{id}`, `{orderId}`):
//!    ```ignore
//!    #[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks",
//!        params(("id" = String, Path, description = "Subscription id")),
//!        responses((status = 200, body = Subscription), (status = 404, body = ErrorBody)))]
//!    async fn show(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> … {}
//!    ```
//!    Bodies and answers are types deriving `utoipa::ToSchema` (answer with `Json<ThatType>`, not
//!    `json!`, so the schema is the body); query strings are structs deriving
//!    `utoipa::IntoParams` listed in `params(…)`. Take a query as `super::QueryResult<T>` (then
//!    `super::query`) and a body as `Result<Json<T>, JsonRejection>` (then
//!    `super::body_rejection`) for the project's error codes; anything else axum refuses is made
//!    JSON by [`super::rejection`]. Add the tag to `ApiDoc`'s `tags(…)` below.
//! 2. Give the file `pub fn router() -> OpenApiRouter<Arc<AppState>>` that returns
//!    `OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, update, remove))`:
//!    handlers on the same path go in one `routes!`.
//! 3. Merge it in [`super::router`] (`.merge(webhooks::router())`) and add its paths to the list
//!    in `tests/openapi_http.rs`.
//!
//! [`finish`] then gives every `/api/v1` operation the two security schemes and the answers that
//! the shared layers produce (401, 413, 503, and 400 where there is input), so handlers declare
//! only their own outcomes.

use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use bytes::Bytes;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ArrayItems, Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::error::ErrorBody;

/// Name of the bearer-token security scheme.
pub const ADMIN_TOKEN_SCHEME: &str = "adminToken";
/// Names of the three header schemes that together make seed 001's request signing.
pub const SIGNING_SCHEMES: [&str; 3] = ["apiKey", "apiTimestamp", "apiSignature"];

/// The parts of the document that no handler describes: title, tags, schemes, shared schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tradehook",
        description = "A resilient webhook gateway for trading systems: ingest (`/webhook`, \
            `/webhooks/{source}`), the management API (`/api/v1`), health and metrics. Every error \
            answer is JSON `{\"error\": code, \"reason\": text}`."
    ),
    // Besides ErrorBody: what `IntoResponses` lists and the typed query filters refer to, which
    // utoipa does not collect from them.
    components(schemas(
        ErrorBody,
        crate::ingest::Acknowledgement,
        crate::ingest::AckStatus,
        crate::trading::AlertKind,
        crate::trading::actions::ActionName,
        crate::store::intents::IntentOutcome
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "ingest", description = "Receiving webhooks (SPEC §1)"),
        (name = "events", description = "Stored events"),
        (name = "state", description = "Trading state: orders, positions, balances, signals, alerts"),
        (name = "dlq", description = "The dead-letter queue"),
        (name = "webhooks", description = "Subscriptions: outbound webhooks, their delivery log and tests"),
        (name = "status", description = "Gateway status and the audit log of refused requests"),
        (name = "live", description = "What the dashboard watches: ingest per second, the live event feed"),
        (name = "health", description = "Liveness, readiness, metrics and this document"),
        (name = "ui", description = "The dashboard at /ui (the page asks for the admin token)"),
    )
)]
struct ApiDoc;

/// Declares the admin bearer token and the three headers of seed 001's request signing.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "`Authorization: Bearer <api.admin_token>` (or the generated data/admin-token)",
            ))
            .build();
        components.add_security_scheme(ADMIN_TOKEN_SCHEME, SecurityScheme::Http(bearer));
        let headers = [
            ("X-API-Key", "An `[api] keys` entry's `key`; send with X-Timestamp and X-Signature."),
            ("X-Timestamp", "Unix seconds, within 30 s of the server's clock (past or future)."),
            (
                "X-Signature",
                "Hex HMAC-SHA256, keyed with the key's secret, of timestamp + METHOD + path + body \
                 (concatenated; path as sent, with or without its query string).",
            ),
        ];
        for (name, (header_name, description)) in SIGNING_SCHEMES.iter().zip(headers) {
            let key = ApiKeyValue::with_description(header_name, description);
            components.add_security_scheme(*name, SecurityScheme::ApiKey(ApiKey::Header(key)));
        }
    }
}

/// The document's fixed parts, to build the router on.
pub fn base() -> OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

/// The serialized document, filled in once the whole router is known.
#[derive(Clone, Default)]
struct Document(Arc<OnceLock<Bytes>>);

/// The OpenAPI 3.1 document of every route this server has.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "health",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object))
)]
async fn document(Extension(document): Extension<Document>) -> Response {
    let body = document.0.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Adds `GET /api/openapi.json` to `routes`, completes the document with [`finish`], and
/// returns the plain axum router that serves it all.
pub fn serve<S>(routes: OpenApiRouter<S>) -> (Router<S>, OpenApi)
where
    S: Clone + Send + Sync + 'static,
{
    let slot = Document::default();
    let (router, mut openapi) =
        routes.routes(routes!(document).layer(Extension(slot.clone()))).split_for_parts();
    finish(&mut openapi);
    // Serializing a document of plain strings and maps cannot fail; an empty body would show it.
    let json = serde_json::to_vec(&openapi).unwrap_or_default();
    let _ = slot.0.set(Bytes::from(json));
    (router, openapi)
}

/// Gives every `/api/v1` operation its security (bearer token, or the three signing headers)
/// and the error answers of the shared layers, unless the handler declared them itself, and
/// documents that no string of the API holds a NUL ([`forbid_nul`]).
pub fn finish(openapi: &mut OpenApi) {
    let bearer = SecurityRequirement::new(ADMIN_TOKEN_SCHEME, Vec::<String>::new());
    let signed = SIGNING_SCHEMES
        .iter()
        .skip(1)
        .fold(SecurityRequirement::new(SIGNING_SCHEMES[0], Vec::<String>::new()), |req, name| {
            req.add(*name, Vec::<String>::new())
        });
    // Request bodies only: answers may quote what was refused (the audit log's body prefixes).
    let mut bodies: Vec<String> = Vec::new();
    for (path, item) in openapi.paths.paths.iter_mut() {
        let management = path.starts_with("/api/v1/");
        for operation in operations(item) {
            let has_input = operation.parameters.as_ref().is_some_and(|p| !p.is_empty())
                || operation.request_body.is_some();
            if has_input {
                add_error(operation, 400, "The request is not valid: the reason says which part");
            }
            if management {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let RefOr::T(parameter) = parameter {
                        parameter.schema.iter_mut().for_each(forbid_nul);
                    }
                }
                if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
                    for content in body.content.values_mut() {
                        let RefOr::T(content) = content else { continue };
                        match content.schema.as_mut() {
                            Some(RefOr::Ref(reference)) => bodies.push(reference.ref_location.clone()),
                            Some(schema) => forbid_nul(schema),
                            None => {}
                        }
                    }
                }
                operation.security = Some(vec![bearer.clone(), signed.clone()]);
                add_error(operation, 401, "Credentials missing or not valid (the reason says which)");
                add_error(operation, 408, "The body was not received in time");
                add_error(operation, 413, "The body is over 1 MiB");
                add_error(operation, 503, "The store cannot answer now; retry after `Retry-After`");
            }
        }
    }
    if let Some(components) = openapi.components.as_mut() {
        // A body's schema and the schemas it refers to, however deep.
        let mut done = std::collections::BTreeSet::new();
        while let Some(location) = bodies.pop() {
            let name = location.trim_start_matches("#/components/schemas/").to_owned();
            if !done.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = components.schemas.get_mut(&name) {
                referred(schema, &mut bodies);
                forbid_nul(schema);
            }
        }
    }
}

/// A string without NUL, as a JSON Schema pattern.
const NO_NUL: &str = "^[^\\u0000]*$";

/// Documents that free-form strings hold no NUL: no store keeps one (PostgreSQL's text refuses
/// it), so the API answers 400 to a NUL in a path, query or body field.
fn forbid_nul(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(object) => {
            let string = match &object.schema_type {
                SchemaType::Type(kind) => *kind == Type::String,
                SchemaType::Array(kinds) => kinds.contains(&Type::String),
                _ => false,
            };
            if string && object.pattern.is_none() && object.format.is_none() && object.enum_values.is_none() {
                object.pattern = Some(NO_NUL.to_owned());
            }
            object.properties.values_mut().for_each(forbid_nul);
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                forbid_nul(items);
            }
        }
        Schema::OneOf(one) => one.items.iter_mut().for_each(forbid_nul),
        Schema::AllOf(all) => all.items.iter_mut().for_each(forbid_nul),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// Adds the locations of the schemas `schema` refers to to `names`.
fn referred(schema: &RefOr<Schema>, names: &mut Vec<String>) {
    let json = serde_json::to_value(schema).unwrap_or_default();
    let mut stack = vec![&json];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(location)) = map.get("$ref") {
                    names.push(location.clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
}

/// The operations of a path item that the server routes.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// Documents an `ErrorBody` answer with `status` unless the operation already has one.
fn add_error(operation: &mut Operation, status: u16, description: &str) {
    let key = status.to_string();
    if operation.responses.responses.contains_key(&key) {
        return;
    }
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let response =
        ResponseBuilder::new().description(description).content("application/json", content).build();
    operation.responses.responses.insert(key, response.into());
}
