//! The stack's Kafka-protocol broker: topics, and kafka-python as an independent client.

use std::io;
use std::path::PathBuf;

use super::*;

/// The stack's Kafka-protocol broker.
pub fn kafka_brokers() -> String {
    stack_env()
        .get("KAFKA_BROKERS")
        .cloned()
        .expect("KAFKA_BROKERS in the stack env file")
}

/// Creates `topic` with `partitions` partitions on the stack's broker.
pub async fn create_topic(topic: &str, partitions: i32) {
    create_topic_on(&kafka_brokers(), topic, partitions).await;
}

/// Creates `topic` with `partitions` partitions on the broker at `brokers`.
pub async fn create_topic_on(brokers: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic request");
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// Path of the independent Kafka client script (kafka-python).
fn kafka_client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/kafka_client.py")
}

/// Produces messages with kafka-python, an independent protocol implementation. Each
/// spec is `{"key", "value" | "value_hex", "repeat"}` (see the script).
pub fn produce_independently(topic: &str, specs: &[serde_json::Value]) {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg(kafka_client_script())
        .args(["produce", &kafka_brokers(), topic])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 (kafka-python must be installed: scripts/test.sh does it)");
    {
        let mut stdin = io::BufWriter::new(child.stdin.take().unwrap());
        for spec in specs {
            writeln!(stdin, "{spec}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kafka-python producer failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Reads `count` messages of `topic` from the beginning with kafka-python.
pub fn consume_independently(topic: &str, count: usize) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("python3")
        .arg(kafka_client_script())
        .args(["consume", &kafka_brokers(), topic, &count.to_string(), "60"])
        .output()
        .expect("run python3");
    let messages: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        out.status.success(),
        "expected {count} messages on {topic}, got {}: {messages:?}",
        messages.len()
    );
    messages
}
