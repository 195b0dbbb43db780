//! `strata serve`: [`Service::build`] opens and binds everything the configuration
//! names, [`Service::run_until`] runs the supervised tasks and the API until shut down.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, Auth};
use crate::config::{BackendConfig, Config};
use crate::content::Content;
use crate::db::{Backend, Catalogue};
use crate::detector::Detector;
use crate::events::consumer::{self, ConsumerSettings};
use crate::events::embedded::{self, EmbeddedBroker};
use crate::events::publisher::AccessPublisher;
use crate::forecast::{self, ActiveModel};
use crate::health::Health;
use crate::jobs::{self, ProactiveJob};
use crate::metrics::Metrics;
use crate::mover::Mover;
use crate::policy::Policy;
use crate::s3_endpoint::{self, S3Endpoint};
use crate::storage::Tiers;
use crate::supervisor::Supervisor;

/// Spikes waiting for the policy; the detector waits when the policy falls this far behind.
const SPIKE_QUEUE: usize = 1024;

/// How long a service whose task failed keeps answering (not ready) before it shuts down.
const FAILURE_LINGER: Duration = Duration::from_secs(2);

/// How long moves in flight may take to finish after a shutdown signal; after that the
/// process exits and their leases run out, so another process (or the next start)
/// recovers them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Builds the service from `config` and runs it until `shutdown` or until a task fails
/// (then with that failure as the error).
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Service::build(config).await?.run_until(shutdown).await
}

/// A built service: catalogue and tiers open, the API's port bound, the event clients
/// created; nothing running yet.
pub struct Service {
    config: Config,
    catalogue: Catalogue,
    tiers: Arc<Tiers>,
    listener: TcpListener,
    s3_listener: Option<TcpListener>,
    brokers: String,
    // The publisher is declared before the embedded broker: fields drop in order, and
    // the clients go before the broker they talk to.
    publisher: Arc<AccessPublisher>,
    embedded: Option<EmbeddedBroker>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    policy: Arc<Policy>,
}

impl Service {
    /// Opens the catalogue (applying schema migrations) and every tier, binds
    /// `LISTEN_ADDR`, starts the embedded broker when no `KAFKA_BROKERS` is set, creates
    /// the publisher, activates the newest model file and stores the rules of
    /// `RULES_FILE`.
    pub async fn build(config: Config) -> anyhow::Result<Service> {
        let catalogue = open_catalogue(&config).await?;
        if catalogue.backend() == Backend::Sqlite {
            tracing::warn!(
                database = %config.database_url,
                "catalogue runs on embedded SQLite; set DATABASE_URL=postgres://… for production"
            );
        }
        let tiers = open_tiers(&config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {} (LISTEN_ADDR)", config.listen))?;
        let s3_listener = match config.s3_endpoint.listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("listening on {address} (S3_LISTEN_ADDR)"))?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::default());
        let (brokers, embedded) = match &config.events.brokers {
            Some(brokers) => (brokers.clone(), None),
            None => {
                let broker = EmbeddedBroker::start(&config.events, &catalogue).await?;
                (broker.bootstrap_servers().to_string(), Some(broker))
            }
        };
        let publisher = open_publisher(&config, &brokers, embedded.is_some(), &metrics)?;
        forecast::active::activate_newest_file(&catalogue, &config.forecast.models_dir)
            .await
            .context("activating a model file")?;
        let policy = Arc::new(Policy::new(&config));
        seed_rules(&config, &policy, &catalogue).await?;
        Ok(Service {
            policy,
            config,
            catalogue,
            tiers: Arc::new(tiers),
            listener,
            s3_listener,
            brokers,
            publisher,
            embedded,
            metrics,
            health: Arc::default(),
        })
    }

    /// The address the API listens on (the bound port when `LISTEN_ADDR` asked for 0).
    pub fn address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address the S3 endpoint listens on, when `S3_LISTEN_ADDR` turns it on.
    pub fn s3_address(&self) -> Option<std::io::Result<SocketAddr>> {
        self.s3_listener.as_ref().map(TcpListener::local_addr)
    }

    /// Runs the background tasks under a [`Supervisor`] and the API until `shutdown` or
    /// until a task fails, then stops them in order.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let listen = self.address()?;
        let stop = CancellationToken::new();
        let mut supervisor = Supervisor::new(stop.clone(), self.health.clone());
        let policy = self.policy.clone();
        let model = Arc::new(ActiveModel::default());
        let state = self.app_state(policy.clone(), model.clone());
        self.spawn_workers(&mut supervisor, &state.content, &model, &stop);
        if let Some(listener) = self.s3_listener {
            let s3_listen = listener.local_addr()?;
            let endpoint = S3Endpoint::new(
                self.catalogue.clone(),
                state.content.clone(),
                self.publisher.clone(),
                &self.config.s3_endpoint.buckets,
                self.config.api.max_object_bytes,
                self.config.api.request_timeout,
                self.metrics.clone(),
            );
            let config = self.config.s3_endpoint.clone();
            supervisor.spawn(
                "s3-uploads",
                returning_ok(s3_endpoint::expire_idle_uploads(
                    endpoint.clone(),
                    config.upload_expiry,
                    stop.clone(),
                )),
            );
            let shutdown = stop.clone().cancelled_owned();
            supervisor.spawn("s3", async move {
                s3_endpoint::serve(listener, endpoint, &config, shutdown)
                    .await
                    .context("the S3 endpoint")
            });
            tracing::info!(
                listen = %s3_listen, buckets = %self.config.s3_endpoint.buckets.join(","),
                "S3 endpoint is listening"
            );
        }
        let api = api::serve(self.listener, state, stop.clone().cancelled_owned());
        supervisor.spawn("api", async move { api.await.context("the API server") });
        tracing::info!(%listen, "strata is running; press Ctrl-C to stop");
        let failure = tokio::select! {
            () = shutdown => None,
            failure = supervisor.failure() => Some(failure),
        };
        self.health.shutting_down();
        if failure.is_some() {
            // Readiness probes get to see why before the port closes.
            tokio::time::sleep(FAILURE_LINGER).await;
        }
        stop_in_order(supervisor, &stop, &self.publisher).await;
        self.catalogue.close().await;
        drop(self.publisher);
        drop(self.embedded);
        failure.map_or(Ok(()), Err)
    }

    /// Starts the proactive, reactive and rules jobs, the event consumer, the roll-up,
    /// retention and the mover.
    fn spawn_workers(
        &self,
        supervisor: &mut Supervisor,
        content: &Content,
        model: &Arc<ActiveModel>,
        stop: &CancellationToken,
    ) {
        let config = &self.config;
        let policy = &self.policy;
        supervisor.spawn(
            "rules",
            returning_ok(jobs::run_rules(
                policy.clone(),
                content.clone(),
                self.catalogue.clone(),
                config.rules.interval,
                stop.clone(),
            )),
        );
        supervisor.spawn(
            "proactive",
            returning_ok(jobs::run_proactive(
                policy.clone(),
                ProactiveJob {
                    catalogue: self.catalogue.clone(),
                    model: model.clone(),
                    interval: config.forecast.interval,
                    retrain_interval: config.forecast.retrain_interval,
                    metrics: self.metrics.clone(),
                    shards: config.forecast.shards,
                },
                stop.clone(),
            )),
        );
        let (spikes, spike_queue) = mpsc::channel(SPIKE_QUEUE);
        supervisor.spawn(
            "reactive",
            returning_ok(jobs::run_reactive(
                policy.clone(),
                self.catalogue.clone(),
                spike_queue,
                self.metrics.clone(),
                stop.clone(),
            )),
        );
        let detector = Detector::new(&config.detector, &policy.promotion_levels());
        supervisor.spawn(
            "consumer",
            consumer::run(
                self.consumer_settings(),
                self.catalogue.clone(),
                Arc::new(Mutex::new(detector)),
                spikes,
                self.metrics.clone(),
                self.health.clone(),
                stop.clone(),
            ),
        );
        supervisor.spawn(
            "rollup",
            returning_ok(jobs::run_rollup(self.catalogue.clone(), stop.clone())),
        );
        supervisor.spawn(
            "retention",
            returning_ok(jobs::run_retention(
                self.catalogue.clone(),
                config.retention,
                stop.clone(),
            )),
        );
        supervisor.spawn(
            "mover",
            returning_ok(
                Mover::new(self.catalogue.clone(), self.tiers.clone(), config.mover)
                    .reporting_to(self.metrics.clone())
                    .run(stop.clone()),
            ),
        );
    }

    fn consumer_settings(&self) -> ConsumerSettings {
        let events = &self.config.events;
        ConsumerSettings {
            brokers: self.brokers.clone(),
            group_id: events.group_id.clone(),
            topic: events.access_topic.clone(),
            dlq_topic: events.dlq_topic.clone(),
            flush_interval: events.flush_interval,
            flush_max_events: events.flush_max_events,
            max_event_bytes: events.max_event_bytes,
            session_timeout: events.session_timeout,
            tier_buckets: tier_buckets(&self.config),
            startup_timeout: events.startup_timeout,
            properties: events.properties.clone(),
        }
    }

    fn app_state(&self, policy: Arc<Policy>, model: Arc<ActiveModel>) -> AppState {
        let config = &self.config;
        AppState {
            catalogue: self.catalogue.clone(),
            content: Content::new(
                self.catalogue.clone(),
                self.tiers.clone(),
                config.default_tier.clone(),
            ),
            policy,
            model,
            training: Arc::default(),
            tiers: self.tiers.clone(),
            default_tier: config.default_tier.clone(),
            default_bucket: config.s3_endpoint.default_bucket().to_string(),
            plan_window: config.detector.window,
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            publisher: self.publisher.clone(),
            embedded_events: self.embedded.is_some(),
            auth: Auth::new(config.api.token.as_deref(), config.api.token_reads),
            max_object_bytes: config.api.max_object_bytes,
            request_timeout: config.api.request_timeout,
            move_bandwidth: config.mover.bandwidth,
        }
    }
}

/// Stores the rules of `RULES_FILE`, if set (replacing those of the same ids), and reads
/// every stored rule.
async fn seed_rules(config: &Config, policy: &Policy, catalogue: &Catalogue) -> anyhow::Result<()> {
    if let Some(path) = &config.rules.file {
        let rules = crate::policy::rules::read_rules_file(path)
            .map_err(|why| anyhow::anyhow!("RULES_FILE: {why}"))?;
        let stored = policy
            .store_rules(catalogue, rules)
            .await
            .with_context(|| format!("RULES_FILE {}", path.display()))?;
        tracing::info!(file = %path.display(), rules = stored.len(), "rules stored from RULES_FILE");
    }
    let rules = policy
        .load_rules(catalogue)
        .await
        .context("reading the rules")?;
    tracing::info!(rules = rules.rules().len(), "rules in force");
    Ok(())
}

/// Opens every tier's backend, saying in the log what each is.
async fn open_tiers(config: &Config) -> anyhow::Result<Tiers> {
    let tiers = Tiers::open(&config.tiers, config.transfer)
        .await
        .context("opening the tiers")?;
    for (tier, store) in tiers.iter() {
        let embedded = matches!(tier.backend, BackendConfig::File { .. });
        tracing::info!(
            tier = %tier.name,
            backend = %store,
            capacity_bytes = tier.capacity_bytes,
            default = tier.name == config.default_tier,
            "tier ready{}",
            if embedded { " (local directory; set TIER_<NAME>_URL=s3://… for production)" } else { "" }
        );
    }
    Ok(tiers)
}

/// The access-event publisher; against the embedded broker, with its settings and a
/// bound on events not yet read.
fn open_publisher(
    config: &Config,
    brokers: &str,
    embedded: bool,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<AccessPublisher>> {
    let settings: Vec<(&str, &str)> = if embedded {
        embedded::PRODUCER_SETTINGS.to_vec()
    } else {
        config.events.properties.pairs().collect()
    };
    let publisher = AccessPublisher::new(
        brokers,
        &config.events.access_topic,
        config.events.producer_queue,
        &settings,
        metrics.clone(),
    )
    .context("creating the access-event producer")?;
    Ok(Arc::new(if embedded {
        publisher.limit_unread(embedded::MAX_UNREAD_EVENTS)
    } else {
        publisher
    }))
}

/// Stops the API first (requests in flight finish), delivers the events it published,
/// then lets the workers write their counts and finish their moves, within
/// [`SHUTDOWN_GRACE`].
async fn stop_in_order(
    mut supervisor: Supervisor,
    stop: &CancellationToken,
    publisher: &AccessPublisher,
) {
    tracing::info!(
        "shutting down; finishing requests, writing counted events, letting moves in flight finish"
    );
    stop.cancel();
    let stopped = async {
        supervisor.join("api").await;
        supervisor.join("s3").await;
        if let Err(e) = publisher.flush(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "access events still queued at shutdown are lost");
        }
        supervisor.join_all().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, stopped).await.is_err() {
        tracing::warn!(
            "still busy after {SHUTDOWN_GRACE:?}; moves resume and unwritten events are read again after restart"
        );
    }
}

/// A task that has no error to report, as the supervisor runs tasks.
async fn returning_ok(task: impl Future<Output = ()>) -> anyhow::Result<()> {
    task.await;
    Ok(())
}

/// S3 bucket name -> tier, to map bucket notifications to objects.
fn tier_buckets(config: &Config) -> HashMap<String, String> {
    config
        .tiers
        .iter()
        .filter_map(|tier| match &tier.backend {
            BackendConfig::S3(s3) => Some((s3.bucket.clone(), tier.name.clone())),
            BackendConfig::File { .. } => None,
        })
        .collect()
}

/// Opens the catalogue `DATABASE_URL` names (applying schema migrations), saying which
/// (without its password) when it cannot.
pub async fn open_catalogue(config: &Config) -> anyhow::Result<Catalogue> {
    Catalogue::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening the catalogue at {}",
                crate::config::redact_url(&config.database_url)
            )
        })
}
