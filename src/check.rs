//! `strata check`: the catalogue compared with what the tiers hold, the command an
//! operator runs after an incident (as `restic check` or `git fsck`).
//!
//! Every catalogued object must have bytes at its location, of its size; a sample of
//! them (all with `full`) is read and hashed against its checksum. Every key a tier
//! holds must belong to an object or to a move (copies being written or still to be
//! removed by recovery); the rest, once older than the grace period, are orphans.
//! Repair removes orphans and restores a damaged object from another copy of the same
//! bytes when a tier holds one, or else records the damage in the catalogue.
//!
//! Objects and moves change while a check runs: each finding is confirmed against the
//! catalogue and the tier before it is reported, so a move or rewrite in flight is never
//! taken for damage.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::db::{Catalogue, CatalogueError, ObjectRecord};
use crate::storage::{Declared, Listed, StorageError, Store, Tiers};

/// Objects read from the catalogue at a time.
const PAGE: i64 = 1000;

/// What to check and whether to repair.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Hash every object, not a sample.
    pub full: bool,
    /// Objects hashed when not `full`.
    pub sample: u64,
    /// Remove orphans; restore or mark damaged objects.
    pub repair: bool,
    /// Keys younger than this are never orphans: writes in flight (the mover's lease).
    pub grace: Duration,
}

/// Why a check could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The catalogue failed.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// A tier could not be listed or read.
    #[error("tier {tier}: {source}")]
    Storage {
        /// The tier.
        tier: String,
        /// What failed.
        source: StorageError,
    },
}

/// What is wrong with a key or an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The object's bytes are not where the catalogue says.
    Missing,
    /// The object's bytes have another size than catalogued.
    WrongSize {
        /// Size on the tier.
        stored: u64,
        /// Size in the catalogue.
        expected: u64,
    },
    /// The object's bytes hash to another checksum than catalogued.
    WrongChecksum {
        /// Checksum of the bytes on the tier.
        stored: String,
    },
    /// Bytes no object or move refers to.
    Orphan {
        /// Their size.
        size: u64,
    },
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Tier holding (or missing) the bytes.
    pub tier: String,
    /// Their location on it.
    pub location: String,
    /// The object concerned; `None` for an orphan.
    pub object_id: Option<String>,
    /// What is wrong.
    pub problem: Problem,
    /// What repair did about it, when it ran.
    pub repair: Option<Repair>,
}

/// What repair did about a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Repair {
    /// The orphan was removed.
    Removed,
    /// The object's bytes were rewritten from another copy with its checksum.
    Restored {
        /// Tier of the copy.
        from_tier: String,
        /// Its location.
        from_location: String,
    },
    /// No good copy exists: the damage is recorded in the catalogue.
    MarkedDamaged,
    /// Repair failed; the message says why.
    Failed {
        /// Why.
        error: String,
    },
}

/// What a check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Objects in the catalogue, checked for presence and size.
    pub objects: u64,
    /// Of them, read and hashed.
    pub hashed: u64,
    /// Keys the tiers hold.
    pub stored_keys: u64,
    /// Problems, in the order found.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Findings that remain a problem: not repaired (an object marked damaged stays
    /// damaged).
    pub fn unresolved(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| {
                !matches!(
                    f.repair,
                    Some(Repair::Removed) | Some(Repair::Restored { .. })
                )
            })
            .count()
    }

    /// The report for people, one line per finding.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "checked {} objects ({} hashed) against {} stored keys: {} problems\n",
            self.objects,
            self.hashed,
            self.stored_keys,
            self.findings.len()
        );
        for f in &self.findings {
            let what = match &f.problem {
                Problem::Missing => "missing: no bytes at the catalogued location".to_string(),
                Problem::WrongSize { stored, expected } => {
                    format!("wrong size: {stored} bytes stored, {expected} catalogued")
                }
                Problem::WrongChecksum { stored } => {
                    format!("wrong checksum: the bytes hash to {stored}")
                }
                Problem::Orphan { size } => {
                    format!("orphan: {size} bytes no object or move refers to")
                }
            };
            let object = f
                .object_id
                .as_deref()
                .map_or(String::new(), |id| format!(" (object {id})"));
            let done = match &f.repair {
                None => String::new(),
                Some(Repair::Removed) => " -> removed".into(),
                Some(Repair::Restored {
                    from_tier,
                    from_location,
                }) => format!(" -> restored from {from_tier}/{from_location}"),
                Some(Repair::MarkedDamaged) => {
                    " -> no good copy anywhere; marked damaged in the catalogue".into()
                }
                Some(Repair::Failed { error }) => format!(" -> repair failed: {error}"),
            };
            out.push_str(&format!(
                "  {}/{}{object}: {what}{done}\n",
                f.tier, f.location
            ));
        }
        out
    }
}

/// Checks the catalogue against the tiers (and repairs, with `options.repair`).
pub async fn check(
    catalogue: &Catalogue,
    tiers: &Tiers,
    options: CheckOptions,
) -> Result<CheckReport, CheckError> {
    // Listed before the catalogue is read: bytes written after their listing belong to
    // objects or moves the catalogue shows by then.
    let mut stored: HashMap<(String, String), Listed> = HashMap::new();
    for (tier, store) in tiers.iter() {
        for listed in store.list().await.map_err(|source| CheckError::Storage {
            tier: tier.name.clone(),
            source,
        })? {
            stored.insert((tier.name.clone(), listed.key.clone()), listed);
        }
    }
    let mut report = CheckReport {
        stored_keys: stored.len() as u64,
        ..CheckReport::default()
    };
    let total = catalogue.count_objects().await?.max(1) as u64;
    let mut sampler = Sampler::new(if options.full { total } else { options.sample }, total);
    let mut referenced: HashSet<(String, String)> = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = catalogue.object_records(after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for object in page {
            report.objects += 1;
            let place = (object.tier.clone(), object.location.clone());
            let hash = sampler.next();
            let (problem, hashed) = match tiers.store(&object.tier) {
                Some(store) => examine(store, &object, stored.get(&place), hash).await?,
                None => (None, false),
            };
            report.hashed += u64::from(hashed);
            referenced.insert(place);
            if let Some(problem) = problem
                && let Some(finding) = confirm(catalogue, tiers, &object, problem).await?
            {
                report.findings.push(finding);
            }
        }
    }
    referenced.extend(copies_in_use(catalogue).await?);
    let settled = SystemTime::now() - options.grace;
    let mut orphans: Vec<_> = stored
        .iter()
        .filter(|(place, listed)| !referenced.contains(*place) && listed.modified < settled)
        .collect();
    orphans.sort_by(|a, b| a.0.cmp(b.0));
    // Moves queued and parts stored since the first look may have taken some of them.
    let in_use = if orphans.is_empty() {
        HashSet::new()
    } else {
        copies_in_use(catalogue).await?
    };
    for ((tier, key), listed) in orphans {
        if !in_use.contains(&(tier.clone(), key.clone()))
            && still_unreferenced(catalogue, tier, key).await?
        {
            report.findings.push(Finding {
                tier: tier.clone(),
                location: key.clone(),
                object_id: None,
                problem: Problem::Orphan { size: listed.size },
                repair: None,
            });
        }
    }
    if options.repair {
        for i in 0..report.findings.len() {
            let repair = repair(catalogue, tiers, &stored, &report.findings[i]).await;
            report.findings[i].repair = Some(repair);
        }
    }
    Ok(report)
}

/// What is wrong with `object`'s bytes as listed (`listed`), hashing them when `hash`
/// (and they are there, of the right size); and whether they were hashed.
async fn examine(
    store: &Store,
    object: &ObjectRecord,
    listed: Option<&Listed>,
    hash: bool,
) -> Result<(Option<Problem>, bool), CheckError> {
    let expected = object.size as u64;
    let Some(listed) = listed else {
        return Ok((Some(Problem::Missing), false));
    };
    if listed.size != expected {
        let problem = Problem::WrongSize {
            stored: listed.size,
            expected,
        };
        return Ok((Some(problem), false));
    }
    if !hash {
        return Ok((None, false));
    }
    match store.digest(&object.location).await {
        Ok(digest) if digest.checksum == object.checksum => Ok((None, true)),
        Ok(digest) => Ok((
            Some(Problem::WrongChecksum {
                stored: digest.checksum,
            }),
            true,
        )),
        Err(StorageError::NotFound { .. }) => Ok((Some(Problem::Missing), false)),
        Err(source) => Err(CheckError::Storage {
            tier: object.tier.clone(),
            source,
        }),
    }
}

/// `problem` as a finding if it still holds: the object was not moved, rewritten or
/// deleted meanwhile, and (when its bytes seemed missing) they are still not there.
async fn confirm(
    catalogue: &Catalogue,
    tiers: &Tiers,
    object: &ObjectRecord,
    problem: Problem,
) -> Result<Option<Finding>, CheckError> {
    let now = match catalogue.get_object(&object.id).await {
        Ok(now) => now,
        Err(CatalogueError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if (now.version, &now.tier, &now.location) != (object.version, &object.tier, &object.location) {
        return Ok(None);
    }
    if problem == Problem::Missing
        && let Some(store) = tiers.store(&object.tier)
        && store.size(&object.location).await.is_ok()
    {
        return Ok(None);
    }
    Ok(Some(Finding {
        tier: object.tier.clone(),
        location: object.location.clone(),
        object_id: Some(object.id.clone()),
        problem,
        repair: None,
    }))
}

/// `(tier, location)` of every copy that is no object's own but still in use: those of
/// moves, and the stored parts of multipart uploads in progress.
async fn copies_in_use(catalogue: &Catalogue) -> Result<HashSet<(String, String)>, CheckError> {
    let mut in_use = catalogue.copies_in_moves().await?;
    in_use.extend(catalogue.copies_in_uploads().await?);
    Ok(in_use)
}

/// Whether `key` on `tier` is still no object's: a rewrite may have put an object there
/// since the catalogue was read.
async fn still_unreferenced(
    catalogue: &Catalogue,
    tier: &str,
    key: &str,
) -> Result<bool, CheckError> {
    let place = (tier.to_string(), key.to_string());
    // Strata's locations start with the object id.
    let Some((id, _)) = key.split_once('/') else {
        return Ok(true);
    };
    match catalogue.get_object(id).await {
        Ok(object) => Ok((object.tier, object.location) != place),
        Err(CatalogueError::NotFound { .. }) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Repairs one finding.
async fn repair(
    catalogue: &Catalogue,
    tiers: &Tiers,
    stored: &HashMap<(String, String), Listed>,
    finding: &Finding,
) -> Repair {
    let Some(store) = tiers.store(&finding.tier) else {
        return Repair::Failed {
            error: format!("tier {} is not configured", finding.tier),
        };
    };
    let Some(id) = &finding.object_id else {
        return match store.delete(&finding.location).await {
            Ok(()) => Repair::Removed,
            Err(e) => Repair::Failed {
                error: e.to_string(),
            },
        };
    };
    match restore(catalogue, tiers, stored, id, finding).await {
        Ok(Some(repair)) => repair,
        Ok(None) => {
            let object = match catalogue.get_object(id).await {
                Ok(object) => object,
                Err(e) => {
                    return Repair::Failed {
                        error: e.to_string(),
                    };
                }
            };
            let problem = serde_json::to_string(&finding.problem).unwrap_or_default();
            match catalogue.mark_damaged(id, object.version, &problem).await {
                Ok(()) => Repair::MarkedDamaged,
                Err(e) => Repair::Failed {
                    error: e.to_string(),
                },
            }
        }
        Err(error) => Repair::Failed { error },
    }
}

/// Rewrites object `id`'s bytes from another copy on any tier (a leftover of a move)
/// whose size and checksum are the catalogue's; `None` when no such copy exists.
async fn restore(
    catalogue: &Catalogue,
    tiers: &Tiers,
    stored: &HashMap<(String, String), Listed>,
    id: &str,
    finding: &Finding,
) -> Result<Option<Repair>, String> {
    let object = catalogue.get_object(id).await.map_err(|e| e.to_string())?;
    let prefix = format!("{id}/");
    let mut candidates: Vec<_> = stored
        .iter()
        .filter(|((tier, key), listed)| {
            key.starts_with(&prefix)
                && (tier, key) != (&finding.tier, &finding.location)
                && listed.size == object.size as u64
        })
        .map(|(place, _)| place)
        .collect();
    candidates.sort();
    let Some(target) = tiers.store(&object.tier) else {
        return Err(format!("tier {} is not configured", object.tier));
    };
    for (tier, key) in candidates {
        let Some(source) = tiers.store(tier) else {
            continue;
        };
        if !source
            .digest(key)
            .await
            .is_ok_and(|d| d.checksum == object.checksum)
        {
            continue;
        }
        let bytes = source
            .get(key, None, None)
            .await
            .map_err(|e| e.to_string())?;
        let written = target
            .put(
                &object.location,
                bytes,
                &object.content_type,
                Declared::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        if written.checksum != object.checksum {
            return Err(format!(
                "the copy at {tier}/{key} changed while it was restored from"
            ));
        }
        return Ok(Some(Repair::Restored {
            from_tier: tier.clone(),
            from_location: key.clone(),
        }));
    }
    Ok(None)
}

/// Picks `wanted` of `total` items as they go by, each equally likely (selection
/// sampling, Knuth's algorithm S), from a clock-seeded generator.
struct Sampler {
    wanted: u64,
    left: u64,
    state: u64,
}

impl Sampler {
    fn new(wanted: u64, total: u64) -> Sampler {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Sampler {
            wanted: wanted.min(total),
            left: total,
            state: seed | 1,
        }
    }

    /// Whether the next item is picked.
    fn next(&mut self) -> bool {
        if self.left == 0 {
            // More items than counted (objects created since): never picked.
            return false;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let pick = self.state % self.left < self.wanted;
        self.left -= 1;
        self.wanted -= u64::from(pick);
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampler_picks_exactly_as_many_as_wanted() {
        for (wanted, total) in [(0, 10), (3, 10), (10, 10), (50, 10), (100, 100_000)] {
            let mut sampler = Sampler::new(wanted, total);
            let picked = (0..total).filter(|_| sampler.next()).count() as u64;
            assert_eq!(picked, wanted.min(total), "{wanted} of {total}");
            assert!(!sampler.next(), "nothing past the count");
        }
    }

    #[test]
    fn only_removed_and_restored_findings_are_resolved() {
        let finding = |repair| Finding {
            tier: "t".into(),
            location: "l".into(),
            object_id: None,
            problem: Problem::Missing,
            repair,
        };
        let report = CheckReport {
            findings: vec![
                finding(None),
                finding(Some(Repair::Removed)),
                finding(Some(Repair::MarkedDamaged)),
                finding(Some(Repair::Failed { error: "x".into() })),
            ],
            ..CheckReport::default()
        };
        assert_eq!(report.unresolved(), 3);
    }
}
