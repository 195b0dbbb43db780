//! The access-event pipeline on the local stack (`scripts/bench/events.sh` runs it):
//!
//! ```text
//! cargo bench --bench event_pipeline -- consume EVENTS OBJECTS   # vs a bare consume loop
//! cargo bench --bench event_pipeline -- spikes BURSTS RATE       # spike latency under load
//! ```
//!
//! `consume` produces EVENTS events over OBJECTS catalogued objects to a fresh
//! 3-partition topic, then times (1) a bare librdkafka consume-and-discard loop and
//! (2) Strata's consumer writing exact counts to a fresh PostgreSQL database, on the
//! same topic; it checks the persisted total. `spikes` keeps RATE events/s of background
//! load flowing while BURSTS objects each get a burst of 150 accesses, and reports the
//! time from handing the triggering (101st) event to the producer to the promotion's
//! row in the queue. Each prints one JSON line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sqlx::{AnyConnection, Connection, Executor};
use strata::config::Config;
use strata::db::{Catalogue, MoveFilter, MoveReason};
use strata::detector::{Detector, Spike};
use strata::events::consumer::{self, ConsumerSettings};
use strata::events::embedded::{self, EmbeddedBroker};
use strata::metrics::Metrics;
use strata::policy::Policy;
use strata::timestamp::now_ms;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let number = |i: usize, what: &str| -> anyhow::Result<u64> {
        args.get(i)
            .context(what.to_string())?
            .parse()
            .context(what.to_string())
    };
    strata::config::load_dotenv()?;
    let config = Config::from_env()?;
    let mode = args.first().map(String::as_str);
    // `consume-embedded` runs on librdkafka's in-process mock cluster, the embedded
    // broker, so the broker is not what limits the rate. The mock has no admin API: the
    // embedded broker's own topic is used.
    let embedded = match mode {
        Some("consume-embedded") => {
            let scratch = Catalogue::connect("sqlite::memory:").await?;
            Some(EmbeddedBroker::start(&config.events, &scratch).await?)
        }
        _ => None,
    };
    let (brokers, producer_settings, topic) = match &embedded {
        Some(broker) => (
            broker.bootstrap_servers().to_string(),
            embedded::PRODUCER_SETTINGS,
            Some(config.events.access_topic.clone()),
        ),
        None => (
            config
                .events
                .brokers
                .clone()
                .context("KAFKA_BROKERS must be set")?,
            &[][..],
            None,
        ),
    };
    let bench = Bench::new(&config.database_url, &brokers, producer_settings, topic).await?;
    let result = match mode {
        Some("consume" | "consume-embedded") => {
            bench
                .consume(number(1, "EVENTS")?, number(2, "OBJECTS")?)
                .await
        }
        Some("spikes") => bench.spikes(number(1, "BURSTS")?, number(2, "RATE")?).await,
        _ => Err(anyhow::anyhow!(
            "usage: event_pipeline consume EVENTS OBJECTS | consume-embedded EVENTS OBJECTS | spikes BURSTS RATE"
        )),
    };
    bench.finish().await?;
    drop(embedded);
    println!("{}", result?);
    Ok(())
}

struct Bench {
    catalogue: Catalogue,
    admin_url: String,
    db_name: String,
    brokers: String,
    producer_settings: &'static [(&'static str, &'static str)],
    topic: String,
}

impl Bench {
    async fn new(
        admin_url: &str,
        brokers: &str,
        producer_settings: &'static [(&'static str, &'static str)],
        existing_topic: Option<String>,
    ) -> anyhow::Result<Bench> {
        sqlx::any::install_default_drivers();
        let db_name = format!("strata_bench_{}", uuid::Uuid::now_v7().simple());
        let mut admin = AnyConnection::connect(admin_url).await?;
        admin
            .execute(format!("CREATE DATABASE {db_name}").as_str())
            .await?;
        let base = admin_url.rsplit_once('/').context("database URL")?.0;
        let catalogue = Catalogue::connect(&format!("{base}/{db_name}")).await?;
        let topic = match existing_topic {
            Some(topic) => topic,
            None => {
                let topic = format!("bench-{}", uuid::Uuid::now_v7().simple());
                create_topics(brokers, &topic).await?;
                topic
            }
        };
        Ok(Bench {
            catalogue,
            admin_url: admin_url.into(),
            db_name,
            brokers: brokers.into(),
            producer_settings,
            topic,
        })
    }

    /// Catalogues `n` objects `bench-0` … in one statement.
    async fn objects(&self, n: u64) -> anyhow::Result<()> {
        let url = format!(
            "{}/{}",
            self.admin_url.rsplit_once('/').context("URL")?.0,
            self.db_name
        );
        let mut conn = AnyConnection::connect(&url).await?;
        conn.execute(
            format!(
                "INSERT INTO objects (id, object_key, size, content_type, checksum, tier, location, \
                 version, created_at, updated_at) \
                 SELECT 'bench-' || i, 'key-' || i, 1, 'application/octet-stream', 'blake3:00', \
                 'public', 'loc-' || i, 1, 0, 0 FROM generate_series(0, {}) AS i",
                n - 1
            )
            .as_str(),
        )
        .await?;
        Ok(())
    }

    fn producer(&self) -> anyhow::Result<BaseProducer> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000");
        for (key, value) in self.producer_settings {
            config.set(*key, *value);
        }
        Ok(config.create()?)
    }

    fn consumer(&self) -> ConsumerSettings {
        ConsumerSettings {
            brokers: self.brokers.clone(),
            group_id: format!("bench-{}", uuid::Uuid::now_v7().simple()),
            topic: self.topic.clone(),
            dlq_topic: format!("{}.dlq", self.topic),
            flush_interval: Duration::from_millis(200),
            flush_max_events: 100_000,
            max_event_bytes: 64 * 1024,
            session_timeout: Duration::from_secs(10),
            tier_buckets: HashMap::new(),
            startup_timeout: None,
            properties: Default::default(),
        }
    }

    /// Runs Strata's consumer on the bench topic; stop it with the returned token.
    fn start_consumer(
        &self,
        detector: Detector,
        spikes: mpsc::Sender<Spike>,
    ) -> (
        Arc<Metrics>,
        CancellationToken,
        JoinHandle<anyhow::Result<()>>,
    ) {
        let metrics = Arc::new(Metrics::default());
        let stop = CancellationToken::new();
        let run = tokio::spawn(consumer::run(
            self.consumer(),
            self.catalogue.clone(),
            Arc::new(Mutex::new(detector)),
            spikes,
            metrics.clone(),
            Arc::default(),
            stop.clone(),
        ));
        (metrics, stop, run)
    }

    async fn consume(&self, events: u64, objects: u64) -> anyhow::Result<serde_json::Value> {
        self.objects(objects).await?;
        let producer = self.producer()?;
        let ts = now_ms();
        for i in 0..events {
            let id = format!("bench-{}", i % objects);
            let payload = format!(r#"{{"object_id":"{id}","ts":{ts},"kind":"read"}}"#);
            let mut record = BaseRecord::to(&self.topic).key(&id).payload(&payload);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(10));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(120))?;

        // The bare loop: consume and discard, nothing else.
        let bare: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set(
                "group.id",
                format!("bare-{}", uuid::Uuid::now_v7().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        bare.subscribe(&[&self.topic])?;
        let bare_rate = tokio::task::block_in_place(|| -> anyhow::Result<f64> {
            let mut seen = 0u64;
            let mut started = None;
            let deadline = Instant::now() + Duration::from_secs(600);
            while seen < events {
                if Instant::now() > deadline {
                    bail!("bare loop saw {seen} of {events} events");
                }
                if let Some(message) = bare.poll(Duration::from_millis(100)) {
                    message?;
                    started.get_or_insert_with(Instant::now);
                    seen += 1;
                }
            }
            Ok(events as f64 / started.map_or(1.0, |s: Instant| s.elapsed().as_secs_f64()))
        })?;
        drop(bare);

        // Strata's consumer: decode, count, write counts and offsets transactionally.
        let (spikes, mut spike_queue) = mpsc::channel(1024);
        tokio::spawn(async move { while spike_queue.recv().await.is_some() {} });
        let detector = Detector::new(&Config::from_lookup(|_| None)?.detector, &[100, 20]);
        let (metrics, stop, run) = self.start_consumer(detector, spikes);
        let mut started = None;
        let deadline = Instant::now() + Duration::from_secs(600);
        while metrics.events_consumed() < events {
            if metrics.events_read() > 0 {
                // Timed like the bare loop, from the first message read: reading and
                // writing the first batch are inside the measured time.
                started.get_or_insert_with(Instant::now);
            }
            if Instant::now() > deadline {
                bail!(
                    "strata counted {} of {events} events",
                    metrics.events_consumed()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let strata_secs = started.map_or(1.0, |s: Instant| s.elapsed().as_secs_f64());
        stop.cancel();
        run.await??;
        let total = self.catalogue.accesses_counted().await?;
        if total != events as i64 {
            bail!("persisted {total} accesses for {events} events");
        }
        let strata_rate = events as f64 / strata_secs;
        Ok(serde_json::json!({
            "bench": "consume", "events": events, "objects": objects,
            "bare_events_per_sec": bare_rate.round(),
            "strata_events_per_sec": strata_rate.round(),
            "ratio": (strata_rate / bare_rate * 100.0).round() / 100.0,
        }))
    }

    async fn spikes(&self, bursts: u64, rate: u64) -> anyhow::Result<serde_json::Value> {
        const BACKGROUND_OBJECTS: u64 = 100_000;
        self.objects(BACKGROUND_OBJECTS + bursts).await?;
        // Promote into onprem above 100 accesses a window; background objects get about
        // 30 a minute at 50,000 events/s, so only the bursts are spikes.
        let config = Config::from_lookup(|var| match var {
            "TIER_PRIVATE_PROMOTE_ABOVE" => Some("none".into()),
            _ => None,
        })?;
        let policy = Arc::new(Policy::new(&config));
        let (spikes, spike_queue) = mpsc::channel(1024);
        let detector = Detector::new(&config.detector, &policy.promotion_levels());
        let (metrics, stop, run) = self.start_consumer(detector, spikes);
        let reactive = tokio::spawn(strata::jobs::run_reactive(
            policy,
            self.catalogue.clone(),
            spike_queue,
            metrics.clone(),
            stop.clone(),
        ));
        // Let the consumer join the group before the load starts.
        tokio::time::sleep(Duration::from_secs(5)).await;

        let producer = Arc::new(self.producer()?);
        let topic = self.topic.clone();
        let background_stop = CancellationToken::new();
        let background = {
            let (producer, stop) = (producer.clone(), background_stop.clone());
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let mut sent = 0u64;
                while !stop.is_cancelled() {
                    let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                    while sent < due {
                        let id = format!("bench-{}", (sent * 7919) % BACKGROUND_OBJECTS);
                        let payload = format!(r#"{{"object_id":"{id}","ts":{}}}"#, now_ms());
                        if producer
                            .send(BaseRecord::to(&topic).key(&id).payload(&payload))
                            .is_ok()
                        {
                            sent += 1;
                        }
                    }
                    producer.poll(Duration::from_millis(1));
                }
                sent as f64 / started.elapsed().as_secs_f64()
            })
        };
        tokio::time::sleep(Duration::from_secs(3)).await;

        let mut triggers = Vec::new();
        for b in 0..bursts {
            let id = format!("bench-{}", BACKGROUND_OBJECTS + b);
            let payload = format!(r#"{{"object_id":"{id}","ts":{}}}"#, now_ms());
            let mut trigger_ms = 0;
            for i in 0..150 {
                while producer
                    .send(BaseRecord::to(&self.topic).key(&id).payload(&payload))
                    .is_err()
                {
                    producer.poll(Duration::from_millis(1));
                }
                if i == 100 {
                    trigger_ms = now_ms();
                }
            }
            triggers.push((id, trigger_ms));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let mut latencies = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        for (id, trigger_ms) in &triggers {
            loop {
                let found = self
                    .catalogue
                    .list_moves(
                        &MoveFilter {
                            object_id: Some(id.clone()),
                            reason: Some(MoveReason::ReactiveAccessSpike),
                            ..MoveFilter::default()
                        },
                        1,
                        None,
                    )
                    .await?
                    .items;
                if let Some(m) = found.first() {
                    latencies.push(m.created_at - trigger_ms);
                    break;
                }
                if Instant::now() > deadline {
                    bail!("no promotion for {id}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        background_stop.cancel();
        let background_rate = background.await?;
        stop.cancel();
        run.await??;
        reactive.await?;
        latencies.sort_unstable();
        let pct = |p: f64| {
            latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
        };
        Ok(serde_json::json!({
            "bench": "spikes", "bursts": bursts,
            "background_events_per_sec": background_rate.round(),
            "events_counted": metrics.events_consumed(),
            "latency_ms_p50": pct(0.5), "latency_ms_p99": pct(0.99), "latency_ms_max": latencies.last(),
        }))
    }

    async fn finish(&self) -> anyhow::Result<()> {
        self.catalogue.close().await;
        let mut admin = AnyConnection::connect(&self.admin_url).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name).as_str())
            .await?;
        Ok(())
    }
}

/// Creates `topic` with 3 partitions and its dead-letter topic on `brokers`.
async fn create_topics(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    for (name, partitions) in [(topic.to_string(), 3), (format!("{topic}.dlq"), 1)] {
        for result in admin
            .create_topics(
                &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await?
        {
            result.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
        }
    }
    Ok(())
}
