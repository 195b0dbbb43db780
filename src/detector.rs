//! The reactive spike detector: notices within seconds that an object turned hot.
//!
//! Per object it keeps a sliding window of recent accesses (six slots spanning
//! `DETECTOR_WINDOW_SECS`, in event time) and a slow baseline, an exponentially weighted
//! average of the object's count per slot with a time constant of about an hour. A
//! *spike* is a window count above the lowest promotion level that is also
//! `DETECTOR_SPIKE_RATIO` times the baseline, so a steadily busy object is not a spike
//! (it is the forecaster's business) and a backup that reads everything once is not one
//! either (one access never passes a level).
//!
//! A burst is usually still growing when it first passes the lowest level, so the
//! detector watches it for `DETECTOR_SETTLE_MS` and then reports the level it reached;
//! a burst that passes the highest level is reported at once, as there is nothing
//! higher to wait for. After a report the object is in cool-down: only a higher level
//! is reported again until it ends, which keeps one burst from causing a string of moves.
//!
//! State per object is about 40 bytes, keyed by a 64-bit hash of its id; the id itself
//! is only kept while a burst settles.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::config::DetectorConfig;

/// Slots per window.
const SLOTS: usize = 6;
/// Baseline time constant in slots: with 10-second slots, an hour.
const BASELINE_SLOTS: f32 = 360.0;
/// Tracks whose baseline has decayed below this many accesses per slot, with an empty
/// window and no cool-down, are forgotten by [`Detector::forget_idle`].
const FORGET_BELOW: f32 = 0.001;

/// An object whose recent accesses passed a promotion level.
#[derive(Debug, Clone, PartialEq)]
pub struct Spike {
    /// The object.
    pub object_id: String,
    /// Accesses in the window when it was reported.
    pub recent: u64,
    /// The object's usual accesses per window before the burst.
    pub baseline: f64,
    /// When it was reported (the caller's clock, epoch ms).
    pub at_ms: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Track {
    /// Accesses per slot; slot `s` lives at index `s % SLOTS`.
    slots: [u16; SLOTS],
    /// Newest slot seen (event time, in slots since the epoch).
    last_slot: u32,
    /// Usual accesses per slot.
    baseline: f32,
    /// End of the cool-down, in seconds since the epoch (caller's clock).
    cooldown_until_s: u32,
    /// Level last reported; only a higher one is reported during cool-down.
    reported_level: u8,
}

impl Track {
    fn recent(&self) -> u64 {
        self.slots.iter().map(|&c| u64::from(c)).sum()
    }

    /// Moves the window forward to `slot`, folding the slots that leave it into the
    /// baseline.
    fn advance_to(&mut self, slot: u32) {
        if self.last_slot == 0 {
            // Warmed from history but never observed: nothing to fold in yet.
            self.last_slot = slot;
            return;
        }
        if slot <= self.last_slot {
            return;
        }
        let alpha = 1.0 / BASELINE_SLOTS;
        let steps = slot - self.last_slot;
        for s in self.last_slot + 1..=slot.min(self.last_slot + SLOTS as u32) {
            let leaving = &mut self.slots[s as usize % SLOTS];
            self.baseline += alpha * (f32::from(*leaving) - self.baseline);
            *leaving = 0;
        }
        if steps > SLOTS as u32 {
            self.baseline *= (1.0 - alpha).powi((steps - SLOTS as u32).min(100_000) as i32);
        }
        self.last_slot = slot;
    }
}

/// Hasher for keys that are already hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// How many of the ascending `levels` a window count of `recent` is above.
fn level_of(levels: &[u64], recent: u64) -> usize {
    levels.iter().take_while(|&&l| recent > l).count()
}

/// FNV-1a, 64-bit: stable across runs and processes, cheap for short ids.
fn id_hash(object_id: &str) -> u64 {
    object_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Per-object spike detection over a stream of access counts.
#[derive(Debug)]
pub struct Detector {
    slot_ms: i64,
    settle_ms: i64,
    cooldown_s: u32,
    ratio: f64,
    /// Promotion levels, ascending: a window count above `levels[i]` is level `i + 1`.
    levels: Vec<u64>,
    tracks: HashMap<u64, Track, BuildHasherDefault<PassThrough>>,
    /// Bursts waiting to settle: id hash -> (object id, report due at, caller's clock ms).
    settling: HashMap<u64, (String, i64)>,
}

impl Detector {
    /// A detector reporting bursts above any of `levels` (accesses per window; the
    /// policy's promotion thresholds). With no levels it never reports anything.
    pub fn new(config: &DetectorConfig, levels: &[u64]) -> Detector {
        let mut levels = levels.to_vec();
        levels.sort_unstable();
        levels.dedup();
        Detector {
            slot_ms: (config.window.as_millis() as i64 / SLOTS as i64).max(1),
            settle_ms: config.settle.as_millis() as i64,
            cooldown_s: config.cooldown.as_secs().min(u64::from(u32::MAX)) as u32,
            ratio: config.spike_ratio,
            levels,
            tracks: HashMap::default(),
            settling: HashMap::new(),
        }
    }

    /// Length of the sliding window, ms.
    pub fn window_ms(&self) -> i64 {
        self.slot_ms * SLOTS as i64
    }

    /// Objects tracked.
    pub fn tracked(&self) -> usize {
        self.tracks.len()
    }

    /// True when the detector has state for `object_id` (else its baseline is unknown
    /// and the caller may [`warm`](Detector::warm) it first).
    pub fn is_tracked(&self, object_id: &str) -> bool {
        self.tracks.contains_key(&id_hash(object_id))
    }

    /// Starts tracking `object_id` with a baseline of `per_window` accesses per window
    /// (from stored history), unless it is tracked already.
    pub fn warm(&mut self, object_id: &str, per_window: f64) {
        self.tracks.entry(id_hash(object_id)).or_insert(Track {
            baseline: (per_window / SLOTS as f64) as f32,
            ..Track::default()
        });
    }

    /// Counts `hits` accesses of `object_id` at event time `at_ms`; `now_ms` is the
    /// caller's clock (wall time when serving, virtual time when simulating). Returns a
    /// spike when the burst passed the highest level; lower bursts are reported by
    /// [`due`](Detector::due) once they settled.
    pub fn observe(
        &mut self,
        object_id: &str,
        at_ms: i64,
        hits: u64,
        now_ms: i64,
    ) -> Option<Spike> {
        let key = id_hash(object_id);
        let slot = (at_ms.max(0) / self.slot_ms).min(i64::from(u32::MAX)) as u32;
        let track = self.tracks.entry(key).or_insert(Track {
            last_slot: slot,
            ..Track::default()
        });
        track.advance_to(slot);
        if slot + (SLOTS as u32) <= track.last_slot {
            return None; // older than the window
        }
        let count = &mut track.slots[slot as usize % SLOTS];
        *count = count.saturating_add(hits.min(u64::from(u16::MAX)) as u16);
        let snapshot = *track;
        let level = self.reportable_level(&snapshot, now_ms)?;
        if level == self.levels.len() || self.settle_ms == 0 {
            self.settling.remove(&key);
            return Some(self.report(key, object_id.to_string(), now_ms));
        }
        self.settling
            .entry(key)
            .or_insert_with(|| (object_id.to_string(), now_ms + self.settle_ms));
        None
    }

    /// Spikes whose burst has settled by `now_ms`, at the level they reached.
    pub fn due(&mut self, now_ms: i64) -> Vec<Spike> {
        let ready: Vec<u64> = self
            .settling
            .iter()
            .filter(|(_, (_, due))| *due <= now_ms)
            .map(|(key, _)| *key)
            .collect();
        let mut spikes = Vec::new();
        for key in ready {
            let Some((object_id, _)) = self.settling.remove(&key) else {
                continue;
            };
            let still_hot = self
                .tracks
                .get(&key)
                .and_then(|track| self.reportable_level(track, now_ms))
                .is_some();
            if still_hot {
                spikes.push(self.report(key, object_id, now_ms));
            }
        }
        spikes
    }

    /// When the earliest burst still settling is due to be reported (the caller's
    /// clock, ms); `None` when none is settling. A caller in virtual time calls
    /// [`due`](Detector::due) then, as the service's timer would have.
    pub fn next_due(&self) -> Option<i64> {
        self.settling.values().map(|(_, due)| *due).min()
    }

    /// Forgets objects that have gone quiet: empty window as of `now_ms` (event time),
    /// a negligible baseline and no cool-down. Keeps memory bounded by the objects that
    /// are actually in use.
    pub fn forget_idle(&mut self, now_ms: i64) {
        let slot = (now_ms.max(0) / self.slot_ms).min(i64::from(u32::MAX)) as u32;
        let now_s = (now_ms.max(0) / 1000).min(i64::from(u32::MAX)) as u32;
        let settling = &self.settling;
        self.tracks.retain(|key, track| {
            let mut aged = *track;
            aged.advance_to(slot);
            *track = aged;
            aged.recent() > 0
                || aged.baseline >= FORGET_BELOW
                || aged.cooldown_until_s > now_s
                || settling.contains_key(key)
        });
    }

    /// The level `track` is at, if it is a spike that may be reported now.
    fn reportable_level(&self, track: &Track, now_ms: i64) -> Option<usize> {
        let recent = track.recent();
        let level = level_of(&self.levels, recent);
        if level == 0 || (recent as f64) <= self.ratio * f64::from(track.baseline) * SLOTS as f64 {
            return None;
        }
        let cooling = i64::from(track.cooldown_until_s) * 1000 > now_ms;
        (!cooling || level > usize::from(track.reported_level)).then_some(level)
    }

    fn report(&mut self, key: u64, object_id: String, now_ms: i64) -> Spike {
        let track = self
            .tracks
            .get_mut(&key)
            .expect("reported objects are tracked");
        let recent = track.recent();
        track.reported_level = level_of(&self.levels, recent) as u8;
        track.cooldown_until_s = ((now_ms.max(0) / 1000) as u64 + u64::from(self.cooldown_s))
            .min(u64::from(u32::MAX)) as u32;
        Spike {
            object_id,
            recent,
            baseline: f64::from(track.baseline) * SLOTS as f64,
            at_ms: now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_255_200_000;

    fn detector() -> Detector {
        Detector::new(&DetectorConfig::default(), &[100, 20])
    }

    /// Feeds `n` single accesses of `id` spread evenly over `span_ms` from `start`,
    /// checking for due spikes after each, as the consumer does after every flush.
    fn feed(d: &mut Detector, id: &str, n: u64, start: i64, span_ms: i64) -> Vec<Spike> {
        let mut spikes = Vec::new();
        for i in 0..n {
            let at = start + span_ms * i as i64 / n.max(1) as i64;
            spikes.extend(d.observe(id, at, 1, at));
            spikes.extend(d.due(at));
        }
        spikes
    }

    #[test]
    fn a_burst_past_the_top_level_is_reported_at_once_and_only_once() {
        let mut d = detector();
        let spikes = feed(&mut d, "a", 150, T0, 400);
        assert_eq!(spikes.len(), 1, "{spikes:?}");
        assert_eq!(
            spikes[0].recent, 101,
            "reported as soon as it passed the top level"
        );
        assert!(d.due(T0 + 60_000).is_empty());
    }

    #[test]
    fn a_smaller_burst_is_reported_after_settling_at_the_level_it_reached() {
        let mut d = detector();
        let mut spikes = feed(&mut d, "a", 30, T0, 300);
        assert!(spikes.is_empty(), "still settling: {spikes:?}");
        spikes.extend(d.due(T0 + 1_000));
        assert_eq!(spikes.len(), 1);
        assert_eq!(spikes[0].recent, 30);
        assert!(d.due(T0 + 2_000).is_empty());
    }

    #[test]
    fn a_burst_that_outgrows_its_first_report_is_reported_again_higher() {
        let mut d = detector();
        let spikes = feed(&mut d, "a", 150, T0, 10_000);
        let recent: Vec<u64> = spikes.iter().map(|s| s.recent).collect();
        assert_eq!(recent.len(), 2, "{spikes:?}");
        assert!(
            recent[0] > 20 && recent[0] <= 100 && recent[1] > 100,
            "{recent:?}"
        );
    }

    #[test]
    fn a_scan_touching_every_object_once_reports_nothing() {
        let mut d = detector();
        for i in 0..10_000 {
            let at = T0 + i;
            assert_eq!(d.observe(&format!("object-{i}"), at, 1, at), None);
        }
        assert!(d.due(T0 + 60_000).is_empty());
        assert_eq!(d.tracked(), 10_000);
        d.forget_idle(T0 + 24 * 3_600_000);
        assert_eq!(d.tracked(), 0, "idle objects are forgotten");
    }

    #[test]
    fn cool_down_allows_escalation_but_not_repetition() {
        let mut d = detector();
        let mut spikes = feed(&mut d, "a", 30, T0, 100);
        spikes.extend(d.due(T0 + 1_000));
        assert_eq!(spikes.len(), 1);
        // The same level again within the cool-down: nothing.
        let again = feed(&mut d, "a", 30, T0 + 120_000, 100);
        assert!(again.is_empty() && d.due(T0 + 121_000).is_empty());
        // A higher level within the cool-down: reported.
        let higher = feed(&mut d, "a", 150, T0 + 240_000, 100);
        assert_eq!(higher.len(), 1);
    }

    #[test]
    fn a_steadily_busy_object_is_not_a_spike() {
        let mut d = Detector::new(&DetectorConfig::default(), &[20]);
        d.warm("busy", 40.0);
        // 40 a minute, as usual: above the level, but not three times the baseline.
        let spikes = feed(&mut d, "busy", 400, T0, 600_000);
        assert!(
            spikes.is_empty() && d.due(T0 + 700_000).is_empty(),
            "{spikes:?}"
        );
        // 200 in a minute is.
        let burst = feed(&mut d, "busy", 200, T0 + 700_000, 30_000);
        assert_eq!(burst.len() + d.due(T0 + 800_000).len(), 1);
    }

    #[test]
    fn events_older_than_the_window_do_not_count() {
        let mut d = detector();
        d.observe("a", T0 + 600_000, 1, T0 + 600_000);
        assert_eq!(d.observe("a", T0, 500, T0 + 600_000), None);
        assert!(d.due(T0 + 700_000).is_empty());
    }
}
