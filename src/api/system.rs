//! Liveness, readiness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody};

/// Liveness or readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` (liveness), `ready` or `not_ready`.
    pub status: String,
    /// Each dependency's state (readiness only): the catalogue `up` or `down`, events
    /// `configured` or `embedded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
}

/// Each dependency's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dependencies {
    /// `up` or `down`.
    pub catalogue: String,
    /// `configured` (`KAFKA_BROKERS`) or `embedded` (the in-process broker).
    pub events: String,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "Alive", body = HealthBody)))]
pub async fn healthz() -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok".into(),
        dependencies: None,
    })
}

/// Readiness: each dependency's state; 503 when the catalogue cannot be read.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "A dependency is down", body = HealthBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let catalogue = state.catalogue.ping().await.is_ok();
    let status = if catalogue {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let events = if state.embedded_events {
        "embedded"
    } else {
        "configured"
    };
    (
        status,
        Json(HealthBody {
            status: if catalogue { "ready" } else { "not_ready" }.into(),
            dependencies: Some(Dependencies {
                catalogue: if catalogue { "up" } else { "down" }.into(),
                events: events.into(),
            }),
        }),
    )
}

/// Prometheus text: the process counters, and what the catalogue holds.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    use std::fmt::Write;
    let usage = state.catalogue.tier_usage(crate::db::now_ms()).await?;
    let migrations = state.catalogue.migration_counts().await?;
    let mut page = String::new();
    state.metrics.render(&mut page);
    let _ = writeln!(
        page,
        "# HELP strata_tier_objects Objects stored per tier.\n# TYPE strata_tier_objects gauge"
    );
    for u in &usage {
        let _ = writeln!(
            page,
            "strata_tier_objects{{tier=\"{}\"}} {}",
            u.tier, u.objects
        );
    }
    let _ = writeln!(
        page,
        "# HELP strata_tier_bytes Bytes stored per tier.\n# TYPE strata_tier_bytes gauge"
    );
    for u in &usage {
        let _ = writeln!(page, "strata_tier_bytes{{tier=\"{}\"}} {}", u.tier, u.bytes);
    }
    let _ = writeln!(
        page,
        "# HELP strata_tier_accesses_served Accesses each tier served over the last hour or day (window), each counted for the tier its object was on when it was counted.\n# TYPE strata_tier_accesses_served gauge"
    );
    for u in &usage {
        for (window, hits) in [("1h", u.accesses_last_hour), ("1d", u.accesses_last_day)] {
            let _ = writeln!(
                page,
                "strata_tier_accesses_served{{tier=\"{}\",window=\"{window}\"}} {hits}",
                u.tier
            );
        }
    }
    let _ = writeln!(
        page,
        "# HELP strata_tier_capacity_bytes Configured capacity per tier (tiers with one).\n# TYPE strata_tier_capacity_bytes gauge"
    );
    for (config, _) in state.tiers.iter() {
        if let Some(capacity) = config.capacity_bytes {
            let _ = writeln!(
                page,
                "strata_tier_capacity_bytes{{tier=\"{}\"}} {capacity}",
                config.name
            );
        }
    }
    let _ = writeln!(
        page,
        "# HELP strata_tier_bar_accesses_per_mb Density an object must beat to enter a full tier filled by rank (expected accesses over the forecast horizon per MB), as this process last placed it.\n# TYPE strata_tier_bar_accesses_per_mb gauge"
    );
    for (rank, (config, _)) in state.tiers.iter().enumerate() {
        if let Some(bar) = state.policy.bar(rank) {
            let _ = writeln!(
                page,
                "strata_tier_bar_accesses_per_mb{{tier=\"{}\"}} {}",
                config.name,
                bar * 1e6
            );
        }
    }
    let _ = writeln!(
        page,
        "# HELP strata_migrations Migrations by status and reason.\n# TYPE strata_migrations gauge"
    );
    for (status, reason, n) in &migrations {
        let _ = writeln!(
            page,
            "strata_migrations{{status=\"{}\",reason=\"{}\"}} {n}",
            status.as_str(),
            reason.as_str()
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page))
}
