//! Exactly-once counting across crashes and rebalances: `strata serve` processes consume
//! from the stack's broker and are killed (SIGKILL) or stopped mid-stream; the final
//! per-object totals must equal what was produced, exactly.

mod common;

use std::time::Duration;

use common::{Deployment, assigned_partitions, eventually, settled_with_partitions, terminate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_consumers_neither_lose_nor_double_count() {
    let deployment = Deployment::new(3).await;
    let ids = deployment.objects(1_000).await;
    deployment.produce(&ids, 100);

    let mut kills = 0;
    for (round, kill_at) in [20_000i64, 60_000].into_iter().enumerate() {
        let mut serve = deployment.serve(&format!("serve-{round}"));
        eventually(
            Duration::from_secs(120),
            "consumption to progress",
            || async { deployment.counted().await >= kill_at },
        )
        .await;
        serve.kill().unwrap(); // SIGKILL: whatever was not flushed is lost in memory
        serve.wait().unwrap();
        let at_kill = deployment.counted().await;
        assert!(
            at_kill < 100_000,
            "consumption finished before kill {round}; the test proved nothing"
        );
        kills += 1;
    }
    assert_eq!(kills, 2);
    let serve = deployment.serve("serve-last");
    deployment.assert_exact(&ids, 100).await;
    deployment.finish(vec![serve]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_partitions_and_one_takes_over_when_the_other_stops() {
    let deployment = Deployment::new(4).await;
    let ids = deployment.objects(200).await;
    let first = deployment.serve("first");
    let mut second = deployment.serve("second");
    eventually(
        Duration::from_secs(60),
        "both consumers to own partitions",
        || async {
            let owns = |name| {
                assigned_partitions(&deployment.log_path(name))
                    .is_some_and(|line| line.contains("assigned=[("))
            };
            owns("first") && owns("second")
        },
    )
    .await;
    deployment.produce(&ids, 50);
    deployment.assert_exact(&ids, 50).await;

    // tansu never expires a member stopped while it joins, and the group would wait for
    // it forever (Kafka expires it): the second stops only once the group has settled.
    eventually(
        Duration::from_secs(60),
        "both consumers settled with partitions",
        || async {
            settled_with_partitions(&deployment.log_path("first"))
                && settled_with_partitions(&deployment.log_path("second"))
        },
    )
    .await;
    terminate(&mut second);
    deployment.produce(&ids, 50);
    deployment.assert_exact(&ids, 100).await;
    let taken_over = assigned_partitions(&deployment.log_path("first")).unwrap();
    assert!(
        taken_over.matches("Some(").count() + taken_over.matches("None)").count() == 4,
        "the remaining consumer owns all four partitions: {taken_over}"
    );
    deployment.finish(vec![first]).await;
}
