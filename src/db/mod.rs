//! The catalogue: which objects exist, where their bytes are, how often they are read,
//! and which tier moves are queued or done.
//!
//! One implementation serves PostgreSQL (production) and SQLite (embedded default). It
//! goes through sqlx's `Any` driver with SQL both backends understand, so there is no
//! second copy of any query to drift apart. Values cross the boundary as `i64`, `f64`
//! and `String` only: timestamps are epoch milliseconds (UTC), ids are text UUIDs.
//!
//! SQLite allows one writer at a time and fails, rather than waits, when a read
//! transaction tries to upgrade to a write under contention. Writes therefore go through
//! a pool of exactly one connection there, and reads through a separate pool; on
//! PostgreSQL both are the same pool.

mod access;
mod forecast;
mod models;
mod moves;
mod objects;
mod queue;
mod retention;
mod rules;
mod uploads;

pub use access::{
    AccessCount, AccessSummary, ConsumerOffset, DAY_MS, HOUR_MS, LocatedAccess, MINUTE_MS,
    PartitionAccesses, RecordedAccess,
};
pub use forecast::{HourHits, StoredPrediction, StoredValue, TrackedObject};
pub use models::ModelRecord;
pub use moves::{MoveActivity, MoveCause, MoveFilter, MoveReason, MoveRecord, MoveStatus, NewMove};
pub use objects::{
    KeyStart, Metadata, NewObject, ObjectContent, ObjectFilter, ObjectRecord, ObjectView, TierUsage,
};
pub use queue::{CopyPlan, StartRefusal};
pub use retention::{Removed, Retention, TableSize};
pub use rules::{BatchProgress, BatchRecord, ExpiredObject, RuleRecord};
pub use uploads::{PartRecord, TierUpload, UploadRecord};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};
use tokio::sync::Notify;

/// A failed catalogue operation.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// No row with this id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked up (`object`, `migration`).
        kind: &'static str,
        /// The id that was not found.
        id: String,
    },
    /// The write would break a uniqueness rule (same key, second active move, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row changed since it was read; the caller should re-read and decide again.
    #[error("{kind} {id} changed concurrently (expected {expected})")]
    Stale {
        /// What changed (`object`, `migration`).
        kind: &'static str,
        /// Its id.
        id: String,
        /// The state the caller expected.
        expected: String,
    },
    /// A value read from the database is not one this version understands.
    #[error("corrupt catalogue row: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migrations failed at start-up.
    #[error("cannot apply schema migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The SQLite file's directory cannot be created.
    #[error("cannot create database directory {path}: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl CatalogueError {
    /// Maps a unique-constraint violation to [`CatalogueError::Conflict`] with `what`.
    fn conflict_or(err: sqlx::Error, what: impl FnOnce() -> String) -> CatalogueError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                CatalogueError::Conflict(what())
            }
            _ => CatalogueError::Database(err),
        }
    }
}

/// Result of catalogue operations.
pub type Result<T, E = CatalogueError> = std::result::Result<T, E>;

/// Which database engine is behind the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// How [`Catalogue::row_lock`] locks the rows a statement reads.
#[derive(Debug, Clone, Copy)]
enum RowLock {
    /// Others may share it, nobody may take it exclusively.
    Share,
    /// Nobody else may lock it.
    Exclusive,
    /// Like `Exclusive`, but rows another transaction has locked are passed over.
    ExclusiveSkippingLocked,
}

/// Many rows passed to one statement as parameters `$1…`, read back by `source` (SQL for
/// a `FROM` clause) as columns `c0`, `c1`, …: the consumer's batches write up to every
/// active object at once, and statements of a few hundred bound rows each made the round
/// trips and the binding the bottleneck. PostgreSQL gets one array literal per column,
/// unnested (cheaper there than extracting each field from JSON); SQLite one JSON
/// document.
struct BulkRows {
    /// The row source; the statement's own parameters, if any, follow its.
    source: String,
    params: Vec<String>,
}

impl BulkRows {
    /// Binds the rows' parameters to a statement that reads from [`BulkRows::source`].
    fn bind<'q>(
        self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for param in self.params {
            query = query.bind(param);
        }
        query
    }
}

/// Appends `value` to a PostgreSQL array literal: numbers as they are, strings quoted
/// with `"` and `\` escaped, JSON null as NULL.
fn push_array_element(literal: &mut String, value: &serde_json::Value) {
    match value {
        serde_json::Value::String(text) => {
            literal.push('"');
            for c in text.chars() {
                if c == '"' || c == '\\' {
                    literal.push('\\');
                }
                literal.push(c);
            }
            literal.push('"');
        }
        serde_json::Value::Null => literal.push_str("NULL"),
        other => literal.push_str(&other.to_string()),
    }
}

/// Handle to the catalogue database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalogue {
    reads: AnyPool,
    writes: AnyPool,
    backend: Backend,
    /// Signalled when this process queues a move (see [`Catalogue::move_queued`]).
    queued: Arc<Notify>,
}

/// Tables whose rows the event consumer updates in bulk (minute buckets on every flush,
/// hour buckets and object totals on every roll-up), with the PostgreSQL fill factor
/// (percent of each page filled by inserts) that leaves room for the updated row
/// versions: half a page, one new version of every row on it.
pub const UPDATE_HEAVY_TABLES: [(&str, u32); 2] = [("objects", 50), ("access_buckets", 50)];

/// How long a PostgreSQL connection may have been idle and still be handed out untested:
/// longer, and the server may have closed it (a restart, an idle timeout on the way).
const UNTESTED_IDLE: Duration = Duration::from_secs(1);

static SCHEMA: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Catalogue {
    /// Connects to `database_url` (`postgres://…` or `sqlite://…`) and applies the
    /// embedded schema migrations. For SQLite the file and its directory are created.
    pub async fn connect(database_url: &str) -> Result<Catalogue> {
        sqlx::any::install_default_drivers();
        let backend = if database_url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyConnectOptions::from_str(database_url)?;
        let catalogue = match backend {
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(32)
                    .acquire_timeout(Duration::from_secs(10))
                    // sqlx pings every connection it takes back; pinging it again when it
                    // is handed out moments later only adds a round trip to each query.
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= UNTESTED_IDLE {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await?;
                Catalogue {
                    reads: pool.clone(),
                    writes: pool,
                    backend,
                    queued: Arc::default(),
                }
            }
            Backend::Sqlite => {
                create_sqlite_dir(database_url)?;
                let sqlite_pool = |size: u32| {
                    AnyPoolOptions::new()
                        .max_connections(size)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // WAL lets readers proceed while the writer commits;
                                // busy_timeout makes the rare lock wait instead of fail.
                                conn.execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                     PRAGMA busy_timeout = 10000;",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                };
                let writes = sqlite_pool(1).connect_with(options.clone()).await?;
                let reads = sqlite_pool(8).connect_with(options).await?;
                Catalogue {
                    reads,
                    writes,
                    backend,
                    queued: Arc::default(),
                }
            }
        };
        SCHEMA.run(&catalogue.writes).await?;
        if backend == Backend::Postgres {
            catalogue.leave_room_for_updates().await?;
            catalogue.index_keys_in_byte_order().await?;
        }
        Ok(catalogue)
    }

    /// Sets the PostgreSQL fill factor of the tables the event consumer updates in place
    /// ([`UPDATE_HEAVY_TABLES`]), unless it is set already. Every flush rewrites the
    /// access counts of up to every active object; with full pages each such update puts
    /// the new row version on another page and adds an entry to every index, and the
    /// batch write took twice as long. With room left on each page the new version stays
    /// on its page and the indexes are left alone (a heap-only update). A storage
    /// parameter is PostgreSQL's own, so it is set here rather than in the migrations
    /// both backends share; it applies to pages written from then on.
    async fn leave_room_for_updates(&self) -> Result<()> {
        for (table, fill_factor) in UPDATE_HEAVY_TABLES {
            let option = format!("fillfactor={fill_factor}");
            let set: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_class \
                 WHERE oid = CAST(CAST($1 AS TEXT) AS regclass) \
                 AND CAST($2 AS TEXT) = ANY(COALESCE(reloptions, '{}'))",
            )
            .bind(table)
            .bind(&option)
            .fetch_one(&self.writes)
            .await?;
            if set == 0 {
                sqlx::query(&format!("ALTER TABLE {table} SET ({option})"))
                    .execute(&self.writes)
                    .await?;
            }
        }
        Ok(())
    }

    /// Indexes each bucket's keys in byte order, the order S3 lists them in and
    /// [`Catalogue::list_bucket`] reads them in. The shared schema cannot name a
    /// collation (SQLite's default is byte order already; PostgreSQL's is the
    /// database's language order), so PostgreSQL gets its index here.
    async fn index_keys_in_byte_order(&self) -> Result<()> {
        sqlx::query(
            "CREATE INDEX IF NOT EXISTS objects_by_bucket_key_bytes \
             ON objects (bucket, object_key COLLATE \"C\")",
        )
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    /// The clause that locks the rows a `SELECT` reads until the transaction ends. SQLite
    /// has none and needs none: its one writer connection runs one transaction at a time.
    fn row_lock(&self, lock: RowLock) -> &'static str {
        match (self.backend, lock) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, RowLock::Share) => "FOR SHARE",
            (Backend::Postgres, RowLock::Exclusive) => "FOR UPDATE",
            (Backend::Postgres, RowLock::ExclusiveSkippingLocked) => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// `rows`, one value per column each, as a row source for one statement with columns
    /// `c0`, `c1`, … of the given SQL types (see [`BulkRows`]).
    fn bulk_rows<const N: usize>(
        &self,
        types: [&str; N],
        rows: impl Iterator<Item = [serde_json::Value; N]>,
    ) -> BulkRows {
        match self.backend {
            Backend::Postgres => {
                let mut columns = vec![String::from("{"); N];
                for (n, row) in rows.enumerate() {
                    for (column, value) in columns.iter_mut().zip(&row) {
                        if n > 0 {
                            column.push(',');
                        }
                        push_array_element(column, value);
                    }
                }
                let casts: Vec<String> = types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| format!("CAST(${} AS {ty}[])", i + 1))
                    .collect();
                let names: Vec<String> = (0..N).map(|i| format!("c{i}")).collect();
                BulkRows {
                    source: format!(
                        "(SELECT * FROM unnest({}) AS u({}))",
                        casts.join(", "),
                        names.join(", ")
                    ),
                    params: columns.into_iter().map(|c| c + "}").collect(),
                }
            }
            Backend::Sqlite => {
                let columns: Vec<String> = types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| format!("CAST(json_extract(value, '$[{i}]') AS {ty}) AS c{i}"))
                    .collect();
                BulkRows {
                    source: format!("(SELECT {} FROM json_each($1))", columns.join(", ")),
                    params: vec![
                        serde_json::Value::Array(
                            rows.map(|row| serde_json::Value::Array(row.into()))
                                .collect(),
                        )
                        .to_string(),
                    ],
                }
            }
        }
    }

    /// The database engine in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reads).await?;
        Ok(())
    }

    /// Closes all connections, waiting for those in use to be returned.
    pub async fn close(&self) {
        self.writes.close().await;
        self.reads.close().await;
    }
}

/// Creates the directory a `sqlite://PATH[?…]` URL's file lives in.
fn create_sqlite_dir(database_url: &str) -> Result<()> {
    let path = database_url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| CatalogueError::Directory {
                path: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}
/// A new time-ordered id (UUIDv7), so that ordering by id is ordering by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Upper bound on page sizes, whatever the caller asks for.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// One page of a list, with the cursor for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says that more exist.
    fn from_rows(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> &str) -> Page<T> {
        let limit = limit as usize;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        Page { items: rows, next }
    }
}

/// Clamps a requested page size into `1..=MAX_PAGE_SIZE`.
fn page_limit(limit: i64) -> i64 {
    limit.clamp(1, MAX_PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keeps_limit_rows_and_points_after_the_last() {
        let page = Page::from_rows(vec!["a", "b", "c"], 2, |s| s);
        assert_eq!(page.items, ["a", "b"]);
        assert_eq!(page.next.as_deref(), Some("b"));
        let last = Page::from_rows(vec!["a", "b"], 2, |s| s);
        assert_eq!(last.next, None);
    }

    #[test]
    fn sqlite_dir_is_taken_from_url() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/a/b/strata.db?mode=rwc", dir.path().display());
        create_sqlite_dir(&url).unwrap();
        assert!(dir.path().join("a/b").is_dir());
    }
}
