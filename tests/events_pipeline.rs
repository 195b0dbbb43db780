//! The access-event pipeline against the stack's real broker and PostgreSQL: events
//! produced by an independent client (kafka-python) are counted exactly, malformed ones
//! land in the dead-letter topic, bucket notifications count, and bursts become exactly
//! one promotion each.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    TestDb, catalogue_object, catalogue_objects, consume_independently, create_topic, eventually,
    kafka_brokers, produce_independently, stored_hour_rows, unique_name,
};
use serde_json::json;
use strata::config::{Config, DetectorConfig};
use strata::db::{Catalogue, HOUR_MS, MINUTE_MS, MoveFilter, MoveReason};
use strata::detector::Detector;
use strata::events::consumer::{self, ConsumerSettings};
use strata::metrics::Metrics;
use strata::policy::Policy;
use strata::timestamp::format_rfc3339_ms;
use strata::timestamp::now_ms;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A consumer and the reactive policy running in this process on a fresh topic, group
/// and database.
struct PipelineRig {
    db: TestDb,
    catalogue: Catalogue,
    topic: String,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Stops the consumer when a failing test unwinds; the runtime would otherwise wait
    /// for its thread forever.
    _stop_on_drop: tokio_util::sync::DropGuard,
}

impl PipelineRig {
    async fn start(partitions: i32, tier_buckets: HashMap<String, String>) -> PipelineRig {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let db = TestDb::postgres().await;
        let catalogue = Catalogue::connect(&db.url).await.unwrap();
        let topic = unique_name("access");
        create_topic(&topic, partitions).await;
        create_topic(&format!("{topic}.dlq"), 1).await;
        let config = Config::from_lookup(|_| None).unwrap();
        let policy = Arc::new(Policy::new(&config));
        let metrics = Arc::new(Metrics::default());
        let stop = CancellationToken::new();
        let (spikes, spike_queue) = mpsc::channel(64);
        let detector = Detector::new(&DetectorConfig::default(), &policy.promotion_levels());
        let settings = ConsumerSettings {
            brokers: kafka_brokers(),
            group_id: unique_name("group"),
            topic: topic.clone(),
            dlq_topic: format!("{topic}.dlq"),
            flush_interval: Duration::from_millis(100),
            flush_max_events: 10_000,
            max_event_bytes: 64 * 1024,
            session_timeout: Duration::from_secs(10),
            tier_buckets,
            startup_timeout: None,
            properties: Default::default(),
        };
        let consumer = tokio::spawn({
            let (catalogue, metrics, stop) = (catalogue.clone(), metrics.clone(), stop.clone());
            async move {
                consumer::run(
                    settings,
                    catalogue,
                    Arc::new(Mutex::new(detector)),
                    spikes,
                    metrics,
                    Arc::default(),
                    stop,
                )
                .await
                .expect("consumer runs");
            }
        });
        let reactive = tokio::spawn(strata::jobs::run_reactive(
            policy,
            catalogue.clone(),
            spike_queue,
            metrics.clone(),
            stop.clone(),
        ));
        PipelineRig {
            db,
            catalogue,
            topic,
            metrics,
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            tasks: vec![consumer, reactive],
        }
    }

    async fn total(&self, object_id: &str) -> i64 {
        self.catalogue
            .access_summary(object_id, now_ms())
            .await
            .unwrap()
            .total
    }

    async fn finish(self) {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
        self.catalogue.close().await;
        self.db.drop_db().await;
    }
}

fn event(object_id: &str, ts: serde_json::Value) -> String {
    json!({"object_id": object_id, "ts": ts, "kind": "read", "bytes": 10}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_an_independent_client_are_counted_exactly() {
    let rig = PipelineRig::start(3, HashMap::new()).await;
    let now = now_ms();
    let mut objects = Vec::new();
    let mut specs = Vec::new();
    for i in 0..20 {
        let object = catalogue_object(&rig.catalogue, &format!("k{i}"), "public").await;
        // RFC 3339 times for even objects, epoch milliseconds for odd ones.
        let ts = if i % 2 == 0 {
            json!(format_rfc3339_ms(now - 1000))
        } else {
            json!(now - 1000)
        };
        specs.push(json!({"key": object.id, "value": event(&object.id, ts), "repeat": i + 1}));
        objects.push(object);
    }
    // Events of an object the catalogue does not know are skipped, and counted as such.
    specs.push(json!({"key": "ghost", "value": event("ghost", json!(now)), "repeat": 3}));
    produce_independently(&rig.topic, &specs);

    let expected: i64 = (1..=20).sum();
    eventually(Duration::from_secs(30), "all events counted", || async {
        rig.metrics.events_consumed() as i64 >= expected
    })
    .await;
    for (i, object) in objects.iter().enumerate() {
        assert_eq!(rig.total(&object.id).await, i as i64 + 1, "object {i}");
        let minute = (now - 1000).div_euclid(MINUTE_MS) * MINUTE_MS;
        let buckets = rig
            .catalogue
            .access_history(&object.id, MINUTE_MS, 0, i64::MAX)
            .await
            .unwrap();
        assert_eq!(buckets, [(minute, i as i64 + 1)], "object {i}");
    }
    // Nothing more arrives later: exact, not at least.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.metrics.events_consumed() as i64, expected);
    let mut page = String::new();
    rig.metrics.render(&mut page);
    assert!(
        page.contains("strata_events_unknown_object_total 3\n"),
        "{page}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_a_few_minutes_old_are_written_once() {
    // A consumer catching up on a backlog reads events minutes old. Had their minutes
    // been rolled up into hours already, each batch would write every count twice (its
    // minute and its hour); the roll-up stays far enough behind that it has not.
    let rig = PipelineRig::start(1, HashMap::new()).await;
    let object = catalogue_object(&rig.catalogue, "late", "public").await;
    let now = now_ms();
    // The first batch is followed by a roll-up.
    produce_independently(
        &rig.topic,
        &[json!({"key": object.id, "value": event(&object.id, json!(now)), "repeat": 3})],
    );
    eventually(
        Duration::from_secs(30),
        "the first events counted",
        || async { rig.metrics.events_consumed() >= 3 },
    )
    .await;
    let two_minutes_ago = now - 2 * MINUTE_MS;
    produce_independently(
        &rig.topic,
        &[
            json!({"key": object.id, "value": event(&object.id, json!(two_minutes_ago)), "repeat": 4}),
        ],
    );
    eventually(
        Duration::from_secs(30),
        "the late events counted",
        || async { rig.metrics.events_consumed() >= 7 },
    )
    .await;
    assert_eq!(rig.total(&object.id).await, 7);
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&rig.db.url)
        .await
        .unwrap();
    assert_eq!(stored_hour_rows(&mut conn, &object.id).await, []);
    sqlx::Connection::close(conn).await.unwrap();
    // Readers still see every access in its hour.
    let hours: i64 = rig
        .catalogue
        .access_history(&object.id, HOUR_MS, 0, i64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|(_, hits)| hits)
        .sum();
    assert_eq!(hours, 7);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_go_to_the_dlq_and_the_valid_ones_behind_them_count() {
    let rig = PipelineRig::start(1, HashMap::new()).await;
    let object = catalogue_object(&rig.catalogue, "k", "public").await;
    let ten_megabytes = "x".repeat(10 * 1024 * 1024);
    let garbage: String = (0..64u8)
        .map(|b| format!("{:02x}", b.wrapping_mul(37) ^ 0xa5))
        .collect();
    let bad = [
        (
            json!({"key": "a", "value": "{\"object_id\": "}),
            "malformed",
        ),
        (json!({"key": "b", "value": null}), "empty"),
        (
            json!({"key": "c", "value": "{\"ts\": 1795255200000}"}),
            "malformed",
        ),
        (
            json!({"key": "d", "value": "{\"object_id\": 42, \"ts\": \"soon\"}"}),
            "malformed",
        ),
        (json!({"key": "e", "value": ten_megabytes}), "oversized"),
        (json!({"key": "f", "value_hex": garbage}), "malformed"),
        (
            json!({"key": "g", "value": event(&object.id, json!(12))}),
            "timestamp",
        ),
    ];
    let mut specs: Vec<_> = bad.iter().map(|(spec, _)| spec.clone()).collect();
    specs.push(json!({"key": object.id, "value": event(&object.id, json!(now_ms())), "repeat": 5}));
    produce_independently(&rig.topic, &specs);

    eventually(
        Duration::from_secs(30),
        "the valid events counted",
        || async { rig.total(&object.id).await == 5 },
    )
    .await;
    let dead = consume_independently(&format!("{}.dlq", rig.topic), bad.len());
    let reasons: Vec<(&str, &str)> = dead
        .iter()
        .map(|m| {
            (
                m["key"].as_str().unwrap(),
                m["headers"]["strata-dlq-code"].as_str().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str)> = bad
        .iter()
        .map(|(spec, code)| (spec["key"].as_str().unwrap(), *code))
        .collect();
    assert_eq!(reasons, expected);
    for m in &dead {
        let reason = m["headers"]["strata-dlq-reason"].as_str().unwrap();
        assert!(!reason.is_empty(), "every dead letter says why: {m}");
    }
    let mut page = String::new();
    rig.metrics.render(&mut page);
    assert!(
        page.contains("strata_dead_letters_total{reason=\"malformed\"} 4\n"),
        "{page}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_notification_counts_as_an_access_of_the_stored_object() {
    let buckets = HashMap::from([("strata-private".to_string(), "private".to_string())]);
    let rig = PipelineRig::start(1, buckets).await;
    let object = catalogue_object(&rig.catalogue, "reports/q3 summary.csv", "private").await;
    let record = |bucket: &str, key: &str| {
        json!({"EventName": "s3:ObjectAccessed:Get", "Key": format!("{bucket}/{key}"), "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
            "eventTime": format_rfc3339_ms(now_ms()), "eventName": "s3:ObjectAccessed:Get",
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                   "object": {"key": key, "size": 1, "eTag": "x"}}}]})
        .to_string()
    };
    produce_independently(
        &rig.topic,
        &[
            json!({"key": null, "value": record("strata-private", "reports%2Fq3+summary.csv.bin")}),
            json!({"key": null, "value": record("somebody-elses-bucket", "reports%2Fq3+summary.csv.bin")}),
        ],
    );
    eventually(
        Duration::from_secs(30),
        "the notification counted",
        || async { rig.total(&object.id).await == 1 },
    )
    .await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_become_exactly_one_promotion_and_a_scan_none() {
    let rig = PipelineRig::start(3, HashMap::new()).await;
    let hot = catalogue_object(&rig.catalogue, "hot", "public").await;
    let warm = catalogue_object(&rig.catalogue, "warm", "public").await;
    let scanned = catalogue_objects(&rig.catalogue, "scan/", 10_000, "public").await;
    let start = now_ms();
    let mut specs = Vec::new();
    // A backup reads all 10,000 objects once, while 150 and 30 accesses hit two objects
    // within 10 seconds.
    for (i, object) in scanned.iter().enumerate() {
        specs.push(json!({"key": object.id, "value": event(&object.id, json!(start + i as i64))}));
    }
    for i in 0..150 {
        specs.push(json!({"key": hot.id, "value": event(&hot.id, json!(start + i * 66))}));
    }
    for i in 0..30 {
        specs.push(json!({"key": warm.id, "value": event(&warm.id, json!(start + i * 330))}));
    }
    produce_independently(&rig.topic, &specs);

    eventually(Duration::from_secs(60), "every event counted", || async {
        rig.metrics.events_consumed() == 10_180
    })
    .await;
    let reactive = || async {
        rig.catalogue
            .list_moves(
                &MoveFilter {
                    reason: Some(MoveReason::ReactiveAccessSpike),
                    ..MoveFilter::default()
                },
                100,
                None,
            )
            .await
            .unwrap()
            .items
    };
    eventually(Duration::from_secs(10), "two promotions", || async {
        reactive().await.len() >= 2
    })
    .await;
    // Settling and cool-down have passed: nothing more comes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut moves: Vec<(String, String)> = reactive()
        .await
        .into_iter()
        .map(|m| (m.object_id, m.to_tier))
        .collect();
    moves.sort();
    let mut expected = vec![
        (hot.id.clone(), "onprem".to_string()),
        (warm.id.clone(), "private".to_string()),
    ];
    expected.sort();
    assert_eq!(moves, expected);
    rig.finish().await;
}
