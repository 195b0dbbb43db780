//! Process metrics: what the pipeline counts and times as it works, kept in a registry
//! of the Prometheus client library and rendered in the Prometheus text format (0.0.4)
//! by the API's `/metrics`.
//!
//! Counters and gauges are atomics, so the hot path pays one relaxed add; histograms
//! take a short lock per observation. Values of the moment (the event rate, the lag per
//! partition, the model in use, and what the catalogue knows) are written into a
//! [`Snapshot`] when the page is rendered, not mirrored here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of the rendered page.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// How far back the events-per-second gauge looks.
const RATE_WINDOW_SECS: f64 = 10.0;

/// A sample's labels, as `name, value` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A gauge holding a fraction.
pub type FloatGauge = Gauge<f64, AtomicU64>;

type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Batch writes take milliseconds; 0.5 ms to 4 s.
fn flush_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

/// Requests to a response head: 0.5 ms to 16 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Moves take from milliseconds (small objects) to most of an hour (large ones).
fn move_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 10))
}

/// Everything this process counts and times.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events_consumed: Counter,
    events_unknown: Counter,
    events_published: Counter,
    events_undelivered: Counter,
    events_read: Counter,
    publish_refused: Counter,
    dead_letters: Family<Labels, Counter>,
    flushes: Counter,
    flush_seconds: Histogram,
    flush_last_seconds: FloatGauge,
    spikes: Counter,
    reactive_moves: Counter,
    detector_tracked: Gauge,
    forecast_runs: Counter,
    forecast_objects_last: Gauge,
    forecast_last_seconds: FloatGauge,
    proactive_moves: Counter,
    swept: Family<Labels, Counter>,
    s3_requests: Family<Labels, Counter>,
    s3_request_seconds: Histograms,
    http_request_seconds: Histograms,
    move_attempt_seconds: Histograms,
    lag: Mutex<BTreeMap<i32, i64>>,
    rate: Mutex<RateMeter>,
    model: Mutex<Option<ModelInfo>>,
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
    samples: VecDeque<(Instant, u64)>,
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

impl Default for Metrics {
    fn default() -> Metrics {
        let metrics = Metrics {
            registry: Registry::default(),
            events_consumed: Counter::default(),
            events_unknown: Counter::default(),
            events_published: Counter::default(),
            events_undelivered: Counter::default(),
            events_read: Counter::default(),
            publish_refused: Counter::default(),
            dead_letters: Family::default(),
            flushes: Counter::default(),
            flush_seconds: flush_buckets(),
            flush_last_seconds: FloatGauge::default(),
            spikes: Counter::default(),
            reactive_moves: Counter::default(),
            detector_tracked: Gauge::default(),
            forecast_runs: Counter::default(),
            forecast_objects_last: Gauge::default(),
            forecast_last_seconds: FloatGauge::default(),
            proactive_moves: Counter::default(),
            swept: Family::default(),
            s3_requests: Family::default(),
            s3_request_seconds: Family::new_with_constructor(request_buckets),
            http_request_seconds: Family::new_with_constructor(request_buckets),
            move_attempt_seconds: Family::new_with_constructor(move_buckets),
            lag: Mutex::default(),
            rate: Mutex::default(),
            model: Mutex::default(),
        };
        metrics.registered()
    }
}

impl Metrics {
    /// Registers every live metric under its name (counters get `_total` when rendered).
    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        for (name, help, counter) in [
            (
                "strata_events_consumed",
                "Access events counted into the catalogue",
                &self.events_consumed,
            ),
            (
                "strata_events_unknown_object",
                "Access events naming no catalogue object; skipped",
                &self.events_unknown,
            ),
            (
                "strata_events_published",
                "Access events this process published",
                &self.events_published,
            ),
            (
                "strata_events_undelivered",
                "Published access events the broker never acknowledged; dropped",
                &self.events_undelivered,
            ),
            (
                "strata_events_read",
                "Messages the consumer read from the access topic, counted or not",
                &self.events_read,
            ),
            (
                "strata_events_publish_refused",
                "Publishes refused because the producer queue was full",
                &self.publish_refused,
            ),
            (
                "strata_event_flushes",
                "Batches of counts written to the catalogue",
                &self.flushes,
            ),
            (
                "strata_spikes_detected",
                "Access spikes the detector reported",
                &self.spikes,
            ),
            (
                "strata_reactive_migrations_queued",
                "Promotions queued because of a spike",
                &self.reactive_moves,
            ),
            (
                "strata_forecast_runs",
                "Runs of the scheduled forecaster in this process",
                &self.forecast_runs,
            ),
            (
                "strata_proactive_migrations_queued",
                "Moves queued because of a prediction",
                &self.proactive_moves,
            ),
        ] {
            r.register(name, help, counter.clone());
        }
        r.register(
            "strata_dead_letters",
            "Messages moved to the dead-letter topic, by reason",
            self.dead_letters.clone(),
        );
        r.register(
            "strata_event_flush_seconds",
            "Time spent writing batches of counts",
            self.flush_seconds.clone(),
        );
        r.register(
            "strata_event_flush_last_seconds",
            "Duration of the latest batch write",
            self.flush_last_seconds.clone(),
        );
        r.register(
            "strata_detector_tracked_objects",
            "Objects the spike detector keeps state for",
            self.detector_tracked.clone(),
        );
        r.register(
            "strata_forecast_last_objects",
            "Objects predicted by the latest run",
            self.forecast_objects_last.clone(),
        );
        r.register(
            "strata_forecast_last_seconds",
            "Duration of the latest run",
            self.forecast_last_seconds.clone(),
        );
        r.register(
            "strata_leftovers_swept",
            "Leftovers of interrupted writes removed (temporary files on file tiers, multipart uploads on S3 tiers), by tier",
            self.swept.clone(),
        );
        r.register(
            "strata_s3_requests",
            "Requests the S3 endpoint answered, by operation and outcome (ok, or the S3 error code)",
            self.s3_requests.clone(),
        );
        r.register(
            "strata_s3_request_seconds",
            "Time the S3 endpoint took to answer a request (to the response head), by operation",
            self.s3_request_seconds.clone(),
        );
        r.register(
            "strata_http_request_seconds",
            "Time the REST API took to answer a request (to the response head), by method, route and status",
            self.http_request_seconds.clone(),
        );
        r.register(
            "strata_move_attempt_seconds",
            "Time a move attempt took, by how it left the move (completed, pending for a retry, failed, cancelled)",
            self.move_attempt_seconds.clone(),
        );
        self
    }
}

impl Metrics {
    /// Events counted into the catalogue by one flush, and events naming unknown objects.
    pub fn record_flush(&self, counted: u64, unknown: u64, took: Duration) {
        let total = self.events_consumed.inc_by(counted) + counted;
        self.events_unknown.inc_by(unknown);
        self.flushes.inc();
        self.flush_seconds.observe(took.as_secs_f64());
        self.flush_last_seconds.set(took.as_secs_f64());
        self.rate.lock().expect("rate meter lock").sample(total);
    }

    /// A message moved to the dead-letter topic, by reason code.
    pub fn record_dead_letter(&self, code: &'static str) {
        self.dead_letters
            .get_or_create(&vec![("reason", code.to_string())])
            .inc();
    }

    /// Access events handed to the producer.
    pub fn record_published(&self, n: u64) {
        self.events_published.inc_by(n);
    }

    /// Published access events the broker never acknowledged.
    pub fn record_undelivered(&self, n: u64) {
        self.events_undelivered.inc_by(n);
    }

    /// Messages the consumer read from the access topic, counted or not.
    pub fn record_read(&self, n: u64) {
        self.events_read.inc_by(n);
    }

    /// Access events this process published that its consumer has not read yet (zero
    /// when other producers' messages were read too).
    pub fn events_unread(&self) -> u64 {
        self.events_published
            .get()
            .saturating_sub(self.events_undelivered.get())
            .saturating_sub(self.events_read.get())
    }

    /// A publish refused because the producer queue was full.
    pub fn record_publish_refused(&self) {
        self.publish_refused.inc();
    }

    /// A spike reported by the detector.
    pub fn record_spike(&self) {
        self.spikes.inc();
    }

    /// A promotion queued because of a spike.
    pub fn record_reactive_move(&self) {
        self.reactive_moves.inc();
    }

    /// Objects the detector tracks now.
    pub fn set_detector_tracked(&self, n: usize) {
        self.detector_tracked.set(n as i64);
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
    pub fn record_forecast_run(&self, objects: usize, queued: usize, took: Duration) {
        self.forecast_runs.inc();
        self.forecast_objects_last.set(objects as i64);
        self.proactive_moves.inc_by(queued as u64);
        self.forecast_last_seconds.set(took.as_secs_f64());
    }

    /// The forecast model now in use.
    pub fn set_model(&self, model: ModelInfo) {
        *self.model.lock().expect("model lock") = Some(model);
    }

    /// Events counted into the catalogue so far.
    pub fn events_consumed(&self) -> u64 {
        self.events_consumed.get()
    }

    /// Access events the consumer has read from the broker, counted or not yet.
    pub fn events_read(&self) -> u64 {
        self.events_read.get()
    }

    /// Counts `n` leftovers of interrupted writes removed from `tier`.
    pub fn record_swept(&self, tier: &str, n: u64) {
        self.swept
            .get_or_create(&vec![("tier", tier.to_string())])
            .inc_by(n);
    }

    /// One S3 request of `operation` that ended with `outcome` (`ok` or the S3 error
    /// code) after `took`.
    pub fn record_s3_request(&self, operation: &'static str, outcome: &str, took: Duration) {
        self.s3_requests
            .get_or_create(&vec![
                ("operation", operation.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
        self.s3_request_seconds
            .get_or_create(&vec![("operation", operation.to_string())])
            .observe(took.as_secs_f64());
    }

    /// One REST request: its method, the route it matched and its status, answered
    /// after `took`.
    pub fn record_http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.http_request_seconds
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("route", route.to_string()),
                ("status", status.to_string()),
            ])
            .observe(took.as_secs_f64());
    }

    /// One move attempt that took `took` and left the move `outcome` (its status).
    pub fn record_move_attempt(&self, outcome: &str, took: Duration) {
        self.move_attempt_seconds
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .observe(took.as_secs_f64());
    }

    /// Renders the process's metrics, with its values of the moment, in the Prometheus
    /// text format.
    pub fn render(&self, out: &mut String) {
        let mut now = Snapshot::default();
        let rate = self
            .rate
            .lock()
            .expect("rate meter lock")
            .per_second(self.events_consumed.get());
        now.float_gauges(
            "strata_events_per_second",
            &format!("Access events counted per second, over the last {RATE_WINDOW_SECS} s"),
        )
        .get_or_create(&Vec::new())
        .set(rate);
        let lag = now.gauges(
            "strata_consumer_lag",
            "Messages behind the end of each assigned partition",
        );
        for (partition, behind) in self.lag.lock().expect("lag lock").iter() {
            lag.get_or_create(&vec![("partition", partition.to_string())])
                .set(*behind);
        }
        if let Some(model) = self.model.lock().expect("model lock").as_ref() {
            now.gauges(
                "strata_model_version",
                "Version of the forecast model in use",
            )
            .get_or_create(&Vec::new())
            .set(model.version);
            for (name, help, value) in [
                (
                    "strata_model_eval_mae",
                    "Mean absolute error of the model in use on its evaluation split",
                    model.mae,
                ),
                (
                    "strata_model_eval_r2",
                    "R squared of the model in use on its evaluation split",
                    model.r2,
                ),
            ] {
                now.float_gauges(name, help)
                    .get_or_create(&Vec::new())
                    .set(value);
            }
        }
        encode(out, &self.registry);
        now.render(out);
    }
}

/// Gauges of the moment, read when a page is rendered: registered afresh each time, so
/// a label that is gone (a revoked partition, a tier no longer configured) disappears.
#[derive(Debug, Default)]
pub struct Snapshot {
    registry: Registry,
}

impl Snapshot {
    /// A new family of whole-number gauges; set its samples through the handle.
    pub fn gauges(&mut self, name: &str, help: &str) -> Family<Labels, Gauge> {
        let family = Family::<Labels, Gauge>::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// A new family of gauges holding fractions.
    pub fn float_gauges(&mut self, name: &str, help: &str) -> Family<Labels, FloatGauge> {
        let family = Family::<Labels, FloatGauge>::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// Appends the gauges to `out`.
    pub fn render(&self, out: &mut String) {
        encode(out, &self.registry);
    }
}

fn encode(out: &mut String, registry: &Registry) {
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(out, registry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(m: &Metrics) -> String {
        let mut page = String::new();
        m.render(&mut page);
        page
    }

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.record_flush(10, 2, Duration::from_millis(5));
        m.record_dead_letter("malformed");
        m.record_dead_letter("malformed");
        m.set_lag(BTreeMap::from([(0, 3), (2, 0)]));
        m.record_swept("onprem", 2);
        m.record_swept("onprem", 1);
        let page = rendered(&m);
        assert!(page.contains("strata_events_consumed_total 10\n"), "{page}");
        assert!(page.contains("strata_events_unknown_object_total 2\n"));
        assert!(page.contains("strata_dead_letters_total{reason=\"malformed\"} 2\n"));
        assert!(page.contains("strata_consumer_lag{partition=\"0\"} 3\n"));
        assert!(page.contains("strata_leftovers_swept_total{tier=\"onprem\"} 3\n"));
        assert!(page.contains("strata_event_flush_seconds_sum 0.005\n"));
        assert!(!page.contains("strata_model_version"), "no model yet");
        m.record_forecast_run(1000, 3, Duration::from_millis(20));
        m.set_model(ModelInfo {
            version: 42,
            mae: 1.5,
            r2: 0.75,
        });
        let page = rendered(&m);
        assert!(page.contains("strata_proactive_migrations_queued_total 3\n"));
        assert!(page.contains("strata_forecast_last_objects 1000\n"));
        assert!(page.contains("strata_model_version 42\n"));
        assert!(page.contains("strata_model_eval_r2 0.75\n"));
    }

    #[test]
    fn histograms_have_buckets_by_label() {
        let m = Metrics::default();
        m.record_flush(1, 0, Duration::from_micros(700));
        m.record_move_attempt("completed", Duration::from_secs(3));
        m.record_move_attempt("completed", Duration::from_secs(100));
        m.record_http_request("GET", "/api/v1/objects/{id}", 200, Duration::from_millis(2));
        m.record_s3_request("GetObject", "NoSuchKey", Duration::from_millis(1));
        let page = rendered(&m);
        // 0.7 ms is above the first bound (0.5 ms) and within the second (1 ms).
        assert!(
            page.contains("strata_event_flush_seconds_bucket{le=\"0.0005\"} 0\n"),
            "{page}"
        );
        assert!(page.contains("strata_event_flush_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(page.contains("strata_move_attempt_seconds_count{outcome=\"completed\"} 2\n"));
        assert!(page.contains(
            "strata_move_attempt_seconds_bucket{outcome=\"completed\",le=\"10.24\"} 1\n"
        ));
        assert!(
            page.contains(
                "strata_move_attempt_seconds_bucket{outcome=\"completed\",le=\"+Inf\"} 2\n"
            )
        );
        assert!(page.contains(
            "strata_http_request_seconds_count{method=\"GET\",route=\"/api/v1/objects/{id}\",status=\"200\"} 1\n"
        ));
        assert!(page.contains(
            "strata_s3_requests_total{operation=\"GetObject\",outcome=\"NoSuchKey\"} 1\n"
        ));
        assert!(page.contains("strata_s3_request_seconds_count{operation=\"GetObject\"} 1\n"));
    }

    #[test]
    fn a_lag_no_longer_assigned_disappears() {
        let m = Metrics::default();
        m.set_lag(BTreeMap::from([(0, 3), (1, 4)]));
        assert_eq!(m.consumer_lag(), 7);
        m.set_lag(BTreeMap::from([(1, 2)]));
        let page = rendered(&m);
        assert!(
            !page.contains("strata_consumer_lag{partition=\"0\"}"),
            "{page}"
        );
        assert!(page.contains("strata_consumer_lag{partition=\"1\"} 2\n"));
    }
}
