//! The scheduled forecaster's view of every object: its tier and its last week of
//! hourly accesses, loaded once and then kept current by reading only what changed
//! (rows updated since the last run, the hour buckets of the last two hours). A run
//! predicts the objects whose history changed, and every object when the clock enters a
//! new hour (then every object's week has moved on by one hour).

use std::collections::HashMap;

use crate::db::{Catalogue, CatalogueError, HOUR_MS, HourHits, StoredPrediction, TrackedObject};

use std::cell::Cell;

use super::features::{HISTORY_HOURS, ObjectFacts, features_now};
use super::history::HourlyRing;
use super::{Model, object_facts};

/// Rows changed this long before the last read are read again: a write stamped
/// before the read may commit after it.
const CHANGE_SLACK_MS: i64 = 60_000;

/// After this long the state is loaded afresh, which also drops deleted objects.
const RELOAD_AFTER_MS: i64 = 24 * HOUR_MS;

#[derive(Debug)]
struct Tracked {
    tier: Box<str>,
    updated_at: i64,
    object: ObjectFacts,
    history: Option<HourlyRing>,
    /// Needs a new prediction before the next full run; listed in `dirty_ids` while
    /// set. A cell, so a run clears it while reading the map.
    dirty: Cell<bool>,
    /// The prediction last stored in the catalogue.
    saved: Option<f64>,
}

impl Tracked {
    /// Its predicted accesses with `model` at `now_ms`; `window` is scratch space.
    fn predict(&self, model: &Model, now_ms: i64, window: &mut [u32; HISTORY_HOURS]) -> f64 {
        let end_hour = now_ms.div_euclid(HOUR_MS);
        match &self.history {
            Some(ring) if !ring.is_quiet_at(end_hour) => {
                ring.window(end_hour, window);
                model.predict(&features_now(window, self.object, now_ms))
            }
            _ => model.predict(&features_now(&mut [], self.object, now_ms)),
        }
    }
}

/// Marks `tracked`, the object `id`, for a new prediction in the next run.
fn mark_dirty(tracked: &Tracked, id: &str, dirty_ids: &mut Vec<String>) {
    if !tracked.dirty.replace(true) {
        dirty_ids.push(id.to_string());
    }
}

/// The prediction for one object in a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectForecast<'a> {
    /// The object.
    pub object_id: &'a str,
    /// Its tier as last read.
    pub tier: &'a str,
    /// When its tier or content last changed, epoch ms.
    pub updated_at: i64,
    /// Predicted accesses over the model's horizon after the hour in progress.
    pub predicted: f64,
}

/// The forecaster's per-object state.
#[derive(Debug)]
pub struct Tracker {
    objects: HashMap<String, Tracked>,
    /// The objects marked dirty since the last run: a run between two full ones visits
    /// only these, not every tracked object.
    dirty_ids: Vec<String>,
    /// `updated_at` up to which object rows have been read.
    seen_until_ms: i64,
    loaded_at_ms: i64,
    /// The hour of the last run, and the model it used.
    last_run: Option<(i64, i64)>,
}

impl Tracker {
    /// No objects yet; `now_ms` counts as the time of the last full load.
    pub fn new(now_ms: i64) -> Tracker {
        Tracker {
            objects: HashMap::new(),
            dirty_ids: Vec::new(),
            seen_until_ms: i64::MIN,
            loaded_at_ms: now_ms,
            last_run: None,
        }
    }

    /// Reads every object and the last week of hour buckets.
    pub async fn load(catalogue: &Catalogue, now_ms: i64) -> Result<Tracker, CatalogueError> {
        let mut tracker = Tracker::new(now_ms);
        tracker.read_objects(catalogue).await?;
        let end_hour = now_ms.div_euclid(HOUR_MS);
        tracker
            .read_hours(catalogue, end_hour - HISTORY_HOURS as i64 + 1)
            .await?;
        Ok(tracker)
    }

    /// Reads what changed since the last load or update. Returns false when the state
    /// is old enough to be loaded afresh instead (see [`Tracker::load`]).
    pub async fn update(
        &mut self,
        catalogue: &Catalogue,
        now_ms: i64,
    ) -> Result<bool, CatalogueError> {
        if now_ms - self.loaded_at_ms > RELOAD_AFTER_MS {
            return Ok(false);
        }
        self.read_objects(catalogue).await?;
        // The previous hour too: its last events may have been counted after the last run.
        self.read_hours(catalogue, now_ms.div_euclid(HOUR_MS) - 1)
            .await?;
        Ok(true)
    }

    async fn read_objects(&mut self, catalogue: &Catalogue) -> Result<(), CatalogueError> {
        let since = self.seen_until_ms.saturating_sub(CHANGE_SLACK_MS);
        for row in catalogue.objects_changed_since(since).await? {
            self.observe_object(row);
        }
        Ok(())
    }

    async fn read_hours(
        &mut self,
        catalogue: &Catalogue,
        from_hour: i64,
    ) -> Result<(), CatalogueError> {
        catalogue
            .for_each_hour_hits(from_hour * HOUR_MS, |row| self.observe_hour(&row))
            .await
    }

    /// Takes in an object row: new, or with its tier or content changed.
    pub fn observe_object(&mut self, row: TrackedObject) {
        self.seen_until_ms = self.seen_until_ms.max(row.updated_at);
        match self.objects.get_mut(&row.id) {
            Some(tracked) => {
                if *tracked.tier != *row.tier || tracked.updated_at != row.updated_at {
                    tracked.tier = row.tier.into();
                    tracked.updated_at = row.updated_at;
                    tracked.object = object_facts(row.created_at, row.size_bytes);
                    mark_dirty(tracked, &row.id, &mut self.dirty_ids);
                }
            }
            None => {
                self.dirty_ids.push(row.id.clone());
                self.objects.insert(
                    row.id,
                    Tracked {
                        tier: row.tier.into(),
                        updated_at: row.updated_at,
                        object: object_facts(row.created_at, row.size_bytes),
                        history: None,
                        dirty: Cell::new(true),
                        saved: None,
                    },
                );
            }
        }
    }

    /// Takes in the count of one hour bucket of a tracked object. Counts of objects not
    /// tracked yet (created after the last object read) are skipped; the next run reads
    /// their hour again.
    pub fn observe_hour(&mut self, row: &HourHits) {
        let hits = u32::try_from(row.hits).unwrap_or(u32::MAX);
        self.observe_hits(&row.object_id, row.hour, hits);
    }

    /// Takes in `hits`, the count of `hour` of a tracked object so far (the simulator
    /// feeds its counts here, the service through [`Tracker::observe_hour`]).
    pub fn observe_hits(&mut self, object_id: &str, hour: i64, hits: u32) {
        if let Some(tracked) = self.objects.get_mut(object_id) {
            tracked
                .history
                .get_or_insert_with(HourlyRing::new)
                .set(hour, hits);
            mark_dirty(tracked, object_id, &mut self.dirty_ids);
        }
    }

    /// Objects tracked.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether no object is tracked.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Forgets an object that no longer exists.
    pub fn forget(&mut self, object_id: &str) {
        self.objects.remove(object_id);
    }

    /// Predicts with `model` as of `now_ms`: every object on the first run of an hour
    /// or of a model, otherwise those whose tier or history changed since the last run.
    pub fn forecast(&mut self, model: &Model, now_ms: i64) -> Vec<ObjectForecast<'_>> {
        let end_hour = now_ms.div_euclid(HOUR_MS);
        let full = self.last_run != Some((end_hour, model.version));
        if self
            .last_run
            .is_some_and(|(_, version)| version != model.version)
        {
            // Stored predictions of another model are out of date.
            for tracked in self.objects.values_mut() {
                tracked.saved = None;
            }
        }
        self.last_run = Some((end_hour, model.version));
        let dirty_ids = std::mem::take(&mut self.dirty_ids);
        let objects = &self.objects;
        let selected: Box<dyn Iterator<Item = (&String, &Tracked)>> = if full {
            Box::new(
                objects
                    .iter()
                    .inspect(|(_, tracked)| tracked.dirty.set(false)),
            )
        } else {
            // Clearing the mark on the way skips forgotten objects and ids listed twice.
            Box::new(
                dirty_ids
                    .iter()
                    .filter_map(|id| objects.get_key_value(id.as_str()))
                    .filter(|(_, tracked)| tracked.dirty.replace(false)),
            )
        };
        let mut window = [0u32; HISTORY_HOURS];
        selected
            .map(|(id, tracked)| ObjectForecast {
                object_id: id,
                tier: &tracked.tier,
                updated_at: tracked.updated_at,
                predicted: tracked.predict(model, now_ms, &mut window),
            })
            .collect()
    }

    /// The predictions among `made` that differ noticeably from what the catalogue
    /// holds (by more than half an access and 10 %), marked as stored; the catalogue
    /// keeps one row per object, and rewriting all of them every run would cost more
    /// than the run.
    pub fn to_store(&mut self, made: Vec<StoredPrediction>) -> Vec<StoredPrediction> {
        made.into_iter()
            .filter(|p| {
                let Some(tracked) = self.objects.get_mut(&p.object_id) else {
                    return false;
                };
                let changed = tracked.saved.is_none_or(|saved| {
                    (p.predicted_accesses - saved).abs() > (0.1 * saved).max(0.5)
                });
                if changed {
                    tracked.saved = Some(p.predicted_accesses);
                }
                changed
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::Example;
    use crate::forecast::features::FEATURE_COUNT;

    fn model() -> Model {
        // Learns "the next hour is like the last hour" from made-up, varied features.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let examples: Vec<Example> = (0..200)
            .map(|h| {
                let features: [f64; FEATURE_COUNT] = std::array::from_fn(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 1000) as f64 / 200.0
                });
                Example {
                    hour: h,
                    features,
                    target: features[0].exp_m1(),
                }
            })
            .collect();
        Model::train("t", &examples, 1, 0.2, 0).unwrap()
    }

    fn object(id: &str, tier: &str, updated_at: i64) -> TrackedObject {
        TrackedObject {
            id: id.into(),
            tier: tier.into(),
            updated_at,
            created_at: 0,
            size_bytes: 1 << 20,
        }
    }

    fn hits(id: &str, hour: i64, hits: i64) -> HourHits {
        HourHits {
            object_id: id.into(),
            hour,
            hits,
        }
    }

    #[test]
    fn runs_predict_what_changed_and_everything_each_new_hour() {
        let model = model();
        let hour = 500_000;
        let now = hour * HOUR_MS + 60_000;
        let mut tracker = Tracker::new(now);
        tracker.observe_object(object("busy", "public", 1));
        tracker.observe_object(object("idle", "public", 1));
        tracker.observe_hour(&hits("busy", hour, 50));
        tracker.observe_hour(&hits("ghost", hour, 50));
        assert_eq!(tracker.len(), 2, "hours of unknown objects are skipped");

        let first = tracker.forecast(&model, now);
        assert_eq!(first.len(), 2, "the first run predicts everything");
        let busy = first
            .iter()
            .find(|f| f.object_id == "busy")
            .unwrap()
            .predicted;
        let idle = first
            .iter()
            .find(|f| f.object_id == "idle")
            .unwrap()
            .predicted;
        assert!(busy > 10.0 * idle.max(0.1), "busy {busy} idle {idle}");

        assert!(
            tracker.forecast(&model, now + 1000).is_empty(),
            "nothing changed"
        );
        tracker.observe_hour(&hits("busy", hour, 60));
        let changed = tracker.forecast(&model, now + 2000);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].object_id, "busy");
        tracker.observe_object(object("idle", "onprem", 5));
        let moved = tracker.forecast(&model, now + 3000);
        assert_eq!((moved.len(), moved[0].tier), (1, "onprem"));

        // The next hour: every object again, and the busy hour is now one hour back.
        let next_hour = tracker.forecast(&model, now + HOUR_MS);
        assert_eq!(next_hour.len(), 2);
        tracker.forget("idle");
        assert_eq!(tracker.forecast(&model, now + 2 * HOUR_MS).len(), 1);
    }

    #[test]
    fn predictions_do_not_dip_when_a_new_hour_starts() {
        // The model predicts "the next hour is like the last": a steady 50 an hour
        // must still predict about 50 one minute into an hour that has 1 access so far.
        let model = model();
        let hour = 500_000;
        let mut tracker = Tracker::new(hour * HOUR_MS);
        tracker.observe_object(object("steady", "public", 1));
        for h in hour - 30..hour {
            tracker.observe_hour(&hits("steady", h, 50));
        }
        tracker.observe_hour(&hits("steady", hour, 1));
        let predicted = tracker.forecast(&model, hour * HOUR_MS + 60_000)[0].predicted;
        assert!(
            (40.0..60.0).contains(&predicted),
            "predicted {predicted} at the top of the hour"
        );
    }

    #[test]
    fn only_noticeable_changes_are_stored_again() {
        let mut tracker = Tracker::new(0);
        tracker.observe_object(object("a", "public", 1));
        let made = |predicted: f64| {
            vec![StoredPrediction {
                object_id: "a".into(),
                predicted_accesses: predicted,
                horizon_hours: 1,
                predicted_tier: "public".into(),
                model_version: 1,
                predicted_at: 0,
            }]
        };
        assert_eq!(tracker.to_store(made(10.0)).len(), 1, "never stored");
        assert!(tracker.to_store(made(10.5)).is_empty(), "within 10 %");
        assert_eq!(tracker.to_store(made(12.0)).len(), 1);
        assert!(tracker.to_store(made(12.3)).is_empty());
        assert!(tracker.to_store(made(0.0)).len() == 1);
        assert!(
            tracker.to_store(made(0.4)).is_empty(),
            "within half an access"
        );
    }
}
