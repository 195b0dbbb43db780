//! The policy: which tier an object belongs on, given what the detector or the
//! forecaster saw, and turning that into queued moves.
//!
//! A tier with a capacity (`TIER_<NAME>_CAPACITY_BYTES`) is filled by rank against that
//! capacity ([`placement`]): the forecaster's run fills it densest first with the moves
//! that pay for themselves, and a spike is admitted when it beats the tier's bar.
//!
//! Tiers are ordered hottest first. Each tier without a capacity may have a reactive threshold
//! (`TIER_<NAME>_PROMOTE_ABOVE`, accesses per detector window) and a proactive one
//! (`TIER_<NAME>_PREDICT_ABOVE`, predicted accesses over the forecast horizon).
//! A spike promotes an object to the hottest tier whose threshold its burst passed and
//! never demotes. A forecast places an object on the hottest tier whose threshold the
//! prediction passes, or back on the default tier when it passes none; it demotes only
//! below a share of the current tier's threshold (hysteresis) and not soon after the
//! object last moved, so that it neither flaps nor undoes what a spike just did.
//!
//! Operator [`rules`] bound all of it: no decision puts an object on a tier its
//! governing rule does not allow, and a pass over the objects the rules select
//! ([`Policy::rules_pass`]) moves those that are not where their rule says, with reason
//! `rule`, and finds those an expire rule has due.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

mod batches;
pub mod placement;
mod proactive;
pub mod rules;
mod rules_pass;

pub use batches::BatchSelection;
pub use proactive::ProactiveRun;
pub use rules_pass::{Bounds, Expiry, RulesPlan, StoreRulesError};

use crate::config::Config;
use crate::db::{
    Catalogue, CatalogueError, MoveCause, MoveFilter, MoveReason, MoveRecord, NewMove, ObjectRecord,
};
use crate::detector::Spike;
use crate::forecast::ObjectForecast;
use placement::{Candidate, Pace, Placed, Standing, TierLimit, may_pay};
pub use placement::{ENTRY_COST_ACCESSES, MOVE_COST_ACCESSES};
use rules::{Allowed, RuleSet};

#[derive(Debug, Clone, PartialEq)]
struct TierRule {
    name: String,
    promote_above: Option<u64>,
    predict_above: Option<f64>,
}

/// Tier order and thresholds, from the configuration.
#[derive(Debug)]
pub struct Policy {
    /// Hottest first.
    tiers: Vec<TierRule>,
    /// What ranked placement needs of each tier, hottest first.
    limits: Vec<TierLimit>,
    default_tier: usize,
    hysteresis: f64,
    min_residence_ms: i64,
    /// The detector's window, which a spike's count is over.
    burst_window_ms: i64,
    /// Bytes an hour ranked placement may move; `None`: no limit.
    move_budget: Option<u64>,
    /// The last forecaster run's placement in this process, which spikes are admitted
    /// against; `None` before the first ranked run (or in a process without forecast
    /// shard 0).
    standing: Mutex<Option<Standing<String>>>,
    /// The operator rules, as last read from the catalogue.
    rules: RwLock<Arc<RuleSet>>,
    /// The objects a rule bounded at the last rules pass, by id: what the forecaster's
    /// runs keep to (spikes ask the rules themselves).
    bounds: Mutex<Arc<Bounds>>,
    /// The length of a rule's day, ms.
    day_ms: i64,
}

impl Policy {
    /// The policy of `config`'s tiers.
    pub fn new(config: &Config) -> Policy {
        Policy {
            tiers: config
                .tiers
                .iter()
                .map(|t| TierRule {
                    name: t.name.clone(),
                    promote_above: t.promote_above,
                    predict_above: t.predict_above,
                })
                .collect(),
            limits: config
                .tiers
                .iter()
                .map(|t| TierLimit {
                    capacity: t.capacity_bytes,
                    headroom: t.headroom,
                    floor: t.capacity_bytes.and(t.predict_above),
                })
                .collect(),
            default_tier: config
                .tiers
                .iter()
                .position(|t| t.name == config.default_tier)
                .unwrap_or(config.tiers.len().saturating_sub(1)),
            hysteresis: config.forecast.hysteresis,
            min_residence_ms: i64::try_from(config.forecast.min_residence.as_millis())
                .unwrap_or(i64::MAX),
            burst_window_ms: i64::try_from(config.detector.window.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            move_budget: config.forecast.move_budget_bytes_per_hour.or_else(|| {
                let bounded = config.tiers.iter().filter_map(|t| t.capacity_bytes);
                bounded.clone().next().map(|_| bounded.sum())
            }),
            standing: Mutex::new(None),
            rules: RwLock::default(),
            bounds: Mutex::default(),
            day_ms: i64::try_from(config.rules.day.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
        }
    }

    /// The promotion thresholds, for the detector's levels.
    pub fn promotion_levels(&self) -> Vec<u64> {
        self.tiers.iter().filter_map(|t| t.promote_above).collect()
    }

    /// Position of `tier` in the order, 0 the hottest.
    pub fn rank(&self, tier: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == tier)
    }

    /// Where a burst of `recent` accesses should take an object now on `current`: the
    /// hottest tier whose threshold it passed, when that is hotter than `current`.
    pub fn reactive_target(&self, current: &str, recent: u64) -> Option<&str> {
        let current_rank = self.rank(current).unwrap_or(self.tiers.len());
        self.threshold_target(current_rank, recent, false, Allowed::ANY)
            .map(|rank| self.tiers[rank].name.as_str())
    }

    /// The hottest `allowed` tier whose reactive threshold `recent` passes, when hotter
    /// than `current`; tiers with a capacity are passed over when `ranked`.
    fn threshold_target(
        &self,
        current: usize,
        recent: u64,
        ranked: bool,
        allowed: Allowed,
    ) -> Option<usize> {
        self.tiers
            .iter()
            .zip(&self.limits)
            .enumerate()
            .position(|(rank, (t, limit))| {
                allowed.allows(rank)
                    && !(ranked && limit.capacity.is_some())
                    && t.promote_above.is_some_and(|t| recent > t)
            })
            .filter(|&rank| rank < current)
    }

    /// The density (expected accesses over the horizon per byte) an object must beat to
    /// enter tier `rank` while it is full, as this process's last forecaster run placed
    /// it; `None` for an unbounded or empty tier, or before such a run.
    pub fn bar(&self, rank: usize) -> Option<f64> {
        self.standing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|standing| standing.bar(rank))
    }

    /// Whether an object on tier `tier`, with a move under way to `moving_to`, valued at
    /// `value` over `horizon_ms` and `day_rate` per horizon over the last day, takes part
    /// in ranked placement: every object on or moving to a tier with a capacity (its
    /// bytes count there), and any other that could pay for its place (leaving the rest
    /// out keeps the ranking to the objects in play).
    pub fn in_play(
        &self,
        tier: usize,
        moving_to: Option<usize>,
        value: f64,
        day_rate: f64,
        horizon_ms: i64,
    ) -> bool {
        let bounded = |t: usize| self.limits.get(t).is_some_and(|l| l.capacity.is_some());
        bounded(tier) || moving_to.is_some_and(bounded) || may_pay(value, day_rate, horizon_ms)
    }

    /// Whether some tier is filled by rank against its capacity.
    pub fn is_ranked(&self) -> bool {
        self.limits.iter().any(|l| l.capacity.is_some())
    }

    /// The moves a burst of `recent` accesses within the detector's window calls for, for the object
    /// `key` of `size` bytes on tier `current`: admitted against `standing` (the last
    /// forecaster run's placement) into the hottest tier with a capacity whose bar it
    /// beats, with the demotions that make room; else promoted by the thresholds of the
    /// tiers without one (of every tier, when there is no standing yet). Only to a tier
    /// the rules have `allowed`.
    pub fn admit_burst<K: Clone + Ord>(
        &self,
        standing: Option<&mut Standing<K>>,
        key: &K,
        current: usize,
        size: u64,
        recent: u64,
        allowed: Allowed,
    ) -> Vec<Placed<K>> {
        let ranked = standing.is_some();
        if let Some(standing) = standing
            && let Some(moves) =
                standing.admit(key, current, size, recent, self.burst_window_ms, allowed)
        {
            return moves;
        }
        self.threshold_target(current, recent, ranked, allowed)
            .map(|to| Placed {
                key: key.clone(),
                from: current,
                to,
                size,
                value: recent as f64,
                reason: MoveReason::ReactiveAccessSpike,
            })
            .into_iter()
            .collect()
    }

    /// Ranked placement of `candidates` (values over `horizon_ms`) at `now_ms`: the moves
    /// into tiers with a capacity, and the standing later bursts are admitted against.
    /// The move budget and the tiers' turnover carry over from the `previous` run's
    /// standing.
    pub fn place<K: Clone + Ord>(
        &self,
        candidates: &[Candidate<K>],
        horizon_ms: i64,
        now_ms: i64,
        previous: Option<&Standing<K>>,
    ) -> (Vec<Placed<K>>, Standing<K>) {
        let pace = previous.map_or_else(|| Pace::new(self.move_budget), |s| s.pace().clone());
        let largest = candidates.iter().map(|c| c.size).max().unwrap_or_default();
        Standing::plan(
            &self.limits,
            candidates,
            horizon_ms,
            pace.at(now_ms, largest),
        )
    }

    /// The hottest tier without a capacity whose proactive threshold `predicted` passes.
    fn passed_rank(&self, predicted: f64) -> Option<usize> {
        self.tiers.iter().zip(&self.limits).position(|(t, limit)| {
            limit.capacity.is_none() && t.predict_above.is_some_and(|t| predicted > t)
        })
    }

    /// The tier a prediction of `predicted` accesses calls for, ignoring where the
    /// object is: the hottest tier whose proactive threshold it passes, else the
    /// default tier.
    pub fn predicted_tier(&self, predicted: f64) -> &str {
        let rank = self.passed_rank(predicted).unwrap_or(self.default_tier);
        &self.tiers[rank].name
    }

    /// Where a prediction should take an object on `current` whose tier or content last
    /// changed at `updated_at`, as of `now_ms`; `None` to leave it. Promotes to the
    /// hottest tier whose threshold the prediction passes when that is hotter. Demotes
    /// only an object above the default tier, on a tier with a proactive threshold,
    /// whose prediction fell below `hysteresis` times that threshold, and that has
    /// stayed put for the minimum residence; it goes to the
    /// [`predicted_tier`](Policy::predicted_tier).
    pub fn proactive_target(
        &self,
        current: &str,
        updated_at: i64,
        predicted: f64,
        now_ms: i64,
    ) -> Option<&str> {
        let current_rank = self.rank(current)?;
        if let Some(passed) = self.passed_rank(predicted)
            && passed < current_rank
        {
            return Some(&self.tiers[passed].name);
        }
        // Only a push from a denser object moves one off a tier with a capacity.
        if self.limits[current_rank].capacity.is_some() {
            return None;
        }
        let threshold = self.tiers[current_rank].predict_above?;
        let wanted = self.passed_rank(predicted).unwrap_or(self.default_tier);
        let demote = wanted > current_rank
            && current_rank < self.default_tier
            && predicted < self.hysteresis * threshold
            && now_ms.saturating_sub(updated_at) >= self.min_residence_ms;
        demote.then(|| self.tiers[wanted].name.as_str())
    }

    /// The moves the forecasts call for, most predicted first, each to the tier nearest
    /// its target that the object's rule (in `bounds`) allows.
    pub fn plan_proactive(
        &self,
        forecasts: &[ObjectForecast<'_>],
        now_ms: i64,
        bounds: &Bounds,
    ) -> Vec<PlannedMove> {
        let mut planned: Vec<PlannedMove> = forecasts
            .iter()
            .filter_map(|f| {
                let to = self.proactive_target(f.tier, f.updated_at, f.predicted, now_ms)?;
                let to = match bounds.get(f.object_id) {
                    Some(bound) => {
                        let to = bound.allowed.clamp(self.rank(to)?);
                        let to = &self.tiers.get(to)?.name;
                        (to != f.tier).then_some(to.as_str())?
                    }
                    None => to,
                };
                Some(PlannedMove {
                    object_id: f.object_id.to_string(),
                    key: None,
                    from_tier: f.tier.to_string(),
                    to_tier: to.to_string(),
                    reason: MoveReason::ProactivePrediction,
                    recent_accesses: None,
                    predicted_accesses: Some(f.predicted),
                    benefit_accesses: None,
                    bytes: None,
                    rule_id: None,
                })
            })
            .collect();
        planned.sort_by(|a, b| {
            b.predicted_accesses
                .unwrap_or_default()
                .total_cmp(&a.predicted_accesses.unwrap_or_default())
        });
        planned
    }

    /// Queues the moves a spike calls for, if any: its promotion, and on a full tier with
    /// a capacity the demotions that make room. Returns the queued promotion's id;
    /// `None` when the object is already hot enough, gone, or has a move under way.
    pub async fn act_on_spike(
        &self,
        catalogue: &Catalogue,
        spike: &Spike,
    ) -> Result<Option<String>, CatalogueError> {
        let object = match catalogue.get_object(&spike.object_id).await {
            Ok(object) => object,
            Err(CatalogueError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(current) = self.rank(&object.tier) else {
            return Ok(None);
        };
        // The object is being read: no transition since its last access is due.
        let allowed = self
            .bound(&object, Some(spike.at_ms), spike.at_ms)
            .map_or(Allowed::ANY, |b| b.allowed);
        let moves = {
            let mut standing = self.standing.lock().unwrap_or_else(PoisonError::into_inner);
            self.admit_burst(
                standing.as_mut(),
                &object.id,
                current,
                u64::try_from(object.size).unwrap_or_default(),
                spike.recent,
                allowed,
            )
        };
        if moves.is_empty() {
            tracing::debug!(object = %object.id, tier = %object.tier, recent = spike.recent, "spike on an object already hot enough");
            return Ok(None);
        }
        let mut promotion = None;
        for placed in &moves {
            let record = if placed.key == object.id {
                object.clone()
            } else {
                match catalogue.get_object(&placed.key).await {
                    Ok(record) => record,
                    Err(CatalogueError::NotFound { .. }) => continue,
                    Err(e) => return Err(e),
                }
            };
            let (from, to) = (&self.tiers[placed.from].name, &self.tiers[placed.to].name);
            if record.tier != *from {
                continue;
            }
            match catalogue
                .enqueue_move(&move_of(&record, to, placed.reason))
                .await
            {
                Ok(migration) => {
                    tracing::info!(
                        object = %record.id,
                        %from,
                        %to,
                        reason = %placed.reason,
                        recent = spike.recent,
                        baseline = format!("{:.1}", spike.baseline),
                        migration = %migration.id,
                        "access spike: move queued"
                    );
                    if placed.key == object.id {
                        promotion = Some(migration.id);
                    }
                }
                Err(CatalogueError::Conflict(_) | CatalogueError::NotFound { .. }) => {
                    tracing::debug!(object = %record.id, "spike: the object has a move under way; left alone");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(promotion)
    }
}

/// Why a requested move was not queued.
#[derive(Debug, thiserror::Error)]
pub enum MoveRefused {
    /// No tier of that name is configured.
    #[error("unknown tier {tier:?}; the tiers are {known}")]
    UnknownTier {
        /// The name asked for.
        tier: String,
        /// The configured tiers, hottest first.
        known: String,
    },
    /// The object is on that tier already.
    #[error("object {id} is already on tier {tier}")]
    AlreadyThere {
        /// The object.
        id: String,
        /// Its tier.
        tier: String,
    },
    /// The catalogue refused (unknown object, a move already under way) or failed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// A move the policy would queue now.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMove {
    /// The object.
    pub object_id: String,
    /// Its key, when the plan read it.
    pub key: Option<String>,
    /// Its tier now.
    pub from_tier: String,
    /// Where it would go.
    pub to_tier: String,
    /// Why.
    pub reason: MoveReason,
    /// For a reactive move: accesses counted over the window the decision looked at.
    pub recent_accesses: Option<u64>,
    /// For a proactive move: accesses predicted over the forecast horizon.
    pub predicted_accesses: Option<f64>,
    /// For a move of ranked placement: what it is worth, accesses over the horizon
    /// served from the hotter tier (negative for a demotion: what the object takes
    /// away). It is made only when its promotion's worth, less its demotions' and their
    /// noise, held over the object's expected stay, exceeds [`ENTRY_COST_ACCESSES`].
    pub benefit_accesses: Option<f64>,
    /// For a move of ranked placement: the bytes it copies.
    pub bytes: Option<u64>,
    /// For a move a rule calls for: the rule.
    pub rule_id: Option<String>,
}

impl Policy {
    /// Queues a move of `object_id` to `to_tier` for `reason`, as asked by a user.
    pub async fn request_move(
        &self,
        catalogue: &Catalogue,
        object_id: &str,
        to_tier: &str,
        reason: MoveReason,
    ) -> Result<MoveRecord, MoveRefused> {
        if self.rank(to_tier).is_none() {
            return Err(MoveRefused::UnknownTier {
                tier: to_tier.into(),
                known: self.tier_names().join(","),
            });
        }
        let object = catalogue.get_object(object_id).await?;
        if object.tier == to_tier {
            return Err(MoveRefused::AlreadyThere {
                id: object.id,
                tier: object.tier,
            });
        }
        let migration = catalogue
            .enqueue_move(&move_of(&object, to_tier, reason))
            .await?;
        tracing::info!(object = %object.id, from = %object.tier, to = %to_tier, %reason, migration = %migration.id, "move queued on request");
        Ok(migration)
    }

    /// The reactive moves the policy would queue now from the counted accesses since
    /// `since_ms`, without queuing them: objects whose recent accesses pass a hotter
    /// tier's threshold and that have no move under way.
    pub async fn plan_reactive(
        &self,
        catalogue: &Catalogue,
        since_ms: i64,
    ) -> Result<Vec<PlannedMove>, CatalogueError> {
        let mut planned = Vec::new();
        for (object_id, hits) in catalogue.recent_hits(since_ms).await? {
            let recent = hits.max(0) as u64;
            let object = match catalogue.get_object(&object_id).await {
                Ok(object) => object,
                Err(CatalogueError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let Some(current) = self.rank(&object.tier) else {
                continue;
            };
            let now = crate::timestamp::now_ms();
            let allowed = self
                .bound(&object, Some(now), now)
                .map_or(Allowed::ANY, |b| b.allowed);
            let Some(target) = self
                .threshold_target(current, recent, false, allowed)
                .map(|rank| self.tiers[rank].name.as_str())
            else {
                continue;
            };
            let busy = catalogue
                .list_moves(
                    &MoveFilter {
                        object_id: Some(object.id.clone()),
                        ..MoveFilter::default()
                    },
                    1,
                    None,
                )
                .await?
                .items
                .first()
                .is_some_and(|m| m.status.is_active());
            if !busy {
                planned.push(PlannedMove {
                    to_tier: target.to_string(),
                    object_id: object.id,
                    key: Some(object.key),
                    from_tier: object.tier,
                    reason: MoveReason::ReactiveAccessSpike,
                    recent_accesses: Some(recent),
                    predicted_accesses: None,
                    benefit_accesses: None,
                    bytes: None,
                    rule_id: None,
                });
            }
        }
        planned.sort_by_key(|p| std::cmp::Reverse(p.recent_accesses));
        Ok(planned)
    }

    /// Queues a planned move (of the forecaster or of a rule) if the object is still
    /// where the plan saw it.
    /// Returns the queued migration; `None` when the object moved, is gone, or has a
    /// move under way (the next run decides again).
    pub async fn enqueue_planned(
        &self,
        catalogue: &Catalogue,
        planned: &PlannedMove,
    ) -> Result<Option<MoveRecord>, CatalogueError> {
        let object = match catalogue.get_object(&planned.object_id).await {
            Ok(object) if object.tier == planned.from_tier => object,
            Ok(_) | Err(CatalogueError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let cause = MoveCause {
            rule_id: planned.rule_id.clone(),
            batch_id: None,
        };
        match catalogue
            .enqueue_caused_move(&move_of(&object, &planned.to_tier, planned.reason), &cause)
            .await
        {
            Ok(migration) => {
                tracing::info!(
                    object = %object.id,
                    from = %object.tier,
                    to = %planned.to_tier,
                    predicted = planned.predicted_accesses.map(|p| format!("{p:.1}")),
                    rule = planned.rule_id,
                    migration = %migration.id,
                    reason = %planned.reason,
                    "move queued"
                );
                Ok(Some(migration))
            }
            Err(CatalogueError::Conflict(_) | CatalogueError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Tier names, hottest first.
    pub fn tier_names(&self) -> Vec<&str> {
        self.tiers.iter().map(|t| t.name.as_str()).collect()
    }
}

/// The queue entry for moving `object` as it is now to `to_tier`.
fn move_of(object: &ObjectRecord, to_tier: &str, reason: MoveReason) -> NewMove {
    NewMove {
        object_id: object.id.clone(),
        object_version: object.version,
        from_tier: object.tier.clone(),
        to_tier: to_tier.to_string(),
        reason,
        bytes_total: object.size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let tier = |name: &str, promote_above, predict_above| TierRule {
            name: name.into(),
            promote_above,
            predict_above,
        };
        Policy {
            tiers: vec![
                tier("onprem", Some(100), Some(50.0)),
                tier("private", Some(20), Some(10.0)),
                tier("public", None, None),
            ],
            default_tier: 2,
            limits: vec![
                TierLimit {
                    capacity: None,
                    headroom: 0.0,
                    floor: None,
                };
                3
            ],
            hysteresis: 0.5,
            min_residence_ms: 1000,
            burst_window_ms: 60_000,
            move_budget: None,
            standing: Mutex::new(None),
            rules: RwLock::default(),
            bounds: Mutex::default(),
            day_ms: 86_400_000,
        }
    }

    #[test]
    fn forecasts_promote_at_once_and_demote_with_hysteresis_after_residence() {
        let p = policy();
        let long_ago = 0;
        let now = 10_000;
        assert_eq!(p.predicted_tier(60.0), "onprem");
        assert_eq!(p.predicted_tier(10.0), "public", "thresholds are exclusive");
        assert_eq!(
            p.proactive_target("public", now, 11.0, now),
            Some("private")
        );
        assert_eq!(p.proactive_target("public", now, 51.0, now), Some("onprem"));
        assert_eq!(p.proactive_target("public", long_ago, 3.0, now), None);
        // On onprem (threshold 50): 30 is below the threshold but above half of it.
        assert_eq!(p.proactive_target("onprem", long_ago, 30.0, now), None);
        assert_eq!(
            p.proactive_target("onprem", long_ago, 20.0, now),
            Some("private")
        );
        assert_eq!(
            p.proactive_target("onprem", long_ago, 0.5, now),
            Some("public")
        );
        // Just moved: no demotion yet, but promotion is never held back.
        assert_eq!(p.proactive_target("onprem", now - 10, 0.5, now), None);
        assert_eq!(
            p.proactive_target("private", now - 10, 80.0, now),
            Some("onprem")
        );
        assert_eq!(
            p.proactive_target("private", long_ago, 4.0, now),
            Some("public")
        );
        assert_eq!(p.proactive_target("private", long_ago, 6.0, now), None);
        assert_eq!(p.proactive_target("archive", long_ago, 80.0, now), None);
    }

    #[test]
    fn a_tier_the_forecaster_never_fills_is_left_alone() {
        let mut p = policy();
        p.tiers[0].predict_above = None;
        assert_eq!(p.predicted_tier(1000.0), "private");
        assert_eq!(p.proactive_target("onprem", 0, 0.0, 10_000), None);
        // Objects on the default tier or colder are never pulled anywhere by a low forecast.
        p.default_tier = 1;
        assert_eq!(p.proactive_target("public", 0, 0.0, 10_000), None);
    }

    #[test]
    fn spikes_promote_to_the_hottest_tier_passed() {
        let p = policy();
        assert_eq!(p.reactive_target("public", 150), Some("onprem"));
        assert_eq!(p.reactive_target("public", 30), Some("private"));
        assert_eq!(
            p.reactive_target("public", 20),
            None,
            "thresholds are exclusive"
        );
        assert_eq!(p.reactive_target("private", 30), None, "already there");
        assert_eq!(p.reactive_target("onprem", 30), None, "never a demotion");
        assert_eq!(p.reactive_target("private", 101), Some("onprem"));
        assert_eq!(p.promotion_levels(), [100, 20]);
    }
}
