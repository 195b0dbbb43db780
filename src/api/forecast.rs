//! Forecast resources: an object's hourly accesses and prediction, the registered
//! models, training and activation.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::views::{
    AccessHistoryBody, FeatureBody, HourAccessesBody, ModelBody, ModelList, ModelRef,
    PredictionBody, TrainingAccepted,
};
use super::{ApiError, AppState, ErrorBody};
use crate::db::{HOUR_MS, MAX_PAGE_SIZE};
use crate::forecast;
use crate::timestamp::format_rfc3339_ms;
use crate::timestamp::now_ms;

/// Features listed with a prediction.
const TOP_FEATURES: usize = 3;

/// Longest access history one request may ask for: a month of hours.
const MAX_HISTORY_HOURS: u64 = 31 * 24;

/// Query of `GET /objects/{id}/accesses`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessHistoryQuery {
    /// Hours to list, the one in progress included; default 168 (a week).
    #[param(minimum = 1, maximum = 744)]
    pub hours: Option<u64>,
}

/// An object's accesses per hour, oldest first, the hour in progress last; hours
/// without accesses are listed with 0.
#[utoipa::path(
    get,
    path = "/api/v1/objects/{id}/accesses",
    tag = "forecast",
    params(("id" = String, Path, description = "Object id"), AccessHistoryQuery),
    responses(
        (status = 200, description = "The hours", body = AccessHistoryBody),
        (status = 400, description = "Malformed query or hours out of range", body = ErrorBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn get_accesses(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<AccessHistoryQuery>, QueryRejection>,
) -> Result<Json<AccessHistoryBody>, ApiError> {
    let Query(query) = query?;
    let hours = query.hours.unwrap_or(168);
    if !(1..=MAX_HISTORY_HOURS).contains(&hours) {
        return Err(ApiError::BadRequest(format!(
            "hours must be from 1 to {MAX_HISTORY_HOURS}, not {hours}"
        )));
    }
    let object = state.catalogue.get_object(&id).await?;
    let now = now_ms();
    let end = now - now.rem_euclid(HOUR_MS) + HOUR_MS;
    let start = end - hours as i64 * HOUR_MS;
    let counted = state
        .catalogue
        .access_history(&object.id, HOUR_MS, start, end)
        .await?;
    let hours = (0..hours as i64)
        .map(|n| {
            let at = start + n * HOUR_MS;
            HourAccessesBody {
                start: format_rfc3339_ms(at),
                accesses: counted
                    .iter()
                    .find(|(hour, _)| *hour == at)
                    .map_or(0, |(_, hits)| *hits),
            }
        })
        .collect();
    Ok(Json(AccessHistoryBody {
        object_id: object.id,
        hours,
    }))
}

/// Predicts an object's accesses over the active model's horizon from its access
/// history now, with the tier that implies and the features behind it.
#[utoipa::path(
    get,
    path = "/api/v1/objects/{id}/prediction",
    tag = "forecast",
    params(("id" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "The prediction", body = PredictionBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody),
        (status = 503, description = "No model is active, or the catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn get_prediction(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PredictionBody>, ApiError> {
    let model = state.model.get().ok_or_else(|| {
        ApiError::Unavailable(
            "no forecast model is active; train one with `strata train-model --activate`".into(),
        )
    })?;
    let object = state.catalogue.get_object(&id).await?;
    let now = now_ms();
    let (closed, counted, facts) = forecast::object_history(&state.catalogue, &object, now).await?;
    let forecast = forecast::forecast_now(&model, &closed, counted, facts, now);
    let predicted = forecast.accesses;
    let features = forecast::features::features_now_from(&closed, counted, facts, now);
    Ok(Json(PredictionBody {
        predicted_tier: state.policy.predicted_tier(predicted).to_string(),
        proactive_move: state
            .policy
            .proactive_target(&object.tier, object.updated_at, predicted, now)
            .map(str::to_string),
        object_id: object.id,
        tier: object.tier,
        predicted_accesses: predicted,
        basis: forecast.basis.as_str().to_string(),
        horizon_hours: model.horizon_hours,
        model: ModelRef::from(&*model),
        top_features: model
            .explain(&features)
            .into_iter()
            .take(TOP_FEATURES)
            .map(|c| FeatureBody {
                name: c.feature.to_string(),
                value: c.value,
                contribution: c.contribution,
            })
            .collect(),
        predicted_at: format_rfc3339_ms(now),
    }))
}

/// The registered models, newest first, with their evaluation.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    tag = "forecast",
    responses(
        (status = 200, description = "The models", body = ModelList),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn list_models(State(state): State<AppState>) -> Result<Json<ModelList>, ApiError> {
    let models = state.catalogue.list_models(MAX_PAGE_SIZE).await?;
    Ok(Json(ModelList {
        items: models.into_iter().map(Into::into).collect(),
    }))
}

/// Body of `POST /models/train`; every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// Model name, default `default`: letters, digits, `_` and `-`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub name: Option<String>,
    /// Hours ahead the model predicts, a whole number, default 1.
    #[schema(minimum = 1, maximum = 168)]
    #[serde(default, deserialize_with = "crate::wire::optional_whole_number")]
    pub horizon_hours: Option<u64>,
    /// Most recent share of the hours held out for evaluation, default 0.2.
    #[schema(minimum = 0.05, maximum = 0.9)]
    pub eval_fraction: Option<f64>,
    /// Make it the active model when trained (it then serves predictions and the
    /// scheduled job everywhere), default false.
    pub activate: Option<bool>,
}

/// Trains a model on the catalogue's access history in the background and registers
/// it; one training at a time.
#[utoipa::path(
    post,
    path = "/api/v1/models/train",
    tag = "forecast",
    request_body(content = TrainRequest, description = "Training settings; may be omitted"),
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Training started", body = TrainingAccepted),
        (status = 400, description = "Malformed body or setting out of range", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 409, description = "A training is already running", body = ErrorBody),
    ),
)]
pub async fn train_model(
    State(state): State<AppState>,
    body: Result<Json<TrainRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<TrainingAccepted>), ApiError> {
    let request = match body {
        Ok(Json(request)) => request,
        Err(JsonRejection::MissingJsonContentType(_)) => TrainRequest::default(),
        Err(e) => return Err(e.into()),
    };
    let name = request.name.unwrap_or_else(|| "default".into());
    if let Err(expected) = forecast::check_model_name(&name) {
        return Err(ApiError::BadRequest(format!("name must be {expected}")));
    }
    let horizon = request.horizon_hours.unwrap_or(1);
    if !(1..=168).contains(&horizon) {
        return Err(ApiError::BadRequest(
            "horizon_hours must be from 1 to 168".into(),
        ));
    }
    let eval_fraction = request.eval_fraction.unwrap_or(0.2);
    if !forecast::EVAL_FRACTIONS.contains(&eval_fraction) {
        let (low, high) = forecast::EVAL_FRACTIONS.into_inner();
        return Err(ApiError::BadRequest(format!(
            "eval_fraction must be from {low} to {high}"
        )));
    }
    let activate = request.activate.unwrap_or(false);
    if state.training.swap(true, Ordering::AcqRel) {
        return Err(ApiError::Conflict("a training is already running".into()));
    }
    let catalogue = state.catalogue.clone();
    let training = state.training.clone();
    let model_name = name.clone();
    tokio::spawn(async move {
        let now = now_ms();
        let outcome = match forecast::train_from_catalogue(
            &catalogue,
            &model_name,
            horizon as usize,
            eval_fraction,
            now,
        )
        .await
        {
            Ok(model) => forecast::register(&catalogue, &model, activate)
                .await
                .map(|_| model)
                .map_err(forecast::TrainError::from),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(model) => tracing::info!(
                model = %model.name,
                version = model.version,
                activated = activate,
                mae = model.evaluation.model.mae,
                beats_baselines = model.evaluation.beats_baselines(),
                "model trained from the catalogue and registered"
            ),
            Err(e) => tracing::warn!(model = %model_name, error = %e, "training failed"),
        }
        training.store(false, Ordering::Release);
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(TrainingAccepted {
            status: "training".into(),
            name,
        }),
    ))
}

/// Makes a registered model the active one: it then serves predictions and the
/// scheduled forecaster runs everywhere (each process loads it within seconds).
#[utoipa::path(
    post,
    path = "/api/v1/models/{id}/activate",
    tag = "forecast",
    params(("id" = String, Path, description = "Model id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The model, now active", body = ModelBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn activate_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelBody>, ApiError> {
    let record = state.catalogue.activate_model(&id).await?;
    tracing::info!(model = %record.name, version = record.version, "model activated over the API");
    Ok(Json(record.into()))
}
