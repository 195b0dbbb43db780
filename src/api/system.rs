//! Liveness, readiness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, AppState};

/// Liveness: the process answers.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: each dependency's state; 503 when the catalogue cannot be read.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let catalogue = state.catalogue.tier_usage().await.is_ok();
    let status = if catalogue {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let events = if state.publisher.is_some() {
        "configured"
    } else {
        "disabled"
    };
    (
        status,
        Json(json!({
            "status": if catalogue { "ready" } else { "not_ready" },
            "dependencies": {"catalogue": if catalogue { "up" } else { "down" }, "events": events},
        })),
    )
}

/// Prometheus text: the process counters, and what the catalogue holds.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    use std::fmt::Write;
    let usage = state.catalogue.tier_usage().await?;
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
