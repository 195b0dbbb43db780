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
