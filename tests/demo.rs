//! `scripts/demo.sh`, the seed walkthrough, against the two ways to run Strata: the
//! embedded default (no configuration at all, a fresh data directory) and the local real
//! stack (PostgreSQL, the tansu broker, three s3s-fs servers).

mod common;

use std::process::Command;

use common::{EmbeddedServer, StrataServer, TestDb};

/// Runs the demo against `url`; asserts it succeeded and returns its output.
fn run_demo(url: &str, server_log: impl Fn() -> String) -> String {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("STRATA_URL", url)
        .env_remove("API_TOKEN")
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo.sh failed ({}):\n{stdout}\n{}\nserver log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server_log()
    );
    for expected in [
        "reactive_access_spike move completed",
        "proactive_prediction move completed",
        "prediction for",
        "strata_events_consumed_total",
        "OK: reactive and proactive moves completed",
        "console: http",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_the_embedded_default() {
    let server = EmbeddedServer::start().await;
    run_demo(&server.base, || server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_the_local_stack() {
    let db = TestDb::postgres().await;
    // A short detector window and forecast interval, as the demo's header suggests, so
    // that its paced reads and the scheduled forecast take seconds rather than minutes.
    // Spikes are reported without settling: the burst of step 2 is read in one go, and
    // a forecaster run between its counts being written and a settled report would
    // promote the object before the detector could.
    let server = StrataServer::start(
        &db,
        &[
            ("DETECTOR_WINDOW_SECS", "6"),
            ("DETECTOR_SETTLE_MS", "0"),
            ("FORECAST_INTERVAL_SECS", "5"),
        ],
    )
    .await;
    run_demo(&server.base, String::new);
    drop(server);
    db.drop_db().await;
}
