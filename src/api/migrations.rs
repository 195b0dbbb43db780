//! Migration resources: manual moves, the history and queue, progress, cancellation.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::views::{MigrationBody, MigrationPage};
use super::{ApiError, AppState, ErrorBody};
use crate::db::{MoveFilter, MoveReason};

/// Body of `POST /objects/{id}/migrations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Destination tier, such as `onprem`.
    pub to_tier: String,
}

/// Queues a move of the object to another tier (reason `manual`).
#[utoipa::path(
    post,
    path = "/api/v1/objects/{id}/migrations",
    tag = "migrations",
    params(("id" = String, Path, description = "Object id")),
    request_body = MoveRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Queued", body = MigrationBody),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody),
        (status = 409, description = "Already on that tier, or a move is under way", body = ErrorBody),
        (status = 422, description = "Unknown tier", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn request_move(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<MoveRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<MigrationBody>), ApiError> {
    let Json(body) = body?;
    let migration = state
        .policy
        .request_move(&state.catalogue, &id, &body.to_tier, MoveReason::Manual)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(migration.into())))
}

/// Query of `GET /migrations`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMigrationsQuery {
    /// Only moves of this object.
    #[param(pattern = r"^[^\x00]*$")]
    pub object_id: Option<String>,
    /// Only moves in this status.
    #[param(pattern = "^(pending|copying|verifying|completed|failed|cancelled)$")]
    pub status: Option<String>,
    /// Only moves for this reason.
    #[param(
        pattern = "^(manual|rule|reactive_access_spike|proactive_prediction|capacity_rebalance)$"
    )]
    pub reason: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    #[param(pattern = r"^[^\x00]*$")]
    pub after: Option<String>,
}

/// The queue and the history of moves, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/migrations",
    tag = "migrations",
    params(ListMigrationsQuery),
    responses(
        (status = 200, description = "One page", body = MigrationPage),
        (status = 400, description = "Malformed query, unknown status or reason", body = ErrorBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn list_migrations(
    State(state): State<AppState>,
    query: Result<Query<ListMigrationsQuery>, QueryRejection>,
) -> Result<Json<MigrationPage>, ApiError> {
    let Query(query) = query?;
    let filter = MoveFilter {
        object_id: query.object_id,
        status: query
            .status
            .map(|s| s.parse())
            .transpose()
            .map_err(ApiError::BadRequest)?,
        reason: query
            .reason
            .map(|s| s.parse())
            .transpose()
            .map_err(ApiError::BadRequest)?,
    };
    let limit = super::page_size(query.limit)?;
    let page = state
        .catalogue
        .list_moves(&filter, limit, query.after.as_deref())
        .await?;
    Ok(Json(page.into()))
}

/// One move with its progress.
#[utoipa::path(
    get,
    path = "/api/v1/migrations/{id}",
    tag = "migrations",
    params(("id" = String, Path, description = "Migration id")),
    responses(
        (status = 200, description = "The move", body = MigrationBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 404, description = "No such migration", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn get_migration(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MigrationBody>, ApiError> {
    Ok(Json(state.catalogue.get_move(&id).await?.into()))
}

/// Cancels a pending or running move; the object stays readable where it was, and the
/// mover removes any partial copy.
#[utoipa::path(
    post,
    path = "/api/v1/migrations/{id}/cancel",
    tag = "migrations",
    params(("id" = String, Path, description = "Migration id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = MigrationBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such migration", body = ErrorBody),
        (status = 409, description = "The move has already finished", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn cancel_migration(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MigrationBody>, ApiError> {
    let migration = state.catalogue.cancel_move(&id).await?;
    tracing::info!(migration = %migration.id, object = %migration.object_id, "move cancelled on request");
    Ok(Json(migration.into()))
}
