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

/// The objects an expire rule deleted, newest first (up to 1,000); those of a rule
/// deleted since stay listed.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}/expirations",
    tag = "rules",
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The objects", body = ExpiredList),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 404, description = "No such rule, and none of that id ever expired an object", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn list_expirations(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExpiredList>, ApiError> {
    let items: Vec<_> = state
        .catalogue
        .expirations(&id, EXPIRATIONS_SHOWN)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    if items.is_empty() && !state.catalogue.rules().await?.iter().any(|r| r.id == id) {
        return Err(ApiError::NotFound(format!("rule {id} not found")));
    }
    Ok(Json(ExpiredList { items }))
}

/// Replaces the derived schemas of rules and filters in the OpenAPI document `doc` with
/// exact ones, so that a request the document allows is one the service takes: a filter
/// names some criterion or is `all` alone; each action has the fields it takes (`tier` one
/// of `tiers`); `PUT`'s body names no id (the path does), and the path's id is a valid one.
pub(super) fn describe_exactly(doc: &mut serde_json::Value, tiers: &serde_json::Value) {
    use serde_json::json;
    let size = json!({"type": ["integer", "null"], "minimum": 0, "maximum": i64::MAX});
    let text = json!({"type": ["string", "null"], "minLength": 1});
    let given = |name: &str, schema: serde_json::Value| json!({"required": [name], "properties": {name: schema}});
    let selector = json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Which objects: every criterion given must hold; `all` alone selects every object.",
        "properties": {
            "prefix": text, "content_type": text, "min_size": size, "max_size": size,
            "all": {"type": "boolean"},
        },
        "oneOf": [
            {
                "required": ["all"],
                "properties": {
                    "all": {"const": true},
                    "prefix": {"type": "null"}, "content_type": {"type": "null"},
                    "min_size": {"type": "null"}, "max_size": {"type": "null"},
                },
            },
            {
                "properties": {"all": {"const": false}},
                "anyOf": [
                    given("prefix", json!({"type": "string"})),
                    given("content_type", json!({"type": "string"})),
                    given("min_size", json!({"type": "integer"})),
                    given("max_size", json!({"type": "integer"})),
                ],
            },
        ],
    });
    let mut tier_or_null = tiers.as_array().cloned().unwrap_or_default();
    tier_or_null.push(serde_json::Value::Null);
    let days = json!({"type": "number", "minimum": 0});
    let rule = |with_id: bool| {
        let mut properties = json!({
            "filter": {"$ref": "#/components/schemas/Selector"},
            "action": {"enum": ["pin", "floor", "ceiling", "transition", "expire"]},
            "tier": {"enum": tier_or_null},
            "after_days": {"type": ["number", "null"], "minimum": 0},
            "since": {"enum": ["last_access", "creation", null]},
        });
        if with_id {
            properties["id"] = json!({"type": ["string", "null"], "pattern": RULE_ID_PATTERN});
        }
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["filter", "action"],
            "properties": properties,
            "oneOf": [
                {
                    "required": ["tier"],
                    "properties": {
                        "action": {"enum": ["pin", "floor", "ceiling"]}, "tier": {"enum": tiers},
                        "after_days": {"type": "null"}, "since": {"type": "null"},
                    },
                },
                {
                    "required": ["tier", "after_days"],
                    "properties": {
                        "action": {"const": "transition"}, "tier": {"enum": tiers},
                        "after_days": days,
                    },
                },
                {
                    "required": ["after_days"],
                    "properties": {
                        "action": {"const": "expire"}, "tier": {"type": "null"},
                        "after_days": days, "since": {"type": "null"},
                    },
                },
            ],
        })
    };
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(|s| s.as_object_mut())
    {
        // A stored rule as shown: the rule's fields with its id, and when it was stored.
        let mut shown = rule(true)["properties"].clone();
        shown["id"] = json!({"type": "string"});
        for name in ["created_at", "updated_at"] {
            shown[name] = json!({"type": "string", "format": "date-time"});
        }
        shown["in_force"] = json!({"type": "boolean"});
        schemas.insert(
            "RuleBody".into(),
            json!({
                "type": "object",
                "required": ["id", "filter", "action", "created_at", "updated_at", "in_force"],
                "properties": shown,
            }),
        );
        schemas.insert("Selector".into(), selector);
        schemas.insert("RuleSpec".into(), rule(true));
        schemas.insert("RuleRequest".into(), rule(false));
    }
    if let Some(body) = doc.pointer_mut(
        "/paths/~1api~1v1~1rules~1{id}/put/requestBody/content/application~1json/schema",
    ) {
        *body = json!({"$ref": "#/components/schemas/RuleRequest"});
    }
    if let Some(parameters) = doc
        .pointer_mut("/paths/~1api~1v1~1rules~1{id}/put/parameters")
        .and_then(|p| p.as_array_mut())
    {
        for parameter in parameters.iter_mut().filter(|p| p["name"] == "id") {
            parameter["schema"]["pattern"] = RULE_ID_PATTERN.into();
        }
    }
}

/// What a rule id may be (see `policy::rules::check_id`).
const RULE_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
