//! Strata's failures as S3 errors: the codes S3 clients know how to handle.

use std::io;

use s3s::{S3Error, S3ErrorCode, s3_error};

use crate::content::ContentError;
use crate::db::CatalogueError;
use crate::storage::StorageError;

impl From<ContentError> for S3Error {
    fn from(err: ContentError) -> S3Error {
        match err {
            ContentError::Catalogue(e) => e.into(),
            ContentError::Storage(e) => e.into(),
            ContentError::Upload(e) => upload_error(&e),
            ContentError::RangeNotSatisfiable { size } => {
                s3_error!(
                    InvalidRange,
                    "the range lies outside the object's {size} bytes"
                )
            }
            ContentError::UnknownTier { .. } => {
                tracing::error!(error = %err, "S3 endpoint: object on an unconfigured tier");
                S3Error::with_message(S3ErrorCode::InternalError, err.to_string())
            }
        }
    }
}

impl From<CatalogueError> for S3Error {
    fn from(err: CatalogueError) -> S3Error {
        match err {
            CatalogueError::NotFound { kind: "upload", id } => {
                s3_error!(NoSuchUpload, "no upload {id} in progress")
            }
            CatalogueError::NotFound { kind: "object", .. } => {
                s3_error!(NoSuchKey, "no such key")
            }
            CatalogueError::Conflict(what) => s3_error!(OperationAborted, "{what}"),
            CatalogueError::Stale { .. } => s3_error!(
                OperationAborted,
                "the object was rewritten by another request meanwhile; retry"
            ),
            CatalogueError::Database(e) => {
                tracing::error!(error = %e, "S3 endpoint: catalogue database error");
                s3_error!(ServiceUnavailable, "the catalogue database is unavailable")
            }
            other => {
                tracing::error!(error = %other, "S3 endpoint: catalogue error");
                S3Error::with_message(S3ErrorCode::InternalError, other.to_string())
            }
        }
    }
}

impl From<StorageError> for S3Error {
    fn from(err: StorageError) -> S3Error {
        match err {
            StorageError::InvalidKey { .. } => {
                S3Error::with_message(S3ErrorCode::InvalidArgument, err.to_string())
            }
            StorageError::InvalidRange { .. } => {
                S3Error::with_message(S3ErrorCode::InvalidRange, err.to_string())
            }
            StorageError::Body(e) => upload_error(&e),
            StorageError::NotFound { .. } | StorageError::Backend { .. } => {
                tracing::error!(error = %err, "S3 endpoint: tier storage error");
                s3_error!(ServiceUnavailable, "a storage tier is unavailable")
            }
        }
    }
}

/// A failed read of an uploaded body: the endpoint's own limits, else the client.
fn upload_error(err: &io::Error) -> S3Error {
    match err.kind() {
        io::ErrorKind::FileTooLarge => {
            S3Error::with_message(S3ErrorCode::EntityTooLarge, err.to_string())
        }
        io::ErrorKind::TimedOut => {
            S3Error::with_message(S3ErrorCode::RequestTimeout, err.to_string())
        }
        io::ErrorKind::InvalidData => {
            S3Error::with_message(S3ErrorCode::BadDigest, err.to_string())
        }
        _ => S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            format!("reading the upload failed: {err}"),
        ),
    }
}
