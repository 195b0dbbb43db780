//! The forecaster: features of an object's access history, the linear model that
//! predicts its demand over the next hours, and training it from access traces.

pub mod features;
pub mod model;
pub mod trace;

pub use model::{Evaluation, Example, Model, ModelError, Scores};

use std::path::Path;

/// Why training from a trace failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The trace file cannot be opened.
    #[error("{path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
    /// The trace is malformed.
    #[error("{path}: {source}")]
    Trace {
        /// The file.
        path: String,
        /// What is wrong.
        source: trace::TraceError,
    },
    /// The model could not be trained.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Trains a model named `name` on the trace at `path`, predicting `horizon_hours`
/// ahead and evaluating on the most recent `eval_fraction` of the hours.
pub fn train_from_trace(
    path: &Path,
    name: &str,
    horizon_hours: usize,
    eval_fraction: f64,
    now_ms: i64,
) -> Result<Model, TrainError> {
    let display = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| TrainError::Open {
        path: display.clone(),
        source,
    })?;
    let counts =
        trace::read_trace(std::io::BufReader::new(file)).map_err(|source| TrainError::Trace {
            path: display,
            source,
        })?;
    let examples: Vec<Example> = counts
        .series
        .values()
        .flat_map(|series| model::examples(series, counts.first_hour, horizon_hours))
        .collect();
    Ok(Model::train(
        name,
        &examples,
        horizon_hours,
        eval_fraction,
        now_ms,
    )?)
}
