//! The long-running jobs that turn what the detector and the forecaster see into queued
//! moves: the reactive job acts on each spike as it comes, the scheduled (proactive) job
//! runs the forecaster every interval over the forecast shards this process holds
//! (shared among the processes by leases), follows the active model everywhere and
//! retrains on schedule. The decisions themselves are the policy's
//! ([`crate::policy`]); these only drive them. The rules job applies the operator rules
//! every interval. Beside them, the catalogue's upkeep: the minute
//! buckets' roll-up into hour buckets, and retention.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::content::Content;
use crate::db::{Catalogue, CatalogueError, MINUTE_MS, Retention};
use crate::detector::Spike;
use crate::forecast::shards::fair_share;
use crate::forecast::{ActiveModel, Shards, Tracker};
use crate::metrics::{Metrics, ModelInfo};
use crate::policy::Policy;

/// Prefix of the lease each forecasting process renews every run, followed by its id:
/// the live ones say how many share the shards.
const MEMBER_LEASE: &str = "forecaster/";

/// Prefix of the lease of a forecast shard, followed by the shard's number.
const SHARD_LEASE: &str = "forecast-shard/";

/// How long a process is a member before it takes forecast shards (one interval when
/// that is shorter).
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// How often minute buckets are rolled up into hour buckets.
const ROLLUP_INTERVAL: Duration = Duration::from_secs(60);

/// How far behind the clock the roll-up of minute buckets into hour buckets stays.
/// Accesses of a minute that was rolled up already cost a batch three writes instead of
/// one (their hour bucket and object row too, see [`Catalogue::record_access`]); staying
/// this far behind keeps a consumer that catches up on a few minutes of backlog (after a
/// restart, a rebalance, or with events that arrive late) on the one-write path. Readers
/// add the minutes not rolled up yet, so this costs them a few more minute rows per object.
const ROLLUP_LAG_MS: i64 = 5 * MINUTE_MS;

/// Rolls the minute buckets older than [`ROLLUP_LAG_MS`] up into their hour buckets, and
/// folds the tiers' object counts, once a minute until `stop` (see
/// [`Catalogue::roll_up_hours`] and [`Catalogue::fold_tier_counts`]); a failure is retried
/// at the next tick, and readers are exact meanwhile.
pub async fn run_rollup(catalogue: Catalogue, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(ROLLUP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let started = std::time::Instant::now();
        match catalogue
            .roll_up_hours(crate::timestamp::now_ms() - ROLLUP_LAG_MS)
            .await
        {
            Ok(mark) => tracing::debug!(
                mark,
                took_ms = started.elapsed().as_millis() as u64,
                "minute buckets rolled up into hour buckets"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot roll minute buckets up into hour buckets; trying again in a minute")
            }
        }
        if let Err(e) = catalogue.fold_tier_counts().await {
            tracing::warn!(error = %e, "cannot fold the tiers' object counts; trying again in a minute");
        }
    }
}

/// Rows a retention statement removes at most: a short transaction each.
const RETENTION_BATCH: i64 = 5_000;

/// Removes history older than `config` keeps every interval until `stop` (see
/// [`Catalogue::apply_retention`]); a failure is retried at the next tick.
pub async fn run_retention(catalogue: Catalogue, config: RetentionConfig, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = crate::timestamp::now_ms();
        let retention = Retention {
            minute_buckets_before: now.saturating_sub(ms(config.minute_buckets)),
            hour_buckets_before: now.saturating_sub(ms(config.hour_buckets)),
            finished_before: config.finished.map(|keep| now.saturating_sub(ms(keep))),
        };
        let started = std::time::Instant::now();
        match catalogue.apply_retention(&retention, RETENTION_BATCH).await {
            Ok(removed) if removed != Default::default() => tracing::info!(
                minute_rows = removed.minute_rows,
                hour_rows = removed.hour_rows,
                finished_rows = removed.finished_rows,
                took_ms = started.elapsed().as_millis() as u64,
                "history past its retention removed"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove history past its retention; trying again next interval")
            }
        }
    }
}

/// Applies the operator rules every `interval` until `stop`: queues the moves they call
/// for (reason `rule`), deletes the objects expire rules have due, and hands the
/// objects they bound to the forecaster's runs. Every process runs it: the moves are
/// queued once whoever queues them first, and an expired object is deleted once.
pub async fn run_rules(
    policy: Arc<Policy>,
    content: Content,
    catalogue: Catalogue,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let (plan, queued) = match policy
            .rules_pass(&catalogue, crate::timestamp::now_ms())
            .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(error = %e, "cannot apply the rules; trying again next interval");
                continue;
            }
        };
        let mut expired = 0;
        for expiry in &plan.expiries {
            match content
                .expire(&expiry.object_id, expiry.created_at, &expiry.rule_id)
                .await
            {
                Ok(Some(_)) => expired += 1,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(object = %expiry.object_id, rule = %expiry.rule_id, error = %e, "cannot expire the object; trying again next interval");
                }
            }
        }
        if queued > 0 || expired > 0 {
            tracing::info!(
                queued,
                expired,
                bounded = plan.bounds.len(),
                "rules applied"
            );
        }
    }
}

/// Acts on the detector's spikes until `stop`: each becomes at most one queued move with
/// reason `reactive_access_spike`.
pub async fn run_reactive(
    policy: Arc<Policy>,
    catalogue: Catalogue,
    mut spikes: mpsc::Receiver<Spike>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let spike = tokio::select! {
            () = stop.cancelled() => return,
            spike = spikes.recv() => match spike {
                Some(spike) => spike,
                None => return,
            },
        };
        metrics.record_spike();
        match policy.act_on_spike(&catalogue, &spike).await {
            Ok(Some(_)) => metrics.record_reactive_move(),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(object = %spike.object_id, error = %e, "cannot queue the promotion for a spike; the next spike retries")
            }
        }
    }
}

/// What the scheduled forecaster needs besides the policy.
pub struct ProactiveJob {
    /// The catalogue.
    pub catalogue: Catalogue,
    /// The model in use, followed here so that every process serves predictions of the
    /// active model.
    pub model: Arc<ActiveModel>,
    /// Time between runs.
    pub interval: Duration,
    /// Time between scheduled retrains; `None`: never.
    pub retrain_interval: Option<Duration>,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// How many forecast shards the objects are split into.
    pub shards: u32,
}

/// Runs the forecaster every `interval` until `stop`: follows the active model, and
/// for the forecast shards this process holds predicts and queues the moves the
/// predictions call for, with reason `proactive_prediction`; the holder of shard 0 also
/// ranks every object and retrains on schedule.
pub async fn run_proactive(policy: Arc<Policy>, job: ProactiveJob, stop: CancellationToken) {
    // Long enough to survive a slow run or two; short enough that the shards of a
    // crashed process are taken over within a few intervals.
    let lease_ms = i64::try_from((job.interval * 3).max(Duration::from_secs(30)).as_millis())
        .unwrap_or(i64::MAX);
    let mut leases = ShardLeases {
        holder: crate::db::new_id(),
        count: job.shards,
        held: BTreeSet::new(),
        lease_ms,
    };
    let mut tracker: Option<Tracker> = None;
    // The first retrain comes one retrain interval after the start, not at every start.
    let mut retrained_at = std::time::Instant::now();
    // The active model serves predictions from the start, shards or not.
    follow_active_model(&job).await;
    // Joining a while before taking shards lets processes started together split them at
    // once, instead of the first taking them all (and loading every object) and handing
    // most back.
    if let Err(e) = leases
        .join(&job.catalogue, crate::timestamp::now_ms())
        .await
    {
        tracing::warn!(error = %e, "cannot join the forecasters; trying again at the first run");
    }
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(JOIN_GRACE.min(job.interval)) => {}
    }
    let mut ticks = tokio::time::interval(job.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        follow_active_model(&job).await;
        let now = crate::timestamp::now_ms();
        let shards = match leases.renew(&job.catalogue, now).await {
            Ok(shards) => shards,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the forecast shards' leases; skipping this run");
                continue;
            }
        };
        if shards.is_empty() {
            tracker = None;
            continue;
        }
        if shards.places()
            && job
                .retrain_interval
                .is_some_and(|every| retrained_at.elapsed() >= every)
        {
            retrained_at = std::time::Instant::now();
            retrain(&job, now).await;
        }
        forecast(&policy, &job, &mut tracker, &shards, now).await;
    }
    leases.release(&job.catalogue).await;
}

/// The forecast shards one process holds, under leases in the catalogue.
struct ShardLeases {
    /// This process's id in the leases.
    holder: String,
    /// How many shards there are.
    count: u32,
    /// The shards it held after the last renewal.
    held: BTreeSet<u32>,
    /// How long a lease lasts unless renewed.
    lease_ms: i64,
}

impl ShardLeases {
    /// Renews this process's membership and its shards, gives up those past its fair
    /// share (so that a process that just started gets some) and takes free ones up to
    /// it, lowest first; returns the shards held now. A shard changing hands is logged.
    async fn renew(&mut self, catalogue: &Catalogue, now: i64) -> Result<Shards, CatalogueError> {
        self.join(catalogue, now).await?;
        let until = now.saturating_add(self.lease_ms);
        let members = catalogue.live_leases(MEMBER_LEASE, now).await?;
        let fair = fair_share(self.count, members);
        let before = std::mem::take(&mut self.held);
        for &shard in &before {
            let lease = format!("{SHARD_LEASE}{shard}");
            if self.held.len() >= fair {
                catalogue.release_lease(&lease, &self.holder).await?;
            } else if catalogue
                .try_lease(&lease, &self.holder, now, until)
                .await?
            {
                self.held.insert(shard);
            }
        }
        for shard in 0..self.count {
            if self.held.len() >= fair {
                break;
            }
            if !self.held.contains(&shard)
                && catalogue
                    .try_lease(&format!("{SHARD_LEASE}{shard}"), &self.holder, now, until)
                    .await?
            {
                self.held.insert(shard);
            }
        }
        if self.held != before {
            tracing::info!(
                held = ?self.held,
                of = self.count,
                forecasters = members,
                "forecast shards held changed"
            );
        }
        Ok(Shards::of(self.count, self.held.iter().copied()))
    }

    /// Takes or renews this process's membership: it counts in every process's fair
    /// share from now on.
    async fn join(&self, catalogue: &Catalogue, now: i64) -> Result<(), CatalogueError> {
        let member = format!("{MEMBER_LEASE}{}", self.holder);
        let until = now.saturating_add(self.lease_ms);
        catalogue
            .try_lease(&member, &self.holder, now, until)
            .await?;
        Ok(())
    }

    /// Gives every lease up, so that the other processes take the shards over at once.
    async fn release(&self, catalogue: &Catalogue) {
        let leases = self
            .held
            .iter()
            .map(|shard| format!("{SHARD_LEASE}{shard}"))
            .chain([format!("{MEMBER_LEASE}{}", self.holder)]);
        for lease in leases {
            if let Err(e) = catalogue.release_lease(&lease, &self.holder).await {
                tracing::debug!(lease, error = %e, "lease not released; it expires on its own");
            }
        }
    }
}

/// Loads the active model when another one was activated (here or in another process).
async fn follow_active_model(job: &ProactiveJob) {
    match job.model.refresh(&job.catalogue).await {
        Ok(Some(model)) => job.metrics.set_model(ModelInfo {
            version: model.version,
            mae: model.evaluation.model.mae,
            r2: model.evaluation.model.r2,
        }),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check for a new active model"),
    }
}

/// One forecaster run with the active model, logged; without a model, the tiers with a
/// capacity are still placed from what they hold, so bursts meet a bar.
async fn forecast(
    policy: &Policy,
    job: &ProactiveJob,
    tracker: &mut Option<Tracker>,
    shards: &Shards,
    now: i64,
) {
    let Some(model) = job.model.get() else {
        if policy.is_ranked()
            && shards.places()
            && let Err(e) = policy.place_unforecast(&job.catalogue, now).await
        {
            tracing::warn!(error = %e, "cannot read the tiers with a capacity; bursts are admitted by the thresholds until the next run");
        }
        return;
    };
    let started = std::time::Instant::now();
    match policy
        .proactive_run(&job.catalogue, &model, tracker, shards, now)
        .await
    {
        Ok(run) => {
            job.metrics
                .record_forecast_run(run.predicted, run.queued, started.elapsed());
            if run.queued > 0 {
                tracing::info!(
                    objects = run.predicted,
                    queued = run.queued,
                    took_ms = started.elapsed().as_millis() as u64,
                    "forecast run"
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "forecast run failed; the next run starts from a fresh read");
            *tracker = None;
        }
    }
}

/// A scheduled retrain, champion against challenger (see
/// [`crate::forecast::challenge`]), its outcome logged; every process, this one
/// included, loads a new active model at its next run.
async fn retrain(job: &ProactiveJob, now_ms: i64) {
    let started = std::time::Instant::now();
    match crate::forecast::challenge(&job.catalogue, job.model.get(), RETRAINED_NAME, now_ms).await
    {
        Ok(outcome) => {
            tracing::info!(
                model = %outcome.record.id,
                version = outcome.record.version,
                capture = format!("{:.4}", outcome.challenger),
                champion_capture = outcome.champion.map(|c| format!("{c:.4}")),
                activated = outcome.activated,
                took_ms = started.elapsed().as_millis() as u64,
                "scheduled retrain: challenger registered{}",
                if outcome.activated { " and activated" } else { "; the champion stays" }
            );
        }
        Err(e) => tracing::warn!(error = %e, "scheduled retrain failed; the model in use stays"),
    }
}

/// Name of the models scheduled retrains register.
pub const RETRAINED_NAME: &str = "scheduled";
