//! The librdkafka client context of our Kafka clients: librdkafka's warnings and errors
//! said once per interval for each kind, whichever client saw them (an outage otherwise
//! writes many lines a second, the same from every client), and, for the consumer, the
//! broker's state reported to readiness.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;

use crate::health::{BrokerLink, Health, Repeats};

/// How often one kind of broker error is written while it keeps recurring.
const REPEAT_INTERVAL: Duration = Duration::from_secs(30);

/// What the process's Kafka clients said lately: one outage, one set of lines.
static REPEATS: LazyLock<Repeats> = LazyLock::new(|| Repeats::new(REPEAT_INTERVAL));

/// Watches one Kafka client's log, errors and statistics.
pub struct BrokerWatch {
    client: &'static str,
    health: Option<Arc<Health>>,
    /// The last refused sign-in or handshake, with the settings to check: a more useful
    /// reason for "all brokers down" than that line itself.
    refused: Mutex<Option<String>>,
}

impl BrokerWatch {
    /// A watch over the client named `client` in the log.
    pub fn new(client: &'static str) -> BrokerWatch {
        BrokerWatch {
            client,
            health: None,
            refused: Mutex::new(None),
        }
    }

    /// Also reports whether a broker is reachable to `health`.
    pub fn reporting_to(mut self, health: Arc<Health>) -> BrokerWatch {
        self.health = Some(health);
        self
    }

    /// Reports a broker link seen otherwise than through librdkafka's callbacks (the
    /// consumer was given partitions, say).
    pub fn report(&self, link: BrokerLink) {
        if let Some(health) = &self.health {
            health.set_broker_link(link);
        }
    }

    /// Logs an error a poll returned, once per interval for each kind.
    pub fn poll_error(&self, error: &KafkaError) {
        if let Some(held_back) = REPEATS.admit(&error_kind(error)) {
            tracing::warn!(client = self.client, %error, held_back, "event broker error");
        }
    }

    /// Logs a message (with this key) that the broker never acknowledged and that is
    /// dropped, once per interval for each kind of error.
    pub fn undelivered(&self, error: &KafkaError, key: &str) {
        if let Some(held_back) = REPEATS.admit(&format!("undelivered {}", error_kind(error))) {
            tracing::warn!(
                client = self.client, %error, key, held_back,
                "the broker never acknowledged a message; it is dropped"
            );
        }
    }

    /// Whether the client's statistics show a connected broker.
    pub fn observe(&self, statistics: &Statistics) {
        let Some(health) = &self.health else { return };
        if statistics.brokers.values().any(|b| b.state == "UP") {
            *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = None;
            health.set_broker_link(BrokerLink::Up);
        } else if health.broker().link == BrokerLink::Up {
            health.set_broker_link(BrokerLink::Down("no broker connected".into()));
        }
    }
}

/// An error's kind: its code, the same whether a poll returned it or librdkafka
/// reported it globally.
fn error_kind(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("error {code:?}"),
        None => format!("error {error}"),
    }
}

/// The settings behind an error that retrying will not cure: a refused sign-in or TLS
/// handshake.
fn settings_to_check(code: Option<RDKafkaErrorCode>) -> Option<&'static str> {
    match code? {
        RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
            Some("KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM")
        }
        RDKafkaErrorCode::SSL => {
            Some("KAFKA_SECURITY_PROTOCOL and KAFKA_SSL_CA_LOCATION (the broker's certificate)")
        }
        _ => None,
    }
}

impl ClientContext for BrokerWatch {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let serious = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        );
        if !serious {
            tracing::debug!(target: "librdkafka", client = self.client, "{fac} {message}");
        } else if let Some(held_back) = REPEATS.admit(&format!("log {fac}")) {
            tracing::warn!(target: "librdkafka", client = self.client, held_back, "{fac} {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        let settings = settings_to_check(code);
        let reason = match settings {
            Some(settings) => format!("{reason}; check {settings}"),
            None => reason.to_string(),
        };
        let down = {
            let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            if settings.is_some() {
                *refused = Some(reason.clone());
                Some(reason.clone())
            } else if code == Some(RDKafkaErrorCode::AllBrokersDown) {
                Some(refused.clone().unwrap_or_else(|| reason.clone()))
            } else {
                None
            }
        };
        if let Some(down) = down {
            self.report(BrokerLink::Down(down));
        }
        if let Some(held_back) = REPEATS.admit(&error_kind(&error)) {
            tracing::error!(client = self.client, %error, reason, held_back, "event broker error");
        }
    }

    fn stats(&self, statistics: Statistics) {
        self.observe(&statistics);
    }
}
