//! Access events through brokers that need what managed Kafka services need. TLS: tansu
//! behind stunnel, advertised on the TLS port. SASL: a tansu that keeps its users
//! (built with SQLite storage, `tansu-sasl`, installed by scripts/test.sh) requiring
//! sign-in with SCRAM (it offers no PLAIN). Events published over REST must be counted; a broker
//! whose certificate does not check out, or that refuses the sign-in, must be a clear
//! problem naming the settings, not a hang.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    Pki, ServerProcess, StrataServer, Stunnel, TestDb, eventually, free_port, unique_name, which,
};
use serde_json::Value;

/// A tansu broker of the test's own on `port`.
struct Tansu {
    /// Killed when the broker is dropped, also when it did not start.
    _process: ServerProcess,
    binary: std::path::PathBuf,
    port: u16,
}

impl Tansu {
    /// In memory, advertising `advertised` (where stunnel takes its clients' TLS).
    fn in_memory(advertised: u16) -> Tansu {
        let dir = std::env::temp_dir();
        Tansu::start(
            "tansu",
            &dir,
            "memory://tansu/",
            free_port(),
            advertised,
            false,
        )
    }

    /// `tool` (`tansu` or `tansu-sasl`) in `dir` with its state in `storage` (a SQLite
    /// file is found from `dir`); clients must sign in when `authentication`.
    fn start(
        tool: &str,
        dir: &std::path::Path,
        storage: &str,
        port: u16,
        advertised: u16,
        authentication: bool,
    ) -> Tansu {
        let binary = which(tool);
        let mut command = Command::new(&binary);
        command.current_dir(dir);
        command.args([
            "broker",
            "--storage-engine",
            storage,
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
        ]);
        if authentication {
            command.arg("--authentication");
        }
        let process = ServerProcess::listening(command, port, Duration::from_secs(20));
        Tansu {
            _process: process,
            binary,
            port,
        }
    }

    /// Runs `tansu ARGS --broker` against it.
    fn cli(&self, args: &[&str]) {
        let out = Command::new(&self.binary)
            .args(args)
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .expect("run tansu");
        assert!(
            out.status.success(),
            "tansu {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates the access topic and its dead-letter topic; their names.
    fn topics(&self) -> (String, String) {
        let topic = unique_name("access");
        let dlq = format!("{topic}.dlq");
        for (name, partitions) in [(&topic, "2"), (&dlq, "1")] {
            self.cli(&["topic", "create", name, "--partitions", partitions]);
        }
        (topic, dlq)
    }
}

/// Waits until `/readyz` names `setting` among its problems.
async fn readiness_names(server: &StrataServer, setting: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Value = common::curl(&[&server.url("/readyz")]).json();
        let named = ready["problems"]
            .as_array()
            .is_some_and(|problems| problems.iter().any(|p| p.to_string().contains(setting)));
        if named {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness does not name {setting}: {ready}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes accesses of a new object under `key` over REST and waits until they are
/// counted.
async fn accesses_are_counted(server: &StrataServer, key: &str) {
    let id = server.ingest(key, "hello");
    let published = common::curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"count": 7}"#,
        &server.url(&format!("/api/v1/objects/{id}/access")),
    ]);
    assert_eq!(published.status, 202);
    eventually(Duration::from_secs(60), "the accesses counted", || async {
        let object: Value = common::curl(&[&server.url(&format!("/api/v1/objects/{id}"))]).json();
        object["access"]["total"] == 7
    })
    .await;
}

/// `strata serve` on `db` reading the access topic and dead-letter topic `topics` of the
/// broker at `brokers`, with the security `settings` on top.
async fn serve_through(
    db: &TestDb,
    brokers: &str,
    (topic, dlq): &(String, String),
    settings: &[(&str, &str)],
) -> StrataServer {
    let mut env = vec![
        ("KAFKA_BROKERS", brokers),
        ("KAFKA_ACCESS_TOPIC", topic.as_str()),
        ("KAFKA_DLQ_TOPIC", dlq.as_str()),
    ];
    env.extend_from_slice(settings);
    StrataServer::start(db, &env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_over_tls_and_an_untrusted_broker_is_named() {
    let pki = Pki::new();
    let tls_port = free_port();
    let broker = Tansu::in_memory(tls_port);
    let topics = broker.topics();
    let tunnel = Stunnel::start_on(&pki, tls_port, &format!("127.0.0.1:{}", broker.port));
    let db = TestDb::postgres().await;
    let brokers = format!("127.0.0.1:{}", tunnel.port);
    let ca = pki.file("ca.pem").display().to_string();
    let settings = [
        ("KAFKA_SECURITY_PROTOCOL", "ssl"),
        ("KAFKA_SSL_CA_LOCATION", &ca),
    ];
    let server = serve_through(&db, &brokers, &topics, &settings).await;
    accesses_are_counted(&server, "secure/tls").await;
    drop(server);

    // A broker certificate from another CA: not ready, and readiness says what to check.
    let other = pki.file("other-ca.pem").display().to_string();
    let settings = [
        ("KAFKA_SECURITY_PROTOCOL", "ssl"),
        ("KAFKA_SSL_CA_LOCATION", &other),
    ];
    let server = serve_through(&db, &brokers, &topics, &settings).await;
    readiness_names(&server, "KAFKA_SSL_CA_LOCATION").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_after_scram_sign_in_and_a_refused_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let storage = "sqlite://tansu.db";
    let port = free_port();
    // The users are made before sign-in is required: tansu then refuses an anonymous
    // request to make them. SQLite storage keeps them over the restart.
    let open = Tansu::start("tansu-sasl", dir.path(), storage, port, port, false);
    for mechanism in ["scram256", "scram512"] {
        open.cli(&[
            "user",
            "create",
            "strata",
            "strata-secret",
            "--mechanism",
            mechanism,
        ]);
    }
    let topics = open.topics();
    drop(open);
    let _broker = Tansu::start("tansu-sasl", dir.path(), storage, port, port, true);
    let password_file = dir.path().join("kafka-password");
    std::fs::write(&password_file, "strata-secret\n").unwrap();
    let password_file = password_file.display().to_string();
    let db = TestDb::postgres().await;
    let brokers = format!("127.0.0.1:{port}");
    let signing_in = |mechanism, password| {
        [
            ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("KAFKA_SASL_MECHANISM", mechanism),
            ("KAFKA_SASL_USERNAME", "strata"),
            password,
        ]
    };
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let settings = signing_in(mechanism, ("KAFKA_SASL_PASSWORD_FILE", &password_file));
        let server = serve_through(&db, &brokers, &topics, &settings).await;
        accesses_are_counted(&server, &format!("secure/{mechanism}")).await;
    }

    // A wrong password: not ready, and readiness says which settings to check.
    let settings = signing_in("SCRAM-SHA-256", ("KAFKA_SASL_PASSWORD", "not-the-secret"));
    let server = serve_through(&db, &brokers, &topics, &settings).await;
    readiness_names(&server, "KAFKA_SASL_PASSWORD").await;
    assert!(
        !server.log().contains("not-the-secret"),
        "the password is logged"
    );
    drop(server);

    // A mechanism the broker does not offer (tansu 0.6.0 has SCRAM only): named too.
    let settings = signing_in("PLAIN", ("KAFKA_SASL_PASSWORD_FILE", &password_file));
    let server = serve_through(&db, &brokers, &topics, &settings).await;
    readiness_names(&server, "KAFKA_SASL_MECHANISM").await;
}
