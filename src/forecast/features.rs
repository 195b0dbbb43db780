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

/// Where [`features`] puts `log_size_bytes`, the object's size.
pub const SIZE_FEATURE: usize = 9;

/// Where [`features`] puts `log_hits_last_24h`, the last day's count.
const DAY_FEATURE: usize = 2;

/// Where [`features`] puts `log_hits_per_day_last_7d`, the week's daily mean.
pub const WEEK_FEATURE: usize = 3;

/// Whether the week's daily mean in `features` is only the last day's count over seven:
/// so in every row of a history no longer than a day, where it tells nothing the last
/// day's count does not, and means something else once the history grows.
pub fn week_is_the_last_day(features: &[f64; FEATURE_COUNT]) -> bool {
    let from_day = (features[DAY_FEATURE].exp_m1() / 7.0).ln_1p();
    (features[WEEK_FEATURE] - from_day).abs() <= 1e-12 * from_day.abs().max(1.0)
}

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
pub fn features(history: &[u32], object: ObjectFacts, end_ms: i64) -> [f64; FEATURE_COUNT] {
    let (closed, last_hour) = match history {
        [closed @ .., last] => (closed, *last),
        [] => (history, 0),
    };
    ClosedHours::of(closed).features(last_hour, object, end_ms)
}

/// What the features need of the week before an object's last hour: counts and sums in
/// integers (exact, however they were gathered). The features of every hour are computed
/// from it and the last hour's count, so a caller predicting again and again within one
/// hour, where only that hour's count changes, gathers it once per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClosedHours {
    /// The hour just before the last (1 hour back from it).
    previous: u32,
    /// 23 and 167 hours back: the hour a day (a week) before the one being predicted.
    day_before: u32,
    week_before: u32,
    /// Sums of 1 to 5, 6 to 11, 1 to 23 and 1 to 167 hours back.
    sum_5: u64,
    previous_6h: u64,
    sum_23: u64,
    sum_167: u64,
    /// Sum of the squares of 1 to 167 hours back: with `sum_167`, the spread of the week.
    squares_167: u64,
    /// Hours back to the latest hour with accesses; `None` for a quiet week.
    since_access: Option<u32>,
    /// Hours back to the earliest hour with accesses in the week; 0 for a quiet week.
    first_access: u32,
}

impl ClosedHours {
    /// Gathered from `closed`: hourly counts, oldest first, ending with the hour just
    /// before the last; only the last `HISTORY_HOURS - 1` count.
    pub fn of(closed: &[u32]) -> ClosedHours {
        let n = closed.len();
        let count = |back: usize| n.checked_sub(back).map_or(0, |i| closed[i]);
        // Sums over contiguous slices in integers: cheap enough to gather for every
        // object each hour.
        let sum = |from_back: usize, to_back: usize| -> u64 {
            closed[n.saturating_sub(to_back)..n.saturating_sub(from_back - 1)]
                .iter()
                .map(|&c| u64::from(c))
                .sum()
        };
        let week = &closed[n.saturating_sub(HISTORY_HOURS - 1)..];
        ClosedHours {
            previous: count(1),
            day_before: count(23),
            week_before: count(HISTORY_HOURS - 1),
            sum_5: sum(1, 5),
            previous_6h: sum(6, 11),
            sum_23: sum(1, 23),
            sum_167: sum(1, HISTORY_HOURS - 1),
            squares_167: week.iter().map(|&c| u64::from(c) * u64::from(c)).sum(),
            since_access: week.iter().rev().position(|&c| c > 0).map(|p| p as u32 + 1),
            first_access: week
                .iter()
                .position(|&c| c > 0)
                .map_or(0, |p| (week.len() - p) as u32),
        }
    }

    /// Features at `end_ms`, the end of the last hour, which had `last_hour` accesses.
    ///
    /// Counts, age and size enter on a log scale (`ln(1 + n)`): they are heavy-tailed,
    /// and a linear model of logs is a multiplicative model of counts, which fits bursts
    /// and daily cycles far better than one of raw counts.
    ///
    /// The age is never below the hours since the last access: an object cannot have
    /// been idle longer than it existed. Training traces never break that (an object
    /// appears with its first access), but the catalogue does: an object ingested and
    /// never read, or one whose history came from elsewhere, would otherwise look newborn
    /// and idle for a week at once, a combination no model has seen.
    pub fn features(
        &self,
        last_hour: u32,
        object: ObjectFacts,
        end_ms: i64,
    ) -> [f64; FEATURE_COUNT] {
        let last = u64::from(last_hour);
        let last_6h = (self.sum_5 + last) as f64;
        let last_24h = (self.sum_23 + last) as f64;
        let week = (self.sum_167 + last) as f64;
        let hours_since_last = if last_hour > 0 {
            0.0
        } else {
            self.since_access
                .map_or(HISTORY_HOURS as f64 + 1.0, f64::from)
        };
        [
            f64::from(last_hour).ln_1p(),
            last_6h.ln_1p(),
            last_24h.ln_1p(),
            (week / 7.0).ln_1p(),
            f64::from(self.day_before).ln_1p(),
            f64::from(self.week_before).ln_1p(),
            last_6h.ln_1p() - (self.previous_6h as f64).ln_1p(),
            hours_since_last.ln_1p(),
            age_hours(object, end_ms).max(hours_since_last).ln_1p(),
            (object.size_bytes as f64).ln_1p(),
        ]
    }
}

/// Accesses per hour over the last day at `now_ms`: the 23 closed hours `closed` holds
/// before the hour in progress and the `counted` accesses of that hour so far, over the
/// time they span. Counted as they are, not completed as for the features: at the top of
/// an hour a completed count would count the hour before twice. An object younger than a
/// day had no accesses before it existed: one read of a new object is one read a day.
/// The long-run rate placement weighs a stay longer than the forecast's horizon by.
pub fn day_rate_now(closed: &ClosedHours, counted: u32, now_ms: i64) -> f64 {
    let (elapsed, _) = hour_in_progress(now_ms);
    (closed.sum_23 + u64::from(counted)) as f64 / (23.0 + elapsed)
}

/// Accesses per hour at `now_ms` of an object whose closed hours look like a steady
/// stream: a Poisson count at one rate, by the index of dispersion of the hours it has
/// existed in the last week (at least a day of them, so that a daily cycle can show; a
/// day and more without any access is a stream at the rate of nothing).
/// Such an object's mean over those hours (and the hour in progress) is the least noisy
/// estimate of its coming hours; with the hours it is the mean of. `None` when the
/// hours vary more than chance allows.
pub fn steady_rate(
    closed: &ClosedHours,
    counted: u32,
    object: ObjectFacts,
    now_ms: i64,
) -> Option<(f64, f64)> {
    let (elapsed, end_ms) = hour_in_progress(now_ms);
    // Never fewer hours than its accesses span: its history may predate its creation.
    let hours = (age_hours(object, end_ms - HOUR_MS).floor() as u64)
        .max(u64::from(closed.first_access))
        .min(HISTORY_HOURS as u64 - 1);
    if hours < 24 {
        return None;
    }
    let n = hours as f64;
    let mean = closed.sum_167 as f64 / n;
    let variance = (closed.squares_167 as f64 / n - mean * mean).max(0.0);
    // The dispersion statistic is chi-squared with n - 1 degrees of freedom for a
    // Poisson count at one rate; two of its standard deviations above its mean reject.
    // Hours without a single access do not vary: a stream at the rate of nothing.
    let dispersion = if mean > 0.0 {
        (n - 1.0) * variance / mean
    } else {
        0.0
    };
    let df = n - 1.0;
    // The hour in progress must keep to the rate too: a burst starting now is no
    // steady stream.
    (dispersion <= df + 2.0 * (2.0 * df).sqrt() && !above_chance(counted, mean * elapsed)).then(
        || {
            let over = n + elapsed;
            ((closed.sum_167 + u64::from(counted)) as f64 / over, over)
        },
    )
}

/// Whether a Poisson count at mean `mean` reaches `count` with a chance below that of
/// two standard deviations above the mean of a normal one (2.3 %).
fn above_chance(count: u32, mean: f64) -> bool {
    const CHANCE: f64 = 0.0228;
    let k = f64::from(count);
    if k <= mean {
        return false;
    }
    if mean > 50.0 {
        // Near enough normal, and the sum below would start from an underflow.
        return k > mean + 2.0 * mean.sqrt();
    }
    // P(X >= k) = 1 - P(X <= k - 1), summed term by term until it is decided.
    let mut term = (-mean).exp();
    let mut below = term;
    for i in 1..count {
        if below > 1.0 - CHANCE {
            return true;
        }
        term *= mean / f64::from(i);
        below += term;
    }
    below > 1.0 - CHANCE
}

/// Hours from the object's creation to `end_ms`; never negative (a trace's first access
/// can fall inside the hour that ends at `end_ms`).
fn age_hours(object: ObjectFacts, end_ms: i64) -> f64 {
    (end_ms.saturating_sub(object.created_ms).max(0) as f64) / HOUR_MS as f64
}

/// Features of an object at `now_ms` from `history`, whose last entry is the hour in
/// progress: that hour is completed first ([`complete_hour_in_progress`]) and the
/// features are taken as of its end, as training takes them at the end of a complete
/// hour. The definition [`features_now_from`] must equal.
#[cfg(test)]
pub fn features_now(history: &mut [u32], object: ObjectFacts, now_ms: i64) -> [f64; FEATURE_COUNT] {
    let (elapsed, end_ms) = hour_in_progress(now_ms);
    complete_hour_in_progress(history, elapsed);
    features(history, object, end_ms)
}

/// Features of an object at `now_ms` from the week before the hour in progress,
/// `closed`, and that hour's count so far: that hour is completed at the previous hour's
/// rate and the features are taken as of its end, as training takes them at the end of
/// a complete hour. What the scheduled run, the predict endpoint and the simulator
/// predict from, with `closed` gathered once per hour.
pub fn features_now_from(
    closed: &ClosedHours,
    counted: u32,
    object: ObjectFacts,
    now_ms: i64,
) -> [f64; FEATURE_COUNT] {
    let (elapsed, end_ms) = hour_in_progress(now_ms);
    let completed = completed_count(closed.previous, counted, elapsed);
    closed.features(completed, object, end_ms)
}

/// The fraction of the hour in progress that has passed at `now_ms`, and its end.
fn hour_in_progress(now_ms: i64) -> (f64, i64) {
    let elapsed = now_ms.rem_euclid(HOUR_MS) as f64 / HOUR_MS as f64;
    (elapsed, (now_ms.div_euclid(HOUR_MS) + 1) * HOUR_MS)
}

/// Completes the hour in progress, the last entry of `history`, of which the fraction
/// `elapsed` (0 to 1) has passed: its remaining part is assumed to run at the previous
/// hour's rate. A model learns from complete hours; shown an hour only minutes old, it
/// would take its first minutes for a sudden quiet, and every prediction would dip at
/// the top of each hour (demoting objects only to promote them again minutes later).
#[cfg(test)]
pub fn complete_hour_in_progress(history: &mut [u32], elapsed: f64) {
    if let [.., previous, current] = history {
        *current = completed_count(*previous, *current, elapsed);
    }
}

/// The count of an hour of which `elapsed` has passed with `counted` accesses, the rest
/// at the rate of the `previous` hour.
fn completed_count(previous: u32, counted: u32, elapsed: f64) -> u32 {
    let rest = (1.0 - elapsed.clamp(0.0, 1.0)) * f64::from(previous);
    counted.saturating_add(rest.round() as u32)
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
        assert_eq!(FEATURE_NAMES[SIZE_FEATURE], "log_size_bytes");
        assert_eq!(FEATURE_NAMES[DAY_FEATURE], "log_hits_last_24h");
        assert_eq!(FEATURE_NAMES[WEEK_FEATURE], "log_hits_per_day_last_7d");
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
            (((end_ms - object.created_ms) as f64 / 3_600_000.0).max(hours_since_last)).ln_1p(),
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
    fn features_from_the_closed_hours_equal_those_of_the_whole_history() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for len in [1, 2, 24, HISTORY_HOURS, 300] {
            let history: Vec<u32> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if state.is_multiple_of(4) {
                        (state % 90) as u32
                    } else {
                        0
                    }
                })
                .collect();
            let object = ObjectFacts {
                created_ms: 0,
                size_bytes: 4096,
            };
            for now_ms in [7 * HOUR_MS, 7 * HOUR_MS + 1, 7 * HOUR_MS + HOUR_MS / 3] {
                let (closed, counted) = history.split_at(len - 1);
                assert_eq!(
                    features_now_from(&ClosedHours::of(closed), counted[0], object, now_ms),
                    features_now(&mut history.clone(), object, now_ms),
                    "len {len}, now {now_ms}"
                );
            }
        }
    }

    #[test]
    fn the_day_rate_is_the_mean_of_the_last_day() {
        // Two days: 1 an hour, then 3 an hour; the hour in progress, half gone, has 1 so
        // far.
        let mut closed = vec![1; 24];
        closed.extend([3; 23]);
        let now_ms = 47 * HOUR_MS + HOUR_MS / 2;
        let rate = day_rate_now(&ClosedHours::of(&closed), 1, now_ms);
        assert!((rate - (23.0 * 3.0 + 1.0) / 23.5).abs() < 1e-9, "{rate}");
        // One read in the hour before, the hour in progress just begun: once a day, not
        // twice (its completed count would repeat the hour before).
        let read_once = ClosedHours::of(&[0, 0, 0, 0, 0, 1]);
        let rate = day_rate_now(&read_once, 0, 48 * HOUR_MS);
        assert!((rate - 1.0 / 23.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_short_or_empty_history_is_all_quiet() {
        let f = features(&[], ObjectFacts::default(), 0);
        assert!(f[..7].iter().all(|v| *v == 0.0));
        assert_eq!(f[7], ((HISTORY_HOURS + 1) as f64).ln_1p());
        assert_eq!(f[8], f[7], "as old as it has been idle");
        assert_eq!(f[9], 0.0);
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
    fn an_object_is_at_least_as_old_as_it_has_been_idle() {
        let ingested_now_read_days_ago = ObjectFacts {
            created_ms: 100 * HOUR_MS,
            size_bytes: 10,
        };
        let mut history = vec![0u32; 50];
        history[0] = 30;
        let f = features(&history, ingested_now_read_days_ago, 100 * HOUR_MS);
        assert_eq!(f[7], 49f64.ln_1p());
        assert_eq!(f[8], f[7]);
        let never_read = features(&[0, 0], ingested_now_read_days_ago, 100 * HOUR_MS);
        assert_eq!(never_read[8], ((HISTORY_HOURS + 1) as f64).ln_1p());
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

    #[test]
    fn a_steady_stream_is_valued_at_its_mean_and_a_varying_one_is_left_to_the_model() {
        let now_ms = 1_000 * HOUR_MS + HOUR_MS / 2; // half of hour 1000 has passed
        let born = |hours_ago: i64| ObjectFacts {
            created_ms: (1_000 - hours_ago) * HOUR_MS,
            size_bytes: 1,
        };
        // Closed hours 952..=999, Poisson-like around 3 an hour.
        let steady: Vec<u32> = (0..48).map(|h| [2, 3, 4, 3, 1, 5][h % 6]).collect();
        let closed = ClosedHours::of(&steady);
        let (rate, hours) = steady_rate(&closed, 2, born(48), now_ms).expect("steady");
        assert!((rate - (144.0 + 2.0) / 48.5).abs() < 1e-9, "{rate}");
        assert_eq!(hours, 48.5);
        // Hours before it existed are not counted as quiet ones.
        let padded: Vec<u32> = std::iter::repeat_n(0, 100).chain(steady.clone()).collect();
        assert_eq!(
            steady_rate(&ClosedHours::of(&padded), 2, born(48), now_ms),
            Some((rate, hours))
        );
        // A nightly batch: twenty reads in one hour of each day.
        let batch: Vec<u32> = (0..48).map(|h| if h % 24 == 3 { 20 } else { 0 }).collect();
        assert_eq!(
            steady_rate(&ClosedHours::of(&batch), 0, born(48), now_ms),
            None
        );
        // Rising from 1 to 48 an hour.
        let rising: Vec<u32> = (1..=48).collect();
        assert_eq!(
            steady_rate(&ClosedHours::of(&rising), 48, born(48), now_ms),
            None
        );
        // Less than a day old: a daily cycle could not have shown yet.
        assert_eq!(
            steady_rate(&ClosedHours::of(&steady[25..]), 2, born(23), now_ms),
            None
        );
        // Created after its accesses began (history from elsewhere): the mean is over
        // the hours its accesses span, not over its age.
        assert_eq!(
            steady_rate(&closed, 2, born(30), now_ms),
            Some((rate, hours))
        );
        // Never read in two days: a stream of nothing; read for the first time now: not.
        assert_eq!(
            steady_rate(&ClosedHours::of(&[0; 48]), 0, born(48), now_ms),
            Some((0.0, 48.5))
        );
        assert_eq!(
            steady_rate(&ClosedHours::of(&[0; 48]), 1, born(48), now_ms),
            None
        );
        // A burst in the hour in progress: 12 reads in its first half, where 1.5 were due.
        assert_eq!(steady_rate(&closed, 12, born(48), now_ms), None);
        assert!(steady_rate(&closed, 4, born(48), now_ms).is_some());
    }

    #[test]
    fn a_count_is_above_chance_beyond_two_standard_deviations() {
        assert!(!above_chance(0, 0.0));
        assert!(above_chance(1, 0.0));
        assert!(!above_chance(1, 0.05), "P(X >= 1) is 4.9 %");
        assert!(above_chance(2, 0.05), "P(X >= 2) is 0.12 %");
        assert!(!above_chance(6, 3.0), "P(X >= 6) is 8.4 %");
        assert!(above_chance(8, 3.0), "P(X >= 8) is 1.2 %");
        assert!(!above_chance(110, 100.0));
        assert!(above_chance(121, 100.0));
        assert!(above_chance(u32::MAX, 10.0));
    }
}
