//! Tier moves end to end: a PostgreSQL catalogue, the local stack's S3 servers and
//! file tiers, and the mover in this process.

mod common;

use std::time::Duration;

use common::{
    BitFlipProxy, MoveRig, OwnS3Server, PatternReader, chunks, fast_mover, file_tier, pattern,
    s3_tier,
};
use strata::db::{CatalogueError, MoveStatus, ObjectContent};
use strata::storage::{Declared, StorageError, hex};

const MIB: u64 = 1024 * 1024;

/// Tiers for most tests: two S3 servers and two directories.
async fn four_tiers() -> MoveRig {
    let (file_a, dir_a) = file_tier("filea", None);
    let (file_b, dir_b) = file_tier("fileb", None);
    MoveRig::new(
        vec![
            s3_tier("s3a", "private"),
            s3_tier("s3b", "onprem"),
            file_a,
            file_b,
        ],
        vec![dir_a, dir_b],
        fast_mover(),
    )
    .await
}

/// A mover stopped while it copies finishes the move and, before it returns, deletes
/// the source (which a worker otherwise deletes beside its next move).
#[tokio::test]
async fn a_mover_stopped_mid_move_has_deleted_the_source_when_it_returns() {
    let (file_a, dir_a) = file_tier("filea", None);
    let (file_b, dir_b) = file_tier("fileb", None);
    let slow = strata::config::MoverConfig {
        bandwidth: Some(MIB),
        ..fast_mover()
    };
    let rig = MoveRig::new(vec![file_a, file_b], vec![dir_a, dir_b], slow).await;
    let object = rig
        .ingest("filea", "stopped", PatternReader::new(3, 2 * MIB))
        .await;
    let m = rig.enqueue(&object, "fileb").await;
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(rig.mover.clone().run(stop.clone()));
    rig.wait_for(&m.id, "copy under way", |m| m.status == MoveStatus::Copying)
        .await;
    stop.cancel();
    run.await.unwrap();
    let done = rig.catalogue.get_move(&m.id).await.unwrap();
    assert_eq!(done.status, MoveStatus::Completed, "{done:?}");
    let left = rig.store("filea").size(&object.location).await;
    assert!(
        matches!(left, Err(StorageError::NotFound { .. })),
        "{left:?}"
    );
    rig.finish().await;
}

/// A move queued in the mover's own process wakes an idle worker: it does not wait for
/// the next poll of the queue.
#[tokio::test]
async fn a_move_queued_in_process_starts_before_the_next_poll() {
    let (file_a, dir_a) = file_tier("filea", None);
    let (file_b, dir_b) = file_tier("fileb", None);
    let rarely = strata::config::MoverConfig {
        poll_interval: Duration::from_secs(600),
        ..fast_mover()
    };
    let rig = MoveRig::new(vec![file_a, file_b], vec![dir_a, dir_b], rarely).await;
    let object = rig
        .ingest("filea", "woken", PatternReader::new(5, MIB))
        .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(rig.mover.clone().run(stop.clone()));
    // Time for the workers to find the queue empty and wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let m = rig.enqueue(&object, "fileb").await;
    // 3,000 polls: 30 s at least, far short of the next poll of the queue.
    rig.wait_within(3000, &m.id, "completed", |m| {
        m.status == MoveStatus::Completed
    })
    .await;
    stop.cancel();
    run.await.unwrap();
    rig.finish().await;
}

#[tokio::test]
async fn moves_between_every_pair_of_backends() {
    let rig = four_tiers().await;
    // 9 MiB: a multipart upload and a parallel ranged download on S3.
    for (i, (from, to)) in [
        ("s3a", "s3b"),
        ("s3a", "filea"),
        ("filea", "s3b"),
        ("filea", "fileb"),
    ]
    .into_iter()
    .enumerate()
    {
        let object = rig
            .ingest(
                from,
                &format!("pair-{i}"),
                PatternReader::new(i as u64, 9 * MIB + 7),
            )
            .await;
        let m = rig.enqueue(&object, to).await;
        let done = rig.drive(&m.id, 100).await;
        assert_eq!(
            done.status,
            MoveStatus::Completed,
            "{from} -> {to}: {done:?}"
        );
        assert_eq!(
            (done.bytes_copied, done.bytes_total),
            (object.size, object.size)
        );
        assert!(done.duration_ms.is_some() && done.finished_at.is_some());

        let moved = rig.catalogue.get_object(&object.id).await.unwrap();
        assert_eq!((moved.tier.as_str(), moved.version), (to, object.version));
        let digest = rig.store(to).digest(&moved.location).await.unwrap();
        assert_eq!(
            (digest.size as i64, digest.checksum),
            (object.size, object.checksum)
        );
        assert!(
            matches!(
                rig.store(from).size(&object.location).await,
                Err(StorageError::NotFound { .. })
            ),
            "{from} -> {to}: source copy still there"
        );
        assert!(rig.catalogue.leftover_copies().await.unwrap().is_empty());
    }
    rig.finish().await;
}

#[tokio::test]
async fn a_copy_that_does_not_match_the_catalogue_is_rejected_and_retried() {
    let rig = four_tiers().await;
    let data = pattern(21, 3 * MIB as usize);
    let object = rig.ingest("filea", "corrupt", &data[..]).await;
    // The bytes on the tier no longer match their checksum: whatever the mover copies
    // cannot pass verification.
    let path = corrupt_on_disk(&rig, "filea", &object.location, &data, 1_000_000);

    let m = rig.enqueue(&object, "s3b").await;
    let first = rig.mover.work_once().await.unwrap().unwrap();
    assert_eq!(first.id, m.id);
    assert_eq!(
        first.status,
        MoveStatus::Pending,
        "retried, not given up: {first:?}"
    );
    assert!(
        first
            .error
            .as_deref()
            .unwrap()
            .contains("verification failed"),
        "{first:?}"
    );
    assert_eq!(first.dest_location, None, "the rejected copy was removed");
    assert!(matches!(
        rig.store("s3b")
            .size(&format!("{}/{}-1", object.id, m.id))
            .await,
        Err(StorageError::NotFound { .. })
    ));
    let unmoved = rig.catalogue.get_object(&object.id).await.unwrap();
    assert_eq!(
        (unmoved.tier.as_str(), unmoved.location.as_str()),
        ("filea", object.location.as_str())
    );
    assert!(path.exists(), "the source was kept");

    // Once the source is healthy again, the retry succeeds.
    std::fs::write(&path, &data).unwrap();
    let done = rig.drive(&m.id, 100).await;
    assert_eq!(done.status, MoveStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 2);
    rig.finish().await;
}

/// An object whose writer declared its MD5 (a put through the S3 endpoint) is copied with
/// it: the write refuses bytes that do not match, before anything is verified.
#[tokio::test]
async fn a_copy_carries_the_md5_its_writer_declared_and_the_destination_checks_it() {
    let rig = four_tiers().await;
    let data = pattern(22, 3 * MIB as usize);
    let ingested = rig.ingest("filea", "declared", &data[..]).await;
    let object = rig
        .catalogue
        .replace_object_content(
            &ingested.id,
            ingested.version,
            &ObjectContent {
                size: ingested.size,
                content_type: ingested.content_type.clone(),
                checksum: ingested.checksum.clone(),
                md5: Some(hex(&common::md5_of(&data))),
                tier: ingested.tier.clone(),
                location: ingested.location.clone(),
                metadata: Default::default(),
            },
        )
        .await
        .unwrap();
    let path = corrupt_on_disk(&rig, "filea", &object.location, &data, 1_000_000);

    let m = rig.enqueue(&object, "s3b").await;
    let refused = rig.mover.work_once().await.unwrap().unwrap();
    assert_eq!(refused.status, MoveStatus::Pending, "{refused:?}");
    let error = refused.error.as_deref().unwrap();
    assert!(
        error.contains("writing the copy") && error.contains("Content-MD5"),
        "{error}"
    );
    assert!(path.exists(), "the source was kept");

    std::fs::write(&path, &data).unwrap();
    let done = rig.drive(&m.id, 100).await;
    assert_eq!(done.status, MoveStatus::Completed, "{done:?}");
    let moved = rig.catalogue.get_object(&object.id).await.unwrap();
    assert_eq!(moved.tier, "s3b");
    assert_eq!(
        rig.store("s3b").digest(&moved.location).await.unwrap(),
        common::digest_of(&data)
    );
    rig.finish().await;
}

#[tokio::test]
async fn a_copy_corrupted_between_copy_and_verify_is_caught_by_full_verification() {
    // 1 MiB/s: copying and then verifying 2 MiB takes about 4 s, so the test can change
    // the copy's last bytes after it is written and before verification reads them.
    let (src, src_dir) = file_tier("src", None);
    let (dst, dst_dir) = file_tier("dst", None);
    let config = strata::config::MoverConfig {
        bandwidth: Some(1024 * 1024),
        verify: strata::config::VerifyMode::Full,
        ..fast_mover()
    };
    let rig = MoveRig::new(vec![src, dst], vec![src_dir, dst_dir], config).await;
    let object = rig
        .ingest("src", "tampered", &pattern(22, 2 * MIB as usize)[..])
        .await;
    let m = rig.enqueue(&object, "dst").await;
    let mover = rig.mover.clone();
    let worker = tokio::spawn(async move { mover.work_once().await });

    let verifying = rig
        .wait_for(&m.id, "verification started", |m| {
            m.status == MoveStatus::Verifying
        })
        .await;
    let copy = common_file_path(&rig, "dst", verifying.dest_location.as_deref().unwrap());
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        file.seek(SeekFrom::End(-100)).unwrap();
        file.write_all(&[0u8; 100]).unwrap();
    }

    let after = worker.await.unwrap().unwrap().unwrap();
    assert_eq!(after.status, MoveStatus::Pending, "retried: {after:?}");
    assert!(
        after
            .error
            .as_deref()
            .unwrap()
            .contains("verification failed"),
        "{after:?}"
    );
    assert!(!copy.exists(), "the corrupted copy was removed");
    let unmoved = rig.catalogue.get_object(&object.id).await.unwrap();
    assert_eq!(unmoved.tier, "src", "the source was kept");
    let done = rig.drive(&m.id, 500).await;
    assert_eq!((done.status, done.attempts), (MoveStatus::Completed, 2));
    rig.finish().await;
}

#[tokio::test]
async fn checksum_verification_catches_a_source_damaged_at_rest() {
    let (file_a, dir_a) = file_tier("filea", None);
    assert_eq!(fast_mover().verify, strata::config::VerifyMode::Checksum);
    let rig = MoveRig::new(
        vec![file_a, s3_tier("s3b", "onprem")],
        vec![dir_a],
        fast_mover(),
    )
    .await;
    let data = pattern(23, MIB as usize);
    let object = rig.ingest("filea", "streamed", &data[..]).await;
    let path = corrupt_on_disk(&rig, "filea", &object.location, &data, 10);
    let m = rig.enqueue(&object, "s3b").await;
    let rejected = rig.mover.work_once().await.unwrap().unwrap();
    assert!(
        rejected
            .error
            .as_deref()
            .unwrap()
            .contains("verification failed"),
        "{rejected:?}"
    );
    std::fs::write(&path, &data).unwrap();
    let done = rig.drive(&m.id, 100).await;
    assert_eq!(done.status, MoveStatus::Completed, "{done:?}");
    rig.finish().await;
}

/// Damaged on the way in, a copy is refused: unsigned, by the CRC32C the server checks
/// (one PutObject) or the MD5 ETags of the parts it kept (multipart); signed, by the
/// server checking each request's bytes against their signed SHA-256.
#[tokio::test]
async fn a_destination_that_receives_other_bytes_than_were_sent_fails_the_move() {
    for (sign_payload, small_caught_by, large_caught_by) in [
        (
            false,
            "BadDigest",
            "the server received other bytes than were sent",
        ),
        // s3s-fs answers a body that does not match its signed SHA-256 so.
        (true, "InternalError", "InternalError"),
    ] {
        let server = OwnS3Server::start("flipped");
        let (dest, _proxy) = BitFlipProxy::tier(&server, "flipped", sign_payload).await;
        let (src, src_dir) = file_tier("src", None);
        let rig = MoveRig::new(vec![src, dest], vec![src_dir], fast_mover()).await;
        for (key, size, caught_by) in [
            ("small", 100 * 1024, small_caught_by),
            ("large", 9 * MIB as usize, large_caught_by),
        ] {
            let data = pattern(size as u64, size);
            let object = rig.ingest("src", key, &data[..]).await;
            let m = rig.enqueue(&object, "flipped").await;
            let rejected = rig.mover.work_once().await.unwrap().unwrap();
            assert_eq!(rejected.status, MoveStatus::Pending, "{rejected:?}");
            let error = rejected.error.as_deref().unwrap();
            assert!(error.contains("writing the copy"), "{error}");
            assert!(error.contains(caught_by), "signed {sign_payload}: {error}");
            rig.assert_intact_on(&object, "src").await;
            rig.catalogue.cancel_move(&m.id).await.unwrap();
        }
        rig.finish().await;
    }
}

/// Overwrites the object `data` at `location` on file tier `tier` with a copy that has
/// one bit flipped at `offset`, behind the store's back; returns the file's path.
fn corrupt_on_disk(
    rig: &MoveRig,
    tier: &str,
    location: &str,
    data: &[u8],
    offset: usize,
) -> std::path::PathBuf {
    let path = common_file_path(rig, tier, location);
    let mut corrupted = data.to_vec();
    corrupted[offset] ^= 0x01;
    std::fs::write(&path, &corrupted).unwrap();
    path
}

fn common_file_path(rig: &MoveRig, tier: &str, location: &str) -> std::path::PathBuf {
    match rig.store(tier) {
        strata::storage::Store::File(f) => f.root().join(location),
        other => panic!("{tier} is not a file tier: {other}"),
    }
}

#[tokio::test]
async fn an_object_rewritten_during_a_long_move_ends_with_its_new_bytes() {
    let rig = four_tiers().await;
    let object = rig
        .ingest("s3a", "rewritten", PatternReader::new(31, 200 * MIB))
        .await;
    let m = rig.enqueue(&object, "s3b").await;
    let first_attempt = rig.start_copy_in_background(&m.id).await;

    // A writer replaces the content while the copy runs, as ingest of the same key does.
    let new_bytes = pattern(32, 1024 * 1024 + 3);
    let location = format!("{}/v2", object.id);
    let digest = rig
        .store("s3a")
        .put(
            &location,
            chunks(&new_bytes[..]),
            "text/plain",
            Declared::default(),
        )
        .await
        .unwrap();
    rig.catalogue
        .replace_object_content(
            &object.id,
            object.version,
            &ObjectContent {
                size: digest.size as i64,
                content_type: "text/plain".into(),
                checksum: digest.checksum.clone(),
                md5: None,
                tier: "s3a".into(),
                location,
                metadata: Default::default(),
            },
        )
        .await
        .unwrap();

    first_attempt.await.unwrap().unwrap();
    let done = rig.drive(&m.id, 100).await;
    assert_eq!(done.status, MoveStatus::Completed, "{done:?}");
    assert_eq!(
        done.attempts, 2,
        "the stale copy was discarded and the move redone"
    );
    assert_eq!(done.object_version, 2);
    let now = rig.catalogue.get_object(&object.id).await.unwrap();
    assert_eq!((now.tier.as_str(), now.version), ("s3b", 2));
    assert_eq!(
        rig.store("s3b").digest(&now.location).await.unwrap(),
        digest
    );
    rig.finish().await;
}

#[tokio::test]
async fn cancelling_mid_copy_stops_and_cleans_up() {
    // The destination is a server of the test's own, so its part files are this test's.
    let server = OwnS3Server::start("cancelled");
    let rig = MoveRig::new(
        vec![s3_tier("s3a", "private"), server.tier("s3b", "cancelled")],
        vec![],
        fast_mover(),
    )
    .await;
    let object = rig
        .ingest("s3a", "cancelled", PatternReader::new(41, 200 * MIB))
        .await;
    let m = rig.enqueue(&object, "s3b").await;
    let worker = rig.start_copy_in_background(&m.id).await;

    let cancelled = rig.catalogue.cancel_move(&m.id).await.unwrap();
    assert_eq!(cancelled.status, MoveStatus::Cancelled);
    worker.await.unwrap().unwrap();
    let after = rig.catalogue.get_move(&m.id).await.unwrap();
    assert_eq!(after.status, MoveStatus::Cancelled);
    assert_eq!(after.dest_location, None, "the partial copy was removed");
    assert!(matches!(
        rig.store("s3b")
            .size(&format!("{}/{}-1", object.id, m.id))
            .await,
        Err(StorageError::NotFound { .. })
    ));
    // s3s-fs keeps an upload's parts as `.upload_id-<id>.part-<n>` and the upload as
    // `.upload-<id>.json` in its root until it is completed or aborted.
    common::eventually(Duration::from_secs(10), "the upload aborted", || {
        let left: Vec<String> = std::fs::read_dir(server.root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".upload"))
            .collect();
        async move { left.is_empty() }
    })
    .await;
    rig.assert_intact_on(&object, "s3a").await;
    assert!(matches!(
        rig.catalogue.cancel_move(&m.id).await,
        Err(CatalogueError::Conflict(_))
    ));
    rig.finish().await;
}

#[tokio::test]
async fn promotions_into_a_full_tier_respect_its_capacity() {
    let (big, big_dir) = file_tier("big", None);
    let (small, small_dir) = file_tier("small", Some(1000));
    let rig = MoveRig::new(vec![big, small], vec![big_dir, small_dir], fast_mover()).await;
    let a = rig.ingest("big", "a", &pattern(51, 600)[..]).await;
    let b = rig.ingest("big", "b", &pattern(52, 600)[..]).await;

    let first = rig.enqueue(&a, "small").await;
    assert_eq!(rig.drive(&first.id, 50).await.status, MoveStatus::Completed);
    let second = rig.enqueue(&b, "small").await;
    let refused = rig.drive(&second.id, 50).await;
    assert_eq!(refused.status, MoveStatus::Failed);
    assert!(
        refused
            .error
            .as_deref()
            .unwrap()
            .contains("tier small is full"),
        "{refused:?}"
    );
    assert_eq!(rig.catalogue.tier_bytes("small").await.unwrap(), 600);
    assert_eq!(rig.catalogue.get_object(&b.id).await.unwrap().tier, "big");
    rig.finish().await;
}

#[tokio::test]
async fn moves_of_deleted_objects_fail_with_a_reason() {
    let rig = four_tiers().await;
    let object = rig.ingest("filea", "gone", &pattern(61, 10)[..]).await;
    let m = rig.enqueue(&object, "fileb").await;
    rig.catalogue.delete_object(&object.id).await.unwrap();
    let done = rig.drive(&m.id, 10).await;
    assert_eq!(done.status, MoveStatus::Failed);
    assert_eq!(done.error.as_deref(), Some("the object no longer exists"));
    rig.finish().await;
}

#[tokio::test]
async fn recovery_takes_over_a_dead_workers_move_and_removes_its_copy() {
    let rig = four_tiers().await;
    let object = rig
        .ingest("filea", "orphaned", &pattern(71, 5000)[..])
        .await;
    let m = rig.enqueue(&object, "fileb").await;
    // A worker claims the move, starts its copy and dies: the lease is never renewed.
    let claimed = rig
        .catalogue
        .claim_move("dead-worker", 1)
        .await
        .unwrap()
        .unwrap();
    let dest_location = format!("{}/{}-1", object.id, m.id);
    rig.catalogue
        .start_copy(
            &claimed.id,
            "dead-worker",
            "fileb",
            None,
            &strata::db::CopyPlan {
                object_version: object.version,
                from_tier: "filea".into(),
                source_location: object.location.clone(),
                dest_location: dest_location.clone(),
                bytes_total: object.size,
            },
        )
        .await
        .unwrap()
        .unwrap();
    rig.store("fileb")
        .put(
            &dest_location,
            chunks(&b"partial"[..]),
            "x",
            Declared::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    assert!(
        rig.mover.recover().await.unwrap() >= 2,
        "reclaimed and cleaned"
    );
    let reclaimed = rig.catalogue.get_move(&m.id).await.unwrap();
    assert_eq!(reclaimed.status, MoveStatus::Pending);
    assert_eq!(reclaimed.dest_location, None);
    assert!(matches!(
        rig.store("fileb").size(&dest_location).await,
        Err(StorageError::NotFound { .. })
    ));
    let done = rig.drive(&m.id, 50).await;
    assert_eq!((done.status, done.attempts), (MoveStatus::Completed, 2));
    rig.finish().await;
}
