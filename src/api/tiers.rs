//! The tiers and the policy's dry run.

use std::collections::HashSet;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::views::{PlanBody, PlannedExpiryBody, TierBody, TierCostBody, TierList, TierServedBody};
use super::{ApiError, AppState, ErrorBody};
use crate::timestamp::format_rfc3339_ms;
use crate::timestamp::now_ms;

/// Bytes per GB in prices (decimal, as cloud providers bill).
pub(super) const BYTES_PER_GB: f64 = 1e9;

/// Per tier: backend, objects, bytes, capacity, the accesses it served lately and what
/// the bytes cost.
#[utoipa::path(
    get,
    path = "/api/v1/tiers",
    tag = "tiers",
    responses(
        (status = 200, description = "The tiers, hottest first", body = TierList),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn list_tiers(State(state): State<AppState>) -> Result<Json<TierList>, ApiError> {
    let usage = state.catalogue.tier_usage(now_ms()).await?;
    let items = state
        .tiers
        .iter()
        .enumerate()
        .map(|(rank, (config, store))| {
            let used = usage.iter().find(|u| u.tier == config.name);
            let bytes = used.map_or(0, |u| u.bytes);
            TierBody {
                name: config.name.clone(),
                rank,
                backend: store.to_string(),
                default: config.name == state.default_tier,
                objects: used.map_or(0, |u| u.objects),
                bytes,
                capacity_bytes: config.capacity_bytes,
                headroom: config.headroom,
                bar_accesses_per_mb: state.policy.bar(rank).map(|per_byte| per_byte * 1e6),
                served: TierServedBody::of(used, &usage),
                promote_above: config.promote_above,
                predict_above: config.predict_above,
                cost: TierCostBody {
                    storage_gb_month: config.costs.storage_gb_month,
                    per_1k_reads: config.costs.per_1k_reads,
                    transfer_gb: config.costs.transfer_gb,
                    storage_per_month: bytes as f64 / BYTES_PER_GB * config.costs.storage_gb_month,
                },
            }
        })
        .collect();
    Ok(Json(TierList { items }))
}

/// Query of `GET /plan`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// Window of counted accesses to judge, seconds; default: the detector window
    /// (DETECTOR_WINDOW_SECS).
    #[param(minimum = 60, maximum = 86400)]
    pub window_secs: Option<u64>,
}

/// Dry run: the moves the policy would queue now, with reasons, without queuing them:
/// the rules' moves and expiries, the promotions the accesses counted in the window call
/// for, and the moves the next forecaster run would queue with the active model (it
/// reads every object, so it takes longer on large catalogues).
#[utoipa::path(
    get,
    path = "/api/v1/plan",
    tag = "tiers",
    params(PlanQuery),
    responses(
        (status = 200, description = "The moves", body = PlanBody),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn plan(
    State(state): State<AppState>,
    query: Result<Query<PlanQuery>, QueryRejection>,
) -> Result<Json<PlanBody>, ApiError> {
    let Query(query) = query?;
    let window = match query.window_secs {
        None => state.plan_window,
        Some(secs @ 60..=86_400) => Duration::from_secs(secs),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "window_secs must be from 60 to 86400".into(),
            ));
        }
    };
    let now = now_ms();
    let since = now - window.as_millis() as i64;
    let rules = state.policy.plan_rules(&state.catalogue, now).await?;
    let mut planned = rules.moves;
    let mut seen: HashSet<String> = planned.iter().map(|p| p.object_id.clone()).collect();
    seen.extend(rules.expiries.iter().map(|e| e.object_id.clone()));
    let mut add = |more: Vec<crate::policy::PlannedMove>| {
        for p in more {
            if seen.insert(p.object_id.clone()) {
                planned.push(p);
            }
        }
    };
    add(state.policy.plan_reactive(&state.catalogue, since).await?);
    let model = state.model.get();
    if let Some(model) = &model {
        add(state
            .policy
            .plan_proactive_now(&state.catalogue, model, now, &rules.bounds)
            .await?);
    }
    Ok(Json(PlanBody {
        since: format_rfc3339_ms(since),
        model_version: model.map(|m| m.version),
        items: planned.into_iter().map(Into::into).collect(),
        expiries: rules
            .expiries
            .into_iter()
            .map(|e| PlannedExpiryBody {
                object_id: e.object_id,
                key: e.key,
                rule_id: e.rule_id,
            })
            .collect(),
    }))
}
