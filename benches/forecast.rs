//! Forecaster speed: training on ROWS examples (default 10,000,000) built from hourly
//! series, and one scheduled full run over OBJECTS objects (default 1,000,000) with a
//! week of history each: feature extraction, prediction and the policy's decision, then
//! the ranked placement a run adds when the hot tiers have capacities (2 % and 10 % of
//! the bytes). Prints one JSON line.
//!
//! ```text
//! cargo bench --bench forecast -- [ROWS] [OBJECTS]
//! ```

use std::time::Instant;

use strata::config::Config;
use strata::db::{HOUR_MS, HourHits, TrackedObject};
use strata::forecast::features::ObjectFacts;
use strata::forecast::{Example, Model, Tracker, model};
use strata::policy::Policy;

mod support;
use support::rss_bytes;

/// A fixed pseudo-random sequence (xorshift), so every run sees the same data.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Poisson-ish counts around `rate`: cheap, skewed and never negative.
    fn count(&mut self, rate: f64) -> u32 {
        let u = (self.next() % 10_000) as f64 / 10_000.0;
        (rate * 2.0 * u).round() as u32
    }
}

/// Hourly series of one object with a daily cycle peaking at `peak`.
fn series(noise: &mut Noise, hours: usize, peak: usize, scale: f64) -> Vec<u32> {
    (0..hours)
        .map(|h| {
            let phase = ((h + 24 - peak) % 24) as f64 / 24.0 * std::f64::consts::TAU;
            noise.count(scale * (1.0 + phase.cos()) / 2.0)
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let rows: usize = args
        .next()
        .map_or(10_000_000, |a| a.parse().expect("ROWS is a number"));
    let objects: usize = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("OBJECTS is a number"));
    let mut noise = Noise(0x2545_F491_4F6C_DD1D);

    // Training: ROWS examples from series of 1,000 hours each.
    let hours = 1000;
    let series_count = rows.div_ceil(hours - 1);
    let all: Vec<Vec<u32>> = (0..series_count)
        .map(|i| series(&mut noise, hours, i % 24, 1.0 + (i % 40) as f64))
        .collect();
    let started = Instant::now();
    let examples: Vec<Example> = all
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let object = ObjectFacts {
                created_ms: 0,
                size_bytes: 1024 << (i % 20),
            };
            model::examples(s, 0, object, 1)
        })
        .take(rows)
        .collect();
    let features_secs = started.elapsed().as_secs_f64();
    drop(all);
    let started = Instant::now();
    let trained = Model::train("bench", &examples, 1, 0.2, 0).expect("training succeeds");
    let fit_secs = started.elapsed().as_secs_f64();
    drop(examples);

    // A full scheduled run: OBJECTS objects, each with a week of hourly counts.
    let now_hour = 500_000i64;
    let now = now_hour * HOUR_MS + 30 * 60_000;
    let before = rss_bytes();
    let mut tracker = Tracker::new(now);
    for i in 0..objects {
        let id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | i as u128)
            .to_string();
        tracker.observe_object(TrackedObject {
            id: id.clone(),
            tier: "public".into(),
            updated_at: 0,
            created_at: 0,
            size_bytes: 1024 << (i % 20),
        });
        for (back, hits) in series(&mut noise, 168, i % 24, 3.0).into_iter().enumerate() {
            if hits > 0 {
                tracker.observe_hour(&HourHits {
                    object_id: id.clone(),
                    hour: now_hour - back as i64,
                    hits: i64::from(hits),
                });
            }
        }
    }
    let state_bytes = rss_bytes() - before;
    let policy = Policy::new(&Config::from_lookup(|_| None).expect("default configuration"));
    let started = Instant::now();
    let forecasts = tracker.forecast(&trained, now);
    let predicted = forecasts.len();
    let planned = policy
        .plan_proactive(&forecasts, now, &Default::default())
        .len();
    let run_secs = started.elapsed().as_secs_f64();
    assert_eq!(predicted, objects);
    let total: u64 = (0..objects).map(|i| 1024u64 << (i % 20)).sum();
    let capacities = [
        (
            "TIER_ONPREM_CAPACITY_BYTES".to_string(),
            (total / 50).to_string(),
        ),
        (
            "TIER_PRIVATE_CAPACITY_BYTES".to_string(),
            (total / 10).to_string(),
        ),
    ];
    let ranked = Policy::new(
        &Config::from_lookup(|k| {
            capacities
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
        .expect("configuration with capacities"),
    );
    let started = Instant::now();
    let candidates =
        ranked.tracked_candidates(&tracker, &Default::default(), &Default::default(), HOUR_MS);
    let ranked_moves = ranked
        .place_candidates(&candidates, HOUR_MS, now, false)
        .len();
    let rank_secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "bench": "forecast",
            "train_rows": trained.training.train_rows + trained.training.eval_rows,
            "train_feature_secs": (features_secs * 1000.0).round() / 1000.0,
            "train_fit_secs": (fit_secs * 1000.0).round() / 1000.0,
            "train_total_secs": ((features_secs + fit_secs) * 1000.0).round() / 1000.0,
            "run_objects": predicted,
            "run_planned_moves": planned,
            "run_secs": (run_secs * 1000.0).round() / 1000.0,
            "rank_secs": (rank_secs * 1000.0).round() / 1000.0,
            "ranked_run_secs": ((run_secs + rank_secs) * 1000.0).round() / 1000.0,
            "ranked_moves": ranked_moves,
            "state_bytes_per_object": state_bytes / objects.max(1) as u64,
        })
    );
}
