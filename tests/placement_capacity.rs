//! Ranked placement on the local stack with real moves: a hot tier with room for three
//! objects is filled by the forecaster, and when two colder-ranked objects turn hotter,
//! the least dense residents are demoted (`capacity_rebalance`) to make room before the
//! promotions run. The tier never holds more than its capacity on the way. `GET /plan`
//! shows such a swap before it is made, each move with what it is worth and costs.

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

/// Five objects of `SIZE` bytes under `prefix`, the first three read steadily for the
/// last day (and the hour number now); then a server with `env`, once the three are on
/// `onprem`, where its forecaster's first run puts them.
async fn three_placed(
    db: &TestDb,
    env: &[(&str, &str)],
    prefix: &str,
) -> (StrataServer, Vec<String>, i64) {
    let server = StrataServer::start(db, env).await;
    let body = "x".repeat(SIZE);
    let ids: Vec<String> = (0..5)
        .map(|i| server.ingest(&format!("{prefix}/{i}"), &body))
        .collect();
    drop(server);
    {
        // Killed, the ingesting server holds the forecaster lease for three intervals.
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::query("DELETE FROM leases")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let now = strata::timestamp::now_ms().div_euclid(HOUR_MS);
    for id in &ids[..3] {
        inject_hours(db, id, (now - 24..now).map(|hour| (hour, 60))).await;
    }
    let server = StrataServer::start(db, env).await;
    wait_on_tier(
        &server,
        &ids[..3],
        "onprem",
        "the three read objects on onprem",
    )
    .await;
    assert_eq!(tier_of(&server, &ids[3]), "public");
    (server, ids, now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tier_makes_room_for_hotter_objects_and_never_overflows() {
    let db = TestDb::postgres().await;
    let capacity = (3 * SIZE).to_string();
    let env = [
        ("TIER_ONPREM_CAPACITY_BYTES", capacity.as_str()),
        ("FORECAST_INTERVAL_SECS", "1"),
        ("MOVER_CONCURRENCY", "4"),
        // Both swaps at once; the default (the capacity an hour) would space them out.
        ("MOVE_BUDGET_BYTES_PER_HOUR", "1000000"),
    ];
    let (server, ids, now) = three_placed(&db, &env, "ranked").await;

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
    assert_eq!(
        tiers["items"][0]["headroom"], 0.0,
        "none by default: {tiers}"
    );
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_shows_ranked_moves_with_benefit_and_cost_without_making_them() {
    let db = TestDb::postgres().await;
    let capacity = (3 * SIZE).to_string();
    let env = [
        ("TIER_ONPREM_CAPACITY_BYTES", capacity.as_str()),
        ("TIER_ONPREM_HEADROOM", "0"),
        // One run, at the start; the plan is asked for afterwards.
        ("FORECAST_INTERVAL_SECS", "86400"),
        ("MOVE_BUDGET_BYTES_PER_HOUR", "1000000"),
    ];
    let (server, ids, now) = three_placed(&db, &env, "planned").await;
    for id in &ids[3..] {
        inject_hours(&db, id, std::iter::once((now, 5_000))).await;
    }

    let plan = curl(&[&server.url("/api/v1/plan")]).json();
    let items = plan["items"].as_array().unwrap();
    let ranked: Vec<&Value> = items
        .iter()
        .filter(|m| m["expected_benefit_accesses"].is_f64())
        .collect();
    let demotions: Vec<&&Value> = ranked
        .iter()
        .filter(|m| m["reason"] == "capacity_rebalance")
        .collect();
    let promotions: Vec<&&Value> = ranked
        .iter()
        .filter(|m| m["reason"] == "proactive_prediction" && m["to_tier"] == "onprem")
        .collect();
    assert_eq!((demotions.len(), promotions.len()), (2, 2), "{plan:#}");
    for m in &ranked {
        assert_eq!(m["cost_accesses"], 1.0, "{m}");
        assert_eq!(m["bytes"], SIZE, "{m}");
    }
    for m in &demotions {
        assert!(ids[..3].contains(&m["object_id"].as_str().unwrap().to_string()));
        assert_eq!(
            (&m["from_tier"], &m["to_tier"]),
            (&"onprem".into(), &"private".into())
        );
        assert!(
            m["expected_benefit_accesses"].as_f64().unwrap() < 0.0,
            "{m}"
        );
    }
    // The swap pays: what the promotions bring beats what the demotions take away by
    // more than the four moves cost.
    let net: f64 = ranked
        .iter()
        .map(|m| m["expected_benefit_accesses"].as_f64().unwrap())
        .sum();
    assert!(net > 4.0, "{plan:#}");
    // A dry run: nothing was queued, and asking again plans the same moves (the values
    // of steady streams, means over the hours up to now, move on with the clock).
    assert_eq!(moves(&server).len(), 3);
    let again = curl(&[&server.url("/api/v1/plan")]).json();
    let planned = |plan: &Value| -> Vec<(String, String, String, String, f64)> {
        plan["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["object_id"].to_string(),
                    m["from_tier"].to_string(),
                    m["to_tier"].to_string(),
                    m["reason"].to_string(),
                    m["predicted_accesses"].as_f64().unwrap_or_default(),
                )
            })
            .collect()
    };
    let (first, second) = (planned(&plan), planned(&again));
    assert_eq!(first.len(), second.len(), "{again:#}");
    for (a, b) in first.iter().zip(&second) {
        assert_eq!((&a.0, &a.1, &a.2, &a.3), (&b.0, &b.1, &b.2, &b.3));
        assert!(
            (a.4 - b.4).abs() <= 1e-3 * a.4.abs().max(1.0),
            "{a:?} {b:?}"
        );
    }
    drop(server);
    db.drop_db().await;
}
