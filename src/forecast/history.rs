//! Hourly access history of many objects, kept in memory and updated incrementally, so
//! a scheduled run reads only the hours that changed since the last one instead of
//! rescanning every object's week.

use super::features::{ClosedHours, HISTORY_HOURS};

/// The last [`HISTORY_HOURS`] hourly counts of one object, in a ring indexed by the
/// absolute hour, with the newest hour that has been written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyRing {
    counts: Box<[u32; HISTORY_HOURS]>,
    newest: i64,
}

impl HourlyRing {
    /// An empty history.
    pub fn new() -> HourlyRing {
        HourlyRing {
            counts: Box::new([0; HISTORY_HOURS]),
            newest: i64::MIN,
        }
    }

    /// Sets the count of `hour` (hours since the epoch). Hours more than a week older
    /// than the newest one are ignored: the features never look at them.
    pub fn set(&mut self, hour: i64, hits: u32) {
        if self.newest != i64::MIN && hour <= self.newest - HISTORY_HOURS as i64 {
            return;
        }
        if hour > self.newest {
            // The hours skipped over had no accesses; clear what the ring held for them.
            let first_cleared = if self.newest == i64::MIN {
                hour - HISTORY_HOURS as i64 + 1
            } else {
                (self.newest + 1).max(hour - HISTORY_HOURS as i64 + 1)
            };
            for h in first_cleared..=hour {
                self.counts[slot(h)] = 0;
            }
            self.newest = hour;
        }
        self.counts[slot(hour)] = hits;
    }

    /// Whether any hour in the week ending at `end_hour` has accesses.
    pub fn is_quiet_at(&self, end_hour: i64) -> bool {
        self.newest == i64::MIN || self.newest <= end_hour - HISTORY_HOURS as i64
    }

    /// The count of `hour`; 0 for an hour not in the ring.
    pub fn count(&self, hour: i64) -> u32 {
        if self.holds(hour) {
            self.counts[slot(hour)]
        } else {
            0
        }
    }

    fn holds(&self, hour: i64) -> bool {
        hour <= self.newest && hour > self.newest - HISTORY_HOURS as i64
    }

    /// The week of hourly counts ending at `end_hour` (its last entry), oldest first,
    /// written into `out`.
    pub fn window(&self, end_hour: i64, out: &mut [u32; HISTORY_HOURS]) {
        out.fill(0);
        let first = end_hour - HISTORY_HOURS as i64 + 1;
        if self.newest == i64::MIN {
            return;
        }
        // The hours both in the window and in the ring, copied as at most two runs of
        // slots instead of one hour at a time: this runs for every object each hour.
        let from = first.max(self.newest - HISTORY_HOURS as i64 + 1);
        let to = end_hour.min(self.newest);
        if from > to {
            return;
        }
        let len = (to - from + 1) as usize;
        let at = (from - first) as usize;
        let start = slot(from);
        let head = len.min(HISTORY_HOURS - start);
        out[at..at + head].copy_from_slice(&self.counts[start..start + head]);
        out[at + head..at + len].copy_from_slice(&self.counts[..len - head]);
    }

    /// What the features need of the week before `end_hour`, the hour in progress.
    pub fn closed_hours(&self, end_hour: i64) -> ClosedHours {
        let mut week = [0; HISTORY_HOURS];
        self.window(end_hour - 1, &mut week);
        ClosedHours::of(&week)
    }
}

impl Default for HourlyRing {
    fn default() -> Self {
        HourlyRing::new()
    }
}

fn slot(hour: i64) -> usize {
    hour.rem_euclid(HISTORY_HOURS as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(ring: &HourlyRing, end: i64) -> Vec<u32> {
        let mut out = [0; HISTORY_HOURS];
        ring.window(end, &mut out);
        out.to_vec()
    }

    #[test]
    fn the_window_shows_each_hour_where_it_belongs() {
        let mut ring = HourlyRing::new();
        assert!(ring.is_quiet_at(1000));
        ring.set(1000, 5);
        ring.set(999, 3);
        ring.set(1000, 7); // the hour in progress grows
        let w = window(&ring, 1000);
        assert_eq!(w[HISTORY_HOURS - 1], 7);
        assert_eq!(w[HISTORY_HOURS - 2], 3);
        assert_eq!(w.iter().sum::<u32>(), 10);
        // An hour later the same counts sit one place further back.
        let w = window(&ring, 1001);
        assert_eq!(w[HISTORY_HOURS - 2], 7);
        assert_eq!(w[HISTORY_HOURS - 1], 0);
        assert!(!ring.is_quiet_at(1000 + HISTORY_HOURS as i64 - 1));
        assert!(ring.is_quiet_at(1000 + HISTORY_HOURS as i64));
        assert_eq!(
            window(&ring, 1000 + HISTORY_HOURS as i64)
                .iter()
                .sum::<u32>(),
            0
        );
    }

    #[test]
    fn moving_forward_forgets_what_fell_out_of_the_week() {
        let mut ring = HourlyRing::new();
        ring.set(10, 1);
        ring.set(10 + HISTORY_HOURS as i64, 2); // the same slot, a week later
        let w = window(&ring, 10 + HISTORY_HOURS as i64);
        assert_eq!(w.iter().sum::<u32>(), 2);
        ring.set(5, 9); // far too old: ignored
        assert_eq!(
            window(&ring, 10 + HISTORY_HOURS as i64).iter().sum::<u32>(),
            2
        );
        ring.set(20 + 2 * HISTORY_HOURS as i64, 4);
        assert_eq!(
            window(&ring, 20 + 2 * HISTORY_HOURS as i64)
                .iter()
                .sum::<u32>(),
            4
        );
    }

    #[test]
    fn windows_and_counts_at_any_hour_match_the_series() {
        let series: Vec<u32> = (0..400).map(|h| (h * 7919 % 13) as u32 + 1).collect();
        let mut ring = HourlyRing::new();
        for (h, &n) in series.iter().enumerate() {
            ring.set(h as i64 + 1000, n);
        }
        // What the ring holds: the last week of the series, hours 1232 to 1399.
        let held = |hour: i64| {
            if (1232..=1399).contains(&hour) {
                series[(hour - 1000) as usize]
            } else {
                0
            }
        };
        for end in [
            1100, 1231, 1232, 1300, 1398, 1399, 1400, 1500, 1566, 1567, 1600,
        ] {
            let want: Vec<u32> = (end - HISTORY_HOURS as i64 + 1..=end).map(held).collect();
            assert_eq!(window(&ring, end), want, "window ending at {end}");
            assert_eq!(ring.count(end), held(end), "count of {end}");
            assert_eq!(
                ring.closed_hours(end),
                ClosedHours::of(&want[..HISTORY_HOURS - 1]),
                "closed hours before {end}"
            );
        }
    }

    #[test]
    fn the_window_matches_a_plain_series() {
        // Whatever order hours arrive in, the window equals the last week of the series:
        // odd hours newest first, then even hours oldest first.
        let series: Vec<u32> = (0..400).map(|h| (h * 7919 % 13) as u32).collect();
        let mut ring = HourlyRing::new();
        for (h, &n) in series.iter().enumerate().rev().step_by(2) {
            ring.set(h as i64, n);
        }
        for (h, &n) in series.iter().enumerate().step_by(2) {
            ring.set(h as i64, n);
        }
        let want = &series[series.len() - HISTORY_HOURS..];
        assert_eq!(window(&ring, 399), want);
    }
}
