//! Object rows: identity, content description and current tier.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::access::{AccessSummary, DAY_MS, HOUR_MS, MINUTE_MS, ROLLUP_MARK, hour_buckets_sql};
use super::forecast::StoredPrediction;
use super::{Backend, Catalogue, CatalogueError, Page, Result, RowLock, page_limit};
use crate::timestamp::now_ms;

const OBJECT_COLUMNS: &str = "id, bucket, object_key, size, content_type, checksum, md5, \
     tier, location, version, created_at, updated_at, modified_at, metadata";

/// User metadata of an object (S3's `x-amz-meta-*`), by name.
pub type Metadata = std::collections::BTreeMap<String, String>;

/// An object as the catalogue knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// Object id (UUIDv7).
    pub id: String,
    /// The bucket the S3 endpoint shows it in.
    pub bucket: String,
    /// User-facing name, unique in its bucket.
    pub key: String,
    /// Size in bytes.
    pub size: i64,
    /// MIME type given at ingest.
    pub content_type: String,
    /// Checksum of the content (`blake3:<hex>`).
    pub checksum: String,
    /// MD5 of the content in hex, when its writer declared one and the write checked it.
    pub md5: Option<String>,
    /// Tier holding the bytes.
    pub tier: String,
    /// Key of the bytes inside the tier's backend.
    pub location: String,
    /// Content version; bumped by every rewrite.
    pub version: i64,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Last change of content or tier, epoch ms.
    pub updated_at: i64,
    /// Last write of the content, epoch ms.
    pub modified_at: i64,
    /// User metadata given at ingest.
    pub metadata: Metadata,
}

impl ObjectRecord {
    fn from_row(row: &AnyRow) -> Result<ObjectRecord, sqlx::Error> {
        Ok(ObjectRecord {
            id: row.try_get("id")?,
            bucket: row.try_get("bucket")?,
            key: row.try_get("object_key")?,
            size: row.try_get("size")?,
            content_type: row.try_get("content_type")?,
            checksum: row.try_get("checksum")?,
            md5: row.try_get("md5")?,
            tier: row.try_get("tier")?,
            location: row.try_get("location")?,
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            modified_at: row.try_get("modified_at")?,
            metadata: metadata_from_json(&row.try_get::<String, _>("metadata")?)?,
        })
    }
}

pub(super) fn metadata_from_json(json: &str) -> Result<Metadata, sqlx::Error> {
    serde_json::from_str(json).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(super) fn metadata_json(metadata: &Metadata) -> String {
    serde_json::Value::from_iter(metadata.iter().map(|(k, v)| (k.as_str(), v.as_str()))).to_string()
}

/// An object with its access counts, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectView {
    /// The catalogue row.
    pub object: ObjectRecord,
    /// Its access counts as of the time asked for.
    pub access: AccessSummary,
    /// The forecaster's latest prediction, if it made one.
    pub prediction: Option<StoredPrediction>,
    /// What `strata check` found wrong with this version's bytes and could not repair.
    pub damage: Option<String>,
}

/// The object columns plus the windowed access sums, total and last access of
/// [`AccessSummary`]; `$1..$3` are the window starts (minute, hour, day), so the caller's
/// own parameters start at `$4`. Scalar subqueries on the bucket primary key keep this one
/// round trip per page. Totals and last access times are the object row's, which holds
/// the minutes before the roll-up mark, and the minute buckets from the mark on.
fn object_view_select() -> String {
    let minute_rows = |condition: &str| {
        format!(
            "FROM access_buckets b WHERE b.object_id = objects.id \
             AND b.resolution_ms = {MINUTE_MS} AND b.bucket_start {condition}"
        )
    };
    // PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot decode.
    let minutes = |since: &str| {
        format!(
            "CAST(COALESCE((SELECT SUM(hits) {}), 0) AS BIGINT)",
            minute_rows(&format!("> {since}"))
        )
    };
    let hours = |since: &str| {
        format!(
            "CAST(COALESCE((SELECT SUM(hits) FROM ({}) AS h), 0) AS BIGINT)",
            hour_buckets_sql(&format!(
                "object_id = objects.id AND bucket_start > {since}"
            ))
        )
    };
    let unrolled = minute_rows(&format!(">= {ROLLUP_MARK}"));
    format!(
        "SELECT {OBJECT_COLUMNS}, {} AS last_minute, {} AS last_hour, {} AS last_day, \
         CAST(objects.access_total + COALESCE((SELECT SUM(hits) {unrolled}), 0) AS BIGINT) \
           AS access_total, \
         {} AS last_access_at, \
         p.predicted_accesses, p.horizon_hours, p.predicted_tier, p.model_version, p.predicted_at, \
         p.placement_value, p.variance, p.day_rate, \
         dmg.problem AS damage \
         FROM objects LEFT JOIN predictions p ON p.object_id = objects.id \
         LEFT JOIN object_damage dmg ON dmg.object_id = objects.id AND dmg.object_version = objects.version",
        minutes("$1"),
        minutes("$2"),
        hours("$3"),
        last_access_sql(),
    )
}

/// An object's last access in SQL: the latest in its minute buckets from the roll-up
/// mark on, else the object row's. Every access in a minute bucket from the mark on is
/// later than any in the object row: those are of minutes before the mark (rolled up, or
/// late ones added at once).
fn last_access_sql() -> String {
    format!(
        "COALESCE((SELECT MAX(b.last_at) FROM access_buckets b WHERE b.object_id = objects.id \
         AND b.resolution_ms = {MINUTE_MS} AND b.bucket_start >= {ROLLUP_MARK}), \
         objects.last_access_at)"
    )
}

/// Binds the window starts `$1..$3` of [`object_view_select`].
fn bind_windows<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    now_ms: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(now_ms - MINUTE_MS)
        .bind(now_ms - HOUR_MS)
        .bind(now_ms - DAY_MS)
}

impl ObjectView {
    fn from_row(row: &AnyRow) -> Result<ObjectView, sqlx::Error> {
        let object = ObjectRecord::from_row(row)?;
        Ok(ObjectView {
            access: AccessSummary {
                last_minute: row.try_get("last_minute")?,
                last_hour: row.try_get("last_hour")?,
                last_day: row.try_get("last_day")?,
                total: row.try_get("access_total")?,
                last_access_at: row.try_get("last_access_at")?,
            },
            prediction: StoredPrediction::from_row(row)?,
            damage: row.try_get("damage")?,
            object,
        })
    }
}

/// Content that has been written to a tier and is ready to be catalogued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectContent {
    /// Size in bytes.
    pub size: i64,
    /// MIME type.
    pub content_type: String,
    /// Checksum of the bytes written.
    pub checksum: String,
    /// Their MD5 in hex, when one was declared and the write checked it.
    pub md5: Option<String>,
    /// Tier the bytes were written to.
    pub tier: String,
    /// Key of the bytes inside that tier.
    pub location: String,
    /// User metadata.
    pub metadata: Metadata,
}

/// A new object whose bytes are already stored (see [`Catalogue::insert_object`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewObject {
    /// Id chosen before the bytes were written (see [`super::new_id`]).
    pub id: String,
    /// Its bucket.
    pub bucket: String,
    /// User-facing name, unique in the bucket.
    pub key: String,
    /// The stored content.
    pub content: ObjectContent,
}

/// Where [`Catalogue::list_bucket`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStart<'a> {
    /// With the first key after this one.
    After(&'a str),
    /// With this key, or the first after it.
    From(&'a str),
    /// With the first key that does not start with this.
    Past(&'a str),
}

/// The first string after every string that starts with `prefix`, in code point order
/// (which is UTF-8 byte order); `None` when there is none (an empty prefix).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Filters for [`Catalogue::list_objects`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectFilter {
    /// Only objects on this tier.
    pub tier: Option<String>,
    /// Only keys starting with this.
    pub key_prefix: Option<String>,
}

impl Catalogue {
    /// Records a new object at version 1. Fails with [`CatalogueError::Conflict`] when
    /// the key or id is taken. The caller writes the bytes first: a catalogue row must
    /// never point at bytes that do not exist.
    pub async fn insert_object(&self, new: &NewObject) -> Result<ObjectRecord> {
        let insert = format!(
            "INSERT INTO objects (id, bucket, object_key, size, content_type, checksum, tier, \
             location, metadata, version, created_at, updated_at, modified_at, md5) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10, $10, $11) \
             RETURNING {OBJECT_COLUMNS}"
        );
        let c = &new.content;
        let bind = |sql| {
            sqlx::query(sql)
                .bind(&new.id)
                .bind(&new.bucket)
                .bind(&new.key)
                .bind(c.size)
                .bind(&c.content_type)
                .bind(&c.checksum)
                .bind(&c.tier)
                .bind(&c.location)
                .bind(metadata_json(&c.metadata))
                .bind(now_ms())
                .bind(c.md5.as_deref())
        };
        let conflict = |e| {
            CatalogueError::conflict_or(e, || {
                format!(
                    "an object with key {:?} exists in bucket {:?}",
                    new.key, new.bucket
                )
            })
        };
        let row = match self.backend {
            // One statement, so one round trip: the row and its tier count commit together.
            Backend::Postgres => {
                let sql = format!(
                    "WITH inserted AS ({insert}), counted AS (INSERT INTO tier_counts \
                     (tier, objects, bytes) SELECT tier, 1, size FROM inserted) \
                     SELECT {OBJECT_COLUMNS} FROM inserted"
                );
                bind(&sql).fetch_one(&self.writes).await.map_err(conflict)?
            }
            Backend::Sqlite => {
                let mut tx = self.writes.begin().await?;
                let row = bind(&insert).fetch_one(&mut *tx).await.map_err(conflict)?;
                count_on_tier(&mut tx, &c.tier, 1, c.size).await?;
                tx.commit().await?;
                row
            }
        };
        Ok(ObjectRecord::from_row(&row)?)
    }

    /// The object with this id.
    pub async fn get_object(&self, id: &str) -> Result<ObjectRecord> {
        let sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reads)
            .await?
            .ok_or_else(|| CatalogueError::NotFound {
                kind: "object",
                id: id.into(),
            })?;
        Ok(ObjectRecord::from_row(&row)?)
    }

    /// The object with this id and its access counts as of `now_ms`, in one query.
    pub async fn get_object_view(&self, id: &str, now_ms: i64) -> Result<ObjectView> {
        let sql = format!("{} WHERE id = $4", object_view_select());
        let row = bind_windows(sqlx::query(&sql), now_ms)
            .bind(id)
            .fetch_optional(&self.reads)
            .await?
            .ok_or_else(|| CatalogueError::NotFound {
                kind: "object",
                id: id.into(),
            })?;
        Ok(ObjectView::from_row(&row)?)
    }

    /// The object with this key in `bucket`, if any. The key is compared in byte order,
    /// as the index listings read is: compared by PostgreSQL's default collation, it
    /// could use that index on the bucket alone (the planner's choice on a table not yet
    /// analysed) and read every key of the bucket.
    pub async fn find_object_by_key(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = $1 AND {} = $2",
            self.key_in_byte_order()
        );
        let row = sqlx::query(&sql)
            .bind(bucket)
            .bind(key)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(ObjectRecord::from_row).transpose()?)
    }

    /// The objects of `bucket` whose keys start with `prefix`, in the byte order of their
    /// keys (S3's listing order) from `start` on, at most `limit`. The prefix bounds the
    /// key range read, so a page costs the rows it returns, whatever else the bucket holds.
    pub async fn list_bucket(
        &self,
        bucket: &str,
        prefix: &str,
        start: KeyStart<'_>,
        limit: i64,
    ) -> Result<Vec<ObjectRecord>> {
        let key = self.key_in_byte_order();
        let past;
        let start = match start {
            KeyStart::Past(common) => match prefix_end(common) {
                Some(end) => {
                    past = end;
                    KeyStart::From(&past)
                }
                None => return Ok(Vec::new()),
            },
            other => other,
        };
        let (op, from) = match start {
            KeyStart::After(key) if key >= prefix => (">", key),
            KeyStart::From(key) if key >= prefix => (">=", key),
            _ => (">=", prefix),
        };
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = $1 AND {key} {op} $2 \
             AND (CAST($3 AS TEXT) IS NULL OR {key} < $3) ORDER BY {key} LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(bucket)
            .bind(from)
            .bind(prefix_end(prefix))
            .bind(page_limit(limit))
            .fetch_all(&self.reads)
            .await?;
        Ok(rows
            .iter()
            .map(ObjectRecord::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// The key column compared byte by byte: SQLite's default; PostgreSQL's default
    /// collation would order by language rules, so it is named.
    fn key_in_byte_order(&self) -> &'static str {
        match self.backend {
            super::Backend::Sqlite => "object_key",
            super::Backend::Postgres => "object_key COLLATE \"C\"",
        }
    }

    /// Objects in creation order with their access counts as of `now_ms`, `limit` at a
    /// time, starting after the id `after`.
    pub async fn list_objects(
        &self,
        filter: &ObjectFilter,
        limit: i64,
        after: Option<&str>,
        now_ms: i64,
    ) -> Result<Page<ObjectView>> {
        let limit = page_limit(limit);
        // substr/length instead of LIKE: SQLite's LIKE ignores ASCII case and both would
        // need wildcard escaping; this compares the prefix exactly on both backends.
        let sql = format!(
            "{} WHERE (CAST($4 AS TEXT) IS NULL OR tier = $4) \
               AND (CAST($5 AS TEXT) IS NULL OR substr(object_key, 1, length($5)) = $5) \
               AND (CAST($6 AS TEXT) IS NULL OR id > $6) \
             ORDER BY id LIMIT $7",
            object_view_select()
        );
        let rows = bind_windows(sqlx::query(&sql), now_ms)
            .bind(filter.tier.as_deref())
            .bind(filter.key_prefix.as_deref())
            .bind(after)
            .bind(limit + 1)
            .fetch_all(&self.reads)
            .await?;
        let items = rows
            .iter()
            .map(ObjectView::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, limit, |o| &o.object.id))
    }

    /// Points the object at new content (a rewrite), bumping its version. Fails with
    /// [`CatalogueError::Stale`] when the version is no longer `expected_version`.
    pub async fn replace_object_content(
        &self,
        id: &str,
        expected_version: i64,
        content: &ObjectContent,
    ) -> Result<ObjectRecord> {
        let set = "size = $3, content_type = $4, checksum = $5, tier = $6, location = $7, \
                   metadata = $9, md5 = $10, version = version + 1, updated_at = $8, \
                   modified_at = $8";
        let bind = |sql| {
            sqlx::query(sql)
                .bind(id)
                .bind(expected_version)
                .bind(content.size)
                .bind(&content.content_type)
                .bind(&content.checksum)
                .bind(&content.tier)
                .bind(&content.location)
                .bind(now_ms())
                .bind(metadata_json(&content.metadata))
                .bind(content.md5.as_deref())
        };
        let row = match self.backend {
            // One statement, so one round trip: the old tier and size read under the
            // row's lock, the row rewritten, both tier counts changed.
            Backend::Postgres => {
                let sql = format!(
                    "WITH old AS (SELECT tier AS old_tier, size AS old_size FROM objects \
                     WHERE id = $1 AND version = $2 FOR UPDATE), \
                     updated AS (UPDATE objects SET {set} FROM old \
                     WHERE id = $1 AND version = $2 \
                     RETURNING {OBJECT_COLUMNS}, old_tier, old_size), \
                     counted AS (INSERT INTO tier_counts (tier, objects, bytes) \
                     SELECT old_tier, -1, -old_size FROM updated \
                     UNION ALL SELECT tier, 1, size FROM updated) \
                     SELECT {OBJECT_COLUMNS} FROM updated"
                );
                bind(&sql).fetch_optional(&self.writes).await?
            }
            Backend::Sqlite => {
                let sql = format!(
                    "UPDATE objects SET {set} WHERE id = $1 AND version = $2 \
                     RETURNING {OBJECT_COLUMNS}"
                );
                let mut tx = self.writes.begin().await?;
                let Some((old_tier, old_size)) =
                    self.lock_version(&mut tx, id, expected_version).await?
                else {
                    return self.updated_or_stale(id, expected_version, None).await;
                };
                let row = bind(&sql).fetch_one(&mut *tx).await?;
                count_on_tier(&mut tx, &old_tier, -1, -old_size).await?;
                count_on_tier(&mut tx, &content.tier, 1, content.size).await?;
                tx.commit().await?;
                Some(row)
            }
        };
        self.updated_or_stale(id, expected_version, row).await
    }

    /// Moves the object's catalogue entry to another tier and location, keeping its
    /// content and version. Fails with [`CatalogueError::Stale`] when the content
    /// changed (version differs from `expected_version`) since the copy was taken.
    pub async fn switch_object_tier(
        &self,
        id: &str,
        expected_version: i64,
        tier: &str,
        location: &str,
    ) -> Result<ObjectRecord> {
        let sql = format!(
            "UPDATE objects SET tier = $3, location = $4, updated_at = $5 \
             WHERE id = $1 AND version = $2 RETURNING {OBJECT_COLUMNS}"
        );
        let mut tx = self.writes.begin().await?;
        let Some((old_tier, size)) = self.lock_version(&mut tx, id, expected_version).await? else {
            return self.updated_or_stale(id, expected_version, None).await;
        };
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(expected_version)
            .bind(tier)
            .bind(location)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
        count_on_tier(&mut tx, &old_tier, -1, -size).await?;
        count_on_tier(&mut tx, tier, 1, size).await?;
        tx.commit().await?;
        self.updated_or_stale(id, expected_version, Some(row)).await
    }

    /// The tier and size of the object at `expected_version`, locked until `tx` ends so
    /// that its counts move with it; `None` when it is not at that version.
    async fn lock_version(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        expected_version: i64,
    ) -> Result<Option<(String, i64)>> {
        Ok(sqlx::query_as(&format!(
            "SELECT tier, size FROM objects WHERE id = $1 AND version = $2 {}",
            self.row_lock(RowLock::Exclusive)
        ))
        .bind(id)
        .bind(expected_version)
        .fetch_optional(&mut **tx)
        .await?)
    }

    /// Turns the result of a version-guarded update into the new record, `Stale` when
    /// the row exists at another version, or `NotFound`.
    async fn updated_or_stale(
        &self,
        id: &str,
        expected_version: i64,
        row: Option<AnyRow>,
    ) -> Result<ObjectRecord> {
        match row {
            Some(row) => Ok(ObjectRecord::from_row(&row)?),
            None => {
                self.get_object(id).await?;
                Err(CatalogueError::Stale {
                    kind: "object",
                    id: id.into(),
                    expected: format!("version {expected_version}"),
                })
            }
        }
    }

    /// Removes the object and its access history; returns the removed row so the caller
    /// can delete its bytes. Migration history is kept.
    pub async fn delete_object(&self, id: &str) -> Result<ObjectRecord> {
        let mut tx = self.writes.begin().await?;
        let removed =
            self.remove_object(&mut tx, id)
                .await?
                .ok_or_else(|| CatalogueError::NotFound {
                    kind: "object",
                    id: id.into(),
                })?;
        tx.commit().await?;
        Ok(removed)
    }

    /// [`Catalogue::delete_object`] within `tx`; `None` when there is no such object.
    pub(super) async fn remove_object(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> Result<Option<ObjectRecord>> {
        // A batch of access counts checks that each object exists without locking it;
        // waiting for the batches in flight (they hold the roll-up mark shared) keeps one
        // that saw this object from adding buckets after they are deleted.
        self.rollup_mark(tx, RowLock::Exclusive).await?;
        let sql = format!("DELETE FROM objects WHERE id = $1 RETURNING {OBJECT_COLUMNS}");
        let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&mut **tx).await? else {
            return Ok(None);
        };
        let removed = ObjectRecord::from_row(&row)?;
        count_on_tier(tx, &removed.tier, -1, -removed.size).await?;
        for table in ["access_buckets", "object_damage"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE object_id = $1"))
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(Some(removed))
    }

    /// Objects in id order, `limit` at a time, starting after the id `after`: every row,
    /// without access counts, for a pass over the whole catalogue.
    pub async fn object_records(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ObjectRecord>> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS} FROM objects \
             WHERE (CAST($1 AS TEXT) IS NULL OR id > $1) ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reads)
            .await?;
        Ok(rows
            .iter()
            .map(ObjectRecord::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Objects whose key starts with `prefix` (every object for `None`) in id order,
    /// `limit` at a time after the id `after`, each with when it was last accessed: what
    /// rules and bulk moves select from.
    pub async fn objects_by_prefix(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(ObjectRecord, Option<i64>)>> {
        let sql = format!(
            "SELECT {OBJECT_COLUMNS}, {} AS last_access_at FROM objects \
             WHERE (CAST($1 AS TEXT) IS NULL OR substr(object_key, 1, length($1)) = $1) \
               AND (CAST($2 AS TEXT) IS NULL OR id > $2) \
             ORDER BY id LIMIT $3",
            last_access_sql()
        );
        let rows = sqlx::query(&sql)
            .bind(prefix)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reads)
            .await?;
        rows.iter()
            .map(|row| Ok((ObjectRecord::from_row(row)?, row.try_get("last_access_at")?)))
            .collect()
    }

    /// How many objects the catalogue holds.
    pub async fn count_objects(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM objects")
            .fetch_one(&self.reads)
            .await?;
        Ok(n)
    }

    /// Records that version `version` of object `id` is damaged, and how.
    pub async fn mark_damaged(&self, id: &str, version: i64, problem: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO object_damage (object_id, object_version, found_at, problem) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (object_id) DO UPDATE SET object_version = excluded.object_version, \
               found_at = excluded.found_at, problem = excluded.problem",
        )
        .bind(id)
        .bind(version)
        .bind(now_ms())
        .bind(problem)
        .execute(&self.writes)
        .await?;
        Ok(())
    }
}

/// Objects and bytes on one tier, and the accesses it served lately.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TierUsage {
    /// Tier name.
    pub tier: String,
    /// Objects whose bytes are on it.
    pub objects: i64,
    /// Their total size.
    pub bytes: i64,
    /// Accesses counted in the last 60 minutes while their object was on it.
    pub accesses_last_hour: i64,
    /// The same over the last 24 hours.
    pub accesses_last_day: i64,
}

impl Catalogue {
    /// Per tier that holds objects or served accesses in the last day: objects, bytes
    /// and accesses served, as of `now_ms`.
    pub async fn tier_usage(&self, now_ms: i64) -> Result<Vec<TierUsage>> {
        let rows = sqlx::query(
            "SELECT tier, CAST(SUM(objects) AS BIGINT) AS objects, \
                    CAST(SUM(bytes) AS BIGINT) AS bytes \
             FROM tier_counts GROUP BY tier HAVING SUM(objects) <> 0 ORDER BY tier",
        )
        .fetch_all(&self.reads)
        .await?;
        let mut usage = rows
            .iter()
            .map(|row| {
                Ok(TierUsage {
                    tier: row.try_get("tier")?,
                    objects: row.try_get("objects")?,
                    bytes: row.try_get("bytes")?,
                    ..TierUsage::default()
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
        // Minutes that started within the window, the current one included.
        let minute = now_ms - now_ms.rem_euclid(MINUTE_MS);
        let rows = sqlx::query(
            "SELECT tier, \
                    CAST(SUM(CASE WHEN bucket_start > $1 THEN hits ELSE 0 END) AS BIGINT) AS hour, \
                    CAST(SUM(hits) AS BIGINT) AS day \
             FROM tier_hits WHERE bucket_start > $2 GROUP BY tier",
        )
        .bind(minute - HOUR_MS)
        .bind(minute - DAY_MS)
        .fetch_all(&self.reads)
        .await?;
        for row in &rows {
            let tier: String = row.try_get("tier")?;
            let at = match usage.iter().position(|u| u.tier == tier) {
                Some(at) => at,
                None => {
                    usage.push(TierUsage {
                        tier,
                        ..TierUsage::default()
                    });
                    usage.len() - 1
                }
            };
            usage[at].accesses_last_hour = row.try_get("hour")?;
            usage[at].accesses_last_day = row.try_get("day")?;
        }
        usage.sort_by(|a, b| a.tier.cmp(&b.tier));
        Ok(usage)
    }

    /// Folds the rows of changes in `tier_counts` into one row per tier; the sums stay
    /// the same, so readers are exact whether this ran or not.
    pub async fn fold_tier_counts(&self) -> Result<()> {
        let mut tx = self.writes.begin().await?;
        if self.backend == Backend::Postgres {
            // Rows added while the fold runs are neither read nor deleted by it.
            sqlx::query("LOCK TABLE tier_counts IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let sums: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT tier, CAST(SUM(objects) AS BIGINT), CAST(SUM(bytes) AS BIGINT) \
             FROM tier_counts GROUP BY tier",
        )
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM tier_counts")
            .execute(&mut *tx)
            .await?;
        for (tier, objects, bytes) in sums.iter().filter(|(_, objects, _)| *objects != 0) {
            count_on_tier(&mut tx, tier, *objects, *bytes).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The objects on `tier` or with a move under way to it: id, tier, size and the tier
    /// the move takes it to.
    pub async fn objects_on_or_moving_to(
        &self,
        tier: &str,
    ) -> Result<Vec<(String, String, i64, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT o.id, o.tier, o.size, m.to_tier FROM objects o \
             LEFT JOIN migrations m ON m.object_id = o.id \
               AND m.status IN ('pending', 'copying', 'verifying') \
             WHERE o.tier = $1 OR m.to_tier = $1",
        )
        .bind(tier)
        .fetch_all(&self.reads)
        .await?)
    }
}

/// Records in `tx` that `tier` gained `objects` objects of `bytes` bytes in all (lost,
/// when negative); see `tier_counts` in the schema.
pub(super) async fn count_on_tier(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tier: &str,
    objects: i64,
    bytes: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO tier_counts (tier, objects, bytes) VALUES ($1, $2, $3)")
        .bind(tier)
        .bind(objects)
        .bind(bytes)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_follows_every_key_with_the_prefix() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("logs/").as_deref(), Some("logs0"));
        assert_eq!(prefix_end("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(prefix_end("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10ffff}"), None);
        let end = prefix_end("logs/").unwrap();
        for key in ["logs/", "logs/a", "logs/\u{10ffff}\u{10ffff}"] {
            assert!(key < end.as_str(), "{key:?} sorts before {end:?}");
        }
        assert!("logs0" >= end.as_str());
    }
}
