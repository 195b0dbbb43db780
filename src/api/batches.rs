//! Bulk moves: what moving every object a filter selects to one tier would take (a dry
//! run), queuing it as one batch, its progress, and cancelling what has not started.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tiers::BYTES_PER_GB;
use super::{ApiError, AppState, ErrorBody};
use crate::db::{BatchProgress, BatchRecord};
use crate::policy::rules::Selector;
use crate::timestamp::{format_rfc3339_ms, now_ms};

/// The copy rate a duration is estimated at when `MOVER_BANDWIDTH_BYTES_PER_SEC` sets
/// none: about a 1 Gbit/s link.
const ASSUMED_BANDWIDTH: u64 = crate::simulate::DEFAULT_BANDWIDTH;

/// Body of `POST /migrations/batches`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Which objects (as a rule's filter: `prefix`, `content_type`, `min_size`,
    /// `max_size`, or `all`).
    pub filter: Selector,
    /// Where they go.
    pub to_tier: String,
    /// Only say what it would do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The destination tier's room.
#[derive(Debug, Serialize, ToSchema)]
pub struct CapacityCheck {
    /// Its capacity; `null`: unbounded.
    pub capacity_bytes: Option<u64>,
    /// Bytes on it now.
    pub used_bytes: i64,
    /// Bytes on it once the batch is done.
    pub after_bytes: i64,
    /// Whether that fits its capacity.
    pub fits: bool,
}

/// What a bulk move would do.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchPlan {
    /// The destination.
    pub to_tier: String,
    /// Objects it would move.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects it would move, per tier they are on now.
    pub from_tiers: BTreeMap<String, u64>,
    /// Seconds the copies take at the mover's bandwidth (`MOVER_BANDWIDTH_BYTES_PER_SEC`,
    /// or 100 MB/s when that sets none), one after the other.
    pub estimated_seconds: f64,
    /// The destination's room.
    pub capacity: CapacityCheck,
    /// What the objects' storage costs a month now, at their tiers' prices.
    pub monthly_cost_before: f64,
    /// And on the destination.
    pub monthly_cost_after: f64,
    /// Selected objects on the destination already (left out).
    pub already_there: u64,
    /// Selected objects with a move under way (left out).
    pub moving: u64,
    /// Selected objects a rule keeps off the destination, per rule (left out).
    pub held_by_rules: BTreeMap<String, u64>,
}

/// Objects and bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Amount {
    /// Objects.
    pub objects: i64,
    /// Their bytes.
    pub bytes: i64,
}

impl From<(i64, i64)> for Amount {
    fn from((objects, bytes): (i64, i64)) -> Amount {
        Amount { objects, bytes }
    }
}

/// A queued bulk move and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchBody {
    /// Batch id; its moves carry it as `batch_id`.
    pub id: String,
    /// What was asked.
    pub request: BatchRequest,
    /// Moves queued.
    pub queued: Amount,
    /// Moves completed.
    pub done: Amount,
    /// Moves failed.
    pub failed: Amount,
    /// Moves cancelled.
    pub cancelled: Amount,
    /// Moves queued or running.
    pub remaining: Amount,
    /// Queued at, RFC 3339 UTC.
    pub created_at: String,
    /// Cancelled at, RFC 3339 UTC.
    pub cancelled_at: Option<String>,
}

impl BatchBody {
    fn of(record: BatchRecord, progress: BatchProgress) -> Result<BatchBody, ApiError> {
        let request = serde_json::from_str(&record.document).map_err(|e| {
            ApiError::Internal(format!("stored batch {} does not read: {e}", record.id))
        })?;
        Ok(BatchBody {
            id: record.id,
            request,
            queued: (record.objects_total, record.bytes_total).into(),
            done: progress.done.into(),
            failed: progress.failed.into(),
            cancelled: progress.cancelled.into(),
            remaining: progress.remaining.into(),
            created_at: format_rfc3339_ms(record.created_at),
            cancelled_at: record.cancelled_at.map(format_rfc3339_ms),
        })
    }
}

/// What a batch request answers: its plan (a dry run) or the queued batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchAnswer {
    /// `dry_run`: what it would do.
    Plan(BatchPlan),
    /// Queued.
    Batch(BatchBody),
}

/// Moves every object `filter` selects to `to_tier`, as one batch (reason `manual`,
/// each move carrying the batch's id); with `dry_run`, says what that would do and
/// queues nothing. Objects on the tier already, with a move under way, or kept off it
/// by a rule are left out.
#[utoipa::path(
    post,
    path = "/api/v1/migrations/batches",
    tag = "migrations",
    request_body = BatchRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The plan (dry run)", body = BatchPlan),
        (status = 202, description = "Queued", body = BatchBody),
        (status = 400, description = "Malformed body or filter", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 422, description = "Unknown tier", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn create_batch(
    State(state): State<AppState>,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<BatchAnswer>), ApiError> {
    let Json(request) = body?;
    request.filter.validate().map_err(ApiError::BadRequest)?;
    state.known_tier(&request.to_tier)?;
    let selection = state
        .policy
        .select_for_batch(
            &state.catalogue,
            &request.filter,
            &request.to_tier,
            now_ms(),
        )
        .await?;
    if request.dry_run {
        let plan = plan(&state, &request, &selection).await?;
        return Ok((StatusCode::OK, Json(BatchAnswer::Plan(plan))));
    }
    let id = crate::db::new_id();
    let document = serde_json::to_string(&request).unwrap_or_default();
    let bytes: i64 = selection.objects.iter().map(|o| o.size).sum();
    let objects = i64::try_from(selection.objects.len()).unwrap_or(i64::MAX);
    state
        .catalogue
        .create_batch(&id, &document, &request.to_tier, objects, bytes)
        .await?;
    let (queued, queued_bytes) = state
        .policy
        .queue_batch(&state.catalogue, &id, &request.to_tier, &selection.objects)
        .await?;
    if queued != objects {
        state
            .catalogue
            .set_batch_totals(&id, queued, queued_bytes)
            .await?;
    }
    let body = batch_body(&state, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(BatchAnswer::Batch(body))))
}

/// The plan of `request` for the objects `selection` holds.
async fn plan(
    state: &AppState,
    request: &BatchRequest,
    selection: &crate::policy::BatchSelection,
) -> Result<BatchPlan, ApiError> {
    let price = |tier: &str| {
        state
            .tiers
            .iter()
            .find(|(c, _)| c.name == tier)
            .map_or(0.0, |(c, _)| c.costs.storage_gb_month)
    };
    let mut from_tiers = BTreeMap::new();
    let (mut bytes, mut cost_before) = (0u64, 0.0);
    for object in &selection.objects {
        let size = u64::try_from(object.size).unwrap_or_default();
        bytes += size;
        cost_before += size as f64 / BYTES_PER_GB * price(&object.tier);
        *from_tiers.entry(object.tier.clone()).or_default() += 1;
    }
    let usage = state.catalogue.tier_usage(now_ms()).await?;
    let used_bytes = usage
        .iter()
        .find(|u| u.tier == request.to_tier)
        .map_or(0, |u| u.bytes);
    let after_bytes = used_bytes.saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX));
    let capacity_bytes = state
        .tiers
        .iter()
        .find(|(c, _)| c.name == request.to_tier)
        .and_then(|(c, _)| c.capacity_bytes);
    let bandwidth = state.move_bandwidth.unwrap_or(ASSUMED_BANDWIDTH).max(1);
    Ok(BatchPlan {
        to_tier: request.to_tier.clone(),
        objects: selection.objects.len() as u64,
        bytes,
        from_tiers,
        estimated_seconds: bytes as f64 / bandwidth as f64,
        capacity: CapacityCheck {
            capacity_bytes,
            used_bytes,
            after_bytes,
            fits: capacity_bytes.is_none_or(|c| u64::try_from(after_bytes).unwrap_or(0) <= c),
        },
        monthly_cost_before: cost_before,
        monthly_cost_after: bytes as f64 / BYTES_PER_GB * price(&request.to_tier),
        already_there: selection.already_there,
        moving: selection.moving,
        held_by_rules: selection
            .held_by_rules
            .iter()
            .map(|(rule, n)| (rule.clone(), *n))
            .collect(),
    })
}

async fn batch_body(state: &AppState, id: &str) -> Result<BatchBody, ApiError> {
    let record = state.catalogue.get_batch(id).await?;
    let progress = state.catalogue.batch_progress(id).await?;
    BatchBody::of(record, progress)
}

/// A bulk move's progress: objects and bytes done, failed, cancelled, remaining.
#[utoipa::path(
    get,
    path = "/api/v1/migrations/batches/{id}",
    tag = "migrations",
    params(("id" = String, Path, description = "Batch id")),
    responses(
        (status = 200, description = "The batch", body = BatchBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn get_batch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BatchBody>, ApiError> {
    Ok(Json(batch_body(&state, &id).await?))
}

/// Cancels the batch's moves that have not started; those running finish, and the
/// objects not moved stay where they are.
#[utoipa::path(
    post,
    path = "/api/v1/migrations/batches/{id}/cancel",
    tag = "migrations",
    params(("id" = String, Path, description = "Batch id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = BatchBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn cancel_batch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BatchBody>, ApiError> {
    let cancelled = state.catalogue.cancel_batch(&id).await?;
    tracing::info!(batch = %id, cancelled, "bulk move cancelled");
    Ok(Json(batch_body(&state, &id).await?))
}
