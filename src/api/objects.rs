//! Object resources: ingest, list, metadata, content, delete and simulated access.

use std::io;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::views::{AccessAccepted, ObjectBody, ObjectPage};
use super::{ApiError, AppState, ErrorBody};
use crate::content::{RangeRequest, Upload, too_large, upload_stream};
use crate::db::{Metadata, ObjectFilter, ObjectRecord};
use crate::storage::Declared;
use crate::timestamp::now_ms;

/// Most simulated accesses one request may publish.
const MAX_SIMULATED_ACCESSES: u64 = 100_000;

/// Content type of uploads that do not name one.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Query of `POST /objects`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestQuery {
    /// Catalogue key: a relative path such as `logs/2026/11/app.log`, at most 1024 characters, without empty, `.` or `..` segments, control characters or backslashes.
    /// Default: the multipart file name, else the new object's id.
    #[param(
        min_length = 1,
        max_length = 1024,
        pattern = r"^(?!\.{1,2}(/|$))[^/\\\x00-\x1f\x7f-\x9f]+(/(?!\.{1,2}(/|$))[^/\\\x00-\x1f\x7f-\x9f]+)*$"
    )]
    pub key: Option<String>,
    /// Replace the content of an existing object with this key (a new version) instead
    /// of answering 409.
    #[serde(default)]
    pub overwrite: bool,
}

/// The multipart form `POST /objects` accepts: one field, `file`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the form for the OpenAPI document only.
pub struct IngestForm {
    /// The file; its file name is the key unless `?key=` is given.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Stores an object on the default tier, streaming the body (raw, or the multipart field
/// `file`) while computing its size and checksum. The catalogue row appears only once
/// the bytes are stored.
#[utoipa::path(
    post,
    path = "/api/v1/objects",
    tag = "objects",
    params(IngestQuery),
    request_body(
        description = "The raw bytes (their Content-Type is kept), or a multipart form with a field `file`.",
        content(
            ("application/octet-stream"),
            (IngestForm = "multipart/form-data"),
        ),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = ObjectBody),
        (status = 200, description = "An existing object got new content (`overwrite=true`)", body = ObjectBody),
        (status = 400, description = "Malformed request or key, or the upload broke off", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 408, description = "The upload paused for longer than API_REQUEST_TIMEOUT_SECS", body = ErrorBody),
        (status = 409, description = "An object with this key exists", body = ErrorBody),
        (status = 413, description = "Larger than MAX_OBJECT_BYTES", body = ErrorBody),
        (status = 503, description = "The catalogue or the tier is unavailable", body = ErrorBody),
    ),
)]
pub async fn ingest(
    State(state): State<AppState>,
    query: Result<Query<IngestQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let max = state.max_object_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(ApiError::TooLarge(too_large(max)));
    }
    let content_type = header_str(request.headers(), header::CONTENT_TYPE);
    let idle = state.request_timeout;
    let ingested = match content_type
        .as_deref()
        .filter(|t| t.starts_with("multipart/form-data"))
    {
        Some(form_type) => {
            let boundary = multer::parse_boundary(form_type)?;
            let mut form = multer::Multipart::new(request.into_body().into_data_stream(), boundary);
            let field = match form.next_field().await? {
                Some(field) if field.name() == Some("file") => field,
                Some(field) => {
                    return Err(ApiError::BadRequest(format!(
                        "unexpected form field {:?}; the form has one field, `file`",
                        field.name().unwrap_or_default()
                    )));
                }
                None => {
                    return Err(ApiError::BadRequest(
                        "the multipart form has no field `file`".into(),
                    ));
                }
            };
            let upload = Upload {
                bucket: state.default_bucket.clone(),
                key: valid_key(query.key.or_else(|| field.file_name().map(str::to_string)))?,
                content_type: field
                    .content_type()
                    .map_or_else(|| DEFAULT_CONTENT_TYPE.to_string(), |m| m.to_string()),
                metadata: Metadata::new(),
                overwrite: query.overwrite,
                declared: Declared::default(),
            };
            let body = upload_stream(sole_file_field(form, field), max, idle);
            state.content.ingest(upload, body).await?
        }
        None => {
            let upload = Upload {
                bucket: state.default_bucket.clone(),
                key: valid_key(query.key)?,
                content_type: content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
                metadata: Metadata::new(),
                overwrite: query.overwrite,
                declared: Declared {
                    length: declared,
                    ..Declared::default()
                },
            };
            let body = request
                .into_body()
                .into_data_stream()
                .map_err(io::Error::other);
            state
                .content
                .ingest(upload, upload_stream(body, max, idle))
                .await?
        }
    };
    let view = state
        .catalogue
        .get_object_view(&ingested.object.id, now_ms())
        .await?;
    let status = if ingested.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/api/v1/objects/{}", view.object.id);
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(ObjectBody::from(view)),
    )
        .into_response())
}

/// The bytes of the form's `file` field, then a failure if the form goes on with another
/// field: the upload is refused whole rather than stored with parts of it ignored.
fn sole_file_field(
    form: multer::Multipart<'static>,
    field: multer::Field<'static>,
) -> impl Stream<Item = io::Result<Bytes>> + Send {
    futures_util::stream::unfold(Some((form, field)), |state| async move {
        let (mut form, mut field) = state?;
        let failure = match field.chunk().await {
            Ok(Some(chunk)) => return Some((Ok(chunk), Some((form, field)))),
            Ok(None) => {
                drop(field);
                match form.next_field().await {
                    Ok(None) => return None,
                    Ok(Some(extra)) => io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "unexpected form field {:?} after `file`; the form has one field",
                            extra.name().unwrap_or_default()
                        ),
                    ),
                    Err(e) => io::Error::new(io::ErrorKind::InvalidData, e),
                }
            }
            Err(e) => io::Error::new(io::ErrorKind::InvalidData, e),
        };
        Some((Err(failure), None))
    })
}

/// REST keys are relative paths (see [`crate::storage::validate_key`]); the S3 endpoint
/// takes any key S3 does.
fn valid_key(key: Option<String>) -> Result<Option<String>, ApiError> {
    if let Some(key) = &key {
        crate::storage::validate_key(key)?;
    }
    Ok(key)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Object bytes, of whatever type they were ingested as.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct BinaryContent(#[allow(dead_code)] Vec<u8>);

/// Query of `GET /objects`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListObjectsQuery {
    /// Only objects on this tier.
    pub tier: Option<String>,
    /// Only objects whose key starts with this (case-sensitive).
    #[param(pattern = r"^[^\x00]*$")]
    pub key_prefix: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    #[param(pattern = r"^[^\x00]*$")]
    pub after: Option<String>,
}

/// Lists objects in creation order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/objects",
    tag = "objects",
    params(ListObjectsQuery),
    responses(
        (status = 200, description = "One page", body = ObjectPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 422, description = "Unknown tier", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn list_objects(
    State(state): State<AppState>,
    query: Result<Query<ListObjectsQuery>, QueryRejection>,
) -> Result<Json<ObjectPage>, ApiError> {
    let Query(query) = query?;
    if let Some(tier) = &query.tier {
        state.known_tier(tier)?;
    }
    let limit = super::page_size(query.limit)?;
    let page = state
        .catalogue
        .list_objects(
            &ObjectFilter {
                tier: query.tier,
                key_prefix: query.key_prefix,
            },
            limit,
            query.after.as_deref(),
            now_ms(),
        )
        .await?;
    Ok(Json(page.into()))
}

/// One object's metadata and access counts.
#[utoipa::path(
    get,
    path = "/api/v1/objects/{id}",
    tag = "objects",
    params(("id" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "The object", body = ObjectBody),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn get_object(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ObjectBody>, ApiError> {
    let view = state.catalogue.get_object_view(&id, now_ms()).await?;
    Ok(Json(view.into()))
}

/// Removes an object from its tier and the catalogue.
#[utoipa::path(
    delete,
    path = "/api/v1/objects/{id}",
    tag = "objects",
    params(("id" = String, Path, description = "Object id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody),
        (status = 503, description = "The catalogue is unavailable", body = ErrorBody),
    ),
)]
pub async fn delete_object(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.content.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Streams an object's bytes from whichever tier holds them now; `Range: bytes=…` gives
/// 206 with just those bytes. Each GET publishes one access event (HEAD does not).
#[utoipa::path(
    get,
    path = "/api/v1/objects/{id}/content",
    tag = "objects",
    params(
        ("id" = String, Path, description = "Object id"),
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX`"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of a cached copy; 304 when it is current"),
    ),
    responses(
        (status = 200, description = "The bytes, with the Content-Type given at ingest", content_type = "*/*", body = BinaryContent,
            headers(("ETag" = String, description = "The quoted checksum"), ("Accept-Ranges" = String))),
        (status = 206, description = "The requested range", content_type = "*/*", body = BinaryContent,
            headers(("Content-Range" = String, description = "bytes FIRST-LAST/SIZE"))),
        (status = 304, description = "The cached copy named by If-None-Match is current"),
        (status = 401, description = "Missing or wrong token (API_TOKEN_READS)", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody),
        (status = 416, description = "The range lies outside the object", body = ErrorBody),
        (status = 503, description = "The catalogue or the tier is unavailable", body = ErrorBody),
    ),
)]
pub async fn read_content(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range);
    if method == Method::HEAD {
        let object = state.catalogue.get_object(&id).await?;
        let size = object.size as u64;
        let resolved = match range.map(|r| r.resolve(size)) {
            None => None,
            Some(Some(resolved)) => Some(resolved),
            Some(None) => return Err(ApiError::RangeNotSatisfiable(size)),
        };
        return content_response(&object, resolved, &headers, Body::empty());
    }
    let opened = state.content.open(&id, range).await?;
    if let Err(e) = state
        .publisher
        .publish_reads(&opened.object.id, 1, now_ms())
    {
        // The read itself succeeds: serving the bytes matters more than counting them.
        tracing::warn!(object = %opened.object.id, error = %e, "access event not published");
    }
    content_response(
        &opened.object,
        opened.range,
        &headers,
        Body::from_stream(opened.bytes),
    )
}

/// Headers (and status) of a content response for `body`.
fn content_response(
    object: &ObjectRecord,
    range: Option<(u64, u64)>,
    request: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let size = object.size as u64;
    let etag = format!("\"{}\"", object.checksum);
    let header_value =
        |v: &str| HeaderValue::from_str(v).map_err(|e| ApiError::Internal(e.to_string()));
    if request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "*" || v.split(',').any(|tag| tag.trim() == etag))
    {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response
            .headers_mut()
            .insert(header::ETAG, header_value(&etag)?);
        return Ok(response);
    }
    let (status, length, content_range) = match range {
        None => (StatusCode::OK, size, None),
        Some((start, length)) => (
            StatusCode::PARTIAL_CONTENT,
            length,
            Some(format!("bytes {start}-{}/{size}", start + length - 1)),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, header_value(&object.content_type)?);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ETAG, header_value(&etag)?);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(content_range) = content_range {
        h.insert(header::CONTENT_RANGE, header_value(&content_range)?);
    }
    Ok(response)
}

/// Parses a single `bytes=` range. Anything else (other units, several ranges, bad
/// syntax) is `None`, and the whole object is served, as RFC 9110 allows.
fn parse_range(value: &str) -> Option<RangeRequest> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (false, true) => Some(RangeRequest::Span {
            first: number(first)?,
            last: None,
        }),
        (false, false) => {
            let (first, last) = (number(first)?, number(last)?);
            (first <= last).then_some(RangeRequest::Span {
                first,
                last: Some(last),
            })
        }
        (true, false) => Some(RangeRequest::Suffix(number(last)?)),
        (true, true) => None,
    }
}

/// Body of `POST /objects/{id}/access`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateAccess {
    /// How many reads to simulate.
    #[schema(minimum = 1, maximum = 100000)]
    #[serde(deserialize_with = "crate::wire::whole_number")]
    pub count: u64,
}

/// Simulates `count` reads of an object by publishing that many access events.
#[utoipa::path(
    post,
    path = "/api/v1/objects/{id}/access",
    tag = "objects",
    params(("id" = String, Path, description = "Object id")),
    request_body = SimulateAccess,
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "The events are published", body = AccessAccepted),
        (status = 400, description = "Malformed body or count out of range", body = ErrorBody),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 404, description = "No such object", body = ErrorBody),
        (status = 503, description = "The event queue is full", body = ErrorBody),
    ),
)]
pub async fn simulate_access(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<SimulateAccess>, JsonRejection>,
) -> Result<(StatusCode, Json<AccessAccepted>), ApiError> {
    let Json(body) = body?;
    if !(1..=MAX_SIMULATED_ACCESSES).contains(&body.count) {
        return Err(ApiError::BadRequest(format!(
            "count must be from 1 to {MAX_SIMULATED_ACCESSES}"
        )));
    }
    let object = state.catalogue.get_object(&id).await?;
    state
        .publisher
        .publish_reads(&object.id, body.count, now_ms())?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AccessAccepted {
            object_id: object.id,
            published: body.count,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_parse_and_everything_else_is_ignored() {
        let r = |first, last| Some(RangeRequest::Span { first, last });
        assert_eq!(parse_range("bytes=0-9"), r(0, Some(9)));
        assert_eq!(parse_range("bytes=10-"), r(10, None));
        assert_eq!(parse_range("bytes=-5"), Some(RangeRequest::Suffix(5)));
        for ignored in [
            "bytes=5-4",
            "bytes=-",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=a-b",
            "bytes=1",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }
}
