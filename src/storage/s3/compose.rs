//! Multipart uploads assembled on the server: parts sent into the upload already, and
//! objects on the tier copied in as parts (`UploadPartCopy`), none of their bytes
//! passing through Strata.

use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedPart};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::S3Store;
use crate::storage::{Result, UploadedPart};

impl S3Store {
    /// Starts a multipart upload of `key` whose parts carry CRC32Cs; returns its id.
    pub(in crate::storage) async fn start_upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .send()
            .await
            .map_err(|e| self.error("starting a multipart upload of", key, e))?;
        upload
            .upload_id()
            .map(str::to_string)
            .ok_or_else(|| self.failure(format!("the server gave no upload id for {key}")))
    }

    /// Writes the concatenation of `parts` (keys in this bucket, every one but the last
    /// at least 5 MiB, as S3 requires of parts) to `key`.
    pub(in crate::storage) async fn compose(
        &self,
        parts: &[String],
        key: &str,
        content_type: &str,
    ) -> Result<()> {
        let upload_id = self.start_upload(key, content_type).await?;
        let parts = parts
            .iter()
            .zip(1..)
            .map(|(location, number)| UploadedPart::Stored {
                number,
                location: location.clone(),
            })
            .collect();
        let completed = self.finish_upload(key, &upload_id, parts).await;
        if completed.is_err() {
            self.abort_upload(key, &upload_id).await;
        }
        completed
    }

    /// Completes the upload `upload_id` of `key` with `parts`, in order, copying those
    /// stored as objects of their own in first, several at a time.
    pub(in crate::storage) async fn finish_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<UploadedPart>,
    ) -> Result<()> {
        // Futures that own what they use: a stream over borrowed parts would not be
        // `Send` for every lifetime, as the endpoint's handlers must be.
        let named: Vec<_> = parts
            .into_iter()
            .map(|part| {
                let (store, key, upload_id) =
                    (self.clone(), key.to_string(), upload_id.to_string());
                async move {
                    match part {
                        UploadedPart::Sent { number, part } => Ok(CompletedPart::builder()
                            .part_number(number)
                            .e_tag(part.etag)
                            .set_checksum_crc32_c(part.crc32c)
                            .build()),
                        UploadedPart::Stored { number, location } => {
                            store.copy_part(&key, &upload_id, number, &location).await
                        }
                    }
                }
            })
            .collect();
        let done = stream::iter(named)
            .buffered(self.transfer.part_concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        self.complete_upload(key, upload_id, done).await
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
        let result = out.copy_part_result();
        let etag = result
            .and_then(|r| r.e_tag())
            .ok_or_else(|| self.failure(format!("no ETag for part {number} copied into {key}")))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .e_tag(etag)
            .set_checksum_crc32_c(
                result
                    .and_then(|r| r.checksum_crc32_c())
                    .map(str::to_string),
            )
            .build())
    }
}
