//! The scheduled forecaster's view of every object: its tier and its last week of
//! hourly accesses, loaded once and then kept current by reading only what changed
//! (rows updated since the last run, the hour buckets of the last two hours). A run
//! predicts the objects whose history changed, and every object when the clock enters a
//! new hour (then every object's week has moved on by one hour).

use std::cell::Cell;

use foldhash::HashMap;

use crate::db::{Catalogue, CatalogueError, HOUR_MS, HourHits, StoredPrediction, TrackedObject};

use super::features::{ClosedHours, HISTORY_HOURS, ObjectFacts, day_rate_now};
use super::history::HourlyRing;
use super::shards::Shards;
use super::{Forecast, forecast_now};
use super::{Model, object_facts};

/// Rows changed this long before the last read are read again: a write stamped
/// before the read may commit after it.
const CHANGE_SLACK_MS: i64 = 60_000;

/// After this long the state is loaded afresh, which also drops deleted objects.
const RELOAD_AFTER_MS: i64 = 24 * HOUR_MS;

/// A tracked object, as [`Tracker::observe_object`] returns it: a caller that feeds
/// many counts (the simulator) passes this instead of the id, which saves a lookup of
/// the id per count. It stays valid until the object is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackedId(u32);

impl TrackedId {
    /// Its number: tracked objects are numbered from 0 in the order first observed, so
    /// a caller can keep what it knows of each in a vector.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug)]
struct Tracked {
    id: Box<str>,
    tier: Box<str>,
    updated_at: i64,
    object: ObjectFacts,
    history: Option<HourlyRing>,
    /// What the features need of the week before an hour, gathered at its first
    /// prediction in that hour: within the hour only its own count changes.
    closed: Cell<Option<(i64, ClosedHours)>>,
    /// Needs a new prediction before the next full run; listed in `dirty` while set. A
    /// cell, so a run clears it while reading the objects.
    dirty: Cell<bool>,
    /// The catalogue's row of its prediction; `None` when it has none, which reads as
    /// a prediction of nothing.
    saved: Option<SavedRow>,
    /// The last prediction made.
    predicted: Cell<f64>,
    /// Its variance as an estimate.
    variance: Cell<f64>,
    /// Accesses over the horizon at its mean rate of the last day, as of the last run.
    day_rate: Cell<f64>,
    /// Accesses counted since the last run.
    fresh: Cell<u32>,
    /// Accesses over the horizon at the rate of the last run's interval, when that rate
    /// was more than chance above the prediction (a burst in progress); else 0.
    burst: Cell<f64>,
}

impl Tracked {
    /// Its forecast with `model` at `now_ms`, and its accesses per hour over the last
    /// day.
    fn predict(&self, model: &Model, now_ms: i64) -> (Forecast, f64) {
        let end_hour = now_ms.div_euclid(HOUR_MS);
        // A week without accesses has nothing to gather: all counts are zero.
        let (closed, counted) = match &self.history {
            Some(ring) if !ring.is_quiet_at(end_hour) => {
                let closed = match self.closed.get() {
                    Some((hour, closed)) if hour == end_hour => closed,
                    _ => {
                        let closed = ring.closed_hours(end_hour);
                        self.closed.set(Some((end_hour, closed)));
                        closed
                    }
                };
                (closed, ring.count(end_hour))
            }
            _ => (ClosedHours::default(), 0),
        };
        (
            forecast_now(model, &closed, counted, self.object, now_ms),
            day_rate_now(&closed, counted, now_ms),
        )
    }

    /// What placement ranks it by: its last prediction, or a burst seen by the last run
    /// when that calls for more.
    fn value(&self) -> f64 {
        self.predicted.get().max(self.burst.get())
    }

    /// The variance of [`Tracked::value`] as an estimate: a burst's is a Poisson count's.
    fn variance(&self) -> f64 {
        if self.burst.get() > self.predicted.get() {
            self.burst.get()
        } else {
            self.variance.get()
        }
    }

    /// Marks it for a new prediction in the next run.
    fn mark_dirty(&self, at: u32, dirty: &mut Vec<u32>) {
        if !self.dirty.replace(true) {
            dirty.push(at);
        }
    }
}

/// What the catalogue's row of an object's prediction holds, as far as a run compares it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SavedRow {
    predicted: f64,
    value: f64,
    model_version: i64,
}

/// The prediction for one object in a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectForecast<'a> {
    /// The object.
    pub object_id: &'a str,
    /// The object as tracked.
    pub id: TrackedId,
    /// Its tier as last read.
    pub tier: &'a str,
    /// When its tier or content last changed, epoch ms.
    pub updated_at: i64,
    /// Predicted accesses over the model's horizon after the hour in progress.
    pub predicted: f64,
    /// What placement ranks it by (see [`TrackedValue`]).
    pub value: f64,
    /// The variance of `value` as an estimate.
    pub variance: f64,
    /// Accesses over the horizon at its mean rate of the last day.
    pub day_rate: f64,
}

/// An object's standing for placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackedValue<'a> {
    /// The object.
    pub object_id: &'a str,
    /// Its tier as last read.
    pub tier: &'a str,
    /// Its size.
    pub size_bytes: u64,
    /// Accesses expected over the horizon.
    pub value: f64,
    /// The variance of `value` as an estimate.
    pub variance: f64,
    /// Accesses over the horizon at its mean rate of the last day.
    pub day_rate: f64,
}

/// The value over `horizon_ms` of `fresh` accesses counted in the last `interval_ms`
/// when they are a burst: more than a count at the `predicted` rate would reach by
/// chance (three standard deviations of a Poisson count, and at least three more
/// accesses, so that no single read or two looks like a burst); else 0.
fn burst_value(fresh: u32, predicted: f64, interval_ms: i64, horizon_ms: i64) -> f64 {
    if interval_ms <= 0 || fresh == 0 {
        return 0.0;
    }
    let share = interval_ms as f64 / horizon_ms.max(1) as f64;
    let expected = predicted.max(0.0) * share;
    let fresh = f64::from(fresh);
    if fresh > expected + 3.0 * expected.sqrt() + 3.0 {
        fresh / share
    } else {
        0.0
    }
}

/// The forecaster's per-object state.
#[derive(Debug)]
pub struct Tracker {
    /// Object id to its place in `objects`.
    index: HashMap<Box<str>, u32>,
    /// Every object tracked since the last load; forgotten ones leave an empty place
    /// (never reused, so a [`TrackedId`] never names another object; a reload drops
    /// them).
    objects: Vec<Option<Tracked>>,
    /// The objects marked dirty since the last run: a run between two full ones visits
    /// only these, not every tracked object.
    dirty: Vec<u32>,
    /// `updated_at` up to which object rows have been read.
    seen_until_ms: i64,
    loaded_at_ms: i64,
    /// The hour of the last run, and the model it used.
    last_run: Option<(i64, i64)>,
    /// When the last run was.
    last_run_ms: Option<i64>,
    /// Objects whose last prediction saw a burst.
    bursting: Vec<u32>,
    /// The shards whose objects it follows; others are not read in.
    shards: Shards,
}

impl Tracker {
    /// No objects yet, of every shard; `now_ms` counts as the time of the last full load.
    pub fn new(now_ms: i64) -> Tracker {
        Tracker {
            index: HashMap::default(),
            objects: Vec::new(),
            dirty: Vec::new(),
            seen_until_ms: i64::MIN,
            loaded_at_ms: now_ms,
            last_run: None,
            last_run_ms: None,
            bursting: Vec::new(),
            shards: Shards::all(),
        }
    }

    /// Reads every object of `shards`, their last week of hour buckets and their stored
    /// predictions.
    pub async fn load(
        catalogue: &Catalogue,
        now_ms: i64,
        shards: Shards,
    ) -> Result<Tracker, CatalogueError> {
        let mut tracker = Tracker {
            shards,
            ..Tracker::new(now_ms)
        };
        tracker.read_objects(catalogue).await?;
        let end_hour = now_ms.div_euclid(HOUR_MS);
        tracker
            .read_hours(catalogue, end_hour - HISTORY_HOURS as i64 + 1)
            .await?;
        // The week just read is history, not accesses since a run.
        for tracked in tracker.objects.iter().flatten() {
            tracked.fresh.set(0);
        }
        // After a restart, a reload or shards changing hands, only the predictions that
        // changed are stored again (see `Tracker::to_store`).
        catalogue
            .for_each_stored_prediction(|id, predicted, value, model_version| {
                if let Some(&at) = tracker.index.get(id)
                    && let Some(tracked) = tracker.objects[at as usize].as_mut()
                {
                    tracked.saved = Some(SavedRow {
                        predicted,
                        value,
                        model_version,
                    });
                }
            })
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
        catalogue
            .for_each_object_changed_since(since, |row| {
                if self.shards.holds(&row.id) {
                    self.observe_object(row);
                }
            })
            .await
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

    /// The shards whose objects it follows.
    pub fn shards(&self) -> &Shards {
        &self.shards
    }

    /// Takes in an object row: new, or with its tier or content changed.
    pub fn observe_object(&mut self, row: TrackedObject) -> TrackedId {
        self.seen_until_ms = self.seen_until_ms.max(row.updated_at);
        if let Some(&at) = self.index.get(row.id.as_str())
            && let Some(tracked) = self.objects[at as usize].as_mut()
        {
            if *tracked.tier != *row.tier || tracked.updated_at != row.updated_at {
                tracked.tier = row.tier.into();
                tracked.updated_at = row.updated_at;
                tracked.object = object_facts(row.created_at, row.size_bytes);
                tracked.mark_dirty(at, &mut self.dirty);
            }
            return TrackedId(at);
        }
        let at = u32::try_from(self.objects.len()).expect("fewer than 2^32 objects");
        let id: Box<str> = row.id.into();
        self.index.insert(id.clone(), at);
        self.objects.push(Some(Tracked {
            id,
            tier: row.tier.into(),
            updated_at: row.updated_at,
            object: object_facts(row.created_at, row.size_bytes),
            history: None,
            closed: Cell::new(None),
            dirty: Cell::new(true),
            saved: None,
            predicted: Cell::new(0.0),
            variance: Cell::new(0.0),
            day_rate: Cell::new(0.0),
            fresh: Cell::new(0),
            burst: Cell::new(0.0),
        }));
        self.dirty.push(at);
        TrackedId(at)
    }

    /// Takes in the count of one hour bucket of a tracked object. Counts of objects not
    /// tracked yet (created after the last object read) are skipped; the next run reads
    /// their hour again.
    pub fn observe_hour(&mut self, row: &HourHits) {
        if let Some(&at) = self.index.get(row.object_id.as_str()) {
            let hits = u32::try_from(row.hits).unwrap_or(u32::MAX);
            self.observe_hits(TrackedId(at), row.hour, hits);
        }
    }

    /// Takes in `hits`, the count of `hour` of a tracked object so far (the simulator
    /// feeds its counts here, the service through [`Tracker::observe_hour`]).
    pub fn observe_hits(&mut self, object: TrackedId, hour: i64, hits: u32) {
        let Some(Some(tracked)) = self.objects.get_mut(object.0 as usize) else {
            return;
        };
        let ring = tracked.history.get_or_insert_with(HourlyRing::new);
        tracked.fresh.set(
            tracked
                .fresh
                .get()
                .saturating_add(hits.saturating_sub(ring.count(hour))),
        );
        ring.set(hour, hits);
        if tracked
            .closed
            .get()
            .is_some_and(|(end_hour, _)| hour < end_hour)
        {
            // An hour before the one it was gathered for changed.
            tracked.closed.set(None);
        }
        tracked.mark_dirty(object.0, &mut self.dirty);
    }

    /// Objects tracked.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no object is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Forgets an object that no longer exists.
    pub fn forget(&mut self, object_id: &str) {
        if let Some(at) = self.index.remove(object_id) {
            self.objects[at as usize] = None;
        }
    }

    /// Predicts with `model` as of `now_ms`: every object on the first run of an hour
    /// or of a model, otherwise those whose tier or history changed since the last run.
    pub fn forecast(&mut self, model: &Model, now_ms: i64) -> Vec<ObjectForecast<'_>> {
        let end_hour = now_ms.div_euclid(HOUR_MS);
        let full = self.last_run != Some((end_hour, model.version));
        self.last_run = Some((end_hour, model.version));
        let interval_ms = self.last_run_ms.map_or(0, |last| now_ms - last);
        self.last_run_ms = Some(now_ms);
        let horizon_ms = i64::try_from(model.horizon_hours).unwrap_or(1) * HOUR_MS;
        let dirty = std::mem::take(&mut self.dirty);
        let objects = &self.objects;
        // A burst seen by the last run is over unless this run sees it again.
        for at in self.bursting.drain(..) {
            if let Some(Some(tracked)) = objects.get(at as usize) {
                tracked.burst.set(0.0);
            }
        }
        let selected: Box<dyn Iterator<Item = (u32, &Tracked)>> = if full {
            Box::new(
                objects
                    .iter()
                    .enumerate()
                    .filter_map(|(at, tracked)| Some((at as u32, tracked.as_ref()?)))
                    .inspect(|(_, tracked)| tracked.dirty.set(false)),
            )
        } else {
            // Clearing the mark on the way skips forgotten objects and ones listed twice.
            Box::new(
                dirty
                    .iter()
                    .filter_map(|&at| Some((at, objects[at as usize].as_ref()?)))
                    .filter(|(_, tracked)| tracked.dirty.replace(false)),
            )
        };
        let bursting = &mut self.bursting;
        selected
            .map(|(at, tracked)| {
                let (forecast, per_hour) = tracked.predict(model, now_ms);
                let predicted = forecast.accesses;
                tracked.variance.set(forecast.variance);
                tracked.day_rate.set(per_hour * model.horizon_hours as f64);
                let burst =
                    burst_value(tracked.fresh.replace(0), predicted, interval_ms, horizon_ms);
                tracked.predicted.set(predicted);
                tracked.burst.set(burst);
                if burst > 0.0 {
                    bursting.push(at);
                }
                ObjectForecast {
                    object_id: &tracked.id,
                    id: TrackedId(at),
                    tier: &tracked.tier,
                    updated_at: tracked.updated_at,
                    predicted,
                    value: tracked.value(),
                    variance: tracked.variance(),
                    day_rate: tracked.day_rate.get(),
                }
            })
            .collect()
    }

    /// The object `object` names, unless it was forgotten.
    fn tracked(&self, object: TrackedId) -> Option<&Tracked> {
        self.objects.get(object.0 as usize)?.as_ref()
    }

    /// The value of `object` as of the last run (see [`Tracker::values`]).
    pub fn value(&self, object: TrackedId) -> f64 {
        self.tracked(object).map_or(0.0, Tracked::value)
    }

    /// The accesses over the horizon of `object` at its mean rate of the last day, as of
    /// the last run.
    pub fn day_rate(&self, object: TrackedId) -> f64 {
        self.tracked(object).map_or(0.0, |t| t.day_rate.get())
    }

    /// The variance of [`Tracker::value`] of `object` as an estimate.
    pub fn variance(&self, object: TrackedId) -> f64 {
        self.tracked(object).map_or(0.0, Tracked::variance)
    }

    /// Every tracked object with its value as of the last run: the most accesses over
    /// the horizon that its prediction or a burst in progress calls for.
    pub fn values(&self) -> impl Iterator<Item = TrackedValue<'_>> {
        self.objects.iter().flatten().map(|tracked| TrackedValue {
            object_id: &tracked.id,
            tier: &tracked.tier,
            size_bytes: tracked.object.size_bytes,
            value: tracked.value(),
            variance: tracked.variance(),
            day_rate: tracked.day_rate.get(),
        })
    }

    /// The predictions among `made` whose prediction or value differs noticeably from
    /// what the catalogue holds (by more than half an access and 10 %; an object without
    /// a row as if predicted at nothing) or whose row is another model's, marked as
    /// stored; the catalogue keeps one row per object, and rewriting all of them every
    /// run, or writing one for every object never read, would cost more than the run.
    pub fn to_store(&mut self, made: Vec<StoredPrediction>) -> Vec<StoredPrediction> {
        made.into_iter()
            .filter(|p| {
                let Some(Some(tracked)) = self
                    .index
                    .get(p.object_id.as_str())
                    .map(|&at| self.objects[at as usize].as_mut())
                else {
                    return false;
                };
                let differs = |now: f64, saved: f64| (now - saved).abs() > (0.1 * saved).max(0.5);
                // No row reads as this model's prediction of nothing.
                let saved = tracked.saved.unwrap_or(SavedRow {
                    predicted: 0.0,
                    value: 0.0,
                    model_version: p.model_version,
                });
                let changed = saved.model_version != p.model_version
                    || differs(p.predicted_accesses, saved.predicted)
                    || differs(p.value, saved.value);
                if changed {
                    tracked.saved = Some(SavedRow {
                        predicted: p.predicted_accesses,
                        value: p.value,
                        model_version: p.model_version,
                    });
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
                    steady: None,
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
    fn predictions_follow_every_change_of_the_history_within_an_hour() {
        // Each run's prediction must equal one made from the whole window afresh, also
        // after the hour in progress grows and after a late count of an earlier hour.
        let model = model();
        let hour = 500_000;
        let mut tracker = Tracker::new(hour * HOUR_MS);
        let a = tracker.observe_object(object("a", "public", 1));
        let mut counts: Vec<(i64, u32)> =
            (hour - 40..hour).map(|h| (h, (h % 7) as u32 * 5)).collect();
        for &(h, n) in &counts {
            tracker.observe_hits(a, h, n);
        }
        let facts = object_facts(0, 1 << 20);
        let afresh = |counts: &[(i64, u32)], now_ms: i64| {
            let mut ring = HourlyRing::new();
            for &(h, n) in counts {
                ring.set(h, n);
            }
            let mut window = [0; HISTORY_HOURS];
            ring.window(now_ms.div_euclid(HOUR_MS), &mut window);
            model.predict(&super::super::features::features_now(
                &mut window,
                facts,
                now_ms,
            ))
        };
        let changes = [
            (hour, 3),
            (hour, 9),
            (hour - 1, 80),
            (hour - 30, 500),
            (hour, 12),
        ];
        for (step, &(h, n)) in changes.iter().enumerate() {
            tracker.observe_hits(a, h, n);
            counts.push((h, n));
            let now_ms = hour * HOUR_MS + 60_000 * (step as i64 + 1);
            let run = tracker.forecast(&model, now_ms);
            assert_eq!(run.len(), 1, "step {step}");
            assert_eq!(run[0].predicted, afresh(&counts, now_ms), "step {step}");
        }
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
    fn a_burst_counts_only_when_more_than_chance_above_the_prediction() {
        let minute = 60_000;
        assert_eq!(burst_value(0, 0.0, minute, HOUR_MS), 0.0);
        // Nothing predicted: three reads in a minute could be chance, four are a burst.
        assert_eq!(burst_value(3, 0.0, minute, HOUR_MS), 0.0);
        assert_eq!(burst_value(4, 0.0, minute, HOUR_MS), 240.0);
        // 60 an hour predicted, one a minute expected: seven is not above chance, eight is.
        assert_eq!(burst_value(7, 60.0, minute, HOUR_MS), 0.0);
        assert_eq!(burst_value(8, 60.0, minute, HOUR_MS), 480.0);
        assert_eq!(burst_value(50, 0.0, 0, HOUR_MS), 0.0, "no interval yet");
    }

    #[test]
    fn a_burst_ranks_the_object_until_a_run_sees_it_end() {
        let model = model();
        let hour = 500_000;
        let now = hour * HOUR_MS + 60_000;
        let mut tracker = Tracker::new(now);
        let a = tracker.observe_object(object("a", "public", 1));
        tracker.forecast(&model, now);
        let quiet = tracker.value(a);
        tracker.observe_hits(a, hour, 200);
        tracker.forecast(&model, now + 60_000);
        let bursting = tracker.value(a);
        assert!(bursting >= 200.0 * 60.0, "{bursting}");
        assert_eq!(tracker.values().next().map(|v| v.value), Some(bursting));
        // The same count read again (the next run re-reads the hour) adds nothing.
        tracker.observe_hits(a, hour, 200);
        tracker.forecast(&model, now + 120_000);
        let after = tracker.value(a);
        assert!(
            after < bursting / 10.0 && after >= quiet,
            "{after} {bursting}"
        );
    }

    #[test]
    fn a_steady_stream_is_valued_at_its_mean_with_the_variance_of_a_mean() {
        let model = model();
        let hour = 500_000;
        let now = hour * HOUR_MS + HOUR_MS / 2;
        let mut tracker = Tracker::new(now);
        let two_days_old = |id: &str| TrackedObject {
            created_at: (hour - 48) * HOUR_MS,
            ..object(id, "public", 1)
        };
        let steady = tracker.observe_object(two_days_old("steady"));
        let batch = tracker.observe_object(two_days_old("batch"));
        for back in 1..=48 {
            tracker.observe_hits(steady, hour - back, [2, 3, 4, 3, 1, 5][back as usize % 6]);
            tracker.observe_hits(batch, hour - back, if back % 24 == 3 { 60 } else { 0 });
        }
        tracker.observe_hits(steady, hour, 1);
        tracker.forecast(&model, now);
        // 144 in the 48 closed hours and 1 in the half hour gone by.
        let mean = 145.0 / 48.5;
        assert!((tracker.value(steady) - mean).abs() < 1e-9);
        assert!((tracker.variance(steady) - mean / 48.5).abs() < 1e-9);
        // A nightly batch is the model's to forecast, as a Poisson count.
        assert_eq!(tracker.variance(batch), tracker.value(batch));
    }

    #[test]
    fn a_run_keeps_each_objects_rate_of_the_last_day() {
        let model = model();
        let hour = 500_000;
        let now = hour * HOUR_MS + HOUR_MS / 2;
        let mut tracker = Tracker::new(now);
        let a = tracker.observe_object(object("a", "public", 1));
        // 12 an hour for the last day (6 in the half of the hour in progress gone by),
        // 100 an hour the day before: the day's rate is 12, not the two days' 56.
        for back in 1..48 {
            tracker.observe_hits(a, hour - back, if back < 24 { 12 } else { 100 });
        }
        tracker.observe_hits(a, hour, 6);
        tracker.forecast(&model, now);
        assert!(
            (tracker.day_rate(a) - 12.0).abs() < 1e-9,
            "{}",
            tracker.day_rate(a)
        );
        assert_eq!(tracker.values().next().map(|v| v.day_rate), Some(12.0));
    }

    /// Object `a`'s prediction of `predicted` accesses (and value) by model 1.
    fn made(predicted: f64) -> Vec<StoredPrediction> {
        vec![StoredPrediction {
            object_id: "a".into(),
            predicted_accesses: predicted,
            value: predicted,
            variance: predicted,
            day_rate: predicted,
            horizon_hours: 1,
            predicted_tier: "public".into(),
            model_version: 1,
            predicted_at: 0,
        }]
    }

    #[test]
    fn only_noticeable_changes_are_stored_again() {
        let mut tracker = Tracker::new(0);
        tracker.observe_object(object("a", "public", 1));
        assert_eq!(tracker.to_store(made(10.0)).len(), 1, "never stored");
        assert!(tracker.to_store(made(10.5)).is_empty(), "within 10 %");
        assert_eq!(tracker.to_store(made(12.0)).len(), 1);
        assert!(tracker.to_store(made(12.3)).is_empty());
        assert!(tracker.to_store(made(0.0)).len() == 1);
        assert!(
            tracker.to_store(made(0.4)).is_empty(),
            "within half an access"
        );
        // The global ranking of several forecasters reads values: a burst's is stored.
        let mut burst = made(0.4);
        burst[0].value = 30.0;
        assert_eq!(tracker.to_store(burst.clone()).len(), 1, "a burst began");
        assert!(tracker.to_store(burst).is_empty());
        assert_eq!(tracker.to_store(made(0.4)).len(), 1, "the burst is over");
        let mut next_model = made(0.4);
        next_model[0].model_version = 2;
        assert_eq!(tracker.to_store(next_model).len(), 1, "another model's row");
    }

    #[test]
    fn an_object_without_a_row_is_stored_once_predicted_at_something() {
        let mut tracker = Tracker::new(0);
        tracker.observe_object(object("a", "public", 1));
        assert!(tracker.to_store(made(0.0)).is_empty(), "nothing to store");
        assert!(
            tracker.to_store(made(0.4)).is_empty(),
            "within half an access"
        );
        assert_eq!(tracker.to_store(made(3.0)).len(), 1);
    }
}
