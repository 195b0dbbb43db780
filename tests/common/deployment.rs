//! Several `strata serve` processes of one deployment: one topic, consumer group and
//! database, each process logging to its own file in a shared working directory.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use strata::db::Catalogue;
use strata::timestamp::now_ms;

use super::*;

/// One topic, group and database; `strata serve` processes consuming them.
pub struct Deployment {
    pub db: TestDb,
    pub catalogue: Catalogue,
    pub pool: PgPool,
    pub topic: String,
    pub group: String,
    pub workdir: Workdir,
}

impl Deployment {
    pub async fn new(partitions: i32) -> Deployment {
        let db = TestDb::postgres().await;
        // Applies the schema before any process starts.
        let catalogue = Catalogue::connect(&db.url).await.unwrap();
        let topic = unique_name("access");
        create_topic(&topic, partitions).await;
        create_topic(&format!("{topic}.dlq"), 1).await;
        Deployment {
            catalogue,
            pool: PgPool::connect(&db.url).await.unwrap(),
            db,
            topic,
            group: unique_name("group"),
            workdir: Workdir(Some(tempfile::tempdir().unwrap())),
        }
    }

    /// Starts `strata serve`; its log goes to `<workdir>/<name>.log`.
    pub fn serve(&self, name: &str) -> ServerProcess {
        self.serve_with(name, &[])
    }

    /// [`Deployment::serve`] with `extra` settings on top.
    pub fn serve_with(&self, name: &str, extra: &[(&str, &str)]) -> ServerProcess {
        let mut env: HashMap<String, String> = stack_env();
        let data = self.workdir.path().join("data");
        let brokers = kafka_brokers();
        for (k, v) in [
            ("DATABASE_URL", self.db.url.as_str()),
            ("DATA_DIR", data.to_str().unwrap()),
            ("KAFKA_BROKERS", &brokers),
            ("KAFKA_ACCESS_TOPIC", &self.topic),
            ("KAFKA_GROUP_ID", &self.group),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("EVENTS_FLUSH_MS", "50"),
            ("EVENTS_FLUSH_MAX", "2000"),
            // A killed member's partitions are reassigned after this.
            ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
            // These tests are about counting; promotions of their fake objects are noise.
            ("TIER_ONPREM_PROMOTE_ABOVE", "none"),
            ("TIER_PRIVATE_PROMOTE_ABOVE", "none"),
            ("RUST_LOG", "strata=debug,rdkafka=warn"),
        ]
        .iter()
        .chain(extra)
        {
            env.insert(k.to_string(), v.to_string());
        }
        let log = std::fs::File::create(self.log_path(name)).unwrap();
        spawn_serve(self.workdir.path(), env, Stdio::null(), log)
    }

    pub fn log_path(&self, name: &str) -> std::path::PathBuf {
        self.workdir.path().join(format!("{name}.log"))
    }

    pub async fn objects(&self, n: usize) -> Vec<String> {
        let objects = catalogue_objects(&self.catalogue, "o", n, "public").await;
        objects.into_iter().map(|o| o.id).collect()
    }

    /// Produces `per_object` events for each object with kafka-python.
    pub fn produce(&self, ids: &[String], per_object: usize) {
        let specs: Vec<_> = ids
            .iter()
            .map(|id| {
                let value = json!({"object_id": id, "ts": now_ms(), "kind": "read"}).to_string();
                json!({"key": id, "value": value, "repeat": per_object})
            })
            .collect();
        produce_independently(&self.topic, &specs);
    }

    pub async fn counted(&self) -> i64 {
        self.catalogue.accesses_counted().await.unwrap()
    }

    /// Per object: (its total, the sum of its minute buckets).
    pub async fn totals(&self, ids: &[String]) -> HashMap<String, (i64, i64)> {
        let minutes: HashMap<String, i64> = sqlx::query_as(
            "SELECT object_id, CAST(SUM(hits) AS BIGINT) FROM access_buckets \
             WHERE resolution_ms = 60000 GROUP BY object_id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        let mut totals = HashMap::new();
        for id in ids {
            let access = self.catalogue.access_summary(id, now_ms()).await.unwrap();
            let minutes = minutes.get(id).copied().unwrap_or(0);
            totals.insert(id.clone(), (access.total, minutes));
        }
        totals
    }

    /// Waits until the count stays at `expected` and checks every object's totals.
    pub async fn assert_exact(&self, ids: &[String], per_object: i64) {
        let expected = ids.len() as i64 * per_object;
        eventually(Duration::from_secs(120), "every event counted", || async {
            self.counted().await >= expected
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(self.counted().await, expected, "events counted twice");
        let totals = self.totals(ids).await;
        for id in ids {
            assert_eq!(totals[id], (per_object, per_object), "object {id}");
        }
    }

    pub async fn finish(self, children: Vec<ServerProcess>) {
        drop(children);
        self.pool.close().await;
        self.catalogue.close().await;
        self.db.drop_db().await;
    }
}

/// The processes' working directory; on a failing test it prints the end of their logs,
/// which explain a failure better than the assertion does, and keeps them.
pub struct Workdir(Option<tempfile::TempDir>);

impl Workdir {
    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("workdir lives until drop").path()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = self.0.take().expect("workdir lives until drop").keep();
            eprintln!("logs kept in {}", kept.display());
            for entry in std::fs::read_dir(&kept).into_iter().flatten().flatten() {
                if entry.path().extension().is_some_and(|e| e == "log") {
                    let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!("--- {} (last lines) ---", entry.path().display());
                    for line in tail.into_iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
    }
}

pub fn terminate(child: &mut Child) {
    // SIGTERM: a graceful stop that writes what was counted.
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
}

pub fn assigned_partitions(log: &Path) -> Option<String> {
    std::fs::read_to_string(log)
        .ok()?
        .lines()
        .rev()
        .find(|l| l.contains("partitions assigned"))
        .map(str::to_string)
}

/// Whether the consumer writing `log` is settled in its group: its last rebalance was an
/// assignment of partitions, not a revocation still waiting for the next one.
pub fn settled_with_partitions(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|text| {
        text.lines()
            .rev()
            .find(|l| l.contains("partitions revoked") || l.contains("partitions assigned"))
            .is_some_and(|l| l.contains("assigned=[("))
    })
}
