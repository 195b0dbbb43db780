//! The forecasting model: a linear model (linfa-linear: least squares on
//! `ln(1 + accesses)`, or Poisson regression) over [`features`] of an object's hourly
//! history, predicting its accesses over the next horizon; its training with a
//! time-based split, the choice between the kinds by how well they rank objects,
//! evaluation against two naive baselines (of the forecasts the forecaster makes with
//! the model: steady streams at their mean, the rest by the model), and the JSON file
//! it is kept in.
//!
//! One file over 600 lines: training, evaluation and the file format of one model are
//! one contract.

use std::path::Path;

use linfa::Dataset;
use linfa::traits::Fit;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::capture::{CaptureScores, FORECAST, Ranked, TRUTH, capture};
use super::features::{
    ClosedHours, FEATURE_COUNT, FEATURE_NAMES, FEATURES_VERSION, HISTORY_HOURS, ObjectFacts,
    SIZE_FEATURE, WEEK_FEATURE, features, steady_rate, week_is_the_last_day,
};
use crate::db::HOUR_MS;

/// Why a model could not be trained, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Too little history to learn from.
    #[error("not enough history to train on: {0}")]
    NotEnoughData(String),
    /// The solver failed (for example, features that never vary).
    #[error("training failed: {0}")]
    Training(String),
    /// A model file that cannot be used.
    #[error("model {path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

/// One training example: the features at the end of an hour and what followed.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The hour the features end at (hours since the epoch).
    pub hour: i64,
    /// The features.
    pub features: [f64; FEATURE_COUNT],
    /// Accesses in the horizon after `hour`.
    pub target: f64,
    /// What the forecaster forecasts instead of a model when the object's hours look
    /// like a steady stream: its long-run mean over the horizon
    /// ([`super::features::steady_rate`]); `None` otherwise.
    pub steady: Option<f64>,
}

impl Example {
    /// What the forecaster forecasts for it with a model that predicts `model` from the
    /// features: the steady stream's mean where there is one, else the model's.
    fn forecast(&self, model: impl FnOnce(&[f64; FEATURE_COUNT]) -> f64) -> f64 {
        self.steady.unwrap_or_else(|| model(&self.features))
    }
}

/// The first hour held out for evaluation when the examples span hours `from..=to`:
/// the most recent `eval_fraction` of the span.
fn evaluation_start(from: i64, to: i64, eval_fraction: f64) -> i64 {
    to - ((to - from) as f64 * eval_fraction.clamp(0.0, 0.9)).floor() as i64
}

/// The examples of one object's hourly series starting at `first_hour`: one per hour
/// whose full horizon lies inside the series.
pub fn examples(
    series: &[u32],
    first_hour: i64,
    object: ObjectFacts,
    horizon_hours: usize,
) -> Vec<Example> {
    (1..=series.len().saturating_sub(horizon_hours))
        .map(|end| {
            let end_ms = (first_hour + end as i64) * HOUR_MS;
            // At the end of the hour, the next one has just begun with nothing counted.
            let closed = ClosedHours::of(&series[end.saturating_sub(HISTORY_HOURS - 1)..end]);
            Example {
                hour: first_hour + end as i64,
                features: features(
                    &series[end.saturating_sub(HISTORY_HOURS)..end],
                    object,
                    end_ms,
                ),
                target: series[end..end + horizon_hours]
                    .iter()
                    .map(|&n| f64::from(n))
                    .sum(),
                steady: steady_rate(&closed, 0, object, end_ms)
                    .map(|(rate, _)| rate * horizon_hours as f64),
            }
        })
        .collect()
}

/// Prediction errors on accesses per horizon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Coefficient of determination.
    pub r2: f64,
}

impl Scores {
    fn of(predicted: impl Iterator<Item = f64>, actual: &[f64]) -> Scores {
        let n = actual.len().max(1) as f64;
        let mean = actual.iter().sum::<f64>() / n;
        let (mut abs, mut sq, mut total) = (0.0, 0.0, 0.0);
        for (p, a) in predicted.zip(actual) {
            abs += (p - a).abs();
            sq += (p - a).powi(2);
            total += (a - mean).powi(2);
        }
        Scores {
            mae: abs / n,
            rmse: (sq / n).sqrt(),
            r2: if total > 0.0 { 1.0 - sq / total } else { 0.0 },
        }
    }
}

/// The model and two naive baselines on the evaluation split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The trained model.
    pub model: Scores,
    /// "The next hours look like the last one."
    pub persistence: Scores,
    /// "The next hours look like the average hour of the last day."
    pub moving_average: Scores,
    /// Capture of the model and the baselines (see [`capture`](super::capture)); `None`
    /// in model files from before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureScores>,
}

impl Evaluation {
    /// What training and retraining choose by: capture, summed over the tier sizes; 0
    /// for an evaluation from before capture was measured.
    pub fn capture_sum(&self) -> f64 {
        self.capture.map_or(0.0, |c| c.model.iter().sum())
    }

    /// Whether the model's MAE and RMSE both beat both baselines.
    pub fn beats_baselines(&self) -> bool {
        [self.persistence, self.moving_average]
            .iter()
            .all(|b| self.model.mae < b.mae && self.model.rmse < b.rmse)
    }
}

/// The span of history a model learned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingWindow {
    /// First hour with an example (hours since the epoch).
    pub from_hour: i64,
    /// Last hour with an example.
    pub to_hour: i64,
    /// Examples trained on.
    pub train_rows: usize,
    /// Examples evaluated on (the most recent part).
    pub eval_rows: usize,
}

impl TrainingWindow {
    /// The examples of `examples` that training over this window held out for
    /// evaluation with `eval_fraction`.
    fn held_out<'a>(
        &self,
        examples: &'a [Example],
        eval_fraction: f64,
    ) -> impl Iterator<Item = &'a Example> {
        let cutoff = evaluation_start(self.from_hour, self.to_hour, eval_fraction);
        examples.iter().filter(move |e| e.hour >= cutoff)
    }
}

/// A trained forecaster, as stored in `models/<name>-<version>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Model name.
    pub name: String,
    /// Version: the training time, epoch ms, so later models sort after earlier ones.
    pub version: i64,
    /// How its score becomes a forecast; files from before there were kinds are
    /// [`ModelKind::LogLinear`].
    #[serde(default)]
    pub kind: ModelKind,
    /// [`FEATURES_VERSION`] of the features it was trained on.
    pub features_version: u32,
    /// [`FEATURE_NAMES`], in coefficient order.
    pub feature_names: Vec<String>,
    /// One per feature.
    pub coefficients: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// It predicts the accesses over this many hours.
    pub horizon_hours: usize,
    /// What it learned from.
    pub training: TrainingWindow,
    /// How it did on the evaluation split.
    pub evaluation: Evaluation,
    /// The other kinds fitted to the same examples, which ranked objects no better.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<AlternativeEvaluation>,
    /// RFC 3339 UTC.
    pub trained_at: String,
}

/// How a model turns its score (intercept plus coefficients times features) into a
/// forecast, and how it is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Least squares on `ln(1 + accesses)` (linfa-linear's OLS); forecasts
    /// `exp(score) - 1`, a geometric mean that sits below the mean for sparse counts.
    #[default]
    LogLinear,
    /// Poisson regression with a log link (linfa-linear's GLM); forecasts `exp(score)`,
    /// the expected count itself, so sparse and busy objects are ranked on one scale.
    Poisson,
}

/// Training rows the Poisson fit looks at, at most (every n-th row beyond): ten
/// coefficients are pinned down long before, and the iterative fit stays within seconds.
const POISSON_ROWS: usize = 500_000;

impl ModelKind {
    /// Every kind, in the order training prefers them on a tie.
    pub const ALL: [ModelKind; 2] = [ModelKind::LogLinear, ModelKind::Poisson];

    /// Its name in model files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::LogLinear => "log_linear",
            ModelKind::Poisson => "poisson",
        }
    }

    /// The forecast of a `score`; never negative.
    fn forecast(self, score: f64) -> f64 {
        // exp(709) is the largest finite f64; a NaN score forecasts nothing.
        let score = if score.is_nan() {
            f64::NEG_INFINITY
        } else {
            score.min(700.0)
        };
        match self {
            ModelKind::LogLinear => score.exp_m1().max(0.0),
            ModelKind::Poisson => score.exp(),
        }
    }

    /// Fits the features `varying` of `train` (the rest get weight 0): coefficients,
    /// one per feature, and the intercept.
    fn fit(self, train: &[&Example], varying: &[usize]) -> Result<(Vec<f64>, f64), ModelError> {
        let (weights, intercept) = match self {
            ModelKind::LogLinear => {
                let records = Array2::from_shape_fn((train.len(), varying.len()), |(i, j)| {
                    train[i].features[varying[j]]
                });
                let targets = Array1::from_iter(train.iter().map(|e| e.target.ln_1p()));
                let fitted = LinearRegression::new()
                    .fit(&Dataset::new(records, targets))
                    .map_err(|e| {
                        ModelError::Training(format!(
                            "{e} (some features move in lockstep over the training rows; a longer or more varied history helps)"
                        ))
                    })?;
                (fitted.params().to_vec(), fitted.intercept())
            }
            ModelKind::Poisson => poisson_fit(train, varying)?,
        };
        let mut coefficients = vec![0.0; FEATURE_COUNT];
        for (&j, &weight) in varying.iter().zip(&weights) {
            coefficients[j] = weight;
        }
        if !(intercept.is_finite() && coefficients.iter().all(|c| c.is_finite())) {
            return Err(ModelError::Training(format!(
                "the {} fit returned non-finite coefficients (features that never vary?)",
                self.as_str()
            )));
        }
        Ok((coefficients, intercept))
    }
}

/// Fits a Poisson regression with a log link on the features `varying` of (at most
/// [`POISSON_ROWS`], evenly spread) rows of `train`, by iteratively reweighted least
/// squares: each round is a weighted least-squares fit by linfa-linear's OLS, of the
/// working response `score + (y - mu) / mu` with weights `mu`, until the score moves
/// no more. Returns the weights of `varying` and the intercept.
fn poisson_fit(train: &[&Example], varying: &[usize]) -> Result<(Vec<f64>, f64), ModelError> {
    let step = train.len().div_ceil(POISSON_ROWS).max(1);
    let rows: Vec<&Example> = train.iter().step_by(step).copied().collect();
    let n = rows.len() as f64;
    let mean = rows.iter().map(|e| e.target).sum::<f64>() / n;
    if mean <= 0.0 {
        return Err(ModelError::NotEnoughData(
            "no accesses followed any training example".into(),
        ));
    }
    let width = varying.len() + 1;
    // Column 0 is the intercept's.
    let x = Array2::from_shape_fn((rows.len(), width), |(i, j)| match j {
        0 => 1.0,
        _ => rows[i].features[varying[j - 1]],
    });
    let mut beta = Array1::zeros(width);
    beta[0] = mean.ln();
    let mut score = x.dot(&beta);
    for _ in 0..POISSON_ROUNDS {
        let mu = score.mapv(|s: f64| s.clamp(-30.0, 30.0).exp());
        let root = mu.mapv(f64::sqrt);
        let records = &x * &root.view().insert_axis(ndarray::Axis(1));
        let targets = Array1::from_iter(
            (0..rows.len()).map(|i| root[i] * (score[i] + (rows[i].target - mu[i]) / mu[i])),
        );
        let fitted = LinearRegression::new()
            .with_intercept(false)
            .fit(&Dataset::new(records, targets))
            .map_err(|e| ModelError::Training(format!("Poisson regression: {e}")))?;
        let next = fitted.params().to_owned();
        let moved = (&next - &beta)
            .mapv(f64::abs)
            .fold(0.0, |a: f64, &b| a.max(b));
        beta = next;
        score = x.dot(&beta);
        if moved < 1e-9 {
            break;
        }
    }
    Ok((beta.iter().skip(1).copied().collect(), beta[0]))
}

/// Rounds of [`poisson_fit`] at most; it converges (quadratically) in far fewer.
const POISSON_ROUNDS: usize = 50;

/// A kind of model fitted in training and not chosen, with how it did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlternativeEvaluation {
    /// Its kind.
    pub kind: ModelKind,
    /// How it did on the same evaluation split.
    pub evaluation: Evaluation,
}

/// One kind fitted in training.
struct Alternative {
    kind: ModelKind,
    coefficients: Vec<f64>,
    intercept: f64,
    evaluation: Evaluation,
}

/// The features worth fitting: a feature that never varies over the training rows (the
/// same hour last week, in a history shorter than a week), or that equals an earlier one
/// in every row (the age of objects whose history predates their catalogue entry is
/// their idle time), makes the least-squares system singular; it carries no information
/// of its own either, so it is left out of the fit and gets weight 0.
///
/// So is the week's daily mean when every row's history is a day or less: it is then the
/// last day's count over seven, and the fit would give the two weights that cancel over
/// these rows and not beyond them (a model trained on the first hours of a trace would
/// forecast without bound for an object read once two days ago).
fn informative_features(train: &[&Example]) -> Result<Vec<usize>, ModelError> {
    let same = |j: usize, k: usize| train.iter().all(|e| e.features[j] == e.features[k]);
    let within_a_day = train.iter().all(|e| week_is_the_last_day(&e.features));
    let varying: Vec<usize> = (0..FEATURE_COUNT)
        .filter(|&j| train.iter().any(|e| e.features[j] != train[0].features[j]))
        .filter(|&j| !(0..j).any(|k| same(j, k)))
        .filter(|&j| !(j == WEEK_FEATURE && within_a_day))
        .collect();
    if varying.is_empty() {
        return Err(ModelError::NotEnoughData(
            "every feature is the same in every training example (no accesses?)".into(),
        ));
    }
    Ok(varying)
}

/// The candidate that ranks objects best for placement; the first on a tie.
fn best_ranking(fitted: &[Alternative]) -> Option<usize> {
    fitted
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| {
            a.evaluation
                .capture_sum()
                .total_cmp(&b.evaluation.capture_sum())
                .then_with(|| j.cmp(i))
        })
        .map(|(i, _)| i)
}

/// How a model of `kind` with these weights does on the evaluation examples, with the
/// naive baselines beside it.
fn evaluate(
    kind: ModelKind,
    coefficients: &[f64],
    intercept: f64,
    eval: &[&Example],
    horizon_hours: usize,
) -> Evaluation {
    let actual: Vec<f64> = eval.iter().map(|e| e.target).collect();
    let horizon = horizon_hours as f64;
    // The model is judged by what the forecaster forecasts with it.
    let model_of = |e: &Example| {
        e.forecast(|features| kind.forecast(score(coefficients, intercept, features)))
    };
    let persistence = |e: &Example| e.features[0].exp_m1() * horizon;
    let moving_average = |e: &Example| e.features[2].exp_m1() / 24.0 * horizon;
    let ranked = |forecast: &dyn Fn(&Example) -> f64| -> Vec<Ranked> {
        eval.iter()
            .map(|e| Ranked {
                hour: e.hour,
                size: e.features[SIZE_FEATURE].exp_m1(),
                actual: e.target,
                predicted: forecast(e),
            })
            .collect()
    };
    let mut model_rows = ranked(&model_of);
    let model_capture = capture(&mut model_rows, FORECAST);
    Evaluation {
        model: Scores::of(eval.iter().map(|e| model_of(e)), &actual),
        persistence: Scores::of(eval.iter().map(|e| persistence(e)), &actual),
        moving_average: Scores::of(eval.iter().map(|e| moving_average(e)), &actual),
        capture: Some(CaptureScores {
            model: model_capture,
            persistence: capture(&mut ranked(&persistence), FORECAST),
            moving_average: capture(&mut ranked(&moving_average), FORECAST),
            best: capture(&mut model_rows, TRUTH),
        }),
    }
}

impl Model {
    /// The horizon it predicts over, ms.
    pub fn horizon_ms(&self) -> i64 {
        i64::try_from(self.horizon_hours).unwrap_or(1) * HOUR_MS
    }

    /// Trains on `examples` (any order): the most recent `eval_fraction` of the hours
    /// is held out for evaluation, the rest is learned from. Deterministic: the same
    /// examples give the same model.
    pub fn train(
        name: &str,
        examples: &[Example],
        horizon_hours: usize,
        eval_fraction: f64,
        now_ms: i64,
    ) -> Result<Model, ModelError> {
        let (Some(from), Some(to)) = (
            examples.iter().map(|e| e.hour).min(),
            examples.iter().map(|e| e.hour).max(),
        ) else {
            return Err(ModelError::NotEnoughData("the history is empty".into()));
        };
        let cutoff = evaluation_start(from, to, eval_fraction);
        let (train, eval): (Vec<&Example>, Vec<&Example>) =
            examples.iter().partition(|e| e.hour < cutoff);
        if train.len() <= FEATURE_COUNT || eval.is_empty() {
            return Err(ModelError::NotEnoughData(format!(
                "{} examples over hours {from}..={to} leave {} to train on and {} to evaluate; \
                 more than {FEATURE_COUNT} and at least 1 are needed",
                examples.len(),
                train.len(),
                eval.len()
            )));
        }
        let varying = informative_features(&train)?;
        let mut fitted: Vec<Alternative> = Vec::new();
        let mut failure = None;
        for kind in ModelKind::ALL {
            match kind.fit(&train, &varying) {
                Ok((coefficients, intercept)) => {
                    let evaluation = evaluate(kind, &coefficients, intercept, &eval, horizon_hours);
                    fitted.push(Alternative {
                        kind,
                        coefficients,
                        intercept,
                        evaluation,
                    });
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        let Some(best) = best_ranking(&fitted) else {
            return Err(failure.unwrap_or_else(|| {
                ModelError::Training("no kind of model could be fitted".into())
            }));
        };
        let chosen = fitted.remove(best);
        let alternatives = fitted
            .into_iter()
            .map(|a| AlternativeEvaluation {
                kind: a.kind,
                evaluation: a.evaluation,
            })
            .collect();
        let model = Model {
            name: name.into(),
            version: now_ms,
            kind: chosen.kind,
            features_version: FEATURES_VERSION,
            feature_names: FEATURE_NAMES.iter().map(|n| n.to_string()).collect(),
            coefficients: chosen.coefficients,
            intercept: chosen.intercept,
            horizon_hours,
            training: TrainingWindow {
                from_hour: from,
                to_hour: to,
                train_rows: train.len(),
                eval_rows: eval.len(),
            },
            evaluation: chosen.evaluation,
            alternatives,
            trained_at: crate::timestamp::format_rfc3339_ms(now_ms),
        };
        Ok(model)
    }

    /// The evaluation split of `examples` as [`Model::train`] made it with
    /// `eval_fraction`: (actual, predicted) accesses for each held-out example.
    pub fn evaluation_pairs(&self, examples: &[Example], eval_fraction: f64) -> Vec<(f64, f64)> {
        self.training
            .held_out(examples, eval_fraction)
            .map(|e| (e.target, e.forecast(|features| self.predict(features))))
            .collect()
    }

    /// How this model does on the hours `challenger` held out of `examples` (trained on
    /// them with `eval_fraction`): a champion scored where its challenger was.
    pub fn evaluate_like(
        &self,
        challenger: &Model,
        examples: &[Example],
        eval_fraction: f64,
    ) -> Evaluation {
        let eval: Vec<&Example> = challenger
            .training
            .held_out(examples, eval_fraction)
            .collect();
        evaluate(
            self.kind,
            &self.coefficients,
            self.intercept,
            &eval,
            self.horizon_hours,
        )
    }

    /// Predicted accesses over the horizon for these features; never negative.
    pub fn predict(&self, features: &[f64; FEATURE_COUNT]) -> f64 {
        self.kind
            .forecast(score(&self.coefficients, self.intercept, features))
    }

    /// File name under `models/`: `<name>-<version>.json`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.name, self.version)
    }

    /// Reads and checks a model file; see [`Model::parse`].
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Invalid {
            path: origin.clone(),
            why: e.to_string(),
        })?;
        Model::parse(&text, &origin)
    }

    /// Checks a model document from `origin` (a file or the registry): it must parse,
    /// use this code's features, and hold finite numbers, one coefficient per feature. A
    /// document that fails is refused whole.
    pub fn parse(text: &str, origin: &str) -> Result<Model, ModelError> {
        let invalid = |why: String| ModelError::Invalid {
            path: origin.to_string(),
            why,
        };
        let model: Model =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a model: {e}")))?;
        if model.features_version != FEATURES_VERSION
            || model
                .feature_names
                .iter()
                .map(String::as_str)
                .ne(FEATURE_NAMES)
        {
            return Err(invalid(format!(
                "trained on features version {} ({:?}); this build computes version {FEATURES_VERSION}",
                model.features_version, model.feature_names
            )));
        }
        if model.coefficients.len() != FEATURE_COUNT
            || !model.intercept.is_finite()
            || !model.coefficients.iter().all(|c| c.is_finite())
            || model.horizon_hours == 0
        {
            return Err(invalid(
                "coefficients, intercept or horizon are missing or not finite".into(),
            ));
        }
        Ok(model)
    }

    /// What each feature added to the prediction (on the log scale), largest effect
    /// first: why the model predicts what it does.
    pub fn explain(&self, features: &[f64; FEATURE_COUNT]) -> Vec<Contribution> {
        let mut parts: Vec<Contribution> = FEATURE_NAMES
            .iter()
            .zip(features)
            .zip(&self.coefficients)
            .map(|((name, value), coefficient)| Contribution {
                feature: name,
                value: *value,
                contribution: coefficient * value,
            })
            .collect();
        parts.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        parts
    }
}

/// One feature's share in a prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    /// The feature's name.
    pub feature: &'static str,
    /// Its value.
    pub value: f64,
    /// Coefficient times value: what it added to the score, the log of the forecast
    /// (of 1 plus it, for a log-linear model).
    pub contribution: f64,
}

/// `intercept + coefficients . features`.
fn score(coefficients: &[f64], intercept: f64, features: &[f64; FEATURE_COUNT]) -> f64 {
    intercept
        + coefficients
            .iter()
            .zip(features)
            .map(|(c, f)| c * f)
            .sum::<f64>()
}

/// Examples with varied features and a simple target, for tests that need some trained
/// model and do not care which.
#[cfg(test)]
pub(crate) fn toy_examples(hours: i64) -> Vec<Example> {
    (0..hours)
        .map(|h| Example {
            hour: h,
            features: std::array::from_fn(|j| ((h as usize * 7 + j * 3) % 11) as f64),
            target: (h % 5) as f64,
            steady: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(hour: i64, f: [f64; FEATURE_COUNT], target_log: f64) -> Example {
        Example {
            hour,
            features: f,
            target: target_log.exp_m1(),
            steady: None,
        }
    }

    #[test]
    fn examples_of_a_steady_stream_carry_its_mean_once_a_day_has_shown_it() {
        let series: Vec<u32> = (0..60).map(|h| [2, 3, 4, 3, 1, 5][h % 6]).collect();
        let object = ObjectFacts {
            created_ms: 1_000 * HOUR_MS,
            size_bytes: 1,
        };
        let examples = examples(&series, 1_000, object, 2);
        let at = |end: i64| examples.iter().find(|e| e.hour == 1_000 + end).unwrap();
        assert_eq!(at(23).steady, None, "less than a day old");
        assert_eq!(at(24).steady, Some(6.0), "3 an hour over 2 hours");
        assert_eq!(at(58).steady, Some(174.0 / 58.0 * 2.0));
        // The forecaster's forecast is what a model is judged by.
        let model = Model::train("m", &examples, 2, 0.5, 0).unwrap();
        let pairs = model.evaluation_pairs(&examples, 0.5);
        assert!(!pairs.is_empty());
        let held_out = examples
            .iter()
            .filter(|e| e.hour >= 1_000 + 59 - pairs.len() as i64);
        for ((_, predicted), e) in pairs.iter().zip(held_out) {
            assert_eq!(Some(*predicted), e.steady);
        }
    }

    #[test]
    fn a_known_linear_structure_is_recovered_deterministically() {
        let truth: [f64; FEATURE_COUNT] = [0.5, -0.25, 0.1, 0.0, 0.3, 0.05, -0.2, 0.15, -0.1, 0.02];
        // A fixed pseudo-random design, so the features are not collinear.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 10_000) as f64 / 1_000.0
        };
        let examples: Vec<Example> = (0..500)
            .map(|hour| {
                let f: [f64; FEATURE_COUNT] = std::array::from_fn(|_| next());
                let y = 0.7 + truth.iter().zip(&f).map(|(c, x)| c * x).sum::<f64>();
                example(hour, f, y)
            })
            .collect();
        let model = Model::train("t", &examples, 1, 0.2, 0).unwrap();
        for (got, want) in model.coefficients.iter().zip(truth) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert!((model.intercept - 0.7).abs() < 1e-6);
        assert_eq!(model, Model::train("t", &examples, 1, 0.2, 0).unwrap());
        assert_eq!(model.training.train_rows + model.training.eval_rows, 500);
        assert!(model.evaluation.model.r2 > 0.999);
    }

    #[test]
    fn a_feature_that_never_varies_gets_no_weight_instead_of_a_singular_fit() {
        // Under a week of history: the same-hour-last-week feature is 0 in every row.
        let examples: Vec<Example> = (0..200)
            .map(|h| {
                let mut f: [f64; FEATURE_COUNT] =
                    std::array::from_fn(|j| ((h as usize * 7 + j * j * 3) % 11) as f64);
                f[5] = 0.0;
                example(h, f, 0.3 * f[0] + 0.1)
            })
            .collect();
        let model = Model::train("week", &examples, 1, 0.2, 0).unwrap();
        assert_eq!(model.coefficients[5], 0.0);
        assert!((model.coefficients[0] - 0.3).abs() < 1e-6, "{model:?}");
        assert!(matches!(
            Model::train(
                "flat",
                &examples
                    .iter()
                    .map(|e| example(e.hour, [2.0; FEATURE_COUNT], 1.0))
                    .collect::<Vec<_>>(),
                1,
                0.2,
                0
            ),
            Err(ModelError::NotEnoughData(_))
        ));
    }

    #[test]
    fn a_feature_equal_to_another_in_every_row_gets_no_weight() {
        // Objects catalogued after their history began: age is idle time in every row.
        let examples: Vec<Example> = (0..200)
            .map(|h| {
                let mut f: [f64; FEATURE_COUNT] =
                    std::array::from_fn(|j| ((h as usize * 7 + j * j * 3) % 11) as f64);
                f[7] = (h % 13) as f64;
                f[8] = f[7];
                example(h, f, 0.3 * f[0] + 0.2 * f[7] + 0.1)
            })
            .collect();
        let model = Model::train("twins", &examples, 1, 0.2, 0).unwrap();
        assert_eq!(model.coefficients[8], 0.0, "{model:?}");
        assert!((model.coefficients[7] - 0.2).abs() < 1e-6, "{model:?}");
        let mut features = [0.0; FEATURE_COUNT];
        features[8] = 1e6;
        features[7] = 0.0;
        assert!(model.predict(&features).is_finite());
    }

    #[test]
    fn forecasts_stay_finite_however_large_the_score() {
        for kind in ModelKind::ALL {
            assert!(kind.forecast(1e300).is_finite(), "{kind:?}");
            assert_eq!(kind.forecast(f64::NAN), 0.0, "{kind:?}");
        }
    }

    #[test]
    fn too_little_history_is_a_clear_error() {
        assert!(matches!(
            Model::train("t", &[], 1, 0.2, 0),
            Err(ModelError::NotEnoughData(_))
        ));
        let few: Vec<Example> = (0..5)
            .map(|h| example(h, [1.0; FEATURE_COUNT], 1.0))
            .collect();
        assert!(matches!(
            Model::train("t", &few, 1, 0.2, 0),
            Err(ModelError::NotEnoughData(_))
        ));
    }

    #[test]
    fn a_model_trained_on_less_than_a_day_does_not_lean_on_the_week() {
        // Objects read once each, over 20 hours: the week's daily mean is then the last
        // day's count over seven in every row, and the two alone tell the rows apart.
        let examples: Vec<Example> = (0..400u32)
            .flat_map(|o| {
                let mut series = vec![0; 20];
                series[(o % 19) as usize] = 1;
                let object = ObjectFacts {
                    created_ms: i64::from(o % 19) * HOUR_MS,
                    size_bytes: 1_000 + u64::from(o),
                };
                examples(&series, 0, object, 1)
            })
            .collect();
        let model = Model::train("m", &examples, 1, 0.2, 0).unwrap();
        assert_eq!(model.coefficients[WEEK_FEATURE], 0.0, "{model:?}");
        // Two days on, an object read once 30 hours ago: the week's mean has a meaning
        // the training rows never showed it.
        let mut history = vec![0; 48];
        history[17] = 1;
        let object = ObjectFacts {
            created_ms: 17 * HOUR_MS,
            size_bytes: 1_000,
        };
        let later = features(&history, object, 48 * HOUR_MS);
        assert!(!week_is_the_last_day(&later));
        assert!(model.predict(&later) < 1.0, "{}", model.predict(&later));
    }

    #[test]
    fn examples_pair_features_with_what_followed() {
        let series = [1, 2, 3, 4];
        let object = ObjectFacts {
            created_ms: 100 * HOUR_MS + 5,
            size_bytes: 77,
        };
        let ex = examples(&series, 100, object, 2);
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].hour, 101);
        assert_eq!(ex[0].target, 5.0);
        assert_eq!(ex[1].target, 7.0);
        assert_eq!(ex[1].features, features(&[1, 2], object, 102 * HOUR_MS));
    }

    #[test]
    fn corrupt_or_foreign_model_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        for content in ["", "{", "{\"name\": 1}"] {
            std::fs::write(&path, content).unwrap();
            assert!(matches!(
                Model::load(&path),
                Err(ModelError::Invalid { .. })
            ));
        }
        let examples: Vec<Example> = (0..100)
            .map(|h| {
                example(
                    h,
                    std::array::from_fn(|j| ((h as usize * 7 + j * 3) % 11) as f64),
                    (h % 5) as f64,
                )
            })
            .collect();
        let mut model = Model::train("m", &examples, 1, 0.2, 0).unwrap();
        std::fs::write(&path, serde_json::to_string(&model).unwrap()).unwrap();
        assert_eq!(Model::load(&path).unwrap(), model);
        let explained = model.explain(&[1.0; FEATURE_COUNT]);
        assert_eq!(explained.len(), FEATURE_COUNT);
        assert!(
            explained
                .windows(2)
                .all(|w| w[0].contribution.abs() >= w[1].contribution.abs())
        );
        model.features_version += 1;
        std::fs::write(&path, serde_json::to_string(&model).unwrap()).unwrap();
        assert!(Model::load(&path).is_err());
        assert!(Model::load(&dir.path().join("missing.json")).is_err());
    }

    #[test]
    fn a_model_file_from_before_kinds_loads_and_predicts_as_before() {
        let before_kinds = Model::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/model-before-kinds.json"
        )))
        .unwrap();
        assert_eq!(before_kinds.kind, ModelKind::LogLinear);
        assert!(before_kinds.alternatives.is_empty());
        let mut document: serde_json::Value = serde_json::to_value(&before_kinds).unwrap();
        assert!(document.get("alternatives").is_none());
        document.as_object_mut().unwrap().remove("kind");
        let old = Model::parse(&document.to_string(), "old").unwrap();
        let features: [f64; FEATURE_COUNT] = std::array::from_fn(|j| j as f64 / 3.0);
        let score = old.intercept
            + old
                .coefficients
                .iter()
                .zip(&features)
                .map(|(c, f)| c * f)
                .sum::<f64>();
        assert_eq!(old.predict(&features), score.exp_m1().max(0.0));
    }

    #[test]
    fn a_poisson_fit_recovers_the_rate_of_counts() {
        // Expected counts exp(0.4 + 0.8 x0 - 0.5 x1) as targets: the Poisson fit's
        // optimum is exactly these weights, whatever the features' scale.
        let examples: Vec<Example> = (0..2_000)
            .map(|i| {
                let mut f = [0.0; FEATURE_COUNT];
                f[0] = (i % 37) as f64 / 10.0;
                f[1] = (i % 23) as f64 / 5.0 + 10.0;
                Example {
                    hour: i,
                    features: f,
                    target: (0.4 + 0.8 * f[0] - 0.5 * f[1]).exp(),
                    steady: None,
                }
            })
            .collect();
        let train: Vec<&Example> = examples.iter().collect();
        let (coefficients, intercept) = ModelKind::Poisson.fit(&train, &[0, 1]).unwrap();
        assert!((coefficients[0] - 0.8).abs() < 1e-3, "{coefficients:?}");
        assert!((coefficients[1] + 0.5).abs() < 1e-3, "{coefficients:?}");
        assert!((intercept - 0.4).abs() < 1e-2, "{intercept}");
        assert!(coefficients[2..].iter().all(|&c| c == 0.0));
    }

    #[test]
    fn training_keeps_the_kind_that_captures_most_and_records_the_other() {
        // Many objects an hour, of three sizes, with sparse counts whose rate grows
        // with the first feature.
        let examples: Vec<Example> = (0..60)
            .flat_map(|hour| {
                (0..200).map(move |o| {
                    let mut f = [0.0; FEATURE_COUNT];
                    f[0] = ((o * 7 + hour as usize) % 13) as f64 / 4.0;
                    f[1] = (o % 5) as f64;
                    f[SIZE_FEATURE] = [1_000.0f64, 10_000.0, 100_000.0][o % 3].ln_1p();
                    let rate = (f[0] - 2.0).exp();
                    Example {
                        hour,
                        features: f,
                        target: (rate * (1.0 + ((o * 31 + hour as usize * 17) % 7) as f64 / 7.0))
                            .floor(),
                        steady: None,
                    }
                })
            })
            .collect();
        let model = Model::train("m", &examples, 1, 0.25, 0).unwrap();
        assert_eq!(model.alternatives.len(), 1);
        let alternative = &model.alternatives[0];
        assert_ne!(alternative.kind, model.kind);
        let sum = |e: &Evaluation| e.capture.unwrap().model.iter().sum::<f64>();
        assert!(sum(&model.evaluation) >= sum(&alternative.evaluation));
        let reloaded = Model::parse(&serde_json::to_string(&model).unwrap(), "m").unwrap();
        assert_eq!(reloaded, model);
    }
}
