//! The resource shapes of DESIGN.md as they appear on the wire: RFC 3339 UTC
//! timestamps, sizes in bytes, lists as `{"items": [...], "next": CURSOR_OR_NULL}`.

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{ModelRecord, MoveRecord, ObjectView, Page, TierUsage};
use crate::forecast::capture::{CAPTURE_SHARES, CaptureScores};
use crate::forecast::{Model, Scores};
use crate::policy::{MOVE_COST_ACCESSES, PlannedMove};
use crate::timestamp::format_rfc3339_ms;

/// A stored object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectBody {
    /// Object id (UUIDv7).
    pub id: String,
    /// The S3 endpoint's bucket it is in (objects ingested here go to the first of
    /// `S3_BUCKETS`).
    pub bucket: String,
    /// User-facing name, unique in its bucket; the S3 endpoint's key.
    pub key: String,
    /// Size in bytes.
    pub size: i64,
    /// MIME type given at ingest.
    pub content_type: String,
    /// Checksum of the content, `blake3:<hex>`; also its ETag at `/objects/{id}/content`.
    pub checksum: String,
    /// MD5 of the content (hex) when its writer declared one (a `Content-MD5` on a
    /// one-request put through the S3 endpoint), which the tier checked: the S3
    /// endpoint's ETag then. Null otherwise.
    pub md5: Option<String>,
    /// Tier holding the bytes now.
    pub tier: String,
    /// Content version; every rewrite bumps it.
    pub version: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Last change of content or tier, RFC 3339 UTC.
    pub updated_at: String,
    /// Counted accesses.
    pub access: AccessBody,
    /// The forecaster's latest stored prediction; null before its first, and while it
    /// predicts nothing for an object it never stored one for.
    pub prediction: Option<StoredPredictionBody>,
    /// What `strata check` found wrong with this version's bytes and could not repair
    /// from another copy (the finding's problem as JSON, e.g. `{"kind":"missing"}`);
    /// null when nothing was found.
    pub damage: Option<String>,
}

/// The forecaster's latest stored prediction for an object.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredPredictionBody {
    /// Predicted accesses over the horizon.
    pub predicted_accesses: f64,
    /// The horizon, hours, after the hour the prediction was made in.
    pub horizon_hours: i64,
    /// The tier the prediction calls for.
    pub tier: String,
    /// Version of the model that made it.
    pub model_version: i64,
    /// When, RFC 3339 UTC.
    pub predicted_at: String,
}

/// Counted accesses of an object over bucket-aligned windows ending now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessBody {
    /// In the current clock minute.
    pub last_minute: i64,
    /// In the last 60 clock minutes.
    pub last_hour: i64,
    /// In the last 24 clock hours.
    pub last_day: i64,
    /// Ever.
    pub total: i64,
    /// Last counted access, RFC 3339 UTC; null before the first.
    pub last_access_at: Option<String>,
}

impl From<ObjectView> for ObjectBody {
    fn from(view: ObjectView) -> ObjectBody {
        let ObjectView {
            object,
            access,
            prediction,
            damage,
        } = view;
        ObjectBody {
            id: object.id,
            bucket: object.bucket,
            key: object.key,
            size: object.size,
            content_type: object.content_type,
            checksum: object.checksum,
            md5: object.md5,
            tier: object.tier,
            version: object.version,
            created_at: format_rfc3339_ms(object.created_at),
            updated_at: format_rfc3339_ms(object.updated_at),
            access: AccessBody {
                last_minute: access.last_minute,
                last_hour: access.last_hour,
                last_day: access.last_day,
                total: access.total,
                last_access_at: access.last_access_at.map(format_rfc3339_ms),
            },
            prediction: prediction.map(|p| StoredPredictionBody {
                predicted_accesses: p.predicted_accesses,
                horizon_hours: p.horizon_hours,
                tier: p.predicted_tier,
                model_version: p.model_version,
                predicted_at: format_rfc3339_ms(p.predicted_at),
            }),
            damage,
        }
    }
}

/// A tier move, queued, running or finished.
#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationBody {
    /// Migration id (UUIDv7).
    pub id: String,
    /// The object moved.
    pub object_id: String,
    /// Tier it was on when the move was queued.
    pub from_tier: String,
    /// Destination tier.
    pub to_tier: String,
    /// `manual`, `rule`, `reactive_access_spike`, `proactive_prediction` or
    /// `capacity_rebalance`.
    pub reason: String,
    /// For reason `rule`: the rule that called for it.
    pub rule_id: Option<String>,
    /// For a bulk move: its batch.
    pub batch_id: Option<String>,
    /// `pending`, `copying`, `verifying`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// Copy attempts started.
    pub attempts: i64,
    /// Bytes copied in the current attempt.
    pub bytes_copied: i64,
    /// Bytes to copy.
    pub bytes_total: i64,
    /// Last error; null when none.
    pub error: Option<String>,
    /// Queued at, RFC 3339 UTC.
    pub created_at: String,
    /// First copy attempt started at; null while queued.
    pub started_at: Option<String>,
    /// Reached its final status at; null while active.
    pub finished_at: Option<String>,
}

impl From<MoveRecord> for MigrationBody {
    fn from(m: MoveRecord) -> MigrationBody {
        MigrationBody {
            id: m.id,
            object_id: m.object_id,
            from_tier: m.from_tier,
            to_tier: m.to_tier,
            reason: m.reason.to_string(),
            rule_id: m.rule_id,
            batch_id: m.batch_id,
            status: m.status.to_string(),
            attempts: m.attempts,
            bytes_copied: m.bytes_copied,
            bytes_total: m.bytes_total,
            error: m.error,
            created_at: format_rfc3339_ms(m.created_at),
            started_at: m.started_at.map(format_rfc3339_ms),
            finished_at: m.finished_at.map(format_rfc3339_ms),
        }
    }
}

/// One page of objects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectPage {
    /// The objects, in creation order.
    pub items: Vec<ObjectBody>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// One page of migrations.
#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationPage {
    /// The migrations, newest first.
    pub items: Vec<MigrationBody>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

impl From<Page<ObjectView>> for ObjectPage {
    fn from(page: Page<ObjectView>) -> ObjectPage {
        ObjectPage {
            items: page.items.into_iter().map(ObjectBody::from).collect(),
            next: page.next,
        }
    }
}

impl From<Page<MoveRecord>> for MigrationPage {
    fn from(page: Page<MoveRecord>) -> MigrationPage {
        MigrationPage {
            items: page.items.into_iter().map(MigrationBody::from).collect(),
            next: page.next,
        }
    }
}

/// A move the policy would queue now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedMoveBody {
    /// The object.
    pub object_id: String,
    /// Its key; null for proactive moves.
    pub key: Option<String>,
    /// The rule a `rule` move keeps.
    pub rule_id: Option<String>,
    /// Its tier now.
    pub from_tier: String,
    /// Where it would go.
    pub to_tier: String,
    /// `rule`, `reactive_access_spike`, `proactive_prediction` or `capacity_rebalance`.
    pub reason: String,
    /// Reactive moves: accesses counted over the window the decision looked at.
    pub recent_accesses: Option<u64>,
    /// Proactive moves: accesses predicted over the model's horizon.
    pub predicted_accesses: Option<f64>,
    /// Moves of ranked placement (tiers with a capacity): what the move is worth,
    /// accesses over the horizon served from the hotter tier; negative for a
    /// `capacity_rebalance` demotion (what it takes away from the promotion it makes
    /// room for). A promotion is planned only when its worth, less that of its
    /// demotions and their noise, held over the object's expected stay, exceeds two
    /// moves (its way in and, one day, out).
    pub expected_benefit_accesses: Option<f64>,
    /// Moves of ranked placement: what the move costs, in accesses (its copy reads the
    /// object once).
    pub cost_accesses: Option<f64>,
    /// Moves of ranked placement: bytes it copies.
    pub bytes: Option<u64>,
}

impl From<PlannedMove> for PlannedMoveBody {
    fn from(p: PlannedMove) -> PlannedMoveBody {
        PlannedMoveBody {
            object_id: p.object_id,
            key: p.key,
            rule_id: p.rule_id,
            from_tier: p.from_tier,
            to_tier: p.to_tier,
            reason: p.reason.to_string(),
            recent_accesses: p.recent_accesses,
            predicted_accesses: p.predicted_accesses,
            cost_accesses: p.benefit_accesses.map(|_| MOVE_COST_ACCESSES),
            expected_benefit_accesses: p.benefit_accesses,
            bytes: p.bytes,
        }
    }
}

/// The dry run of the policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanBody {
    /// Start of the window of counted accesses the plan looked at, RFC 3339 UTC.
    pub since: String,
    /// Version of the model the proactive part used; null when no model is active
    /// (then the plan has reactive moves only).
    pub model_version: Option<i64>,
    /// The moves: the rules' first (objects not where their rule keeps them), then
    /// reactive ones, busiest object first, then the forecaster run's: ranked
    /// placement's in the order it places them (each promotion after the demotions
    /// making room for it), then the thresholds', most predicted first. An object has
    /// one move at most.
    pub items: Vec<PlannedMoveBody>,
    /// Objects the next rules pass deletes.
    pub expiries: Vec<PlannedExpiryBody>,
}

/// An object an expire rule has due.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlannedExpiryBody {
    /// The object.
    pub object_id: String,
    /// Its key.
    pub key: String,
    /// The rule.
    pub rule_id: String,
}

/// One tier with what it holds and costs.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierBody {
    /// Tier name.
    pub name: String,
    /// 0 is the hottest tier.
    pub rank: usize,
    /// Where its bytes live: `s3://BUCKET` or `file:///DIR`.
    pub backend: String,
    /// Whether new objects land here.
    pub default: bool,
    /// Objects on it.
    pub objects: i64,
    /// Their total size, bytes.
    pub bytes: i64,
    /// Configured capacity in bytes; null when unlimited.
    pub capacity_bytes: Option<u64>,
    /// Share of the capacity the forecaster leaves free for bursts.
    pub headroom: f64,
    /// For a tier filled by rank: the density an object must beat to enter it while it
    /// is full (its least dense resident's expected accesses over the forecast horizon
    /// per MB), as this process's last forecaster run placed it; null when unbounded,
    /// empty, or not placed by this process.
    pub bar_accesses_per_mb: Option<f64>,
    /// Accesses it served in the last hour and day, and their share of all tiers'.
    pub served: TierServedBody,
    /// Accesses in the detector window above which a spike promotes to this tier; null
    /// when spikes never promote here.
    pub promote_above: Option<u64>,
    /// Predicted accesses over the forecast horizon above which the forecaster places
    /// objects on this tier; null when it never does.
    pub predict_above: Option<f64>,
    /// Configured prices and what the stored bytes cost.
    pub cost: TierCostBody,
}

/// Accesses one tier served lately: each counted for the tier its object was on when it
/// was counted. The share of the hottest tier is the live counterpart of the
/// simulator's HOT HIT.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierServedBody {
    /// Accesses in the last 60 minutes.
    pub last_hour: i64,
    /// Their share of every tier's accesses in that hour; null when there were none.
    pub share_last_hour: Option<f64>,
    /// Accesses in the last 24 hours.
    pub last_day: i64,
    /// Their share of every tier's accesses in that day; null when there were none.
    pub share_last_day: Option<f64>,
}

impl TierServedBody {
    /// What `usage` says of one tier, with the shares of the totals of all tiers.
    pub fn of(usage: Option<&TierUsage>, all: &[TierUsage]) -> TierServedBody {
        let share = |of: fn(&TierUsage) -> i64| {
            let total: i64 = all.iter().map(of).sum();
            (total > 0).then(|| usage.map_or(0, of) as f64 / total as f64)
        };
        TierServedBody {
            last_hour: usage.map_or(0, |u| u.accesses_last_hour),
            share_last_hour: share(|u| u.accesses_last_hour),
            last_day: usage.map_or(0, |u| u.accesses_last_day),
            share_last_day: share(|u| u.accesses_last_day),
        }
    }
}

/// Prices of a tier and the monthly storage cost of what it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierCostBody {
    /// Price per GB-month stored.
    pub storage_gb_month: f64,
    /// Price per 1,000 reads.
    pub per_1k_reads: f64,
    /// Price per GB transferred out.
    pub transfer_gb: f64,
    /// `bytes` priced per GB-month (GB = 10^9 bytes).
    pub storage_per_month: f64,
}

/// The tiers, hottest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TierList {
    /// The tiers.
    pub items: Vec<TierBody>,
}

/// Answer to a simulated access.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessAccepted {
    /// The object.
    pub object_id: String,
    /// Access events published.
    pub published: u64,
}

/// A prediction for one object, made now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PredictionBody {
    /// The object.
    pub object_id: String,
    /// Its tier now.
    pub tier: String,
    /// Predicted accesses over the horizon that follows the hour in progress.
    pub predicted_accesses: f64,
    /// How: `steady_rate`, the object's long-run mean, when its hours look like a
    /// steady stream; else `model`, the model's prediction from the features below.
    pub basis: String,
    /// The horizon, hours.
    pub horizon_hours: usize,
    /// The tier this prediction calls for.
    pub predicted_tier: String,
    /// Where the forecaster would move the object now (hysteresis and residence
    /// applied); null to leave it.
    pub proactive_move: Option<String>,
    /// The model that made it.
    pub model: ModelRef,
    /// The features with the largest effect on the prediction, largest first.
    pub top_features: Vec<FeatureBody>,
    /// When, RFC 3339 UTC.
    pub predicted_at: String,
}

/// Which model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelRef {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: i64,
}

impl From<&Model> for ModelRef {
    fn from(model: &Model) -> ModelRef {
        ModelRef {
            name: model.name.clone(),
            version: model.version,
        }
    }
}

/// One feature's part in a prediction.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureBody {
    /// Feature name.
    pub name: String,
    /// Its value now.
    pub value: f64,
    /// Coefficient times value: what it adds to ln(1 + predicted accesses).
    pub contribution: f64,
}

/// Prediction errors on accesses per horizon.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoresBody {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Coefficient of determination.
    pub r2: f64,
}

impl From<Scores> for ScoresBody {
    fn from(s: Scores) -> ScoresBody {
        ScoresBody {
            mae: s.mae,
            rmse: s.rmse,
            r2: s.r2,
        }
    }
}

/// A model's evaluation on its held-out most recent hours.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationBody {
    /// The model.
    pub model: ScoresBody,
    /// Baseline: the next hours look like the last one.
    pub persistence: ScoresBody,
    /// Baseline: the next hours look like the average hour of the last day.
    pub moving_average: ScoresBody,
    /// Whether the model beats both baselines on MAE and RMSE.
    pub beats_baselines: bool,
    /// How well it ranks objects for placement; null for models from before it was
    /// measured.
    pub capture: Option<CaptureBody>,
}

/// Capture: per tier size (a share of all the bytes), the share of the accesses that
/// followed drawn by the objects a forecast ranks densest, filling that share, on each
/// held-out hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureBody {
    /// The tier sizes, shares of all the bytes: 0.01, 0.02, 0.10.
    pub byte_shares: Vec<f64>,
    /// The model's capture at each.
    pub model: Vec<f64>,
    /// The persistence baseline's.
    pub persistence: Vec<f64>,
    /// The moving-average baseline's.
    pub moving_average: Vec<f64>,
    /// The true ranking's: the best reachable.
    pub best: Vec<f64>,
    /// The model's over the best.
    pub ratio: Vec<f64>,
    /// Whether the model captures at least as much as the better baseline at every size.
    pub beats_baselines: bool,
}

impl From<CaptureScores> for CaptureBody {
    fn from(c: CaptureScores) -> CaptureBody {
        CaptureBody {
            byte_shares: CAPTURE_SHARES.to_vec(),
            model: c.model.to_vec(),
            persistence: c.persistence.to_vec(),
            moving_average: c.moving_average.to_vec(),
            best: c.best.to_vec(),
            ratio: c.ratio().to_vec(),
            beats_baselines: c.beats_baselines(),
        }
    }
}

/// A registered model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelBody {
    /// Registry id.
    pub id: String,
    /// Model name.
    pub name: String,
    /// Model version (training time, epoch ms).
    pub version: i64,
    /// Whether the forecaster uses it.
    pub active: bool,
    /// RFC 3339 UTC.
    pub trained_at: String,
    /// `log_linear` or `poisson`; null when the document is unusable.
    pub kind: Option<String>,
    /// Hours ahead it predicts; null when the document is unusable.
    pub horizon_hours: Option<usize>,
    /// Examples trained on; null when the document is unusable.
    pub train_rows: Option<usize>,
    /// Examples evaluated on; null when the document is unusable.
    pub eval_rows: Option<usize>,
    /// Evaluation; null when the document is unusable.
    pub evaluation: Option<EvaluationBody>,
    /// Why the document cannot be used; null when it can.
    pub problem: Option<String>,
}

impl From<ModelRecord> for ModelBody {
    fn from(record: ModelRecord) -> ModelBody {
        let parsed = Model::parse(&record.document, &format!("registry id {}", record.id));
        let model = parsed.as_ref().ok();
        ModelBody {
            kind: model.map(|m| m.kind.as_str().to_string()),
            horizon_hours: model.map(|m| m.horizon_hours),
            train_rows: model.map(|m| m.training.train_rows),
            eval_rows: model.map(|m| m.training.eval_rows),
            evaluation: model.map(|m| EvaluationBody {
                model: m.evaluation.model.into(),
                persistence: m.evaluation.persistence.into(),
                moving_average: m.evaluation.moving_average.into(),
                beats_baselines: m.evaluation.beats_baselines(),
                capture: m.evaluation.capture.map(Into::into),
            }),
            problem: parsed.as_ref().err().map(ToString::to_string),
            id: record.id,
            name: record.name,
            version: record.version,
            active: record.active,
            trained_at: format_rfc3339_ms(record.trained_at),
        }
    }
}

/// Registered models, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// The models.
    pub items: Vec<ModelBody>,
}

/// Answer to a training request.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingAccepted {
    /// Always `training`: the model is trained in the background and appears under
    /// `/models` when done (the log says how it went).
    pub status: String,
    /// Name the model will have.
    pub name: String,
}

/// An object's accesses per hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessHistoryBody {
    /// The object.
    pub object_id: String,
    /// Oldest first; the last is the hour in progress.
    pub hours: Vec<HourAccessesBody>,
}

/// Accesses counted in one hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct HourAccessesBody {
    /// Start of the hour (RFC 3339).
    pub start: String,
    /// Accesses counted in it.
    pub accesses: i64,
}
