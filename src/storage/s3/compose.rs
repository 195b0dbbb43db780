//! Server-side concatenation: objects already on the tier copied into one object by the
//! server (`UploadPartCopy`), none of their bytes passing through Strata.

use aws_sdk_s3::types::CompletedPart;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::S3Store;
use crate::storage::{Result, StorageError};

impl S3Store {
    /// Writes the concatenation of `parts` (keys in this bucket, every one but the last
    /// at least 5 MiB, as S3 requires of parts) to `key`, copying several at a time.
    pub(in crate::storage) async fn compose(
        &self,
        parts: &[String],
        key: &str,
        content_type: &str,
    ) -> Result<()> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| self.error("starting a multipart upload of", key, e))?;
        let upload_id = upload.upload_id().ok_or_else(|| StorageError::Backend {
            backend: format!("s3://{}", self.bucket),
            message: format!("the server gave no upload id for {key}"),
        })?;
        // Futures that own what they use: a stream over borrowed parts would not be
        // `Send` for every lifetime, as the endpoint's handlers must be.
        let copies: Vec<_> = parts
            .iter()
            .zip(1..)
            .map(|(part, number)| {
                let (store, key, upload_id, part) = (
                    self.clone(),
                    key.to_string(),
                    upload_id.to_string(),
                    part.clone(),
                );
                async move { store.copy_part(&key, &upload_id, number, &part).await }
            })
            .collect();
        let copied = stream::iter(copies)
            .buffered(self.transfer.part_concurrency)
            .try_collect::<Vec<_>>()
            .await;
        let completed = match copied {
            Ok(done) => self.complete_upload(key, upload_id, done).await,
            Err(e) => Err(e),
        };
        if completed.is_err() {
            self.abort_upload(key, upload_id).await;
        }
        completed
    }

    async fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        source: &str,
    ) -> Result<CompletedPart> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(format!("{}/{source}", self.bucket))
            .send()
            .await
            .map_err(|e| self.error("copying a part into", key, e))?;
        let etag = out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .ok_or_else(|| StorageError::Backend {
                backend: format!("s3://{}", self.bucket),
                message: format!("no ETag for part {number} copied into {key}"),
            })?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .e_tag(etag)
            .build())
    }
}
