//! Shared helpers of the integration tests: the local stack's settings, fresh catalogue
//! databases, tier stores and deterministic test data.
//!
//! The tests talk to the real services that `scripts/stack.sh up` starts. They fail, not
//! skip, when the stack is missing: a test that cannot fail proves nothing.
#![allow(dead_code)] // Each test binary uses its own subset of these helpers.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use sqlx::{AnyConnection, Connection, Executor};
use strata::config::{Config, TierConfig};
use strata::db::Catalogue;
use strata::storage::Store;
use tokio::io::{AsyncRead, ReadBuf};

/// The settings `scripts/stack.sh up` wrote to `.stack/stack.env` (or `$STRATA_STACK_ENV`).
pub fn stack_env() -> HashMap<String, String> {
    let path = std::env::var("STRATA_STACK_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".stack/stack.env"));
    let vars = dotenvy::from_path_iter(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. Start the local stack first: scripts/stack.sh up",
            path.display()
        )
    });
    vars.map(|item| item.expect("malformed line in the stack env file"))
        .collect()
}

/// The service configuration for the local stack.
pub fn stack_config() -> Config {
    let env = stack_env();
    Config::from_lookup(|k| env.get(k).cloned()).expect("stack env file is a valid configuration")
}

/// The stack's configuration of tier `name`.
pub fn stack_tier(name: &str) -> TierConfig {
    stack_config()
        .tier(name)
        .unwrap_or_else(|| panic!("no tier {name} in the stack configuration"))
        .clone()
}

/// A store on the stack's S3 server of tier `name`.
pub async fn s3_store(name: &str) -> Store {
    let config = stack_config();
    Store::open(&stack_tier(name).backend, config.transfer)
        .await
        .expect("open S3 store")
}

/// Directory where the stack's S3 server for tier `name` keeps bucket `strata-<name>`.
pub fn s3_bucket_dir(name: &str) -> PathBuf {
    let env = stack_env();
    PathBuf::from(&env["STACK_S3_ROOT"])
        .join(name)
        .join(format!("strata-{name}"))
}

/// A fresh PostgreSQL database on the stack's server; dropped by [`TestDb::drop_db`].
pub struct TestDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDb {
    /// Creates an empty database named `strata_test_<uuid>`.
    pub async fn postgres() -> TestDb {
        sqlx::any::install_default_drivers();
        let admin_url = stack_env()["DATABASE_URL"].clone();
        let name = format!("strata_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = AnyConnection::connect(&admin_url)
            .await
            .expect("connect to the stack's PostgreSQL");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .expect("database URL has a path")
            .0;
        TestDb {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        }
    }

    /// Drops the database; call after closing every pool on it.
    pub async fn drop_db(self) {
        let mut conn = AnyConnection::connect(&self.admin_url).await.unwrap();
        conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}

/// A reader producing `len` deterministic pseudo-random bytes from `seed` without
/// holding them in memory, so tests can stream objects of any size.
pub struct PatternReader {
    state: u64,
    remaining: u64,
}

impl PatternReader {
    pub fn new(seed: u64, len: u64) -> Self {
        PatternReader {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            remaining: len,
        }
    }
}

impl AsyncRead for PatternReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.remaining).min(256 * 1024) as usize;
        let mut chunk = vec![0u8; n];
        for byte in chunk.iter_mut() {
            // xorshift64: cheap, deterministic, and not compressible.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *byte = self.state as u8;
        }
        self.remaining -= n as u64;
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

/// The bytes [`PatternReader`] produces, collected (for small objects only).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut reader = PatternReader::new(seed, len as u64);
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut storage = vec![0u8; 256 * 1024];
    loop {
        let mut buf = ReadBuf::new(&mut storage);
        let _ = Pin::new(&mut reader).poll_read(&mut cx, &mut buf);
        if buf.filled().is_empty() {
            return out;
        }
        out.extend_from_slice(buf.filled());
    }
}

/// A catalogue on a fresh SQLite file in a temporary directory (kept alive by the guard).
pub async fn sqlite_catalogue() -> (Catalogue, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/strata.db?mode=rwc", dir.path().display());
    (
        Catalogue::connect(&url)
            .await
            .expect("open SQLite catalogue"),
        dir,
    )
}

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
            .put(&location, body, "application/octet-stream")
            .await
            .unwrap();
        self.catalogue
            .insert_object(&strata::db::NewObject {
                id,
                key: key.into(),
                content: strata::db::ObjectContent {
                    size: digest.size as i64,
                    content_type: "application/octet-stream".into(),
                    checksum: digest.checksum,
                    tier: tier.into(),
                    location,
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
    ) -> strata::db::MigrationRecord {
        self.catalogue
            .enqueue_migration(&strata::db::NewMigration {
                object_id: object.id.clone(),
                object_version: object.version,
                from_tier: object.tier.clone(),
                to_tier: to.into(),
                reason: strata::db::MigrationReason::Manual,
                bytes_total: object.size,
            })
            .await
            .unwrap()
    }

    /// Runs the mover in this task until migration `id` has ended (at most `rounds`
    /// queue polls), and returns it.
    pub async fn drive(&self, id: &str, rounds: usize) -> strata::db::MigrationRecord {
        for _ in 0..rounds {
            self.mover.work_once().await.unwrap();
            let m = self.catalogue.get_migration(id).await.unwrap();
            if !m.status.is_active() {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!(
            "migration {id} still {:?} after {rounds} rounds",
            self.catalogue.get_migration(id).await.unwrap()
        );
    }

    /// Waits (bounded) until `check` holds for migration `id`, polling every 10 ms.
    pub async fn wait_for(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&strata::db::MigrationRecord) -> bool,
    ) -> strata::db::MigrationRecord {
        for _ in 0..6000 {
            let m = self.catalogue.get_migration(id).await.unwrap();
            if check(&m) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("migration {id} never reached: {what}");
    }

    /// Starts one attempt of the next queued move in the background and returns once
    /// migration `id` is copying with progress recorded.
    pub async fn start_copy_in_background(
        &self,
        id: &str,
    ) -> tokio::task::JoinHandle<
        Result<Option<strata::db::MigrationRecord>, strata::db::CatalogueError>,
    > {
        let mover = self.mover.clone();
        let worker = tokio::spawn(async move { mover.work_once().await });
        self.wait_for(id, "copy under way", |m| {
            m.status == strata::db::MigrationStatus::Copying && m.bytes_copied > 0
        })
        .await;
        worker
    }

    pub async fn finish(self) {
        self.catalogue.close().await;
        self.db.drop_db().await;
    }
}

/// An s3s-fs server of the test's own, on a free loopback port, that the test can stop
/// and start again (the stack's shared servers must stay up for other tests).
pub struct OwnS3Server {
    pub port: u16,
    pub root: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnS3Server {
    /// Starts a server with bucket `bucket`, using the stack's credentials.
    pub fn start(bucket: &str) -> OwnS3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(bucket)).unwrap();
        let mut server = OwnS3Server {
            port,
            root,
            child: None,
        };
        server.resume();
        server
    }

    /// Starts the server again on the same port and directory.
    pub fn resume(&mut self) {
        let env = stack_env();
        let binary = which("s3s-fs");
        let child = std::process::Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", &env["TIER_PUBLIC_ACCESS_KEY_ID"]])
            .args(["--secret-key", &env["TIER_PUBLIC_SECRET_ACCESS_KEY"]])
            .arg(self.root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("s3s-fs did not start on port {}", self.port);
    }

    /// Stops the server (SIGKILL): connections are refused until [`OwnS3Server::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A tier named `name` on this server's bucket `bucket`.
    pub fn tier(&self, name: &str, bucket: &str) -> TierConfig {
        let mut tier = stack_tier("public");
        tier.name = name.into();
        if let strata::config::BackendConfig::S3(s3) = &mut tier.backend {
            s3.bucket = bucket.into();
            s3.endpoint = Some(format!("http://127.0.0.1:{}", self.port));
        }
        tier
    }
}

impl Drop for OwnS3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy in front of an S3 server that flips one bit in the middle of the body of
/// every PUT it forwards (objects and parts): a network or server that damages bytes on
/// the way in. Requests go through head first, so `Expect: 100-continue` still works.
pub struct BitFlipProxy {
    pub port: u16,
    accepting: tokio::task::JoinHandle<()>,
}

impl BitFlipProxy {
    pub async fn start(upstream_port: u16) -> BitFlipProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(flip_put_bodies(client, upstream_port));
            }
        });
        BitFlipProxy { port, accepting }
    }
}

impl Drop for BitFlipProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Forwards one client connection to the server, request by request.
async fn flip_put_bodies(client: tokio::net::TcpStream, upstream_port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let answers =
        tokio::spawn(async move { tokio::io::copy(&mut from_server, &mut to_client).await });
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    'requests: loop {
        let head_len = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match from_client.read(&mut chunk).await {
                Ok(0) | Err(_) => break 'requests,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_len]).to_ascii_lowercase();
        let body_len: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let flip_at = head.starts_with("put ").then_some(body_len / 2);
        if to_server.write_all(&pending[..head_len]).await.is_err() {
            break;
        }
        pending.drain(..head_len);
        let mut forwarded = 0;
        while forwarded < body_len {
            if pending.is_empty() {
                match from_client.read(&mut chunk).await {
                    Ok(0) | Err(_) => break 'requests,
                    Ok(n) => pending.extend_from_slice(&chunk[..n]),
                }
            }
            let take = pending.len().min(body_len - forwarded);
            let mut piece: Vec<u8> = pending.drain(..take).collect();
            if let Some(at) = flip_at
                && (forwarded..forwarded + take).contains(&at)
            {
                piece[at - forwarded] ^= 0x01;
            }
            if to_server.write_all(&piece).await.is_err() {
                break 'requests;
            }
            forwarded += take;
        }
    }
    answers.abort();
}

/// Path of an installed tool: on PATH, or in cargo's bin directory.
pub fn which(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} not found; run scripts/stack.sh up"))
}

/// The stack's Kafka-protocol broker.
pub fn kafka_brokers() -> String {
    stack_env()
        .get("KAFKA_BROKERS")
        .cloned()
        .expect("KAFKA_BROKERS in the stack env file")
}

/// A name no other test uses, for topics and consumer groups.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Creates `topic` with `partitions` partitions on the stack's broker.
pub async fn create_topic(topic: &str, partitions: i32) {
    create_topic_on(&kafka_brokers(), topic, partitions).await;
}

/// Creates `topic` with `partitions` partitions on the broker at `brokers`.
pub async fn create_topic_on(brokers: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic request");
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
}

/// Path of the independent Kafka client script (kafka-python).
fn kafka_client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/kafka_client.py")
}

/// Produces messages with kafka-python, an independent protocol implementation. Each
/// spec is `{"key", "value" | "value_hex", "repeat"}` (see the script).
pub fn produce_independently(topic: &str, specs: &[serde_json::Value]) {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg(kafka_client_script())
        .args(["produce", &kafka_brokers(), topic])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 (kafka-python must be installed: scripts/test.sh does it)");
    {
        let mut stdin = io::BufWriter::new(child.stdin.take().unwrap());
        for spec in specs {
            writeln!(stdin, "{spec}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kafka-python producer failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Reads `count` messages of `topic` from the beginning with kafka-python.
pub fn consume_independently(topic: &str, count: usize) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("python3")
        .arg(kafka_client_script())
        .args(["consume", &kafka_brokers(), topic, &count.to_string(), "60"])
        .output()
        .expect("run python3");
    let messages: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        out.status.success(),
        "expected {count} messages on {topic}, got {}: {messages:?}",
        messages.len()
    );
    messages
}

/// An object row for pipeline tests: the bytes are never read.
pub async fn catalogue_object(
    catalogue: &Catalogue,
    key: &str,
    tier: &str,
) -> strata::db::ObjectRecord {
    catalogue
        .insert_object(&strata::db::NewObject {
            id: strata::db::new_id(),
            key: key.into(),
            content: strata::db::ObjectContent {
                size: 1,
                content_type: "application/octet-stream".into(),
                checksum: "blake3:00".into(),
                tier: tier.into(),
                location: format!("{key}.bin"),
            },
        })
        .await
        .expect("insert object")
}

/// `n` object rows keyed `<prefix><i>` on `tier`, inserted a few hundred at a time.
pub async fn catalogue_objects(
    catalogue: &Catalogue,
    prefix: &str,
    n: usize,
    tier: &str,
) -> Vec<strata::db::ObjectRecord> {
    let mut objects = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let inserts = chunk.iter().map(|i| async move {
            catalogue_object(catalogue, &format!("{prefix}{i}"), tier).await
        });
        objects.extend(futures_util::future::join_all(inserts).await);
    }
    objects
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A free TCP port on loopback (bound and released; good enough for a test's server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP request with curl; returns the status code and the body.
pub fn http(method: &str, url: &str, json_body: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-X", method, "-o", "-", "-w", "\n%{http_code}", url]);
    if let Some(body) = json_body {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = cmd.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl printed the status");
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// Ingests `body` under `key` over REST at the server at `base`, expecting 201; the new
/// object as the server describes it.
pub fn ingest_at(base: &str, key: &str, body: &str) -> serde_json::Value {
    let reply = curl(&[
        "-X",
        "POST",
        "--data-binary",
        body,
        &format!("{base}/api/v1/objects?key={key}"),
    ]);
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// A `strata serve` process on the local stack with its own topic, consumer group and
/// working directory, logging to `strata.log` there; killed when dropped (its log
/// printed when the test failed).
pub struct StrataServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The working directory (its `data/` holds embedded-mode state).
    pub workdir: tempfile::TempDir,
}

impl StrataServer {
    /// Starts a server on the stack with catalogue `db`; `extra` variables override the
    /// stack's and the test defaults.
    pub async fn start(db: &TestDb, extra: &[(&str, &str)]) -> StrataServer {
        let topic = unique_name("access");
        create_topic(&topic, 3).await;
        create_topic(&format!("{topic}.dlq"), 1).await;
        let port = free_port();
        let workdir = tempfile::tempdir().unwrap();
        let mut env: HashMap<String, String> = stack_env();
        for (k, v) in [
            ("DATABASE_URL", db.url.clone()),
            (
                "DATA_DIR",
                workdir.path().join("data").display().to_string(),
            ),
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("KAFKA_BROKERS", kafka_brokers()),
            ("KAFKA_ACCESS_TOPIC", topic),
            ("KAFKA_GROUP_ID", unique_name("group")),
            ("EVENTS_FLUSH_MS", "50".into()),
            ("MOVER_POLL_MS", "50".into()),
            // The shipped default model, as a fresh deployment has it.
            (
                "MODELS_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/models").into(),
            ),
            ("RUST_LOG", "strata=info".into()),
        ] {
            env.insert(k.into(), v);
        }
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let log = std::fs::File::create(workdir.path().join("strata.log")).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("serve")
            .current_dir(workdir.path())
            .env_clear()
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start strata serve");
        let base = format!("http://127.0.0.1:{port}");
        eventually(
            std::time::Duration::from_secs(30),
            "the API to answer",
            || async { http("GET", &format!("{base}/healthz"), None).0 == 200 },
        )
        .await;
        StrataServer {
            child,
            base,
            workdir,
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Ingests `body` under `key` over REST; the new object's id.
    pub fn ingest(&self, key: &str, body: &str) -> String {
        ingest_at(&self.base, key, body)["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The value of one Prometheus sample, `name` including its labels.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, page) = http("GET", &self.url("/metrics"), None);
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("strata.log")).unwrap_or_default()
    }

    /// How the server exited, waiting at most `timeout`; `None` while it still runs.
    pub fn exit_within(
        &mut self,
        timeout: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The server's peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server process is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/PID/status")
            * 1024
    }
}

impl Drop for StrataServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("strata serve's log:\n{}", self.log());
        }
    }
}

/// An HTTP answer as curl saw it.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts an error answer: `status`, and the JSON error body with `code`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
}

/// Runs curl with `args` (method, headers, data, URL …) and returns what it received.
pub fn curl(args: &[&str]) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = std::process::Command::new("curl")
        .args(["-s", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let head = std::fs::read_to_string(&head).unwrap_or_default();
    // With redirects or 100-continue there are several header blocks; the last counts.
    let last_block = head
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    let headers = last_block
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// `strata serve` with no configuration at all, as a newcomer starts it: the environment
/// cleared but for `PATH`, `HOME` and a free `LISTEN_ADDR` (8080 may be taken on a test
/// machine), in a working directory of its own that holds a copy of the repository's
/// `models/`, so that `./data` is fresh and the shipped model is found. Killed when
/// dropped; [`EmbeddedServer::stop`] shuts it down gracefully.
pub struct EmbeddedServer {
    child: Option<std::process::Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The working directory; its `data/` holds the catalogue and the tiers.
    pub workdir: tempfile::TempDir,
    port: u16,
}

impl EmbeddedServer {
    /// Starts a server in a fresh working directory.
    pub async fn start() -> EmbeddedServer {
        let workdir = tempfile::tempdir().unwrap();
        let models = workdir.path().join("models");
        std::fs::create_dir(&models).unwrap();
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/models")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), models.join(entry.file_name())).unwrap();
        }
        let port = free_port();
        let mut server = EmbeddedServer {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            workdir,
            port,
        };
        server.restart().await;
        server
    }

    /// Starts the server (again) in the same working directory and on the same port;
    /// its log is appended to `strata.log` there.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.arg("serve")
            .current_dir(self.workdir.path())
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", self.port))
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for var in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        self.child = Some(cmd.spawn().expect("start strata serve"));
        let health = format!("{}/healthz", self.base);
        eventually(
            std::time::Duration::from_secs(60),
            "the embedded server to answer",
            || async { http("GET", &health, None).0 == 200 },
        )
        .await;
    }

    /// Stops the server with SIGTERM and waits for it to exit; asserts a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        let signal = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(signal.success(), "kill -TERM failed");
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "strata serve exited with {status}; log:\n{}",
            self.log()
        );
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Where the server's log goes.
    pub fn log_path(&self) -> PathBuf {
        self.workdir.path().join("strata.log")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The hour rows of an object themselves, straight from the table (minute rows not
/// rolled up yet are not among them): `(bucket_start, hits)`.
pub async fn stored_hour_rows(conn: &mut AnyConnection, id: &str) -> Vec<(i64, i64)> {
    sqlx::query_as(
        "SELECT bucket_start, hits FROM access_buckets \
         WHERE object_id = $1 AND resolution_ms = $2 ORDER BY bucket_start",
    )
    .bind(id)
    .bind(strata::db::HOUR_MS)
    .fetch_all(conn)
    .await
    .unwrap()
}

/// Writes hour buckets of `object_id` (hour since the epoch, hits) as the event consumer
/// would have counted them.
pub async fn inject_hours(db: &TestDb, object_id: &str, hours: impl Iterator<Item = (i64, i64)>) {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    for (hour, hits) in hours {
        sqlx::query(
            "INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(object_id)
        .bind(strata::db::HOUR_MS)
        .bind(hour * strata::db::HOUR_MS)
        .bind(hits)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    conn.close().await.unwrap();
}
