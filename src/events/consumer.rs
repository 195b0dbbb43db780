//! Consuming access events into the catalogue, exactly once.
//!
//! The consumer runs on a thread of its own with a plain librdkafka consumer in the
//! `KAFKA_GROUP_ID` group. It decodes each message, adds it to in-memory counts per
//! partition, and every `EVENTS_FLUSH_MS` (or `EVENTS_FLUSH_MAX` events) hands the batch
//! to a flush task while it goes on reading. A flush first makes sure the batch's dead
//! letters reached the DLQ, then writes the counts and the partitions' next offsets in
//! one database transaction, then feeds the committed counts to the spike detector.
//!
//! Offsets live in the database, never in Kafka: on assignment the consumer starts each
//! partition at the offset stored with the counts, so a crash (nothing of an unflushed
//! batch was stored) or a rebalance (the new owner starts where the last commit ended)
//! neither loses nor repeats an event. Each flush only advances a partition's offset from
//! the value its batch started at; if another consumer moved it on meanwhile (a zombie
//! that lost the partition without noticing), the batch for that partition is dropped
//! and reading resumes from the stored offset.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{AccessTarget, DeadLetter, decode};
use crate::db::{AccessCount, Catalogue, LocatedAccess, MINUTE_MS, PartitionAccesses, now_ms};
use crate::detector::{Detector, Spike};
use crate::metrics::Metrics;

/// How long the consumer waits for a message before checking timers.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Retry delay when the database cannot be reached while assigning partitions.
const ASSIGN_RETRY: Duration = Duration::from_secs(1);
/// How often the detector's settled bursts are collected.
const SPIKE_TICK: Duration = Duration::from_millis(50);
/// How often idle objects are dropped from the detector.
const FORGET_INTERVAL: Duration = Duration::from_secs(60);
/// How far before a partition's stored offset reading starts; the messages in between
/// were counted already and are skipped. Some brokers (tansu 0.6, seen here) answer a
/// fetch from inside a record batch with the *next* batch, silently skipping the rest of
/// the batch the offset is in; starting a batch's length early gets that batch whole.
/// 10,000 is librdkafka's largest batch by default; other producers batch less.
const REFETCH_MARGIN: i64 = 10_000;
/// How much of an oversized message is kept in its dead letter.
const DEAD_LETTER_KEEP_BYTES: usize = 64 * 1024;
/// How far behind the clock the roll-up of minute buckets into hour buckets stays.
/// Accesses of a minute that was rolled up already cost a batch three writes instead of
/// one (their hour bucket and object row too, see [`Catalogue::record_access`]); staying
/// this far behind keeps a consumer that catches up on a few minutes of backlog (after a restart,
/// a rebalance, or with events that arrive late) on the one-write path. Readers add the
/// minutes not rolled up yet, so this costs them a few more minute rows per object.
const ROLLUP_LAG_MS: i64 = 5 * MINUTE_MS;

/// What the consumer needs to know.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Bootstrap servers.
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Topic of access events.
    pub topic: String,
    /// Topic for dead letters.
    pub dlq_topic: String,
    /// Longest wait before a batch is written.
    pub flush_interval: Duration,
    /// Events after which a batch is written at once.
    pub flush_max_events: usize,
    /// Largest message accepted.
    pub max_event_bytes: usize,
    /// Group session timeout.
    pub session_timeout: Duration,
    /// S3 bucket name -> tier, for bucket notifications.
    pub tier_buckets: HashMap<String, String>,
}

/// What the consumer's parts share: the flush task, the rebalance callback and the
/// reading loop.
struct Shared {
    settings: ConsumerSettings,
    catalogue: Catalogue,
    metrics: Arc<Metrics>,
    detector: Arc<Mutex<Detector>>,
    spikes: mpsc::Sender<Spike>,
    dlq: FutureProducer,
    handle: Handle,
    stop: CancellationToken,
    /// Clock minute of the last roll-up of minute buckets into hour buckets.
    rolled_up_minute: AtomicI64,
}

/// A message that goes to the dead-letter topic.
#[derive(Debug, Clone)]
struct DeadMessage {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    reason: DeadLetter,
    partition: i32,
    offset: i64,
}

/// Counts read from one partition since its offset was last stored.
#[derive(Debug, Default)]
struct PartitionBatch {
    /// Offset stored in the database that this batch continues from.
    stored: Option<i64>,
    /// Next offset to read; messages below it were counted already.
    next: i64,
    /// (object id, minute) -> (hits, latest access in ms).
    counts: HashMap<(String, i64), (i64, i64), foldhash::fast::RandomState>,
    located: Vec<LocatedAccess>,
    dead: Vec<DeadMessage>,
    unknown: u64,
    /// High watermark last reported by the client's statistics.
    high_watermark: Option<i64>,
}

impl PartitionBatch {
    fn starting_at(stored: Option<i64>) -> PartitionBatch {
        PartitionBatch {
            stored,
            next: stored.unwrap_or(0),
            ..PartitionBatch::default()
        }
    }

    fn is_dirty(&self) -> bool {
        self.stored != Some(self.next) && (self.stored.is_some() || self.next > 0)
    }
}

/// Where a partition must be read again from after a flush did not store its batch.
type Rewind = (i32, Option<i64>);

/// The reading loop's state; also touched by the rebalance callback, which runs on the
/// same thread inside `poll`.
#[derive(Default)]
struct LoopState {
    partitions: BTreeMap<i32, PartitionBatch>,
    events_in_batch: usize,
    batch_started: Option<Instant>,
    /// The flush in flight and when it started.
    flushing: Option<(tokio::task::JoinHandle<Vec<Rewind>>, Instant)>,
    /// When the last flush ended and how long it took: while the consumer is behind, it
    /// writes at most half the time.
    last_flush: Option<(Instant, Duration)>,
    /// Partitions to seek after a failed or fenced flush; done by the loop, outside `poll`.
    rewinds: Vec<Rewind>,
}

impl LoopState {
    /// Rows the current batch would write: counts, located accesses and dead letters.
    fn pending_rows(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.counts.len() + p.located.len() + p.dead.len())
            .sum()
    }
}

struct PipelineContext {
    shared: Arc<Shared>,
    state: Mutex<LoopState>,
}

impl ClientContext for PipelineContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.shared.settings.topic) else {
            return;
        };
        let mut state = self.state.lock().expect("consumer state lock");
        for (partition, stats) in &topic.partitions {
            if let Some(batch) = state.partitions.get_mut(partition) {
                batch.high_watermark = (stats.hi_offset >= 0).then_some(stats.hi_offset);
            }
        }
    }
}

impl ConsumerContext for PipelineContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?revoked, "partitions revoked; writing their counts first");
                let mut state = self.state.lock().expect("consumer state lock");
                self.flush_everything(&mut state);
                state.partitions.clear();
                state.rewinds.clear();
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassigning partitions failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error; partitions stay unassigned until the next one");
                let mut state = self.state.lock().expect("consumer state lock");
                state.partitions.clear();
                let _ = consumer.unassign();
            }
        }
        self.shared.metrics.set_lag(BTreeMap::new());
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {}
}

impl PipelineContext {
    /// Starts every assigned partition at the offset stored in the database.
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let shared = &self.shared;
        let stored = loop {
            match shared.handle.block_on(
                shared
                    .catalogue
                    .consumer_offsets(&shared.settings.group_id, &shared.settings.topic),
            ) {
                Ok(offsets) => break offsets,
                Err(e) if !shared.stop.is_cancelled() => {
                    tracing::error!(error = %e, "cannot read stored offsets; retrying before taking the partitions");
                    std::thread::sleep(ASSIGN_RETRY);
                }
                Err(_) => return,
            }
        };
        let stored: HashMap<i32, i64> = stored
            .into_iter()
            .map(|o| (o.partition, o.next_offset))
            .collect();
        let mut state = self.state.lock().expect("consumer state lock");
        let mut starts = Vec::new();
        for element in tpl.elements() {
            starts.push((
                element.topic().to_string(),
                element.partition(),
                stored.get(&element.partition()).copied(),
            ));
        }
        for (topic, partition, offset) in &starts {
            let start = fetch_start(*offset);
            if let Err(e) = tpl.set_partition_offset(topic, *partition, start) {
                tracing::error!(partition, error = %e, "cannot set the start offset");
            }
            state
                .partitions
                .insert(*partition, PartitionBatch::starting_at(*offset));
        }
        tracing::info!(
            assigned = ?starts.iter().map(|(_, p, o)| (*p, *o)).collect::<Vec<_>>(),
            "partitions assigned; reading from the offsets stored with the counts"
        );
        if let Err(e) = consumer.assign(tpl) {
            tracing::error!(error = %e, "assigning partitions failed");
        }
        let shared = self.shared.clone();
        self.shared
            .handle
            .spawn(async move { shared.warm_detector().await });
    }

    /// Waits for the flush in flight, if any, and records what must be read again.
    fn finish_flushing(&self, state: &mut LoopState) {
        if let Some((task, started)) = state.flushing.take() {
            match self.shared.handle.block_on(task) {
                Ok(rewinds) => state.rewinds.extend(rewinds),
                Err(e) => tracing::error!(error = %e, "flush task failed"),
            }
            state.last_flush = Some((Instant::now(), started.elapsed()));
        }
    }

    /// Writes everything read so far and waits until it is written (before partitions
    /// go, and at shutdown).
    fn flush_everything(&self, state: &mut LoopState) {
        self.finish_flushing(state);
        self.start_flush(state);
        self.finish_flushing(state);
    }

    /// Hands the current batch to a flush task.
    fn start_flush(&self, state: &mut LoopState) {
        let mut batch = Vec::new();
        let mut dead = Vec::new();
        let mut unknown = 0;
        for (&partition, part) in state.partitions.iter_mut() {
            if !part.is_dirty() {
                continue;
            }
            let counts = part
                .counts
                .drain()
                .map(|((object_id, _), (hits, at_ms))| AccessCount {
                    object_id,
                    at_ms,
                    hits,
                })
                .collect();
            batch.push(PartitionAccesses {
                partition,
                from_offset: part.stored,
                to_offset: part.next,
                counts,
                located: std::mem::take(&mut part.located),
            });
            dead.append(&mut part.dead);
            unknown += std::mem::take(&mut part.unknown);
            part.stored = Some(part.next);
        }
        state.events_in_batch = 0;
        state.batch_started = None;
        if batch.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        state.flushing = Some((
            self.shared
                .handle
                .spawn(async move { shared.flush(batch, dead, unknown).await }),
            Instant::now(),
        ));
    }
}

impl Shared {
    /// Writes one batch; returns the partitions to read again because it was not stored.
    ///
    /// Each partition is written in its own transaction, all of them at once: a
    /// partition's counts and its offset still commit together, which is all that
    /// exactly-once needs, and the database works on them with several connections (a
    /// batch touching every active object took the longest, and on one connection it
    /// used one core).
    async fn flush(
        &self,
        batch: Vec<PartitionAccesses>,
        dead: Vec<DeadMessage>,
        unknown: u64,
    ) -> Vec<Rewind> {
        let started = Instant::now();
        if let Err(e) = self.send_dead_letters(&dead).await {
            tracing::error!(error = %e, "cannot write to the dead-letter topic; the batch will be read again");
            return batch.iter().map(|p| (p.partition, p.from_offset)).collect();
        }
        let writes = batch.iter().map(|part| {
            self.catalogue.record_access(
                &self.settings.group_id,
                &self.settings.topic,
                std::slice::from_ref(part),
            )
        });
        let mut rewinds = Vec::new();
        let mut counted = 0;
        let mut unknown = unknown;
        let mut resolved = Vec::new();
        for (part, written) in batch.iter().zip(join_all(writes).await) {
            match written {
                Ok(recorded) => {
                    counted += recorded.counted_hits;
                    unknown += recorded.unknown;
                    resolved.extend(recorded.resolved);
                    if !recorded.fenced.is_empty() {
                        tracing::warn!(fenced = ?recorded.fenced, "another consumer moved this partition on; its batch was dropped");
                    }
                    rewinds.extend(recorded.fenced);
                }
                Err(e) => {
                    tracing::error!(partition = part.partition, error = %e, "cannot write access counts; the partition's batch will be read again");
                    rewinds.push((part.partition, part.from_offset));
                }
            }
        }
        // Dead letters of a partition read again are sent again and counted then.
        for dead in dead
            .iter()
            .filter(|d| rewinds.iter().all(|r| r.0 != d.partition))
        {
            self.metrics.record_dead_letter(dead.reason.code());
        }
        tracing::debug!(
            partitions = ?batch.iter().map(|p| (p.partition, p.from_offset, p.to_offset)).collect::<Vec<_>>(),
            counted,
            unknown,
            dead_letters = dead.len(),
            rewinds = rewinds.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "batch written"
        );
        self.metrics
            .record_flush(counted, unknown, started.elapsed());
        self.feed_detector(&resolved).await;
        self.roll_up_hours().await;
        rewinds
    }

    /// Rolls the minute buckets older than [`ROLLUP_LAG_MS`] up into their hour buckets,
    /// once a minute (see [`Catalogue::roll_up_hours`]); a failure is retried after the
    /// next batch, and readers are exact meanwhile.
    async fn roll_up_hours(&self) {
        let now = now_ms();
        let minute = now.div_euclid(MINUTE_MS);
        if self.rolled_up_minute.swap(minute, Ordering::Relaxed) == minute {
            return;
        }
        let started = Instant::now();
        match self.catalogue.roll_up_hours(now - ROLLUP_LAG_MS).await {
            Ok(mark) => tracing::debug!(
                mark,
                took_ms = started.elapsed().as_millis() as u64,
                "minute buckets rolled up into hour buckets"
            ),
            Err(e) => {
                self.rolled_up_minute.store(i64::MIN, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot roll minute buckets up into hour buckets; trying again after the next batch");
            }
        }
    }

    async fn send_dead_letters(&self, dead: &[DeadMessage]) -> KafkaResult<()> {
        let mut deliveries = Vec::with_capacity(dead.len());
        for d in dead {
            let reason = d.reason.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "strata-dlq-reason",
                    value: Some(reason.as_str()),
                })
                .insert(Header {
                    key: "strata-dlq-code",
                    value: Some(d.reason.code()),
                })
                .insert(Header {
                    key: "strata-source",
                    value: Some(&format!(
                        "{}/{}/{}",
                        self.settings.topic, d.partition, d.offset
                    )),
                });
            let mut record = FutureRecord::to(&self.settings.dlq_topic)
                .payload(&d.value)
                .headers(headers);
            if let Some(key) = &d.key {
                record = record.key(key);
            }
            deliveries.push(self.dlq.send(record, Duration::from_secs(10)));
        }
        for delivery in deliveries {
            delivery.await.map_err(|(e, _)| e)?;
        }
        Ok(())
    }

    /// Counts accesses that named the object by bucket and key in the detector, now
    /// that the catalogue resolved them.
    async fn feed_detector(&self, resolved: &[AccessCount]) {
        let now = now_ms();
        let spikes: Vec<Spike> = {
            let mut detector = self.detector.lock().expect("detector lock");
            resolved
                .iter()
                .filter_map(|c| detector.observe(&c.object_id, c.at_ms, c.hits as u64, now))
                .collect()
        };
        for spike in spikes {
            if self.spikes.send(spike).await.is_err() {
                break;
            }
        }
    }

    /// Gives the detector the last hour of every recently accessed object as its
    /// baseline, so that a consumer taking partitions over does not mistake a busy
    /// object's usual traffic for a spike. Objects it already tracks keep their state.
    async fn warm_detector(&self) {
        let now = now_ms();
        match self.catalogue.recent_hits(now - 60 * MINUTE_MS).await {
            Ok(history) => {
                let mut detector = self.detector.lock().expect("detector lock");
                let windows_per_hour = 3_600_000.0 / detector.window_ms() as f64;
                for (object_id, hits) in &history {
                    detector.warm(object_id, *hits as f64 / windows_per_hour);
                }
                self.metrics.set_detector_tracked(detector.tracked());
                tracing::info!(
                    objects = history.len(),
                    "spike detector warmed up from the last hour of access history"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read access history to warm the spike detector; it starts cold")
            }
        }
    }
}

/// Runs the consumer until `stop`: reads, counts, flushes. Returns after the last batch
/// was written (or given up on: it is read again on the next start).
pub async fn run(
    settings: ConsumerSettings,
    catalogue: Catalogue,
    detector: Arc<Mutex<Detector>>,
    spikes: mpsc::Sender<Spike>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let dlq: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("linger.ms", "5")
        .set(
            "message.max.bytes",
            (DEAD_LETTER_KEEP_BYTES * 2).to_string(),
        )
        .create()?;
    let shared = Arc::new(Shared {
        settings,
        catalogue,
        metrics,
        detector: detector.clone(),
        spikes,
        dlq,
        handle: Handle::current(),
        stop: stop.clone(),
        rolled_up_minute: AtomicI64::new(i64::MIN),
    });
    let ticker = tokio::spawn(tick_detector(shared.clone()));
    let reader = shared.clone();
    let result = tokio::task::spawn_blocking(move || read_loop(reader)).await;
    ticker.abort();
    result?
}

/// Collects settled bursts between flushes, so a burst's report does not wait for more
/// events, and forgets idle objects now and then.
async fn tick_detector(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(SPIKE_TICK);
    let mut last_forget = Instant::now();
    loop {
        tick.tick().await;
        let now = now_ms();
        let spikes = {
            let mut detector = shared.detector.lock().expect("detector lock");
            if last_forget.elapsed() >= FORGET_INTERVAL {
                detector.forget_idle(now);
                shared.metrics.set_detector_tracked(detector.tracked());
                last_forget = Instant::now();
            }
            detector.due(now)
        };
        for spike in spikes {
            if shared.spikes.send(spike).await.is_err() {
                return;
            }
        }
    }
}

fn read_loop(shared: Arc<Shared>) -> anyhow::Result<()> {
    let settings = &shared.settings;
    let context = PipelineContext {
        shared: shared.clone(),
        state: Mutex::new(LoopState::default()),
    };
    let consumer: BaseConsumer<PipelineContext> = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "2000")
        .set(
            "session.timeout.ms",
            settings.session_timeout.as_millis().to_string(),
        )
        .create_with_context(context)?;
    consumer.subscribe(&[&settings.topic])?;
    tracing::info!(topic = %settings.topic, group = %settings.group_id, "consuming access events");
    let mut last_lag = Instant::now();
    while !shared.stop.is_cancelled() {
        let message = consumer.poll(POLL_INTERVAL);
        let caught_up = message.is_none();
        // One monotonic clock reading per message serves every interval check below.
        let tick = Instant::now();
        let context = consumer.context();
        let mut state = context.state.lock().expect("consumer state lock");
        match message {
            None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            Some(Ok(message)) => {
                shared.metrics.record_read(1);
                let now = now_ms();
                let fallback = message.timestamp().to_millis().unwrap_or(now);
                let partition = message.partition();
                let offset = message.offset();
                let Some(part) = state.partitions.get_mut(&partition) else {
                    continue;
                };
                if offset < part.next {
                    continue;
                }
                part.next = offset + 1;
                match decode(message.payload(), settings.max_event_bytes, fallback, now) {
                    Ok(accesses) => {
                        for access in accesses {
                            if let AccessTarget::Object(object_id) = &access.target {
                                observe(&shared, object_id, access.at_ms, now);
                            }
                            count_access(part, access, &settings.tier_buckets);
                        }
                    }
                    Err(reason) => {
                        let value = message.payload().unwrap_or_default();
                        part.dead.push(DeadMessage {
                            key: message.key().map(<[u8]>::to_vec),
                            value: value[..value.len().min(DEAD_LETTER_KEEP_BYTES)].to_vec(),
                            reason,
                            partition,
                            offset,
                        });
                    }
                }
                state.events_in_batch += 1;
                state.batch_started.get_or_insert(tick);
            }
        }
        let flush_in_flight = state
            .flushing
            .as_ref()
            .is_some_and(|(t, _)| !t.is_finished());
        if !flush_in_flight {
            context.finish_flushing(&mut state);
            rewind(&consumer, &mut state, &settings.topic);
            let due = state.events_in_batch >= settings.flush_max_events
                || state
                    .batch_started
                    .is_some_and(|t| tick.duration_since(t) >= settings.flush_interval)
                || (state.events_in_batch == 0
                    && state.partitions.values().any(PartitionBatch::is_dirty));
            if due && writer_rested(caught_up, state.last_flush, tick) {
                context.start_flush(&mut state);
            }
        } else if state.pending_rows() >= settings.flush_max_events.saturating_mul(4) {
            // The database is behind. Events of objects already in the batch only add to
            // a count, so reading on costs nothing and makes the next write do more per
            // row; only rows the batch would have to write are bounded.
            context.finish_flushing(&mut state);
        }
        if tick.duration_since(last_lag) >= Duration::from_secs(1) {
            let lag = state
                .partitions
                .iter()
                .filter_map(|(p, b)| b.high_watermark.map(|hw| (*p, (hw - b.next).max(0))))
                .collect();
            shared.metrics.set_lag(lag);
            last_lag = tick;
        }
    }
    tracing::info!("stopping the consumer; writing the last counts");
    let context = consumer.context();
    context.flush_everything(&mut context.state.lock().expect("consumer state lock"));
    consumer.unsubscribe();
    Ok(())
}

/// Whether a due batch may be written now, given whether the last poll found the
/// consumer caught up and when the last write ended and how long it took. Behind the
/// log, a write costs about the same however many events it carries (it touches every
/// active object once), so the consumer reads on for as long as the last write took:
/// half as many writes, each carrying twice the events. Caught up, it writes at once.
fn writer_rested(caught_up: bool, last_flush: Option<(Instant, Duration)>, now: Instant) -> bool {
    caught_up || last_flush.is_none_or(|(ended, took)| now.duration_since(ended) >= took)
}

/// Where to fetch from to read a partition from its stored offset (see
/// [`REFETCH_MARGIN`]).
fn fetch_start(stored: Option<i64>) -> Offset {
    match stored {
        Some(offset) if offset > REFETCH_MARGIN => Offset::Offset(offset - REFETCH_MARGIN),
        _ => Offset::Beginning,
    }
}

/// Shows one access to the detector as soon as it is read: spotting a spike must not wait
/// for the batch to be written. (After a crash, re-read events are shown again; the
/// cool-down and the one-active-move-per-object rule keep that from causing a second
/// move.)
fn observe(shared: &Shared, object_id: &str, at_ms: i64, now_ms: i64) {
    let spike = shared
        .detector
        .lock()
        .expect("detector lock")
        .observe(object_id, at_ms, 1, now_ms);
    if let Some(spike) = spike
        && let Err(e) = shared.spikes.try_send(spike)
    {
        tracing::warn!(error = %e, "the policy is behind; a spike was dropped");
    }
}

/// Adds one decoded access to a partition's batch.
fn count_access(
    part: &mut PartitionBatch,
    access: super::Access,
    tier_buckets: &HashMap<String, String>,
) {
    match access.target {
        AccessTarget::Object(object_id) => {
            let minute = access.at_ms.div_euclid(MINUTE_MS);
            let entry = part
                .counts
                .entry((object_id, minute))
                .or_insert((0, access.at_ms));
            entry.0 += 1;
            entry.1 = entry.1.max(access.at_ms);
        }
        AccessTarget::Stored { bucket, key } => match tier_buckets.get(&bucket) {
            Some(tier) => part.located.push(LocatedAccess {
                tier: tier.clone(),
                key,
                at_ms: access.at_ms,
            }),
            None => part.unknown += 1,
        },
    }
}

/// Seeks the partitions whose batch was not stored back to their stored offset.
fn rewind(consumer: &BaseConsumer<PipelineContext>, state: &mut LoopState, topic: &str) {
    for (partition, offset) in std::mem::take(&mut state.rewinds) {
        let Some(part) = state.partitions.get_mut(&partition) else {
            continue;
        };
        *part = PartitionBatch {
            high_watermark: part.high_watermark,
            ..PartitionBatch::starting_at(offset)
        };
        if let Err(e) = consumer.seek(
            topic,
            partition,
            fetch_start(offset),
            Duration::from_secs(5),
        ) {
            tracing::error!(partition, error = %e, "cannot seek back to the stored offset");
        } else {
            tracing::info!(partition, offset, "reading again from the stored offset");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behind_the_log_the_writer_rests_as_long_as_it_last_wrote() {
        let ended = Instant::now();
        let took = Duration::from_millis(800);
        let at = |ms| ended + Duration::from_millis(ms);
        assert!(writer_rested(false, None, ended), "first write");
        assert!(!writer_rested(false, Some((ended, took)), at(799)));
        assert!(writer_rested(false, Some((ended, took)), at(800)));
        assert!(
            writer_rested(true, Some((ended, took)), at(1)),
            "caught up: at once"
        );
    }
}
