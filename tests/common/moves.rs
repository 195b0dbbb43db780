//! The parts a move needs, wired as `strata serve` wires them.

use strata::config::TierConfig;
use strata::storage::{Declared, Store};
use tokio::io::AsyncRead;

use super::*;

/// A catalogue on a fresh PostgreSQL database, tiers and a mover over them: the parts a
/// move needs, wired as `strata serve` wires them.
pub struct MoveRig {
    pub catalogue: strata::db::Catalogue,
    pub tiers: std::sync::Arc<strata::storage::Tiers>,
    pub mover: strata::mover::Mover,
    db: TestDb,
    _dirs: Vec<tempfile::TempDir>,
}

/// Tier `name` in a fresh temporary directory, with an optional capacity.
pub fn file_tier(name: &str, capacity_bytes: Option<u64>) -> (TierConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tier = TierConfig {
        name: name.into(),
        backend: strata::config::BackendConfig::File {
            root: dir.path().to_path_buf(),
        },
        capacity_bytes,
        headroom: 0.0,
        costs: Default::default(),
        promote_above: None,
        predict_above: None,
    };
    (tier, dir)
}

/// Tier `name` on the stack's S3 server of tier `stack_tier`.
pub fn s3_tier(name: &str, stack_tier_name: &str) -> TierConfig {
    TierConfig {
        name: name.into(),
        ..stack_tier(stack_tier_name)
    }
}

/// Mover settings for tests: short lease and backoff so retries and recovery happen
/// within a test's patience.
pub fn fast_mover() -> strata::config::MoverConfig {
    strata::config::MoverConfig {
        concurrency: 2,
        max_attempts: 3,
        retry_base: std::time::Duration::from_millis(20),
        lease: std::time::Duration::from_secs(2),
        poll_interval: std::time::Duration::from_millis(20),
        ..Default::default()
    }
}

impl MoveRig {
    pub async fn new(
        tiers: Vec<TierConfig>,
        dirs: Vec<tempfile::TempDir>,
        mover: strata::config::MoverConfig,
    ) -> MoveRig {
        let db = TestDb::postgres().await;
        let catalogue = strata::db::Catalogue::connect(&db.url).await.unwrap();
        let tiers = std::sync::Arc::new(
            strata::storage::Tiers::open(&tiers, stack_config().transfer)
                .await
                .unwrap(),
        );
        let mover = strata::mover::Mover::new(catalogue.clone(), tiers.clone(), mover);
        MoveRig {
            catalogue,
            tiers,
            mover,
            db,
            _dirs: dirs,
        }
    }

    pub fn store(&self, tier: &str) -> &Store {
        self.tiers.store(tier).unwrap()
    }

    /// URL of the rig's catalogue database.
    pub fn database_url(&self) -> &str {
        &self.db.url
    }

    /// Stores `body` on `tier` and catalogues it, as ingest does.
    pub async fn ingest(
        &self,
        tier: &str,
        key: &str,
        body: impl AsyncRead + Unpin + Send,
    ) -> strata::db::ObjectRecord {
        let id = strata::db::new_id();
        let location = format!("{id}/ingest");
        let digest = self
            .store(tier)
            .put(
                &location,
                super::chunks(body),
                "application/octet-stream",
                Declared::default(),
            )
            .await
            .unwrap();
        self.catalogue
            .insert_object(&strata::db::NewObject {
                id,
                bucket: "strata".into(),
                key: key.into(),
                content: strata::db::ObjectContent {
                    size: digest.size as i64,
                    content_type: "application/octet-stream".into(),
                    checksum: digest.checksum,
                    md5: None,
                    tier: tier.into(),
                    location,
                    metadata: Default::default(),
                },
            })
            .await
            .unwrap()
    }

    /// Asserts that `object` is still catalogued on `tier` and that its bytes there are
    /// whole: a move that failed or was cancelled cost nothing.
    pub async fn assert_intact_on(&self, object: &strata::db::ObjectRecord, tier: &str) {
        let now = self.catalogue.get_object(&object.id).await.unwrap();
        assert_eq!(now.tier, tier, "{now:?}");
        assert_eq!(
            self.store(tier)
                .digest(&now.location)
                .await
                .unwrap()
                .checksum,
            object.checksum,
            "the object stays readable where it was"
        );
    }

    /// Queues a manual move of `object` to `to`.
    pub async fn enqueue(
        &self,
        object: &strata::db::ObjectRecord,
        to: &str,
    ) -> strata::db::MoveRecord {
        self.catalogue
            .enqueue_move(&strata::db::NewMove {
                object_id: object.id.clone(),
                object_version: object.version,
                from_tier: object.tier.clone(),
                to_tier: to.into(),
                reason: strata::db::MoveReason::Manual,
                bytes_total: object.size,
            })
            .await
            .unwrap()
    }

    /// Runs the mover in this task until migration `id` has ended (at most `rounds`
    /// queue polls), and returns it.
    pub async fn drive(&self, id: &str, rounds: usize) -> strata::db::MoveRecord {
        for _ in 0..rounds {
            self.mover.work_once().await.unwrap();
            let m = self.catalogue.get_move(id).await.unwrap();
            if !m.status.is_active() {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!(
            "migration {id} still {:?} after {rounds} rounds",
            self.catalogue.get_move(id).await.unwrap()
        );
    }

    /// Waits (bounded) until `check` holds for migration `id`, polling every 10 ms.
    pub async fn wait_for(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&strata::db::MoveRecord) -> bool,
    ) -> strata::db::MoveRecord {
        self.wait_within(6000, id, what, check).await
    }

    /// [`MoveRig::wait_for`], giving up after `polls` polls.
    pub async fn wait_within(
        &self,
        polls: u32,
        id: &str,
        what: &str,
        check: impl Fn(&strata::db::MoveRecord) -> bool,
    ) -> strata::db::MoveRecord {
        for _ in 0..polls {
            let m = self.catalogue.get_move(id).await.unwrap();
            if check(&m) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "migration {id} never reached: {what}: {:?}",
            self.catalogue.get_move(id).await.unwrap()
        );
    }

    /// Starts one attempt of the next queued move in the background and returns once
    /// migration `id` is copying with progress recorded.
    pub async fn start_copy_in_background(
        &self,
        id: &str,
    ) -> tokio::task::JoinHandle<Result<Option<strata::db::MoveRecord>, strata::db::CatalogueError>>
    {
        let mover = self.mover.clone();
        let worker = tokio::spawn(async move { mover.work_once().await });
        self.wait_for(id, "copy under way", |m| {
            m.status == strata::db::MoveStatus::Copying && m.bytes_copied > 0
        })
        .await;
        worker
    }

    pub async fn finish(self) {
        self.catalogue.close().await;
        self.db.drop_db().await;
    }
}
