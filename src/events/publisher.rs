//! Publishing access events: one per object read, N for a simulated access.
//!
//! Publishing never waits for the broker. Events go into the producer's bounded queue
//! (`KAFKA_PRODUCER_QUEUE`) and are delivered in the background; when the queue cannot
//! take a request's events, the request is refused whole with
//! [`PublishError::QueueFull`] (the API answers 503) instead of hanging. An event the
//! broker never acknowledges (`message.timeout.ms`) is dropped, counted
//! (`strata_events_undelivered_total`) and said in the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, Message};

use super::AccessEvent;
use super::broker_watch::BrokerWatch;
use crate::metrics::Metrics;

/// Why events could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The producer queue is full: the broker (or, embedded, the consumer) is slow or down.
    #[error("the event queue is full ({queued} events waiting to be delivered or read)")]
    QueueFull {
        /// Events waiting.
        queued: usize,
    },
    /// The producer refused the event for another reason.
    #[error("cannot publish the access event: {0}")]
    Kafka(#[from] KafkaError),
}

/// How long one poll for the producer's delivery reports lasts. rust-rdkafka spins
/// through the last millisecond of every poll, so a long one costs less idle CPU; it
/// also bounds how long the polling thread outlives its publisher.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The producer's client context: the broker watch, and its delivery reports counted.
struct Deliveries {
    watch: BrokerWatch,
    metrics: Arc<Metrics>,
    /// Set when the publisher is dropped: it tells the polling thread to end, and the
    /// producer lives on until the current poll ends, while its broker may stop first
    /// (the embedded one), which is no news then.
    closed: AtomicBool,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if self.closed.load(Ordering::Relaxed) {
            tracing::debug!(target: "librdkafka", client = "publisher", "{fac} {message}");
        } else {
            self.watch.log(level, fac, message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.closed.load(Ordering::Relaxed) {
            tracing::debug!(client = "publisher", %error, reason, "event broker error after close");
        } else {
            self.watch.error(error, reason);
        }
    }

    fn stats(&self, statistics: Statistics) {
        self.watch.stats(statistics);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            self.metrics.record_undelivered(1);
            let key = message.key().map(String::from_utf8_lossy);
            self.watch
                .undelivered(error, key.as_deref().unwrap_or_default());
        }
    }
}

/// Publishes access events on the access topic, keyed by object id so that one object's
/// events stay in one partition, in order.
pub struct AccessPublisher {
    producer: Arc<BaseProducer<Deliveries>>,
    topic: String,
    capacity: usize,
    max_unread: Option<u64>,
    metrics: Arc<Metrics>,
}

impl AccessPublisher {
    /// A publisher on `brokers`, buffering at most `capacity` events; `settings` are
    /// further librdkafka producer settings (the embedded broker's, say).
    pub fn new(
        brokers: &str,
        topic: &str,
        capacity: usize,
        settings: &[(&str, &str)],
        metrics: Arc<Metrics>,
    ) -> Result<AccessPublisher, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("queue.buffering.max.messages", capacity.to_string())
            .set("linger.ms", "5")
            // Give up on an event after this long without the broker rather than keeping
            // the queue full forever; the request that published it has long returned.
            .set("message.timeout.ms", "60000");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        let producer: Arc<BaseProducer<Deliveries>> =
            Arc::new(config.create_with_context(Deliveries {
                watch: BrokerWatch::new("publisher"),
                metrics: metrics.clone(),
                closed: AtomicBool::new(false),
            })?);
        let polled = producer.clone();
        std::thread::Builder::new()
            .name("event publisher".into())
            .spawn(move || {
                while !polled.context().closed.load(Ordering::Relaxed) {
                    polled.poll(POLL_INTERVAL);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("cannot start its thread: {e}")))?;
        Ok(AccessPublisher {
            producer,
            topic: topic.into(),
            capacity,
            max_unread: None,
            metrics,
        })
    }

    /// Also refuses events while more than `max_unread` published events wait for this
    /// process's consumer: for a broker that drops what is not read soon enough (the
    /// embedded one).
    pub fn limit_unread(mut self, max_unread: u64) -> AccessPublisher {
        self.max_unread = Some(max_unread);
        self
    }

    /// Queues `count` reads of `object_id` at `at_ms`. All or nothing: when the queue
    /// cannot take all of them, none is queued.
    pub fn publish_reads(
        &self,
        object_id: &str,
        count: u64,
        at_ms: i64,
    ) -> Result<(), PublishError> {
        let in_flight = usize::try_from(self.producer.in_flight_count()).unwrap_or(0);
        // Only a limited publisher counts what its own consumer has not read: with a
        // real broker, other processes may read what this one publishes.
        let unread = self
            .max_unread
            .map(|max| (self.metrics.events_unread(), max));
        let queued = match unread {
            Some((unread, max)) if unread.saturating_add(count) > max => {
                Some(usize::try_from(unread).unwrap_or(usize::MAX))
            }
            _ if in_flight.saturating_add(count as usize) > self.capacity => Some(in_flight),
            _ => None,
        };
        if let Some(queued) = queued {
            self.metrics.record_publish_refused();
            return Err(PublishError::QueueFull { queued });
        }
        let payload = serde_json::to_vec(&AccessEvent::read(object_id, at_ms, None))
            .expect("an access event always serializes");
        for sent in 0..count {
            let record = BaseRecord::to(&self.topic).key(object_id).payload(&payload);
            if let Err((e, _)) = self.producer.send(record) {
                self.metrics.record_published(sent);
                return Err(match e {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                        self.metrics.record_publish_refused();
                        PublishError::QueueFull { queued: in_flight }
                    }
                    other => PublishError::Kafka(other),
                });
            }
        }
        self.metrics.record_published(count);
        Ok(())
    }

    /// Waits up to `timeout` for queued events to reach the broker (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

impl Drop for AccessPublisher {
    fn drop(&mut self) {
        // The thread ends with its current poll; nothing waits for it.
        self.producer
            .context()
            .closed
            .store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn events_the_broker_never_acknowledges_are_counted_and_not_waited_for() {
        let metrics = Arc::new(Metrics::default());
        // No broker listens on port 1: every event times out undelivered.
        let publisher = AccessPublisher::new(
            "127.0.0.1:1",
            "accesses",
            100,
            &[("message.timeout.ms", "200")],
            metrics.clone(),
        )
        .unwrap()
        .limit_unread(5);
        publisher.publish_reads("a", 5, 0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rendered = String::new();
        while !rendered.contains("strata_events_undelivered_total 5") {
            assert!(Instant::now() < deadline, "{rendered}");
            std::thread::sleep(Duration::from_millis(50));
            rendered.clear();
            metrics.render(&mut rendered);
        }
        // Dropped events no longer count as waiting for the consumer, which would keep
        // refusing new ones.
        assert_eq!(metrics.events_unread(), 0);
        publisher.publish_reads("b", 5, 0).unwrap();
    }
}
