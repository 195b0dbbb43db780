//! Tier storage: where an object's bytes live.
//!
//! One interface ([`Store`]) over two backends: [`s3`] for any S3-protocol server (AWS S3,
//! MinIO, …) and [`file`] for a local or mounted directory. Every transfer streams: puts
//! read the body a part at a time and hash it on the way, gets hand out a stream of
//! chunks. Nothing ever holds a whole object in memory.

pub mod file;
mod md5_checked;
pub mod s3;
pub mod tree;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio_util::io::StreamReader;

use crate::config::{BackendConfig, TierConfig, TransferConfig};
use md5_checked::Md5Checked;
pub(crate) use md5_checked::md5_mismatch;

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Longest key accepted, in characters. Catalogue keys are names only; the keys that
/// reach a backend are locations (`<id>/<id>`), far inside S3's 1024-byte limit.
pub const MAX_KEY_LEN: usize = 1024;

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object under this key.
    #[error("no object at {key}")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The key is not acceptable (escapes the tier, empty segment, too long, …).
    #[error("invalid key {:?}: {reason}", shorten(key))]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The requested byte range lies outside the object.
    #[error("range {start}-{end:?} is outside the object")]
    InvalidRange {
        /// First byte asked for.
        start: u64,
        /// Last byte asked for.
        end: Option<u64>,
    },
    /// Reading the body to store failed (the client went away, …).
    #[error("reading the body failed: {0}")]
    Body(#[source] io::Error),
    /// The backend failed or could not be reached.
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend (`s3://bucket`, `file:///dir`).
        backend: String,
        /// What went wrong.
        message: String,
    },
}

/// The start of a long key, for messages that echo it.
fn shorten(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_string(),
    }
}

/// Result of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An MD5 digest, as a client declares it for a body (`Content-MD5`).
pub type Md5Sum = [u8; 16];

/// A SHA-256 digest, as a signed request declares it for its payload.
pub type Sha256Sum = [u8; 32];

/// A digest in hex, as an ETag shows an MD5 and a signature a payload's SHA-256.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest `hex` spells in hex digits, when it is one of `N` bytes: [`hex`] undone.
pub fn from_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    let mut sum = [0u8; N];
    if hex.len() != 2 * N {
        return None;
    }
    for (byte, pair) in sum.iter_mut().zip(hex.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(sum)
}

/// What a body's sender declared of it, which a write relies on rather than computing
/// it again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Declared {
    /// Its length (`Content-Length`, or the catalogue's size of an object copied): it
    /// sizes the write's buffer, and the body is read to its end whatever it says.
    pub length: Option<u64>,
    /// Its MD5 (`Content-MD5`), which the write checks the body against. An S3 tier's
    /// write sends it, signed, as its own, and signs no payload hash besides: the server
    /// checks the bytes against an MD5 nobody in transit can change.
    pub md5: Option<Md5Sum>,
    /// The SHA-256 of the request payload that is the whole body, checked by whoever
    /// verified that request's signature as the body was read: an S3 tier's signed
    /// write sends it as its own payload hash (the tier checks the bytes against it).
    pub sha256: Option<Sha256Sum>,
}

/// What a completed put or a checksum scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// Bytes seen.
    pub size: u64,
    /// Their checksum (see [`ContentHasher`]).
    pub checksum: String,
}

/// An object as a tier's listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// A byte range as in HTTP `Range: bytes=start-end` (both ends inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive; `None` reads to the end.
    pub end: Option<u64>,
}

impl ByteRange {
    /// Resolves the range against an object of `size` bytes into `(offset, length)`.
    pub fn resolve(&self, size: u64) -> Result<(u64, u64)> {
        let end = self.end.unwrap_or(u64::MAX).min(size.saturating_sub(1));
        if self.start >= size || end < self.start {
            return Err(StorageError::InvalidRange {
                start: self.start,
                end: self.end,
            });
        }
        Ok((self.start, end - self.start + 1))
    }
}

/// The content checksum used throughout Strata: BLAKE3, written `blake3:<hex>`.
/// BLAKE3 is cryptographically strong and hashes several GB/s per core, so hashing
/// while streaming never limits a transfer.
#[derive(Default)]
pub struct ContentHasher {
    hasher: blake3::Hasher,
    size: u64,
}

impl ContentHasher {
    /// Starts an empty hash.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Size and checksum of everything added.
    pub fn finish(&self) -> Digest {
        Digest {
            size: self.size,
            checksum: format!("blake3:{}", self.hasher.finalize().to_hex()),
        }
    }
}

/// The bytes of the object under `key`, as the next piece of a concatenation.
async fn open_whole(store: Store, key: String) -> io::Result<ByteStream> {
    store.get(&key, None, None).await.map_err(io::Error::other)
}

/// Size and checksum of everything `stream` yields.
pub async fn digest_stream(
    mut stream: impl Stream<Item = io::Result<Bytes>> + Unpin,
) -> io::Result<Digest> {
    let mut hasher = ContentHasher::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(hasher.finish())
}

/// The buffer a body of at most `limit` bytes is read into whole: its declared `length`
/// and one byte more (to see the body end without growing it) up to `limit`, else grown
/// as the body arrives, so that a small body fills (and maps) no buffer of `limit`.
pub fn body_buffer(length: Option<u64>, limit: usize) -> BytesMut {
    match length {
        Some(length) => BytesMut::with_capacity(
            usize::try_from(length.saturating_add(1)).map_or(limit, |n| n.min(limit)),
        ),
        None => BytesMut::new(),
    }
}

/// Checks that `key` is a relative path made of plain segments: not empty, not too long,
/// no control character (NUL, newline, …) or backslash, no empty, `.` or `..` segment. This keeps the file backend inside
/// its directory and gives both backends the same notion of a valid key.
pub fn validate_key(key: &str) -> Result<()> {
    let refuse = |reason| {
        Err(StorageError::InvalidKey {
            key: key.into(),
            reason,
        })
    };
    if key.is_empty() {
        return refuse("empty");
    }
    if key.chars().count() > MAX_KEY_LEN {
        return refuse("longer than 1024 characters");
    }
    if key.contains('\\') || key.chars().any(char::is_control) {
        return refuse("contains a control character or a backslash");
    }
    if key.starts_with('/') {
        return refuse("absolute path");
    }
    for segment in key.split('/') {
        match segment {
            "" => return refuse("empty path segment"),
            "." | ".." => return refuse("'.' or '..' path segment"),
            _ => {}
        }
    }
    Ok(())
}

/// A part of a multipart upload on a tier, as the upload's completion names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadedPart {
    /// Sent into the upload already ([`Multipart::send_part`]).
    Sent {
        /// Its part number.
        number: i32,
        /// What the server answered.
        part: SentPart,
    },
    /// An object of its own on the tier, which the server copies in.
    Stored {
        /// Its part number.
        number: i32,
        /// Where the object is.
        location: String,
    },
}

/// A part sent into a multipart upload on a tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPart {
    /// The server's ETag of it.
    pub etag: String,
    /// Its CRC32C, base64, as sent.
    pub crc32c: Option<String>,
}

/// Multipart uploads on a tier that has them (S3): parts are sent as they come and the
/// server puts them together, so no byte passes through Strata twice.
#[derive(Debug, Clone, Copy)]
pub struct Multipart<'a>(&'a s3::S3Store);

impl Multipart<'_> {
    /// Longest part [`Multipart::send_part`] takes: a part is held in memory while it
    /// travels, its CRC32C ahead of it.
    pub fn part_limit(&self) -> u64 {
        self.0.part_size()
    }

    /// Starts a multipart upload of `key`; returns its id.
    pub async fn start(&self, key: &str, content_type: &str) -> Result<String> {
        validate_key(key)?;
        self.0.start_upload(key, content_type).await
    }

    /// Sends part `number` of the upload `upload_id` of `key` and checks what the server
    /// received (against the part's MD5 when `declared`).
    pub async fn send_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        part: Bytes,
        declared: Declared,
    ) -> Result<SentPart> {
        validate_key(key)?;
        let sent = self
            .0
            .upload_part(key, upload_id, number, part, declared)
            .await?;
        Ok(SentPart {
            etag: sent.e_tag().unwrap_or_default().to_string(),
            crc32c: sent.checksum_crc32_c().map(str::to_string),
        })
    }

    /// Completes the upload with `parts`, in order: the object appears under `key`.
    pub async fn finish(&self, key: &str, upload_id: &str, parts: Vec<UploadedPart>) -> Result<()> {
        validate_key(key)?;
        for part in &parts {
            if let UploadedPart::Stored { location, .. } = part {
                validate_key(location)?;
            }
        }
        self.0.finish_upload(key, upload_id, parts).await
    }

    /// Aborts the upload, removing its parts; a failure is only logged (the sweeper
    /// and the bucket's lifecycle rules are left).
    pub async fn abort(&self, key: &str, upload_id: &str) {
        self.0.abort_upload(key, upload_id).await;
    }
}

/// The backend of one tier.
#[derive(Debug, Clone)]
pub enum Store {
    /// A local directory.
    File(file::FileStore),
    /// An S3-protocol bucket.
    S3(s3::S3Store),
}

impl Store {
    /// Opens the backend `config` describes. For S3 this builds the client only; the
    /// server is first contacted by the first operation.
    pub async fn open(config: &BackendConfig, transfer: TransferConfig) -> Result<Store> {
        Ok(match config {
            BackendConfig::File { root } => Store::File(file::FileStore::open(root).await?),
            BackendConfig::S3(s3) => Store::S3(s3::S3Store::open(s3, transfer).await?),
        })
    }

    /// Multipart uploads on this tier, when it has them (S3; a directory has none).
    pub fn multipart(&self) -> Option<Multipart<'_>> {
        match self {
            Store::File(_) => None,
            Store::S3(s) => Some(Multipart(s)),
        }
    }

    /// Stores the chunks of `body` under `key`, replacing any object there, and returns
    /// its size and checksum. The object appears whole or not at all. A body without the
    /// MD5 `declared` for it fails with [`StorageError::Body`] (`InvalidData`) and
    /// nothing is stored. An S3 server checks it for a write in one request (so the bytes
    /// are not hashed here for it); the rest are hashed as they are read.
    pub async fn put(
        &self,
        key: &str,
        body: impl Stream<Item = io::Result<Bytes>> + Unpin + Send,
        content_type: &str,
        declared: Declared,
    ) -> Result<Digest> {
        validate_key(key)?;
        match self {
            Store::File(f) => {
                let body = Md5Checked::after(&[], StreamReader::new(body), declared.md5);
                f.put(key, body).await
            }
            Store::S3(s) => s.put(key, body, content_type, declared).await,
        }
    }

    /// Streams the object under `key`, or the part of it `range` names. `known_size`,
    /// the object's size when the caller knows it (the catalogue's), spares an S3 tier's
    /// read that fits in one request the question of the size first.
    pub async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        known_size: Option<u64>,
    ) -> Result<ByteStream> {
        validate_key(key)?;
        match self {
            Store::File(f) => f.get(key, range).await,
            Store::S3(s) => s.get(key, range, known_size).await,
        }
    }

    /// Size of the object under `key`; [`StorageError::NotFound`] when there is none.
    pub async fn size(&self, key: &str) -> Result<u64> {
        validate_key(key)?;
        match self {
            Store::File(f) => f.size(key).await,
            Store::S3(s) => s.size(key).await,
        }
    }

    /// Removes the object under `key`; removing a missing object succeeds.
    pub async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match self {
            Store::File(f) => f.delete(key).await,
            Store::S3(s) => s.delete(key).await,
        }
    }

    /// Every object stored on the tier, in no particular order (temporary files and
    /// unfinished uploads are not objects).
    pub async fn list(&self) -> Result<Vec<Listed>> {
        match self {
            Store::File(f) => f.list().await,
            Store::S3(s) => s.list().await,
        }
    }

    /// Removes what interrupted writes left behind with no activity since `before`:
    /// temporary files of a file tier, multipart uploads of an S3 tier, except uploads
    /// to `live` keys (copies under way). A server that cannot list its uploads is said
    /// once in the log and left to its bucket's lifecycle rules.
    pub async fn sweep(&self, before: SystemTime, live: &HashSet<String>) -> Result<u64> {
        match self {
            Store::File(f) => f.sweep(before).await,
            Store::S3(s) => s.sweep(before, live).await,
        }
    }

    /// Whether the backend answers: the directory is there, the bucket can be reached.
    /// Cheap enough for a readiness check every few seconds.
    pub async fn probe(&self) -> Result<()> {
        match self {
            Store::File(f) => f.probe().await,
            Store::S3(s) => s.probe().await,
        }
    }

    /// Writes the concatenation of the objects at `parts` on this store to `key` and
    /// returns its digest. S3 concatenates on the server (every part but the last at
    /// least 5 MiB, as S3 requires) and the result is read back to hash it; a directory
    /// is written as one put of the parts, one after the other.
    pub async fn compose(&self, parts: &[String], key: &str, content_type: &str) -> Result<Digest> {
        validate_key(key)?;
        for part in parts {
            validate_key(part)?;
        }
        match self {
            Store::File(f) => {
                f.put(key, StreamReader::new(self.read_all(parts.to_vec())))
                    .await
            }
            Store::S3(s) => {
                s.compose(parts, key, content_type).await?;
                let digest = self.digest(key).await;
                if digest.is_err() {
                    // Nothing will point at bytes whose checksum is unknown.
                    let _ = self.delete(key).await;
                }
                digest
            }
        }
    }

    /// The bytes of the objects at `keys`, one after the other, each opened when the one
    /// before has been read.
    pub fn read_all(&self, keys: Vec<String>) -> ByteStream {
        let store = self.clone();
        Box::pin(
            futures_util::stream::iter(keys)
                .then(move |key| open_whole(store.clone(), key))
                .try_flatten(),
        )
    }

    /// Reads the whole object under `key` and returns its size and checksum, to verify a
    /// copy against the catalogue.
    pub async fn digest(&self, key: &str) -> Result<Digest> {
        let stream = self.get(key, None, None).await?;
        digest_stream(stream)
            .await
            .map_err(|e| self.error(format!("reading {key}: {e}")))
    }

    /// Builds a [`StorageError::Backend`] naming this store.
    fn error(&self, message: String) -> StorageError {
        StorageError::Backend {
            backend: self.to_string(),
            message,
        }
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::File(s) => write!(f, "file://{}", s.root().display()),
            Store::S3(s) => write!(f, "s3://{}", s.bucket()),
        }
    }
}

/// The configured tiers with their opened backends, hottest first.
#[derive(Debug, Clone)]
pub struct Tiers {
    tiers: Vec<(TierConfig, Store)>,
}

impl Tiers {
    /// Opens the backend of every tier.
    pub async fn open(configs: &[TierConfig], transfer: TransferConfig) -> Result<Tiers> {
        let mut tiers = Vec::with_capacity(configs.len());
        for config in configs {
            tiers.push((
                config.clone(),
                Store::open(&config.backend, transfer).await?,
            ));
        }
        Ok(Tiers { tiers })
    }

    /// The store of tier `name`.
    pub fn store(&self, name: &str) -> Option<&Store> {
        self.tiers
            .iter()
            .find(|(c, _)| c.name == name)
            .map(|(_, s)| s)
    }

    /// Tier configurations with their stores, hottest first.
    pub fn iter(&self) -> impl Iterator<Item = (&TierConfig, &Store)> {
        self.tiers.iter().map(|(c, s)| (c, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_or_are_ambiguous_are_refused() {
        for key in [
            "",
            "/etc/passwd",
            "../../etc/passwd",
            "a/../../b",
            "a//b",
            "a/./b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nfake log line",
            &"x".repeat(MAX_KEY_LEN + 1),
        ] {
            assert!(
                matches!(validate_key(key), Err(StorageError::InvalidKey { .. })),
                "{key:?} was accepted"
            );
        }
        for key in ["a", "a/b/c.txt", "objects/0190-ab/1", "..a/b..", "x y"] {
            validate_key(key).unwrap_or_else(|e| panic!("{key:?} refused: {e}"));
        }
    }

    #[test]
    fn ranges_resolve_like_http() {
        let r = |start, end| ByteRange { start, end };
        assert_eq!(r(0, Some(9)).resolve(100).unwrap(), (0, 10));
        assert_eq!(r(90, None).resolve(100).unwrap(), (90, 10));
        assert_eq!(r(90, Some(1000)).resolve(100).unwrap(), (90, 10));
        assert!(r(100, None).resolve(100).is_err());
        assert!(r(5, Some(4)).resolve(100).is_err());
        assert!(r(0, None).resolve(0).is_err());
    }

    #[test]
    fn checksum_is_blake3_of_the_bytes() {
        let mut h = ContentHasher::new();
        h.update(b"hello ");
        h.update(b"world");
        let d = h.finish();
        assert_eq!(d.size, 11);
        assert_eq!(
            d.checksum,
            format!("blake3:{}", blake3::hash(b"hello world").to_hex())
        );
    }
}
