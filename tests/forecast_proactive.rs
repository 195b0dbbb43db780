//! The scheduled forecaster end to end on the local stack: injected access history
//! makes it promote an object before its daily peak and demote one that went cold;
//! registering another model changes predictions without a restart; a corrupt model
//! never replaces the one in use.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{StrataServer, TestDb, curl, eventually, inject_hours};
use serde_json::Value;
use sqlx::{AnyConnection, Connection, Executor};

const HOUR_MS: i64 = 3_600_000;

fn now_hour() -> i64 {
    strata::timestamp::now_ms().div_euclid(HOUR_MS)
}

fn migrations(server: &StrataServer, id: &str) -> Vec<Value> {
    curl(&[&server.url(&format!("/api/v1/migrations?object_id={id}"))]).json()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn wait_for_move(server: &StrataServer, id: &str, reason: &str, what: &str) -> Value {
    let mut found = Value::Null;
    eventually(Duration::from_secs(60), what, || {
        let done = migrations(server, id)
            .into_iter()
            .find(|m| m["reason"] == reason && m["status"] == "completed");
        let hit = done.is_some();
        if let Some(m) = done {
            found = m;
        }
        async move { hit }
    })
    .await;
    found
}

fn prediction(server: &StrataServer, id: &str) -> Value {
    let reply = curl(&[&server.url(&format!("/api/v1/objects/{id}/prediction"))]);
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forecaster_moves_objects_before_demand_and_follows_the_active_model() {
    let db = TestDb::postgres().await;
    let forecast_env = [
        ("FORECAST_INTERVAL_SECS", "1"),
        ("FORECAST_MIN_RESIDENCE_SECS", "0"),
    ];
    // First start: create the objects; the formerly hot one sits on the hottest tier.
    let server = StrataServer::start(&db, &forecast_env).await;
    let daily = server.ingest("reports/daily.csv", "some bytes");
    let faded = server.ingest("campaigns/2025.mp4", "some bytes");
    let moved = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"to_tier":"onprem"}"#,
        &server.url(&format!("/api/v1/objects/{faded}/migrations")),
    ]);
    assert_eq!(moved.status, 202);
    wait_for_move(&server, &faded, "manual", "the manual move to onprem").await;
    drop(server);

    // History the consumer would have counted: `daily` is read heavily every day in the
    // three hours after the current one, and not at all now; `faded` was busy eight days
    // ago and never since.
    let now = now_hour();
    inject_hours(
        &db,
        &daily,
        (1..=7).flat_map(|day| (1..=3).map(move |h| (now + h - 24 * day, 400))),
    )
    .await;
    inject_hours(&db, &faded, (now - 200..now - 180).map(|hour| (hour, 300))).await;

    // Second start: the forecaster reads the history and acts within a few runs.
    let server = StrataServer::start(&db, &forecast_env).await;
    let promoted = wait_for_move(
        &server,
        &daily,
        "proactive_prediction",
        "the daily object promoted ahead of its peak",
    )
    .await;
    assert_eq!(promoted["from_tier"], "public");
    assert!(
        ["onprem", "private"].contains(&promoted["to_tier"].as_str().unwrap()),
        "{promoted}"
    );
    let demoted = wait_for_move(
        &server,
        &faded,
        "proactive_prediction",
        "the cold object demoted",
    )
    .await;
    assert_eq!(demoted["from_tier"], "onprem");
    assert_eq!(demoted["to_tier"], "public");
    // No access of `daily` had arrived: the move came from the forecast alone.
    let object = curl(&[&server.url(&format!("/api/v1/objects/{daily}"))]).json();
    assert_eq!(object["access"]["last_hour"], 0, "{object}");

    // The predict endpoint and the stored prediction agree with the move.
    let predicted = prediction(&server, &daily);
    assert!(
        predicted["predicted_accesses"].as_f64().unwrap() > 10.0,
        "{predicted}"
    );
    assert_eq!(predicted["top_features"].as_array().unwrap().len(), 3);
    let first_version = predicted["model"]["version"].as_i64().unwrap();
    let object = curl(&[&server.url(&format!("/api/v1/objects/{daily}"))]).json();
    assert_eq!(
        object["prediction"]["model_version"], first_version,
        "{object}"
    );
    let cold = prediction(&server, &faded);
    assert!(cold["predicted_accesses"].as_f64().unwrap() < 5.0, "{cold}");
    let models = curl(&[&server.url("/api/v1/models")]).json();
    assert_eq!(models["items"][0]["active"], true, "{models}");
    assert!(server.metric("strata_model_version").is_some());

    // Hot reload: a model trained on another trace and activated from the CLI.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    let generated = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gen-trace.py"))
        .args(["--objects", "40", "--days", "10", "--seed", "99"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    std::fs::write(&trace, &generated.stdout).unwrap();
    let trained = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["train-model", "--trace", trace.to_str().unwrap()])
        .args(["--out", dir.path().to_str().unwrap(), "--name", "reload"])
        .arg("--activate")
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "off")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let mut second_version = 0;
    eventually(Duration::from_secs(20), "the new model in use", || {
        let now = prediction(&server, &daily);
        second_version = now["model"]["version"].as_i64().unwrap();
        let changed = now["model"]["name"] == "reload"
            && now["predicted_accesses"] != predicted["predicted_accesses"];
        async move { changed }
    })
    .await;
    assert_ne!(second_version, first_version);

    // A corrupt document activated behind the service's back is refused; the model in
    // use stays.
    let mut conn = AnyConnection::connect(&db.url).await.unwrap();
    conn.execute(
        "UPDATE models SET active = 0; \
         INSERT INTO models (id, name, version, document, trained_at, active) \
         VALUES ('corrupt', 'broken', 1, '{\"name\": \"broken\", \"coefficients\": [1e999', 1, 1)",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        prediction(&server, &daily)["model"]["version"],
        second_version
    );
    let models = curl(&[&server.url("/api/v1/models")]).json();
    let broken = models["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "corrupt")
        .unwrap()
        .clone();
    assert!(broken["problem"].as_str().is_some(), "{broken}");
    assert_eq!(broken["evaluation"], Value::Null);
    drop(server);
    db.drop_db().await;
}

/// A forecaster stores no prediction row for an object predicted at nothing, and one
/// started afresh (a restart, a daily reload, shards changing hands) stores again only the
/// predictions that changed since they were stored, not one row per object.
#[tokio::test]
async fn a_restarted_forecaster_stores_only_the_predictions_that_changed() {
    use strata::forecast::{Model, Shards};
    let db = TestDb::postgres().await;
    let catalogue = strata::db::Catalogue::connect(&db.url).await.unwrap();
    let policy =
        strata::policy::Policy::new(&strata::config::Config::from_lookup(|_| None).unwrap());
    let model = Model::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/model-before-kinds.json"
    )))
    .unwrap();
    let objects = common::catalogue_objects(&catalogue, "steady-", 20, "public").await;
    let quiet = common::catalogue_object(&catalogue, "never-read", "public").await;
    let hour = now_hour();
    for (i, object) in objects.iter().enumerate() {
        let hits = 1 + i as i64 % 5;
        inject_hours(&db, &object.id, (hour - 48..hour).map(|h| (h, hits))).await;
    }
    let stored_at = || async {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT object_id, predicted_at FROM predictions ORDER BY object_id")
                .fetch_all(&mut AnyConnection::connect(&db.url).await.unwrap())
                .await
                .unwrap();
        rows
    };
    // Both runs within one hour: the hours of every other object stay the same.
    let first_run = hour * HOUR_MS + 20 * 60_000;
    let mut tracker = None;
    policy
        .proactive_run(&catalogue, &model, &mut tracker, &Shards::all(), first_run)
        .await
        .unwrap();
    // A row for every object read, none for the one predicted at nothing.
    let stored = stored_at().await;
    assert_eq!(stored.len(), objects.len());
    assert!(
        stored
            .iter()
            .all(|(id, at)| *at == first_run && *id != quiet.id)
    );

    // One object's demand changes while no forecaster runs; the next one starts afresh.
    let changed = &objects[0].id;
    inject_hours(&db, changed, std::iter::once((hour, 5_000))).await;
    let second_run = first_run + 60_000;
    let mut restarted = None;
    policy
        .proactive_run(
            &catalogue,
            &model,
            &mut restarted,
            &Shards::all(),
            second_run,
        )
        .await
        .unwrap();
    let rewritten: Vec<String> = stored_at()
        .await
        .into_iter()
        .filter(|(_, at)| *at == second_run)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(&rewritten, std::slice::from_ref(changed));
    catalogue.close().await;
    db.drop_db().await;
}

/// An object nobody has read in the two days it has existed is predicted at nothing with
/// the shipped model, which reads a silent week as more than one access an hour.
#[test]
fn an_object_never_read_in_days_is_predicted_at_nothing() {
    use strata::forecast::features::{ClosedHours, ObjectFacts};
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "json"))
        .expect("a shipped model");
    let model = strata::forecast::Model::load(&shipped).unwrap();
    let now = strata::timestamp::now_ms();
    let object = ObjectFacts {
        created_ms: now - 48 * HOUR_MS,
        size_bytes: 1_000_000,
    };
    let forecast = strata::forecast::forecast_now(&model, &ClosedHours::default(), 0, object, now);
    assert_eq!(forecast.accesses, 0.0, "{forecast:?}");
    // Its first read, in the hour in progress, is left to the model.
    let read = strata::forecast::forecast_now(&model, &ClosedHours::default(), 1, object, now);
    assert!(read.accesses > 0.0, "{read:?}");
}
