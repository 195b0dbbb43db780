//! Liveness, readiness and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::views::ModelRef;
use super::{ApiError, AppState, ErrorBody};
use crate::db::HOUR_MS;
use crate::health::BrokerLink;
use crate::metrics::{self, Snapshot};
use crate::timestamp::{format_rfc3339_ms, now_ms};

/// Liveness or readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `ok` (liveness), `ready` or `not_ready`.
    pub status: String,
    /// Why the service is not ready, one line per dependency or task (readiness only;
    /// empty when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
    /// Each dependency's state (readiness only).
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
    /// The event broker as this process's consumer sees it.
    pub broker: BrokerBody,
    /// Each tier, hottest first.
    pub tiers: Vec<TierHealth>,
}

/// The event broker as the consumer sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokerBody {
    /// `up`, `connecting` (not reached since the start) or `down`.
    pub state: String,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Partitions of the access topic this process reads.
    pub partitions: usize,
}

/// One tier's backend, probed at most every few seconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierHealth {
    /// The tier.
    pub name: String,
    /// `up` or `down`.
    pub state: String,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "Alive", body = HealthBody)))]
pub async fn healthz() -> Json<HealthBody> {
    Json(HealthBody {
        status: "ok".into(),
        problems: None,
        dependencies: None,
    })
}

/// Readiness: each dependency's real state (the catalogue, the broker, every tier) and
/// the background tasks; 503 naming what is down.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "A dependency is down or a task stopped", body = HealthBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let readiness = state.health.check(&state.catalogue, &state.tiers).await;
    let problems = readiness.problems();
    let ready = problems.is_empty();
    let up_or_down = |up: bool| if up { "up" } else { "down" }.to_string();
    let (broker_state, reason) = match readiness.broker.link {
        BrokerLink::Up => ("up", None),
        BrokerLink::Connecting => ("connecting", None),
        BrokerLink::Down(why) => ("down", Some(why)),
    };
    let body = HealthBody {
        status: if ready { "ready" } else { "not_ready" }.into(),
        dependencies: Some(Dependencies {
            catalogue: up_or_down(readiness.catalogue.is_ok()),
            events: if state.embedded_events {
                "embedded"
            } else {
                "configured"
            }
            .into(),
            broker: BrokerBody {
                state: broker_state.into(),
                reason,
                partitions: readiness.broker.partitions,
            },
            tiers: readiness
                .tiers
                .into_iter()
                .map(|(name, probe)| TierHealth {
                    name,
                    state: up_or_down(probe.is_ok()),
                    reason: probe.err(),
                })
                .collect(),
        }),
        problems: Some(problems),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text: the process counters, and what the catalogue holds.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let usage = state
        .catalogue
        .tier_usage(crate::timestamp::now_ms())
        .await?;
    let migrations = state.catalogue.move_counts().await?;
    let tables = state.catalogue.table_sizes().await?;
    let mut text = String::new();
    state.metrics.render(&mut text);
    let mut now = Snapshot::default();
    let label = |name: &'static str, value: &str| vec![(name, value.to_string())];
    let rows = now.gauges(
        "strata_table_rows",
        "Rows per catalogue table (PostgreSQL: its planner's estimate)",
    );
    let table_bytes = now.gauges(
        "strata_table_bytes",
        "Bytes per catalogue table with its indexes (PostgreSQL)",
    );
    for t in &tables {
        rows.get_or_create(&label("table", t.table)).set(t.rows);
        if let Some(bytes) = t.bytes {
            table_bytes
                .get_or_create(&label("table", t.table))
                .set(bytes);
        }
    }
    let objects = now.gauges("strata_tier_objects", "Objects stored per tier");
    let bytes = now.gauges("strata_tier_bytes", "Bytes stored per tier");
    let served = now.gauges(
        "strata_tier_accesses_served",
        "Accesses each tier served over the last hour or day (window), each counted for the tier its object was on when it was counted",
    );
    for u in &usage {
        objects
            .get_or_create(&label("tier", &u.tier))
            .set(u.objects);
        bytes.get_or_create(&label("tier", &u.tier)).set(u.bytes);
        for (window, hits) in [("1h", u.accesses_last_hour), ("1d", u.accesses_last_day)] {
            served
                .get_or_create(&vec![("tier", u.tier.clone()), ("window", window.into())])
                .set(hits);
        }
    }
    let capacity = now.gauges(
        "strata_tier_capacity_bytes",
        "Configured capacity per tier (tiers with one)",
    );
    let bar = now.float_gauges(
        "strata_tier_bar_accesses_per_mb",
        "Density an object must beat to enter a full tier filled by rank (expected accesses over the forecast horizon per MB), as this process last placed it",
    );
    for (rank, (config, _)) in state.tiers.iter().enumerate() {
        if let Some(bytes) = config.capacity_bytes {
            capacity
                .get_or_create(&label("tier", &config.name))
                .set(bytes.min(i64::MAX as u64) as i64);
        }
        if let Some(density) = state.policy.bar(rank) {
            bar.get_or_create(&label("tier", &config.name))
                .set(density * 1e6);
        }
    }
    let moves = now.gauges("strata_migrations", "Migrations by status and reason");
    for (status, reason, n) in &migrations {
        moves
            .get_or_create(&vec![
                ("status", status.as_str().to_string()),
                ("reason", reason.as_str().to_string()),
            ])
            .set(*n);
    }
    now.render(&mut text);
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text))
}

/// What the service is doing now, at a glance: cheap to ask every few seconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    /// The access event pipeline of this process.
    pub events: EventsBody,
    /// Moves waiting and running, and failures in the last hour.
    pub moves: MoveActivityBody,
    /// The forecast model in use, if any.
    pub model: Option<ModelRef>,
    /// What keeps the service from being ready, as `/readyz` lists it (empty when
    /// ready).
    pub problems: Vec<String>,
    /// When this was read (RFC 3339).
    pub at: String,
}

/// The access event pipeline of this process; rates are the differences of these
/// counters between two reads.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsBody {
    /// Events counted into the catalogue since the process started.
    pub consumed: u64,
    /// Messages read from the broker since the process started.
    pub read: u64,
    /// Consumer lag: messages on the assigned partitions not read yet.
    pub lag: i64,
}

/// Moves waiting and running now, and failures lately.
#[derive(Debug, Serialize, ToSchema)]
pub struct MoveActivityBody {
    /// Queued, not started.
    pub pending: i64,
    /// Copying bytes.
    pub copying: i64,
    /// Verifying a copy.
    pub verifying: i64,
    /// Failed for good in the last hour.
    pub failed_last_hour: i64,
}

/// The service at a glance: events counted and lag, moves under way and failing, the
/// model in use, what keeps it from being ready. Reads no more than the queue's index
/// (and the dependencies' probes, which are cached for a few seconds).
#[utoipa::path(get, path = "/api/v1/status", tag = "system",
    responses(
        (status = 200, description = "The service now", body = StatusBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ))]
pub async fn status(State(state): State<AppState>) -> Result<Json<StatusBody>, ApiError> {
    let now = now_ms();
    let moves = state.catalogue.move_activity(now - HOUR_MS).await?;
    let problems = state
        .health
        .check(&state.catalogue, &state.tiers)
        .await
        .problems();
    Ok(Json(StatusBody {
        events: EventsBody {
            consumed: state.metrics.events_consumed(),
            read: state.metrics.events_read(),
            lag: state.metrics.consumer_lag(),
        },
        moves: MoveActivityBody {
            pending: moves.pending,
            copying: moves.copying,
            verifying: moves.verifying,
            failed_last_hour: moves.failed,
        },
        model: state.model.get().map(|model| ModelRef::from(&*model)),
        problems,
        at: format_rfc3339_ms(now),
    }))
}
