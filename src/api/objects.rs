//! Object resources.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::db::now_ms;

/// Most simulated accesses one request may publish.
const MAX_SIMULATED_ACCESSES: u64 = 100_000;

/// Body of `POST /objects/{id}/access`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateAccess {
    /// How many reads to simulate.
    pub count: u64,
}

/// Simulates `count` reads of an object by publishing that many access events; 202.
pub async fn simulate_access(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<SimulateAccess>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !(1..=MAX_SIMULATED_ACCESSES).contains(&body.count) {
        return Err(ApiError::BadRequest(format!(
            "count must be from 1 to {MAX_SIMULATED_ACCESSES}"
        )));
    }
    let object = state.catalogue.get_object(&id).await?;
    let publisher = state.publisher.as_ref().ok_or_else(|| {
        ApiError::Unavailable("no event broker is configured (KAFKA_BROKERS)".into())
    })?;
    publisher.publish_reads(&object.id, body.count, now_ms())?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"object_id": object.id, "published": body.count})),
    ))
}
