//! `strata serve`: wires configuration, catalogue and tiers together and runs until
//! shut down.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
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
use crate::metrics::Metrics;
use crate::mover::Mover;
use crate::policy::{self, Policy, ProactiveJob};
use crate::storage::Tiers;

/// Spikes waiting for the policy; the detector waits when the policy falls this far behind.
const SPIKE_QUEUE: usize = 1024;

/// How long moves in flight may take to finish after a shutdown signal; after that the
/// process exits and their leases run out, so another process (or the next start)
/// recovers them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the catalogue (applying schema migrations) and every tier, runs the mover, and
/// stops on `shutdown`.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let catalogue = open_catalogue(&config).await?;
    if catalogue.backend() == Backend::Sqlite {
        tracing::warn!(
            database = %config.database_url,
            "catalogue runs on embedded SQLite; set DATABASE_URL=postgres://… for production"
        );
    }
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {} (LISTEN_ADDR)", config.listen))?;
    let stop = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    // Without KAFKA_BROKERS, events flow through an in-process broker. Declared before
    // the clients, so that on every way out it is dropped after them.
    let (brokers, embedded) = match &config.events.brokers {
        Some(brokers) => (brokers.clone(), None),
        None => {
            let broker = EmbeddedBroker::start(&config.events, &catalogue).await?;
            (broker.bootstrap_servers().to_string(), Some(broker))
        }
    };
    let publisher = AccessPublisher::new(
        &brokers,
        &config.events.access_topic,
        config.events.producer_queue,
        if embedded.is_some() {
            embedded::PRODUCER_SETTINGS
        } else {
            &[]
        },
        metrics.clone(),
    )
    .context("creating the access-event producer")?;
    let publisher = Arc::new(if embedded.is_some() {
        publisher.limit_unread(embedded::MAX_UNREAD_EVENTS)
    } else {
        publisher
    });
    let policy = Arc::new(Policy::new(&config));
    let model = Arc::new(ActiveModel::default());
    forecast::active::activate_newest_file(&catalogue, &config.forecast.models_dir)
        .await
        .context("activating a model file")?;
    let proactive = tokio::spawn(policy::run_proactive(
        policy.clone(),
        ProactiveJob {
            catalogue: catalogue.clone(),
            model: model.clone(),
            interval: config.forecast.interval,
            retrain_interval: config.forecast.retrain_interval,
            metrics: metrics.clone(),
        },
        stop.clone(),
    ));
    let (spikes, spike_queue) = mpsc::channel(SPIKE_QUEUE);
    let reactive = tokio::spawn(policy::run_reactive(
        policy.clone(),
        catalogue.clone(),
        spike_queue,
        metrics.clone(),
        stop.clone(),
    ));
    let detector = Detector::new(&config.detector, &policy.promotion_levels());
    let consumer = tokio::spawn(consumer::run(
        ConsumerSettings {
            brokers,
            group_id: config.events.group_id.clone(),
            topic: config.events.access_topic.clone(),
            dlq_topic: config.events.dlq_topic.clone(),
            flush_interval: config.events.flush_interval,
            flush_max_events: config.events.flush_max_events,
            max_event_bytes: config.events.max_event_bytes,
            session_timeout: config.events.session_timeout,
            tier_buckets: tier_buckets(&config),
        },
        catalogue.clone(),
        Arc::new(Mutex::new(detector)),
        spikes,
        metrics.clone(),
        stop.clone(),
    ));
    let tiers = Arc::new(tiers);
    let mover = tokio::spawn(
        Mover::new(catalogue.clone(), tiers.clone(), config.mover)
            .reporting_to(metrics.clone())
            .run(stop.clone()),
    );
    let listen = listener.local_addr()?;
    let api = tokio::spawn(api::serve(
        listener,
        AppState {
            catalogue: catalogue.clone(),
            content: Content::new(
                catalogue.clone(),
                tiers.clone(),
                config.default_tier.clone(),
            ),
            policy: policy.clone(),
            model,
            training: Arc::default(),
            tiers,
            default_tier: config.default_tier.clone(),
            plan_window: config.detector.window,
            metrics: metrics.clone(),
            publisher: publisher.clone(),
            embedded_events: embedded.is_some(),
            auth: Auth::new(config.api.token.as_deref(), config.api.token_reads),
            max_object_bytes: config.api.max_object_bytes,
            request_timeout: config.api.request_timeout,
        },
        stop.clone().cancelled_owned(),
    ));
    tracing::info!(%listen, "strata is running; press Ctrl-C to stop");
    tokio::select! {
        () = shutdown => {}
        () = stop.cancelled() => {}
    }
    tracing::info!(
        "shutting down; finishing requests, writing counted events, letting moves in flight finish"
    );
    stop.cancel();
    let stopped = async {
        match api.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the API server failed"),
            Err(e) => tracing::error!(error = %e, "the API server panicked"),
        }
        if let Err(e) = publisher.flush(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "access events still queued at shutdown are lost");
        }
        match consumer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the event consumer failed"),
            Err(e) => tracing::error!(error = %e, "the event consumer panicked"),
        }
        let _ = reactive.await;
        let _ = proactive.await;
        let _ = mover.await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, stopped).await.is_err() {
        tracing::warn!(
            "still busy after {SHUTDOWN_GRACE:?}; moves resume and unwritten events are read again after restart"
        );
    }
    catalogue.close().await;
    // The clients go before the broker they talk to.
    drop(publisher);
    drop(embedded);
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
                redact_url(&config.database_url)
            )
        })
}

/// The URL with any password replaced, for log lines and error messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://strata:s3cret@db:5432/strata"),
            "postgres://strata:***@db:5432/strata"
        );
        assert_eq!(redact_url("postgres://db/strata"), "postgres://db/strata");
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }
}
