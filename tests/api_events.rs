//! The access endpoint and metrics of a running `strata serve` on the real stack:
//! simulated accesses become events on the broker, are counted, show in `/metrics`, and
//! a big enough burst queues a promotion.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    TestDb, catalogue_object, create_topic, eventually, free_port, http, kafka_brokers, stack_env,
    unique_name,
};
use strata::db::{Catalogue, MigrationFilter, MigrationReason};

struct Server {
    child: Child,
    base: String,
    _workdir: tempfile::TempDir,
}

impl Server {
    async fn start(db: &TestDb) -> Server {
        let topic = unique_name("access");
        create_topic(&topic, 3).await;
        create_topic(&format!("{topic}.dlq"), 1).await;
        let port = free_port();
        let workdir = tempfile::tempdir().unwrap();
        let mut env: HashMap<String, String> = stack_env();
        for (k, v) in [
            ("DATABASE_URL", db.url.clone()),
            (
                "DATA_DIR",
                workdir.path().join("data").display().to_string(),
            ),
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("KAFKA_BROKERS", kafka_brokers()),
            ("KAFKA_ACCESS_TOPIC", topic),
            ("KAFKA_GROUP_ID", unique_name("group")),
            ("EVENTS_FLUSH_MS", "50".into()),
            ("RUST_LOG", "strata=info".into()),
        ] {
            env.insert(k.into(), v);
        }
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("serve")
            .current_dir(workdir.path())
            .env_clear()
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start strata serve");
        let base = format!("http://127.0.0.1:{port}");
        eventually(Duration::from_secs(30), "the API to answer", || async {
            http("GET", &format!("{base}/healthz"), None).0 == 200
        })
        .await;
        Server {
            child,
            base,
            _workdir: workdir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let (_, page) = http("GET", &self.url("/metrics"), None);
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_accesses_flow_into_counts_metrics_and_a_promotion() {
    let db = TestDb::postgres().await;
    let catalogue = Catalogue::connect(&db.url).await.unwrap();
    let object = catalogue_object(&catalogue, "report.csv", "public").await;
    let server = Server::start(&db).await;

    let access = server.url(&format!("/api/v1/objects/{}/access", object.id));
    let (status, body) = http("POST", &access, Some(r#"{"count": 30}"#));
    assert_eq!(status, 202, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["published"], 30);

    eventually(Duration::from_secs(30), "30 events counted", || async {
        catalogue.get_object(&object.id).await.unwrap().access_total == 30
    })
    .await;
    assert_eq!(server.metric("strata_events_consumed_total"), Some(30.0));
    assert_eq!(server.metric("strata_events_published_total"), Some(30.0));
    assert!(server.metric("strata_events_per_second").is_some());
    assert_eq!(
        server.metric("strata_tier_objects{tier=\"public\"}"),
        Some(1.0)
    );

    eventually(
        Duration::from_secs(10),
        "a promotion to private",
        || async {
            let moves = catalogue
                .list_migrations(
                    &MigrationFilter {
                        object_id: Some(object.id.clone()),
                        reason: Some(MigrationReason::ReactiveAccessSpike),
                        ..MigrationFilter::default()
                    },
                    10,
                    None,
                )
                .await
                .unwrap()
                .items;
            moves.len() == 1 && moves[0].to_tier == "private"
        },
    )
    .await;
    assert_eq!(server.metric("strata_spikes_detected_total"), Some(1.0));

    drop(server);
    catalogue.close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_access_requests_get_clear_errors() {
    let db = TestDb::postgres().await;
    let catalogue = Catalogue::connect(&db.url).await.unwrap();
    let object = catalogue_object(&catalogue, "a", "public").await;
    let server = Server::start(&db).await;
    let access = server.url(&format!("/api/v1/objects/{}/access", object.id));
    let cases = [
        (
            server.url("/api/v1/objects/nope/access"),
            r#"{"count": 1}"#,
            404,
            "not_found",
        ),
        (access.clone(), r#"{"count": 0}"#, 400, "bad_request"),
        (access.clone(), r#"{"count": "many"}"#, 400, "bad_request"),
        (
            access.clone(),
            r#"{"count": 1, "extra": true}"#,
            400,
            "bad_request",
        ),
        (access.clone(), "not json", 400, "bad_request"),
    ];
    for (url, body, status, code) in cases {
        let (got, text) = http("POST", &url, Some(body));
        assert_eq!(got, status, "{body}: {text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["code"], code, "{body}: {text}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    drop(server);
    catalogue.close().await;
    db.drop_db().await;
}
