//! Memory use and progress of a large move. A test binary with this one test only, so
//! that the process's memory figures are this move's alone.

mod common;

use common::{MoveRig, PatternReader, fast_mover, s3_tier};
use strata::db::MoveStatus;

const MIB: u64 = 1024 * 1024;

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
        let now = rig.catalogue.get_move(&m.id).await.unwrap();
        if now.status == MoveStatus::Copying {
            seen.push(now.bytes_copied);
        }
        if !now.status.is_active() {
            assert_eq!(now.status, MoveStatus::Completed, "{now:?}");
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
