//! The rules' side of the policy: reading them, and a pass over the objects they select
//! (moves for those not where their rule says, expiries for those due).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError};

use super::rules::{Bound, Rule, RuleSet, RuleSpec, Subject};
use super::{PlannedMove, Policy};
use crate::db::{Catalogue, CatalogueError, MoveReason, ObjectRecord};

/// Objects read per page of a pass.
const PAGE: i64 = 1000;

/// An object an expire rule has due for deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The object.
    pub object_id: String,
    /// Its key.
    pub key: String,
    /// Created at, epoch ms: a newer object under the same id is not expired.
    pub created_at: i64,
    /// The rule.
    pub rule_id: String,
}

/// The objects rules bound, by id, with the tiers they allow.
pub type Bounds = HashMap<String, Bound>;

/// What the rules call for now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesPlan {
    /// Moves of objects that are not where their rule allows, reason `rule`.
    pub moves: Vec<PlannedMove>,
    /// Objects due for deletion.
    pub expiries: Vec<Expiry>,
    /// Every object a rule bounds now.
    pub bounds: Bounds,
}

impl Policy {
    /// `spec` checked as rule `id` against the configured tiers.
    pub fn parse_rule(&self, id: &str, spec: RuleSpec) -> Result<Rule, String> {
        Rule::parse(id, spec, &self.tier_names(), self.day_ms)
    }

    /// The rules as last read.
    pub fn rule_set(&self) -> Arc<RuleSet> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the rules from the catalogue and keeps them. A stored rule that no longer
    /// checks (its tier is gone from the configuration) is left out, with a warning.
    pub async fn load_rules(&self, catalogue: &Catalogue) -> Result<Arc<RuleSet>, CatalogueError> {
        let mut rules = Vec::new();
        for record in catalogue.rules().await? {
            let parsed = serde_json::from_str::<RuleSpec>(&record.document)
                .map_err(|e| e.to_string())
                .and_then(|spec| self.parse_rule(&record.id, spec));
            match parsed {
                Ok(rule) => rules.push(rule),
                Err(why) => {
                    tracing::warn!(rule = %record.id, %why, "stored rule ignored: it does not hold with this configuration");
                }
            }
        }
        let set = Arc::new(RuleSet::new(rules));
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = set.clone();
        Ok(set)
    }

    /// Checks `rules` against the configuration (all or none; each must name its id)
    /// and stores them, replacing those of the same ids. Returns the rules stored.
    pub async fn store_rules(
        &self,
        catalogue: &Catalogue,
        rules: Vec<RuleSpec>,
    ) -> Result<Vec<Rule>, StoreRulesError> {
        let mut seen = HashSet::new();
        let mut checked = Vec::with_capacity(rules.len());
        for (n, spec) in rules.into_iter().enumerate() {
            let Some(id) = spec.id.clone() else {
                return Err(StoreRulesError::Invalid(format!(
                    "rule {} of the list has no id",
                    n + 1
                )));
            };
            if !seen.insert(id.clone()) {
                return Err(StoreRulesError::Invalid(format!(
                    "rule {id} is given twice"
                )));
            }
            checked.push(
                self.parse_rule(&id, spec)
                    .map_err(|why| StoreRulesError::Invalid(format!("rule {id}: {why}")))?,
            );
        }
        for rule in &checked {
            catalogue.put_rule(&rule.id, &rule.document()).await?;
        }
        self.load_rules(catalogue).await?;
        Ok(checked)
    }

    /// The bound `object`, last accessed at `last_access_at`, has at `now_ms`.
    pub(super) fn bound(
        &self,
        object: &ObjectRecord,
        last_access_at: Option<i64>,
        now_ms: i64,
    ) -> Option<Bound> {
        self.rule_set()
            .bound(&subject(object, last_access_at), now_ms)
    }

    /// What the rules (read afresh) call for at `now_ms`, without doing it.
    pub async fn plan_rules(
        &self,
        catalogue: &Catalogue,
        now_ms: i64,
    ) -> Result<RulesPlan, CatalogueError> {
        let rules = self.load_rules(catalogue).await?;
        let mut plan = RulesPlan::default();
        if rules.is_empty() {
            return Ok(plan);
        }
        let moving: HashMap<String, String> =
            catalogue.objects_moving().await?.into_iter().collect();
        for prefix in rules.prefixes() {
            let mut pages = Pages::under(prefix);
            while let Some(page) = pages.next(catalogue).await? {
                for (object, last_access_at) in &page {
                    let subject = subject(object, *last_access_at);
                    if let Some(rule) = rules.expiry(&subject, now_ms) {
                        plan.expiries.push(Expiry {
                            object_id: object.id.clone(),
                            key: object.key.clone(),
                            created_at: object.created_at,
                            rule_id: rule.id.clone(),
                        });
                        continue;
                    }
                    let Some(bound) = rules.bound(&subject, now_ms) else {
                        continue;
                    };
                    if let Some(planned) = self.rule_move(object, &bound, moving.get(&object.id)) {
                        plan.moves.push(planned);
                    }
                    plan.bounds.insert(object.id.clone(), bound);
                }
            }
        }
        Ok(plan)
    }

    /// The move that takes `object` where `bound` allows, unless it is there or on its
    /// way there (`moving_to`).
    fn rule_move(
        &self,
        object: &ObjectRecord,
        bound: &Bound,
        moving_to: Option<&String>,
    ) -> Option<PlannedMove> {
        let current = self.rank(&object.tier)?;
        if bound.allowed.allows(current) || moving_to.is_some() {
            return None;
        }
        let to = bound.allowed.clamp(current);
        Some(PlannedMove {
            object_id: object.id.clone(),
            key: Some(object.key.clone()),
            from_tier: object.tier.clone(),
            to_tier: self.tiers.get(to)?.name.clone(),
            reason: MoveReason::Rule,
            recent_accesses: None,
            predicted_accesses: None,
            benefit_accesses: None,
            bytes: u64::try_from(object.size).ok(),
            rule_id: Some(bound.rule_id.clone()),
        })
    }

    /// One pass of the rules at `now_ms`: queues the moves they call for, keeps the
    /// objects they bound for the forecaster's runs, and returns the plan (its expiries
    /// are the caller's to carry out) with the number of moves queued.
    pub async fn rules_pass(
        &self,
        catalogue: &Catalogue,
        now_ms: i64,
    ) -> Result<(RulesPlan, usize), CatalogueError> {
        let plan = self.plan_rules(catalogue, now_ms).await?;
        *self.bounds.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(plan.bounds.clone());
        let mut queued = 0;
        for planned in &plan.moves {
            if self.enqueue_planned(catalogue, planned).await?.is_some() {
                queued += 1;
            }
        }
        Ok((plan, queued))
    }

    /// The objects the last rules pass bounded.
    pub(super) fn last_bounds(&self) -> Arc<Bounds> {
        self.bounds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Why rules could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreRulesError {
    /// A rule does not check.
    #[error("{0}")]
    Invalid(String),
    /// The catalogue failed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// The objects under a key prefix, a page at a time, with their last accesses.
pub(super) struct Pages {
    prefix: Option<String>,
    after: Option<String>,
    done: bool,
}

impl Pages {
    /// Every object whose key starts with `prefix` (every object for `None`).
    pub(super) fn under(prefix: Option<String>) -> Pages {
        Pages {
            prefix,
            after: None,
            done: false,
        }
    }

    /// The next page; `None` after the last.
    pub(super) async fn next(
        &mut self,
        catalogue: &Catalogue,
    ) -> Result<Option<Vec<(ObjectRecord, Option<i64>)>>, CatalogueError> {
        if self.done {
            return Ok(None);
        }
        let page = catalogue
            .objects_by_prefix(self.prefix.as_deref(), self.after.as_deref(), PAGE)
            .await?;
        self.done = page.len() < PAGE as usize;
        self.after = page.last().map(|(o, _)| o.id.clone());
        Ok((!page.is_empty()).then_some(page))
    }
}

/// `object` as rules see it.
pub(super) fn subject(object: &ObjectRecord, last_access_at: Option<i64>) -> Subject<'_> {
    Subject {
        key: &object.key,
        content_type: &object.content_type,
        size: u64::try_from(object.size).unwrap_or_default(),
        created_at: object.created_at,
        last_access_at,
    }
}
