//! Hourly access history of many objects, kept in memory and updated incrementally, so
//! a scheduled run reads only the hours that changed since the last one instead of
//! rescanning every object's week.

use super::features::HISTORY_HOURS;

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

    /// The week of hourly counts ending at `end_hour` (its last entry), oldest first,
    /// written into `out`.
    pub fn window(&self, end_hour: i64, out: &mut [u32; HISTORY_HOURS]) {
        let first = end_hour - HISTORY_HOURS as i64 + 1;
        // Walk the ring from the first hour's slot instead of dividing per hour: this
        // runs for every object each hour.
        let mut slot = slot(first);
        for (hour, value) in (first..).zip(out.iter_mut()) {
            let known = hour <= self.newest && hour > self.newest - HISTORY_HOURS as i64;
            *value = if known { self.counts[slot] } else { 0 };
            slot += 1;
            if slot == HISTORY_HOURS {
                slot = 0;
            }
        }
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
