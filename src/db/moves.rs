//! Tier moves: the queue and the history, and the state machine every move follows.

use std::fmt;
use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Catalogue, CatalogueError, Page, Result, new_id, page_limit};
use crate::timestamp::now_ms;

pub(super) const MOVE_COLUMNS: &str = "id, object_id, object_version, from_tier, to_tier, reason, \
     status, attempts, bytes_copied, bytes_total, error, created_at, started_at, finished_at, \
     updated_at, claimed_by, lease_until, not_before, source_location, dest_location, \
     duration_ms, rule_id, batch_id";

/// Where a move stands. A move goes `pending -> copying -> verifying -> completed`; it can
/// fall back to `pending` for a retry, and end early as `failed` or `cancelled`. The
/// guarded updates in the queue (`db::queue`) are the only way between these states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MoveStatus {
    /// Queued, waiting for a mover.
    Pending,
    /// Bytes are being copied to the destination.
    Copying,
    /// The destination copy is being checked against the catalogue.
    Verifying,
    /// The object lives on the destination tier now.
    Completed,
    /// Given up; `error` says why. The object stayed where it was.
    Failed,
    /// Stopped on request. The object stayed where it was.
    Cancelled,
}

impl MoveStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [MoveStatus; 6] = [
        MoveStatus::Pending,
        MoveStatus::Copying,
        MoveStatus::Verifying,
        MoveStatus::Completed,
        MoveStatus::Failed,
        MoveStatus::Cancelled,
    ];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveStatus::Pending => "pending",
            MoveStatus::Copying => "copying",
            MoveStatus::Verifying => "verifying",
            MoveStatus::Completed => "completed",
            MoveStatus::Failed => "failed",
            MoveStatus::Cancelled => "cancelled",
        }
    }

    /// True while the move still occupies its object (queued or in progress).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            MoveStatus::Pending | MoveStatus::Copying | MoveStatus::Verifying
        )
    }
}

impl fmt::Display for MoveStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MoveStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MoveStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown migration status {s:?}"))
    }
}

/// Why a move was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MoveReason {
    /// Asked for through the API or CLI, one object or a batch.
    Manual,
    /// An operator rule (pin, floor, ceiling, transition) calls for it.
    Rule,
    /// The spike detector saw the object turn hot.
    ReactiveAccessSpike,
    /// The forecaster predicted a change in demand.
    ProactivePrediction,
    /// Made room on a full tier.
    CapacityRebalance,
}

impl MoveReason {
    /// Every reason, in priority order.
    pub const ALL: [MoveReason; 5] = [
        MoveReason::Manual,
        MoveReason::Rule,
        MoveReason::CapacityRebalance,
        MoveReason::ReactiveAccessSpike,
        MoveReason::ProactivePrediction,
    ];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveReason::Manual => "manual",
            MoveReason::Rule => "rule",
            MoveReason::ReactiveAccessSpike => "reactive_access_spike",
            MoveReason::ProactivePrediction => "proactive_prediction",
            MoveReason::CapacityRebalance => "capacity_rebalance",
        }
    }

    /// Queue priority; lower runs first: manual > rule > rebalance > reactive >
    /// proactive. What an operator asked for comes before what traffic suggests; a
    /// rebalance makes the room a promotion queued with it waits for, so it goes first.
    pub fn priority(self) -> i64 {
        match self {
            MoveReason::Manual => 0,
            MoveReason::Rule => 1,
            MoveReason::CapacityRebalance => 2,
            MoveReason::ReactiveAccessSpike => 3,
            MoveReason::ProactivePrediction => 4,
        }
    }
}

impl fmt::Display for MoveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MoveReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MoveReason::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown migration reason {s:?}"))
    }
}

/// A move as recorded in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRecord {
    /// Migration id (UUIDv7).
    pub id: String,
    /// The object being moved.
    pub object_id: String,
    /// Object version the move was planned for.
    pub object_version: i64,
    /// Tier the object was on when the move was planned.
    pub from_tier: String,
    /// Destination tier.
    pub to_tier: String,
    /// Why.
    pub reason: MoveReason,
    /// Where it stands.
    pub status: MoveStatus,
    /// Copy attempts started so far.
    pub attempts: i64,
    /// Bytes copied in the current attempt.
    pub bytes_copied: i64,
    /// Bytes to copy.
    pub bytes_total: i64,
    /// Last error, if any.
    pub error: Option<String>,
    /// Enqueued at, epoch ms.
    pub created_at: i64,
    /// First copy attempt started at, epoch ms.
    pub started_at: Option<i64>,
    /// Reached a final status at, epoch ms.
    pub finished_at: Option<i64>,
    /// Last change, epoch ms.
    pub updated_at: i64,
    /// Worker running the move.
    pub claimed_by: Option<String>,
    /// The worker's claim expires at, epoch ms; afterwards recovery may take over.
    pub lease_until: Option<i64>,
    /// Earliest start of the next attempt, epoch ms (retry backoff).
    pub not_before: i64,
    /// Key of the bytes being copied, on `from_tier`.
    pub source_location: Option<String>,
    /// Key of the copy being written, on `to_tier`; cleared once a failed copy is removed.
    pub dest_location: Option<String>,
    /// Duration of the successful attempt, ms.
    pub duration_ms: Option<i64>,
    /// The rule that called for it, for reason `rule`.
    pub rule_id: Option<String>,
    /// The bulk move it is part of.
    pub batch_id: Option<String>,
}

impl MoveRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<MoveRecord> {
        let reason: String = row.try_get("reason")?;
        let status: String = row.try_get("status")?;
        Ok(MoveRecord {
            id: row.try_get("id")?,
            object_id: row.try_get("object_id")?,
            object_version: row.try_get("object_version")?,
            from_tier: row.try_get("from_tier")?,
            to_tier: row.try_get("to_tier")?,
            reason: reason.parse().map_err(CatalogueError::Corrupt)?,
            status: status.parse().map_err(CatalogueError::Corrupt)?,
            attempts: row.try_get("attempts")?,
            bytes_copied: row.try_get("bytes_copied")?,
            bytes_total: row.try_get("bytes_total")?,
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            updated_at: row.try_get("updated_at")?,
            claimed_by: row.try_get("claimed_by")?,
            lease_until: row.try_get("lease_until")?,
            not_before: row.try_get("not_before")?,
            source_location: row.try_get("source_location")?,
            dest_location: row.try_get("dest_location")?,
            duration_ms: row.try_get("duration_ms")?,
            rule_id: row.try_get("rule_id")?,
            batch_id: row.try_get("batch_id")?,
        })
    }
}

/// A move to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMove {
    /// The object.
    pub object_id: String,
    /// Its version now.
    pub object_version: i64,
    /// Its tier now.
    pub from_tier: String,
    /// Where it should go.
    pub to_tier: String,
    /// Why.
    pub reason: MoveReason,
    /// Its size now.
    pub bytes_total: i64,
}

/// What besides its reason caused a move: the rule or the bulk move it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveCause {
    /// The rule, for reason `rule`.
    pub rule_id: Option<String>,
    /// The batch, for a bulk move.
    pub batch_id: Option<String>,
}

/// Filters for [`Catalogue::list_moves`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveFilter {
    /// Only moves of this object.
    pub object_id: Option<String>,
    /// Only moves in this status.
    pub status: Option<MoveStatus>,
    /// Only moves for this reason.
    pub reason: Option<MoveReason>,
}

impl Catalogue {
    /// Queues a move as `pending`. Fails with [`CatalogueError::Conflict`] when the object
    /// already has an active move: the database's unique index decides, so concurrent
    /// enqueuers cannot both win.
    pub async fn enqueue_move(&self, new: &NewMove) -> Result<MoveRecord> {
        self.enqueue_caused_move(new, &MoveCause::default()).await
    }

    /// [`Catalogue::enqueue_move`], naming the rule or batch that caused the move.
    pub async fn enqueue_caused_move(
        &self,
        new: &NewMove,
        cause: &MoveCause,
    ) -> Result<MoveRecord> {
        let now = now_ms();
        let sql = format!(
            "INSERT INTO migrations (id, object_id, object_version, from_tier, to_tier, reason, \
             priority, status, bytes_total, created_at, updated_at, rule_id, batch_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9, $10, $11) \
             RETURNING {MOVE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new_id())
            .bind(&new.object_id)
            .bind(new.object_version)
            .bind(&new.from_tier)
            .bind(&new.to_tier)
            .bind(new.reason.as_str())
            .bind(new.reason.priority())
            .bind(new.bytes_total)
            .bind(now)
            .bind(cause.rule_id.as_deref())
            .bind(cause.batch_id.as_deref())
            .fetch_one(&self.writes)
            .await
            .map_err(|e| {
                CatalogueError::conflict_or(e, || {
                    format!("object {} already has an active migration", new.object_id)
                })
            })?;
        self.queued.notify_one();
        MoveRecord::from_row(&row)
    }

    /// The migration with this id.
    pub async fn get_move(&self, id: &str) -> Result<MoveRecord> {
        let sql = format!("SELECT {MOVE_COLUMNS} FROM migrations WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reads)
            .await?
            .ok_or_else(|| CatalogueError::NotFound {
                kind: "migration",
                id: id.into(),
            })?;
        MoveRecord::from_row(&row)
    }

    /// Migrations newest first, `limit` at a time, starting after the id `after`.
    pub async fn list_moves(
        &self,
        filter: &MoveFilter,
        limit: i64,
        after: Option<&str>,
    ) -> Result<Page<MoveRecord>> {
        let limit = page_limit(limit);
        let sql = format!(
            "SELECT {MOVE_COLUMNS} FROM migrations \
             WHERE (CAST($1 AS TEXT) IS NULL OR object_id = $1) \
               AND (CAST($2 AS TEXT) IS NULL OR status = $2) \
               AND (CAST($3 AS TEXT) IS NULL OR reason = $3) \
               AND (CAST($4 AS TEXT) IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.object_id.as_deref())
            .bind(filter.status.map(MoveStatus::as_str))
            .bind(filter.reason.map(MoveReason::as_str))
            .bind(after)
            .bind(limit + 1)
            .fetch_all(&self.reads)
            .await?;
        let items = rows
            .iter()
            .map(MoveRecord::from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |m| &m.id))
    }

    /// The objects with a move under way (pending, copying or verifying), each with the
    /// tier it is moving to.
    pub async fn objects_moving(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT object_id, to_tier FROM migrations \
             WHERE status IN ('pending', 'copying', 'verifying')",
        )
        .fetch_all(&self.reads)
        .await?)
    }

    /// Whether a move out of `tier` is under way: room it will free.
    pub async fn moves_out_of(&self, tier: &str) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM migrations \
             WHERE from_tier = $1 AND status IN ('pending', 'copying', 'verifying') LIMIT 1",
        )
        .bind(tier)
        .fetch_optional(&self.reads)
        .await?;
        Ok(row.is_some())
    }

    /// How many moves wait or run now, and how many failed since `since_ms`: read off
    /// the queue's index, never the whole history.
    pub async fn move_activity(&self, since_ms: i64) -> Result<MoveActivity> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, CAST(COUNT(*) AS BIGINT) FROM migrations \
             WHERE status IN ('pending', 'copying', 'verifying') \
                OR (status = 'failed' AND finished_at >= $1) \
             GROUP BY status",
        )
        .bind(since_ms)
        .fetch_all(&self.reads)
        .await?;
        let mut activity = MoveActivity::default();
        for (status, n) in rows {
            match status.parse().map_err(CatalogueError::Corrupt)? {
                MoveStatus::Pending => activity.pending = n,
                MoveStatus::Copying => activity.copying = n,
                MoveStatus::Verifying => activity.verifying = n,
                _ => activity.failed = n,
            }
        }
        Ok(activity)
    }

    /// How many moves there are per status and reason, for metrics. Combinations with
    /// no moves are left out.
    pub async fn move_counts(&self) -> Result<Vec<(MoveStatus, MoveReason, i64)>> {
        let rows = sqlx::query(
            "SELECT status, reason, CAST(COUNT(*) AS BIGINT) AS n FROM migrations \
             GROUP BY status, reason ORDER BY status, reason",
        )
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let reason: String = row.try_get("reason")?;
                Ok((
                    status.parse().map_err(CatalogueError::Corrupt)?,
                    reason.parse().map_err(CatalogueError::Corrupt)?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }
}

/// Moves waiting and running now, and those failed lately (see
/// [`Catalogue::move_activity`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveActivity {
    /// Queued, not started.
    pub pending: i64,
    /// Copying their bytes.
    pub copying: i64,
    /// Verifying their copy.
    pub verifying: i64,
    /// Failed for good since the time asked about.
    pub failed: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in MoveStatus::ALL {
            assert_eq!(s.as_str().parse::<MoveStatus>(), Ok(s));
        }
        for r in MoveReason::ALL {
            assert_eq!(r.as_str().parse::<MoveReason>(), Ok(r));
        }
        assert!("done".parse::<MoveStatus>().is_err());
    }

    #[test]
    fn priorities_follow_reason_order() {
        let p: Vec<_> = MoveReason::ALL.iter().map(|r| r.priority()).collect();
        assert!(p.windows(2).all(|w| w[0] < w[1]));
    }
}
