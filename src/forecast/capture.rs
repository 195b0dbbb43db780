//! Capture: how good a forecast is for placement. For each hour of the evaluation, the
//! objects a forecast ranks densest (predicted accesses per byte) fill a tier of a given
//! share of all the bytes, as ranked placement fills it; capture is the share of the
//! accesses that actually followed which those objects drew. The true ranking (by the
//! accesses that followed) sets the best capture any forecast can reach, so a forecast's
//! capture ratio, capture over the best, says how much of the reachable it reaches,
//! whatever the workload.

use serde::{Deserialize, Serialize};

/// The tier sizes capture is measured at: shares of all the bytes.
pub const CAPTURE_SHARES: [f64; 3] = [0.01, 0.02, 0.10];

/// Capture at each of [`CAPTURE_SHARES`], the share of accesses drawn.
pub type Captured = [f64; 3];

/// One object at one hour of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// The hour its forecast ends at.
    pub hour: i64,
    /// Its size in bytes.
    pub size: f64,
    /// Accesses that followed.
    pub actual: f64,
    /// Accesses forecast.
    pub predicted: f64,
}

/// Capture of the ranking of `rows` by `value` (the forecast, [`FORECAST`]; the accesses
/// that followed, [`TRUTH`], for the best) at each of [`CAPTURE_SHARES`]: accesses
/// drawn by each hour's ranked fill, summed over the hours, over all the accesses that
/// followed. Zero where nothing followed.
pub fn capture(rows: &mut [Ranked], value: fn(&Ranked) -> f64) -> Captured {
    rows.sort_unstable_by_key(|r| r.hour);
    let mut drawn = [0.0; 3];
    let mut total = 0.0;
    for hour in rows.chunk_by_mut(|a, b| a.hour == b.hour) {
        total += hour.iter().map(|r| r.actual).sum::<f64>();
        let bytes: f64 = hour.iter().map(|r| r.size).sum();
        fill(hour, bytes, value, &mut drawn);
    }
    drawn.map(|d| if total > 0.0 { d / total } else { 0.0 })
}

/// Ranks by the forecast.
pub const FORECAST: fn(&Ranked) -> f64 = |r| r.predicted;

/// Ranks by the accesses that followed: the best ranking.
pub const TRUTH: fn(&Ranked) -> f64 = |r| r.actual;

/// Adds to `drawn`, at each share of `bytes`, the accesses drawn by the objects of
/// `hour` ranked by `value` per byte, densest first, each taken while it fits (a
/// greedy knapsack, as placement fills a tier). Objects of no value are never taken.
fn fill(hour: &mut [Ranked], bytes: f64, value: fn(&Ranked) -> f64, drawn: &mut Captured) {
    let density = |r: &Ranked| value(r) / r.size.max(1.0);
    hour.sort_unstable_by(|a, b| density(b).total_cmp(&density(a)));
    for (at, share) in drawn.iter_mut().zip(CAPTURE_SHARES) {
        let mut room = bytes * share;
        for r in hour.iter().filter(|r| value(r) > 0.0) {
            if r.size <= room {
                room -= r.size;
                *at += r.actual;
            }
        }
    }
}

/// Capture of a model and of the naive baselines on the same evaluation hours, with the
/// best reachable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CaptureScores {
    /// The model's.
    pub model: Captured,
    /// "The next hours look like the last one."
    pub persistence: Captured,
    /// "The next hours look like the average hour of the last day."
    pub moving_average: Captured,
    /// The true ranking's: the best any forecast can reach.
    pub best: Captured,
}

impl CaptureScores {
    /// The model's capture over the best, at each share; 0 where the best is 0.
    pub fn ratio(&self) -> Captured {
        let mut ratio = [0.0; 3];
        for ((r, m), b) in ratio.iter_mut().zip(self.model).zip(self.best) {
            *r = if b > 0.0 { m / b } else { 0.0 };
        }
        ratio
    }

    /// Whether the model captures at least as much as the better baseline at every
    /// share.
    pub fn beats_baselines(&self) -> bool {
        (0..CAPTURE_SHARES.len())
            .all(|i| self.model[i] >= self.persistence[i].max(self.moving_average[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hour: i64, size: f64, actual: f64, predicted: f64) -> Ranked {
        Ranked {
            hour,
            size,
            actual,
            predicted,
        }
    }

    #[test]
    fn capture_by_hand() {
        // Hour 1: 100 objects of 1 byte; the first drew 50 accesses, the second 30,
        // the third 20, the rest none. The forecast ranks the second first, then the
        // third, then the first. 1 % of 100 bytes is one object: the forecast draws 30
        // of 100, the truth 50. 2 %: 30 + 20 against 50 + 30. 10 %: all 100 each.
        let mut rows: Vec<Ranked> = (0..100)
            .map(|i| match i {
                0 => row(1, 1.0, 50.0, 1.0),
                1 => row(1, 1.0, 30.0, 3.0),
                2 => row(1, 1.0, 20.0, 2.0),
                _ => row(1, 1.0, 0.0, 0.0),
            })
            .collect();
        // Hour 2: nothing followed anywhere; it adds nothing to either side.
        rows.extend((0..10).map(|_| row(2, 10.0, 0.0, 5.0)));
        let (drawn, best) = (capture(&mut rows, FORECAST), capture(&mut rows, TRUTH));
        assert_eq!(drawn, [0.3, 0.5, 1.0]);
        assert_eq!(best, [0.5, 0.8, 1.0]);
        let scores = CaptureScores {
            model: drawn,
            persistence: [0.3, 0.6, 1.0],
            moving_average: [0.1, 0.1, 0.1],
            best,
        };
        assert_eq!(scores.ratio(), [0.6, 0.625, 1.0]);
        assert!(!scores.beats_baselines(), "persistence draws more at 2 %");
    }

    #[test]
    fn a_big_object_is_passed_over_for_smaller_ones_that_fit() {
        // 1,000 bytes in all, 2 % is 20: the densest (15 bytes) fits, the next (10
        // bytes) does not, the one after (5 bytes) does.
        let mut rows = vec![
            row(1, 15.0, 30.0, 30.0),
            row(1, 10.0, 10.0, 15.0),
            row(1, 5.0, 4.0, 5.0),
            row(1, 970.0, 56.0, 1.0),
        ];
        let drawn = capture(&mut rows, FORECAST);
        assert_eq!(drawn[1], 0.34);
    }
}
