//! What the forecaster reads and writes: hourly access history, objects changed since a
//! time, the latest prediction per object, and the leases that share the forecast
//! shards among the processes that serve.

use futures_util::TryStreamExt;
use serde_json::json;
use sqlx::Row;

use super::access::hour_buckets_sql;
use super::{Catalogue, HOUR_MS, Result};

/// Hits of one object in one hour bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourHits {
    /// The object.
    pub object_id: String,
    /// Hours since the epoch.
    pub hour: i64,
    /// Hits counted in that hour.
    pub hits: i64,
}

/// An object as the forecaster tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedObject {
    /// The object.
    pub id: String,
    /// Its tier.
    pub tier: String,
    /// Last change of content or tier, epoch ms.
    pub updated_at: i64,
    /// Creation, epoch ms.
    pub created_at: i64,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// The latest prediction for an object.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPrediction {
    /// The object.
    pub object_id: String,
    /// Predicted accesses over the horizon.
    pub predicted_accesses: f64,
    /// What placement ranks the object by: the prediction, or more for a burst in
    /// progress.
    pub value: f64,
    /// The variance of `value` as an estimate.
    pub variance: f64,
    /// Accesses over the horizon at the object's mean rate of the last day.
    pub day_rate: f64,
    /// The horizon, hours.
    pub horizon_hours: i64,
    /// The tier the prediction implies.
    pub predicted_tier: String,
    /// Version of the model that made it.
    pub model_version: i64,
    /// When, epoch ms.
    pub predicted_at: i64,
}

/// An object as the ranking of every object reads it from the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredValue {
    /// The object.
    pub object_id: String,
    /// Its tier.
    pub tier: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The tier a move under way takes it to.
    pub moving_to: Option<String>,
    /// Its stored [`StoredPrediction::value`], 0 without a prediction.
    pub value: f64,
    /// The value's variance as an estimate.
    pub variance: f64,
    /// Accesses over the horizon at its mean rate of the last day.
    pub day_rate: f64,
}

impl StoredPrediction {
    pub(super) fn from_row(
        row: &sqlx::any::AnyRow,
    ) -> Result<Option<StoredPrediction>, sqlx::Error> {
        let Some(predicted_at) = row.try_get::<Option<i64>, _>("predicted_at")? else {
            return Ok(None);
        };
        Ok(Some(StoredPrediction {
            object_id: row.try_get("id")?,
            predicted_accesses: row.try_get("predicted_accesses")?,
            value: row.try_get("placement_value")?,
            variance: row.try_get("variance")?,
            day_rate: row.try_get("day_rate")?,
            horizon_hours: row.try_get("horizon_hours")?,
            predicted_tier: row.try_get("predicted_tier")?,
            model_version: row.try_get("model_version")?,
            predicted_at,
        }))
    }
}

impl Catalogue {
    /// Hour buckets starting at or after `since_ms`, passed to `each` as they stream in,
    /// in object order: the history the forecaster learns from and predicts with,
    /// without holding all of it in memory at once.
    pub async fn for_each_hour_hits(
        &self,
        since_ms: i64,
        mut each: impl FnMut(HourHits),
    ) -> Result<()> {
        let sql = format!(
            "SELECT object_id, bucket_start, hits FROM ({}) AS h ORDER BY object_id, bucket_start",
            hour_buckets_sql("bucket_start >= $1")
        );
        let mut rows = sqlx::query(&sql).bind(since_ms).fetch(&self.reads);
        // One hour can come as several rows (see `hour_buckets_sql`); they are adjacent.
        let mut pending: Option<HourHits> = None;
        while let Some(row) = rows.try_next().await? {
            let object_id: String = row.try_get("object_id")?;
            let hour = row.try_get::<i64, _>("bucket_start")?.div_euclid(HOUR_MS);
            let hits: i64 = row.try_get("hits")?;
            match &mut pending {
                Some(same) if same.hour == hour && same.object_id == object_id => {
                    same.hits += hits;
                }
                _ => {
                    if let Some(done) = pending.replace(HourHits {
                        object_id,
                        hour,
                        hits,
                    }) {
                        each(done);
                    }
                }
            }
        }
        if let Some(done) = pending {
            each(done);
        }
        Ok(())
    }

    /// Hits of `object_id` per hour for the hours `[from_hour, to_hour)`, oldest first,
    /// zero where nothing was counted.
    pub async fn hourly_hits(
        &self,
        object_id: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<u32>> {
        let mut series = vec![0u32; usize::try_from(to_hour - from_hour).unwrap_or_default()];
        for (start, hits) in self
            .access_history(object_id, HOUR_MS, from_hour * HOUR_MS, to_hour * HOUR_MS)
            .await?
        {
            if let Some(slot) = usize::try_from(start.div_euclid(HOUR_MS) - from_hour)
                .ok()
                .and_then(|i| series.get_mut(i))
            {
                *slot = u32::try_from(hits).unwrap_or(u32::MAX);
            }
        }
        Ok(series)
    }

    /// Every object that ranked placement may move, with its stored value and the tier
    /// a move under way takes it to, passed to `each` as the rows stream in: those on
    /// one of `tiers` (the tiers with a capacity), on their way to one, or valued above
    /// nothing (an object valued at nothing never pays for a move).
    pub async fn for_each_stored_value(
        &self,
        tiers: &[&str],
        mut each: impl FnMut(StoredValue),
    ) -> Result<()> {
        let on_tiers: Vec<String> = (1..=tiers.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT o.id, o.tier, o.size, m.to_tier, \
               COALESCE(p.placement_value, 0.0) AS placement_value, \
               COALESCE(p.variance, 0.0) AS variance, COALESCE(p.day_rate, 0.0) AS day_rate \
             FROM objects o LEFT JOIN predictions p ON p.object_id = o.id \
             LEFT JOIN migrations m ON m.object_id = o.id \
               AND m.status IN ('pending', 'copying', 'verifying') \
             WHERE p.placement_value > 0 OR m.to_tier IS NOT NULL OR o.tier IN ({})",
            if on_tiers.is_empty() {
                "NULL".to_string()
            } else {
                on_tiers.join(", ")
            }
        );
        let mut query = sqlx::query(&sql);
        for tier in tiers {
            query = query.bind(*tier);
        }
        let mut rows = query.fetch(&self.reads);
        while let Some(row) = rows.try_next().await? {
            each(StoredValue {
                object_id: row.try_get("id")?,
                tier: row.try_get("tier")?,
                size_bytes: row.try_get::<i64, _>("size")?.max(0) as u64,
                moving_to: row.try_get("to_tier")?,
                value: row.try_get("placement_value")?,
                variance: row.try_get("variance")?,
                day_rate: row.try_get("day_rate")?,
            });
        }
        Ok(())
    }

    /// Objects whose row changed at or after `since_ms` (all of them for `i64::MIN`).
    pub async fn objects_changed_since(&self, since_ms: i64) -> Result<Vec<TrackedObject>> {
        let mut objects = Vec::new();
        self.for_each_object_changed_since(since_ms, |o| objects.push(o))
            .await?;
        Ok(objects)
    }

    /// [`Catalogue::objects_changed_since`], passed to `each` as the rows stream in: a
    /// reader that keeps some of them never holds all at once.
    pub async fn for_each_object_changed_since(
        &self,
        since_ms: i64,
        mut each: impl FnMut(TrackedObject),
    ) -> Result<()> {
        let mut rows = sqlx::query(
            "SELECT id, tier, updated_at, created_at, size FROM objects WHERE updated_at >= $1",
        )
        .bind(since_ms)
        .fetch(&self.reads);
        while let Some(row) = rows.try_next().await? {
            each(TrackedObject {
                id: row.try_get("id")?,
                tier: row.try_get("tier")?,
                updated_at: row.try_get("updated_at")?,
                created_at: row.try_get("created_at")?,
                size_bytes: row.try_get::<i64, _>("size")?.max(0) as u64,
            });
        }
        Ok(())
    }

    /// The accesses, placement value and model version of every stored prediction, by
    /// object.
    pub async fn for_each_stored_prediction(
        &self,
        mut each: impl FnMut(&str, f64, f64, i64),
    ) -> Result<()> {
        let mut rows = sqlx::query(
            "SELECT object_id, predicted_accesses, placement_value, model_version \
             FROM predictions",
        )
        .fetch(&self.reads);
        while let Some(row) = rows.try_next().await? {
            let id: String = row.try_get("object_id")?;
            each(
                &id,
                row.try_get("predicted_accesses")?,
                row.try_get("placement_value")?,
                row.try_get("model_version")?,
            );
        }
        Ok(())
    }

    /// Stores the latest predictions, replacing older ones of the same objects; rows of
    /// objects deleted meanwhile are dropped.
    pub async fn save_predictions(&self, predictions: &[StoredPrediction]) -> Result<()> {
        for chunk in predictions.chunks(10_000) {
            let rows = self.bulk_rows(
                [
                    "TEXT",
                    "DOUBLE PRECISION",
                    "BIGINT",
                    "TEXT",
                    "BIGINT",
                    "BIGINT",
                    "DOUBLE PRECISION",
                    "DOUBLE PRECISION",
                    "DOUBLE PRECISION",
                ],
                chunk.iter().map(|p| {
                    [
                        json!(p.object_id),
                        json!(p.predicted_accesses),
                        json!(p.horizon_hours),
                        json!(p.predicted_tier),
                        json!(p.model_version),
                        json!(p.predicted_at),
                        json!(p.value),
                        json!(p.variance),
                        json!(p.day_rate),
                    ]
                }),
            );
            let sql = format!(
                "INSERT INTO predictions (object_id, predicted_accesses, horizon_hours, \
                   predicted_tier, model_version, predicted_at, placement_value, variance, \
                   day_rate) \
                 SELECT c0, c1, c2, c3, c4, c5, c6, c7, c8 FROM {} AS v \
                 WHERE EXISTS (SELECT 1 FROM objects WHERE objects.id = v.c0) \
                 ON CONFLICT (object_id) DO UPDATE SET \
                   predicted_accesses = excluded.predicted_accesses, \
                   horizon_hours = excluded.horizon_hours, \
                   predicted_tier = excluded.predicted_tier, \
                   model_version = excluded.model_version, \
                   predicted_at = excluded.predicted_at, \
                   placement_value = excluded.placement_value, \
                   variance = excluded.variance, \
                   day_rate = excluded.day_rate",
                rows.source
            );
            rows.bind(sqlx::query(&sql)).execute(&self.writes).await?;
        }
        Ok(())
    }

    /// Takes or renews the lease `name` for `holder` until `until_ms`. True when
    /// `holder` holds it now: it was free, expired at `now_ms`, or already `holder`'s.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until_ms)
        .bind(now_ms)
        .execute(&self.writes)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// How many unexpired leases at `now_ms` have names starting with `prefix`.
    pub async fn live_leases(&self, prefix: &str, now_ms: i64) -> Result<usize> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM leases \
             WHERE substr(name, 1, length($1)) = $1 AND expires_at >= $2",
        )
        .bind(prefix)
        .bind(now_ms)
        .fetch_one(&self.reads)
        .await?;
        Ok(usize::try_from(count).unwrap_or_default())
    }

    /// Gives up the lease `name` if `holder` has it, so another process can take over
    /// at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.writes)
            .await?;
        Ok(())
    }
}
