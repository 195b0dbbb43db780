//! The forecaster's side of the policy: one run predicts every object, queues the moves
//! the predictions call for (by rank against capacity where tiers have one, by threshold
//! elsewhere) and stores the predictions that changed.

use std::collections::{HashMap, HashSet};
use std::sync::PoisonError;

use super::placement::{Candidate, Placed};
use super::rules::Allowed;
use super::{Bounds, PlannedMove, Policy};
use crate::db::{Catalogue, CatalogueError, HOUR_MS, StoredPrediction};
use crate::forecast::{Model, Shards, Tracker};

/// What one forecaster run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProactiveRun {
    /// Objects predicted.
    pub predicted: usize,
    /// Moves queued.
    pub queued: usize,
}

impl Policy {
    /// One forecaster run over the objects of `shards`: brings `tracker` up to date
    /// (loading it when `None` or of other shards), predicts with `model`, stores the
    /// predictions that changed and queues the moves they call for. Where tiers are
    /// filled by rank, the holder of every shard ranks from its own state, and otherwise
    /// the holder of shard 0 ranks every object from the values the shards stored.
    pub async fn proactive_run(
        &self,
        catalogue: &Catalogue,
        model: &Model,
        tracker: &mut Option<Tracker>,
        shards: &Shards,
        now_ms: i64,
    ) -> Result<ProactiveRun, CatalogueError> {
        let started = std::time::Instant::now();
        let fresh = match tracker.as_mut() {
            Some(t) if t.shards() == shards => !t.update(catalogue, now_ms).await?,
            _ => true,
        };
        if fresh {
            *tracker = Some(Tracker::load(catalogue, now_ms, shards.clone()).await?);
        }
        let Some(tracker) = tracker.as_mut() else {
            return Ok(ProactiveRun {
                predicted: 0,
                queued: 0,
            });
        };
        let read_ms = started.elapsed().as_millis() as u64;
        let forecasts = tracker.forecast(model, now_ms);
        let predicted = forecasts.len();
        let predict_ms = started.elapsed().as_millis() as u64 - read_ms;
        let bounds = self.last_bounds();
        let thresholds = self.plan_proactive(&forecasts, now_ms, &bounds);
        let made: Vec<StoredPrediction> = forecasts
            .iter()
            .map(|f| StoredPrediction {
                object_id: f.object_id.to_string(),
                predicted_accesses: f.predicted,
                value: f.value,
                variance: f.variance,
                day_rate: f.day_rate,
                horizon_hours: model.horizon_hours as i64,
                predicted_tier: self.predicted_tier(f.predicted).to_string(),
                model_version: model.version,
                predicted_at: now_ms,
            })
            .collect();
        // Stored before ranking: a ranking from the stored values reads this run's.
        let store = tracker.to_store(made);
        let stored = store.len();
        catalogue.save_predictions(&store).await?;
        let store_ms = started.elapsed().as_millis() as u64 - read_ms - predict_ms;
        let horizon_ms = model.horizon_ms();
        let ranked = self
            .ranked_candidates(catalogue, tracker, &bounds, horizon_ms)
            .await?;
        let planned = self.with_ranked(ranked, thresholds, horizon_ms, now_ms, false);
        let mut queued = 0;
        for planned in &planned {
            match self.enqueue_planned(catalogue, planned).await? {
                Some(_) => queued += 1,
                None => {
                    if matches!(
                        catalogue.get_object(&planned.object_id).await,
                        Err(CatalogueError::NotFound { .. })
                    ) {
                        tracker.forget(&planned.object_id);
                    }
                }
            }
        }
        if fresh || predicted > 0 {
            tracing::debug!(
                fresh,
                predicted,
                stored,
                queued,
                read_ms,
                predict_ms,
                store_ms,
                rank_and_queue_ms =
                    started.elapsed().as_millis() as u64 - read_ms - predict_ms - store_ms,
                "forecast run's parts"
            );
        }
        Ok(ProactiveRun { predicted, queued })
    }

    /// What this process ranks, with tiers filled by rank: every object `tracker`
    /// follows when it holds every shard, every object in the catalogue as the shards
    /// stored it when it holds shard 0 only; `None` otherwise, or without such tiers.
    /// (`tracker` is taken `mut` only because a shared borrow of it, full of cells, would
    /// make the future not `Send`.)
    async fn ranked_candidates(
        &self,
        catalogue: &Catalogue,
        tracker: &mut Tracker,
        bounds: &Bounds,
        horizon_ms: i64,
    ) -> Result<Option<Vec<Candidate<String>>>, CatalogueError> {
        let shards = tracker.shards();
        Ok(if !self.is_ranked() {
            None
        } else if shards.is_all() {
            let moving = objects_moving(catalogue).await?;
            Some(self.tracked_candidates(tracker, &moving, bounds, horizon_ms))
        } else if shards.places() {
            Some(
                self.stored_candidates(catalogue, bounds, horizon_ms)
                    .await?,
            )
        } else {
            None
        })
    }

    /// Every object `tracker` follows that takes part in ranked placement (see
    /// [`Policy::in_play`]); those in `moving`, object id to the tier a move under way
    /// takes it to, stay where they are, those in `bounds` within the tiers their rules
    /// allow.
    pub fn tracked_candidates(
        &self,
        tracker: &Tracker,
        moving: &HashMap<String, String>,
        bounds: &Bounds,
        horizon_ms: i64,
    ) -> Vec<Candidate<String>> {
        tracker
            .values()
            .filter_map(|v| {
                self.candidate(
                    v.object_id,
                    v.tier,
                    moving.get(v.object_id).map(String::as_str),
                    (v.size_bytes, v.value, v.variance, v.day_rate),
                    bounds,
                    horizon_ms,
                )
            })
            .collect()
    }

    /// [`Policy::tracked_candidates`] for every object in the catalogue, valued as the
    /// forecast shards last stored it (at nothing before any did).
    async fn stored_candidates(
        &self,
        catalogue: &Catalogue,
        bounds: &Bounds,
        horizon_ms: i64,
    ) -> Result<Vec<Candidate<String>>, CatalogueError> {
        let mut candidates = Vec::new();
        let bounded: Vec<&str> = self
            .tiers
            .iter()
            .zip(&self.limits)
            .filter(|(_, limit)| limit.capacity.is_some())
            .map(|(tier, _)| tier.name.as_str())
            .collect();
        catalogue
            .for_each_stored_value(&bounded, |v| {
                candidates.extend(self.candidate(
                    &v.object_id,
                    &v.tier,
                    v.moving_to.as_deref(),
                    (v.size_bytes, v.value, v.variance, v.day_rate),
                    bounds,
                    horizon_ms,
                ));
            })
            .await?;
        Ok(candidates)
    }

    /// The object `id` on `tier` as ranked placement sees it, of `(size, value,
    /// variance, day_rate)`; `None` when it takes no part (see [`Policy::in_play`]).
    fn candidate(
        &self,
        id: &str,
        tier: &str,
        moving_to: Option<&str>,
        (size, value, variance, day_rate): (u64, f64, f64, f64),
        bounds: &Bounds,
        horizon_ms: i64,
    ) -> Option<Candidate<String>> {
        let tier = self.rank(tier)?;
        let moving_to = moving_to.and_then(|to| self.rank(to));
        self.in_play(tier, moving_to, value, day_rate, horizon_ms)
            .then(|| Candidate {
                key: id.to_string(),
                tier,
                size,
                value,
                variance,
                day_rate,
                moving_to,
                allowed: bounds.get(id).map_or(Allowed::ANY, |b| b.allowed),
            })
    }

    /// Ranked placement of `candidates` as moves to queue; keeps the standing for the
    /// spikes to come, unless it is a `dry_run`.
    pub fn place_candidates(
        &self,
        candidates: &[Candidate<String>],
        horizon_ms: i64,
        now_ms: i64,
        dry_run: bool,
    ) -> Vec<PlannedMove> {
        self.place_against_standing(candidates, horizon_ms, now_ms, dry_run)
            .into_iter()
            .map(|placed| PlannedMove {
                from_tier: self.tiers[placed.from].name.clone(),
                to_tier: self.tiers[placed.to].name.clone(),
                object_id: placed.key,
                key: None,
                reason: placed.reason,
                recent_accesses: None,
                predicted_accesses: Some(placed.value),
                benefit_accesses: Some(if placed.to < placed.from {
                    placed.value
                } else {
                    -placed.value
                }),
                bytes: Some(placed.size),
                rule_id: None,
            })
            .collect()
    }

    /// Without a model: the standing bursts are admitted against, read afresh from the
    /// catalogue, every object on or moving to a tier with a capacity valued at nothing
    /// (as the simulator's reactive-only policy places them). Such a run moves nothing.
    pub async fn place_unforecast(
        &self,
        catalogue: &Catalogue,
        now_ms: i64,
    ) -> Result<(), CatalogueError> {
        let mut candidates: Vec<Candidate<String>> = Vec::new();
        let mut seen = HashSet::new();
        let bounds = self.last_bounds();
        for (rank, limit) in self.limits.iter().enumerate() {
            if limit.capacity.is_none() {
                continue;
            }
            for (id, tier, size, moving_to) in catalogue
                .objects_on_or_moving_to(&self.tiers[rank].name)
                .await?
            {
                let Some(tier) = self.rank(&tier) else {
                    continue;
                };
                if !seen.insert(id.clone()) {
                    continue;
                }
                candidates.push(Candidate {
                    allowed: bounds.get(&id).map_or(Allowed::ANY, |b| b.allowed),
                    key: id,
                    tier,
                    size: u64::try_from(size).unwrap_or_default(),
                    value: 0.0,
                    variance: 0.0,
                    day_rate: 0.0,
                    moving_to: moving_to.and_then(|to| self.rank(&to)),
                });
            }
        }
        self.place_against_standing(&candidates, HOUR_MS, now_ms, false);
        Ok(())
    }

    /// [`Policy::place`] after the standing this process keeps, which the new one
    /// replaces for the spikes to come, unless it is a `dry_run`.
    fn place_against_standing(
        &self,
        candidates: &[Candidate<String>],
        horizon_ms: i64,
        now_ms: i64,
        dry_run: bool,
    ) -> Vec<Placed<String>> {
        let mut kept = self.standing.lock().unwrap_or_else(PoisonError::into_inner);
        let (moves, standing) = self.place(candidates, horizon_ms, now_ms, kept.as_ref());
        if !dry_run {
            *kept = Some(standing);
        }
        moves
    }

    /// The proactive moves a forecaster run would queue now with `model`, read afresh
    /// from the catalogue, keeping objects within `bounds` (a dry run: nothing is queued
    /// or stored).
    pub async fn plan_proactive_now(
        &self,
        catalogue: &Catalogue,
        model: &Model,
        now_ms: i64,
        bounds: &Bounds,
    ) -> Result<Vec<PlannedMove>, CatalogueError> {
        let mut tracker = Tracker::load(catalogue, now_ms, Shards::all()).await?;
        let thresholds = self.plan_proactive(&tracker.forecast(model, now_ms), now_ms, bounds);
        let horizon_ms = model.horizon_ms();
        let ranked = self
            .ranked_candidates(catalogue, &mut tracker, bounds, horizon_ms)
            .await?;
        Ok(self.with_ranked(ranked, thresholds, horizon_ms, now_ms, true))
    }

    /// A forecaster run's moves: with `ranked` candidates (tiers filled by rank, and
    /// this process ranks), ranked placement's, then the `thresholds`' moves of the
    /// objects it leaves where they are; else the thresholds' alone. A `dry_run` keeps
    /// the standing as it was.
    fn with_ranked(
        &self,
        ranked: Option<Vec<Candidate<String>>>,
        thresholds: Vec<PlannedMove>,
        horizon_ms: i64,
        now_ms: i64,
        dry_run: bool,
    ) -> Vec<PlannedMove> {
        let Some(candidates) = ranked else {
            return thresholds;
        };
        let mut ranked = self.place_candidates(&candidates, horizon_ms, now_ms, dry_run);
        let placed: HashSet<String> = ranked.iter().map(|p| p.object_id.clone()).collect();
        ranked.extend(
            thresholds
                .into_iter()
                .filter(|p| !placed.contains(&p.object_id)),
        );
        ranked
    }
}

/// The objects with a move under way, each with the tier it is moving to.
async fn objects_moving(catalogue: &Catalogue) -> Result<HashMap<String, String>, CatalogueError> {
    Ok(catalogue.objects_moving().await?.into_iter().collect())
}
