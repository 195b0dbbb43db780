//! Access events through a broker that needs TLS, as managed Kafka services do: tansu
//! behind stunnel, advertised on the TLS port. Events published over REST must be
//! counted; a broker whose certificate does not check out must be a clear problem
//! naming the settings, not a hang.
//!
//! SASL is not tested against a broker yet: tansu 0.6.0 cannot create the first user
//! of a broker that requires sign-in when it keeps its state in memory.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Pki, StrataServer, Stunnel, TestDb, eventually, free_port, unique_name, which};
use serde_json::Value;

/// A tansu broker of the test's own (memory storage) on a free port, advertising
/// `advertised` (where stunnel takes its clients' TLS).
struct Tansu {
    child: Child,
    port: u16,
}

impl Tansu {
    fn start(advertised: u16) -> Tansu {
        let port = free_port();
        let mut command = Command::new(which("tansu"));
        command.args([
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
        ]);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Tansu { child, port }
    }

    /// Runs `tansu ARGS --broker` against it.
    fn cli(&self, args: &[&str]) {
        let out = Command::new(which("tansu"))
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

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes accesses of a new object over REST and waits until they are counted.
async fn accesses_are_counted(server: &StrataServer) {
    let id = server.ingest("secure/object", "hello");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_over_tls_and_an_untrusted_broker_is_named() {
    let pki = Pki::new();
    let tls_port = free_port();
    let broker = Tansu::start(tls_port);
    let (topic, dlq) = broker.topics();
    let tunnel = Stunnel::start_on(&pki, tls_port, &format!("127.0.0.1:{}", broker.port));
    let db = TestDb::postgres().await;
    let brokers = format!("127.0.0.1:{}", tunnel.port);
    let with_ca = |ca: &str| {
        vec![
            ("KAFKA_BROKERS", brokers.clone()),
            ("KAFKA_ACCESS_TOPIC", topic.clone()),
            ("KAFKA_DLQ_TOPIC", dlq.clone()),
            ("KAFKA_SECURITY_PROTOCOL", "ssl".into()),
            ("KAFKA_SSL_CA_LOCATION", pki.file(ca).display().to_string()),
        ]
    };
    let trusted = with_ca("ca.pem");
    let trusted: Vec<(&str, &str)> = trusted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = StrataServer::start(&db, &trusted).await;
    accesses_are_counted(&server).await;
    drop(server);

    // A broker certificate from another CA: not ready, and readiness says what to check.
    let untrusted = with_ca("other-ca.pem");
    let untrusted: Vec<(&str, &str)> = untrusted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = StrataServer::start(&db, &untrusted).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Value = common::curl(&[&server.url("/readyz")]).json();
        let named = ready["problems"].as_array().is_some_and(|problems| {
            problems
                .iter()
                .any(|p| p.to_string().contains("KAFKA_SSL_CA_LOCATION"))
        });
        if named {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness does not name the TLS settings: {ready}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
