//! The long-running jobs that turn what the detector and the forecaster see into queued
//! moves: the reactive job acts on each spike as it comes, the scheduled (proactive) job
//! runs the forecaster every interval in the one process that holds its lease, follows
//! the active model everywhere and retrains on schedule. The decisions themselves are
//! the policy's ([`crate::policy`]); these only drive them. The rules job applies the
//! operator rules every interval. Beside them, the catalogue's upkeep: the minute
//! buckets' roll-up into hour buckets, and retention.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::content::Content;
use crate::db::{Catalogue, MINUTE_MS, Retention};
use crate::detector::Spike;
use crate::forecast::{ActiveModel, Tracker};
use crate::metrics::{Metrics, ModelInfo};
use crate::policy::Policy;

/// Name of the lease the forecasting process holds.
const FORECASTER_LEASE: &str = "forecaster";

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
}

/// Runs the forecaster every `interval` until `stop`: follows the active model, and in
/// the one process holding the forecaster lease predicts and queues the moves the
/// predictions call for, with reason `proactive_prediction`.
pub async fn run_proactive(policy: Arc<Policy>, job: ProactiveJob, stop: CancellationToken) {
    let holder = crate::db::new_id();
    // Long enough to survive a slow run or two; short enough that a crashed leader is
    // replaced within a few intervals.
    let lease_ms = i64::try_from((job.interval * 3).max(Duration::from_secs(30)).as_millis())
        .unwrap_or(i64::MAX);
    let mut tracker: Option<Tracker> = None;
    // The first retrain comes one retrain interval after the start, not at every start.
    let mut retrained_at = std::time::Instant::now();
    let mut ticks = tokio::time::interval(job.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        follow_active_model(&job).await;
        let now = crate::timestamp::now_ms();
        match job
            .catalogue
            .try_lease(FORECASTER_LEASE, &holder, now, now.saturating_add(lease_ms))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                if tracker.take().is_some() {
                    tracing::info!("another process runs the forecaster now");
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the forecaster lease; skipping this run");
                continue;
            }
        }
        if job
            .retrain_interval
            .is_some_and(|every| retrained_at.elapsed() >= every)
        {
            retrained_at = std::time::Instant::now();
            retrain(&job, now).await;
        }
        forecast(&policy, &job, &mut tracker, now).await;
    }
    if let Err(e) = job.catalogue.release_lease(FORECASTER_LEASE, &holder).await {
        tracing::debug!(error = %e, "forecaster lease not released; it expires on its own");
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
async fn forecast(policy: &Policy, job: &ProactiveJob, tracker: &mut Option<Tracker>, now: i64) {
    let Some(model) = job.model.get() else {
        if policy.is_ranked()
            && let Err(e) = policy.place_unforecast(&job.catalogue, now).await
        {
            tracing::warn!(error = %e, "cannot read the tiers with a capacity; bursts are admitted by the thresholds until the next run");
        }
        return;
    };
    let started = std::time::Instant::now();
    match policy
        .proactive_run(&job.catalogue, &model, tracker, now)
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
