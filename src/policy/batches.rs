//! Bulk moves: the objects a filter selects for one tier, and queuing them as a batch.

use std::collections::{HashMap, HashSet};

use super::Policy;
use super::rules::Selector;
use super::rules_pass::{Pages, subject};
use crate::db::{Catalogue, CatalogueError, MoveCause, MoveReason, NewMove, ObjectRecord};

/// What a bulk move of some objects to one tier would take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchSelection {
    /// The objects it would move.
    pub objects: Vec<ObjectRecord>,
    /// Objects selected that are on the tier already.
    pub already_there: u64,
    /// Objects selected whose rule does not allow the tier, by rule id.
    pub held_by_rules: HashMap<String, u64>,
    /// Objects selected with a move under way.
    pub moving: u64,
}

impl Policy {
    /// The objects `selector` selects that a bulk move to `to_tier` would move at
    /// `now_ms`: not there already, no move under way, and allowed there by their rule.
    pub async fn select_for_batch(
        &self,
        catalogue: &Catalogue,
        selector: &Selector,
        to_tier: &str,
        now_ms: i64,
    ) -> Result<BatchSelection, CatalogueError> {
        let rules = self.load_rules(catalogue).await?;
        let to = self.rank(to_tier);
        let moving: HashSet<String> = catalogue
            .objects_moving()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut selection = BatchSelection::default();
        let mut pages = Pages::under(selector.prefix.clone());
        while let Some(page) = pages.next(catalogue).await? {
            for (object, last_access_at) in page {
                let subject = subject(&object, last_access_at);
                if !selector.selects(&subject) {
                    continue;
                }
                if object.tier == to_tier {
                    selection.already_there += 1;
                } else if moving.contains(&object.id) {
                    selection.moving += 1;
                } else if let Some(bound) = rules
                    .bound(&subject, now_ms)
                    .filter(|b| to.is_some_and(|to| !b.allowed.allows(to)))
                {
                    *selection.held_by_rules.entry(bound.rule_id).or_default() += 1;
                } else {
                    selection.objects.push(object);
                }
            }
        }
        Ok(selection)
    }

    /// Queues a move of each of `objects` to `to_tier` for batch `batch_id` (reason
    /// `manual`); one that has a move under way by now is left out. Returns the objects
    /// and bytes queued.
    pub async fn queue_batch(
        &self,
        catalogue: &Catalogue,
        batch_id: &str,
        to_tier: &str,
        objects: &[ObjectRecord],
    ) -> Result<(i64, i64), CatalogueError> {
        let cause = MoveCause {
            rule_id: None,
            batch_id: Some(batch_id.to_string()),
        };
        let (mut queued, mut bytes) = (0, 0);
        for object in objects {
            let new = NewMove {
                object_id: object.id.clone(),
                object_version: object.version,
                from_tier: object.tier.clone(),
                to_tier: to_tier.to_string(),
                reason: MoveReason::Manual,
                bytes_total: object.size,
            };
            match catalogue.enqueue_caused_move(&new, &cause).await {
                Ok(_) => {
                    queued += 1;
                    bytes += object.size;
                }
                Err(CatalogueError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!(batch = %batch_id, to = %to_tier, objects = queued, bytes, "bulk move queued");
        Ok((queued, bytes))
    }
}
