//! Ranked placement on the local stack with real moves: a hot tier with room for three
//! objects is filled by the forecaster, and when two colder-ranked objects turn hotter,
//! the least dense residents are demoted (`capacity_rebalance`) to make room before the
//! promotions run. The tier never holds more than its capacity on the way.

mod common;

use std::time::Duration;

use common::{StrataServer, TestDb, curl, eventually, inject_hours};
use serde_json::Value;

const HOUR_MS: i64 = 3_600_000;
const SIZE: usize = 1000;

fn onprem_bytes(server: &StrataServer) -> u64 {
    let tiers = curl(&[&server.url("/api/v1/tiers")]).json();
    tiers["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "onprem")
        .unwrap()["bytes"]
        .as_u64()
        .unwrap()
}

fn moves(server: &StrataServer) -> Vec<Value> {
    curl(&[&server.url("/api/v1/migrations?limit=100")]).json()["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn tier_of(server: &StrataServer, id: &str) -> String {
    curl(&[&server.url(&format!("/api/v1/objects/{id}"))]).json()["tier"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until every object of `ids` is on `tier`, checking the hot tier's bytes
/// against its capacity at every look.
async fn wait_on_tier(server: &StrataServer, ids: &[String], tier: &str, what: &str) {
    eventually(Duration::from_secs(90), what, || {
        let used = onprem_bytes(server);
        assert!(used <= 3 * SIZE as u64, "onprem holds {used} bytes");
        let there = ids.iter().all(|id| tier_of(server, id) == tier);
        async move { there }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tier_makes_room_for_hotter_objects_and_never_overflows() {
    let db = TestDb::postgres().await;
    let capacity = (3 * SIZE).to_string();
    let env = [
        ("TIER_ONPREM_CAPACITY_BYTES", capacity.as_str()),
        ("TIER_ONPREM_HEADROOM", "0"),
        ("FORECAST_INTERVAL_SECS", "1"),
        ("MOVER_CONCURRENCY", "4"),
        // Both swaps at once; the default (the capacity an hour) would space them out.
        ("MOVE_BUDGET_BYTES_PER_HOUR", "1000000"),
    ];
    let server = StrataServer::start(&db, &env).await;
    let body = "x".repeat(SIZE);
    let ids: Vec<String> = (0..5)
        .map(|i| server.ingest(&format!("ranked/{i}"), &body))
        .collect();
    drop(server);

    // A day of steady reads of the first three; the last two never read.
    let now = strata::db::now_ms().div_euclid(HOUR_MS);
    for id in &ids[..3] {
        inject_hours(&db, id, (now - 24..now).map(|hour| (hour, 60))).await;
    }
    let server = StrataServer::start(&db, &env).await;
    wait_on_tier(
        &server,
        &ids[..3],
        "onprem",
        "the three read objects on onprem",
    )
    .await;
    assert_eq!(tier_of(&server, &ids[3]), "public");

    // The other two turn far busier in the hour in progress: they take the room of two
    // of the first three, which go to the next tier down.
    for id in &ids[3..] {
        inject_hours(&db, id, std::iter::once((now, 5_000))).await;
    }
    wait_on_tier(
        &server,
        &ids[3..],
        "onprem",
        "the two busier objects on onprem",
    )
    .await;
    let moves = moves(&server);
    let rebalanced: Vec<&Value> = moves
        .iter()
        .filter(|m| m["reason"] == "capacity_rebalance")
        .collect();
    assert_eq!(rebalanced.len(), 2, "{moves:#?}");
    for m in &rebalanced {
        assert_eq!(
            (&m["from_tier"], &m["to_tier"]),
            (&"onprem".into(), &"private".into())
        );
        assert_eq!(m["status"], "completed", "{m}");
    }
    assert!(
        moves.iter().all(|m| m["status"] == "completed"),
        "no move failed or was refused: {moves:#?}"
    );
    assert_eq!(onprem_bytes(&server), 3 * SIZE as u64);
    // The tier's capacity and bar are shown where an operator looks.
    assert_eq!(
        server.metric("strata_tier_capacity_bytes{tier=\"onprem\"}"),
        Some(3.0 * SIZE as f64)
    );
    let bar = server.metric("strata_tier_bar_accesses_per_mb{tier=\"onprem\"}");
    assert!(bar.is_some_and(|b| b > 0.0), "{bar:?}");
    let tiers = curl(&[&server.url("/api/v1/tiers")]).json();
    let bar = tiers["items"][0]["bar_accesses_per_mb"].as_f64();
    assert!(bar.is_some_and(|b| b > 0.0), "{tiers}");
    assert_eq!(tiers["items"][0]["headroom"], 0.0, "{tiers}");
    drop(server);
    db.drop_db().await;
}
