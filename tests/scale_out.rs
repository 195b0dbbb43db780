//! Several instances, one deployment: three `strata serve` processes share six
//! partitions, six forecast shards and a queue of moves; one is killed (SIGKILL) with a
//! move in flight, and the other two take its partitions, shards and leased move over.
//! Counts stay exact, every move completes once, no object is lost.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    Deployment, ServerProcess, assigned_partitions, eventually, http, ingest_at, listen_address,
    settled_with_partitions,
};

const OBJECTS: usize = 24;
/// Under the 128 KiB a command-line argument to curl may hold.
const OBJECT_BYTES: usize = 96 * 1024;

/// One process of the deployment (killed when dropped) and its REST address.
struct Instance {
    name: String,
    child: ServerProcess,
    base: String,
}

async fn start(deployment: &Deployment, name: &str) -> Instance {
    let mut child = deployment.serve_with(
        name,
        &[
            ("FORECAST_SHARDS", "6"),
            ("FORECAST_INTERVAL_SECS", "1"),
            ("MODELS_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/models")),
            // Forecasts without moves of the counted objects, which have no bytes.
            ("TIER_ONPREM_PREDICT_ABOVE", "none"),
            ("TIER_PRIVATE_PREDICT_ABOVE", "none"),
            ("MOVER_CONCURRENCY", "2"),
            ("MOVER_LEASE_SECS", "2"),
            ("MOVER_POLL_MS", "50"),
            // About a second a move: moves are in flight when a process dies.
            ("MOVER_BANDWIDTH_BYTES_PER_SEC", "98304"),
        ],
    );
    // The deployment listens on port 0; the process says which port it got.
    let address = listen_address(&deployment.log_path(name), 0, &mut child).await;
    Instance {
        name: name.into(),
        child,
        base: format!("http://{address}"),
    }
}

/// Forecast shards held per process (its id in the leases), of the unexpired leases.
async fn shard_holders(deployment: &Deployment) -> BTreeMap<String, i64> {
    sqlx::query_as(
        "SELECT holder, CAST(COUNT(*) AS BIGINT) FROM leases \
         WHERE name LIKE 'forecast-shard/%' AND expires_at >= $1 GROUP BY holder",
    )
    .bind(strata::timestamp::now_ms())
    .fetch_all(&deployment.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// How many partitions the last assignment in `instance`'s log gave it.
fn partitions_of(deployment: &Deployment, instance: &Instance) -> usize {
    assigned_partitions(&deployment.log_path(&instance.name)).map_or(0, |line| {
        line.matches("Some(").count() + line.matches("None)").count()
    })
}

/// Waits until the six partitions and the six forecast shards are split evenly among
/// `instances`: each settled in the group with its share, each shard held by one; on a
/// timeout, says how they were split.
async fn split_evenly(deployment: &Deployment, instances: &[Instance], what: &str) {
    let share = 6 / instances.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let holders = shard_holders(deployment).await;
        let partitions: Vec<(usize, bool)> = instances
            .iter()
            .map(|i| {
                let settled = settled_with_partitions(&deployment.log_path(&i.name));
                (partitions_of(deployment, i), settled)
            })
            .collect();
        if partitions.iter().all(|&p| p == (share, true))
            && holders.len() == instances.len()
            && holders.values().all(|&held| held == share as i64)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: partitions (count, settled) {partitions:?}, \
             shards per holder {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Moves claimed by `pid`'s workers (named `<pid>-<id>`), with the given statuses.
async fn moves_claimed_by(deployment: &Deployment, pid: u32, statuses: &str) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM migrations WHERE claimed_by LIKE $1 AND status IN ({statuses})"
    ))
    .bind(format!("{pid}-%"))
    .fetch_all(&deployment.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_work_and_two_take_over_from_a_killed_one() {
    let deployment = Deployment::new(6).await;
    let counted = deployment.objects(300).await;
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        instances.push(start(&deployment, name).await);
    }
    split_evenly(
        &deployment,
        &instances,
        "six partitions and six shards split by three",
    )
    .await;
    deployment.produce(&counted, 20);

    // Objects with real bytes, each queued for a move to `private`.
    let mut moved = Vec::new();
    for n in 0..OBJECTS {
        let body: String = (0..OBJECT_BYTES)
            .map(|i| char::from(b'a' + ((i * 7 + n) % 26) as u8))
            .collect();
        let id = ingest_at(&instances[0].base, &format!("moved/{n}"), &body)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, reply) = http(
            "POST",
            &format!("{}/api/v1/objects/{id}/migrations", instances[0].base),
            Some(r#"{"to_tier":"private"}"#),
        );
        assert_eq!(status, 202, "{reply}");
        moved.push((id, body));
    }
    let pids: Vec<u32> = instances.iter().map(|i| i.child.id()).collect();
    let victim = pids[2];
    eventually(
        Duration::from_secs(60),
        "every process running moves, the third one a move in flight",
        || async {
            let mut all = true;
            for &pid in &pids {
                all &= !moves_claimed_by(&deployment, pid, "'copying', 'verifying', 'completed'")
                    .await
                    .is_empty();
            }
            all && !moves_claimed_by(&deployment, victim, "'copying'")
                .await
                .is_empty()
        },
    )
    .await;
    drop(instances.pop()); // SIGKILL
    let in_flight = moves_claimed_by(&deployment, victim, "'copying', 'verifying'").await;
    assert!(
        !in_flight.is_empty(),
        "the killed process had a move in flight"
    );
    deployment.produce(&counted, 30);

    split_evenly(
        &deployment,
        &instances,
        "the killed process's partitions and shards taken over",
    )
    .await;
    deployment.assert_exact(&counted, 50).await;

    eventually(Duration::from_secs(120), "every move completed", || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM migrations WHERE status = 'completed'",
        )
        .fetch_one(&deployment.pool)
        .await
        .unwrap();
        done == OBJECTS as i64
    })
    .await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, object_id, status FROM migrations")
            .fetch_all(&deployment.pool)
            .await
            .unwrap();
    assert_eq!(
        rows.len(),
        OBJECTS,
        "one move per object, none queued twice"
    );
    for id in &in_flight {
        let taken_over = moves_claimed_by(&deployment, victim, "'completed'").await;
        assert!(!taken_over.contains(id), "move {id} finished by a survivor");
    }
    for (id, body) in &moved {
        let (status, bytes) = http(
            "GET",
            &format!("{}/api/v1/objects/{id}/content", instances[1].base),
            None,
        );
        assert_eq!(status, 200, "object {id}");
        assert!(bytes == *body, "object {id} reads back as written");
        let (_, object) = http(
            "GET",
            &format!("{}/api/v1/objects/{id}", instances[0].base),
            None,
        );
        let object: serde_json::Value = serde_json::from_str(&object).unwrap();
        assert_eq!(object["tier"], "private", "{object}");
    }
    drop(instances);
    deployment.finish(Vec::new()).await;
}
