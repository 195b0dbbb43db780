//! The embedded event broker: with no `KAFKA_BROKERS`, access events flow through
//! librdkafka's in-process mock cluster, so that `strata serve` counts accesses, detects
//! spikes and forecasts with nothing else running.
//!
//! The producer and the consumer reach it through the ordinary client path: the cluster
//! listens on a loopback port and its bootstrap string stands in for `KAFKA_BROKERS`, so
//! embedded mode runs exactly the code that production runs against Kafka.
//!
//! Limits, all of them stated in the start-up log:
//! - The broker keeps its log in memory. Events published but not yet counted when the
//!   process stops are lost; everything counted is in the catalogue, which persists.
//!   Because the log starts empty on every start, the offsets stored with the counts of
//!   the previous run mean nothing here and are forgotten at start-up.
//! - Each partition keeps only its newest 5 MB of record batches (fixed inside
//!   librdkafka); a consumer further behind than that would miss the oldest events. So
//!   the topics get one partition (several partitions and a subscribed group lost most
//!   of a million events in a trial), the producer compresses with LZ4
//!   ([`PRODUCER_SETTINGS`]), and publishing is refused (503, retry later) while more
//!   than [`MAX_UNREAD_EVENTS`] events wait for the consumer: a million events
//!   published before the consumer started overflowed the retention even compressed.
//! - The broker belongs to one process: several processes sharing one catalogue need a
//!   real broker.

use std::thread::JoinHandle;

use anyhow::Context;
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use tokio::sync::oneshot;

use crate::config::EventsConfig;
use crate::db::Catalogue;

/// Partitions of each topic on the embedded broker (see the module documentation).
pub const PARTITIONS: i32 = 1;

/// Most published events that may wait for the consumer; beyond it, requests that
/// publish get 503 until it catches up. The events of one simulated access are
/// identical and compress to a few bytes each, so the largest request (100,000 events)
/// fits in the retention with room to spare; a million did not.
pub const MAX_UNREAD_EVENTS: u64 = 100_000;

/// Producer settings on the embedded broker, on top of the usual ones: batches are
/// compressed so that far more events fit in the broker's per-partition retention.
pub const PRODUCER_SETTINGS: &[(&str, &str)] = &[("compression.type", "lz4")];

/// An in-process mock Kafka cluster with the access and dead-letter topics, alive until
/// dropped.
///
/// librdkafka's mock cluster handle may not move between threads, so it lives on a
/// thread of its own, which waits for the drop and then destroys it.
pub struct EmbeddedBroker {
    bootstrap_servers: String,
    /// Dropping it tells the broker thread to shut the cluster down.
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts the cluster, creates the access and dead-letter topics of `events`, and
    /// forgets the offsets a previous run stored for them in `catalogue`.
    pub async fn start(events: &EventsConfig, catalogue: &Catalogue) -> anyhow::Result<Self> {
        let topics = [events.access_topic.clone(), events.dlq_topic.clone()];
        let (ready, started) = oneshot::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                let cluster = match new_cluster(&topics) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                if ready.send(Ok(cluster.bootstrap_servers())).is_ok() {
                    // Returns when the sender is dropped: the broker's owner is gone.
                    let _ = stopped.recv();
                }
                drop(cluster);
            })
            .context("starting the embedded broker thread")?;
        let mut broker = EmbeddedBroker {
            bootstrap_servers: String::new(),
            stop: Some(stop),
            thread: Some(thread),
        };
        broker.bootstrap_servers = started
            .await
            .context("the embedded broker thread ended before the broker started")?
            .context("starting librdkafka's mock cluster")?;
        catalogue
            .forget_consumer_offsets(&events.group_id, &events.access_topic)
            .await
            .context("forgetting the offsets of the previous embedded broker")?;
        tracing::warn!(
            bootstrap_servers = %broker.bootstrap_servers,
            topic = %events.access_topic,
            "access events run on an EMBEDDED in-process broker (librdkafka's mock cluster): \
             events published but not yet counted are lost when the process stops; \
             set KAFKA_BROKERS=host:port for production"
        );
        Ok(broker)
    }

    /// The `host:port` list clients connect to, as `KAFKA_BROKERS` would give it.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }
}

impl Drop for EmbeddedBroker {
    /// Shuts the cluster down and waits for its thread; drop the clients first, or
    /// they retry against a broker that is gone until their own timeouts.
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the embedded broker thread panicked");
            } else {
                tracing::info!("embedded broker stopped");
            }
        }
    }
}

/// A one-broker mock cluster with `topics`, each of [`PARTITIONS`] partitions.
fn new_cluster(
    topics: &[String],
) -> Result<MockCluster<'static, rdkafka::producer::DefaultProducerContext>, KafkaError> {
    let cluster = MockCluster::new(1)?;
    for topic in topics {
        cluster.create_topic(topic, PARTITIONS, 1)?;
    }
    Ok(cluster)
}
