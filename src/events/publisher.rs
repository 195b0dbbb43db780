//! Publishing access events: one per object read, N for a simulated access.
//!
//! Publishing never waits for the broker. Events go into the producer's bounded queue
//! (`KAFKA_PRODUCER_QUEUE`) and are delivered in the background; when the queue cannot
//! take a request's events, the request is refused whole with
//! [`PublishError::QueueFull`] (the API answers 503) instead of hanging.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

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

/// Publishes access events on the access topic, keyed by object id so that one object's
/// events stay in one partition, in order.
pub struct AccessPublisher {
    producer: FutureProducer<BrokerWatch>,
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
        let producer = config.create_with_context(BrokerWatch::new("publisher"))?;
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
            let record = FutureRecord::to(&self.topic)
                .key(object_id)
                .payload(&payload);
            if let Err((e, _)) = self.producer.send_result(record) {
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
