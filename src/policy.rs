//! The policy: which tier an object belongs on, given what the detector or the
//! forecaster saw, and turning that into queued moves.
//!
//! Tiers are ordered hottest first. Each tier may have a promotion threshold
//! (`TIER_<NAME>_PROMOTE_ABOVE`, accesses per detector window); a spike promotes an
//! object to the hottest tier whose threshold its burst passed, and never demotes.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::{
    Catalogue, CatalogueError, MigrationFilter, MigrationReason, MigrationRecord, NewMigration,
    ObjectRecord,
};
use crate::detector::Spike;
use crate::metrics::Metrics;

/// Tier order and thresholds, from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Hottest first: (name, promotion threshold).
    tiers: Vec<(String, Option<u64>)>,
}

impl Policy {
    /// The policy of `config`'s tiers.
    pub fn new(config: &Config) -> Policy {
        Policy {
            tiers: config
                .tiers
                .iter()
                .map(|t| (t.name.clone(), t.promote_above))
                .collect(),
        }
    }

    /// The promotion thresholds, for the detector's levels.
    pub fn promotion_levels(&self) -> Vec<u64> {
        self.tiers.iter().filter_map(|(_, t)| *t).collect()
    }

    /// Position of `tier` in the order, 0 the hottest.
    pub fn rank(&self, tier: &str) -> Option<usize> {
        self.tiers.iter().position(|(name, _)| name == tier)
    }

    /// Where a burst of `recent` accesses should take an object now on `current`: the
    /// hottest tier whose threshold it passed, when that is hotter than `current`.
    pub fn reactive_target(&self, current: &str, recent: u64) -> Option<&str> {
        let current_rank = self.rank(current).unwrap_or(self.tiers.len());
        self.tiers
            .iter()
            .enumerate()
            .find(|(_, (_, threshold))| threshold.is_some_and(|t| recent > t))
            .filter(|(rank, _)| *rank < current_rank)
            .map(|(_, (name, _))| name.as_str())
    }

    /// Queues the move a spike calls for, if any. Returns the queued migration's id;
    /// `None` when the object is already hot enough, gone, or has a move under way.
    pub async fn act_on_spike(
        &self,
        catalogue: &Catalogue,
        spike: &Spike,
    ) -> Result<Option<String>, CatalogueError> {
        let object = match catalogue.get_object(&spike.object_id).await {
            Ok(object) => object,
            Err(CatalogueError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(target) = self.reactive_target(&object.tier, spike.recent) else {
            tracing::debug!(object = %object.id, tier = %object.tier, recent = spike.recent, "spike on an object already hot enough");
            return Ok(None);
        };
        let queued = catalogue
            .enqueue_migration(&move_of(
                &object,
                target,
                MigrationReason::ReactiveAccessSpike,
            ))
            .await;
        match queued {
            Ok(migration) => {
                tracing::info!(
                    object = %object.id,
                    from = %object.tier,
                    to = %target,
                    recent = spike.recent,
                    baseline = format!("{:.1}", spike.baseline),
                    migration = %migration.id,
                    "access spike: promotion queued"
                );
                Ok(Some(migration.id))
            }
            Err(CatalogueError::Conflict(_) | CatalogueError::NotFound { .. }) => {
                tracing::debug!(object = %object.id, "spike on an object with a move under way; left alone");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Why a requested move was not queued.
#[derive(Debug, thiserror::Error)]
pub enum MoveRefused {
    /// No tier of that name is configured.
    #[error("unknown tier {tier:?}; the tiers are {known}")]
    UnknownTier {
        /// The name asked for.
        tier: String,
        /// The configured tiers, hottest first.
        known: String,
    },
    /// The object is on that tier already.
    #[error("object {id} is already on tier {tier}")]
    AlreadyThere {
        /// The object.
        id: String,
        /// Its tier.
        tier: String,
    },
    /// The catalogue refused (unknown object, a move already under way) or failed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// A move the policy would queue now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    /// The object.
    pub object_id: String,
    /// Its key.
    pub key: String,
    /// Its tier now.
    pub from_tier: String,
    /// Where it would go.
    pub to_tier: String,
    /// Why.
    pub reason: MigrationReason,
    /// Accesses counted over the window the decision looked at.
    pub recent_accesses: u64,
}

impl Policy {
    /// Queues a move of `object_id` to `to_tier` for `reason`, as asked by a user.
    pub async fn request_move(
        &self,
        catalogue: &Catalogue,
        object_id: &str,
        to_tier: &str,
        reason: MigrationReason,
    ) -> Result<MigrationRecord, MoveRefused> {
        if self.rank(to_tier).is_none() {
            return Err(MoveRefused::UnknownTier {
                tier: to_tier.into(),
                known: self.tier_names().join(","),
            });
        }
        let object = catalogue.get_object(object_id).await?;
        if object.tier == to_tier {
            return Err(MoveRefused::AlreadyThere {
                id: object.id,
                tier: object.tier,
            });
        }
        let migration = catalogue
            .enqueue_migration(&move_of(&object, to_tier, reason))
            .await?;
        tracing::info!(object = %object.id, from = %object.tier, to = %to_tier, %reason, migration = %migration.id, "move queued on request");
        Ok(migration)
    }

    /// The reactive moves the policy would queue now from the counted accesses since
    /// `since_ms`, without queuing them: objects whose recent accesses pass a hotter
    /// tier's threshold and that have no move under way.
    pub async fn plan(
        &self,
        catalogue: &Catalogue,
        since_ms: i64,
    ) -> Result<Vec<PlannedMove>, CatalogueError> {
        let mut planned = Vec::new();
        for (object_id, hits) in catalogue.recent_hits(since_ms).await? {
            let recent = hits.max(0) as u64;
            let object = match catalogue.get_object(&object_id).await {
                Ok(object) => object,
                Err(CatalogueError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let Some(target) = self.reactive_target(&object.tier, recent) else {
                continue;
            };
            let busy = catalogue
                .list_migrations(
                    &MigrationFilter {
                        object_id: Some(object.id.clone()),
                        ..MigrationFilter::default()
                    },
                    1,
                    None,
                )
                .await?
                .items
                .first()
                .is_some_and(|m| m.status.is_active());
            if !busy {
                planned.push(PlannedMove {
                    to_tier: target.to_string(),
                    object_id: object.id,
                    key: object.key,
                    from_tier: object.tier,
                    reason: MigrationReason::ReactiveAccessSpike,
                    recent_accesses: recent,
                });
            }
        }
        planned.sort_by_key(|p| std::cmp::Reverse(p.recent_accesses));
        Ok(planned)
    }

    /// Tier names, hottest first.
    pub fn tier_names(&self) -> Vec<&str> {
        self.tiers.iter().map(|(name, _)| name.as_str()).collect()
    }
}

/// The queue entry for moving `object` as it is now to `to_tier`.
fn move_of(object: &ObjectRecord, to_tier: &str, reason: MigrationReason) -> NewMigration {
    NewMigration {
        object_id: object.id.clone(),
        object_version: object.version,
        from_tier: object.tier.clone(),
        to_tier: to_tier.to_string(),
        reason,
        bytes_total: object.size,
    }
}

/// Acts on the detector's spikes until `stop`: each becomes at most one queued move with
/// reason `reactive_access_spike`.
pub async fn run_reactive(
    policy: Arc<Policy>,
    catalogue: Catalogue,
    mut spikes: mpsc::Receiver<Spike>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let spike = tokio::select! {
            () = stop.cancelled() => return,
            spike = spikes.recv() => match spike {
                Some(spike) => spike,
                None => return,
            },
        };
        metrics.record_spike();
        match policy.act_on_spike(&catalogue, &spike).await {
            Ok(Some(_)) => metrics.record_reactive_move(),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(object = %spike.object_id, error = %e, "cannot queue the promotion for a spike; the next spike retries")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            tiers: vec![
                ("onprem".into(), Some(100)),
                ("private".into(), Some(20)),
                ("public".into(), None),
            ],
        }
    }

    #[test]
    fn spikes_promote_to_the_hottest_tier_passed() {
        let p = policy();
        assert_eq!(p.reactive_target("public", 150), Some("onprem"));
        assert_eq!(p.reactive_target("public", 30), Some("private"));
        assert_eq!(
            p.reactive_target("public", 20),
            None,
            "thresholds are exclusive"
        );
        assert_eq!(p.reactive_target("private", 30), None, "already there");
        assert_eq!(p.reactive_target("onprem", 30), None, "never a demotion");
        assert_eq!(p.reactive_target("private", 101), Some("onprem"));
        assert_eq!(p.promotion_levels(), [100, 20]);
    }
}
