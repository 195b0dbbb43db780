//! The HTTP API: the REST resources of DESIGN.md under `/api/v1`, and `/metrics`,
//! `/healthz`, `/readyz` at the root.

mod error;
mod objects;
mod system;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use error::ApiError;

use crate::db::Catalogue;
use crate::events::publisher::AccessPublisher;
use crate::metrics::Metrics;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The catalogue.
    pub catalogue: Catalogue,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes access events; `None` when no broker is configured.
    pub publisher: Option<Arc<AccessPublisher>>,
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route(
            "/api/v1/objects/{id}/access",
            post(objects::simulate_access),
        )
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown`, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
