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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::KafkaProperties;
use anyhow::bail;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod flush;
mod rebalance;

use rebalance::fetch_start;

use super::broker_watch::BrokerWatch;
use super::{AccessTarget, DeadLetter, decode};
use crate::db::{Catalogue, LocatedAccess, MINUTE_MS};
use crate::detector::{Detector, Spike};
use crate::health::{BrokerLink, Health};
use crate::metrics::Metrics;
use crate::timestamp::now_ms;

/// How long the consumer waits for a message before checking timers.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Retry delay when the database cannot be reached while assigning partitions.
const ASSIGN_RETRY: Duration = Duration::from_secs(1);
/// How often the detector's settled bursts are collected.
const SPIKE_TICK: Duration = Duration::from_millis(50);
/// How often idle objects are dropped from the detector.
const FORGET_INTERVAL: Duration = Duration::from_secs(60);
/// How much of an oversized message is kept in its dead letter.
const DEAD_LETTER_KEEP_BYTES: usize = 64 * 1024;

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
    /// How long to wait for a first broker before giving up; `None` waits on.
    pub startup_timeout: Option<Duration>,
    /// TLS, SASL and other librdkafka properties for both clients.
    pub properties: KafkaProperties,
}

/// What the consumer's parts share: the flush task, the rebalance callback and the
/// reading loop.
struct Shared {
    settings: ConsumerSettings,
    catalogue: Catalogue,
    metrics: Arc<Metrics>,
    detector: Arc<Mutex<Detector>>,
    spikes: mpsc::Sender<Spike>,
    /// Made at the first dead letter: an idle librdkafka producer still costs a thread
    /// that wakes every 100 ms, and a connection to the broker.
    dlq: OnceLock<FutureProducer<BrokerWatch>>,
    health: Arc<Health>,
    handle: Handle,
    stop: CancellationToken,
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
    watch: BrokerWatch,
}

/// Runs the consumer until `stop`: reads, counts, flushes. Returns after the last batch
/// was written (or given up on: it is read again on the next start).
pub async fn run(
    settings: ConsumerSettings,
    catalogue: Catalogue,
    detector: Arc<Mutex<Detector>>,
    spikes: mpsc::Sender<Spike>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        settings,
        catalogue,
        metrics,
        detector: detector.clone(),
        spikes,
        dlq: OnceLock::new(),
        health,
        handle: Handle::current(),
        stop: stop.clone(),
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
    let consumer = subscribe(&shared)?;
    let started = Instant::now();
    let mut last_lag = started;
    let mut reached_broker = false;
    while !shared.stop.is_cancelled() {
        let message = consumer.poll(POLL_INTERVAL);
        if !reached_broker {
            reached_broker = shared.health.broker().link == BrokerLink::Up;
            if let Some(timeout) = settings.startup_timeout
                && !reached_broker
                && started.elapsed() >= timeout
            {
                bail!(
                    "no event broker reachable at {} within {timeout:?} of the start (KAFKA_STARTUP_TIMEOUT_MS)",
                    settings.brokers
                );
            }
        }
        let caught_up = message.is_none();
        // One monotonic clock reading per message serves every interval check below.
        let tick = Instant::now();
        let context = consumer.context();
        let mut state = context.state.lock().expect("consumer state lock");
        match message {
            None => {}
            Some(Err(e)) => context.watch.poll_error(&e),
            Some(Ok(message)) if count_message(&shared, &mut state, &message) => {
                state.events_in_batch += 1;
                state.batch_started.get_or_insert(tick);
            }
            Some(Ok(_)) => {}
        }
        write_when_due(&consumer, &mut state, caught_up, tick);
        if tick.duration_since(last_lag) >= Duration::from_secs(1) {
            report_lag(&shared, &state);
            last_lag = tick;
        }
    }
    tracing::info!("stopping the consumer; writing the last counts");
    let context = consumer.context();
    context.flush_everything(&mut context.state.lock().expect("consumer state lock"));
    consumer.unsubscribe();
    Ok(())
}

impl Shared {
    /// The dead-letter producer, made on first use.
    fn dead_letters(&self) -> KafkaResult<&FutureProducer<BrokerWatch>> {
        if let Some(producer) = self.dlq.get() {
            return Ok(producer);
        }
        let producer = client_config(&self.settings)
            .set("bootstrap.servers", &self.settings.brokers)
            .set("linger.ms", "5")
            .set(
                "message.max.bytes",
                (DEAD_LETTER_KEEP_BYTES * 2).to_string(),
            )
            .create_with_context(BrokerWatch::new("dead-letter producer"))?;
        Ok(self.dlq.get_or_init(|| producer))
    }
}

/// A client configuration with the deployment's TLS, SASL and other properties.
fn client_config(settings: &ConsumerSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (name, value) in settings.properties.pairs() {
        config.set(name, value);
    }
    config
}

/// The consumer of the access topic, subscribed; offsets are never committed to Kafka
/// (they are stored with the counts).
fn subscribe(shared: &Arc<Shared>) -> anyhow::Result<BaseConsumer<PipelineContext>> {
    let settings = &shared.settings;
    let context = PipelineContext {
        shared: shared.clone(),
        state: Mutex::new(LoopState::default()),
        watch: BrokerWatch::new("consumer").reporting_to(shared.health.clone()),
    };
    let consumer: BaseConsumer<PipelineContext> = client_config(settings)
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
    Ok(consumer)
}

/// Counts one message into its partition's batch (or keeps it as a dead letter); false
/// when it was not new (its partition is not ours, or it was counted already).
fn count_message(shared: &Shared, state: &mut LoopState, message: &BorrowedMessage<'_>) -> bool {
    let settings = &shared.settings;
    shared.metrics.record_read(1);
    let now = now_ms();
    let fallback = message.timestamp().to_millis().unwrap_or(now);
    let partition = message.partition();
    let offset = message.offset();
    let Some(part) = state.partitions.get_mut(&partition) else {
        return false;
    };
    if offset < part.next {
        return false;
    }
    part.next = offset + 1;
    match decode(message.payload(), settings.max_event_bytes, fallback, now) {
        Ok(accesses) => {
            for access in accesses {
                if let AccessTarget::Object(object_id) = &access.target {
                    observe(shared, object_id, access.at_ms, now);
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
    true
}

/// Starts writing the batch when it is due and the writer has rested, once the write
/// in flight (if any) is done.
fn write_when_due(
    consumer: &BaseConsumer<PipelineContext>,
    state: &mut LoopState,
    caught_up: bool,
    tick: Instant,
) {
    let context = consumer.context();
    let settings = &context.shared.settings;
    let flush_in_flight = state
        .flushing
        .as_ref()
        .is_some_and(|(t, _)| !t.is_finished());
    if !flush_in_flight {
        context.finish_flushing(state);
        rewind(consumer, state, &settings.topic);
        let due = state.events_in_batch >= settings.flush_max_events
            || state
                .batch_started
                .is_some_and(|t| tick.duration_since(t) >= settings.flush_interval)
            || (state.events_in_batch == 0
                && state.partitions.values().any(PartitionBatch::is_dirty));
        if due && writer_rested(caught_up, state.last_flush, tick) {
            context.start_flush(state);
        }
    } else if state.pending_rows() >= settings.flush_max_events.saturating_mul(4) {
        // The database is behind. Events of objects already in the batch only add to
        // a count, so reading on costs nothing and makes the next write do more per
        // row; only rows the batch would have to write are bounded.
        context.finish_flushing(state);
    }
}

/// Publishes each partition's lag behind its high watermark.
fn report_lag(shared: &Shared, state: &LoopState) {
    let lag = state
        .partitions
        .iter()
        .filter_map(|(p, b)| b.high_watermark.map(|hw| (*p, (hw - b.next).max(0))))
        .collect();
    shared.metrics.set_lag(lag);
}

/// Whether a due batch may be written now, given whether the last poll found the
/// consumer caught up and when the last write ended and how long it took. Behind the
/// log, a write costs about the same however many events it carries (it touches every
/// active object once), so the consumer reads on for as long as the last write took:
/// half as many writes, each carrying twice the events. Caught up, it writes at once.
fn writer_rested(caught_up: bool, last_flush: Option<(Instant, Duration)>, now: Instant) -> bool {
    caught_up || last_flush.is_none_or(|(ended, took)| now.duration_since(ended) >= took)
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
