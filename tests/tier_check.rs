//! `strata check` against planted faults: a PostgreSQL catalogue, a file tier and an S3
//! tier (an s3s-fs server of the test's own), and the `strata` binary run as an operator
//! would run it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{MoveRig, OwnS3Server, chunks, fast_mover, file_tier, pattern};
use serde_json::Value;
use sqlx::Connection;
use strata::storage::Declared;

/// Runs `strata check ARGS --json` on the rig's catalogue and tiers; returns whether it
/// succeeded and its report.
fn check(rig: &MoveRig, file_root: &Path, s3: &OwnS3Server, args: &[&str]) -> (bool, Value) {
    let env = common::stack_env();
    let workdir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("check")
        .args(args)
        .arg("--json")
        .current_dir(workdir.path())
        .env_clear()
        .env("DATABASE_URL", rig.database_url())
        .env("TIERS", "disk,bucket")
        .env("DEFAULT_TIER", "disk")
        .env("TIER_DISK_URL", format!("file://{}", file_root.display()))
        .env("TIER_BUCKET_URL", "s3://checked")
        .env(
            "TIER_BUCKET_ENDPOINT",
            format!("http://127.0.0.1:{}", s3.port),
        )
        .env(
            "TIER_BUCKET_ACCESS_KEY_ID",
            &env["TIER_PUBLIC_ACCESS_KEY_ID"],
        )
        .env(
            "TIER_BUCKET_SECRET_ACCESS_KEY",
            &env["TIER_PUBLIC_SECRET_ACCESS_KEY"],
        )
        .env("MOVER_LEASE_SECS", "2")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run strata check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

/// `(kind, object id or location)` of every finding, sorted.
fn found(report: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let what = f["object_id"]
                .as_str()
                .unwrap_or_else(|| f["location"].as_str().unwrap());
            (
                f["problem"]["kind"].as_str().unwrap().to_string(),
                what.to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

/// The damage recorded with an object, as GET /objects/{id} serves it.
async fn damage(rig: &MoveRig, id: &str) -> Option<String> {
    let now = strata::timestamp::now_ms();
    rig.catalogue.get_object_view(id, now).await.unwrap().damage
}

fn pair(kind: &str, what: &str) -> (String, String) {
    (kind.to_string(), what.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn check_finds_each_planted_fault_and_repair_fixes_what_it_says() {
    let s3 = OwnS3Server::start("checked");
    let (disk, disk_dir) = file_tier("disk", None);
    let rig = MoveRig::new(
        vec![disk, s3.tier("bucket", "checked")],
        vec![],
        fast_mover(),
    )
    .await;
    let root = disk_dir.path();
    let data = pattern(5, 300_000);
    let mut objects = Vec::new();
    for key in ["healthy", "missing", "truncated", "flipped", "restorable"] {
        objects.push(rig.ingest("disk", key, &data[..]).await);
    }
    let on_s3 = rig.ingest("bucket", "healthy-s3", &data[..]).await;
    let [healthy, missing, truncated, flipped, restorable] = &objects[..] else {
        unreachable!()
    };
    let path = |o: &strata::db::ObjectRecord| root.join(&o.location);
    let mut damaged = data.clone();
    damaged[1234] ^= 0x40;

    std::fs::remove_file(path(missing)).unwrap();
    std::fs::write(path(truncated), &data[..1000]).unwrap();
    std::fs::write(path(flipped), &damaged).unwrap();
    std::fs::write(path(restorable), &damaged).unwrap();
    // A good copy of `restorable` that a move left behind, on the other tier.
    let spare = format!("{}/old-copy", restorable.id);
    rig.store("bucket")
        .put(
            &spare,
            chunks(&data[..]),
            "application/octet-stream",
            Declared::default(),
        )
        .await
        .unwrap();
    // Bytes nobody refers to, on both tiers.
    let stray_s3 = format!("{}/stray", strata::db::new_id());
    rig.store("bucket")
        .put(
            &stray_s3,
            chunks(&b"stray"[..]),
            "application/octet-stream",
            Declared::default(),
        )
        .await
        .unwrap();
    let stray_disk = format!("{}/stray", strata::db::new_id());
    std::fs::create_dir_all(root.join(&stray_disk).parent().unwrap()).unwrap();
    std::fs::write(root.join(&stray_disk), b"stray").unwrap();
    // The copy a failed move attempt left, which recovery is still to remove: the move's,
    // not an orphan.
    let attempt = rig.enqueue(healthy, "bucket").await;
    let attempt_copy = format!("{}/{}-1", healthy.id, attempt.id);
    rig.store("bucket")
        .put(
            &attempt_copy,
            chunks(&data[..]),
            "application/octet-stream",
            Declared::default(),
        )
        .await
        .unwrap();
    let mut conn = sqlx::AnyConnection::connect(rig.database_url())
        .await
        .unwrap();
    sqlx::query("UPDATE migrations SET dest_location = $1 WHERE id = $2")
        .bind(&attempt_copy)
        .bind(&attempt.id)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    // Older than the grace period (the lease, 2 s)...
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // ...unlike this one, which may be a write in flight.
    let young = format!("{}/young", strata::db::new_id());
    std::fs::create_dir_all(root.join(&young).parent().unwrap()).unwrap();
    std::fs::write(root.join(&young), b"young").unwrap();

    // Without hashing: presence, sizes and orphans.
    let (ok, report) = check(&rig, root, &s3, &["--sample", "0"]);
    assert!(!ok);
    assert_eq!(report["objects"], 6);
    assert_eq!(report["hashed"], 0);
    let expected_unhashed = {
        let mut v = vec![
            pair("missing", &missing.id),
            pair("wrong_size", &truncated.id),
            pair("orphan", &spare),
            pair("orphan", &stray_s3),
            pair("orphan", &stray_disk),
        ];
        v.sort();
        v
    };
    assert_eq!(found(&report), expected_unhashed, "{report:#}");

    // Every object hashed: the flipped bytes too.
    let (ok, report) = check(&rig, root, &s3, &["--full"]);
    assert!(!ok);
    assert_eq!(report["hashed"], 4, "{report:#}");
    let mut expected = expected_unhashed.clone();
    expected.push(pair("wrong_checksum", &flipped.id));
    expected.push(pair("wrong_checksum", &restorable.id));
    expected.sort();
    assert_eq!(found(&report), expected, "{report:#}");

    // Repair: orphans removed, `restorable` rewritten from its spare copy, the rest
    // recorded as damaged; still a failure, since damage remains.
    let (ok, report) = check(&rig, root, &s3, &["--full", "--repair"]);
    assert!(!ok);
    for f in report["findings"].as_array().unwrap() {
        let action = f["repair"]["action"].as_str().unwrap();
        match (
            f["problem"]["kind"].as_str().unwrap(),
            f["object_id"].as_str(),
        ) {
            ("orphan", _) => assert_eq!(action, "removed", "{f}"),
            (_, Some(id)) if id == restorable.id => {
                assert_eq!(action, "restored", "{f}");
                assert_eq!(f["repair"]["from_location"], spare.as_str());
            }
            _ => assert_eq!(action, "marked_damaged", "{f}"),
        }
    }
    assert_eq!(std::fs::read(path(restorable)).unwrap(), data);
    assert!(!root.join(&stray_disk).exists());
    assert!(root.join(&young).exists(), "a young key is left alone");
    assert!(
        rig.store("bucket").size(&attempt_copy).await.is_ok(),
        "a move's copy is left to the mover"
    );
    // The damage shows with the object (GET /objects/{id} serves this view).
    assert_eq!(
        damage(&rig, &missing.id).await.as_deref(),
        Some(r#"{"kind":"missing"}"#)
    );
    for o in [truncated, flipped] {
        assert!(damage(&rig, &o.id).await.is_some(), "{}", o.id);
    }
    for o in [healthy, restorable, &on_s3] {
        assert_eq!(damage(&rig, &o.id).await, None);
    }

    // What is left: the three damaged objects, and the young key, now past its grace.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (ok, report) = check(&rig, root, &s3, &["--full"]);
    assert!(!ok);
    let mut left = vec![
        pair("missing", &missing.id),
        pair("wrong_size", &truncated.id),
        pair("wrong_checksum", &flipped.id),
        pair("orphan", &young),
    ];
    left.sort();
    assert_eq!(found(&report), left, "{report:#}");

    // A clean catalogue passes.
    for o in [missing, truncated, flipped] {
        rig.catalogue.delete_object(&o.id).await.unwrap();
        let _ = std::fs::remove_file(path(o));
    }
    std::fs::remove_file(root.join(&young)).unwrap();
    let (ok, report) = check(&rig, root, &s3, &["--full"]);
    assert!(ok, "{report:#}");
    assert_eq!(report["findings"], Value::Array(vec![]));
    assert_eq!(report["hashed"], 3);
    rig.finish().await;
}

/// A put the landing tier refuses leaves nothing behind, even on a server that stores a
/// body before it checks it (s3s-fs with a Content-MD5 the bytes no longer match, damaged
/// on the way): no object, and no bytes for `strata check` to call an orphan.
#[tokio::test]
async fn a_refused_ingest_leaves_no_bytes_on_the_tier() {
    let s3 = OwnS3Server::start("flipped");
    let (tier, _proxy) = common::BitFlipProxy::tier(&s3, "flipped", false).await;
    let rig = MoveRig::new(vec![tier], vec![], fast_mover()).await;
    let content =
        strata::content::Content::new(rig.catalogue.clone(), rig.tiers.clone(), "flipped".into());
    let data = pattern(8, 100 * 1024);
    let upload = strata::content::Upload {
        bucket: "strata".into(),
        key: Some("refused".into()),
        content_type: "application/octet-stream".into(),
        metadata: Default::default(),
        overwrite: false,
        declared: Declared {
            md5: Some(common::md5_of(&data)),
            ..Declared::default()
        },
    };
    let refused = content.ingest(upload, chunks(&data[..])).await;
    assert!(refused.is_err(), "damaged bytes were taken");
    assert_eq!(
        rig.catalogue
            .find_object_by_key("strata", "refused")
            .await
            .unwrap(),
        None
    );
    let left = rig.store("flipped").list().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    rig.finish().await;
}
