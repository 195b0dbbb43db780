//! Process metrics: counters the pipeline updates as it works, rendered in the
//! Prometheus text format by the API's `/metrics`.
//!
//! Counters are plain atomics so that the hot path pays one relaxed add; what the
//! catalogue knows (objects per tier, migrations by status) is read from the database
//! when the page is rendered, not mirrored here.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// How far back the events-per-second gauge looks.
const RATE_WINDOW_SECS: f64 = 10.0;

/// Everything this process counts.
#[derive(Debug, Default)]
pub struct Metrics {
    events_consumed: AtomicU64,
    events_unknown: AtomicU64,
    events_published: AtomicU64,
    events_read: AtomicU64,
    publish_refused: AtomicU64,
    dead_letters: Mutex<BTreeMap<&'static str, u64>>,
    flushes: AtomicU64,
    flush_micros_total: AtomicU64,
    flush_micros_last: AtomicU64,
    spikes: AtomicU64,
    reactive_moves: AtomicU64,
    detector_tracked: AtomicU64,
    lag: Mutex<BTreeMap<i32, i64>>,
    rate: Mutex<RateMeter>,
    forecast_runs: AtomicU64,
    forecast_objects_last: AtomicU64,
    forecast_micros_last: AtomicU64,
    proactive_moves: AtomicU64,
    model: Mutex<Option<ModelInfo>>,
    swept: Mutex<BTreeMap<String, u64>>,
    s3_requests: Mutex<BTreeMap<(&'static str, String), u64>>,
}

/// The forecast model in use, as metrics show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Model version.
    pub version: i64,
    /// MAE on its evaluation split.
    pub mae: f64,
    /// R² on its evaluation split.
    pub r2: f64,
}

/// Events per second over the last few seconds, from (time, total) samples.
#[derive(Debug, Default)]
struct RateMeter {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl RateMeter {
    fn sample(&mut self, total: u64) {
        let now = Instant::now();
        self.samples.push_back((now, total));
        while self.samples.len() > 2
            && now.duration_since(self.samples[1].0).as_secs_f64() >= RATE_WINDOW_SECS
        {
            self.samples.pop_front();
        }
    }

    fn per_second(&self, total: u64) -> f64 {
        let Some(&(first_at, first_total)) = self.samples.front() else {
            return 0.0;
        };
        let elapsed = first_at.elapsed().as_secs_f64();
        if elapsed < 0.001 {
            0.0
        } else {
            total.saturating_sub(first_total) as f64 / elapsed
        }
    }
}

impl Metrics {
    /// Events counted into the catalogue by one flush, and events naming unknown objects.
    pub fn record_flush(&self, counted: u64, unknown: u64, took: std::time::Duration) {
        let total = self.events_consumed.fetch_add(counted, Relaxed) + counted;
        self.events_unknown.fetch_add(unknown, Relaxed);
        self.flushes.fetch_add(1, Relaxed);
        let micros = took.as_micros().min(u128::from(u64::MAX)) as u64;
        self.flush_micros_total.fetch_add(micros, Relaxed);
        self.flush_micros_last.store(micros, Relaxed);
        self.rate.lock().expect("rate meter lock").sample(total);
    }

    /// A message moved to the dead-letter topic, by reason code.
    pub fn record_dead_letter(&self, code: &'static str) {
        *self
            .dead_letters
            .lock()
            .expect("dead letter lock")
            .entry(code)
            .or_default() += 1;
    }

    /// Access events handed to the producer.
    pub fn record_published(&self, n: u64) {
        self.events_published.fetch_add(n, Relaxed);
    }

    /// Messages the consumer read from the access topic, counted or not.
    pub fn record_read(&self, n: u64) {
        self.events_read.fetch_add(n, Relaxed);
    }

    /// Access events this process published that its consumer has not read yet (zero
    /// when other producers' messages were read too).
    pub fn events_unread(&self) -> u64 {
        self.events_published
            .load(Relaxed)
            .saturating_sub(self.events_read.load(Relaxed))
    }

    /// A publish refused because the producer queue was full.
    pub fn record_publish_refused(&self) {
        self.publish_refused.fetch_add(1, Relaxed);
    }

    /// A spike reported by the detector.
    pub fn record_spike(&self) {
        self.spikes.fetch_add(1, Relaxed);
    }

    /// A promotion queued because of a spike.
    pub fn record_reactive_move(&self) {
        self.reactive_moves.fetch_add(1, Relaxed);
    }

    /// Objects the detector tracks now.
    pub fn set_detector_tracked(&self, n: usize) {
        self.detector_tracked.store(n as u64, Relaxed);
    }

    /// Consumer lag per assigned partition (high watermark minus next offset); replaces
    /// what was there, so revoked partitions disappear.
    pub fn set_lag(&self, lag: BTreeMap<i32, i64>) {
        *self.lag.lock().expect("lag lock") = lag;
    }

    /// Consumer lag summed over the assigned partitions.
    pub fn consumer_lag(&self) -> i64 {
        self.lag.lock().expect("lag lock").values().sum()
    }

    /// One forecaster run: objects predicted, moves queued, how long it took.
    pub fn record_forecast_run(&self, objects: usize, queued: usize, took: std::time::Duration) {
        self.forecast_runs.fetch_add(1, Relaxed);
        self.forecast_objects_last.store(objects as u64, Relaxed);
        self.proactive_moves.fetch_add(queued as u64, Relaxed);
        let micros = took.as_micros().min(u128::from(u64::MAX)) as u64;
        self.forecast_micros_last.store(micros, Relaxed);
    }

    /// The forecast model now in use.
    pub fn set_model(&self, model: ModelInfo) {
        *self.model.lock().expect("model lock") = Some(model);
    }

    /// Events counted into the catalogue so far.
    pub fn events_consumed(&self) -> u64 {
        self.events_consumed.load(Relaxed)
    }

    /// Access events the consumer has read from the broker, counted or not yet.
    pub fn events_read(&self) -> u64 {
        self.events_read.load(Relaxed)
    }

    /// Counts `n` leftovers of interrupted writes removed from `tier`.
    pub fn record_swept(&self, tier: &str, n: u64) {
        *self
            .swept
            .lock()
            .expect("swept lock")
            .entry(tier.to_string())
            .or_default() += n;
    }

    /// Counts one S3 request of `operation` that ended with `outcome` (`ok` or the S3
    /// error code).
    pub fn record_s3_request(&self, operation: &'static str, outcome: &str) {
        *self
            .s3_requests
            .lock()
            .expect("s3 requests lock")
            .entry((operation, outcome.to_string()))
            .or_default() += 1;
    }

    /// Renders the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut page = Page(out);
        self.render_events(&mut page);
        self.render_decisions(&mut page);
        page.family(
            "strata_leftovers_swept_total",
            "counter",
            "Leftovers of interrupted writes removed (temporary files on file tiers, multipart uploads on S3 tiers), by tier.",
        );
        for (tier, n) in self.swept.lock().expect("swept lock").iter() {
            page.sample("strata_leftovers_swept_total", &[("tier", tier)], n);
        }
        page.family(
            "strata_s3_requests_total",
            "counter",
            "Requests the S3 endpoint answered, by operation and outcome (ok, or the S3 error code).",
        );
        for ((operation, outcome), n) in self.s3_requests.lock().expect("s3 requests lock").iter() {
            page.sample(
                "strata_s3_requests_total",
                &[("operation", operation), ("outcome", outcome)],
                n,
            );
        }
    }

    /// The event pipeline: publishing, consuming, dead letters, lag and batch writes.
    fn render_events(&self, page: &mut Page<'_>) {
        let consumed = self.events_consumed.load(Relaxed);
        for (name, help, value) in [
            (
                "strata_events_consumed_total",
                "Access events counted into the catalogue.",
                consumed,
            ),
            (
                "strata_events_unknown_object_total",
                "Access events naming no catalogue object; skipped.",
                self.events_unknown.load(Relaxed),
            ),
            (
                "strata_events_published_total",
                "Access events this process published.",
                self.events_published.load(Relaxed),
            ),
            (
                "strata_events_publish_refused_total",
                "Publishes refused because the producer queue was full.",
                self.publish_refused.load(Relaxed),
            ),
            (
                "strata_event_flushes_total",
                "Batches of counts written to the catalogue.",
                self.flushes.load(Relaxed),
            ),
        ] {
            page.single(name, "counter", help, value);
        }
        let rate = self
            .rate
            .lock()
            .expect("rate meter lock")
            .per_second(consumed);
        page.single(
            "strata_events_per_second",
            "gauge",
            &format!("Access events counted per second, over the last {RATE_WINDOW_SECS} s."),
            format!("{rate:.1}"),
        );
        page.family(
            "strata_dead_letters_total",
            "counter",
            "Messages moved to the dead-letter topic, by reason.",
        );
        for (reason, n) in self.dead_letters.lock().expect("dead letter lock").iter() {
            page.sample("strata_dead_letters_total", &[("reason", reason)], n);
        }
        page.family(
            "strata_consumer_lag",
            "gauge",
            "Messages behind the end of each assigned partition.",
        );
        for (partition, lag) in self.lag.lock().expect("lag lock").iter() {
            page.sample(
                "strata_consumer_lag",
                &[("partition", &partition.to_string())],
                lag,
            );
        }
        page.family(
            "strata_event_flush_seconds",
            "summary",
            "Time spent writing batches of counts.",
        );
        let total = self.flush_micros_total.load(Relaxed) as f64 / 1e6;
        page.sample("strata_event_flush_seconds_sum", &[], format!("{total:.6}"));
        page.sample(
            "strata_event_flush_seconds_count",
            &[],
            self.flushes.load(Relaxed),
        );
        let last = self.flush_micros_last.load(Relaxed) as f64 / 1e6;
        page.single(
            "strata_event_flush_last_seconds",
            "gauge",
            "Duration of the latest batch write.",
            format!("{last:.6}"),
        );
    }

    /// The detector's and the forecaster's decisions, and the model in use.
    fn render_decisions(&self, page: &mut Page<'_>) {
        for (name, help, value) in [
            (
                "strata_spikes_detected_total",
                "Access spikes the detector reported.",
                self.spikes.load(Relaxed),
            ),
            (
                "strata_reactive_migrations_queued_total",
                "Promotions queued because of a spike.",
                self.reactive_moves.load(Relaxed),
            ),
            (
                "strata_forecast_runs_total",
                "Runs of the scheduled forecaster in this process.",
                self.forecast_runs.load(Relaxed),
            ),
            (
                "strata_proactive_migrations_queued_total",
                "Moves queued because of a prediction.",
                self.proactive_moves.load(Relaxed),
            ),
        ] {
            page.single(name, "counter", help, value);
        }
        page.single(
            "strata_detector_tracked_objects",
            "gauge",
            "Objects the spike detector keeps state for.",
            self.detector_tracked.load(Relaxed),
        );
        page.single(
            "strata_forecast_last_objects",
            "gauge",
            "Objects predicted by the latest run.",
            self.forecast_objects_last.load(Relaxed),
        );
        let last = self.forecast_micros_last.load(Relaxed) as f64 / 1e6;
        page.single(
            "strata_forecast_last_seconds",
            "gauge",
            "Duration of the latest run.",
            format!("{last:.6}"),
        );
        if let Some(model) = self.model.lock().expect("model lock").as_ref() {
            page.single(
                "strata_model_version",
                "gauge",
                "Version of the forecast model in use.",
                model.version,
            );
            page.single(
                "strata_model_eval_mae",
                "gauge",
                "Mean absolute error of the model in use on its evaluation split.",
                model.mae,
            );
            page.single(
                "strata_model_eval_r2",
                "gauge",
                "R squared of the model in use on its evaluation split.",
                model.r2,
            );
        }
    }
}

/// A page of Prometheus text, written one metric family at a time.
pub struct Page<'a>(pub &'a mut String);

impl Page<'_> {
    /// Starts a family: its help line and its type (`counter`, `gauge`, `summary`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the family started last, with `labels` as `name="value"` pairs.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        let _ = write!(self.0, "{name}");
        for (i, (label, text)) in labels.iter().enumerate() {
            let open = if i == 0 { "{" } else { "," };
            let _ = write!(self.0, "{open}{label}=\"{text}\"");
        }
        let close = if labels.is_empty() { "" } else { "}" };
        let _ = writeln!(self.0, "{close} {value}");
    }

    /// A family of one sample without labels.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.record_flush(10, 2, Duration::from_millis(5));
        m.record_dead_letter("malformed");
        m.record_dead_letter("malformed");
        m.set_lag(BTreeMap::from([(0, 3), (2, 0)]));
        m.record_swept("onprem", 2);
        m.record_swept("onprem", 1);
        let mut page = String::new();
        m.render(&mut page);
        assert!(page.contains("strata_events_consumed_total 10\n"), "{page}");
        assert!(page.contains("strata_events_unknown_object_total 2\n"));
        assert!(page.contains("strata_dead_letters_total{reason=\"malformed\"} 2\n"));
        assert!(page.contains("strata_consumer_lag{partition=\"0\"} 3\n"));
        assert!(page.contains("strata_leftovers_swept_total{tier=\"onprem\"} 3\n"));
        assert!(page.contains("strata_event_flush_seconds_sum 0.005000\n"));
        assert!(!page.contains("strata_model_version"), "no model yet");
        m.record_forecast_run(1000, 3, Duration::from_millis(20));
        m.set_model(ModelInfo {
            version: 42,
            mae: 1.5,
            r2: 0.75,
        });
        let mut page = String::new();
        m.render(&mut page);
        assert!(page.contains("strata_proactive_migrations_queued_total 3\n"));
        assert!(page.contains("strata_forecast_last_objects 1000\n"));
        assert!(page.contains("strata_model_version 42\n"));
        assert!(page.contains("strata_model_eval_r2 0.75\n"));
    }
}
