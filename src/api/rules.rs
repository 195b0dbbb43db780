//! Operator rules: list, read, store, delete; and the objects an expire rule deleted.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorBody};
use crate::db::{ExpiredObject, RuleRecord};
use crate::policy::rules::RuleSpec;
use crate::policy::{Policy, StoreRulesError};
use crate::timestamp::format_rfc3339_ms;

/// Objects listed by `GET /rules/{id}/expirations`.
const EXPIRATIONS_SHOWN: i64 = 1000;

/// A stored rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleBody {
    /// The rule, with its id.
    #[serde(flatten)]
    pub rule: RuleSpec,
    /// First stored at, RFC 3339 UTC.
    pub created_at: String,
    /// Last replaced at, RFC 3339 UTC.
    pub updated_at: String,
    /// Whether it holds with this configuration (false: it names a tier no longer
    /// configured, and is not applied).
    pub in_force: bool,
}

/// Every rule, most specific first as they apply; the ones not in force last.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    /// The rules.
    pub items: Vec<RuleBody>,
}

/// An object an expire rule deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiredBody {
    /// Its id.
    pub object_id: String,
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: i64,
    /// The tier it was on.
    pub tier: String,
    /// Created at, RFC 3339 UTC.
    pub created_at: String,
    /// Deleted at, RFC 3339 UTC.
    pub expired_at: String,
}

/// The objects a rule expired, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiredList {
    /// Up to 1,000 of them.
    pub items: Vec<ExpiredBody>,
}

impl From<ExpiredObject> for ExpiredBody {
    fn from(e: ExpiredObject) -> ExpiredBody {
        ExpiredBody {
            object_id: e.object_id,
            bucket: e.bucket,
            key: e.key,
            size: e.size,
            tier: e.tier,
            created_at: format_rfc3339_ms(e.created_at),
            expired_at: format_rfc3339_ms(e.expired_at),
        }
    }
}

impl From<StoreRulesError> for ApiError {
    fn from(err: StoreRulesError) -> ApiError {
        match err {
            StoreRulesError::Invalid(why) => ApiError::BadRequest(why),
            StoreRulesError::Catalogue(e) => e.into(),
        }
    }
}

/// `record` as shown: its document with its id, whether it is in force.
fn body(policy: &Policy, record: RuleRecord) -> Result<RuleBody, ApiError> {
    let spec: RuleSpec = serde_json::from_str(&record.document)
        .map_err(|e| ApiError::Internal(format!("stored rule {} does not read: {e}", record.id)))?;
    Ok(RuleBody {
        in_force: policy.rule_set().get(&record.id).is_some(),
        rule: RuleSpec {
            id: Some(record.id),
            ..spec
        },
        created_at: format_rfc3339_ms(record.created_at),
        updated_at: format_rfc3339_ms(record.updated_at),
    })
}

/// Every rule. When rules conflict, the most specific filter governs: the longest
/// prefix, then the most other criteria, then the id that sorts first; placement rules
/// (pin, floor, ceiling, transition) and expire rules are apart.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    responses(
        (status = 200, description = "The rules", body = RuleList),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn list_rules(State(state): State<AppState>) -> Result<Json<RuleList>, ApiError> {
    let rules = state.policy.load_rules(&state.catalogue).await?;
    let mut records = state.catalogue.rules().await?;
    let order = |id: &str| {
        rules
            .rules()
            .iter()
            .position(|r| r.id == id)
            .unwrap_or(usize::MAX)
    };
    records.sort_by_key(|r| order(&r.id));
    let items = records
        .into_iter()
        .map(|r| body(&state.policy, r))
        .collect::<Result<_, _>>()?;
    Ok(Json(RuleList { items }))
}

/// One rule.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The rule", body = RuleBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn get_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RuleBody>, ApiError> {
    let record = state
        .catalogue
        .rules()
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("rule {id} not found")))?;
    Ok(Json(body(&state.policy, record)?))
}

/// Stores a rule under `id`, replacing any of that id. It is in force at once in this
/// process, and in the others at their next rules pass (`RULES_INTERVAL_SECS`).
#[utoipa::path(
    put,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id: 1 to 64 of A-Z a-z 0-9 . _ -")),
    request_body = RuleSpec,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Replaced", body = RuleBody),
        (status = 201, description = "Created", body = RuleBody),
        (status = 400, description = "Malformed or invalid rule: unknown tier, a filter that selects everything without `all`, negative days, …", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn put_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body_in: Result<Json<RuleSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<RuleBody>), ApiError> {
    let Json(spec) = body_in.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let rule = state
        .policy
        .parse_rule(&id, spec)
        .map_err(ApiError::BadRequest)?;
    let (record, created) = state.catalogue.put_rule(&rule.id, &rule.document()).await?;
    state.policy.load_rules(&state.catalogue).await?;
    tracing::info!(rule = %rule.id, action = rule.spec.action.as_str(), created, "rule stored");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body(&state.policy, record)?)))
}

/// Deletes a rule; objects it held stay where they are until traffic moves them.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.catalogue.delete_rule(&id).await?;
    state.policy.load_rules(&state.catalogue).await?;
    tracing::info!(rule = %id, "rule deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The objects an expire rule deleted, newest first (up to 1,000).
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}/expirations",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The objects", body = ExpiredList),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn list_expirations(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExpiredList>, ApiError> {
    let items = state
        .catalogue
        .expirations(&id, EXPIRATIONS_SHOWN)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(ExpiredList { items }))
}
