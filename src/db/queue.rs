//! The move queue as the mover sees it: claiming work under a lease, reporting progress,
//! finishing, retrying, and finding what a crashed worker left behind.
//!
//! Every write here is guarded by the row's status and, while a worker holds the move,
//! by `claimed_by`: a worker that lost its move (cancelled, or reclaimed after its lease
//! ran out) finds out from the guard instead of overwriting someone else's state.

use sqlx::Any;
use tokio::sync::Notify;

use super::moves::MOVE_COLUMNS;
use super::objects::count_on_tier;
use super::{Backend, Catalogue, CatalogueError, MoveRecord, Result, RowLock};
use crate::timestamp::now_ms;

/// Why [`Catalogue::start_copy`] refused to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRefusal {
    /// The move is no longer this worker's (cancelled or reclaimed).
    Lost,
    /// The destination tier would exceed its capacity.
    Capacity {
        /// Bytes on the tier plus bytes being copied into it.
        used: i64,
        /// The tier's capacity.
        capacity: i64,
    },
}

/// Where a copy reads from and writes to, fixed before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPlan {
    /// Object version being copied.
    pub object_version: i64,
    /// Tier the object is on.
    pub from_tier: String,
    /// Key of the object's bytes on `from_tier`.
    pub source_location: String,
    /// Key of the copy on the destination tier.
    pub dest_location: String,
    /// Size of the object.
    pub bytes_total: i64,
}

impl Catalogue {
    /// Notified when this process queues a move, so that an idle mover worker starts it
    /// at once; moves queued by other processes, and retries coming due, are found by
    /// polling.
    pub fn move_queued(&self) -> &Notify {
        &self.queued
    }

    /// Claims the most urgent pending move that is due (priority, then age) for `worker`,
    /// moving it to `copying` with a lease of `lease_ms`. PostgreSQL skips rows another
    /// worker is claiming (`FOR UPDATE SKIP LOCKED`); SQLite's single writer connection
    /// makes the statement atomic by itself.
    pub async fn claim_move(&self, worker: &str, lease_ms: i64) -> Result<Option<MoveRecord>> {
        let lock = self.row_lock(RowLock::ExclusiveSkippingLocked);
        let sql = format!(
            "UPDATE migrations SET status = 'copying', attempts = attempts + 1, bytes_copied = 0, \
               claimed_by = $1, lease_until = $2 + $3, \
               started_at = COALESCE(started_at, $2), updated_at = $2 \
             WHERE status = 'pending' AND id = ( \
               SELECT id FROM migrations WHERE status = 'pending' AND not_before <= $2 \
               ORDER BY priority, id LIMIT 1 {lock}) \
             RETURNING {MOVE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(now_ms())
            .bind(lease_ms)
            .fetch_optional(&self.writes)
            .await?;
        row.as_ref().map(MoveRecord::from_row).transpose()
    }

    /// Records where the claimed move `id` copies from and to, after checking the
    /// destination's capacity (`None`: unbounded) against what is stored there and what
    /// other moves are copying into it. Capacity checks of concurrent moves into one tier
    /// are serialised (a transaction-scoped advisory lock on PostgreSQL, the single
    /// writer on SQLite), so two moves cannot both take the last free bytes.
    pub async fn start_copy(
        &self,
        id: &str,
        worker: &str,
        to_tier: &str,
        capacity: Option<i64>,
        plan: &CopyPlan,
    ) -> Result<Result<MoveRecord, StartRefusal>> {
        let mut tx = self.writes.begin().await?;
        if let Some(capacity) = capacity {
            if self.backend == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("strata-tier-capacity:{to_tier}"))
                    .execute(&mut *tx)
                    .await?;
            }
            let used = tier_bytes_in(&mut tx, to_tier, Some(id)).await?;
            if used + plan.bytes_total > capacity {
                return Ok(Err(StartRefusal::Capacity { used, capacity }));
            }
        }
        let sql = format!(
            "UPDATE migrations SET object_version = $3, from_tier = $4, source_location = $5, \
               dest_location = $6, bytes_total = $7, updated_at = $8 \
             WHERE id = $1 AND claimed_by = $2 AND status = 'copying' \
             RETURNING {MOVE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(worker)
            .bind(plan.object_version)
            .bind(&plan.from_tier)
            .bind(&plan.source_location)
            .bind(&plan.dest_location)
            .bind(plan.bytes_total)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(Err(StartRefusal::Lost));
        };
        let record = MoveRecord::from_row(&row)?;
        tx.commit().await?;
        Ok(Ok(record))
    }

    /// Records progress and extends the lease of a running move. False when the move is
    /// no longer this worker's or no longer running: the worker must stop.
    pub async fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        bytes_copied: i64,
        lease_ms: i64,
    ) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE migrations SET bytes_copied = $3, lease_until = $4 + $5, updated_at = $4 \
             WHERE id = $1 AND claimed_by = $2 AND status IN ('copying', 'verifying')",
        )
        .bind(id)
        .bind(worker)
        .bind(bytes_copied)
        .bind(now)
        .bind(lease_ms)
        .execute(&self.writes)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// `copying -> verifying` for this worker's move; false when it lost the move.
    pub async fn begin_verify(&self, id: &str, worker: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE migrations SET status = 'verifying', bytes_copied = bytes_total, updated_at = $3 \
             WHERE id = $1 AND claimed_by = $2 AND status = 'copying'",
        )
        .bind(id)
        .bind(worker)
        .bind(now_ms())
        .execute(&self.writes)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Commits a verified move in one transaction: the object switches to the copy only
    /// if it is still the version, tier and location that were copied, and the move
    /// becomes `completed` only if it is still this worker's. `Stale` for the object
    /// means it was rewritten or moved meanwhile; `Stale` for the migration, that the
    /// move was cancelled or reclaimed. Either way nothing changed.
    pub async fn complete_move(
        &self,
        m: &MoveRecord,
        worker: &str,
        duration_ms: i64,
    ) -> Result<MoveRecord> {
        let stale = |kind, expected: String| CatalogueError::Stale {
            kind,
            id: if kind == "object" {
                m.object_id.clone()
            } else {
                m.id.clone()
            },
            expected,
        };
        let (Some(source), Some(dest)) = (&m.source_location, &m.dest_location) else {
            return Err(stale("migration", "recorded copy locations".into()));
        };
        let now = now_ms();
        let mut tx = self.writes.begin().await?;
        let switched: Option<i64> = sqlx::query_scalar(
            "UPDATE objects SET tier = $5, location = $6, updated_at = $7 \
             WHERE id = $1 AND version = $2 AND tier = $3 AND location = $4 RETURNING size",
        )
        .bind(&m.object_id)
        .bind(m.object_version)
        .bind(&m.from_tier)
        .bind(source)
        .bind(&m.to_tier)
        .bind(dest)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(size) = switched else {
            return Err(stale(
                "object",
                format!(
                    "version {} on {} at {source}",
                    m.object_version, m.from_tier
                ),
            ));
        };
        count_on_tier(&mut tx, &m.from_tier, -1, -size).await?;
        count_on_tier(&mut tx, &m.to_tier, 1, size).await?;
        let sql = format!(
            "UPDATE migrations SET status = 'completed', finished_at = $3, updated_at = $3, \
               duration_ms = $4, bytes_copied = bytes_total, lease_until = NULL, error = NULL \
             WHERE id = $1 AND claimed_by = $2 AND status = 'verifying' \
             RETURNING {MOVE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&m.id)
            .bind(worker)
            .bind(now)
            .bind(duration_ms)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(stale("migration", "status verifying".into()));
        };
        let record = MoveRecord::from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// Ends an attempt of this worker's move that did not succeed: back to `pending`
    /// (due at `not_before`) while attempts remain below `max_attempts`, `failed`
    /// otherwise, with `error` recorded. `dest_removed` says whether the attempt's copy
    /// was removed; if not, its location stays recorded for recovery to remove.
    pub async fn end_attempt(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        not_before: i64,
        max_attempts: i64,
        dest_removed: bool,
    ) -> Result<Option<MoveRecord>> {
        let sql = format!(
            "UPDATE migrations SET \
               status = CASE WHEN attempts >= $5 THEN 'failed' ELSE 'pending' END, \
               finished_at = CASE WHEN attempts >= $5 THEN $6 ELSE NULL END, \
               error = $3, not_before = $4, updated_at = $6, lease_until = NULL, \
               dest_location = CASE WHEN $7 = 1 THEN NULL ELSE dest_location END \
             WHERE id = $1 AND claimed_by = $2 AND status IN ('copying', 'verifying') \
             RETURNING {MOVE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(worker)
            .bind(error)
            .bind(not_before)
            .bind(max_attempts)
            .bind(now_ms())
            .bind(i64::from(dest_removed))
            .fetch_optional(&self.writes)
            .await?;
        row.as_ref().map(MoveRecord::from_row).transpose()
    }

    /// Ends this worker's move as `failed` at once, whatever attempts remain (the move
    /// cannot succeed: object deleted, tier unknown or full, …). Only for a move that has
    /// no copy on the destination.
    pub async fn fail_move(
        &self,
        id: &str,
        worker: &str,
        error: &str,
    ) -> Result<Option<MoveRecord>> {
        self.end_attempt(id, worker, error, 0, 0, true).await
    }

    /// Cancels a pending or running move. A running copy notices at its next heartbeat
    /// and removes what it wrote. `Conflict` when the move already ended.
    pub async fn cancel_move(&self, id: &str) -> Result<MoveRecord> {
        let sql = format!(
            "UPDATE migrations SET status = 'cancelled', finished_at = $2, updated_at = $2, \
               lease_until = NULL \
             WHERE id = $1 AND status IN ('pending', 'copying', 'verifying') \
             RETURNING {MOVE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(now_ms())
            .fetch_optional(&self.writes)
            .await?;
        match row {
            Some(row) => MoveRecord::from_row(&row),
            None => {
                let m = self.get_move(id).await?;
                Err(CatalogueError::Conflict(format!(
                    "migration {id} is already {}",
                    m.status
                )))
            }
        }
    }

    /// `(tier, location)` of every copy a move holds besides the objects' own: copies
    /// being written, and those recovery is still to remove (failed attempts' copies,
    /// completed moves' sources).
    pub async fn copies_in_moves(&self) -> Result<std::collections::HashSet<(String, String)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT to_tier, dest_location FROM migrations \
             WHERE status <> 'completed' AND dest_location IS NOT NULL \
             UNION SELECT from_tier, source_location FROM migrations \
             WHERE status = 'completed' AND source_deleted = 0 AND source_location IS NOT NULL",
        )
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Where writes in progress put their bytes: running moves' copies, and the tier
    /// uploads of multipart uploads through the S3 endpoint.
    pub async fn live_write_locations(&self) -> Result<std::collections::HashSet<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT dest_location FROM migrations \
             WHERE status IN ('copying', 'verifying') AND dest_location IS NOT NULL \
             UNION SELECT tier_key FROM uploads WHERE tier_key IS NOT NULL",
        )
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.into_iter().map(|(location,)| location).collect())
    }

    /// Running moves whose worker's lease ran out before `now`: the worker died or hangs.
    pub async fn expired_moves(&self, now: i64) -> Result<Vec<MoveRecord>> {
        let sql = format!(
            "SELECT {MOVE_COLUMNS} FROM migrations \
             WHERE status IN ('copying', 'verifying') AND lease_until < $1 ORDER BY id"
        );
        let rows = sqlx::query(&sql).bind(now).fetch_all(&self.reads).await?;
        rows.iter().map(MoveRecord::from_row).collect()
    }

    /// Takes an expired move away from its worker (the lease is re-checked so a worker
    /// that just renewed keeps it) and returns it to the queue, or fails it when no
    /// attempts remain. The dead attempt's copy location stays recorded for removal.
    pub async fn reclaim_move(
        &self,
        m: &MoveRecord,
        max_attempts: i64,
    ) -> Result<Option<MoveRecord>> {
        let now = now_ms();
        let sql = format!(
            "UPDATE migrations SET \
               status = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'pending' END, \
               finished_at = CASE WHEN attempts >= $3 THEN $2 ELSE NULL END, \
               error = 'worker stopped responding (lease expired)', \
               claimed_by = NULL, lease_until = NULL, not_before = $2, updated_at = $2 \
             WHERE id = $1 AND status IN ('copying', 'verifying') AND lease_until < $2 \
             RETURNING {MOVE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&m.id)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(&self.writes)
            .await?;
        row.as_ref().map(MoveRecord::from_row).transpose()
    }

    /// Moves that left bytes behind: a completed move whose source copy is not yet
    /// deleted, or a move not running (pending, failed, cancelled) whose last copy is
    /// still recorded as present on the destination.
    pub async fn leftover_copies(&self) -> Result<Vec<MoveRecord>> {
        let sql = format!(
            "SELECT {MOVE_COLUMNS} FROM migrations \
             WHERE (status = 'completed' AND source_deleted = 0 AND source_location IS NOT NULL) \
                OR (status IN ('pending', 'failed', 'cancelled') AND dest_location IS NOT NULL) \
             ORDER BY id"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.reads).await?;
        rows.iter().map(MoveRecord::from_row).collect()
    }

    /// Notes that the source copy of completed move `id` is gone.
    pub async fn mark_source_deleted(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE migrations SET source_deleted = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    /// Notes that the destination copy of move `id`, not running, is gone. Guarded by
    /// status so that a copy a new attempt is writing is never forgotten.
    pub async fn clear_dest_location(&self, id: &str, location: &str) -> Result<()> {
        sqlx::query(
            "UPDATE migrations SET dest_location = NULL \
             WHERE id = $1 AND dest_location = $2 AND status IN ('pending', 'failed', 'cancelled')",
        )
        .bind(id)
        .bind(location)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    /// Bytes stored on `tier` plus bytes being copied into it.
    pub async fn tier_bytes(&self, tier: &str) -> Result<i64> {
        let mut conn = self.reads.acquire().await?;
        tier_bytes_in(&mut conn, tier, None).await
    }
}

/// Bytes stored on `tier` plus bytes that running moves (other than `except`) are
/// copying into it.
async fn tier_bytes_in(
    conn: &mut sqlx::AnyConnection,
    tier: &str,
    except: Option<&str>,
) -> Result<i64> {
    let stored: i64 = sqlx::query_scalar::<Any, i64>(
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM objects WHERE tier = $1",
    )
    .bind(tier)
    .fetch_one(&mut *conn)
    .await?;
    let incoming: i64 = sqlx::query_scalar::<Any, i64>(
        "SELECT CAST(COALESCE(SUM(bytes_total), 0) AS BIGINT) FROM migrations \
         WHERE to_tier = $1 AND status IN ('copying', 'verifying') AND dest_location IS NOT NULL \
           AND (CAST($2 AS TEXT) IS NULL OR id <> $2)",
    )
    .bind(tier)
    .bind(except)
    .fetch_one(&mut *conn)
    .await?;
    Ok(stored + incoming)
}
