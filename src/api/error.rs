//! The API's one error type and how each case maps to an HTTP status and the JSON body
//! `{"error": {"code", "message"}}` of DESIGN.md.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::db::CatalogueError;
use crate::events::publisher::PublishError;

/// A failed request. Internal details are logged, never returned.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// A dependency is down or overloaded (503).
    #[error("{0}")]
    Unavailable(String),
    /// Something unexpected (500); the message is logged, the client gets a generic one.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                "internal error; see the service log".to_string()
            }
            other => other.to_string(),
        };
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

impl From<CatalogueError> for ApiError {
    fn from(err: CatalogueError) -> ApiError {
        match err {
            CatalogueError::NotFound { kind, id } => {
                ApiError::NotFound(format!("{kind} {id} not found"))
            }
            CatalogueError::Database(e) => {
                tracing::error!(error = %e, "catalogue database error");
                ApiError::Unavailable("the catalogue database is unavailable".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<PublishError> for ApiError {
    fn from(err: PublishError) -> ApiError {
        match err {
            PublishError::QueueFull { .. } => ApiError::Unavailable(format!("{err}; retry later")),
            PublishError::Kafka(e) => {
                tracing::error!(error = %e, "publishing access events failed");
                ApiError::Unavailable("the event broker is unavailable".into())
            }
        }
    }
}
