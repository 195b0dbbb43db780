//! Multipart uploads: each part is streamed onto the landing tier as it arrives and
//! recorded in the catalogue; completing the upload has the tier put the chosen parts
//! together into the object ([`crate::content::Content::complete_upload`]), catalogues
//! it as a single put would, and removes the parts.

use s3s::S3Result;
use s3s::dto::*;
use s3s::s3_error;

use super::S3Endpoint;
use super::objects::{
    DeclaredChecks, body_stream, check_key, declared, etag, metadata, object_etag,
    signed_payload_sha256, timestamp, too_large,
};
use crate::config::{MAX_S3_PART_SIZE, MIN_S3_PART_SIZE};
use crate::content::Upload;
use crate::db::{PartRecord, UploadRecord, new_id};
use crate::storage::Declared;
use crate::timestamp::now_ms;

/// Highest part number S3 allows.
const MAX_PART_NUMBER: i32 = 10_000;

pub(super) async fn create(
    ep: &S3Endpoint,
    input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    check_key(&input.key)?;
    let content_type = input
        .content_type
        .unwrap_or_else(|| "binary/octet-stream".into());
    let tier_upload = ep
        .content
        .start_tier_upload(&input.bucket, &input.key, &content_type)
        .await?;
    let upload = UploadRecord {
        id: new_id(),
        bucket: input.bucket,
        key: input.key,
        content_type,
        metadata: metadata(input.metadata),
        tier: ep.content.landing_tier().to_string(),
        created_at: now_ms(),
        tier_upload,
    };
    if let Err(e) = ep.catalogue.insert_upload(&upload).await {
        ep.content.abort_tier_upload(&upload).await;
        return Err(e.into());
    }
    tracing::info!(upload = %upload.id, bucket = %upload.bucket, key = %upload.key, "multipart upload started");
    Ok(CreateMultipartUploadOutput {
        bucket: Some(upload.bucket),
        key: Some(upload.key),
        upload_id: Some(upload.id),
        ..Default::default()
    })
}

/// The upload `id`, which must be of `key` in `bucket`.
async fn upload_of(ep: &S3Endpoint, bucket: &str, key: &str, id: &str) -> S3Result<UploadRecord> {
    let upload = ep.catalogue.get_upload(id).await?;
    if upload.bucket != bucket || upload.key != key {
        return Err(s3_error!(
            NoSuchUpload,
            "upload {id} is not of key {key:?} in bucket {bucket:?}"
        ));
    }
    Ok(upload)
}

pub(super) async fn upload_part(
    ep: &S3Endpoint,
    input: UploadPartInput,
    trailers: Option<s3s::TrailingHeaders>,
    headers: &axum::http::HeaderMap,
) -> S3Result<UploadPartOutput> {
    let upload = upload_of(ep, &input.bucket, &input.key, &input.upload_id).await?;
    if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "part numbers are 1 to {MAX_PART_NUMBER}"
        ));
    }
    let max = ep.max_object_bytes.min(MAX_S3_PART_SIZE);
    if input
        .content_length
        .is_some_and(|len| u64::try_from(len).unwrap_or(0) > max)
    {
        return Err(too_large(max));
    }
    let declared = declared!(input, trailers, headers);
    let for_write = declared.for_write()?;
    let body = body_stream(ep, input.body, declared, max)?;
    let part = ep
        .content
        .put_part(&upload, input.part_number, for_write, body)
        .await?;
    match ep.catalogue.insert_part(&upload.id, &part).await {
        Ok(replaced) => {
            if let Some(old) = replaced {
                remove_own_bytes(ep, &upload, &old).await;
            }
            Ok(UploadPartOutput {
                e_tag: Some(etag(&part.checksum)),
                ..Default::default()
            })
        }
        Err(e) => {
            remove_own_bytes(ep, &upload, &part).await;
            Err(e.into())
        }
    }
}

/// Removes a part's bytes when it has its own: a part that went into the tier upload
/// is replaced there by the next of its number, or goes with the tier upload.
async fn remove_own_bytes(ep: &S3Endpoint, upload: &UploadRecord, part: &PartRecord) {
    if part.tier_etag.is_none() {
        ep.content.remove_bytes(&upload.tier, &part.location).await;
    }
}

/// The stored parts the client named, in its order, after S3's checks: ascending part
/// numbers, each part stored with the ETag given, every part but the last at least
/// 5 MiB.
fn chosen_parts(stored: &[PartRecord], named: &[CompletedPart]) -> S3Result<Vec<PartRecord>> {
    if named.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "the upload names no parts to complete with"
        ));
    }
    let mut chosen: Vec<PartRecord> = Vec::with_capacity(named.len());
    for want in named {
        let number = i64::from(want.part_number.unwrap_or(0));
        if chosen.last().is_some_and(|last| last.part_number >= number) {
            return Err(s3_error!(
                InvalidPartOrder,
                "parts must be listed in ascending order of their numbers"
            ));
        }
        let part = stored
            .iter()
            .find(|p| p.part_number == number)
            .filter(|p| {
                want.e_tag
                    .as_ref()
                    .is_none_or(|tag| tag.value() == etag(&p.checksum).value())
            })
            .ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "part {number} was not uploaded, or has another ETag"
                )
            })?;
        chosen.push(part.clone());
    }
    if chosen[..chosen.len() - 1]
        .iter()
        .any(|p| u64::try_from(p.size).unwrap_or(0) < MIN_S3_PART_SIZE)
    {
        return Err(s3_error!(
            EntityTooSmall,
            "every part but the last must be at least {MIN_S3_PART_SIZE} bytes"
        ));
    }
    Ok(chosen)
}

pub(super) async fn complete(
    ep: &S3Endpoint,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let upload = upload_of(ep, &input.bucket, &input.key, &input.upload_id).await?;
    let stored = ep.catalogue.upload_parts(&upload.id).await?;
    let named = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let chosen = chosen_parts(&stored, &named)?;
    let total: i64 = chosen.iter().map(|p| p.size).sum();
    if u64::try_from(total).unwrap_or(u64::MAX) > ep.max_object_bytes {
        return Err(too_large(ep.max_object_bytes));
    }
    let target = Upload {
        bucket: upload.bucket.clone(),
        key: Some(upload.key.clone()),
        content_type: upload.content_type.clone(),
        metadata: upload.metadata.clone(),
        overwrite: true,
        declared: Declared::default(),
    };
    let ingested = ep.content.complete_upload(&upload, &chosen, target).await?;
    remove_finished(ep, &upload).await;
    tracing::info!(
        upload = %upload.id, object = %ingested.object.id, parts = named.len(),
        size = ingested.object.size, "multipart upload completed"
    );
    Ok(CompleteMultipartUploadOutput {
        bucket: Some(upload.bucket),
        key: Some(upload.key),
        e_tag: Some(object_etag(&ingested.object)),
        ..Default::default()
    })
}

/// Removes the upload's record and its parts' own bytes; how many parts it had.
/// `NoSuchUpload` when another request completed or aborted it meanwhile (and removed
/// them).
async fn remove(ep: &S3Endpoint, upload: &UploadRecord) -> S3Result<usize> {
    let parts = ep.catalogue.delete_upload(&upload.id).await?;
    for part in &parts {
        remove_own_bytes(ep, upload, part).await;
    }
    Ok(parts.len())
}

/// [`remove`] of a completed upload; a failure is only logged.
async fn remove_finished(ep: &S3Endpoint, upload: &UploadRecord) {
    if let Err(e) = remove(ep, upload).await {
        tracing::warn!(upload = %upload.id, error = %e, "could not remove a finished upload's parts");
    }
}

/// [`remove`] of an upload nobody will complete, with its tier upload.
async fn remove_abandoned(ep: &S3Endpoint, upload: &UploadRecord) -> S3Result<usize> {
    let parts = remove(ep, upload).await?;
    ep.content.abort_tier_upload(upload).await;
    Ok(parts)
}

/// Aborts, until `stop`, every upload that has stored no part for `expiry`, checking
/// every tenth of it (at most hourly): a client that died mid-upload leaves nothing.
pub(super) async fn expire_idle(
    ep: S3Endpoint,
    expiry: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval((expiry / 10).min(std::time::Duration::from_secs(3600)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let before = now_ms() - i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX);
        let idle = match ep.catalogue.idle_uploads(before).await {
            Ok(idle) => idle,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for idle multipart uploads; trying again later");
                continue;
            }
        };
        for upload in idle {
            tracing::info!(
                upload = %upload.id, bucket = %upload.bucket, key = %upload.key,
                "multipart upload idle for longer than S3_UPLOAD_EXPIRY_SECS: aborting it"
            );
            if let Err(e) = remove_abandoned(&ep, &upload).await {
                tracing::warn!(upload = %upload.id, error = %e, "could not remove an idle upload's parts");
            }
        }
    }
}

pub(super) async fn abort(ep: &S3Endpoint, bucket: &str, key: &str, id: &str) -> S3Result<()> {
    let upload = upload_of(ep, bucket, key, id).await?;
    let parts = remove_abandoned(ep, &upload).await?;
    tracing::info!(upload = %upload.id, parts, "multipart upload aborted");
    Ok(())
}

pub(super) async fn list_parts(
    ep: &S3Endpoint,
    input: ListPartsInput,
) -> S3Result<ListPartsOutput> {
    let upload = upload_of(ep, &input.bucket, &input.key, &input.upload_id).await?;
    let after = i64::from(input.part_number_marker.unwrap_or(0));
    let max = usize::try_from(input.max_parts.unwrap_or(1000).clamp(0, 1000)).unwrap_or(1000);
    let stored: Vec<PartRecord> = ep
        .catalogue
        .upload_parts(&upload.id)
        .await?
        .into_iter()
        .filter(|p| p.part_number > after)
        .collect();
    let truncated = stored.len() > max;
    let listed = &stored[..stored.len().min(max)];
    Ok(ListPartsOutput {
        bucket: Some(upload.bucket.clone()),
        key: Some(upload.key.clone()),
        upload_id: Some(upload.id.clone()),
        is_truncated: Some(truncated),
        next_part_number_marker: listed
            .last()
            .filter(|_| truncated)
            .and_then(|p| i32::try_from(p.part_number).ok()),
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        parts: Some(
            listed
                .iter()
                .map(|p| Part {
                    part_number: i32::try_from(p.part_number).ok(),
                    size: Some(p.size),
                    e_tag: Some(etag(&p.checksum)),
                    last_modified: Some(timestamp(p.created_at)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: i64, size: u64) -> PartRecord {
        PartRecord {
            part_number: number,
            size: size as i64,
            checksum: format!("blake3:{number:064x}"),
            location: format!("u/{number}"),
            created_at: 0,
            tier_etag: None,
            tier_crc32c: None,
            tree: None,
        }
    }

    fn named(number: i32, tag: Option<&PartRecord>) -> CompletedPart {
        CompletedPart {
            part_number: Some(number),
            e_tag: tag.map(|p| etag(&p.checksum)),
            ..Default::default()
        }
    }

    #[test]
    fn completion_checks_order_tags_and_sizes() {
        let stored = [
            part(1, MIN_S3_PART_SIZE),
            part(2, MIN_S3_PART_SIZE),
            part(3, 10),
        ];
        let all = chosen_parts(
            &stored,
            &[
                named(1, Some(&stored[0])),
                named(2, None),
                named(3, Some(&stored[2])),
            ],
        )
        .unwrap();
        assert_eq!(all.len(), 3);
        let some = chosen_parts(&stored, &[named(1, None), named(3, None)]).unwrap();
        assert_eq!(
            some.iter().map(|p| p.part_number).collect::<Vec<_>>(),
            [1, 3]
        );
        let code = |r: S3Result<Vec<PartRecord>>| r.unwrap_err().code().as_str().to_string();
        assert_eq!(
            code(chosen_parts(&stored, &[named(2, None), named(1, None)])),
            "InvalidPartOrder"
        );
        assert_eq!(
            code(chosen_parts(&stored, &[named(4, None)])),
            "InvalidPart"
        );
        assert_eq!(
            code(chosen_parts(&stored, &[named(1, Some(&stored[1]))])),
            "InvalidPart"
        );
        assert_eq!(
            code(chosen_parts(&stored, &[named(3, None), named(4, None)])),
            "InvalidPart"
        );
        assert_eq!(
            code(chosen_parts(
                &[part(1, 10), part(2, 10)],
                &[named(1, None), named(2, None)]
            )),
            "EntityTooSmall"
        );
        assert_eq!(code(chosen_parts(&stored, &[])), "MalformedXML");
    }
}
