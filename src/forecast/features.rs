//! The forecaster's features: what an object's hourly access history says about its
//! next hours. One function computes them for training, scheduled prediction, the
//! predict endpoint and the simulator, so a model always sees features built the way it
//! was trained on.

/// Bumped whenever the features change meaning; a model records the version it was
/// trained with and is refused by code with another.
pub const FEATURES_VERSION: u32 = 1;

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
];

/// How many features there are.
pub const FEATURE_COUNT: usize = 8;

/// Hours of history the features look at.
pub const HISTORY_HOURS: usize = 7 * 24;

/// Features of an object at the end of `history`: hourly access counts, oldest first,
/// the last entry being the hour just ended. Missing older hours count as no accesses.
/// The prediction target is the accesses of the hours that follow.
///
/// Counts enter on a log scale (`ln(1 + n)`): access counts are heavy-tailed, and a
/// linear model of logs is a multiplicative model of counts, which fits bursts and daily
/// cycles far better than one of raw counts.
pub fn features(history: &[u32]) -> [f64; FEATURE_COUNT] {
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
    ]
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
        let f = features(&history);
        assert_eq!(f.len(), FEATURE_NAMES.len());
        assert!((f[0] - 5f64.ln()).abs() < 1e-12);
        assert!((f[2] - 14f64.ln()).abs() < 1e-12);
        assert!((f[4] - 10f64.ln()).abs() < 1e-12);
        assert!((f[5] - 3f64.ln()).abs() < 1e-12);
        assert_eq!(f[7], 0.0, "accessed in the hour just ended");
    }

    /// The definition, written plainly: what the one-pass version must equal.
    fn reference(history: &[u32]) -> [f64; FEATURE_COUNT] {
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
                assert_eq!(features(&history), reference(&history), "len {len}");
            }
        }
    }

    #[test]
    fn a_short_or_empty_history_is_all_quiet() {
        let f = features(&[]);
        assert!(f[..7].iter().all(|v| *v == 0.0));
        assert_eq!(f[7], ((HISTORY_HOURS + 1) as f64).ln_1p());
        let f = features(&[3]);
        assert!((f[0] - 4f64.ln()).abs() < 1e-12);
        assert!(f.iter().all(|v| v.is_finite()));
    }
}
