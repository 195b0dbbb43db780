//! Readiness tells the truth about every dependency, and a service whose task fails
//! says so and exits: `strata serve` processes against brokers and S3 servers of the
//! tests' own that they stop and start.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A tansu broker of the test's own, in memory, that the test starts when it likes.
struct OwnBroker {
    port: u16,
    process: Option<ServerProcess>,
}

impl OwnBroker {
    /// A broker address that nothing listens on until [`OwnBroker::start`].
    fn down() -> OwnBroker {
        OwnBroker {
            port: free_port(),
            process: None,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker and creates `topics` on it.
    async fn start(&mut self, topics: &[&str]) {
        let url = format!("tcp://{}", self.address());
        let mut tansu = std::process::Command::new(which("tansu"));
        tansu
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--cluster-id", "strata-readiness"]);
        self.process = Some(ServerProcess::listening(
            tansu,
            self.port,
            Duration::from_secs(10),
        ));
        for topic in topics {
            create_topic_on(&self.address(), topic, 1).await;
        }
    }
}

fn readiness(server: &StrataServer) -> (u16, serde_json::Value) {
    let (status, body) = http("GET", &server.url("/readyz"), None);
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// Waits until readiness answers `status` with a problem containing `problem` (any
/// problem when empty); the body.
async fn wait_for_readiness(
    server: &StrataServer,
    status: u16,
    problem: &str,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let (got, body) = readiness(server);
        let problems = body["problems"].as_array().cloned().unwrap_or_default();
        let named = problem.is_empty()
            || problems
                .iter()
                .any(|p| p.as_str().is_some_and(|p| p.contains(problem)));
        if got == status && named {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never answered {status} naming {problem:?}; last {got}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_then_up_is_named_then_ready_without_a_restart_and_logged_boundedly() {
    let db = TestDb::postgres().await;
    let mut broker = OwnBroker::down();
    let topic = unique_name("access");
    let dlq = format!("{topic}.dlq");
    let server = StrataServer::start(
        &db,
        &[
            ("KAFKA_BROKERS", &broker.address()),
            ("KAFKA_ACCESS_TOPIC", &topic),
            // The default filter, librdkafka's own lines included.
            ("RUST_LOG", "info"),
        ],
    )
    .await;
    let body = wait_for_readiness(&server, 503, "broker", Duration::from_secs(10)).await;
    assert_ne!(body["dependencies"]["broker"]["state"], "up", "{body}");
    assert_eq!(body["dependencies"]["catalogue"], "up", "{body}");
    assert!(
        body["dependencies"]["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "up"),
        "{body}"
    );

    // A minute of outage: three clients retrying all the while, each kind of error
    // written once and then once per interval with its count (unbounded, it was
    // hundreds of lines).
    let before = server.log().lines().count();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let outage = server.log().lines().skip(before).count();
    assert!(
        outage <= 12,
        "{outage} log lines for a minute of outage:\n{}",
        server.log()
    );
    let body = wait_for_readiness(&server, 503, "broker down", Duration::from_secs(5)).await;
    assert_eq!(body["dependencies"]["broker"]["state"], "down", "{body}");

    broker.start(&[&topic, &dlq]).await;
    let body = wait_for_readiness(&server, 200, "", Duration::from_secs(60)).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["dependencies"]["broker"]["state"], "up", "{body}");
    assert_eq!(body["problems"], serde_json::json!([]), "{body}");
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_whose_endpoint_is_down_is_named_and_ready_again_when_it_is_back() {
    let db = TestDb::postgres().await;
    let mut s3 = OwnS3Server::start("readiness");
    let endpoint = format!("http://127.0.0.1:{}", s3.port);
    let server = StrataServer::start(
        &db,
        &[
            ("TIER_PUBLIC_URL", "s3://readiness"),
            ("TIER_PUBLIC_ENDPOINT", &endpoint),
        ],
    )
    .await;
    wait_for_readiness(&server, 200, "", Duration::from_secs(30)).await;

    s3.stop();
    let body = wait_for_readiness(&server, 503, "tier public down", Duration::from_secs(15)).await;
    let public = body["dependencies"]["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "public")
        .cloned()
        .unwrap();
    assert_eq!(public["state"], "down", "{body}");
    assert!(
        public["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );

    s3.resume();
    wait_for_readiness(&server, 200, "", Duration::from_secs(15)).await;
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_cannot_start_fails_readiness_and_the_process_exits_non_zero() {
    let db = TestDb::postgres().await;
    let broker = OwnBroker::down();
    let mut server = StrataServer::start(
        &db,
        &[
            ("KAFKA_BROKERS", &broker.address()),
            ("KAFKA_STARTUP_TIMEOUT_MS", "3000"),
        ],
    )
    .await;
    wait_for_readiness(&server, 503, "broker", Duration::from_secs(5)).await;
    wait_for_readiness(
        &server,
        503,
        "task consumer stopped",
        Duration::from_secs(10),
    )
    .await;
    let status = server
        .exit_within(Duration::from_secs(20))
        .expect("the server exits");
    assert!(!status.success(), "exit status {status}");
    let log = server.log();
    assert!(
        log.contains("KAFKA_STARTUP_TIMEOUT_MS") && log.contains(&broker.address()),
        "the log must say which broker and which setting: {log}"
    );
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_panics_fails_readiness_and_the_process_exits_non_zero() {
    let db = TestDb::postgres().await;
    let mut server = StrataServer::start(&db, &[("STRATA_TEST_PANIC_TASK", "mover")]).await;
    let body = wait_for_readiness(
        &server,
        503,
        "task mover stopped: panicked",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(body["status"], "not_ready");
    let status = server
        .exit_within(Duration::from_secs(20))
        .expect("the server exits");
    assert!(!status.success(), "exit status {status}");
    assert!(
        server.log().contains("task mover panicked"),
        "{}",
        server.log()
    );
    drop(server);
    db.drop_db().await;
}
