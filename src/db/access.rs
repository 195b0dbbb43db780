//! Access statistics: per-object hit counts in minute and hour buckets, and the Kafka
//! offsets they were counted up to.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Catalogue, Result, now_ms};

/// Length of a minute bucket.
pub const MINUTE_MS: i64 = 60_000;
/// Length of an hour bucket.
pub const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Rows per multi-row statement; keeps statements well under both backends' parameter
/// limits (SQLite: 32,766) while making one round trip do a lot of work.
const ROWS_PER_STATEMENT: usize = 500;

/// `hits` accesses of one object at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessCount {
    /// The object.
    pub object_id: String,
    /// When, epoch ms.
    pub at_ms: i64,
    /// How many accesses.
    pub hits: i64,
}

/// Position a consumer has processed a partition up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOffset {
    /// Kafka consumer group.
    pub group_id: String,
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Offset of the next message to consume.
    pub next_offset: i64,
}

/// Access counts of one object over bucket-aligned windows ending now: `last_minute` is
/// the current clock minute, `last_hour` the last 60 clock minutes, `last_day` the last
/// 24 clock hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessSummary {
    /// Hits in the current minute bucket.
    pub last_minute: i64,
    /// Hits in the last 60 minute buckets.
    pub last_hour: i64,
    /// Hits in the last 24 hour buckets.
    pub last_day: i64,
    /// Hits ever counted.
    pub total: i64,
    /// Last counted access, epoch ms.
    pub last_access_at: Option<i64>,
}

/// Start of the bucket of length `resolution_ms` that contains `at_ms`.
pub fn bucket_start(at_ms: i64, resolution_ms: i64) -> i64 {
    at_ms.div_euclid(resolution_ms) * resolution_ms
}

impl Catalogue {
    /// Adds `counts` to the minute and hour buckets and to each object's total and last
    /// access time, and stores `offsets`, all in one transaction: either every count and
    /// its offset is committed or none is.
    pub async fn record_access(
        &self,
        counts: &[AccessCount],
        offsets: &[ConsumerOffset],
    ) -> Result<()> {
        // Merge rows that hit the same bucket first: PostgreSQL refuses an upsert that
        // touches one row twice in a single statement.
        let mut buckets: BTreeMap<(&str, i64, i64), i64> = BTreeMap::new();
        let mut objects: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for c in counts.iter().filter(|c| c.hits > 0) {
            for resolution in [MINUTE_MS, HOUR_MS] {
                *buckets
                    .entry((&c.object_id, resolution, bucket_start(c.at_ms, resolution)))
                    .or_default() += c.hits;
            }
            let entry = objects.entry(&c.object_id).or_insert((0, c.at_ms));
            entry.0 += c.hits;
            entry.1 = entry.1.max(c.at_ms);
        }

        let mut tx = self.writes.begin().await?;
        let buckets: Vec<_> = buckets.into_iter().collect();
        for chunk in buckets.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits) \
                 VALUES {} ON CONFLICT (object_id, resolution_ms, bucket_start) \
                 DO UPDATE SET hits = access_buckets.hits + excluded.hits",
                values_placeholders(chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for ((object_id, resolution, start), hits) in chunk {
                query = query
                    .bind(*object_id)
                    .bind(*resolution)
                    .bind(*start)
                    .bind(*hits);
            }
            query.execute(&mut *tx).await?;
        }
        for (object_id, (hits, last)) in &objects {
            sqlx::query(
                "UPDATE objects SET access_total = access_total + $2, \
                 last_access_at = CASE WHEN last_access_at IS NULL OR last_access_at < $3 \
                                  THEN $3 ELSE last_access_at END \
                 WHERE id = $1",
            )
            .bind(*object_id)
            .bind(*hits)
            .bind(*last)
            .execute(&mut *tx)
            .await?;
        }
        let now = now_ms();
        for o in offsets {
            sqlx::query(
                "INSERT INTO consumer_offsets (group_id, topic, partition_id, next_offset, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (group_id, topic, partition_id) \
                 DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
            )
            .bind(&o.group_id)
            .bind(&o.topic)
            .bind(i64::from(o.partition))
            .bind(o.next_offset)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stored offsets of `group_id` on `topic`, by partition.
    pub async fn consumer_offsets(
        &self,
        group_id: &str,
        topic: &str,
    ) -> Result<Vec<ConsumerOffset>> {
        let rows = sqlx::query(
            "SELECT partition_id, next_offset FROM consumer_offsets \
             WHERE group_id = $1 AND topic = $2 ORDER BY partition_id",
        )
        .bind(group_id)
        .bind(topic)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                let partition: i64 = row.try_get("partition_id")?;
                Ok(ConsumerOffset {
                    group_id: group_id.into(),
                    topic: topic.into(),
                    partition: i32::try_from(partition).map_err(|_| {
                        super::CatalogueError::Corrupt(format!("partition id {partition}"))
                    })?,
                    next_offset: row.try_get("next_offset")?,
                })
            })
            .collect()
    }

    /// Hit counts of one object in buckets of `resolution_ms` starting in
    /// `[from_ms, to_ms)`, oldest first, as `(bucket_start, hits)`.
    pub async fn access_history(
        &self,
        object_id: &str,
        resolution_ms: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT bucket_start, hits FROM access_buckets \
             WHERE object_id = $1 AND resolution_ms = $2 AND bucket_start >= $3 AND bucket_start < $4 \
             ORDER BY bucket_start",
        )
        .bind(object_id)
        .bind(resolution_ms)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("bucket_start")?, r.try_get("hits")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Access counts of one object over the windows of [`AccessSummary`], as of `now_ms`.
    pub async fn access_summary(&self, object_id: &str, now_ms: i64) -> Result<AccessSummary> {
        let object = self.get_object(object_id).await?;
        let row = sqlx::query(
            // PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot decode.
            "SELECT \
               CAST(COALESCE(SUM(CASE WHEN resolution_ms = $2 AND bucket_start > $4 THEN hits END), 0) AS BIGINT) AS last_minute, \
               CAST(COALESCE(SUM(CASE WHEN resolution_ms = $2 AND bucket_start > $5 THEN hits END), 0) AS BIGINT) AS last_hour, \
               CAST(COALESCE(SUM(CASE WHEN resolution_ms = $3 AND bucket_start > $6 THEN hits END), 0) AS BIGINT) AS last_day \
             FROM access_buckets WHERE object_id = $1 AND bucket_start > $6",
        )
        .bind(object_id)
        .bind(MINUTE_MS)
        .bind(HOUR_MS)
        .bind(now_ms - MINUTE_MS)
        .bind(now_ms - HOUR_MS)
        .bind(now_ms - DAY_MS)
        .fetch_one(&self.reads)
        .await?;
        Ok(AccessSummary {
            last_minute: row.try_get("last_minute")?,
            last_hour: row.try_get("last_hour")?,
            last_day: row.try_get("last_day")?,
            total: object.access_total,
            last_access_at: object.last_access_at,
        })
    }
}

/// `($1, $2, …), ($5, …)`: placeholders for `rows` rows of `columns` values each.
fn values_placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_consecutively() {
        assert_eq!(values_placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    #[test]
    fn buckets_align_down_also_before_the_epoch() {
        assert_eq!(bucket_start(119_999, MINUTE_MS), 60_000);
        assert_eq!(bucket_start(120_000, MINUTE_MS), 120_000);
        assert_eq!(bucket_start(-1, MINUTE_MS), -60_000);
    }
}
