//! The API's one error type and how each case maps to an HTTP status and the JSON body
//! `{"error": {"code", "message"}}` of DESIGN.md.

use std::io;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::content::ContentError;
use crate::db::CatalogueError;
use crate::events::publisher::PublishError;
use crate::policy::MoveRefused;
use crate::storage::StorageError;

/// A failed request. Internal details are logged, never returned.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong bearer token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The upload paused for too long (408).
    #[error("{0}")]
    Timeout(String),
    /// The request contradicts the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The upload is larger than allowed (413).
    #[error("{0}")]
    TooLarge(String),
    /// The requested byte range lies outside the object of this size (416).
    #[error("the range lies outside the object's {0} bytes")]
    RangeNotSatisfiable(u64),
    /// Well-formed but unusable input, such as an unknown tier name (422).
    #[error("{0}")]
    Unprocessable(String),
    /// A dependency is down or overloaded (503).
    #[error("{0}")]
    Unavailable(String),
    /// Something unexpected (500); the message is logged, the client gets a generic one.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `bad_request`, `unauthorized`, `not_found`,
    /// `timeout`, `conflict`, `too_large`, `unprocessable`, `range_not_satisfiable`,
    /// `unavailable` or `internal`.
    pub code: String,
    /// For people.
    pub message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::RangeNotSatisfiable(_) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ApiError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// An error response with `status`, `code` and `message`.
pub fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message,
        },
    };
    (status, Json(body)).into_response()
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
        let mut response = error_response(status, code, message);
        match self {
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RangeNotSatisfiable(size) => {
                if let Ok(value) = HeaderValue::try_from(format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<CatalogueError> for ApiError {
    fn from(err: CatalogueError) -> ApiError {
        match err {
            CatalogueError::NotFound { kind, id } => {
                ApiError::NotFound(format!("{kind} {id} not found"))
            }
            CatalogueError::Conflict(what) => ApiError::Conflict(what),
            CatalogueError::Database(e) => {
                tracing::error!(error = %e, "catalogue database error");
                ApiError::Unavailable("the catalogue database is unavailable".into())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> ApiError {
        match err {
            StorageError::InvalidKey { .. } | StorageError::InvalidRange { .. } => {
                ApiError::BadRequest(err.to_string())
            }
            StorageError::Body(e) => upload_error(e),
            StorageError::NotFound { .. } | StorageError::Backend { .. } => {
                tracing::error!(error = %err, "tier storage error");
                ApiError::Unavailable("a storage tier is unavailable".into())
            }
        }
    }
}

/// Maps a failed read of an upload: the body reader's own limits, else the client.
fn upload_error(err: io::Error) -> ApiError {
    match err.kind() {
        io::ErrorKind::FileTooLarge => ApiError::TooLarge(err.to_string()),
        io::ErrorKind::TimedOut => ApiError::Timeout(err.to_string()),
        _ => ApiError::BadRequest(format!("reading the upload failed: {err}")),
    }
}

impl From<ContentError> for ApiError {
    fn from(err: ContentError) -> ApiError {
        match err {
            ContentError::Catalogue(e) => e.into(),
            ContentError::Storage(e) => e.into(),
            ContentError::Upload(e) => upload_error(e),
            ContentError::RangeNotSatisfiable { size } => ApiError::RangeNotSatisfiable(size),
            ContentError::UnknownTier { .. } => ApiError::Internal(err.to_string()),
        }
    }
}

impl From<MoveRefused> for ApiError {
    fn from(err: MoveRefused) -> ApiError {
        match err {
            MoveRefused::UnknownTier { .. } => ApiError::Unprocessable(err.to_string()),
            MoveRefused::AlreadyThere { .. } => ApiError::Conflict(err.to_string()),
            MoveRefused::Catalogue(e) => e.into(),
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

impl From<JsonRejection> for ApiError {
    fn from(err: JsonRejection) -> ApiError {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(err.body_text())
        } else {
            ApiError::BadRequest(err.body_text())
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(err: QueryRejection) -> ApiError {
        ApiError::BadRequest(err.body_text())
    }
}

impl From<multer::Error> for ApiError {
    fn from(err: multer::Error) -> ApiError {
        ApiError::BadRequest(format!("malformed multipart body: {err}"))
    }
}

impl From<PathRejection> for ApiError {
    fn from(err: PathRejection) -> ApiError {
        ApiError::BadRequest(err.body_text())
    }
}
