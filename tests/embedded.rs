//! `strata serve` with no configuration at all: SQLite and `file://` tiers under
//! `./data`, access events through the embedded broker (librdkafka's mock cluster).
//! Every simulated access arrives and is counted exactly once; a restart keeps objects,
//! moves and counts, and events published after it are counted too.

mod common;

use std::time::Duration;

use common::{EmbeddedServer, curl, eventually, ingest_at};
use serde_json::Value;

fn ingest(server: &EmbeddedServer, key: &str, body: &str) -> String {
    let object = ingest_at(&server.base, key, body);
    assert_eq!(object["tier"], "public", "{object}");
    object["id"].as_str().unwrap().to_string()
}

/// Publishes `count` accesses of `id`, retrying while the server answers 503 (the
/// embedded broker's consumer is behind), as a client should.
async fn access(server: &EmbeddedServer, id: &str, count: u64) {
    let mut reply = None;
    eventually(
        Duration::from_secs(120),
        "the access request to be accepted",
        || {
            let r = curl(&[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                &format!(r#"{{"count":{count}}}"#),
                &server.url(&format!("/api/v1/objects/{id}/access")),
            ]);
            let busy = r.status == 503;
            if busy {
                r.assert_error(503, "unavailable");
            } else {
                reply = Some(r);
            }
            async move { !busy }
        },
    )
    .await;
    let reply = reply.unwrap();
    assert_eq!(
        reply.status,
        202,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

fn object(server: &EmbeddedServer, id: &str) -> Value {
    curl(&[&server.url(&format!("/api/v1/objects/{id}"))]).json()
}

fn migrations(server: &EmbeddedServer, id: &str) -> Vec<Value> {
    curl(&[&server.url(&format!("/api/v1/migrations?object_id={id}"))]).json()["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn metric(server: &EmbeddedServer, name: &str) -> Option<f64> {
    let page = String::from_utf8(curl(&[&server.url("/metrics")]).body).unwrap();
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until every object in `expected` has exactly its count in total, then checks
/// that the consumer counted nothing beyond them.
async fn wait_for_counts(server: &EmbeddedServer, expected: &[(String, i64)], what: &str) {
    eventually(Duration::from_secs(300), what, || async {
        expected
            .iter()
            .all(|(id, n)| object(server, id)["access"]["total"].as_i64() == Some(*n))
    })
    .await;
    for (id, n) in expected {
        let total = object(server, id)["access"]["total"].as_i64();
        assert_eq!(total, Some(*n), "object {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_simulated_accesses_all_arrive_through_the_embedded_broker() {
    let server = EmbeddedServer::start().await;
    let log = server.log();
    assert!(
        log.contains("EMBEDDED in-process broker")
            && log.contains("lost when the process stops")
            && log.contains("set KAFKA_BROKERS="),
        "the log must say that events run embedded and what to set: {log}"
    );
    let ready = curl(&[&server.url("/readyz")]).json();
    assert_eq!(ready["dependencies"]["events"], "embedded", "{ready}");

    // Ten requests of the largest size the API takes, as fast as they are accepted.
    const OBJECTS: usize = 10;
    const PER_OBJECT: i64 = 100_000;
    let ids: Vec<String> = (0..OBJECTS)
        .map(|i| ingest(&server, &format!("load/{i}.bin"), "x"))
        .collect();
    for id in &ids {
        access(&server, id, PER_OBJECT as u64).await;
    }
    let expected: Vec<(String, i64)> = ids.iter().map(|id| (id.clone(), PER_OBJECT)).collect();
    wait_for_counts(&server, &expected, "every published access to be counted").await;
    assert!(
        metric(&server, "strata_events_publish_refused_total").is_some_and(|n| n > 0.0),
        "the consumer was never behind: the test did not test the limit"
    );
    assert_eq!(
        metric(&server, "strata_events_consumed_total"),
        Some((OBJECTS as i64 * PER_OBJECT) as f64)
    );
    assert_eq!(
        metric(&server, "strata_events_published_total"),
        Some((OBJECTS as i64 * PER_OBJECT) as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_objects_moves_and_counts() {
    let mut server = EmbeddedServer::start().await;
    let hot = ingest(&server, "reports/hot.csv", "day,visits\nmon,3\n");
    let cold = ingest(&server, "reports/cold.csv", "day,visits\ntue,1\n");
    access(&server, &hot, 100).await;
    access(&server, &cold, 3).await;
    eventually(
        Duration::from_secs(120),
        "a completed reactive_access_spike move of the hot object",
        || async {
            migrations(&server, &hot)
                .iter()
                .any(|m| m["reason"] == "reactive_access_spike" && m["status"] == "completed")
        },
    )
    .await;
    let expected = [(hot.clone(), 100), (cold.clone(), 3)];
    wait_for_counts(&server, &expected, "the first accesses to be counted").await;
    let hot_before = object(&server, &hot);
    assert_ne!(hot_before["tier"], "public", "{hot_before}");
    let moves_before = migrations(&server, &hot);
    let tiers_before = curl(&[&server.url("/api/v1/tiers")]).json();
    server.stop();
    assert!(
        server.log().contains("embedded broker stopped"),
        "the embedded broker is shut down with the process: {}",
        server.log()
    );
    // Nothing went wrong, so nothing is said to have (the publisher's producer outlived
    // the embedded broker and called that an error).
    assert!(!server.log().contains(" ERROR "), "{}", server.log());

    server.restart().await;
    let hot_after = object(&server, &hot);
    for field in ["tier", "version", "checksum", "size"] {
        assert_eq!(hot_after[field], hot_before[field], "{field}: {hot_after}");
    }
    for field in ["total", "last_access_at"] {
        assert_eq!(
            hot_after["access"][field], hot_before["access"][field],
            "{field}: {hot_after}"
        );
    }
    assert_eq!(migrations(&server, &hot), moves_before);
    assert_eq!(curl(&[&server.url("/api/v1/tiers")]).json(), tiers_before);
    let content = curl(&[&server.url(&format!("/api/v1/objects/{hot}/content"))]);
    assert_eq!(content.status, 200);
    assert_eq!(content.body, b"day,visits\nmon,3\n");

    // The new broker's log starts at offset 0 again: events after the restart are
    // counted, not skipped as if the old offsets still applied. The read above is one.
    access(&server, &cold, 5).await;
    let expected = [(hot.clone(), 101), (cold.clone(), 8)];
    wait_for_counts(
        &server,
        &expected,
        "the accesses after the restart to be counted",
    )
    .await;
}
