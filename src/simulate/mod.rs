//! `strata simulate`: replays an access trace in virtual time through the code `serve`
//! runs (the spike detector, the forecaster's features, model and tracker, the policy's
//! decisions) and scores each policy against reference placements of the same trace.
//!
//! The trace is read one line at a time, so memory grows with the number of objects and
//! never with the number of accesses. Without `--model`, a first pass checks every line
//! and finds the time span, a second trains the forecaster on the first part of the
//! trace, and the third replays it through every selected policy and the references at
//! once; only the accesses after the training part are scored, as a model is not judged
//! on the hours it learned from. With `--model`, the replay is the only pass (a bad line
//! is then reported when the replay reaches it) and the whole trace is scored. The replay still
//! starts at the beginning, so detector baselines and forecaster histories are warm
//! when scoring starts.
//!
//! What the simulator models, and what it leaves out, is said where it is done:
//! [`replay`] (objects, moves, the mover, costs) and [`reference`] (the references).

mod objects;
mod policy_sim;
mod reference;
mod replay;
mod report;

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Config;
use crate::db::HOUR_MS;
use crate::forecast::trace::{TraceError, TraceReader, hourly_counts};
use crate::forecast::{Model, ModelError, train_from_counts};
use crate::policy::Policy;
use crate::policy::rules::{RuleSet, read_rules_file};

pub use report::{
    Cost, ModelSummary, MoveCount, PolicyReport, ReferenceReport, Report, TierServed, TimeToHot,
};

/// Share of the trace's time span the model is trained on unless `--train-fraction`
/// says otherwise: enough days for the daily features (the same hour yesterday) to be
/// learned on a trace of a week or more, while most of the trace is left to score.
pub const DEFAULT_TRAIN_FRACTION: f64 = 0.25;

/// Bytes per second a modelled move copies at unless `--bandwidth` or
/// `MOVER_BANDWIDTH_BYTES_PER_SEC` says otherwise: about a 1 Gbit/s link.
pub const DEFAULT_BANDWIDTH: u64 = 100_000_000;

/// The horizon a model trained by the simulator predicts, in hours: the service's
/// default (`strata train-model --horizon-hours`).
const TRAIN_HORIZON_HOURS: usize = 1;

/// Share of the training part held out to evaluate the model trained on it, as
/// `strata train-model` does by default.
const TRAIN_EVAL_FRACTION: f64 = 0.2;

/// Accesses replayed between two looks at the clock for the progress line.
const PROGRESS_EVERY: u64 = 1 << 16;

/// A tiering policy the simulator can replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Nothing moves: every object stays on the default tier.
    Static,
    /// The spike detector only.
    Reactive,
    /// The forecaster only.
    Proactive,
    /// Both, as `strata serve` runs them.
    Combined,
    /// A diagnostic: the forecaster's ranked placement, fed the true accesses of the
    /// coming horizon instead of the forecast, and of the coming day instead of the
    /// last. Close to perfect foresight, the loss of `proactive` is the forecaster's;
    /// far from it, the policy's.
    TrueCounts,
}

impl PolicyKind {
    /// Every policy, in report order.
    pub const ALL: [PolicyKind; 5] = [
        PolicyKind::Static,
        PolicyKind::Reactive,
        PolicyKind::Proactive,
        PolicyKind::Combined,
        PolicyKind::TrueCounts,
    ];

    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Static => "static",
            PolicyKind::Reactive => "reactive",
            PolicyKind::Proactive => "proactive",
            PolicyKind::Combined => "combined",
            PolicyKind::TrueCounts => "true-counts",
        }
    }

    /// Whether the spike detector promotes objects.
    fn reacts(self) -> bool {
        matches!(self, PolicyKind::Reactive | PolicyKind::Combined)
    }

    /// Whether the forecaster places objects.
    fn forecasts(self) -> bool {
        matches!(self, PolicyKind::Proactive | PolicyKind::Combined)
    }

    /// Whether it ranks objects by their true coming accesses.
    fn knows_the_future(self) -> bool {
        self == PolicyKind::TrueCounts
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The access trace (DESIGN.md format).
    pub trace: PathBuf,
    /// The policies to replay, each on its own copy of the tiers.
    pub policies: Vec<PolicyKind>,
    /// A model file to forecast with; `None` trains one on the first part of the trace.
    pub model: Option<PathBuf>,
    /// Share of the trace's time span to train on when no model is given.
    pub train_fraction: f64,
    /// Bytes per second a move copies at.
    pub bandwidth: u64,
    /// Where to write every move the policies queue, as CSV.
    pub moves_out: Option<PathBuf>,
    /// Show a progress line on stderr (when it is a terminal).
    pub progress: bool,
    /// A rules file (as `RULES_FILE`): every policy is replayed with and without them.
    pub rules: Option<PathBuf>,
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A file cannot be opened, read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        error: std::io::Error,
    },
    /// The trace is malformed.
    #[error("{path}: {error}")]
    Trace {
        /// The trace file.
        path: String,
        /// What is wrong, with the line number.
        error: TraceError,
    },
    /// An option out of range.
    #[error("{0}")]
    Options(String),
    /// The model given with `--model` cannot be used.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// No model could be trained on the first part of the trace.
    #[error(
        "cannot train a model on the first {percent:.0} % of the trace, {hours:.1} hours ({error}); give one with --model or a larger --train-fraction"
    )]
    Train {
        /// The training share, in percent.
        percent: f64,
        /// The hours the training part spans: a model learns from whole hours, each with
        /// its horizon after it, so a part of a few hours holds next to nothing.
        hours: f64,
        /// Why training failed.
        error: ModelError,
    },
}

/// The rules of the file at `path`, checked against `policy`'s tiers.
fn read_rules(policy: &Policy, path: &Path) -> Result<RuleSet, SimulateError> {
    let bad = |why: String| SimulateError::Options(format!("--rules: {why}"));
    let mut rules = Vec::new();
    for (n, spec) in read_rules_file(path).map_err(bad)?.into_iter().enumerate() {
        let id = spec
            .id
            .clone()
            .ok_or_else(|| bad(format!("rule {} of {} has no id", n + 1, path.display())))?;
        rules.push(
            policy
                .parse_rule(&id, spec)
                .map_err(|why| bad(format!("rule {id}: {why}")))?,
        );
    }
    Ok(RuleSet::new(rules))
}

/// What the first pass found out about the trace.
struct Span {
    first_ms: i64,
    last_ms: i64,
}

/// Runs the simulation described by `options` on the tiers, thresholds and costs of
/// `config` (the same configuration `strata serve` reads).
pub fn run(config: &Config, options: &Options) -> Result<Report, SimulateError> {
    check(options)?;
    let path = &options.trace;
    let needs_model = options.policies.iter().any(|p| p.forecasts());
    let (first_ms, scored_from, model) = model_and_scored_part(options, needs_model)?;
    let policy = Policy::new(config);
    let rules = match &options.rules {
        Some(path) => Some(read_rules(&policy, path)?),
        None => None,
    };
    let moves_out = match &options.moves_out {
        Some(out) => Some(MovesOut::create(out)?),
        None => None,
    };
    let lookahead = if options.policies.iter().any(|p| p.knows_the_future()) {
        Some([open_trace(path)?, open_trace(path)?])
    } else {
        None
    };
    let mut replay = replay::Replay::new(replay::Setup {
        config,
        policy: &policy,
        kinds: &options.policies,
        rules: rules.as_ref(),
        model: model.as_ref().filter(|_| needs_model),
        bandwidth: options.bandwidth,
        scored_from,
        start_ms: first_ms,
        moves_out,
        lookahead,
    });
    let mut reader = open_trace(path)?;
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut progress = Progress::new(options.progress, size);
    let (mut accesses, mut last_ms) = (0u64, first_ms);
    while let Some(access) = reader.next_access().map_err(|e| trace_error(path, e))? {
        replay.access(&access);
        accesses += 1;
        last_ms = access.ts_ms;
        if accesses.is_multiple_of(PROGRESS_EVERY) {
            progress.show(accesses, reader.bytes_read());
        }
    }
    progress.done();
    let outcome = replay.finish(last_ms);
    if let Some((out, result)) = options.moves_out.as_ref().zip(outcome.moves_written) {
        result.map_err(|error| SimulateError::Io {
            path: out.display().to_string(),
            error,
        })?;
    }
    Ok(Report {
        trace: path.display().to_string(),
        accesses,
        objects: outcome.objects,
        first_ms,
        last_ms,
        scored_from_ms: scored_from,
        scored_accesses: outcome.scored_accesses,
        hot_tier: policy.tier_names()[0].to_string(),
        hot_capacity_bytes: config.tiers[0].capacity_bytes,
        bandwidth_bytes_per_sec: options.bandwidth,
        forecast_interval_secs: config.forecast.interval.as_secs(),
        model: model
            .filter(|_| needs_model)
            .map(|m| ModelSummary::of(&m, options.model.is_none())),
        policies: outcome.policies,
        references: outcome.references,
    })
}

fn check(options: &Options) -> Result<(), SimulateError> {
    if !(0.0..1.0).contains(&options.train_fraction) {
        return Err(SimulateError::Options(format!(
            "--train-fraction must be at least 0 and below 1, got {}",
            options.train_fraction
        )));
    }
    if options.bandwidth == 0 {
        return Err(SimulateError::Options(
            "--bandwidth must be more than 0 bytes per second".into(),
        ));
    }
    Ok(())
}

/// The trace's first access, where scoring starts, and the model the forecasting
/// policies use: the one given, or one trained on the trace's first part. With a model
/// given, the replay is the only pass over the trace; otherwise a first pass finds the
/// time span to cut the training part from, and a second trains.
fn model_and_scored_part(
    options: &Options,
    needs_model: bool,
) -> Result<(i64, i64, Option<Model>), SimulateError> {
    let path = &options.trace;
    Ok(match &options.model {
        Some(model_path) => {
            let model = Model::load(model_path)?;
            let first_ms = first_access_ms(path)?;
            (first_ms, first_ms, Some(model))
        }
        None => {
            let span = scan(path)?;
            let cutoff = span.first_ms
                + ((span.last_ms - span.first_ms) as f64 * options.train_fraction) as i64;
            let model = if needs_model {
                Some(train(path, span.first_ms, cutoff, options.train_fraction)?)
            } else {
                None
            };
            (span.first_ms, cutoff, model)
        }
    })
}

/// The time of the trace's first access (its header checked on the way).
fn first_access_ms(path: &Path) -> Result<i64, SimulateError> {
    match open_trace(path)?.next_access() {
        Ok(Some(access)) => Ok(access.ts_ms),
        Ok(None) => Err(trace_error(path, TraceError::Empty)),
        Err(e) => Err(trace_error(path, e)),
    }
}

/// First pass: checks every line and finds the time span.
fn scan(path: &Path) -> Result<Span, SimulateError> {
    let mut reader = open_trace(path)?;
    let mut span: Option<Span> = None;
    while let Some(access) = reader.next_access().map_err(|e| trace_error(path, e))? {
        let span = span.get_or_insert(Span {
            first_ms: access.ts_ms,
            last_ms: access.ts_ms,
        });
        span.last_ms = access.ts_ms;
    }
    span.ok_or_else(|| trace_error(path, TraceError::Empty))
}

/// Second pass: trains a model on the accesses from `first_ms`, the trace's first, to
/// `cutoff_ms`.
fn train(
    path: &Path,
    first_ms: i64,
    cutoff_ms: i64,
    fraction: f64,
) -> Result<Model, SimulateError> {
    let failed = |error| SimulateError::Train {
        percent: fraction * 100.0,
        hours: (cutoff_ms - first_ms) as f64 / HOUR_MS as f64,
        error,
    };
    let mut reader = open_trace(path)?;
    let counts = match hourly_counts(&mut reader, cutoff_ms) {
        Ok(counts) => counts,
        Err(TraceError::Empty) => {
            return Err(failed(ModelError::NotEnoughData(
                "no accesses before the cutoff".into(),
            )));
        }
        Err(e) => return Err(trace_error(path, e)),
    };
    // The cutoff as the version: the same trace always gives the same model and report.
    train_from_counts(
        &counts,
        "simulate",
        TRAIN_HORIZON_HOURS,
        TRAIN_EVAL_FRACTION,
        cutoff_ms,
    )
    .map_err(failed)
}

/// A trace being read.
pub(crate) type Trace = TraceReader<BufReader<File>>;

fn open_trace(path: &Path) -> Result<Trace, SimulateError> {
    let file = File::open(path).map_err(|error| SimulateError::Io {
        path: path.display().to_string(),
        error,
    })?;
    // A large buffer: a run reads the file up to three times, line by line.
    TraceReader::new(BufReader::with_capacity(1 << 20, file)).map_err(|e| trace_error(path, e))
}

fn trace_error(path: &Path, error: TraceError) -> SimulateError {
    SimulateError::Trace {
        path: path.display().to_string(),
        error,
    }
}

/// The CSV file of queued moves (`--moves-out`); the first write error is kept and
/// reported at the end rather than stopping the replay.
struct MovesOut {
    out: BufWriter<File>,
    error: Option<std::io::Error>,
}

impl MovesOut {
    fn create(path: &Path) -> Result<MovesOut, SimulateError> {
        let io = |error| SimulateError::Io {
            path: path.display().to_string(),
            error,
        };
        let mut out = BufWriter::new(File::create(path).map_err(io)?);
        writeln!(
            out,
            "policy,ts_ms,object_id,from_tier,to_tier,reason,size_bytes"
        )
        .map_err(io)?;
        Ok(MovesOut { out, error: None })
    }

    /// Writes one row, remembering the first failure.
    fn row(&mut self, row: std::fmt::Arguments<'_>) {
        if self.error.is_none()
            && let Err(e) = self.out.write_fmt(row)
        {
            self.error = Some(e);
        }
    }

    fn finish(mut self) -> std::io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        }
    }
}

/// The progress line on stderr, redrawn about once a second; only on a terminal, so
/// that scripts and tests see nothing but errors there.
struct Progress {
    enabled: bool,
    total_bytes: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(wanted: bool, total_bytes: u64) -> Progress {
        let now = Instant::now();
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            total_bytes,
            started: now,
            last: now,
        }
    }

    /// Shows `accesses` replayed, `bytes` of the trace read; at most once a second.
    fn show(&mut self, accesses: u64, bytes: u64) {
        if !self.enabled || self.last.elapsed().as_secs() < 1 {
            return;
        }
        self.last = Instant::now();
        let rate = accesses as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\rreplaying: {:>3.0} % of the trace ({accesses} accesses, {:.2} M/s)",
            bytes as f64 * 100.0 / self.total_bytes.max(1) as f64,
            rate / 1e6
        );
    }

    fn done(&self) {
        if self.enabled && self.started.elapsed().as_secs() >= 1 {
            eprintln!();
        }
    }
}
