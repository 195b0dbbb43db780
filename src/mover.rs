//! The mover: drains the move queue, executing each tier move safely.
//!
//! A move is `pending -> copying -> verifying -> completed`:
//! 1. **claim** the most urgent due move under a lease (several processes can share one
//!    queue);
//! 2. **copy**: stream the object from its tier to a fresh key on the destination, with a
//!    heartbeat that persists progress, extends the lease and notices cancellation;
//! 3. **verify** as `MOVER_VERIFY` says: the streamed bytes' checksum against the
//!    catalogue's, the destination's receipt and the stored size (`checksum`, the
//!    default), or the copy read back too (`full`);
//! 4. **switch** the catalogue to the copy, in a transaction that also checks that the
//!    object was not rewritten meanwhile;
//! 5. only then **delete** the source copy. A worker running moves one after the other
//!    deletes a move's source while it runs its next move: the move is complete once
//!    switched, and the deletion only frees the old bytes.
//!
//! Any failure before the switch leaves the object where it was, readable throughout;
//! the copy is removed and the move retried with exponential backoff and jitter, up to
//! `MOVER_MAX_ATTEMPTS`. A rewritten object is copied again at its new version, so old
//! bytes never win. A worker that dies mid-move loses its lease; [`Mover::recover`], run
//! at start-up and periodically by every process, requeues the move and removes what the
//! dead attempt left on either tier. With it, the sweep removes what interrupted
//! writes left inside the tiers (temporary files, multipart uploads) once they have been
//! idle for a lease.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, TryStreamExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{MoverConfig, VerifyMode};
use crate::db::{
    Catalogue, CatalogueError, CopyPlan, MoveRecord, MoveStatus, ObjectRecord, StartRefusal, new_id,
};
use crate::metrics::Metrics;
use crate::storage::{ByteStream, Declared, Store, Tiers, digest_stream, from_hex};
use crate::timestamp::now_ms;

/// Longest retry delay, however many attempts failed.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Runs queued tier moves.
#[derive(Debug, Clone)]
pub struct Mover {
    catalogue: Catalogue,
    tiers: Arc<Tiers>,
    config: MoverConfig,
    worker: String,
    limiter: Option<Arc<RateLimiter>>,
    metrics: Arc<Metrics>,
}

/// One attempt's object, its source and destination stores, and where the copy goes.
struct Attempt {
    object: ObjectRecord,
    source: Store,
    dest: Store,
    plan: CopyPlan,
}

/// The deletion of a completed move's source, left to run beside the worker's next move.
type SourceRemoval = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// How an attempt ended early.
enum Stop {
    /// The move is no longer ours: cancelled, or reclaimed after our lease ran out.
    Lost,
    /// The attempt failed; the message is recorded on the move.
    Failed(String),
}

impl Mover {
    /// A mover over `catalogue` and `tiers`, identified as a fresh worker id.
    pub fn new(catalogue: Catalogue, tiers: Arc<Tiers>, config: MoverConfig) -> Mover {
        Mover {
            catalogue,
            tiers,
            config,
            worker: format!("{}-{}", std::process::id(), new_id()),
            limiter: config
                .bandwidth
                .map(|rate| Arc::new(RateLimiter::new(rate))),
            metrics: Arc::default(),
        }
    }

    /// Counts what it sweeps into `metrics`.
    pub fn reporting_to(self, metrics: Arc<Metrics>) -> Mover {
        Mover { metrics, ..self }
    }

    /// Recovers what crashed workers left, then runs `MOVER_CONCURRENCY` workers and a
    /// periodic recovery until `shutdown`. Moves in flight at shutdown finish first.
    pub async fn run(self, shutdown: CancellationToken) {
        if let Err(e) = self.recover().await {
            tracing::warn!(error = %e, "start-up recovery of moves failed; will retry");
        }
        self.sweep().await;
        let mut tasks = JoinSet::new();
        for _ in 0..self.config.concurrency {
            let me = self.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { me.work_until(shutdown).await });
        }
        let me = self.clone();
        let shutdown_recovery = shutdown.clone();
        tasks.spawn(async move {
            let period = me.config.lease / 2;
            while !sleep_or_cancel(period, std::future::pending(), &shutdown_recovery).await {
                if let Err(e) = me.recover().await {
                    tracing::warn!(error = %e, "recovery of moves failed; will retry");
                }
                me.sweep().await;
            }
        });
        while tasks.join_next().await.is_some() {}
    }

    async fn work_until(&self, shutdown: CancellationToken) {
        // At most one source deletion per worker is under way, beside the next move.
        let mut removal: Option<SourceRemoval> = None;
        while !shutdown.is_cancelled() {
            // Listening before the queue is read, so that a move queued meanwhile wakes it.
            let queued = self.catalogue.move_queued().notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            let (worked, ()) = tokio::join!(self.work_next(), finish(removal.take()));
            match worked {
                Ok(Some((_, next))) => {
                    removal = next;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "mover cannot reach the catalogue"),
            }
            if sleep_or_cancel(self.config.poll_interval, queued, &shutdown).await {
                break;
            }
        }
        finish(removal).await;
    }

    /// Claims and runs one due move, its source deleted once it completed; `None` when
    /// the queue has none. Returns the move as this attempt left it (completed, back to
    /// pending for a retry, failed, …).
    pub async fn work_once(&self) -> Result<Option<MoveRecord>, CatalogueError> {
        let Some((m, removal)) = self.work_next().await? else {
            return Ok(None);
        };
        // The deletion changes nothing a move record shows, so `m` stays as read.
        finish(removal).await;
        Ok(Some(m))
    }

    /// Claims and runs one due move; with the move as the attempt left it, the deletion
    /// of its source still to run when it completed.
    async fn work_next(
        &self,
    ) -> Result<Option<(MoveRecord, Option<SourceRemoval>)>, CatalogueError> {
        let lease_ms = self.config.lease.as_millis() as i64;
        let Some(m) = self.catalogue.claim_move(&self.worker, lease_ms).await? else {
            return Ok(None);
        };
        tracing::info!(
            migration = %m.id, object = %m.object_id, from = %m.from_tier, to = %m.to_tier,
            reason = %m.reason, attempt = m.attempts, "move started"
        );
        let (id, started) = (m.id.clone(), Instant::now());
        let removal = self.execute(m).await?;
        let after = self.catalogue.get_move(&id).await?;
        self.metrics
            .record_move_attempt(after.status.as_str(), started.elapsed());
        Ok(Some((after, removal)))
    }

    /// One attempt of claimed move `m`: copy, verify, switch the catalogue; the deletion
    /// of the source when the move completed.
    async fn execute(&self, m: MoveRecord) -> Result<Option<SourceRemoval>, CatalogueError> {
        let started = Instant::now();
        let Some(attempt) = self.prepare(&m).await? else {
            return Ok(None);
        };
        let Some(m) = self.start_copy(&m, &attempt).await? else {
            return Ok(None);
        };
        let Attempt {
            object,
            source,
            dest,
            plan,
        } = attempt;
        match self
            .copy_and_verify(&m, &object, &source, &dest, &plan)
            .await
        {
            Ok(()) => self.switch(&m, source, &plan, started).await,
            Err(Stop::Lost) => self.abandon(&m, &plan.dest_location).await.map(|()| None),
            Err(Stop::Failed(error)) => {
                let removed = self.remove(&m.to_tier, &plan.dest_location).await;
                self.retry(&m, &error, removed).await.map(|()| None)
            }
        }
    }

    /// What attempt of `m` to make: the object, its two stores and where the copy goes;
    /// `None` when the attempt already ended (retried or failed, recorded).
    async fn prepare(&self, m: &MoveRecord) -> Result<Option<Attempt>, CatalogueError> {
        // A copy left by an earlier attempt is removed before a new one is made.
        // (Not starting until it is gone keeps at most one copy per move to track.)
        if let Some(old) = &m.dest_location
            && let Err(e) = self.try_remove(&m.to_tier, old).await
        {
            let error = format!("cannot remove the copy of an earlier attempt: {e}");
            return self.retry(m, &error, false).await.map(|()| None);
        }
        let object = match self.catalogue.get_object(&m.object_id).await {
            Ok(object) => object,
            Err(CatalogueError::NotFound { .. }) => {
                let error = "the object no longer exists".into();
                return self.fail(m, error).await.map(|()| None);
            }
            Err(e) => return Err(e),
        };
        if object.tier == m.to_tier {
            let error = format!("the object is already on tier {}", m.to_tier);
            return self.fail(m, error).await.map(|()| None);
        }
        let (Some(source), Some(dest)) = (
            self.tiers.store(&object.tier).cloned(),
            self.tiers.store(&m.to_tier).cloned(),
        ) else {
            let error = format!("tier {} or {} is not configured", object.tier, m.to_tier);
            return self.fail(m, error).await.map(|()| None);
        };
        let plan = CopyPlan {
            object_version: object.version,
            from_tier: object.tier.clone(),
            source_location: object.location.clone(),
            dest_location: format!("{}/{}-{}", object.id, m.id, m.attempts),
            bytes_total: object.size,
        };
        Ok(Some(Attempt {
            object,
            source,
            dest,
            plan,
        }))
    }

    /// Records the copy as under way, within the destination's capacity; the move as
    /// it stands then, or `None` when it cannot start (lost, retried or failed).
    async fn start_copy(
        &self,
        m: &MoveRecord,
        attempt: &Attempt,
    ) -> Result<Option<MoveRecord>, CatalogueError> {
        let capacity = self
            .tiers
            .iter()
            .find(|(t, _)| t.name == m.to_tier)
            .and_then(|(t, _)| t.capacity_bytes)
            .map(|c| c.min(i64::MAX as u64) as i64);
        // Looked at before the copy may be refused: a move out that finishes between a
        // refusal and a look afterwards would go unseen, and the move fail for room that
        // is free by then.
        let room_coming = match capacity {
            Some(_) => self.catalogue.moves_out_of(&m.to_tier).await?,
            None => false,
        };
        match self
            .catalogue
            .start_copy(&m.id, &self.worker, &m.to_tier, capacity, &attempt.plan)
            .await?
        {
            Ok(m) => Ok(Some(m)),
            Err(StartRefusal::Lost) => Ok(None),
            Err(StartRefusal::Capacity { used, capacity }) => {
                let error = format!(
                    "tier {} is full: {used} of {capacity} bytes used, the object needs {}",
                    m.to_tier, attempt.object.size
                );
                // A move out of the tier under way frees room: wait for it, as a
                // promotion queued with the demotions that make its room does.
                if room_coming {
                    self.retry(m, &error, true).await?;
                } else {
                    self.fail(m, error).await?;
                }
                Ok(None)
            }
        }
    }

    /// Switches the catalogue to the verified copy; then the source is to be deleted.
    async fn switch(
        &self,
        m: &MoveRecord,
        source: Store,
        plan: &CopyPlan,
        started: Instant,
    ) -> Result<Option<SourceRemoval>, CatalogueError> {
        let duration_ms = started.elapsed().as_millis() as i64;
        match self
            .catalogue
            .complete_move(m, &self.worker, duration_ms)
            .await
        {
            Ok(done) => {
                tracing::info!(
                    migration = %done.id, object = %done.object_id, to = %done.to_tier,
                    bytes = done.bytes_total, duration_ms,
                    mb_per_s = done.bytes_total as f64 / 1e6 / (duration_ms.max(1) as f64 / 1e3),
                    "move completed"
                );
                let catalogue = self.catalogue.clone();
                let location = plan.source_location.clone();
                Ok(Some(Box::pin(async move {
                    // Recovery deletes what is left undeleted here.
                    if source.delete(&location).await.is_err() {
                        tracing::warn!(migration = %done.id, "source copy not deleted yet; recovery retries");
                    } else if let Err(e) = catalogue.mark_source_deleted(&done.id).await {
                        tracing::warn!(migration = %done.id, error = %e, "source copy deleted, not yet recorded; recovery records it");
                    }
                })))
            }
            Err(CatalogueError::Stale { kind: "object", .. }) => {
                let removed = self.remove(&m.to_tier, &plan.dest_location).await;
                self.end_attempt(
                    m,
                    "the object changed during the move; copying its new version",
                    now_ms(),
                    removed,
                )
                .await
                .map(|()| None)
            }
            Err(CatalogueError::Stale { .. }) => {
                self.abandon(m, &plan.dest_location).await.map(|()| None)
            }
            Err(e) => Err(e),
        }
    }

    /// Copies the object to the destination and checks the copy as `MOVER_VERIFY` says:
    /// the streamed bytes' checksum against the catalogue's, what the destination
    /// acknowledged (the backend's put checks that), the stored size, and with `full`
    /// the bytes read back. The MD5 its writer declared, where there is one, goes with
    /// the copy: the destination checks the bytes it stores against it, and an S3 tier
    /// takes a copy under a part as it streams instead of reading it whole first.
    async fn copy_and_verify(
        &self,
        m: &MoveRecord,
        object: &ObjectRecord,
        source: &Store,
        dest: &Store,
        plan: &CopyPlan,
    ) -> Result<(), Stop> {
        let progress = Arc::new(AtomicU64::new(0));
        let counter = progress.clone();
        let copy = async {
            let stream = source
                .get(&plan.source_location, None, u64::try_from(object.size).ok())
                .await
                .map_err(|e| format!("reading the source: {e}"))?
                .inspect_ok(move |chunk| {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                });
            dest.put(
                &plan.dest_location,
                self.throttled(Box::pin(stream)),
                &object.content_type,
                Declared {
                    length: u64::try_from(object.size).ok(),
                    md5: object
                        .md5
                        .as_deref()
                        .and_then(|md5| from_hex(md5.as_bytes())),
                    ..Declared::default()
                },
            )
            .await
            .map_err(|e| format!("writing the copy: {e}"))
        };
        let streamed = self
            .with_heartbeat(&m.id, &progress, copy)
            .await?
            .map_err(Stop::Failed)?;

        let verify = async {
            match self.config.verify {
                VerifyMode::Full => {
                    let stream = dest
                        .get(&plan.dest_location, None, None)
                        .await
                        .map_err(|e| e.to_string())?;
                    digest_stream(self.throttled(stream))
                        .await
                        .map_err(|e| e.to_string())
                }
                VerifyMode::Checksum => {
                    let stored = dest
                        .size(&plan.dest_location)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(crate::storage::Digest {
                        size: stored,
                        ..streamed
                    })
                }
            }
        };
        // The check reads only the copy, so it need not wait for the state to be recorded.
        let (ours, verified) = tokio::join!(
            self.catalogue.begin_verify(&m.id, &self.worker),
            self.with_heartbeat(&m.id, &progress, verify)
        );
        if !ours.unwrap_or(false) {
            return Err(Stop::Lost);
        }
        let verified = verified?.map_err(|e| Stop::Failed(format!("checking the copy: {e}")))?;
        if verified.size != object.size as u64 || verified.checksum != object.checksum {
            return Err(Stop::Failed(format!(
                "verification failed: the copy has {} bytes with checksum {}, the catalogue expects {} bytes with {}",
                verified.size, verified.checksum, object.size, object.checksum
            )));
        }
        Ok(())
    }

    /// `stream`, slowed to the process-wide bandwidth limit when one is set.
    fn throttled(&self, stream: ByteStream) -> ByteStream {
        match &self.limiter {
            None => stream,
            Some(limiter) => {
                let limiter = limiter.clone();
                Box::pin(stream.then(move |chunk| {
                    let limiter = limiter.clone();
                    async move {
                        if let Ok(bytes) = &chunk {
                            limiter.acquire(bytes.len() as u64).await;
                        }
                        chunk
                    }
                }))
            }
        }
    }

    /// Runs `work` while a heartbeat persists progress and extends the lease; stops it
    /// with [`Stop::Lost`] as soon as the move turns out not to be ours any more.
    async fn with_heartbeat<T>(
        &self,
        id: &str,
        progress: &AtomicU64,
        work: impl Future<Output = T>,
    ) -> Result<T, Stop> {
        let lease_ms = self.config.lease.as_millis() as i64;
        // Several beats per lease, and progress at least every 2 s.
        let every = (self.config.lease / 4).min(Duration::from_secs(2));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                _ = beat.tick() => {
                    let bytes = progress.load(Ordering::Relaxed) as i64;
                    match self.catalogue.heartbeat(id, &self.worker, bytes, lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => return Err(Stop::Lost),
                        // Keep copying through a catalogue hiccup; if it lasts past the
                        // lease, recovery takes the move over and the next beat says so.
                        Err(e) => tracing::warn!(migration = %id, error = %e, "heartbeat failed"),
                    }
                }
            }
        }
    }

    /// The move was taken from us: remove our copy and, if recorded, forget it.
    async fn abandon(&self, m: &MoveRecord, dest_location: &str) -> Result<(), CatalogueError> {
        tracing::info!(migration = %m.id, "move cancelled or taken over; removing its copy");
        if self.remove(&m.to_tier, dest_location).await {
            self.catalogue
                .clear_dest_location(&m.id, dest_location)
                .await?;
        }
        Ok(())
    }

    /// Ends a failed attempt with backoff: retried later, or failed after the last one.
    async fn retry(
        &self,
        m: &MoveRecord,
        error: &str,
        removed: bool,
    ) -> Result<(), CatalogueError> {
        let not_before =
            now_ms() + retry_delay(self.config.retry_base, m.attempts).as_millis() as i64;
        self.end_attempt(m, error, not_before, removed).await
    }

    async fn end_attempt(
        &self,
        m: &MoveRecord,
        error: &str,
        not_before: i64,
        removed: bool,
    ) -> Result<(), CatalogueError> {
        if let Some(after) = self
            .catalogue
            .end_attempt(
                &m.id,
                &self.worker,
                error,
                not_before,
                self.config.max_attempts,
                removed,
            )
            .await?
        {
            if after.status == MoveStatus::Failed {
                tracing::warn!(migration = %m.id, attempts = after.attempts, %error, "move failed");
            } else {
                tracing::warn!(migration = %m.id, attempt = after.attempts, %error, "move attempt failed; will retry");
            }
        }
        Ok(())
    }

    /// Fails the move for good: it cannot succeed however often it is tried. Only called
    /// before a copy exists (any earlier attempt's copy is removed first).
    async fn fail(&self, m: &MoveRecord, error: String) -> Result<(), CatalogueError> {
        tracing::warn!(migration = %m.id, %error, "move failed");
        self.catalogue
            .fail_move(&m.id, &self.worker, &error)
            .await?;
        Ok(())
    }

    /// Deletes `location` on `tier`; false (and logged) when that did not work.
    async fn remove(&self, tier: &str, location: &str) -> bool {
        match self.try_remove(tier, location).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%tier, %location, error = %e, "cannot remove a copy");
                false
            }
        }
    }

    async fn try_remove(&self, tier: &str, location: &str) -> Result<(), String> {
        match self.tiers.store(tier) {
            Some(store) => store.delete(location).await.map_err(|e| e.to_string()),
            None => Err(format!("tier {tier} is not configured")),
        }
    }

    /// Takes over moves whose worker stopped responding and removes what finished or
    /// abandoned moves left on the tiers. Safe to run in every process at any time.
    /// Returns how many moves it acted on.
    pub async fn recover(&self) -> Result<usize, CatalogueError> {
        let mut acted = 0;
        for m in self.catalogue.expired_moves(now_ms()).await? {
            if let Some(r) = self
                .catalogue
                .reclaim_move(&m, self.config.max_attempts)
                .await?
            {
                tracing::warn!(migration = %r.id, worker = ?m.claimed_by, status = %r.status, "took over a move whose worker stopped responding");
                acted += 1;
            }
        }
        for m in self.catalogue.leftover_copies().await? {
            if m.status == MoveStatus::Completed {
                if let Some(source) = &m.source_location
                    && self.remove(&m.from_tier, source).await
                {
                    self.catalogue.mark_source_deleted(&m.id).await?;
                    acted += 1;
                }
            } else if let Some(dest) = &m.dest_location
                && self.remove(&m.to_tier, dest).await
            {
                self.catalogue.clear_dest_location(&m.id, dest).await?;
                acted += 1;
            }
        }
        Ok(acted)
    }

    /// Removes, on every tier, what writes left when they died (a killed process, a
    /// lost connection): temporary files and multipart uploads idle for longer than a
    /// lease, except the copies of running moves and the tier uploads of S3 endpoint uploads
    /// in progress (they expire by their own setting). Safe to run in every process at any
    /// time; failures are logged and retried next time.
    async fn sweep(&self) {
        let live = match self.catalogue.live_write_locations().await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "cannot sweep the tiers: the catalogue is unreachable");
                return;
            }
        };
        let before = SystemTime::now() - self.config.lease;
        for (tier, store) in self.tiers.iter() {
            match store.sweep(before, &live).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(tier = %tier.name, removed = n, "swept what interrupted writes left");
                    self.metrics.record_swept(&tier.name, n);
                }
                Err(e) => tracing::warn!(tier = %tier.name, error = %e, "cannot sweep the tier"),
            }
        }
    }
}

/// Spreads reads over time so that, together, they stay under `rate` bytes per second.
/// Each chunk reserves the next free slot of time its size needs (virtual scheduling),
/// so concurrent moves share the rate fairly without a background task.
#[derive(Debug)]
struct RateLimiter {
    rate: f64,
    next_free: std::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            rate: bytes_per_sec as f64,
            next_free: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits until `bytes` more fit under the rate.
    async fn acquire(&self, bytes: u64) {
        let start = {
            let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
            let start = (*next).max(tokio::time::Instant::now());
            *next = start + Duration::from_secs_f64(bytes as f64 / self.rate);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// Delay before attempt `attempts + 1`: `base × 2^(attempts-1)`, at most
/// [`MAX_RETRY_DELAY`], times a jitter factor in [0.75, 1.25) so that moves failing
/// together do not retry together.
pub fn retry_delay(base: Duration, attempts: i64) -> Duration {
    let exponent = attempts.clamp(1, 30) as u32 - 1;
    let delay = base
        .saturating_mul(1 << exponent.min(20))
        .min(MAX_RETRY_DELAY);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    delay.mul_f64(0.75 + f64::from(nanos % 1000) / 2000.0)
}

/// Runs `removal` to its end, if there is one.
async fn finish(removal: Option<SourceRemoval>) {
    if let Some(removal) = removal {
        removal.await;
    }
}

/// Sleeps for `period` or until `wake`; true if `shutdown` fired first.
async fn sleep_or_cancel(
    period: Duration,
    wake: impl Future<Output = ()>,
    shutdown: &CancellationToken,
) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => false,
        () = wake => false,
        () = shutdown.cancelled() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(1000);
        for (attempts, nominal) in [(1, 1000), (2, 2000), (3, 4000), (5, 16_000)] {
            let d = retry_delay(base, attempts).as_millis() as u64;
            assert!(
                (nominal * 3 / 4..nominal * 5 / 4).contains(&d),
                "attempt {attempts}: {d} ms not within 25% of {nominal} ms"
            );
        }
        assert!(retry_delay(base, 100) < MAX_RETRY_DELAY.mul_f64(1.25));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_spaces_reads_by_their_size() {
        let limiter = RateLimiter::new(1000);
        let started = tokio::time::Instant::now();
        for _ in 0..4 {
            limiter.acquire(500).await;
        }
        // 2,000 bytes at 1,000 B/s: the fourth chunk may start 1.5 s in (virtual time).
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }
}
