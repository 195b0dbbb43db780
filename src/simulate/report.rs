//! The simulation report: its JSON shape (`--json`) and the tables printed by default.

use std::fmt::Write;

use serde::Serialize;

use crate::forecast::capture::CaptureScores;
use crate::forecast::{Model, ModelKind};
use crate::timestamp::format_rfc3339_ms;

/// Bytes in a GB, as cloud prices count them.
const GB: f64 = 1e9;

/// `bytes` in GB.
pub(super) fn bytes_gb(bytes: u64) -> f64 {
    bytes as f64 / GB
}

/// Everything a simulation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The trace file.
    pub trace: String,
    /// Accesses in the whole trace.
    pub accesses: u64,
    /// Distinct objects.
    pub objects: usize,
    /// First access, epoch ms.
    pub first_ms: i64,
    /// Last access, epoch ms.
    pub last_ms: i64,
    /// Accesses from this time on are scored: after the training part, or all.
    pub scored_from_ms: i64,
    /// Accesses scored.
    pub scored_accesses: u64,
    /// The hottest tier, whose hit ratio is reported.
    pub hot_tier: String,
    /// Its capacity; `None` is unbounded.
    pub hot_capacity_bytes: Option<u64>,
    /// Bytes per second a move copies at.
    pub bandwidth_bytes_per_sec: u64,
    /// Time between forecaster runs, and the intervals of perfect foresight.
    pub forecast_interval_secs: u64,
    /// The model the forecasting policies used, if any did.
    pub model: Option<ModelSummary>,
    /// One entry per policy replayed.
    pub policies: Vec<PolicyReport>,
    /// Best static placement, LRU, perfect foresight.
    pub references: Vec<ReferenceReport>,
}

/// The model a simulation forecast with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: i64,
    /// Trained by this simulation on the first part of the trace (else loaded).
    pub trained_here: bool,
    /// R² on its evaluation split.
    pub r2: f64,
    /// Whether it beats both naive baselines there.
    pub beats_baselines: bool,
    /// Its kind.
    pub kind: ModelKind,
    /// Its capture there, with the baselines' and the best reachable; `None` for a
    /// model from before capture was measured.
    pub capture: Option<CaptureScores>,
}

impl ModelSummary {
    /// The summary of `model`.
    pub fn of(model: &Model, trained_here: bool) -> ModelSummary {
        ModelSummary {
            name: model.name.clone(),
            version: model.version,
            trained_here,
            r2: model.evaluation.model.r2,
            beats_baselines: model.evaluation.beats_baselines(),
            kind: model.kind,
            capture: model.evaluation.capture,
        }
    }
}

/// What one policy did over the scored part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// `static`, `reactive`, `proactive` or `combined`.
    pub policy: String,
    /// Accesses scored.
    pub accesses: u64,
    /// Per tier, hottest first: accesses served and what the tier cost.
    pub tiers: Vec<TierServed>,
    /// Share of the accesses served by the hottest tier.
    pub hot_hit_ratio: f64,
    /// `hot_hit_ratio` over perfect foresight's; `None` when that is 0.
    pub of_perfect: Option<f64>,
    /// Moves completed, by reason.
    pub moves: Vec<MoveCount>,
    /// Moves refused because their destination was full.
    pub refused_moves: u64,
    /// How long objects that turned hot waited for the hot tier.
    pub time_to_hot: TimeToHot,
    /// Sums over the tiers.
    pub cost: Cost,
}

/// One tier under one policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierServed {
    /// The tier.
    pub tier: String,
    /// Accesses it served.
    pub accesses: u64,
    /// Bytes held over time, GB-hours.
    pub storage_gb_hours: f64,
    /// Storage at `TIER_<NAME>_COST_GB_MONTH`.
    pub storage_cost: f64,
    /// Reads at `TIER_<NAME>_COST_PER_1K_READS`.
    pub reads_cost: f64,
    /// GB leaving the tier: every access reads the whole object, every move out of it
    /// copies it.
    pub transfer_gb: f64,
    /// Transfer at `TIER_<NAME>_COST_TRANSFER_GB`.
    pub transfer_cost: f64,
}

/// Costs summed over the tiers.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Cost {
    /// GB-hours stored.
    pub storage_gb_hours: f64,
    /// Storage cost.
    pub storage: f64,
    /// Read cost.
    pub reads: f64,
    /// GB transferred out of tiers.
    pub transfer_gb: f64,
    /// Transfer cost.
    pub transfer: f64,
    /// All of it.
    pub total: f64,
}

impl Cost {
    /// Adds one tier's share.
    pub(super) fn add(&mut self, tier: &TierServed) {
        self.storage_gb_hours += tier.storage_gb_hours;
        self.storage += tier.storage_cost;
        self.reads += tier.reads_cost;
        self.transfer_gb += tier.transfer_gb;
        self.transfer += tier.transfer_cost;
        self.total += tier.storage_cost + tier.reads_cost + tier.transfer_cost;
    }
}

/// Moves for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoveCount {
    /// The migration reason.
    pub reason: String,
    /// Moves completed.
    pub moves: u64,
    /// Bytes they moved.
    pub bytes: u64,
}

/// Hot episodes: an object turns hot when its accesses in a clock hour pass the hottest
/// tier's `PREDICT_ABOVE`, after an hour that did not; the episode lasts while hours
/// keep passing it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeToHot {
    /// Episodes started in the scored part.
    pub episodes: u64,
    /// Episodes in which the object was, or became, resident on the hottest tier.
    pub reached: u64,
    /// Mean time from turning hot to resident on the hottest tier, over the episodes
    /// that reached it (0 for those already there).
    pub mean_secs: Option<f64>,
}

/// A reference placement of the hottest tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceReport {
    /// `best static`, `LRU` or `perfect foresight`.
    pub name: String,
    /// Accesses scored.
    pub accesses: u64,
    /// Accesses served by the hottest tier.
    pub hot_accesses: u64,
    /// Their share.
    pub hot_hit_ratio: f64,
    /// Objects moved in and out of the hottest tier.
    pub moves: u64,
    /// Bytes those moves copied.
    pub bytes_moved: u64,
}

impl Report {
    /// The report as tables, for people.
    pub fn to_table(&self) -> String {
        let mut out = self.heading();
        out.push('\n');
        let Some(first) = self.policies.first() else {
            return out;
        };
        out.push_str(&columns(&self.hit_rows(first)));
        out.push('\n');
        out.push_str(&columns(&self.move_and_cost_rows(first)));
        out.push('\n');
        out.push_str(&columns(&self.reference_rows()));
        out
    }

    /// What was replayed, on which tiers, with which model.
    fn heading(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "trace {}: {} accesses of {} objects, {} to {}",
            self.trace,
            self.accesses,
            self.objects,
            format_rfc3339_ms(self.first_ms),
            format_rfc3339_ms(self.last_ms)
        );
        let _ = writeln!(
            out,
            "scored: {} accesses from {}{}",
            self.scored_accesses,
            format_rfc3339_ms(self.scored_from_ms),
            match &self.model {
                _ if self.scored_from_ms <= self.first_ms => "",
                Some(m) if m.trained_here => " (the part before trained the model)",
                _ => " (the part before warmed the policies up)",
            }
        );
        if self.scored_accesses * 10 < self.accesses {
            let _ = writeln!(
                out,
                "warning: under a tenth of the accesses are scored; the training part is cut by time, so a few accesses far from the rest move the cut (a smaller --train-fraction scores more)"
            );
        }
        let _ = writeln!(
            out,
            "hot tier {} ({}); moves at {:.1} MB/s; forecaster every {} s",
            self.hot_tier,
            self.hot_capacity_bytes
                .map_or("no capacity limit".into(), |c| format!(
                    "{:.3} GB",
                    bytes_gb(c)
                )),
            self.bandwidth_bytes_per_sec as f64 / 1e6,
            self.forecast_interval_secs
        );
        if let Some(m) = &self.model {
            let _ = writeln!(
                out,
                "model {} v{} ({}, {}; R2 {:.3}{}{})",
                m.name,
                m.version,
                m.kind.as_str(),
                if m.trained_here {
                    "trained on the first part of the trace"
                } else {
                    "loaded"
                },
                m.r2,
                m.capture.map(|c| c.ratio()).map_or(String::new(), |r| format!(
                    "; capture of the best reachable {:.2} / {:.2} / {:.2} at 1 / 2 / 10 % of the bytes",
                    r[0], r[1], r[2]
                )),
                if m.beats_baselines {
                    ""
                } else {
                    "; does NOT beat the naive baselines"
                }
            );
        }
        out
    }

    /// Per policy: accesses served per tier, hot hits, and how fast hot objects got hot.
    fn hit_rows(&self, first: &PolicyReport) -> Vec<Vec<String>> {
        let mut header = vec!["POLICY".to_string()];
        header.extend(first.tiers.iter().map(|t| t.tier.to_uppercase()));
        header.extend(
            ["HOT HIT", "OF PERFECT", "TO HOT (S)", "HOT EPISODES"]
                .iter()
                .map(|s| s.to_string()),
        );
        let mut rows = vec![header];
        for p in &self.policies {
            let mut row = vec![p.policy.clone()];
            row.extend(p.tiers.iter().map(|t| t.accesses.to_string()));
            row.push(format!("{:.3}", p.hot_hit_ratio));
            row.push(p.of_perfect.map_or("-".into(), |f| format!("{f:.3}")));
            row.push(
                p.time_to_hot
                    .mean_secs
                    .map_or("-".into(), |s| format!("{s:.0}")),
            );
            row.push(format!(
                "{}/{} reached",
                p.time_to_hot.reached, p.time_to_hot.episodes
            ));
            rows.push(row);
        }
        rows
    }

    /// Per policy: moves by reason, refusals, and what storage, reads and moves cost.
    fn move_and_cost_rows(&self, first: &PolicyReport) -> Vec<Vec<String>> {
        let mut header = vec!["POLICY".to_string()];
        header.extend(first.moves.iter().map(|m| format!("{} (GB)", m.reason)));
        header.extend(
            [
                "REFUSED",
                "STORAGE GB-H",
                "STORAGE",
                "READS",
                "TRANSFER GB",
                "TRANSFER",
                "TOTAL",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut rows = vec![header];
        for p in &self.policies {
            let mut row = vec![p.policy.clone()];
            row.extend(
                p.moves
                    .iter()
                    .map(|m| format!("{} ({:.3})", m.moves, bytes_gb(m.bytes))),
            );
            let c = &p.cost;
            row.push(p.refused_moves.to_string());
            row.extend(
                [
                    c.storage_gb_hours,
                    c.storage,
                    c.reads,
                    c.transfer_gb,
                    c.transfer,
                    c.total,
                ]
                .iter()
                .map(|v| format!("{v:.2}")),
            );
            rows.push(row);
        }
        rows
    }

    /// The reference placements' hot hits and moves.
    fn reference_rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![
            ["REFERENCE", "HOT HITS", "HOT HIT", "MOVES", "MOVED GB"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ];
        for r in &self.references {
            rows.push(vec![
                r.name.clone(),
                r.hot_accesses.to_string(),
                format!("{:.3}", r.hot_hit_ratio),
                r.moves.to_string(),
                format!("{:.3}", bytes_gb(r.bytes_moved)),
            ]);
        }
        rows
    }
}

/// Rows under a header, columns padded to their widest cell; the first column
/// left-aligned, numbers right-aligned.
fn columns(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, &width))| {
                    if i == 0 {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

/// `part / whole`, 0 for nothing.
pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
