//! The buckets, and the keys of a bucket a page at a time, read from the catalogue in
//! S3's order (UTF-8 bytes), with keys that share a prefix up to the delimiter rolled up
//! into one common prefix.

use std::time::SystemTime;

use s3s::S3Result;
use s3s::dto::*;

use super::objects::{object_etag, timestamp};
use crate::db::{Catalogue, KeyStart, ObjectRecord};

/// Most keys one page lists, and the default.
const MAX_KEYS: usize = 1000;

pub(super) fn buckets(names: &[String]) -> ListBucketsOutput {
    ListBucketsOutput {
        buckets: Some(
            names
                .iter()
                .map(|name| Bucket {
                    name: Some(name.clone()),
                    // Buckets are settings: they have no creation of their own.
                    creation_date: Some(Timestamp::from(SystemTime::UNIX_EPOCH)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// Where a page starts: after a key, or past every key under a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resume {
    After(String),
    Past(String),
}

impl Resume {
    /// An opaque continuation token: XML can carry it whatever the key holds.
    fn token(&self) -> String {
        let (kind, at) = match self {
            Resume::After(key) => ('a', key),
            Resume::Past(prefix) => ('p', prefix),
        };
        aws_smithy_types::base64::encode(format!("{kind}{at}"))
    }

    fn from_token(token: &str) -> S3Result<Resume> {
        let decoded = aws_smithy_types::base64::decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        match decoded.as_deref().map(|d| d.split_at_checked(1)) {
            Some(Some(("a", key))) => Ok(Resume::After(key.into())),
            Some(Some(("p", prefix))) => Ok(Resume::Past(prefix.into())),
            _ => Err(s3s::s3_error!(
                InvalidArgument,
                "the continuation token is not one this endpoint gave"
            )),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Default)]
struct Page {
    objects: Vec<ObjectRecord>,
    prefixes: Vec<String>,
    /// Where the next page starts, when there is more.
    next: Option<Resume>,
    /// The last key or common prefix listed (S3's NextMarker).
    last: Option<String>,
}

/// Reads up to `max` keys and common prefixes of `bucket` under `prefix` from `start`.
async fn page(
    catalogue: &Catalogue,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    start: Option<Resume>,
    max: usize,
) -> S3Result<Page> {
    let mut page = Page::default();
    let mut at = start;
    loop {
        // One more than fits tells whether there is a next page.
        let want = max - (page.objects.len() + page.prefixes.len()) + 1;
        let from = match &at {
            None => KeyStart::From(""),
            Some(Resume::After(key)) => KeyStart::After(key),
            Some(Resume::Past(common)) => KeyStart::Past(common),
        };
        let rows = catalogue
            .list_bucket(
                bucket,
                prefix,
                from,
                i64::try_from(want).unwrap_or(i64::MAX),
            )
            .await?;
        let mut rolled_up = false;
        for object in rows {
            if page.objects.len() + page.prefixes.len() == max {
                page.next = at;
                return Ok(page);
            }
            let rest = &object.key[prefix.len()..];
            match delimiter.and_then(|d| rest.find(d).map(|i| i + d.len())) {
                Some(end) => {
                    // The keys under it are skipped by reading on past it.
                    let common = format!("{prefix}{}", &rest[..end]);
                    page.last = Some(common.clone());
                    page.prefixes.push(common.clone());
                    at = Some(Resume::Past(common));
                    rolled_up = true;
                    break;
                }
                None => {
                    page.last = Some(object.key.clone());
                    at = Some(Resume::After(object.key.clone()));
                    page.objects.push(object);
                }
            }
        }
        // Without a roll-up every row was taken, and fewer came than were asked for.
        if !rolled_up {
            return Ok(page);
        }
    }
}

/// `max-keys` as asked, within S3's bounds.
fn max_keys(asked: Option<i32>) -> usize {
    asked.map_or(MAX_KEYS, |n| usize::try_from(n).unwrap_or(0).min(MAX_KEYS))
}

/// Percent-encodes what a listing names when the client asked for `encoding-type=url`
/// (clients decode such names as a query string: `+` is encoded, spaces are `%20`).
struct Names {
    url: bool,
}

impl Names {
    fn new(encoding_type: Option<&EncodingType>) -> Names {
        Names {
            url: encoding_type.is_some_and(|e| e.as_str() == EncodingType::URL),
        }
    }

    fn name(&self, name: &str) -> String {
        if !self.url {
            return name.to_string();
        }
        let mut out = String::with_capacity(name.len());
        for byte in name.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    }

    fn objects(&self, objects: Vec<ObjectRecord>) -> Vec<Object> {
        objects
            .into_iter()
            .map(|o| Object {
                key: Some(self.name(&o.key)),
                size: Some(o.size),
                e_tag: Some(object_etag(&o)),
                last_modified: Some(timestamp(o.modified_at)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect()
    }

    fn prefixes(&self, prefixes: Vec<String>) -> Vec<CommonPrefix> {
        prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(self.name(&p)),
            })
            .collect()
    }
}

pub(super) async fn list_v2(
    catalogue: &Catalogue,
    input: ListObjectsV2Input,
) -> S3Result<ListObjectsV2Output> {
    let prefix = input.prefix.clone().unwrap_or_default();
    let start = match (&input.continuation_token, &input.start_after) {
        (Some(token), _) => Some(Resume::from_token(token)?),
        (None, Some(after)) => Some(Resume::After(after.clone())),
        (None, None) => None,
    };
    let max = max_keys(input.max_keys);
    let page = page(
        catalogue,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref().filter(|d| !d.is_empty()),
        start,
        max,
    )
    .await?;
    let names = Names::new(input.encoding_type.as_ref());
    let key_count = page.objects.len() + page.prefixes.len();
    Ok(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(names.name(&prefix)),
        delimiter: input.delimiter.as_deref().map(|d| names.name(d)),
        start_after: input.start_after.as_deref().map(|s| names.name(s)),
        max_keys: Some(i32::try_from(max).unwrap_or(i32::MAX)),
        key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
        is_truncated: Some(page.next.is_some()),
        continuation_token: input.continuation_token,
        next_continuation_token: page.next.as_ref().map(Resume::token),
        contents: Some(names.objects(page.objects)),
        common_prefixes: Some(names.prefixes(page.prefixes)),
        encoding_type: input.encoding_type,
        ..Default::default()
    })
}

pub(super) async fn list_v1(
    catalogue: &Catalogue,
    input: ListObjectsInput,
) -> S3Result<ListObjectsOutput> {
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
    // A marker that is a common prefix (a NextMarker this endpoint gave) skips its keys.
    let start = input.marker.as_ref().map(|marker| match delimiter {
        Some(d) if marker.ends_with(d) && marker.starts_with(&prefix) => {
            Resume::Past(marker.clone())
        }
        _ => Resume::After(marker.clone()),
    });
    let max = max_keys(input.max_keys);
    let page = page(catalogue, &input.bucket, &prefix, delimiter, start, max).await?;
    let names = Names::new(input.encoding_type.as_ref());
    let truncated = page.next.is_some();
    Ok(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(names.name(&prefix)),
        delimiter: input.delimiter.as_deref().map(|d| names.name(d)),
        marker: input.marker.as_deref().map(|m| names.name(m)),
        next_marker: page
            .last
            .as_deref()
            .filter(|_| truncated)
            .map(|m| names.name(m)),
        max_keys: Some(i32::try_from(max).unwrap_or(i32::MAX)),
        is_truncated: Some(truncated),
        contents: Some(names.objects(page.objects)),
        common_prefixes: Some(names.prefixes(page.prefixes)),
        encoding_type: input.encoding_type,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_whatever_the_key() {
        for resume in [
            Resume::After("logs/2026/a b+c%.txt".into()),
            Resume::Past("photos/".into()),
            Resume::After(String::new()),
        ] {
            assert_eq!(Resume::from_token(&resume.token()).unwrap(), resume);
        }
        assert!(Resume::from_token("not a token").is_err());
        assert!(Resume::from_token(&aws_smithy_types::base64::encode("x")).is_err());
    }

    #[test]
    fn url_encoding_survives_query_string_decoding() {
        let names = Names::new(Some(&EncodingType::from_static(EncodingType::URL)));
        assert_eq!(names.name("a b+c/é~"), "a%20b%2Bc/%C3%A9~");
        assert_eq!(Names::new(None).name("a b"), "a b");
    }
}
