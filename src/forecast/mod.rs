//! The forecaster: features of an object's access history, the linear model that
//! predicts its demand over the next hours, training it from access traces or the
//! catalogue and measuring how well it ranks objects for placement (capture), and
//! keeping predictions current for every object.
//!
//! Predictions look at whole clock hours, the hour in progress counting as the last
//! one, and predict the horizon after it: during 13:xx the model predicts 14:00 on, so
//! a daily peak at 14:00 (seen yesterday and last week) is foreseen before it starts.
//! The part of the hour in progress still to come is filled in at the previous hour's
//! rate ([`features::features_now_from`]), as the model learned from complete
//! hours.
//!
//! An object whose hours look like a steady stream (a Poisson count at one rate, by
//! their dispersion over at least a day, the hour in progress included) is forecast at
//! its long-run mean instead ([`forecast_now`]): nothing a model reads in its last hours
//! is more than noise then, and a mean over many hours is the least noisy estimate. Each
//! forecast carries its variance as an estimate, which placement weighs swaps by.

pub mod active;
pub mod capture;
pub mod features;
pub mod history;
pub mod model;
pub mod report;
pub mod shards;
pub mod trace;
pub mod tracker;

pub use active::ActiveModel;
pub use model::{Contribution, Evaluation, Example, Model, ModelError, ModelKind, Scores};
pub use shards::Shards;
pub use tracker::{ObjectForecast, TrackedId, TrackedValue, Tracker};

use std::collections::HashMap;

use crate::db::{Catalogue, CatalogueError, HOUR_MS, ObjectRecord};
use features::{ClosedHours, HISTORY_HOURS, ObjectFacts};

/// Shares of the hours a training may hold out for evaluation: enough hours to score
/// on, enough left to train on. The CLI and the API both check against it.
pub const EVAL_FRACTIONS: std::ops::RangeInclusive<f64> = 0.05..=0.9;

/// Checks a model name (it becomes part of the model's file name); the CLI and the API
/// both check with it. The error says what is expected.
pub fn check_model_name(name: &str) -> Result<(), &'static str> {
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err("1 to 64 letters, digits, `_` or `-`")
    }
}

/// Why training from the catalogue failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The model could not be trained.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The catalogue's history could not be read.
    #[error("reading the access history: {0}")]
    Catalogue(#[from] CatalogueError),
}

/// The training examples of an access trace, predicting `horizon_hours` ahead.
pub fn examples_from_trace(
    input: impl std::io::BufRead,
    horizon_hours: usize,
) -> Result<Vec<Example>, trace::TraceError> {
    Ok(examples_from_counts(
        &trace::read_trace(input)?,
        horizon_hours,
    ))
}

/// The training examples of hourly counts read from a trace.
pub fn examples_from_counts(counts: &trace::HourlyCounts, horizon_hours: usize) -> Vec<Example> {
    counts
        .series
        .values()
        .flat_map(|s| model::examples(&s.hours, counts.first_hour, s.object, horizon_hours))
        .collect()
}

/// Trains a model named `name` on hourly counts read from a trace (all of it, or its
/// first part when the simulator holds the rest back).
pub fn train_from_counts(
    counts: &trace::HourlyCounts,
    name: &str,
    horizon_hours: usize,
    eval_fraction: f64,
    now_ms: i64,
) -> Result<Model, ModelError> {
    let examples = examples_from_counts(counts, horizon_hours);
    Model::train(name, &examples, horizon_hours, eval_fraction, now_ms)
}

/// The training examples of the catalogue's hourly access history, predicting
/// `horizon_hours` ahead: every object's hours from its first counted access up to the
/// last complete hour before `now_ms`.
pub async fn examples_from_catalogue(
    catalogue: &Catalogue,
    horizon_hours: usize,
    now_ms: i64,
) -> Result<Vec<Example>, CatalogueError> {
    let objects: HashMap<String, ObjectFacts> = catalogue
        .objects_changed_since(i64::MIN)
        .await?
        .into_iter()
        .map(|o| (o.id, object_facts(o.created_at, o.size_bytes)))
        .collect();
    let end_hour = now_ms.div_euclid(HOUR_MS);
    let mut examples = Vec::new();
    // Rows arrive in object order: one object's series is built, turned into examples
    // and dropped before the next one starts. Buckets of an object deleted meanwhile
    // are skipped.
    let mut current: Option<(String, i64, Vec<u32>)> = None;
    let finish = |series: Option<(String, i64, Vec<u32>)>, examples: &mut Vec<Example>| {
        if let Some((id, first_hour, series)) = series
            && let Some(object) = objects.get(&id)
        {
            examples.extend(model::examples(&series, first_hour, *object, horizon_hours));
        }
    };
    catalogue
        .for_each_hour_hits(i64::MIN, |row| {
            if row.hour >= end_hour {
                return;
            }
            if current
                .as_ref()
                .is_none_or(|(id, _, _)| *id != row.object_id)
            {
                finish(current.take(), &mut examples);
                let len = usize::try_from(end_hour - row.hour).unwrap_or_default();
                current = Some((row.object_id.clone(), row.hour, vec![0; len]));
            }
            if let Some((_, first_hour, series)) = current.as_mut()
                && let Some(slot) = usize::try_from(row.hour - *first_hour)
                    .ok()
                    .and_then(|i| series.get_mut(i))
            {
                *slot = u32::try_from(row.hits).unwrap_or(u32::MAX);
            }
        })
        .await?;
    finish(current.take(), &mut examples);
    Ok(examples)
}

/// What the features know of a catalogue object created at `created_at` with
/// `size_bytes`.
pub fn object_facts(created_at: i64, size_bytes: u64) -> ObjectFacts {
    ObjectFacts {
        created_ms: created_at,
        size_bytes,
    }
}

/// Trains a model named `name` on the catalogue's hourly access history (see
/// [`examples_from_catalogue`]), evaluating on the most recent `eval_fraction` of the
/// hours.
pub async fn train_from_catalogue(
    catalogue: &Catalogue,
    name: &str,
    horizon_hours: usize,
    eval_fraction: f64,
    now_ms: i64,
) -> Result<Model, TrainError> {
    let examples = examples_from_catalogue(catalogue, horizon_hours, now_ms).await?;
    Ok(Model::train(
        name,
        &examples,
        horizon_hours,
        eval_fraction,
        now_ms,
    )?)
}

/// Share of the hours a scheduled retrain holds out to judge challenger and champion.
const RETRAIN_EVAL_FRACTION: f64 = 0.2;

/// What a scheduled retrain did.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The challenger, as registered.
    pub record: crate::db::ModelRecord,
    /// Its capture, summed over the tier sizes, on its held-out hours.
    pub challenger: f64,
    /// The champion's on the same hours; `None` without one.
    pub champion: Option<f64>,
    /// Whether the challenger is the active model now.
    pub activated: bool,
}

/// Champion against challenger: trains a model named `name` on the catalogue's history
/// (the champion's horizon; an hour without one), scores it and `champion` on the most
/// recent hours it held out, by capture, and registers it, as the active model only when
/// it captures more. The fitting runs off the async threads.
pub async fn challenge(
    catalogue: &Catalogue,
    champion: Option<std::sync::Arc<Model>>,
    name: &str,
    now_ms: i64,
) -> Result<Challenge, TrainError> {
    let horizon_hours = champion.as_ref().map_or(1, |m| m.horizon_hours);
    let examples = examples_from_catalogue(catalogue, horizon_hours, now_ms).await?;
    let name = name.to_string();
    let (challenger, champion_score) = tokio::task::spawn_blocking(move || {
        let challenger = Model::train(
            &name,
            &examples,
            horizon_hours,
            RETRAIN_EVAL_FRACTION,
            now_ms,
        )?;
        let champion_score = champion.map(|c| {
            c.evaluate_like(&challenger, &examples, RETRAIN_EVAL_FRACTION)
                .capture_sum()
        });
        Ok::<_, ModelError>((challenger, champion_score))
    })
    .await
    .map_err(|e| ModelError::Training(format!("the training task ended abnormally: {e}")))??;
    let score = challenger.evaluation.capture_sum();
    let activated = champion_score.is_none_or(|champion| score > champion);
    let record = register(catalogue, &challenger, activated).await?;
    Ok(Challenge {
        record,
        challenger: score,
        champion: champion_score,
        activated,
    })
}

/// Registers `model` in the catalogue's model registry, as the active model with
/// `activate`.
pub async fn register(
    catalogue: &Catalogue,
    model: &Model,
    activate: bool,
) -> Result<crate::db::ModelRecord, CatalogueError> {
    let document = serde_json::to_string_pretty(model).unwrap_or_default();
    catalogue
        .register_model(
            &model.name,
            model.version,
            &document,
            model.version,
            activate,
        )
        .await
}

/// An object's history as of `now_ms`, read from the catalogue: the week before the
/// hour in progress and that hour's count, what the scheduled run forecasts from.
pub async fn object_history(
    catalogue: &Catalogue,
    object: &ObjectRecord,
    now_ms: i64,
) -> Result<(ClosedHours, u32, ObjectFacts), CatalogueError> {
    let end_hour = now_ms.div_euclid(HOUR_MS);
    let history = catalogue
        .hourly_hits(
            &object.id,
            end_hour - HISTORY_HOURS as i64 + 1,
            end_hour + 1,
        )
        .await?;
    let (closed, counted) = match history.split_last() {
        Some((&counted, closed)) => (ClosedHours::of(closed), counted),
        None => (ClosedHours::default(), 0),
    };
    let facts = object_facts(object.created_at, object.size.max(0) as u64);
    Ok((closed, counted, facts))
}

/// How a forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The object's long-run mean: its hours look like a steady stream.
    SteadyRate,
    /// The model's prediction from the object's features.
    Model,
}

impl Basis {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::SteadyRate => "steady_rate",
            Basis::Model => "model",
        }
    }
}

/// Accesses expected over a model's horizon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// The expected accesses.
    pub accesses: f64,
    /// Their variance as an estimate: a Poisson count's for a model's prediction, that
    /// of a mean over many hours for a steady stream's.
    pub variance: f64,
    /// How it was made.
    pub basis: Basis,
}

/// The forecast over `model`'s horizon at `now_ms` of an object whose week before the
/// hour in progress is `closed` and that hour's count so far `counted`.
pub fn forecast_now(
    model: &Model,
    closed: &ClosedHours,
    counted: u32,
    object: ObjectFacts,
    now_ms: i64,
) -> Forecast {
    let horizon = model.horizon_hours as f64;
    match features::steady_rate(closed, counted, object, now_ms) {
        Some((rate, hours)) => Forecast {
            accesses: rate * horizon,
            variance: rate * horizon * horizon / hours,
            basis: Basis::SteadyRate,
        },
        None => {
            let accesses = model.predict(&features::features_now_from(
                closed, counted, object, now_ms,
            ));
            Forecast {
                accesses,
                variance: accesses,
                basis: Basis::Model,
            }
        }
    }
}
