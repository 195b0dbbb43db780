//! Access events: their wire format on the `access-events` topic, the producer that
//! publishes them, the consumer that counts them into the catalogue, and the embedded
//! broker they flow through when no `KAFKA_BROKERS` is set.
//!
//! Two message shapes share the topic (DESIGN.md): Strata's own event,
//! `{"object_id": "…", "ts": "2026-11-21T10:00:00Z" | 1795255200000, "kind": "read", "bytes": 123}`,
//! and S3 bucket notifications as MinIO and AWS send them, which name the object by
//! bucket and key. Anything else is a dead letter, with a reason.

pub mod broker_watch;
pub mod consumer;
pub mod embedded;
pub mod publisher;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::timestamp::{format_rfc3339_ms, parse_rfc3339_ms};

/// Timestamps before this (2000-01-01) are taken for a producer's bug, not an access.
const EARLIEST_PLAUSIBLE_MS: i64 = 946_684_800_000;
/// How far in the future an event's clock may be; beyond it the event is a dead letter.
const MAX_CLOCK_AHEAD_MS: i64 = 24 * 3_600_000;

/// Whether an access read or wrote the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessKind {
    /// The bytes were read.
    Read,
    /// The bytes were written.
    Write,
}

/// Strata's own access event, as published on the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessEvent {
    /// The catalogue object.
    pub object_id: String,
    /// When, RFC 3339 UTC.
    pub ts: String,
    /// Read or write.
    pub kind: AccessKind,
    /// Bytes transferred, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl AccessEvent {
    /// A read of `object_id` at `at_ms`.
    pub fn read(object_id: &str, at_ms: i64, bytes: Option<u64>) -> AccessEvent {
        AccessEvent {
            object_id: object_id.into(),
            ts: format_rfc3339_ms(at_ms),
            kind: AccessKind::Read,
            bytes,
        }
    }
}

/// What an access names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessTarget {
    /// A catalogue object, by id.
    Object(String),
    /// Whatever is stored under `key` in `bucket` (an S3 notification).
    Stored {
        /// Bucket name.
        bucket: String,
        /// Object key inside the bucket, URL-decoded.
        key: String,
    },
}

/// One access decoded from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// What was accessed.
    pub target: AccessTarget,
    /// Read or write; both count as accesses.
    pub kind: AccessKind,
    /// When, epoch ms.
    pub at_ms: i64,
}

/// Why a message cannot be counted; it goes to the dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetter {
    /// No value at all.
    #[error("empty message")]
    Empty,
    /// Larger than `EVENTS_MAX_BYTES`.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not JSON, or JSON of the wrong shape.
    #[error("not an access event: {0}")]
    Malformed(String),
    /// The timestamp is before 2000 or more than a day ahead.
    #[error("implausible timestamp {0} (epoch ms)")]
    Timestamp(i64),
}

impl DeadLetter {
    /// Short stable name of the reason, for metrics labels and the DLQ header.
    pub fn code(&self) -> &'static str {
        match self {
            DeadLetter::Empty => "empty",
            DeadLetter::Oversized { .. } => "oversized",
            DeadLetter::Malformed(_) => "malformed",
            DeadLetter::Timestamp(_) => "timestamp",
        }
    }
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow, default)]
    object_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts: Option<WireTime<'a>>,
    #[serde(default)]
    kind: Option<AccessKind>,
    #[serde(rename = "Records", default)]
    records: Option<Vec<S3Record<'a>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireTime<'a> {
    EpochMs(i64),
    Text(#[serde(borrow)] Cow<'a, str>),
}

#[derive(Deserialize)]
struct S3Record<'a> {
    #[serde(rename = "eventName", borrow)]
    event_name: Cow<'a, str>,
    #[serde(rename = "eventTime", borrow, default)]
    event_time: Option<Cow<'a, str>>,
    s3: S3Entity<'a>,
}

#[derive(Deserialize)]
struct S3Entity<'a> {
    #[serde(borrow)]
    bucket: S3Named<'a>,
    #[serde(borrow)]
    object: S3Key<'a>,
}

#[derive(Deserialize)]
struct S3Named<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct S3Key<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
}

/// Decodes one message value into the accesses it reports.
///
/// `fallback_ms` is used when the message carries no time of its own (the Kafka message
/// timestamp, or now); `now_ms` bounds how far ahead a timestamp may be. An S3
/// notification may report several records, and records that are not reads or writes
/// (a deletion, say) report nothing.
pub fn decode(
    value: Option<&[u8]>,
    max_bytes: usize,
    fallback_ms: i64,
    now_ms: i64,
) -> Result<Vec<Access>, DeadLetter> {
    let value = match value {
        None | Some([]) => return Err(DeadLetter::Empty),
        Some(v) if v.len() > max_bytes => {
            return Err(DeadLetter::Oversized {
                size: v.len(),
                limit: max_bytes,
            });
        }
        Some(v) => v,
    };
    let message: WireMessage<'_> =
        serde_json::from_slice(value).map_err(|e| DeadLetter::Malformed(e.to_string()))?;
    let plausible = |at_ms: i64| {
        if (EARLIEST_PLAUSIBLE_MS..=now_ms + MAX_CLOCK_AHEAD_MS).contains(&at_ms) {
            Ok(at_ms)
        } else {
            Err(DeadLetter::Timestamp(at_ms))
        }
    };
    if let Some(records) = message.records {
        let mut accesses = Vec::with_capacity(records.len());
        for record in records {
            let kind = if record.event_name.starts_with("s3:ObjectAccessed:") {
                AccessKind::Read
            } else if record.event_name.starts_with("s3:ObjectCreated:") {
                AccessKind::Write
            } else {
                continue;
            };
            let at_ms = match record.event_time {
                None => fallback_ms,
                Some(text) => parse_rfc3339_ms(&text).ok_or_else(|| {
                    DeadLetter::Malformed(format!("eventTime {text:?} is not an RFC 3339 time"))
                })?,
            };
            accesses.push(Access {
                target: AccessTarget::Stored {
                    bucket: record.s3.bucket.name.into_owned(),
                    key: url_decode(&record.s3.object.key).ok_or_else(|| {
                        DeadLetter::Malformed(format!(
                            "object key {:?} is not URL-encoded UTF-8",
                            record.s3.object.key
                        ))
                    })?,
                },
                kind,
                at_ms: plausible(at_ms)?,
            });
        }
        return Ok(accesses);
    }
    let object_id = match message.object_id {
        Some(id) if !id.trim().is_empty() => id.into_owned(),
        _ => {
            return Err(DeadLetter::Malformed(
                "object_id is missing or empty".into(),
            ));
        }
    };
    let at_ms = match message.ts {
        None => fallback_ms,
        Some(WireTime::EpochMs(ms)) => ms,
        Some(WireTime::Text(text)) => parse_rfc3339_ms(&text).ok_or_else(|| {
            DeadLetter::Malformed(format!(
                "ts {text:?} is neither RFC 3339 nor epoch milliseconds"
            ))
        })?,
    };
    Ok(vec![Access {
        target: AccessTarget::Object(object_id),
        kind: message.kind.unwrap_or(AccessKind::Read),
        at_ms: plausible(at_ms)?,
    }])
}

/// Decodes the `%XX` escapes (and `+` as space) of an S3 notification's object key.
fn url_decode(text: &str) -> Option<String> {
    if !text.contains(['%', '+']) {
        return Some(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_255_200_000;

    fn one(json: &str) -> Result<Vec<Access>, DeadLetter> {
        decode(Some(json.as_bytes()), 64 * 1024, NOW - 5, NOW)
    }

    fn object(id: &str, kind: AccessKind, at_ms: i64) -> Vec<Access> {
        vec![Access {
            target: AccessTarget::Object(id.into()),
            kind,
            at_ms,
        }]
    }

    #[test]
    fn strata_events_in_both_time_formats() {
        assert_eq!(
            one(r#"{"object_id":"a","ts":"2026-11-21T10:00:00Z","kind":"read","bytes":12}"#),
            Ok(object("a", AccessKind::Read, NOW))
        );
        assert_eq!(
            one(r#"{"object_id":"a","ts":1795255200001,"kind":"write"}"#),
            Ok(object("a", AccessKind::Write, NOW + 1))
        );
        assert_eq!(
            one(r#"{"object_id":"a"}"#),
            Ok(object("a", AccessKind::Read, NOW - 5))
        );
    }

    #[test]
    fn published_events_decode_to_themselves() {
        let event = AccessEvent::read("obj-1", NOW + 250, Some(10));
        let json = serde_json::to_vec(&event).unwrap();
        assert_eq!(
            decode(Some(&json), 1024, 0, NOW),
            Ok(object("obj-1", AccessKind::Read, NOW + 250))
        );
    }

    #[test]
    fn s3_notifications_name_bucket_and_decoded_key() {
        let json = r#"{"EventName":"s3:ObjectAccessed:Get","Key":"b/x","Records":[
            {"eventName":"s3:ObjectAccessed:Get","eventTime":"2026-11-21T10:00:00.000Z",
             "s3":{"bucket":{"name":"strata-private"},"object":{"key":"dir%2Fmy+fil%C3%A9.csv","size":3}}},
            {"eventName":"s3:ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}},
            {"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert_eq!(
            one(json),
            Ok(vec![
                Access {
                    target: AccessTarget::Stored {
                        bucket: "strata-private".into(),
                        key: "dir/my filé.csv".into()
                    },
                    kind: AccessKind::Read,
                    at_ms: NOW
                },
                Access {
                    target: AccessTarget::Stored {
                        bucket: "b".into(),
                        key: "k".into()
                    },
                    kind: AccessKind::Write,
                    at_ms: NOW - 5
                },
            ])
        );
    }

    #[test]
    fn malformed_messages_are_dead_letters_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"{not json", "malformed"),
            (b"\x00\xff\xfe garbage", "malformed"),
            (b"[1,2,3]", "malformed"),
            (br#"{"ts":"2026-11-21T10:00:00Z"}"#, "malformed"),
            (br#"{"object_id":""}"#, "malformed"),
            (br#"{"object_id":42}"#, "malformed"),
            (br#"{"object_id":"a","ts":true}"#, "malformed"),
            (br#"{"object_id":"a","ts":"last tuesday"}"#, "malformed"),
            (br#"{"object_id":"a","kind":"delete"}"#, "malformed"),
            (br#"{"object_id":"a","ts":5}"#, "timestamp"),
            (br#"{"object_id":"a","ts":99999999999999}"#, "timestamp"),
            (
                br#"{"Records":[{"eventName":"s3:ObjectAccessed:Get"}]}"#,
                "malformed",
            ),
        ];
        for (value, code) in cases {
            let err = decode(Some(value), 1024, NOW, NOW).unwrap_err();
            assert_eq!(
                err.code(),
                *code,
                "{:?}: {err}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(decode(None, 1024, NOW, NOW), Err(DeadLetter::Empty));
        let big = vec![b' '; 2048];
        assert_eq!(
            decode(Some(&big), 1024, NOW, NOW),
            Err(DeadLetter::Oversized {
                size: 2048,
                limit: 1024
            })
        );
    }
}
