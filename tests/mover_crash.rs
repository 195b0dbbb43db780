//! Crash safety: a separate `strata serve` process runs 50 moves and is killed with
//! SIGKILL at random points, again and again. After it is restarted and left to finish,
//! every object must be readable and byte-identical, every move must have ended as
//! `completed` or `failed` with a reason, and no tier may hold a copy the catalogue does
//! not point at.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{
    MoveRig, PatternReader, ServerProcess, fast_mover, file_tier, free_port, s3_bucket_dir,
    spawn_serve, stack_config, stack_env, stack_tier,
};
use strata::db::{Catalogue, MoveFilter, MoveReason, MoveStatus, NewMove, ObjectRecord};

const TIERS: [&str; 3] = ["onprem", "private", "public"];
const MOVES: usize = 50;
const KILLS: usize = 6;

/// `strata serve` on the test database and the stack's tiers, with a short lease so
/// that recovery after a kill is quick.
fn serve(database_url: &str, workdir: &Path) -> ServerProcess {
    serve_with(database_url, workdir, &[])
}

/// [`serve`] with `extra` settings on top.
fn serve_with(database_url: &str, workdir: &Path, extra: &[(&str, String)]) -> ServerProcess {
    let mut env: HashMap<String, String> = stack_env();
    env.insert("DATABASE_URL".into(), database_url.into());
    // This test is about moves; the stack's shared topic would only add noise.
    env.remove("KAFKA_BROKERS");
    env.insert(
        "DATA_DIR".into(),
        workdir.join("data").display().to_string(),
    );
    for (k, v) in [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("MOVER_CONCURRENCY", "4"),
        ("MOVER_LEASE_SECS", "2"),
        ("MOVER_RETRY_BASE_MS", "50"),
        ("MOVER_POLL_MS", "50"),
        ("MOVER_MAX_ATTEMPTS", "20"),
        ("RUST_LOG", "warn"),
    ] {
        env.insert(k.into(), v.into());
    }
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    spawn_serve(workdir, env, Stdio::null(), Stdio::inherit())
}

/// xorshift64 seeded from the clock; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn from_clock() -> Rng {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("crash test seed: {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Keys under `<bucket dir>/<object id>/` on disk, for each of our objects.
fn stored_keys(tier: &str, objects: &[ObjectRecord]) -> BTreeSet<String> {
    let bucket = s3_bucket_dir(tier);
    let mut keys = BTreeSet::new();
    for object in objects {
        let dir = bucket.join(&object.id);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            keys.insert(format!("{}/{name}", object.id));
        }
    }
    keys
}

/// Waits until process `pid` copies a move; false when no move is left to copy.
async fn copy_under_way(catalogue: &Catalogue, pid: u32) -> bool {
    // Its workers are named `<pid>-<id>`.
    let worker = format!("{pid}-");
    for _ in 0..3000 {
        let moves = catalogue
            .list_moves(&MoveFilter::default(), 1000, None)
            .await
            .unwrap()
            .items;
        if moves.iter().any(|m| {
            m.status == MoveStatus::Copying
                && m.claimed_by
                    .as_ref()
                    .is_some_and(|w| w.starts_with(&worker))
        }) {
            return true;
        }
        if !moves.iter().any(|m| m.status.is_active()) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process {pid} copied no move within 30 s of its start");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_movers_never_cost_an_object() {
    let rig = MoveRig::new(stack_config().tiers, vec![], fast_mover()).await;
    let catalogue = rig.catalogue.clone();
    let mut rng = Rng::from_clock();

    // 50 objects of 64 KiB to 12 MiB on public, each moved to a hotter tier.
    let mut objects = Vec::new();
    for i in 0..MOVES {
        let size = 64 * 1024 + rng.below(12 * 1024 * 1024);
        let object = rig
            .ingest(
                "public",
                &format!("crash/{i}"),
                PatternReader::new(1000 + i as u64, size),
            )
            .await;
        catalogue
            .enqueue_move(&NewMove {
                object_id: object.id.clone(),
                object_version: 1,
                from_tier: "public".into(),
                to_tier: if i % 2 == 0 { "onprem" } else { "private" }.into(),
                reason: MoveReason::ReactiveAccessSpike,
                bytes_total: object.size,
            })
            .await
            .unwrap();
        objects.push(object);
    }

    let workdir = tempfile::tempdir().unwrap();
    for _ in 0..KILLS {
        let mut child = serve(rig.database_url(), workdir.path());
        // Killed while it copies, however fast the moves are: at a random moment after a
        // move of its own is under way.
        if !copy_under_way(&catalogue, child.id()).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    // Restart and let it finish: every move ended, every leftover copy removed.
    let mut child = serve(rig.database_url(), workdir.path());
    let mut settled = false;
    for _ in 0..1800 {
        let active = catalogue
            .list_moves(&MoveFilter::default(), 1000, None)
            .await
            .unwrap()
            .items
            .iter()
            .filter(|m| m.status.is_active())
            .count();
        if active == 0 && catalogue.leftover_copies().await.unwrap().is_empty() {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(settled, "moves or leftover copies remained after 3 minutes");

    let migrations = catalogue
        .list_moves(&MoveFilter::default(), 1000, None)
        .await
        .unwrap()
        .items;
    assert_eq!(migrations.len(), MOVES);
    for m in &migrations {
        match m.status {
            MoveStatus::Completed => {}
            MoveStatus::Failed => assert!(m.error.is_some(), "failed without a reason: {m:?}"),
            other => panic!("move ended {other}: {m:?}"),
        }
    }
    let completed = migrations
        .iter()
        .filter(|m| m.status == MoveStatus::Completed)
        .count();
    let interrupted = migrations.iter().filter(|m| m.attempts > 1).count();
    eprintln!(
        "{completed} of {MOVES} moves completed, {} failed, {interrupted} interrupted by a kill",
        MOVES - completed
    );
    assert!(
        interrupted > 0,
        "no kill landed during a move: the test proved nothing"
    );

    let mut now = Vec::new();
    for object in &objects {
        let current = catalogue.get_object(&object.id).await.unwrap();
        let digest = rig
            .store(&current.tier)
            .digest(&current.location)
            .await
            .unwrap_or_else(|e| panic!("object {} unreadable: {e}", object.id));
        assert_eq!(
            (digest.size as i64, &digest.checksum),
            (object.size, &object.checksum),
            "object {} changed",
            object.id
        );
        now.push(current);
    }
    for tier in TIERS {
        let expected: BTreeSet<String> = now
            .iter()
            .filter(|o| o.tier == tier)
            .map(|o| o.location.clone())
            .collect();
        assert_eq!(
            stored_keys(tier, &objects),
            expected,
            "orphan or missing copies on {tier}"
        );
    }

    rig.finish().await;
}

/// Names of the temporary files a file tier's interrupted writes left.
fn temporary_files(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join(".strata-tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A move of a 32 MiB object from a `slow` file tier to tier `fast`, queued on a rig of
/// the two, and the settings that run it in `strata serve` (`fast` configured by
/// `fast_settings`) slowed to 4 MiB/s, so that the copy is under way when the process
/// is killed.
struct SlowMove {
    rig: MoveRig,
    id: String,
    port: u16,
    settings: Vec<(&'static str, String)>,
    workdir: tempfile::TempDir,
    _slow_dir: tempfile::TempDir,
}

impl SlowMove {
    async fn to(
        fast: strata::config::TierConfig,
        fast_settings: Vec<(&'static str, String)>,
    ) -> SlowMove {
        let (slow, slow_dir) = file_tier("slow", None);
        let rig = MoveRig::new(vec![fast, slow], vec![], fast_mover()).await;
        let object = rig
            .ingest("slow", "big", PatternReader::new(7, 32 * 1024 * 1024))
            .await;
        let id = rig.enqueue(&object, "fast").await.id;
        let port = free_port();
        let mut settings = vec![
            ("TIERS", "fast,slow".to_string()),
            ("DEFAULT_TIER", "slow".to_string()),
            (
                "TIER_SLOW_URL",
                format!("file://{}", slow_dir.path().display()),
            ),
            (
                "MOVER_BANDWIDTH_BYTES_PER_SEC",
                (4 * 1024 * 1024).to_string(),
            ),
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
        ];
        settings.extend(fast_settings);
        SlowMove {
            rig,
            id,
            port,
            settings,
            workdir: tempfile::tempdir().unwrap(),
            _slow_dir: slow_dir,
        }
    }

    /// `strata serve` running the move.
    fn serve(&self) -> ServerProcess {
        serve_with(self.rig.database_url(), self.workdir.path(), &self.settings)
    }

    /// After a restart (`child`) that swept the dead attempt's leftover: one leftover
    /// counted on `fast`, the move completed; then stops the process.
    async fn completes_after_one_sweep(&self, mut child: ServerProcess) {
        let metrics = common::curl(&[&format!("http://127.0.0.1:{}/metrics", self.port)]);
        let page = String::from_utf8_lossy(&metrics.body).into_owned();
        assert!(
            page.contains("strata_leftovers_swept_total{tier=\"fast\"} 1\n"),
            "{page}"
        );
        self.rig
            .wait_for(&self.id, "the move completed", |m| {
                m.status == MoveStatus::Completed
            })
            .await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_movers_temporary_file_is_swept_after_a_lease() {
    let (fast, fast_dir) = file_tier("fast", None);
    let fast_url = format!("file://{}", fast_dir.path().display());
    let run = SlowMove::to(fast, vec![("TIER_FAST_URL", fast_url)]).await;
    let mut child = run.serve();
    common::eventually(Duration::from_secs(30), "a copy being written", || {
        let writing = !temporary_files(fast_dir.path()).is_empty();
        async move { writing }
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let left = temporary_files(fast_dir.path());
    assert_eq!(left.len(), 1, "{left:?}");

    // Restarted, the mover takes the move over and sweeps the dead write's file once it
    // has been idle for a lease (2 s), while its own new copy is being written.
    let child = run.serve();
    common::eventually(Duration::from_secs(30), "the leftover swept", || {
        let swept = temporary_files(fast_dir.path()).is_disjoint(&left);
        async move { swept }
    })
    .await;
    run.completes_after_one_sweep(child).await;
    assert!(temporary_files(fast_dir.path()).is_empty());
    run.rig.finish().await;
}

/// moto's standalone S3 server, which lists multipart uploads and their parts (s3s-fs
/// cannot), on a free port; killed when dropped.
struct MotoServer {
    endpoint: String,
    _process: ServerProcess,
}

impl MotoServer {
    async fn start() -> MotoServer {
        let port = free_port();
        let mut moto = Command::new("python3");
        moto.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        MotoServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            _process: ServerProcess::listening(moto, port, Duration::from_secs(30)),
        }
    }

    /// A client of its own (moto takes any key).
    fn client(&self) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .endpoint_url(&self.endpoint)
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .force_path_style(true)
                .build(),
        )
    }
}

/// The multipart uploads in progress in `bucket`: key and upload id.
async fn uploads(client: &aws_sdk_s3::Client, bucket: &str) -> BTreeSet<(String, String)> {
    let page = client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    page.uploads()
        .iter()
        .filter_map(|u| Some((u.key()?.to_string(), u.upload_id()?.to_string())))
        .collect()
}

/// A mover killed while it uploads a copy in parts to an S3 tier (moto's server) leaves
/// a multipart upload; restarted, the process aborts it once it has been idle for a
/// lease, and leaves another writer's upload in the same bucket alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_movers_multipart_upload_is_aborted_after_a_lease() {
    let server = MotoServer::start().await;
    let client = server.client();
    client.create_bucket().bucket("sweep").send().await.unwrap();
    let foreign = client
        .create_multipart_upload()
        .bucket("sweep")
        .key("backups/nightly.tar")
        .send()
        .await
        .unwrap();
    let foreign = (
        "backups/nightly.tar".to_string(),
        foreign.upload_id().unwrap().to_string(),
    );
    let mut fast = stack_tier("public");
    fast.name = "fast".into();
    let strata::config::BackendConfig::S3(s3) = &mut fast.backend else {
        panic!("the stack's public tier is S3");
    };
    s3.bucket = "sweep".into();
    s3.endpoint = Some(server.endpoint.clone());
    let env = stack_env();
    let run = SlowMove::to(
        fast,
        vec![
            ("TIER_FAST_URL", "s3://sweep".to_string()),
            ("TIER_FAST_ENDPOINT", server.endpoint.clone()),
            ("TIER_FAST_REGION", "us-east-1".to_string()),
            (
                "TIER_FAST_ACCESS_KEY_ID",
                env["TIER_PUBLIC_ACCESS_KEY_ID"].clone(),
            ),
            (
                "TIER_FAST_SECRET_ACCESS_KEY",
                env["TIER_PUBLIC_SECRET_ACCESS_KEY"].clone(),
            ),
        ],
    )
    .await;
    // The copy goes up in 8 MiB parts: an upload is under way when the process dies.
    let mut child = run.serve();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut dead = loop {
        let now = uploads(&client, "sweep").await;
        if now.len() == 2 {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no copy being uploaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    dead.remove(&foreign);
    assert_eq!(dead.len(), 1, "{dead:?}");

    // Restarted, the mover takes the move over and aborts the dead upload once it has
    // been idle for a lease (2 s), while its own new copy is being uploaded.
    let child = run.serve();
    common::eventually(Duration::from_secs(60), "the dead upload aborted", || {
        let client = &client;
        let dead = &dead;
        async move { uploads(client, "sweep").await.is_disjoint(dead) }
    })
    .await;
    run.completes_after_one_sweep(child).await;
    assert_eq!(
        uploads(&client, "sweep").await,
        BTreeSet::from([foreign]),
        "another writer's upload is not Strata's to abort"
    );
    run.rig.finish().await;
}
