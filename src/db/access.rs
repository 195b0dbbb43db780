//! Access statistics: per-object hit counts in minute and hour buckets, and the Kafka
//! offsets they were counted up to.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::json;
use sqlx::Row;

use super::{Catalogue, Result, RowLock};
use crate::timestamp::now_ms;

/// Length of a minute bucket.
pub const MINUTE_MS: i64 = 60_000;
/// Length of an hour bucket.
pub const HOUR_MS: i64 = 3_600_000;
/// Length of a day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

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

/// What one consumer read from one partition since the offset it last stored: the
/// accesses, and how far they go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionAccesses {
    /// Partition number.
    pub partition: i32,
    /// The stored offset this batch continues from; `None` when the partition has no
    /// stored offset yet.
    pub from_offset: Option<i64>,
    /// Offset of the next message after this batch.
    pub to_offset: i64,
    /// Accesses of objects named by id.
    pub counts: Vec<AccessCount>,
    /// Accesses named by where the bytes are stored (S3 bucket notifications).
    pub located: Vec<LocatedAccess>,
}

/// An access to whatever object is stored under `key` in `tier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedAccess {
    /// The tier whose bucket was read.
    pub tier: String,
    /// Key inside the bucket: an object's location, or its catalogue key.
    pub key: String,
    /// When, epoch ms.
    pub at_ms: i64,
}

/// What [`Catalogue::record_access`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedAccess {
    /// Accesses of catalogue objects that were added.
    pub counted_hits: u64,
    /// The accesses that came as [`LocatedAccess`]es, now named by object id.
    pub resolved: Vec<AccessCount>,
    /// Accesses of objects the catalogue does not know; skipped.
    pub unknown: u64,
    /// Partitions whose stored offset had moved on from `from_offset` (another consumer
    /// counted them meanwhile), with the offset stored now; nothing of them was written.
    pub fenced: Vec<(i32, Option<i64>)>,
}

/// (object id, minute) -> (hits, latest access): one row per object and minute, as
/// PostgreSQL refuses an upsert that touches one row twice in a single statement.
type MinuteRows<'a> = BTreeMap<(&'a str, i64), (i64, i64)>;

/// Sums counts into one row per object and minute.
fn minute_rows<'a>(counts: impl Iterator<Item = &'a AccessCount>) -> MinuteRows<'a> {
    let mut minutes = MinuteRows::new();
    for c in counts.filter(|c| c.hits > 0) {
        let entry = minutes
            .entry((&c.object_id, bucket_start(c.at_ms, MINUTE_MS)))
            .or_insert((0, c.at_ms));
        entry.0 += c.hits;
        entry.1 = entry.1.max(c.at_ms);
    }
    minutes
}

/// Counts of minutes that were rolled up before they arrived.
#[derive(Default)]
struct LateMinutes<'a> {
    /// (object id, hour) -> hits.
    hours: BTreeMap<(&'a str, i64), i64>,
    /// object id -> (hits, latest access).
    totals: BTreeMap<&'a str, (i64, i64)>,
}

impl<'a> LateMinutes<'a> {
    fn add(&mut self, id: &'a str, minute: i64, hits: i64, last: i64) {
        *self
            .hours
            .entry((id, bucket_start(minute, HOUR_MS)))
            .or_default() += hits;
        let total = self.totals.entry(id).or_insert((0, last));
        total.0 += hits;
        total.1 = total.1.max(last);
    }
}

/// Moves a partition's stored offset on from where `part` was read to where it ends;
/// `None` when it did, else the offset stored now (another consumer moved it on).
async fn advance_offset(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group_id: &str,
    topic: &str,
    part: &PartitionAccesses,
) -> Result<Option<Option<i64>>> {
    let now = now_ms();
    let advanced = match part.from_offset {
        Some(from) => sqlx::query(
            "UPDATE consumer_offsets SET next_offset = $4, updated_at = $5 \
             WHERE group_id = $1 AND topic = $2 AND partition_id = $3 AND next_offset = $6",
        )
        .bind(group_id)
        .bind(topic)
        .bind(i64::from(part.partition))
        .bind(part.to_offset)
        .bind(now)
        .bind(from)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        None => sqlx::query(
            "INSERT INTO consumer_offsets (group_id, topic, partition_id, next_offset, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, topic, partition_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(topic)
        .bind(i64::from(part.partition))
        .bind(part.to_offset)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
    };
    if advanced == 1 {
        return Ok(None);
    }
    let stored = sqlx::query_scalar(
        "SELECT next_offset FROM consumer_offsets \
         WHERE group_id = $1 AND topic = $2 AND partition_id = $3",
    )
    .bind(group_id)
    .bind(topic)
    .bind(i64::from(part.partition))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(Some(stored))
}

/// The object an access by bucket and key names: the one stored there, else one
/// ingested under that key on that tier.
async fn locate(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    access: &LocatedAccess,
) -> Result<Option<String>> {
    // Two lookups, each served by its own index (one condition with OR read the tier).
    Ok(sqlx::query_scalar(
        "SELECT id FROM (\
           SELECT id, 0 AS preference FROM objects WHERE tier = $1 AND location = $2 \
           UNION ALL \
           SELECT id, 1 AS preference FROM objects WHERE tier = $1 AND object_key = $2\
         ) AS found ORDER BY preference LIMIT 1",
    )
    .bind(&access.tier)
    .bind(&access.key)
    .fetch_optional(&mut **tx)
    .await?)
}

impl Catalogue {
    /// Adds the accesses of `batch` to the minute buckets, and advances each partition's
    /// stored offset, all in one transaction: a count is committed exactly when its
    /// offset is. Hour buckets and the objects' totals and last access times get the
    /// counts from the next roll-up ([`Catalogue::roll_up_hours`]), or at once for
    /// minutes rolled up already.
    ///
    /// A partition's offset only advances from the `from_offset` the batch was read from.
    /// When it has moved on, another consumer owns the partition now and has counted
    /// these events or will; the partition is skipped and reported in
    /// [`RecordedAccess::fenced`], so that no event is counted twice.
    pub async fn record_access(
        &self,
        group_id: &str,
        topic: &str,
        batch: &[PartitionAccesses],
    ) -> Result<RecordedAccess> {
        let mut outcome = RecordedAccess::default();
        let mut tx = self.writes.begin().await?;
        let mut accepted = Vec::with_capacity(batch.len());
        for part in batch {
            match advance_offset(&mut tx, group_id, topic, part).await? {
                None => accepted.push(part),
                Some(stored) => outcome.fenced.push((part.partition, stored)),
            }
        }
        for access in accepted.iter().flat_map(|part| &part.located) {
            match locate(&mut tx, access).await? {
                Some(object_id) => outcome.resolved.push(AccessCount {
                    object_id,
                    at_ms: access.at_ms,
                    hits: 1,
                }),
                None => outcome.unknown += 1,
            }
        }
        let minutes = minute_rows(
            accepted
                .iter()
                .flat_map(|part| &part.counts)
                .chain(&outcome.resolved),
        );
        if minutes.is_empty() {
            tx.commit().await?;
            return Ok(outcome);
        }
        // The share lock makes a roll-up wait until this batch is committed (see
        // `roll_up_hours`).
        let mark = self.rollup_mark(&mut tx, RowLock::Share).await?;
        let written = self.write_minutes(&mut tx, &minutes).await?;
        // Usually every row was written, so every object is known; only otherwise is it
        // worth asking which ones are (rather than having every row returned).
        let known = if written == minutes.len() as u64 {
            None
        } else {
            let ids: BTreeSet<&str> = minutes.keys().map(|(id, _)| *id).collect();
            Some(self.known_ids(&mut tx, ids).await?)
        };
        let known = |id: &str| known.as_ref().is_none_or(|known| known.contains(id));

        // Minutes before the roll-up mark are in their hour rows and the objects' totals
        // already (accesses that arrived late), so this batch adds them there itself;
        // later minutes get there by the next roll-up.
        let mut late = LateMinutes::default();
        for (&(id, minute), &(hits, last)) in &minutes {
            if !known(id) {
                outcome.unknown += hits as u64;
                continue;
            }
            outcome.counted_hits += hits as u64;
            if minute < mark {
                late.add(id, minute, hits, last);
            }
        }
        self.write_late_minutes(&mut tx, &late).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Adds each object's minute rows to its minute buckets and each tier's hits (objects
    /// the catalogue does not know get no row); how many bucket rows were written.
    async fn write_minutes(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        minutes: &MinuteRows<'_>,
    ) -> Result<u64> {
        // One statement for the whole batch (see [`BulkRows`]): a batch touches up to
        // every active object.
        let rows = self.bulk_rows(
            ["TEXT", "BIGINT", "BIGINT", "BIGINT"],
            minutes.iter().map(|((id, minute), (hits, last))| {
                [json!(id), json!(minute), json!(hits), json!(last)]
            }),
        );
        // `WHERE` before ON CONFLICT also keeps SQLite from parsing it as a join clause.
        let sql = format!(
            "INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits, last_at) \
             SELECT c0, {MINUTE_MS}, c1, c2, c3 FROM {} AS v \
             WHERE EXISTS (SELECT 1 FROM objects WHERE objects.id = v.c0) \
             ON CONFLICT (object_id, resolution_ms, bucket_start) \
             DO UPDATE SET hits = access_buckets.hits + excluded.hits, \
               last_at = CASE WHEN access_buckets.last_at IS NULL \
                           OR access_buckets.last_at < excluded.last_at \
                         THEN excluded.last_at ELSE access_buckets.last_at END",
            rows.source
        );
        let written = rows
            .bind(sqlx::query(&sql))
            .execute(&mut **tx)
            .await?
            .rows_affected();
        let rows = self.bulk_rows(
            ["TEXT", "BIGINT", "BIGINT"],
            minutes
                .iter()
                .map(|((id, minute), (hits, _))| [json!(id), json!(minute), json!(hits)]),
        );
        let sql = format!(
            "INSERT INTO tier_hits (tier, bucket_start, hits) \
             SELECT o.tier, v.c1, SUM(v.c2) FROM {} AS v, objects o WHERE o.id = v.c0 \
             GROUP BY o.tier, v.c1 \
             ON CONFLICT (tier, bucket_start) DO UPDATE SET hits = tier_hits.hits + excluded.hits",
            rows.source
        );
        rows.bind(sqlx::query(&sql)).execute(&mut **tx).await?;
        Ok(written)
    }

    /// Adds minutes already rolled up to their hour buckets and their objects' totals.
    async fn write_late_minutes(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        late: &LateMinutes<'_>,
    ) -> Result<()> {
        if late.hours.is_empty() {
            return Ok(());
        }
        let rows = self.bulk_rows(
            ["TEXT", "BIGINT", "BIGINT"],
            late.hours
                .iter()
                .map(|((id, hour), hits)| [json!(id), json!(hour), json!(hits)]),
        );
        let sql = format!(
            "INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits) \
             SELECT c0, {HOUR_MS}, c1, c2 FROM {} AS v WHERE true \
             ON CONFLICT (object_id, resolution_ms, bucket_start) \
             DO UPDATE SET hits = access_buckets.hits + excluded.hits",
            rows.source
        );
        rows.bind(sqlx::query(&sql)).execute(&mut **tx).await?;
        let rows = self.bulk_rows(
            ["TEXT", "BIGINT", "BIGINT"],
            late.totals
                .iter()
                .map(|(id, (hits, last))| [json!(id), json!(hits), json!(last)]),
        );
        let sql = format!(
            "UPDATE objects SET {ADD_TO_TOTALS} FROM {} AS v WHERE objects.id = v.c0",
            rows.source
        );
        rows.bind(sqlx::query(&sql)).execute(&mut **tx).await?;
        Ok(())
    }

    /// Which of `ids` name catalogue objects.
    async fn known_ids(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        ids: BTreeSet<&str>,
    ) -> Result<HashSet<String>> {
        let rows = self.bulk_rows(["TEXT"], ids.into_iter().map(|id| [json!(id)]));
        let sql = format!(
            "SELECT id FROM objects WHERE id IN (SELECT c0 FROM {} AS v)",
            rows.source
        );
        Ok(rows
            .bind(sqlx::query(&sql))
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Adds the minute buckets from the roll-up mark up to the start of the clock minute
    /// of `until_ms` to their hour buckets and to their objects' totals and last access
    /// times, and moves the mark there, in one transaction; returns the mark. Nothing to
    /// do when the mark is there already. Minutes counted later than that still get
    /// there: a batch adds minutes before the mark to hours and totals itself.
    ///
    /// The mark is taken with an exclusive lock, which waits for every batch holding it
    /// shared to commit; the sums, read after that, see all their minutes, and batches
    /// that start meanwhile wait and then see the new mark. Any process may call this at
    /// any time; readers are exact whether it ran or not.
    pub async fn roll_up_hours(&self, until_ms: i64) -> Result<i64> {
        let until = bucket_start(until_ms, MINUTE_MS);
        let mut tx = self.writes.begin().await?;
        let mark = self.rollup_mark(&mut tx, RowLock::Exclusive).await?;
        if mark >= until {
            return Ok(mark);
        }
        let unrolled = format!(
            "FROM access_buckets WHERE resolution_ms = {MINUTE_MS} \
             AND bucket_start >= $1 AND bucket_start < $2"
        );
        sqlx::query(&format!(
            "INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits) \
             SELECT object_id, {HOUR_MS}, {HOUR_OF_MINUTE}, SUM(hits) {unrolled} \
             GROUP BY object_id, {HOUR_OF_MINUTE} \
             ON CONFLICT (object_id, resolution_ms, bucket_start) \
             DO UPDATE SET hits = access_buckets.hits + excluded.hits"
        ))
        .bind(mark)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "UPDATE objects SET {ADD_TO_TOTALS} FROM \
               (SELECT object_id AS c0, SUM(hits) AS c1, MAX(last_at) AS c2 {unrolled} \
                GROUP BY object_id) AS v \
             WHERE objects.id = v.c0"
        ))
        .bind(mark)
        .bind(until)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM tier_hits WHERE bucket_start < $1")
            .bind(until - DAY_MS)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE access_rollup SET rolled_before = $1 WHERE id = 1")
            .bind(until)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(until)
    }

    /// The roll-up mark (see [`Catalogue::roll_up_hours`]), locked with `lock` until
    /// `tx` ends.
    pub(super) async fn rollup_mark(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        lock: RowLock,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT rolled_before FROM access_rollup WHERE id = 1 {}",
            self.row_lock(lock)
        ))
        .fetch_one(&mut **tx)
        .await?)
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

    /// Deletes the offsets stored for `group_id` on `topic`, so that its partitions are
    /// read from the beginning: for a broker whose log started afresh (the embedded one
    /// after a restart), where the old offsets would skip its first events.
    pub async fn forget_consumer_offsets(&self, group_id: &str, topic: &str) -> Result<()> {
        sqlx::query("DELETE FROM consumer_offsets WHERE group_id = $1 AND topic = $2")
            .bind(group_id)
            .bind(topic)
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    /// Hits per object in the minute buckets starting at or after `since_ms`, for every
    /// object that has any: the recent history the spike detector warms up from.
    pub async fn recent_hits(&self, since_ms: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            // PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot decode.
            "SELECT object_id, CAST(SUM(hits) AS BIGINT) AS hits FROM access_buckets \
             WHERE resolution_ms = $1 AND bucket_start >= $2 GROUP BY object_id",
        )
        .bind(MINUTE_MS)
        .bind(since_ms)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.try_get("object_id")?, row.try_get("hits")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Hit counts of one object in buckets of `resolution_ms` ([`MINUTE_MS`] or
    /// [`HOUR_MS`]) starting in `[from_ms, to_ms)`, oldest first, as
    /// `(bucket_start, hits)`.
    pub async fn access_history(
        &self,
        object_id: &str,
        resolution_ms: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let sql = if resolution_ms == HOUR_MS {
            format!(
                // PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot decode.
                "SELECT bucket_start, CAST(SUM(hits) AS BIGINT) AS hits FROM ({}) AS h \
                 GROUP BY bucket_start ORDER BY bucket_start",
                hour_buckets_sql("object_id = $1 AND bucket_start >= $2 AND bucket_start < $3")
            )
        } else {
            format!(
                "SELECT bucket_start, hits FROM access_buckets \
                 WHERE object_id = $1 AND bucket_start >= $2 AND bucket_start < $3 \
                 AND resolution_ms = {resolution_ms} ORDER BY bucket_start"
            )
        };
        let rows = sqlx::query(&sql)
            .bind(object_id)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(&self.reads)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("bucket_start")?, r.try_get("hits")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Accesses counted of all objects together: the sum of their totals.
    pub async fn accesses_counted(&self) -> Result<i64> {
        // PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot decode.
        Ok(sqlx::query_scalar(&format!(
            "SELECT CAST((SELECT COALESCE(SUM(access_total), 0) FROM objects) + \
               (SELECT COALESCE(SUM(hits), 0) FROM access_buckets \
                WHERE resolution_ms = {MINUTE_MS} AND bucket_start >= {ROLLUP_MARK}) AS BIGINT)"
        ))
        .fetch_one(&self.reads)
        .await?)
    }

    /// Access counts of one object over the windows of [`AccessSummary`], as of `now_ms`.
    pub async fn access_summary(&self, object_id: &str, now_ms: i64) -> Result<AccessSummary> {
        Ok(self.get_object_view(object_id, now_ms).await?.access)
    }
}

/// The start of the hour of a minute bucket's `bucket_start`, in SQL; rounds down also
/// before the epoch (`%` keeps the dividend's sign in both backends).
const HOUR_OF_MINUTE: &str = "(bucket_start - ((bucket_start % 3600000) + 3600000) % 3600000)";

/// The roll-up mark in SQL, read in the same statement as the buckets so that both come
/// from one snapshot.
pub(super) const ROLLUP_MARK: &str = "(SELECT rolled_before FROM access_rollup WHERE id = 1)";

/// SQL `SET` assignments adding `v.c1` hits with the latest access `v.c2` to an object's
/// total and last access time.
const ADD_TO_TOTALS: &str = "access_total = objects.access_total + v.c1, \
     last_access_at = CASE WHEN objects.last_access_at IS NULL OR objects.last_access_at < v.c2 \
                      THEN v.c2 ELSE objects.last_access_at END";

/// SQL for the hour buckets as readers must see them, as rows
/// `(object_id, bucket_start, hits)`: the hour rows, and the minute rows not rolled up
/// yet named by the start of their hour. One hour can come as several rows (minutes
/// rolled up and minutes not yet); readers add them up. `filter` is a condition on
/// `object_id` and `bucket_start` (an hour's start), applied to both parts.
pub(super) fn hour_buckets_sql(filter: &str) -> String {
    format!(
        "SELECT object_id, bucket_start, hits FROM access_buckets \
         WHERE resolution_ms = {HOUR_MS} AND {filter} \
         UNION ALL \
         SELECT object_id, bucket_start, hits FROM \
           (SELECT object_id, {HOUR_OF_MINUTE} AS bucket_start, hits FROM access_buckets \
            WHERE resolution_ms = {MINUTE_MS} AND bucket_start >= {ROLLUP_MARK}) AS m \
         WHERE {filter}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_down_also_before_the_epoch() {
        assert_eq!(bucket_start(119_999, MINUTE_MS), 60_000);
        assert_eq!(bucket_start(120_000, MINUTE_MS), 120_000);
        assert_eq!(bucket_start(-1, MINUTE_MS), -60_000);
    }
}
