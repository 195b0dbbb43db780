//! Scheduled retraining on the local stack, champion against challenger: a process
//! holding the forecaster lease trains a challenger from the catalogue's history every
//! `FORECAST_RETRAIN_INTERVAL_SECS`, scores it and the active model on the most recent
//! hours it held out, by capture, and registers it, as the active model only when it
//! captures more. A second process picks the new active model up.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{StrataServer, TestDb, catalogue_objects, eventually, inject_hours};
use strata::db::Catalogue;
use strata::forecast::Model;
use strata::jobs::RETRAINED_NAME;

const HOUR_MS: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_better_challenger_is_activated_everywhere_and_a_worse_one_only_recorded() {
    let db = TestDb::postgres().await;
    let catalogue = Catalogue::connect(&db.url).await.unwrap();
    // Eighty objects with a week of daily cycles, each at its own hour and level; a few
    // accesses an hour at most, so no threshold calls for a move.
    let objects = catalogue_objects(&catalogue, "cycle/", 80, "public").await;
    let now = strata::timestamp::now_ms().div_euclid(HOUR_MS);
    for (i, object) in objects.iter().enumerate() {
        let peak = (i * 7) as i64 % 24;
        let level = 1 + i as i64 % 4;
        let hours = (now - 7 * 24..now).map(move |hour| {
            let hits = if (hour - peak).rem_euclid(24) < 3 {
                level
            } else {
                0
            };
            (hour, hits)
        });
        inject_hours(&db, &object.id, hours.filter(|&(_, hits)| hits > 0)).await;
    }
    // The champion ranks objects backwards: an earlier shipped model with every weight negated.
    let mut champion = Model::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/model-before-kinds.json"
    )))
    .unwrap();
    champion.name = "backwards".into();
    champion.coefficients.iter_mut().for_each(|c| *c = -*c);
    champion.intercept = -champion.intercept;
    let backwards = strata::forecast::register(&catalogue, &champion, true)
        .await
        .unwrap();

    let trainer = StrataServer::start(
        &db,
        &[
            ("FORECAST_INTERVAL_SECS", "1"),
            ("FORECAST_RETRAIN_INTERVAL_SECS", "2"),
        ],
    )
    .await;
    let follower = StrataServer::start(
        &db,
        &[
            ("FORECAST_INTERVAL_SECS", "1"),
            ("FORECAST_RETRAIN_INTERVAL_SECS", "0"),
        ],
    )
    .await;

    let scheduled = || async {
        catalogue
            .list_models(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.name == RETRAINED_NAME)
            .collect::<Vec<_>>()
    };
    eventually(
        Duration::from_secs(90),
        "a challenger activated over the backwards champion",
        || async { scheduled().await.iter().any(|m| m.active) },
    )
    .await;
    let winner = scheduled().await.into_iter().find(|m| m.active).unwrap();
    assert!(
        !catalogue
            .list_models(100)
            .await
            .unwrap()
            .iter()
            .any(|m| m.id == backwards.id && m.active)
    );
    // Both processes load it: the follower never trains.
    for server in [&trainer, &follower] {
        eventually(
            Duration::from_secs(30),
            "the new active model in use",
            || async { server.metric("strata_model_version") == Some(winner.version as f64) },
        )
        .await;
    }
    // The next challengers learn from the same history: none captures more than the
    // model in use, and each is recorded without being activated.
    eventually(
        Duration::from_secs(90),
        "a challenger recorded and not activated",
        || async { scheduled().await.iter().any(|m| !m.active) },
    )
    .await;
    let document: serde_json::Value = serde_json::from_str(&winner.document).unwrap();
    assert!(
        document["evaluation"]["capture"]["model"][1]
            .as_f64()
            .unwrap()
            > 0.0,
        "{document}"
    );
    drop((trainer, follower));
    catalogue.close().await;
    db.drop_db().await;
}
