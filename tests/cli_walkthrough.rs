//! The seed walkthrough from the terminal: the CLI client drives a running
//! `strata serve` on the real stack over REST.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{StrataServer, TestDb, eventually};
use serde_json::Value;

/// Runs `strata ARGS --server URL`; returns (success, stdout, stderr).
fn strata(server: &StrataServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .args(["--server", &server.base])
        .env_remove("API_TOKEN")
        .env("RUST_LOG", "off")
        .output()
        .expect("run strata");
    common::outcome(out)
}

fn strata_json(server: &StrataServer, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let (ok, out, err) = strata(server, &args);
    assert!(ok, "strata {args:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_the_walkthrough() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(&db, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.csv");
    std::fs::write(&file, "day,visits\nmon,3\n").unwrap();

    // Ingest: a table by default, the object as JSON on request.
    let (ok, table, err) = strata(&server, &["ingest", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("report.csv") && table.contains("public"),
        "{table}"
    );
    let object = strata_json(
        &server,
        &[
            "ingest",
            file.to_str().unwrap(),
            "--key",
            "reports/copy.csv",
        ],
    );
    assert_eq!(object["content_type"], "text/csv");
    let id = object["id"].as_str().unwrap().to_string();

    // 100 accesses make it hot: a reactive promotion, completed, to private (onprem takes
    // more than 100 by default).
    let (ok, out, err) = strata(&server, &["access", &id, "--count", "100"]);
    assert!(ok, "{err}");
    assert!(out.contains("published 100"), "{out}");
    eventually(
        Duration::from_secs(60),
        "a completed reactive_access_spike move",
        || async {
            let page = strata_json(&server, &["migrations", "--object", &id]);
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["reason"] == "reactive_access_spike" && m["status"] == "completed")
        },
    )
    .await;
    let (ok, table, _) = strata(&server, &["migrations", "--object", &id]);
    assert!(
        ok && table.contains("reactive_access_spike") && table.contains("completed"),
        "{table}"
    );
    let private = strata_json(&server, &["objects", "--tier", "private"]);
    assert_eq!(private["items"][0]["id"], id.as_str());
    let (ok, table, _) = strata(&server, &["objects"]);
    assert!(ok && table.contains("private"), "{table}");

    // The prediction of the shipped default model, as a line and as JSON.
    let (ok, line, err) = strata(&server, &["predict", &id]);
    assert!(ok, "{err}");
    assert!(
        line.contains("accesses predicted over the next 1 h") && line.contains("model default"),
        "{line}"
    );
    let predicted = strata_json(&server, &["predict", &id]);
    assert!(
        predicted["predicted_accesses"].as_f64().unwrap() > 0.0,
        "{predicted}"
    );
    assert_eq!(predicted["object_id"], id.as_str());

    // A manual move on, and the metrics.
    let (ok, out, err) = strata(&server, &["migrate", &id, "--to", "onprem"]);
    assert!(ok, "{err}");
    assert!(out.contains("private -> onprem"), "{out}");
    let (ok, metrics, _) = strata(&server, &["metrics"]);
    assert!(
        ok && metrics.contains("strata_tier_objects{tier="),
        "{metrics}"
    );
    // Requests are timed by route template; the table leaves histogram buckets out.
    assert!(
        metrics.contains(
            "strata_http_request_seconds_count{method=\"POST\",route=\"/api/v1/objects\",status=\"201\"} "
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("_bucket{"), "{metrics}");
    let metrics = strata_json(&server, &["metrics"]);
    assert!(metrics["strata_events_consumed_total"].as_f64().unwrap() >= 100.0);
    let buckets = metrics.as_object().unwrap().keys();
    assert!(
        buckets
            .filter(|k| k.starts_with("strata_http_request_seconds_bucket{"))
            .count()
            > 1
    );

    // Failures: non-zero exit, one line naming the problem.
    for (args, needle) in [
        (vec!["migrate", "nope", "--to", "onprem"], "404"),
        (vec!["migrate", &id, "--to", "cold"], "unknown tier"),
        (vec!["ingest", "/no/such/file"], "/no/such/file"),
        (vec!["access", &id, "--count", "0"], "count"),
        (vec!["predict", "nope"], "404"),
    ] {
        let (ok, out, err) = strata(&server, &args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.starts_with("strata: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["objects", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach http://127.0.0.1:9"));
    drop(server);
    db.drop_db().await;
}
