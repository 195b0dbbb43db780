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
use crate::db::{Catalogue, CatalogueError, MigrationReason, NewMigration};
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
            .enqueue_migration(&NewMigration {
                object_id: object.id.clone(),
                object_version: object.version,
                from_tier: object.tier.clone(),
                to_tier: target.to_string(),
                reason: MigrationReason::ReactiveAccessSpike,
                bytes_total: object.size,
            })
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
