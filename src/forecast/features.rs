//! The forecaster's features: what an object's hourly access history, age and size say
//! about its next hours. One function computes them for training, scheduled prediction,
//! the predict endpoint and the simulator, so a model always sees features built the way
//! it was trained on.

use crate::db::HOUR_MS;

/// Bumped whenever the features change meaning; a model records the version it was
/// trained with and is refused by code with another.
pub const FEATURES_VERSION: u32 = 2;

/// Names of the features, in the order of [`features`]' output.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "log_hits_last_hour",
    "log_hits_last_6h",
    "log_hits_last_24h",
    "log_hits_per_day_last_7d",
    "log_hits_same_hour_yesterday",
    "log_hits_same_hour_last_week",
    "trend_6h",
    "log_hours_since_last_access",
    "log_age_hours",
    "log_size_bytes",
];

/// How many features there are.
pub const FEATURE_COUNT: usize = 10;

/// Hours of history the features look at.
pub const HISTORY_HOURS: usize = 7 * 24;

/// What the features know of an object besides its access history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectFacts {
    /// When it was created (its first access, in a trace), epoch ms.
    pub created_ms: i64,
    /// Its size.
    pub size_bytes: u64,
}

/// Features of an object at the end of `history`: hourly access counts, oldest first,
/// the last entry being the hour just ended, at `end_ms`. Missing older hours count as
/// no accesses. The prediction target is the accesses of the hours that follow.
///
/// Counts, age and size enter on a log scale (`ln(1 + n)`): they are heavy-tailed, and
/// a linear model of logs is a multiplicative model of counts, which fits bursts and
/// daily cycles far better than one of raw counts.
pub fn features(history: &[u32], object: ObjectFacts, end_ms: i64) -> [f64; FEATURE_COUNT] {
    let hour = |back: usize| -> f64 {
        history
            .len()
            .checked_sub(back)
            .map_or(0.0, |i| f64::from(history[i]))
    };
    // Sums over contiguous slices in integers: exact, and cheap enough to recompute
    // for every object each hour.
    let n = history.len();
    let sum = |from_back: usize, to_back: usize| -> f64 {
        let window = &history[n.saturating_sub(to_back)..n.saturating_sub(from_back - 1)];
        window.iter().map(|&c| u64::from(c)).sum::<u64>() as f64
    };
    let (last_6h, previous_6h) = (sum(1, 6), sum(7, 12));
    let (last_24h, week) = (sum(1, 24), sum(1, HISTORY_HOURS));
    let hours_since_last = history[n.saturating_sub(HISTORY_HOURS)..]
        .iter()
        .rev()
        .position(|&c| c > 0)
        .map_or(HISTORY_HOURS as f64 + 1.0, |p| p as f64);
    [
        hour(1).ln_1p(),
        f64::ln_1p(last_6h),
        f64::ln_1p(last_24h),
        (week / 7.0).ln_1p(),
        // The hour a day (a week) before the one being predicted.
        hour(24).ln_1p(),
        hour(HISTORY_HOURS).ln_1p(),
        f64::ln_1p(last_6h) - f64::ln_1p(previous_6h),
        hours_since_last.ln_1p(),
        age_hours(object, end_ms).ln_1p(),
        (object.size_bytes as f64).ln_1p(),
    ]
}

/// Hours from the object's creation to `end_ms`; never negative (a trace's first access
/// can fall inside the hour that ends at `end_ms`).
fn age_hours(object: ObjectFacts, end_ms: i64) -> f64 {
    (end_ms.saturating_sub(object.created_ms).max(0) as f64) / HOUR_MS as f64
}

/// Features of an object at `now_ms` from `history`, whose last entry is the hour in
/// progress: that hour is completed first ([`complete_hour_in_progress`]) and the
/// features are taken as of its end, as training takes them at the end of a complete
/// hour. What the scheduled run, the predict endpoint and the simulator predict from.
pub fn features_now(history: &mut [u32], object: ObjectFacts, now_ms: i64) -> [f64; FEATURE_COUNT] {
    let elapsed = now_ms.rem_euclid(HOUR_MS) as f64 / HOUR_MS as f64;
    complete_hour_in_progress(history, elapsed);
    let end_ms = (now_ms.div_euclid(HOUR_MS) + 1) * HOUR_MS;
    features(history, object, end_ms)
}

/// Completes the hour in progress, the last entry of `history`, of which the fraction
/// `elapsed` (0 to 1) has passed: its remaining part is assumed to run at the previous
/// hour's rate. A model learns from complete hours; shown an hour only minutes old, it
/// would take its first minutes for a sudden quiet, and every prediction would dip at
/// the top of each hour (demoting objects only to promote them again minutes later).
pub fn complete_hour_in_progress(history: &mut [u32], elapsed: f64) {
    if let [.., previous, current] = history {
        let rest = (1.0 - elapsed.clamp(0.0, 1.0)) * f64::from(*previous);
        *current = current.saturating_add(rest.round() as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_read_the_right_hours() {
        let mut history = vec![0u32; HISTORY_HOURS];
        history[HISTORY_HOURS - 1] = 4; // the hour just ended
        history[HISTORY_HOURS - 24] = 9; // a day before the predicted hour
        history[0] = 2; // a week before
        let object = ObjectFacts {
            created_ms: 1_000 * HOUR_MS,
            size_bytes: 1023,
        };
        let f = features(&history, object, 1_099 * HOUR_MS);
        assert_eq!(f.len(), FEATURE_NAMES.len());
        assert!((f[0] - 5f64.ln()).abs() < 1e-12);
        assert!((f[2] - 14f64.ln()).abs() < 1e-12);
        assert!((f[4] - 10f64.ln()).abs() < 1e-12);
        assert!((f[5] - 3f64.ln()).abs() < 1e-12);
        assert_eq!(f[7], 0.0, "accessed in the hour just ended");
        assert!((f[8] - 100f64.ln()).abs() < 1e-12);
        assert!((f[9] - 1024f64.ln()).abs() < 1e-12);
    }

    /// The definition, written plainly: what the one-pass version must equal.
    fn reference(history: &[u32], object: ObjectFacts, end_ms: i64) -> [f64; FEATURE_COUNT] {
        let hour = |back: usize| -> f64 {
            history
                .len()
                .checked_sub(back)
                .map_or(0.0, |i| f64::from(history[i]))
        };
        let sum = |from: usize, to: usize| -> f64 { (from..=to).map(hour).sum() };
        let hours_since_last = (1..=HISTORY_HOURS)
            .find(|back| hour(*back) > 0.0)
            .map_or(HISTORY_HOURS as f64 + 1.0, |back| back as f64 - 1.0);
        [
            hour(1).ln_1p(),
            sum(1, 6).ln_1p(),
            sum(1, 24).ln_1p(),
            (sum(1, HISTORY_HOURS) / 7.0).ln_1p(),
            hour(24).ln_1p(),
            hour(HISTORY_HOURS).ln_1p(),
            sum(1, 6).ln_1p() - sum(7, 12).ln_1p(),
            hours_since_last.ln_1p(),
            (((end_ms - object.created_ms) as f64 / 3_600_000.0).max(0.0)).ln_1p(),
            (object.size_bytes as f64).ln_1p(),
        ]
    }

    #[test]
    fn features_match_their_definition() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for len in [0, 1, 5, 13, 30, HISTORY_HOURS - 1, HISTORY_HOURS, 400] {
            for sparsity in [1, 3, 50] {
                let history: Vec<u32> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        if state.is_multiple_of(sparsity) {
                            (state % 500) as u32
                        } else {
                            0
                        }
                    })
                    .collect();
                let object = ObjectFacts {
                    created_ms: 1_000_000 - (state % 1_000_000) as i64 * 1_000,
                    size_bytes: state % 1_000_000,
                };
                assert_eq!(
                    features(&history, object, 1_000_000 + len as i64 * HOUR_MS),
                    reference(&history, object, 1_000_000 + len as i64 * HOUR_MS),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn a_short_or_empty_history_is_all_quiet() {
        let f = features(&[], ObjectFacts::default(), 0);
        assert!(f[..7].iter().all(|v| *v == 0.0));
        assert_eq!(f[7], ((HISTORY_HOURS + 1) as f64).ln_1p());
        assert_eq!(f[8..], [0.0, 0.0]);
        let f = features(&[3], ObjectFacts::default(), HOUR_MS);
        assert!((f[0] - 4f64.ln()).abs() < 1e-12);
        assert!(f.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn an_object_created_after_the_history_ends_counts_as_new() {
        let object = ObjectFacts {
            created_ms: 5 * HOUR_MS + 10,
            size_bytes: 0,
        };
        assert_eq!(features(&[1, 2], object, 5 * HOUR_MS)[8], 0.0);
    }

    #[test]
    fn the_hour_in_progress_is_completed_at_the_previous_hours_rate() {
        let mut history = [7, 40, 3];
        complete_hour_in_progress(&mut history, 0.0);
        assert_eq!(
            history,
            [7, 40, 43],
            "at the top of the hour: all of the last"
        );
        let mut history = [7, 40, 3];
        complete_hour_in_progress(&mut history, 0.25);
        assert_eq!(history, [7, 40, 33]);
        let mut history = [7, 40, 3];
        complete_hour_in_progress(&mut history, 1.0);
        assert_eq!(history, [7, 40, 3], "a complete hour is left as counted");
        let mut history = [u32::MAX - 1, u32::MAX - 1];
        complete_hour_in_progress(&mut history, 0.5);
        assert_eq!(history[1], u32::MAX, "saturates");
        let mut lone = [5];
        complete_hour_in_progress(&mut lone, 0.5);
        assert_eq!(lone, [5], "no previous hour to go by");
    }
}
