//! Every REST endpoint of a running `strata serve` on the real stack (PostgreSQL, the
//! broker, S3 servers), over curl: success paths, documented errors, status codes,
//! headers and JSON shapes.
//!
//! One file over 600 lines: the whole REST contract, endpoint by endpoint, in one place.

mod common;

use std::time::Duration;

use common::{StrataServer, TestDb, curl, eventually, pattern, s3_bucket_dir};
use serde_json::Value;
use strata::db::Catalogue;
use strata::timestamp::now_ms;

const OBJECT_FIELDS: [&str; 13] = [
    "id",
    "key",
    "size",
    "content_type",
    "checksum",
    "md5",
    "tier",
    "version",
    "created_at",
    "updated_at",
    "access",
    "prediction",
    "damage",
];

const MIGRATION_FIELDS: [&str; 13] = [
    "id",
    "object_id",
    "from_tier",
    "to_tier",
    "reason",
    "status",
    "attempts",
    "bytes_copied",
    "bytes_total",
    "error",
    "created_at",
    "started_at",
    "finished_at",
];

fn assert_shape(value: &Value, fields: &[&str]) {
    for field in fields {
        assert!(value.get(field).is_some(), "{field} missing in {value}");
    }
}

/// Uploads `bytes` raw under `key`; returns the reply.
fn upload(server: &StrataServer, key: &str, bytes: &[u8], extra: &[&str]) -> common::Reply {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload");
    std::fs::write(&file, bytes).unwrap();
    let data = format!("@{}", file.display());
    let url = server.url(&format!("/api/v1/objects?key={key}"));
    let mut args = vec![
        "-X",
        "POST",
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        &data,
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_ingest_list_read_and_delete() {
    let db = TestDb::postgres().await;
    let catalogue = Catalogue::connect(&db.url).await.unwrap();
    let server = StrataServer::start(&db, &[("MAX_OBJECT_BYTES", "1048576")]).await;
    let data = pattern(1, 1000);

    // Ingest, raw body.
    let created = upload(&server, "docs/a.txt", &data, &[]);
    assert_eq!(created.status, 201);
    let object = created.json();
    assert_shape(&object, &OBJECT_FIELDS);
    let id = object["id"].as_str().unwrap().to_string();
    assert_eq!(object["key"], "docs/a.txt");
    assert_eq!(object["size"], 1000);
    assert_eq!(object["content_type"], "text/plain");
    assert_eq!(object["tier"], "public");
    assert_eq!(object["version"], 1);
    assert_eq!(
        object["checksum"],
        format!("blake3:{}", blake3::hash(&data).to_hex())
    );
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/objects/{id}").as_str())
    );
    let location = catalogue.get_object(&id).await.unwrap().location;
    assert_eq!(
        std::fs::read(s3_bucket_dir("public").join(&location)).unwrap(),
        data,
        "the bytes are on the public tier's S3 server"
    );

    // The same key: a conflict, unless overwriting.
    upload(&server, "docs/a.txt", b"other", &[]).assert_error(409, "conflict");
    let rewritten = upload(&server, "docs/a.txt&overwrite=true", b"new content", &[]);
    assert_eq!(rewritten.status, 200);
    assert_eq!(rewritten.json()["version"], 2);
    assert_eq!(rewritten.json()["id"], id.as_str());
    assert!(
        !s3_bucket_dir("public").join(&location).exists(),
        "the old version's bytes are removed"
    );

    // Multipart: the file name is the key.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.csv");
    std::fs::write(&file, b"x,y\n1,2\n").unwrap();
    let form = format!("file=@{};type=text/csv", file.display());
    let multipart = curl(&["-F", &form, &server.url("/api/v1/objects")]);
    assert_eq!(multipart.status, 201);
    assert_eq!(multipart.json()["key"], "b.csv");
    assert_eq!(multipart.json()["content_type"], "text/csv");
    assert_eq!(multipart.json()["size"], 8);
    let other = curl(&["-F", "note=hi", &server.url("/api/v1/objects")]);
    other.assert_error(400, "bad_request");

    // Bad keys and too-large bodies leave nothing behind.
    upload(&server, "../escape", b"x", &[]).assert_error(400, "bad_request");
    let big = pattern(2, 2 * 1024 * 1024);
    upload(&server, "big", &big, &[]).assert_error(413, "too_large");
    upload(&server, "big", &big, &["-H", "Transfer-Encoding: chunked"])
        .assert_error(413, "too_large");
    let listed = curl(&[&server.url("/api/v1/objects")]);
    assert_eq!(listed.status, 200);
    let keys: Vec<_> = listed.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["docs/a.txt", "b.csv"]);

    // Listing: pages, filters, errors.
    let first = curl(&[&server.url("/api/v1/objects?limit=1")]).json();
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let next = first["next"].as_str().unwrap();
    let second = curl(&[&server.url(&format!("/api/v1/objects?limit=1&after={next}"))]).json();
    assert_eq!(second["items"][0]["key"], "b.csv");
    assert_eq!(second["next"], Value::Null);
    let prefixed = curl(&[&server.url("/api/v1/objects?key_prefix=docs/&tier=public")]).json();
    assert_eq!(prefixed["items"].as_array().unwrap().len(), 1);
    curl(&[&server.url("/api/v1/objects?tier=nope")]).assert_error(422, "unprocessable");
    curl(&[&server.url("/api/v1/objects?limit=0")]).assert_error(400, "bad_request");
    curl(&[&server.url("/api/v1/objects?limit=x")]).assert_error(400, "bad_request");
    // Found by schemathesis: PostgreSQL refuses text with NUL, which was a 503.
    curl(&[&server.url("/api/v1/objects?after=a%00b")]).assert_error(400, "bad_request");
    curl(&[&server.url("/api/v1/objects/a%00b")]).assert_error(400, "bad_request");

    // Metadata.
    let got = curl(&[&server.url(&format!("/api/v1/objects/{id}"))]);
    assert_eq!(got.status, 200);
    assert_shape(&got.json(), &OBJECT_FIELDS);
    curl(&[&server.url("/api/v1/objects/nope")]).assert_error(404, "not_found");

    // Content: whole, ranges, HEAD, conditional.
    let content_url = server.url(&format!("/api/v1/objects/{id}/content"));
    let whole = curl(&[&content_url]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, b"new content");
    assert_eq!(whole.header("content-type"), Some("text/plain"));
    assert_eq!(whole.header("content-length"), Some("11"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").unwrap().to_string();
    assert_eq!(
        etag,
        format!("\"blake3:{}\"", blake3::hash(b"new content").to_hex())
    );
    for (range, bytes, content_range) in [
        ("bytes=4-10", &b"content"[..], "bytes 4-10/11"),
        ("bytes=4-", b"content", "bytes 4-10/11"),
        ("bytes=-3", b"ent", "bytes 8-10/11"),
        ("bytes=0-0", b"n", "bytes 0-0/11"),
        ("bytes=9-99", b"nt", "bytes 9-10/11"),
    ] {
        let part = curl(&["-H", &format!("Range: {range}"), &content_url]);
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(part.body, bytes, "{range}");
        assert_eq!(part.header("content-range"), Some(content_range), "{range}");
        assert_eq!(
            part.header("content-length"),
            Some(bytes.len().to_string().as_str())
        );
    }
    let outside = curl(&["-H", "Range: bytes=11-", &content_url]);
    outside.assert_error(416, "range_not_satisfiable");
    assert_eq!(outside.header("content-range"), Some("bytes */11"));
    let head = curl(&["-I", &content_url]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("11"));
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    // With -I curl writes the headers where the body would go; no content follows them.
    assert!(!String::from_utf8_lossy(&head.body).contains("new content"));
    let cached = curl(&["-H", &format!("If-None-Match: {etag}"), &content_url]);
    assert_eq!(cached.status, 304);
    curl(&[&server.url("/api/v1/objects/nope/content")]).assert_error(404, "not_found");

    // Every GET of the content was one access event (HEAD is not a read).
    eventually(
        Duration::from_secs(30),
        "the content reads counted",
        || async { catalogue.access_summary(&id, now_ms()).await.unwrap().total == 7 },
    )
    .await;
    let counted = curl(&[&server.url(&format!("/api/v1/objects/{id}"))]).json();
    assert_eq!(counted["access"]["total"], 7);
    assert_eq!(counted["access"]["last_hour"], 7);
    assert!(counted["access"]["last_access_at"].is_string());

    // Delete.
    let location = catalogue.get_object(&id).await.unwrap().location;
    let deleted = curl(&[
        "-X",
        "DELETE",
        &server.url(&format!("/api/v1/objects/{id}")),
    ]);
    assert_eq!(deleted.status, 204);
    assert!(!s3_bucket_dir("public").join(&location).exists());
    curl(&[&server.url(&format!("/api/v1/objects/{id}"))]).assert_error(404, "not_found");
    curl(&[
        "-X",
        "DELETE",
        &server.url(&format!("/api/v1/objects/{id}")),
    ])
    .assert_error(404, "not_found");
    curl(&[&server.url("/api/v1/nothing")]).assert_error(404, "not_found");

    drop(server);
    catalogue.close().await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_tiers_and_plan() {
    let db = TestDb::postgres().await;
    // A slow mover, so that a move can be watched and cancelled while it copies.
    let server = StrataServer::start(&db, &[("MOVER_BANDWIDTH_BYTES_PER_SEC", "200000")]).await;
    let small = upload(&server, "small", b"tiny", &[]).json();
    let small_id = small["id"].as_str().unwrap();
    let big = upload(&server, "big", &pattern(3, 1024 * 1024), &[]).json();
    let big_id = big["id"].as_str().unwrap();
    let move_url = |id: &str| server.url(&format!("/api/v1/objects/{id}/migrations"));
    let post_json = |url: &str, body: &str| {
        curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            url,
        ])
    };

    let queued = post_json(&move_url(small_id), r#"{"to_tier": "onprem"}"#);
    assert_eq!(queued.status, 202);
    let migration = queued.json();
    assert_shape(&migration, &MIGRATION_FIELDS);
    assert_eq!(migration["reason"], "manual");
    assert_eq!(migration["from_tier"], "public");
    let migration_id = migration["id"].as_str().unwrap().to_string();
    let one = server.url(&format!("/api/v1/migrations/{migration_id}"));
    eventually(Duration::from_secs(30), "the move to complete", || async {
        curl(&[&one]).json()["status"] == "completed"
    })
    .await;
    let done = curl(&[&one]).json();
    assert_eq!(done["bytes_copied"], 4);
    assert_eq!(done["bytes_total"], 4);
    assert!(done["finished_at"].is_string());
    let moved = curl(&[&server.url(&format!("/api/v1/objects/{small_id}"))]).json();
    assert_eq!(moved["tier"], "onprem");

    post_json(&move_url(small_id), r#"{"to_tier": "onprem"}"#).assert_error(409, "conflict");
    post_json(&move_url(small_id), r#"{"to_tier": "cold"}"#).assert_error(422, "unprocessable");
    post_json(&move_url("nope"), r#"{"to_tier": "onprem"}"#).assert_error(404, "not_found");
    post_json(&move_url(small_id), r#"{"tier": "onprem"}"#).assert_error(400, "bad_request");
    post_json(&move_url(small_id), "{").assert_error(400, "bad_request");

    // A running move can be cancelled; the object stays readable where it was.
    let running = post_json(&move_url(big_id), r#"{"to_tier": "private"}"#).json();
    let running_id = running["id"].as_str().unwrap();
    post_json(&move_url(big_id), r#"{"to_tier": "onprem"}"#).assert_error(409, "conflict");
    let cancel = server.url(&format!("/api/v1/migrations/{running_id}/cancel"));
    let cancelled = curl(&["-X", "POST", &cancel]);
    assert_eq!(cancelled.status, 200);
    assert_eq!(cancelled.json()["status"], "cancelled");
    curl(&["-X", "POST", &cancel]).assert_error(409, "conflict");
    curl(&["-X", "POST", &server.url("/api/v1/migrations/nope/cancel")])
        .assert_error(404, "not_found");
    let content = curl(&[&server.url(&format!("/api/v1/objects/{big_id}/content"))]);
    assert_eq!(content.status, 200);
    assert_eq!(content.body, pattern(3, 1024 * 1024));

    // History, filters, errors.
    let all = curl(&[&server.url("/api/v1/migrations")]).json();
    let ids: Vec<_> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [running_id, migration_id.as_str()], "newest first");
    let filtered = curl(&[&server.url(&format!(
        "/api/v1/migrations?object_id={small_id}&status=completed&reason=manual"
    ))])
    .json();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let paged = curl(&[&server.url("/api/v1/migrations?limit=1")]).json();
    assert_eq!(paged["next"], running_id);
    curl(&[&server.url("/api/v1/migrations?status=done")]).assert_error(400, "bad_request");
    curl(&[&server.url("/api/v1/migrations?reason=whim")]).assert_error(400, "bad_request");
    curl(&[&server.url("/api/v1/migrations/nope")]).assert_error(404, "not_found");

    // Tiers and plan.
    let tiers = curl(&[&server.url("/api/v1/tiers")]).json();
    let names: Vec<_> = tiers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["onprem", "private", "public"]);
    let onprem = &tiers["items"][0];
    assert_eq!(onprem["objects"], 1);
    assert_eq!(onprem["bytes"], 4);
    assert_eq!(onprem["backend"], "s3://strata-onprem");
    assert_eq!(tiers["items"][2]["default"], true);
    let plan = curl(&[&server.url("/api/v1/plan")]);
    assert_eq!(plan.status, 200);
    assert!(plan.json()["items"].is_array());
    curl(&[&server.url("/api/v1/plan?window_secs=5")]).assert_error(400, "bad_request");

    // System endpoints.
    assert_eq!(curl(&[&server.url("/healthz")]).json()["status"], "ok");
    let ready = curl(&[&server.url("/readyz")]).json();
    assert_eq!(ready["dependencies"]["catalogue"], "up");
    let metrics = curl(&[&server.url("/metrics")]);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains("strata_migrations{status=\"completed\",reason=\"manual\"} 1"),
        "{metrics}"
    );
    // The move's attempt is timed, in buckets up to +Inf.
    assert!(
        metrics
            .contains("strata_move_attempt_seconds_bucket{outcome=\"completed\",le=\"+Inf\"} 1\n"),
        "{metrics}"
    );

    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_models_and_training_with_their_errors() {
    let db = TestDb::postgres().await;
    // No model file: predictions are unavailable until a model is trained.
    let server = StrataServer::start(&db, &[("MODELS_DIR", "/nonexistent")]).await;
    let mut ids = Vec::new();
    for key in ["a", "b", "c"] {
        ids.push(
            upload(&server, key, b"x", &[]).json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let predict_url = |id: &str| server.url(&format!("/api/v1/objects/{id}/prediction"));
    curl(&[&predict_url(&ids[0])]).assert_error(503, "unavailable");
    assert_eq!(
        curl(&[&server.url("/api/v1/models")]).json()["items"],
        serde_json::json!([])
    );
    let plan = curl(&[&server.url("/api/v1/plan")]).json();
    assert_eq!(plan["model_version"], Value::Null);

    // Training settings are checked before anything starts.
    let train = |body: &str| {
        curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
            &server.url("/api/v1/models/train"),
        ])
    };
    for bad in [
        r#"{"horizon_hours": 0}"#,
        r#"{"eval_fraction": 0.95}"#,
        r#"{"name": "no spaces"}"#,
        r#"{"epochs": 3}"#,
        "[",
    ] {
        train(bad).assert_error(400, "bad_request");
    }

    // Two weeks of hourly history, then training from the catalogue, activated.
    let catalogue = Catalogue::connect(&db.url).await.unwrap();
    let now_hour = now_ms() / 3_600_000;
    for (n, id) in ids.iter().enumerate() {
        let hours: Vec<(i64, i64)> = (1..=336)
            .map(|back| {
                let hour = now_hour - back;
                let daily = if (hour + n as i64 * 5) % 24 < 3 {
                    40
                } else {
                    0
                };
                (hour, daily + (hour * 7919 + n as i64) % 5)
            })
            .filter(|(_, hits)| *hits > 0)
            .collect();
        let counts: Vec<strata::db::AccessCount> = hours
            .iter()
            .map(|(hour, hits)| strata::db::AccessCount {
                object_id: id.clone(),
                at_ms: hour * 3_600_000,
                hits: *hits,
            })
            .collect();
        catalogue
            .record_access(
                "history",
                "injected",
                &[strata::db::PartitionAccesses {
                    partition: n as i32,
                    from_offset: None,
                    to_offset: 1,
                    counts,
                    located: Vec::new(),
                }],
            )
            .await
            .unwrap();
    }
    catalogue.close().await;

    // The hourly history as the console charts it: every hour listed, oldest first,
    // the hour in progress last, the injected counts in their hours.
    let history =
        curl(&[&server.url(&format!("/api/v1/objects/{}/accesses?hours=337", ids[0]))]).json();
    let hours = history["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 337);
    let counted: Vec<i64> = hours
        .iter()
        .map(|h| h["accesses"].as_i64().unwrap())
        .collect();
    let injected: i64 = (1..=336)
        .map(|back| {
            let hour = now_hour - back;
            let daily = if hour % 24 < 3 { 40 } else { 0 };
            daily + (hour * 7919) % 5
        })
        .sum();
    assert_eq!(counted.iter().sum::<i64>(), injected);
    assert_eq!(counted[336], 0, "nothing counted in the hour in progress");
    let oldest = &hours[0]["start"];
    assert!(
        oldest.as_str().is_some_and(|s| s.ends_with(":00:00Z")),
        "{oldest}"
    );
    for bad in ["0", "745", "x"] {
        curl(&[&server.url(&format!("/api/v1/objects/{}/accesses?hours={bad}", ids[0]))])
            .assert_error(400, "bad_request");
    }
    curl(&[&server.url("/api/v1/objects/nope/accesses")]).assert_error(404, "not_found");

    let accepted = train(r#"{"name": "api", "activate": true}"#);
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.json()["status"], "training");
    eventually(
        Duration::from_secs(30),
        "the trained model active",
        || async {
            let models = curl(&[&server.url("/api/v1/models")]).json();
            models["items"][0]["name"] == "api" && models["items"][0]["active"] == true
        },
    )
    .await;
    let models = curl(&[&server.url("/api/v1/models")]).json();
    let model = &models["items"][0];
    assert_shape(
        model,
        &["id", "version", "trained_at", "horizon_hours", "evaluation"],
    );
    assert!(model["evaluation"]["model"]["mae"].is_number(), "{model}");
    assert_eq!(model["problem"], Value::Null);

    // Another model, trained without activation, then activated over the API.
    let accepted = train(r#"{"name": "second"}"#);
    assert_eq!(accepted.status, 202);
    eventually(Duration::from_secs(30), "the second model", || async {
        curl(&[&server.url("/api/v1/models")]).json()["items"][0]["name"] == "second"
    })
    .await;
    let second = curl(&[&server.url("/api/v1/models")]).json()["items"][0].clone();
    assert_eq!(second["active"], false);
    let activate = |id: &str| {
        curl(&[
            "-X",
            "POST",
            &server.url(&format!("/api/v1/models/{id}/activate")),
        ])
    };
    let activated = activate(second["id"].as_str().unwrap());
    assert_eq!(activated.status, 200);
    assert_eq!(activated.json()["active"], true);
    let models = curl(&[&server.url("/api/v1/models")]).json();
    let active: Vec<&Value> = models["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["active"] == true)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["name"], "second");
    activate("nope").assert_error(404, "not_found");
    // Back to the first for what follows.
    assert_eq!(activate(model["id"].as_str().unwrap()).status, 200);
    let status = curl(&[&server.url("/api/v1/status")]).json();
    assert_shape(&status, &["events", "moves", "model", "problems", "at"]);

    // Every process follows the active model within an interval (60 s by default; the
    // first check is at start-up, so restart instead of waiting).
    drop(server);
    let server = StrataServer::start(&db, &[("MODELS_DIR", "/nonexistent")]).await;
    let predicted = curl(&[&server.url(&format!("/api/v1/objects/{}/prediction", ids[0]))]);
    assert_eq!(predicted.status, 200);
    let predicted = predicted.json();
    assert_shape(
        &predicted,
        &[
            "object_id",
            "tier",
            "predicted_accesses",
            "basis",
            "horizon_hours",
            "predicted_tier",
            "proactive_move",
            "model",
            "top_features",
            "predicted_at",
        ],
    );
    assert_eq!(predicted["model"]["name"], "api");
    // Read just now, after nothing: no day of steady history to go by.
    assert_eq!(predicted["basis"], "model");
    let accesses = predicted["predicted_accesses"].as_f64();
    assert!(accesses.is_some_and(|n| n >= 0.0), "{predicted}");
    curl(&[&server.url("/api/v1/objects/nope/prediction")]).assert_error(404, "not_found");
    let plan = curl(&[&server.url("/api/v1/plan")]).json();
    assert_eq!(plan["model_version"], model["version"]);
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_every_mutating_endpoint() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(&db, &[("API_TOKEN", "s3cret")]).await;
    let right = ["-H", "Authorization: Bearer s3cret"];
    let object = upload(&server, "guarded", b"bytes", &right).json();
    let id = object["id"].as_str().unwrap().to_string();
    let json = ["-H", "Content-Type: application/json"];

    // (method, path, body, status with the right token)
    let endpoints: Vec<(&str, String, Option<&str>, u16)> = vec![
        (
            "POST",
            "/api/v1/objects?key=another".into(),
            Some("data"),
            201,
        ),
        (
            "POST",
            format!("/api/v1/objects/{id}/access"),
            Some(r#"{"count": 1}"#),
            202,
        ),
        (
            "POST",
            format!("/api/v1/objects/{id}/migrations"),
            Some(r#"{"to_tier": "private"}"#),
            202,
        ),
        ("POST", "/api/v1/migrations/none/cancel".into(), None, 404),
        ("POST", "/api/v1/models/train".into(), Some("{}"), 202),
        ("POST", "/api/v1/models/none/activate".into(), None, 404),
        ("DELETE", format!("/api/v1/objects/{id}"), None, 204),
    ];
    for (method, path, body, status) in endpoints {
        let url = server.url(&path);
        let mut base = vec!["-X", method];
        base.extend(json);
        if let Some(body) = body {
            base.extend(["--data-binary", body]);
        }
        let call = |auth: &[&str]| {
            let mut args = base.clone();
            args.extend(auth);
            args.push(&url);
            curl(&args)
        };
        for wrong in [
            &[][..],
            &["-H", "Authorization: Bearer nope"],
            &["-H", "Authorization: s3cret"],
        ] {
            let refused = call(wrong);
            refused.assert_error(401, "unauthorized");
            assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        }
        assert_eq!(
            call(&right).status,
            status,
            "{method} {path} with the token"
        );
    }
    assert_eq!(
        curl(&[&server.url("/api/v1/objects")]).status,
        200,
        "reads stay open"
    );
    drop(server);

    let server =
        StrataServer::start(&db, &[("API_TOKEN", "s3cret"), ("API_TOKEN_READS", "true")]).await;
    curl(&[&server.url("/api/v1/objects")]).assert_error(401, "unauthorized");
    curl(&[&server.url("/metrics")]).assert_error(401, "unauthorized");
    assert_eq!(
        curl(&[right[0], right[1], &server.url("/api/v1/objects")]).status,
        200
    );
    assert_eq!(
        curl(&[&server.url("/healthz")]).status,
        200,
        "probes stay open"
    );
    assert_eq!(curl(&[&server.url("/readyz")]).status, 200);
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_every_route_and_schemathesis_finds_no_fault() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(&db, &[]).await;
    let doc = curl(&[&server.url("/api/v1/openapi.json")]);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let operations: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    for expected in [
        "POST /api/v1/objects",
        "GET /api/v1/objects",
        "GET /api/v1/objects/{id}",
        "DELETE /api/v1/objects/{id}",
        "GET /api/v1/objects/{id}/content",
        "POST /api/v1/objects/{id}/access",
        "POST /api/v1/objects/{id}/migrations",
        "GET /api/v1/migrations",
        "GET /api/v1/migrations/{id}",
        "POST /api/v1/migrations/{id}/cancel",
        "GET /api/v1/plan",
        "GET /api/v1/tiers",
        "GET /api/v1/objects/{id}/prediction",
        "GET /api/v1/models",
        "POST /api/v1/models/train",
        "GET /api/v1/openapi.json",
        "GET /metrics",
        "GET /healthz",
        "GET /readyz",
    ] {
        assert!(
            operations.contains(&expected.to_string()),
            "{expected} is not in the document: {operations:?}"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["MoveRequest"]["properties"]["to_tier"]["enum"],
        serde_json::json!(["onprem", "private", "public"])
    );

    // Schema-driven fuzzing of every operation: no 5xx, every answer as documented.
    let reports = tempfile::tempdir().unwrap();
    let run = std::process::Command::new("schemathesis")
        .args([
            "run",
            &server.url("/api/v1/openapi.json"),
            "--url",
            &server.base,
        ])
        .args(["--checks", "all", "--max-examples", "30", "--seed", "1"])
        .args(["--generation-database", "none", "--request-timeout", "10"])
        .args([
            "--output-sanitize",
            "false",
            "--continue-on-failure",
            "--no-color",
        ])
        .current_dir(reports.path())
        .output()
        .expect("run schemathesis (scripts/test.sh installs it)");
    assert!(
        run.status.success(),
        "schemathesis found faults:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    drop(server);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_stays_readable_while_it_moves() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(&db, &[("MOVER_BANDWIDTH_BYTES_PER_SEC", "2000000")]).await;
    let data = pattern(9, 3 * 1024 * 1024);
    let id = upload(&server, "moving", &data, &[]).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let queued = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"to_tier": "private"}"#,
        &server.url(&format!("/api/v1/objects/{id}/migrations")),
    ]);
    assert_eq!(queued.status, 202);
    let migration = server.url(&format!(
        "/api/v1/migrations/{}",
        queued.json()["id"].as_str().unwrap()
    ));
    let content = server.url(&format!("/api/v1/objects/{id}/content"));
    let mut reads = 0;
    let mut statuses = std::collections::BTreeSet::new();
    loop {
        let status = curl(&[&migration]).json()["status"]
            .as_str()
            .unwrap()
            .to_string();
        let read = curl(&[&content]);
        assert_eq!(read.status, 200, "read during {status}");
        assert!(
            read.body == data,
            "read during {status} returned other bytes"
        );
        reads += 1;
        statuses.insert(status.clone());
        if status == "completed" {
            break;
        }
        assert!(reads < 200, "the move did not complete");
    }
    assert!(
        statuses.contains("copying"),
        "reads overlapped the copy: {statuses:?}"
    );
    let object = curl(&[&server.url(&format!("/api/v1/objects/{id}"))]).json();
    assert_eq!(object["tier"], "private");
    drop(server);
    db.drop_db().await;
}
