//! Operator rules and bulk moves on the local stack, with real moves: a pin holds under a
//! spike and under a forecast that demotes its neighbours, a ceiling holds a hot object
//! below it, a transition moves an object N days after its last access (a day of a
//! second here, `RULES_DAY_SECS`), an expiry deletes and records, the most specific rule
//! governs, bad rules get 400s; a bulk move of 500 objects does what its plan said and
//! a cancelled one leaves the rest in place.

mod common;

use std::time::{Duration, Instant};

use common::{StrataServer, TestDb, curl, eventually, http};
use serde_json::Value;

fn object(server: &StrataServer, id: &str) -> Value {
    curl(&[&server.url(&format!("/api/v1/objects/{id}"))]).json()
}

fn tier_of(server: &StrataServer, id: &str) -> String {
    object(server, id)["tier"].as_str().unwrap().to_string()
}

fn moves_of(server: &StrataServer, id: &str) -> Vec<Value> {
    curl(&[&server.url(&format!("/api/v1/migrations?object_id={id}"))]).json()["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn put_rule(server: &StrataServer, id: &str, rule: Value) -> (u16, Value) {
    let (status, body) = http(
        "PUT",
        &server.url(&format!("/api/v1/rules/{id}")),
        Some(&rule.to_string()),
    );
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn migrate(server: &StrataServer, id: &str, tier: &str) {
    let (status, body) = http(
        "POST",
        &server.url(&format!("/api/v1/objects/{id}/migrations")),
        Some(&serde_json::json!({ "to_tier": tier }).to_string()),
    );
    assert_eq!(status, 202, "{body}");
}

fn read(server: &StrataServer, id: &str, count: u64) {
    let (status, body) = http(
        "POST",
        &server.url(&format!("/api/v1/objects/{id}/access")),
        Some(&serde_json::json!({ "count": count }).to_string()),
    );
    assert_eq!(status, 202, "{body}");
}

/// Waits until `id` has a completed move to `to` for `reason`.
async fn wait_move(server: &StrataServer, id: &str, reason: &str, to: &str, what: &str) {
    eventually(Duration::from_secs(60), what, || {
        let made = moves_of(server, id)
            .iter()
            .any(|m| m["reason"] == reason && m["to_tier"] == to && m["status"] == "completed");
        async move { made }
    })
    .await;
}

async fn wait_tier(server: &StrataServer, id: &str, tier: &str, what: &str) {
    eventually(Duration::from_secs(60), what, || {
        let there = tier_of(server, id) == tier;
        async move { there }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_ceilings_and_the_most_specific_rule_hold_against_spikes_and_forecasts() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(
        &db,
        &[
            ("FORECAST_INTERVAL_SECS", "1"),
            ("FORECAST_MIN_RESIDENCE_SECS", "0"),
            ("RULES_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    for (id, rule) in [
        (
            "audit",
            serde_json::json!({"filter": {"prefix": "audit/"}, "action": "pin", "tier": "private"}),
        ),
        (
            "audit-free",
            serde_json::json!({"filter": {"prefix": "audit/free/"}, "action": "transition",
                               "tier": "public", "after_days": 1000}),
        ),
        (
            "scratch",
            serde_json::json!({"filter": {"prefix": "scratch/"}, "action": "ceiling", "tier": "private"}),
        ),
    ] {
        let (status, body) = put_rule(&server, id, rule);
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["id"], id, "{body}");
        assert_eq!(body["in_force"], true, "{body}");
    }
    let pinned = server.ingest("audit/2025/ledger", "pinned");
    let free = server.ingest("audit/free/notes", "free");
    let capped = server.ingest("scratch/tmp", "capped");
    let neighbour = server.ingest("other/neighbour", "neighbour");
    let hot = server.ingest("other/hot", "hot");

    // The pass moves the pinned object to its tier; the transition not yet due governs
    // audit/free/ alone, so the less specific pin leaves it where it landed.
    wait_tier(&server, &pinned, "private", "the pinned object on private").await;
    let moves = moves_of(&server, &pinned);
    assert_eq!(
        (&moves[0]["reason"], &moves[0]["rule_id"]),
        (&"rule".into(), &"audit".into()),
        "{moves:#?}"
    );
    assert_eq!(tier_of(&server, &free), "public");
    assert!(moves_of(&server, &free).is_empty());

    // A forecast of no accesses demotes an object on private that no rule holds (the
    // neighbour, put there by hand), never the pinned one.
    migrate(&server, &neighbour, "private");
    wait_move(
        &server,
        &neighbour,
        "proactive_prediction",
        "public",
        "the forecaster demoting the neighbour",
    )
    .await;
    assert_eq!(tier_of(&server, &pinned), "private");

    // A spike promotes an object no rule holds to onprem; the pinned one stays, the
    // capped one goes no higher than private.
    for id in [&hot, &pinned, &capped] {
        read(&server, id, 500);
    }
    wait_move(
        &server,
        &hot,
        "reactive_access_spike",
        "onprem",
        "the spike promoting the free object",
    )
    .await;
    wait_tier(&server, &capped, "private", "the capped object on private").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(tier_of(&server, &pinned), "private");
    assert_eq!(tier_of(&server, &capped), "private");
    let capped_moves = moves_of(&server, &capped);
    assert!(
        capped_moves.iter().all(|m| m["to_tier"] != "onprem"),
        "{capped_moves:#?}"
    );

    // The rules listed most specific first; the plan names the rules' moves.
    let listed = curl(&[&server.url("/api/v1/rules")]).json();
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["audit-free", "scratch", "audit"], "{listed:#}");
    let (status, _) = put_rule(
        &server,
        "audit",
        serde_json::json!({"filter": {"prefix": "audit/"}, "action": "pin", "tier": "onprem"}),
    );
    assert_eq!(status, 200, "replaced");
    // The plan proposes no move the new pin forbids: only to onprem, for the rule (or
    // for traffic, when the rule's move is queued already).
    let plan = curl(&[&server.url("/api/v1/plan")]).json();
    for m in plan["items"].as_array().unwrap() {
        if m["object_id"] == pinned.as_str() {
            assert_eq!(m["to_tier"], "onprem", "{plan:#}");
        }
        if m["object_id"] == capped.as_str() {
            assert_ne!(m["to_tier"], "onprem", "{plan:#}");
        }
    }
    wait_tier(&server, &pinned, "onprem", "the re-pinned object on onprem").await;

    // Deleted, a rule no longer holds anything.
    let (status, _) = http("DELETE", &server.url("/api/v1/rules/scratch"), None);
    assert_eq!(status, 204);
    let (status, _) = http("DELETE", &server.url("/api/v1/rules/scratch"), None);
    assert_eq!(status, 404);
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_follow_the_last_access_and_expiry_deletes_and_records() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(
        &db,
        &[("RULES_DAY_SECS", "1"), ("RULES_INTERVAL_SECS", "1")],
    )
    .await;
    let logs = server.ingest("logs/app", "log lines");
    migrate(&server, &logs, "onprem");
    wait_tier(&server, &logs, "onprem", "the log on onprem").await;
    read(&server, &logs, 1);
    let read_at = Instant::now();
    eventually(Duration::from_secs(30), "the read counted", || {
        let counted = object(&server, &logs)["access"]["total"] == 1;
        async move { counted }
    })
    .await;
    let (status, body) = put_rule(
        &server,
        "cold-logs",
        serde_json::json!({"filter": {"prefix": "logs/"}, "action": "transition",
                           "tier": "public", "after_days": 4}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(tier_of(&server, &logs), "onprem", "not due yet");
    wait_tier(&server, &logs, "public", "the transition after four days").await;
    // Four "days" of a second each after the read, give or take the pass's interval.
    let waited = read_at.elapsed();
    assert!(waited >= Duration::from_secs(3), "moved after {waited:?}");
    let moves = moves_of(&server, &logs);
    assert_eq!(
        (&moves[0]["reason"], &moves[0]["rule_id"]),
        (&"rule".into(), &"cold-logs".into())
    );

    let (status, body) = put_rule(
        &server,
        "tmp",
        serde_json::json!({"filter": {"prefix": "tmp/"}, "action": "expire", "after_days": 2}),
    );
    assert_eq!(status, 201, "{body}");
    let doomed = server.ingest("tmp/upload", "temporary");
    let kept = server.ingest("tmpfile", "kept");
    eventually(Duration::from_secs(30), "the expiry", || {
        let (status, _) = http(
            "GET",
            &server.url(&format!("/api/v1/objects/{doomed}")),
            None,
        );
        async move { status == 404 }
    })
    .await;
    let expired = curl(&[&server.url("/api/v1/rules/tmp/expirations")]).json();
    assert_eq!(
        expired["items"][0]["object_id"],
        doomed.as_str(),
        "{expired:#}"
    );
    assert_eq!(expired["items"][0]["key"], "tmp/upload");
    // What a rule expired stays listed once the rule is gone; an unknown rule is a 404.
    let deleted = curl(&["-X", "DELETE", &server.url("/api/v1/rules/tmp")]);
    assert_eq!(deleted.status, 204);
    let after = curl(&[&server.url("/api/v1/rules/tmp/expirations")]).json();
    assert_eq!(after["items"], expired["items"]);
    curl(&[&server.url("/api/v1/rules/nope/expirations")]).assert_error(404, "not_found");
    assert_eq!(tier_of(&server, &kept), "public");
    assert!(server.log().contains("object expired by rule"));
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_get_clear_400s() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(&db, &[]).await;
    for (rule, says) in [
        (
            serde_json::json!({"filter": {"prefix": "a/"}, "action": "pin", "tier": "tape"}),
            "unknown tier",
        ),
        (
            serde_json::json!({"filter": {}, "action": "expire", "after_days": 7}),
            "\"all\": true",
        ),
        (
            serde_json::json!({"filter": {"prefix": "a/"}, "action": "expire", "after_days": -3}),
            "0 or more",
        ),
        (
            serde_json::json!({"filter": {"prefix": "a/"}, "action": "shred"}),
            "unknown variant",
        ),
    ] {
        let (status, body) = put_rule(&server, "bad", rule.clone());
        assert_eq!(status, 400, "{rule}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{rule}: {message}");
    }
    let (status, body) = put_rule(
        &server,
        "every",
        serde_json::json!({"filter": {"all": true}, "action": "expire", "after_days": 3650}),
    );
    assert_eq!(status, 201, "an explicit all is taken: {body}");
    let (status, _) = put_rule(
        &server,
        "bad%20id",
        serde_json::json!({"filter": {"all": true}, "action": "pin", "tier": "public"}),
    );
    assert_eq!(status, 400);
    let listed = curl(&[&server.url("/api/v1/rules")]).json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed:#}");
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_move_does_what_its_plan_said_and_a_cancelled_one_stops() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(&db, &[("MOVER_CONCURRENCY", "1")]).await;
    strata::tls::install_provider();
    let client = reqwest::Client::new();
    let ingest = |key: String, body: String| {
        let client = client.clone();
        let url = server.url(&format!("/api/v1/objects?key={key}"));
        async move {
            let reply = client.post(url).body(body).send().await.unwrap();
            assert_eq!(reply.status(), 201);
        }
    };
    let mut bytes = 0;
    for i in 0..500 {
        let body = "r".repeat(100 + i % 50);
        bytes += body.len();
        ingest(format!("reports/2025/{i:03}"), body).await;
    }
    for i in 0..200 {
        ingest(format!("reports/2024/{i:03}"), "old".into()).await;
    }
    ingest("reports/2026/x".into(), "new".into()).await;

    let batch = |prefix: &str, dry_run: bool| {
        serde_json::json!({"filter": {"prefix": prefix}, "to_tier": "private", "dry_run": dry_run})
            .to_string()
    };
    let url = server.url("/api/v1/migrations/batches");
    let (status, plan) = http("POST", &url, Some(&batch("reports/2025/", true)));
    assert_eq!(status, 200, "{plan}");
    let plan: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(
        (plan["objects"].as_u64(), plan["bytes"].as_u64()),
        (Some(500), Some(bytes as u64)),
        "{plan:#}"
    );
    assert_eq!(plan["from_tiers"]["public"], 500, "{plan:#}");
    assert_eq!(plan["capacity"]["fits"], true, "{plan:#}");
    assert!(
        plan["estimated_seconds"].as_f64().unwrap() > 0.0,
        "{plan:#}"
    );
    let untouched = curl(&[&server.url("/api/v1/migrations?limit=1")]).json();
    assert!(
        untouched["items"].as_array().unwrap().is_empty(),
        "a dry run queues nothing"
    );

    let (status, queued) = http("POST", &url, Some(&batch("reports/2025/", false)));
    assert_eq!(status, 202, "{queued}");
    let queued: Value = serde_json::from_str(&queued).unwrap();
    assert_eq!(queued["queued"]["objects"], plan["objects"], "{queued:#}");
    assert_eq!(queued["queued"]["bytes"], plan["bytes"], "{queued:#}");
    let id = queued["id"].as_str().unwrap().to_string();
    let status_url = server.url(&format!("/api/v1/migrations/batches/{id}"));
    let mut seen_progress = false;
    eventually(Duration::from_secs(120), "the batch done", || {
        let batch = curl(&[&status_url]).json();
        let done = batch["done"]["objects"].as_u64().unwrap_or_default();
        seen_progress |= done > 0 && done < 500;
        async move { done == 500 && batch["remaining"]["objects"] == 0 }
    })
    .await;
    assert!(seen_progress, "progress between none and all was reported");
    let done = curl(&[&status_url]).json();
    assert_eq!(done["done"]["bytes"], plan["bytes"], "{done:#}");
    let page = curl(&[&server.url("/api/v1/migrations?limit=1")]).json();
    assert_eq!(page["items"][0]["batch_id"], id.as_str());
    assert_eq!(page["items"][0]["reason"], "manual");

    // A second batch, cancelled at once: what had not started stays where it was.
    let (status, queued) = http("POST", &url, Some(&batch("reports/2024/", false)));
    assert_eq!(status, 202, "{queued}");
    let id = serde_json::from_str::<Value>(&queued).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, cancelled) = http(
        "POST",
        &server.url(&format!("/api/v1/migrations/batches/{id}/cancel")),
        None,
    );
    assert_eq!(status, 200, "{cancelled}");
    let status_url = server.url(&format!("/api/v1/migrations/batches/{id}"));
    eventually(
        Duration::from_secs(30),
        "the cancelled batch settled",
        || {
            let batch = curl(&[&status_url]).json();
            async move { batch["remaining"]["objects"] == 0 }
        },
    )
    .await;
    let settled = curl(&[&status_url]).json();
    let (moved, stopped) = (
        settled["done"]["objects"].as_u64().unwrap(),
        settled["cancelled"]["objects"].as_u64().unwrap(),
    );
    assert_eq!(moved + stopped, 200, "{settled:#}");
    assert!(stopped > 0, "{settled:#}");
    let public =
        curl(&[&server.url("/api/v1/objects?tier=public&key_prefix=reports/2024/&limit=1000")])
            .json();
    assert_eq!(public["items"].as_array().unwrap().len() as u64, stopped);

    let (status, body) = http(
        "POST",
        &url,
        Some(&serde_json::json!({"filter": {}, "to_tier": "private"}).to_string()),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(
        "POST",
        &url,
        Some(&serde_json::json!({"filter": {"prefix": "x"}, "to_tier": "tape"}).to_string()),
    );
    assert_eq!(status, 422, "{body}");
    drop(server);
    db.drop_db().await;
}
