//! The S3 endpoint: existing S3 clients read and write Strata's objects, wherever each
//! one lives. The protocol (routing, AWS Signature V4, XML, aws-chunked bodies) is the
//! `s3s` framework's; this module maps its operations onto the catalogue and
//! [`Content`], as the REST API does: buckets are the configured `S3_BUCKETS`, every
//! GET publishes one access event, and a read racing a move follows the object.
//!
//! - [`objects`]: put, get, head, copy and delete of single objects.
//! - [`listing`]: the buckets, and their keys a page at a time from the catalogue.
//! - [`multipart`]: multipart uploads, each part stored on the landing tier as it arrives.
//! - [`error`]: Strata's failures as S3 error codes.

mod error;
mod listing;
mod multipart;
mod objects;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::error_handling::HandleError;
use s3s::auth::SimpleAuth;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use tokio::net::TcpListener;

use crate::config::S3EndpointConfig;
use crate::content::Content;
use crate::db::Catalogue;
use crate::events::publisher::AccessPublisher;
use crate::metrics::Metrics;

/// What the S3 operations share; cheap to clone.
#[derive(Clone)]
pub struct S3Endpoint {
    catalogue: Catalogue,
    content: Content,
    publisher: Arc<AccessPublisher>,
    buckets: Arc<[String]>,
    max_object_bytes: u64,
    idle_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl S3Endpoint {
    /// The endpoint over `content` and its `catalogue`, serving `buckets`; uploads
    /// larger than `max_object_bytes` or pausing for `idle_timeout` are refused. Every
    /// answer is counted in `metrics`.
    pub fn new(
        catalogue: Catalogue,
        content: Content,
        publisher: Arc<AccessPublisher>,
        buckets: &[String],
        max_object_bytes: u64,
        idle_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> S3Endpoint {
        S3Endpoint {
            catalogue,
            content,
            publisher,
            buckets: buckets.into(),
            max_object_bytes,
            idle_timeout,
            metrics,
        }
    }

    /// Answers an `operation` request, counting and timing the answer.
    async fn counted<T>(
        &self,
        operation: &'static str,
        answer: impl Future<Output = S3Result<T>>,
    ) -> S3Result<T> {
        let started = Instant::now();
        let answer = answer.await;
        let outcome = match &answer {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        };
        self.metrics
            .record_s3_request(operation, outcome, started.elapsed());
        answer
    }

    /// Refuses a bucket that is not configured.
    fn bucket(&self, name: &str) -> S3Result<()> {
        if self.buckets.iter().any(|b| b == name) {
            Ok(())
        } else {
            Err(s3_error!(
                NoSuchBucket,
                "no bucket {name:?}; the buckets are S3_BUCKETS: {}",
                self.buckets.join(",")
            ))
        }
    }
}

/// Lets requests without a signature through when `S3_ALLOW_ANONYMOUS` is set beside
/// keys (signed requests are still checked).
struct AnonymousAllowed;

#[async_trait::async_trait]
impl s3s::access::S3Access for AnonymousAllowed {
    async fn check(&self, _cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        Ok(())
    }
}

/// Aborts multipart uploads idle for longer than `expiry` until `stop`.
pub async fn expire_idle_uploads(
    endpoint: S3Endpoint,
    expiry: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    multipart::expire_idle(endpoint, expiry, stop).await;
}

/// Serves the endpoint on `listener` until `shutdown`, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    endpoint: S3Endpoint,
    config: &S3EndpointConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = S3ServiceBuilder::new(endpoint);
    if let Some(credentials) = &config.credentials {
        builder.set_auth(SimpleAuth::from_single(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
        ));
        if config.allow_anonymous {
            builder.set_access(AnonymousAllowed);
        }
    }
    // s3s answers every S3 error itself; what reaches here failed inside it.
    let service = HandleError::new(builder.build(), |e: s3s::HttpError| async move {
        tracing::error!(error = ?e, "S3 endpoint: request failed without an S3 answer");
        axum::http::StatusCode::INTERNAL_SERVER_ERROR
    });
    let app = axum::Router::new().fallback_service(service);
    axum::serve(crate::tcp::without_delay(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[async_trait::async_trait]
impl S3 for S3Endpoint {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.counted("ListBuckets", async {
            Ok(S3Response::new(listing::buckets(&self.buckets)))
        })
        .await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.counted("HeadBucket", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(HeadBucketOutput::default()))
        })
        .await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.counted("GetBucketLocation", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(GetBucketLocationOutput::default()))
        })
        .await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.counted("CreateBucket", async {
            self.bucket(&req.input.bucket).map_err(|_| {
                s3_error!(
                    AccessDenied,
                    "buckets are configured (S3_BUCKETS), not created over S3"
                )
            })?;
            Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "bucket {:?} exists",
                req.input.bucket
            ))
        })
        .await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.counted("ListObjects", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(
                listing::list_v1(&self.catalogue, req.input).await?,
            ))
        })
        .await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.counted("ListObjectsV2", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(
                listing::list_v2(&self.catalogue, req.input).await?,
            ))
        })
        .await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.counted("PutObject", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(
                objects::put(self, req.input, req.trailing_headers, &req.headers).await?,
            ))
        })
        .await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.counted("GetObject", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(objects::get(self, req.input).await?))
        })
        .await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.counted("HeadObject", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(objects::head(self, req.input).await?))
        })
        .await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.counted("CopyObject", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(objects::copy(self, req.input).await?))
        })
        .await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.counted("DeleteObject", async {
            self.bucket(&req.input.bucket)?;
            objects::delete(self, &req.input.bucket, &req.input.key).await?;
            Ok(S3Response::new(DeleteObjectOutput::default()))
        })
        .await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.counted("DeleteObjects", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(objects::delete_many(self, req.input).await))
        })
        .await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.counted("CreateMultipartUpload", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(multipart::create(self, req.input).await?))
        })
        .await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.counted("UploadPart", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(
                multipart::upload_part(self, req.input, req.trailing_headers, &req.headers).await?,
            ))
        })
        .await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.counted("CompleteMultipartUpload", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(multipart::complete(self, req.input).await?))
        })
        .await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.counted("AbortMultipartUpload", async {
            self.bucket(&req.input.bucket)?;
            multipart::abort(
                self,
                &req.input.bucket,
                &req.input.key,
                &req.input.upload_id,
            )
            .await?;
            Ok(S3Response::new(AbortMultipartUploadOutput::default()))
        })
        .await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.counted("ListParts", async {
            self.bucket(&req.input.bucket)?;
            Ok(S3Response::new(
                multipart::list_parts(self, req.input).await?,
            ))
        })
        .await
    }
}
