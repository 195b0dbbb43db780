//! What readiness reports, and a repeated error said once per interval.
//!
//! [`Health`] holds what the service has seen of each dependency: the consumer reports
//! the broker, the supervisor reports tasks that stopped; the catalogue and the tiers are
//! probed when readiness is asked (tier probes cached for a few seconds, so a probe
//! every second costs the backends little). [`Repeats`] keeps an outage from filling the
//! log: the first error of a kind is written at once, the rest once per interval with
//! their count.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::db::Catalogue;
use crate::storage::Tiers;

/// How long a tier probe's answer is reused.
const TIER_PROBE_TTL: Duration = Duration::from_secs(5);

/// How long one probe may take before its dependency counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How the consumer last saw the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerLink {
    /// Not yet connected since the start.
    Connecting,
    /// Connected.
    Up,
    /// No broker reachable; librdkafka's reason.
    Down(String),
}

/// The broker as the consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerState {
    /// Whether a broker is reachable.
    pub link: BrokerLink,
    /// Partitions of the access topic this process reads.
    pub partitions: usize,
}

/// Each dependency's state at one readiness check.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// The catalogue: `Err` with why it cannot be read.
    pub catalogue: Result<(), String>,
    /// The event broker.
    pub broker: BrokerState,
    /// Each tier, hottest first: `Err` with why its backend does not answer.
    pub tiers: Vec<(String, Result<(), String>)>,
    /// Background tasks that stopped, with why.
    pub stopped: BTreeMap<&'static str, String>,
    /// Whether the process is shutting down.
    pub shutting_down: bool,
}

impl Readiness {
    /// Why the service is not ready; empty when it is.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.shutting_down {
            problems.push("shutting down".to_string());
        }
        for (task, why) in &self.stopped {
            problems.push(format!("task {task} stopped: {why}"));
        }
        if let Err(why) = &self.catalogue {
            problems.push(format!("catalogue down: {why}"));
        }
        match &self.broker.link {
            BrokerLink::Up => {}
            BrokerLink::Connecting => problems.push("broker: connecting".to_string()),
            BrokerLink::Down(why) => problems.push(format!("broker down: {why}")),
        }
        for (tier, state) in &self.tiers {
            if let Err(why) = state {
                problems.push(format!("tier {tier} down: {why}"));
            }
        }
        problems
    }
}

type TierStates = Vec<(String, Result<(), String>)>;

/// What the service has seen of its dependencies; shared by everything that reports.
pub struct Health {
    broker: Mutex<BrokerState>,
    stopped: Mutex<BTreeMap<&'static str, String>>,
    shutting_down: AtomicBool,
    tier_probes: tokio::sync::Mutex<Option<(Instant, TierStates)>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            broker: Mutex::new(BrokerState {
                link: BrokerLink::Connecting,
                partitions: 0,
            }),
            stopped: Mutex::default(),
            shutting_down: AtomicBool::new(false),
            tier_probes: tokio::sync::Mutex::default(),
        }
    }
}

impl Health {
    /// How the consumer now sees the broker.
    pub fn set_broker_link(&self, link: BrokerLink) {
        let mut broker = self.broker.lock().expect("health lock");
        // Said when the link changes, not when only librdkafka's wording does.
        if std::mem::discriminant(&broker.link) != std::mem::discriminant(&link) {
            match &link {
                BrokerLink::Up => tracing::info!("event broker reachable"),
                BrokerLink::Down(why) => tracing::warn!(reason = %why, "event broker unreachable"),
                BrokerLink::Connecting => {}
            }
        }
        broker.link = link;
    }

    /// The number of partitions this process's consumer reads now.
    pub fn set_partitions(&self, partitions: usize) {
        self.broker.lock().expect("health lock").partitions = partitions;
    }

    /// The broker as last seen.
    pub fn broker(&self) -> BrokerState {
        self.broker.lock().expect("health lock").clone()
    }

    /// A background task stopped when it should not have.
    pub fn task_stopped(&self, task: &'static str, why: String) {
        self.stopped.lock().expect("health lock").insert(task, why);
    }

    /// The tasks that stopped, with why.
    pub fn stopped(&self) -> BTreeMap<&'static str, String> {
        self.stopped.lock().expect("health lock").clone()
    }

    /// The process is shutting down: not ready from now on.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Probes the catalogue and the tiers (tiers at most every few seconds) and gathers
    /// what the others reported.
    pub async fn check(&self, catalogue: &Catalogue, tiers: &Tiers) -> Readiness {
        let (catalogue, tiers) = tokio::join!(
            within_probe_timeout(async { catalogue.ping().await.map_err(|e| e.to_string()) }),
            self.tiers(tiers),
        );
        Readiness {
            catalogue,
            broker: self.broker(),
            tiers,
            stopped: self.stopped(),
            shutting_down: self.shutting_down.load(Ordering::Relaxed),
        }
    }

    async fn tiers(&self, tiers: &Tiers) -> TierStates {
        let mut cached = self.tier_probes.lock().await;
        if let Some((at, states)) = cached.as_ref()
            && at.elapsed() < TIER_PROBE_TTL
        {
            return states.clone();
        }
        let states: TierStates = join_all(tiers.iter().map(|(config, store)| async move {
            let state =
                within_probe_timeout(async { store.probe().await.map_err(|e| e.to_string()) })
                    .await;
            (config.name.clone(), state)
        }))
        .await;
        *cached = Some((Instant::now(), states.clone()));
        states
    }
}

async fn within_probe_timeout(
    probe: impl Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
}

/// Lets one line per kind of message through per interval, counting the rest.
pub struct Repeats {
    interval: Duration,
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Repeats {
    /// Repeats of a kind are said at most once per `interval`.
    pub fn new(interval: Duration) -> Repeats {
        Repeats {
            interval,
            seen: Mutex::default(),
        }
    }

    /// Whether a message of `kind` is to be written now: `Some(n)`, `n` being how many of
    /// its kind were held back since the last one written; `None` to hold it back.
    pub fn admit(&self, kind: &str) -> Option<u64> {
        self.admit_at(kind, Instant::now())
    }

    fn admit_at(&self, kind: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().expect("repeats lock");
        match seen.get_mut(kind) {
            None => {
                seen.insert(kind.to_string(), (now, 0));
                Some(0)
            }
            Some((last, held)) if now.duration_since(*last) >= self.interval => {
                let held_back = *held;
                *last = now;
                *held = 0;
                Some(held_back)
            }
            Some((_, held)) => {
                *held += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_message_is_written_once_per_interval_with_its_count() {
        let repeats = Repeats::new(Duration::from_secs(30));
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(repeats.admit_at("down", at(0)), Some(0));
        assert_eq!(repeats.admit_at("down", at(1)), None);
        assert_eq!(repeats.admit_at("down", at(29)), None);
        // Another kind is not held back by the first.
        assert_eq!(repeats.admit_at("other", at(29)), Some(0));
        assert_eq!(repeats.admit_at("down", at(30)), Some(2));
        assert_eq!(repeats.admit_at("down", at(31)), None);
        assert_eq!(repeats.admit_at("down", at(90)), Some(1));
    }

    fn ready() -> Readiness {
        Readiness {
            catalogue: Ok(()),
            broker: BrokerState {
                link: BrokerLink::Up,
                partitions: 3,
            },
            tiers: vec![("onprem".into(), Ok(()))],
            stopped: BTreeMap::new(),
            shutting_down: false,
        }
    }

    #[test]
    fn every_dependency_that_is_down_is_named() {
        assert!(ready().problems().is_empty());
        let mut readiness = ready();
        readiness.broker.link = BrokerLink::Down("connection refused".into());
        readiness
            .tiers
            .push(("public".into(), Err("timed out".into())));
        readiness.stopped.insert("mover", "panicked: boom".into());
        assert_eq!(
            readiness.problems(),
            [
                "task mover stopped: panicked: boom",
                "broker down: connection refused",
                "tier public down: timed out",
            ]
        );
        let mut connecting = ready();
        connecting.broker.link = BrokerLink::Connecting;
        assert_eq!(connecting.problems(), ["broker: connecting"]);
    }
}
