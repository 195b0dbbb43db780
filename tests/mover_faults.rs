//! Moves when things go wrong with the destination server, and memory use of a large
//! move. A test binary of its own, so that the memory figure is this test's alone.

mod common;

use common::{MoveRig, OwnS3Server, PatternReader, fast_mover, file_tier, pattern, s3_tier};
use strata::db::MigrationStatus;

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn a_down_destination_fails_after_retries_without_blocking_other_moves() {
    let mut server = OwnS3Server::start("flaky");
    let (local, dir) = file_tier("local", None);
    let (other, other_dir) = file_tier("other", None);
    let rig = MoveRig::new(
        vec![local, other, server.tier("remote", "flaky")],
        vec![dir, other_dir],
        fast_mover(),
    )
    .await;
    let stuck = rig
        .ingest("local", "stuck", &pattern(81, 100_000)[..])
        .await;
    let fine = rig.ingest("local", "fine", &pattern(82, 100_000)[..]).await;

    server.stop();
    let to_down = rig.enqueue(&stuck, "remote").await;
    let to_up = rig.enqueue(&fine, "other").await;
    let failed = rig.drive(&to_down.id, 2000).await;
    assert_eq!(failed.status, MigrationStatus::Failed, "{failed:?}");
    assert_eq!(failed.attempts, 3, "every attempt was used");
    assert!(
        failed.error.as_deref().unwrap().contains("s3://flaky"),
        "{failed:?}"
    );
    assert_eq!(
        rig.catalogue.get_migration(&to_up.id).await.unwrap().status,
        MigrationStatus::Completed,
        "the other move went ahead"
    );
    let unmoved = rig.catalogue.get_object(&stuck.id).await.unwrap();
    assert_eq!(unmoved.tier, "local");
    assert_eq!(
        rig.store("local")
            .digest(&unmoved.location)
            .await
            .unwrap()
            .checksum,
        stuck.checksum
    );

    server.resume();
    let again = rig.enqueue(&stuck, "remote").await;
    let done = rig.drive(&again.id, 200).await;
    assert_eq!(done.status, MigrationStatus::Completed, "{done:?}");
    rig.finish().await;
}

#[tokio::test]
async fn a_cancelled_multipart_copy_leaves_no_parts_on_the_server() {
    let server = OwnS3Server::start("dest");
    let rig = MoveRig::new(
        vec![s3_tier("src", "private"), server.tier("dest", "dest")],
        vec![],
        fast_mover(),
    )
    .await;
    let object = rig
        .ingest("src", "big", PatternReader::new(91, 120 * MIB))
        .await;
    let m = rig.enqueue(&object, "dest").await;
    let worker = rig.start_copy_in_background(&m.id).await;
    rig.catalogue.cancel_migration(&m.id).await.unwrap();
    worker.await.unwrap().unwrap();
    // The abort runs in the background once the copy is dropped; give it a moment.
    for _ in 0..200 {
        if server.pending_upload_parts() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        server.pending_upload_parts(),
        0,
        "parts of the cancelled upload remain"
    );
    rig.finish().await;
}

/// Peak and current resident set size of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test]
async fn a_200_mib_move_streams_with_flat_memory_and_reports_progress() {
    let rig = MoveRig::new(
        vec![s3_tier("a", "private"), s3_tier("b", "onprem")],
        vec![],
        fast_mover(),
    )
    .await;
    let object = rig
        .ingest("a", "large", PatternReader::new(101, 200 * MIB))
        .await;
    let (_, rss_before) = rss();
    let m = rig.enqueue(&object, "b").await;
    let mover = rig.mover.clone();
    let worker = tokio::spawn(async move { mover.work_once().await });

    let mut seen = Vec::new();
    loop {
        let now = rig.catalogue.get_migration(&m.id).await.unwrap();
        if now.status == MigrationStatus::Copying {
            seen.push(now.bytes_copied);
        }
        if !now.status.is_active() {
            assert_eq!(now.status, MigrationStatus::Completed, "{now:?}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    worker.await.unwrap().unwrap();
    let (peak, _) = rss();

    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {seen:?}"
    );
    assert!(
        seen.iter().any(|&b| b > 0 && b < object.size),
        "no intermediate progress was recorded: {seen:?}"
    );
    let growth = peak.saturating_sub(rss_before);
    assert!(
        growth < 128 * MIB,
        "memory grew by {} MiB moving a 200 MiB object",
        growth / MIB
    );
    rig.finish().await;
}
