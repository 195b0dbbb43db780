//! The access endpoint and metrics of a running `strata serve` on the real stack:
//! simulated accesses become events on the broker, are counted, show in `/metrics` and
//! as accesses served per tier, and a big enough burst queues a promotion.

mod common;

use std::time::Duration;

use common::{StrataServer, TestDb, catalogue_object, eventually, http};
use strata::db::{Catalogue, MoveFilter, MoveReason};
use strata::timestamp::now_ms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_accesses_flow_into_counts_metrics_and_a_promotion() {
    let db = TestDb::postgres().await;
    let catalogue = Catalogue::connect(&db.url).await.unwrap();
    let object = catalogue_object(&catalogue, "report.csv", "public").await;
    let server = StrataServer::start(&db, &[]).await;

    let access = server.url(&format!("/api/v1/objects/{}/access", object.id));
    let (status, body) = http("POST", &access, Some(r#"{"count": 30}"#));
    assert_eq!(status, 202, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["published"], 30);

    eventually(Duration::from_secs(30), "30 events counted", || async {
        catalogue
            .access_summary(&object.id, now_ms())
            .await
            .unwrap()
            .total
            == 30
    })
    .await;
    assert_eq!(server.metric("strata_events_consumed_total"), Some(30.0));
    // The publisher's polling thread, and no dead-letter producer while nothing is
    // dead-lettered (its producer's thread spins through the end of every 100 ms).
    let threads = server.thread_names();
    let count = |name: &str| threads.iter().filter(|t| t.starts_with(name)).count();
    assert_eq!(
        (count("event publisher"), count("producer poll")),
        (1, 0),
        "{threads:?}"
    );
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
                .list_moves(
                    &MoveFilter {
                        object_id: Some(object.id.clone()),
                        reason: Some(MoveReason::ReactiveAccessSpike),
                        ..MoveFilter::default()
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

    // Every counted access is served by some tier, in the last hour and day alike (the
    // promotion may have switched the tier of some before they were counted).
    let tiers: serde_json::Value =
        serde_json::from_str(&http("GET", &server.url("/api/v1/tiers"), None).1).unwrap();
    let items = tiers["items"].as_array().unwrap();
    for window in ["last_hour", "last_day"] {
        let served: i64 = items
            .iter()
            .map(|t| t["served"][window].as_i64().unwrap())
            .sum();
        assert_eq!(served, 30, "{window}: {tiers}");
        for t in items {
            let share = t["served"][format!("share_{window}")].as_f64().unwrap();
            let hits = t["served"][window].as_f64().unwrap();
            assert!((share - hits / 30.0).abs() < 1e-9, "{tiers}");
        }
    }
    let metric = |tier: &str, window: &str| {
        server
            .metric(&format!(
                "strata_tier_accesses_served{{tier=\"{tier}\",window=\"{window}\"}}"
            ))
            .unwrap_or(0.0)
    };
    for window in ["1h", "1d"] {
        let served: f64 = ["onprem", "private", "public"]
            .iter()
            .map(|tier| metric(tier, window))
            .sum();
        assert_eq!(served, 30.0, "{window}");
    }

    drop(server);
    catalogue.close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_access_requests_get_clear_errors() {
    let db = TestDb::postgres().await;
    let catalogue = Catalogue::connect(&db.url).await.unwrap();
    let object = catalogue_object(&catalogue, "a", "public").await;
    let server = StrataServer::start(&db, &[]).await;
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
