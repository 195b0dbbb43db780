//! The HTTP API: the REST resources of DESIGN.md under `/api/v1`, `/metrics`,
//! `/healthz`, `/readyz` at the root, and the web console at `/`. Every API route is
//! registered together with its OpenAPI description, so `/api/v1/openapi.json` always
//! matches what is served.

mod auth;
mod batches;
mod console;
mod error;
mod forecast;
mod migrations;
mod objects;
mod rules;
mod system;
mod tiers;
mod views;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Json;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::Auth;
pub use error::{ApiError, ErrorBody, ErrorDetail, error_response};

use crate::content::Content;
use crate::db::{Catalogue, MAX_PAGE_SIZE};
use crate::events::publisher::AccessPublisher;
use crate::forecast::ActiveModel;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::storage::Tiers;

/// Largest JSON request body; only ingest takes more, and streams it.
const MAX_JSON_BODY: usize = 64 * 1024;

/// Page size when a list request names none.
const DEFAULT_PAGE_SIZE: i64 = 100;

/// What handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The catalogue.
    pub catalogue: Catalogue,
    /// Ingest, read and delete of object bytes.
    pub content: Content,
    /// Tier order and thresholds; turns requests into queued moves.
    pub policy: Arc<Policy>,
    /// The forecast model in use.
    pub model: Arc<ActiveModel>,
    /// Set while a model trains in the background (one at a time).
    pub training: Arc<AtomicBool>,
    /// The tiers with their backends.
    pub tiers: Arc<Tiers>,
    /// Where new objects land.
    pub default_tier: String,
    /// The bucket objects ingested over REST go into.
    pub default_bucket: String,
    /// Window of counted accesses the plan judges by default.
    pub plan_window: Duration,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// What the service has seen of its dependencies, for readiness.
    pub health: Arc<Health>,
    /// Publishes access events.
    pub publisher: Arc<AccessPublisher>,
    /// Whether the events go through the embedded broker (no `KAFKA_BROKERS`).
    pub embedded_events: bool,
    /// Who may call what.
    pub auth: Auth,
    /// Largest object ingest accepts.
    pub max_object_bytes: u64,
    /// Deadline for a response head; longest pause inside an upload.
    pub request_timeout: Duration,
    /// The mover's copy rate, bytes a second, when limited: what a bulk move's
    /// duration is estimated at.
    pub move_bandwidth: Option<u64>,
}

impl AppState {
    /// Refuses a tier name that is not configured with 422.
    fn known_tier(&self, tier: &str) -> Result<(), ApiError> {
        if self.policy.rank(tier).is_some() {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(format!(
                "unknown tier {tier:?}; the tiers are {}",
                self.policy.tier_names().join(",")
            )))
        }
    }
}

/// Checks a requested page size; absent means [`DEFAULT_PAGE_SIZE`].
fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit @ 1..=MAX_PAGE_SIZE) => Ok(limit),
        Some(_) => Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_PAGE_SIZE}"
        ))),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Strata",
        description = "Keeps every object on the right storage tier, automatically. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`; timestamps RFC 3339 UTC; \
                       sizes in bytes. With API_TOKEN set, mutating requests need \
                       `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "objects", description = "Ingest, read and inspect objects"),
        (name = "migrations", description = "Tier moves, one object or in bulk"),
        (name = "rules", description = "Operator rules: pin, floor, ceiling, transition, expire"),
        (name = "tiers", description = "Tiers and the policy"),
        (name = "forecast", description = "Predictions and the models behind them"),
        (name = "system", description = "Health, readiness, metrics, this document"),
    )
)]
struct ApiDoc;

/// Adds the `bearer` security scheme that mutating operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes and their OpenAPI document.
fn routes() -> OpenApiRouter<AppState> {
    let (schemas, paths, ingest_or_list) = routes!(objects::ingest, objects::list_objects);
    // Uploads stream past any body limit; ingest enforces MAX_OBJECT_BYTES itself.
    let ingest_or_list = ingest_or_list.layer(DefaultBodyLimit::disable());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes((schemas, paths, ingest_or_list))
        .routes(routes!(objects::get_object, objects::delete_object))
        .routes(routes!(objects::read_content))
        .routes(routes!(objects::simulate_access))
        .routes(routes!(migrations::request_move))
        .routes(routes!(migrations::list_migrations))
        .routes(routes!(migrations::get_migration))
        .routes(routes!(migrations::cancel_migration))
        .routes(routes!(batches::create_batch))
        .routes(routes!(batches::get_batch))
        .routes(routes!(batches::cancel_batch))
        .routes(routes!(rules::list_rules))
        .routes(routes!(
            rules::get_rule,
            rules::put_rule,
            rules::delete_rule
        ))
        .routes(routes!(rules::list_expirations))
        .routes(routes!(tiers::list_tiers))
        .routes(routes!(tiers::plan))
        .routes(routes!(forecast::get_accesses))
        .routes(routes!(forecast::get_prediction))
        .routes(routes!(forecast::list_models))
        .routes(routes!(forecast::train_model))
        .routes(routes!(forecast::activate_model))
        .routes(routes!(system::status))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
}

/// The OpenAPI document of every route, with the configured `tiers` as the values that
/// tier names may take.
pub fn openapi(tiers: &[&str]) -> serde_json::Value {
    let mut doc = routes().into_openapi();
    doc.paths.paths.insert(
        "/api/v1/openapi.json".into(),
        utoipa::openapi::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("system")
                .summary(Some("This OpenAPI document"))
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("The document")
                        .content(
                            "application/json",
                            utoipa::openapi::ContentBuilder::new()
                                .schema(Some(utoipa::openapi::ObjectBuilder::new()))
                                .build(),
                        ),
                ),
        ),
    );
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    // An empty upload is an empty object, not an error.
    if let Some(body) = doc.pointer_mut("/paths/~1api~1v1~1objects/post/requestBody") {
        body["required"] = false.into();
    }
    // Training settings may be omitted altogether.
    if let Some(body) = doc.pointer_mut("/paths/~1api~1v1~1models~1train/post/requestBody") {
        body["required"] = false.into();
    }
    // The form has exactly the field `file`; ingest refuses any other.
    if let Some(form) = doc.pointer_mut("/components/schemas/IngestForm") {
        form["additionalProperties"] = false.into();
    }
    let names = serde_json::Value::from(tiers.to_vec());
    rules::describe_exactly(&mut doc, &names);
    for schema in ["MoveRequest", "BatchRequest"] {
        if let Some(to_tier) =
            doc.pointer_mut(&format!("/components/schemas/{schema}/properties/to_tier"))
        {
            to_tier["enum"] = names.clone();
        }
    }
    if let Some(parameters) = doc
        .pointer_mut("/paths/~1api~1v1~1objects/get/parameters")
        .and_then(|p| p.as_array_mut())
    {
        for parameter in parameters.iter_mut().filter(|p| p["name"] == "tier") {
            parameter["schema"]["enum"] = names.clone();
        }
    }
    doc
}

/// The service: every route with authentication, body limits and deadlines.
pub fn router(state: AppState) -> axum::Router {
    let (router, _) = routes().split_for_parts();
    let doc = Arc::new(openapi(&state.policy.tier_names()));
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { Json(doc) }),
        )
        .merge(console::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), timed))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn(refuse_nul))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn_with_state(state.clone(), auth::check))
        .with_state(state)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

/// Middleware: times each request to a route to its response head, by method, route
/// (the path template, so ids do not multiply the series) and status.
async fn timed(
    State(state): State<AppState>,
    route: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    state.metrics.record_http_request(
        method.as_str(),
        route.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Middleware: a path or query with an encoded NUL (`%00`) is refused with 400. No id,
/// key or cursor contains one, and PostgreSQL cannot even compare text holding one.
async fn refuse_nul(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let raw = format!("{}?{}", uri.path(), uri.query().unwrap_or_default());
    if raw.to_ascii_lowercase().contains("%00") {
        return ApiError::BadRequest("NUL characters are not allowed in paths or queries".into())
            .into_response();
    }
    next.run(request).await
}

/// Middleware: a request that has no response head after `request_timeout` gets 503.
/// Uploads are exempt; their deadline is per chunk (see `objects::ingest`).
async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let upload = request.method() == Method::POST && request.uri().path() == "/api/v1/objects";
    if upload {
        return next.run(request).await;
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%method, %path, timeout = ?state.request_timeout, "request timed out");
            ApiError::Unavailable(format!(
                "no answer within {:?} (API_REQUEST_TIMEOUT_SECS); a dependency is slow",
                state.request_timeout
            ))
            .into_response()
        }
    }
}

/// Serves the API on `listener` until `shutdown`, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(crate::tcp::without_delay(listener), router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
