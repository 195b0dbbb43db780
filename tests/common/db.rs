//! Catalogues for tests: fresh PostgreSQL databases and SQLite files, object rows and
//! hour buckets written straight in.

use sqlx::{AnyConnection, Connection, Executor};
use strata::db::Catalogue;

use super::*;

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

/// An object row for pipeline tests: the bytes are never read.
pub async fn catalogue_object(
    catalogue: &Catalogue,
    key: &str,
    tier: &str,
) -> strata::db::ObjectRecord {
    catalogue
        .insert_object(&strata::db::NewObject {
            id: strata::db::new_id(),
            bucket: "strata".into(),
            key: key.into(),
            content: strata::db::ObjectContent {
                size: 1,
                content_type: "application/octet-stream".into(),
                checksum: "blake3:00".into(),
                md5: None,
                tier: tier.into(),
                location: format!("{key}.bin"),
                metadata: Default::default(),
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
