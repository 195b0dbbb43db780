//! The world every simulated policy sees: the trace's objects with what the catalogue
//! would count of them, the tiers and the clock's settings.

use foldhash::HashMap;

use crate::config::TierCosts;
use crate::db::{HOUR_MS, MoveReason};
use crate::forecast::Model;
use crate::policy::Policy;
use crate::policy::rules::RuleSet;

/// "No time": an object not waiting to turn hot-tier resident.
pub(super) const NEVER: i64 = i64::MIN;

/// Reasons the simulated policies move objects for, in queue priority order.
pub(super) const REASONS: [MoveReason; 4] = [
    MoveReason::Rule,
    MoveReason::CapacityRebalance,
    MoveReason::ReactiveAccessSpike,
    MoveReason::ProactivePrediction,
];

/// The place of `reason` in [`REASONS`].
pub(super) fn reason_index(reason: MoveReason) -> usize {
    REASONS.iter().position(|&r| r == reason).unwrap_or(0)
}

/// What is shared by every policy: the tiers and the clock's settings.
pub(super) struct Context<'a> {
    pub(super) policy: &'a Policy,
    /// The rules the `+rules` policies keep to.
    pub(super) rules: Option<&'a RuleSet>,
    pub(super) model: Option<&'a Model>,
    pub(super) tier_names: Vec<String>,
    pub(super) capacity: Vec<Option<u64>>,
    pub(super) costs: Vec<TierCosts>,
    pub(super) default_rank: u8,
    pub(super) bandwidth: u64,
    pub(super) scored_from: i64,
    /// The forecast horizon values are counted over, ms.
    pub(super) horizon_ms: i64,
}

/// What a policy reads while it acts: the shared settings and the objects.
#[derive(Clone, Copy)]
pub(super) struct Env<'e, 'a> {
    pub(super) context: &'e Context<'a>,
    pub(super) objects: &'e Objects,
}

impl Context<'_> {
    pub(super) fn rank(&self, tier: &str) -> Option<u8> {
        self.policy.rank(tier).and_then(|r| u8::try_from(r).ok())
    }
}

/// The trace's objects and what the catalogue would count of them.
pub(super) struct Objects {
    pub(super) index: HashMap<Box<str>, u32>,
    pub(super) ids: Vec<Box<str>>,
    /// Bytes, from the object's first line.
    pub(super) size: Vec<u64>,
    /// Time of the object's first line, epoch ms.
    pub(super) created_ms: Vec<i64>,
    /// Time of its latest line so far, epoch ms.
    pub(super) last_ms: Vec<i64>,
    /// Clock hour of `hits`.
    pub(super) hour: Vec<i64>,
    /// Accesses in `hour` so far.
    pub(super) hits: Vec<u32>,
    /// Counted since the last forecaster run.
    pub(super) touched: Vec<bool>,
    pub(super) touched_list: Vec<u32>,
    /// Final counts of hours that ended after the last forecaster run saw them.
    pub(super) finished: Vec<(u32, i64, u32)>,
    /// The last clock hour whose accesses passed the hot level.
    pub(super) hot_hour: Vec<i64>,
    /// Accesses in the scored part.
    pub(super) scored_hits: Vec<u64>,
    /// Accesses read ahead and not replayed yet: those of the coming horizon.
    pub(super) future: Vec<u32>,
    /// Those of the coming day.
    pub(super) future_day: Vec<u32>,
    /// Objects whose `future` or `future_day` rose since the last forecaster run.
    pub(super) foreseen: Vec<u32>,
    /// Accesses above which an hour makes an object hot: the hottest tier's
    /// `PREDICT_ABOVE`; `None` when it has none.
    pub(super) hot_level: Option<u32>,
}

impl Objects {
    pub(super) fn new(hot_level: Option<u32>) -> Objects {
        Objects {
            index: HashMap::default(),
            ids: Vec::new(),
            size: Vec::new(),
            created_ms: Vec::new(),
            last_ms: Vec::new(),
            hour: Vec::new(),
            hits: Vec::new(),
            touched: Vec::new(),
            touched_list: Vec::new(),
            finished: Vec::new(),
            hot_hour: Vec::new(),
            scored_hits: Vec::new(),
            future: Vec::new(),
            future_day: Vec::new(),
            foreseen: Vec::new(),
            hot_level,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The object's index, and whether this access, at `ts`, created it.
    pub(super) fn intern(&mut self, id: &str, size: u64, ts: i64) -> (u32, bool) {
        if let Some(&o) = self.index.get(id) {
            return (o, false);
        }
        let o = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.index.insert(id.into(), o);
        self.ids.push(id.into());
        self.size.push(size);
        self.created_ms.push(ts);
        self.last_ms.push(ts);
        self.hour.push(i64::MIN);
        self.hits.push(0);
        self.touched.push(false);
        self.hot_hour.push(i64::MIN);
        self.scored_hits.push(0);
        self.future.push(0);
        self.future_day.push(0);
        (o, true)
    }

    /// Counts an access of `o` at `ts`; true when it starts a hot episode: its hour
    /// passes the hot level, and the hour before did not.
    pub(super) fn count(&mut self, o: u32, ts: i64, scored: bool) -> bool {
        let i = o as usize;
        self.last_ms[i] = ts;
        let hour = ts.div_euclid(HOUR_MS);
        if self.hour[i] != hour {
            if self.touched[i] {
                self.finished.push((o, self.hour[i], self.hits[i]));
            }
            self.hour[i] = hour;
            self.hits[i] = 0;
        }
        self.hits[i] = self.hits[i].saturating_add(1);
        if !self.touched[i] {
            self.touched[i] = true;
            self.touched_list.push(o);
        }
        if scored {
            self.scored_hits[i] += 1;
        }
        let Some(level) = self.hot_level else {
            return false;
        };
        if self.hits[i] != level.saturating_add(1) {
            return false;
        }
        let new_episode = self.hot_hour[i] < hour - 1;
        self.hot_hour[i] = hour;
        new_episode
    }

    /// The hour counts the forecaster has not seen yet: the catalogue's buckets it
    /// would read at its next run.
    pub(super) fn take_updates(&mut self) -> Vec<(u32, i64, u32)> {
        let mut updates = std::mem::take(&mut self.finished);
        for o in self.touched_list.drain(..) {
            let i = o as usize;
            self.touched[i] = false;
            updates.push((o, self.hour[i], self.hits[i]));
        }
        updates
    }

    /// Whether `o` is still in the hot episode that made it wait, at `now`.
    pub(super) fn still_hot(&self, o: u32, now: i64) -> bool {
        self.hot_hour[o as usize] >= now.div_euclid(HOUR_MS) - 1
    }
}
