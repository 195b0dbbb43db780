//! Moves when things go wrong with the destination server.

mod common;

use common::{MoveRig, OwnS3Server, fast_mover, file_tier, pattern};
use strata::db::MoveStatus;

#[tokio::test]
async fn a_down_destination_fails_after_retries_without_blocking_other_moves() {
    let mut server = OwnS3Server::start("flaky");
    let (local, dir) = file_tier("local", None);
    let (other, other_dir) = file_tier("other", None);
    let rig = MoveRig::new(
        vec![local, other, server.tier("remote", "flaky")],
        vec![dir, other_dir],
        // Backoff long enough that the queue's next poll finds the failing move not due.
        strata::config::MoverConfig {
            retry_base: std::time::Duration::from_millis(500),
            ..fast_mover()
        },
    )
    .await;
    let stuck = rig
        .ingest("local", "stuck", &pattern(81, 100_000)[..])
        .await;
    let fine = rig.ingest("local", "fine", &pattern(82, 100_000)[..]).await;

    server.stop();
    let to_down = rig.enqueue(&stuck, "remote").await;
    let to_up = rig.enqueue(&fine, "other").await;
    // The move to the healthy tier completes while the other one is backing off between
    // attempts (the failing one is first in the queue: same priority, older id).
    let done = rig.drive(&to_up.id, 2000).await;
    assert_eq!(done.status, MoveStatus::Completed);
    let waiting = rig.catalogue.get_move(&to_down.id).await.unwrap();
    assert!(
        waiting.status.is_active() && waiting.attempts < 3,
        "the other move went ahead only after the failing one gave up: {waiting:?}"
    );
    let failed = rig.drive(&to_down.id, 2000).await;
    assert_eq!(failed.status, MoveStatus::Failed, "{failed:?}");
    assert_eq!(failed.attempts, 3, "every attempt was used");
    assert!(
        failed.error.as_deref().unwrap().contains("s3://flaky"),
        "{failed:?}"
    );
    rig.assert_intact_on(&stuck, "local").await;

    server.resume();
    let again = rig.enqueue(&stuck, "remote").await;
    let done = rig.drive(&again.id, 200).await;
    assert_eq!(done.status, MoveStatus::Completed, "{done:?}");
    rig.finish().await;
}
