//! The storage contract, run against both backends: the `file://` backend on a temporary
//! directory and the `s3://` backend on the local stack's real s3s-fs server.

mod common;

use std::path::PathBuf;

use common::{
    PatternReader, chunks, digest_of, md5_of, pattern, s3_bucket_dir, s3_store, stack_config,
    stack_tier,
};
use futures_util::StreamExt;
use strata::config::{BackendConfig, TransferConfig};
use strata::storage::{ByteRange, ContentHasher, Declared, StorageError, Store, UploadedPart};

/// A store under test, plus what it takes to reach its bytes behind its back.
struct Subject {
    store: Store,
    /// Directory where the backend keeps the object files.
    disk: PathBuf,
    _guard: Option<tempfile::TempDir>,
}

async fn file_subject() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tier");
    let store = Store::open(
        &BackendConfig::File { root: root.clone() },
        TransferConfig::default(),
    )
    .await
    .unwrap();
    Subject {
        store,
        disk: root,
        _guard: Some(dir),
    }
}

async fn s3_subject() -> Subject {
    Subject {
        store: s3_store("private").await,
        disk: s3_bucket_dir("private"),
        _guard: None,
    }
}

/// The S3 backend with unsigned payloads (`TIER_<NAME>_SIGN_PAYLOAD=false`): the server
/// must take uploads whose bytes the signature does not cover.
async fn s3_unsigned_subject() -> Subject {
    let BackendConfig::S3(mut s3) = stack_tier("public").backend else {
        panic!("the stack's public tier is not S3");
    };
    assert!(
        s3.sign_payload,
        "the stack's http endpoint signs by default"
    );
    s3.sign_payload = false;
    Subject {
        store: Store::open(&BackendConfig::S3(s3), stack_config().transfer)
            .await
            .unwrap(),
        disk: s3_bucket_dir("public"),
        _guard: None,
    }
}

/// A key no other test run uses.
fn unique_key(name: &str) -> String {
    format!("contract/{}/{name}", uuid::Uuid::now_v7())
}

/// The bytes `range` of `key` names, read as the backend tells its size and again with
/// the size known (as the catalogue knows it): the same either way.
async fn read_all(store: &Store, key: &str, range: Option<ByteRange>) -> Vec<u8> {
    let size = store.size(key).await.unwrap();
    let mut reads = Vec::new();
    for known_size in [None, Some(size)] {
        let mut stream = store.get(key, range, known_size).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        reads.push(out);
    }
    assert_eq!(reads[0], reads[1], "read with the size known");
    reads.swap_remove(0)
}

async fn round_trip(s: Subject) {
    let key = unique_key("round-trip.bin");
    let data = pattern(1, 300_000);
    let digest = s
        .store
        .put(
            &key,
            chunks(&data[..]),
            "application/octet-stream",
            Declared::default(),
        )
        .await
        .unwrap();
    assert_eq!(digest, digest_of(&data));
    assert_eq!(read_all(&s.store, &key, None).await, data);
    assert_eq!(s.store.digest(&key).await.unwrap(), digest);

    // A second put replaces the object whole.
    let replacement = pattern(2, 1000);
    s.store
        .put(
            &key,
            chunks(&replacement[..]),
            "text/plain",
            Declared::default(),
        )
        .await
        .unwrap();
    assert_eq!(read_all(&s.store, &key, None).await, replacement);
}

async fn empty_object(s: Subject) {
    let key = unique_key("empty");
    let digest = s
        .store
        .put(&key, chunks(&b""[..]), "text/plain", Declared::default())
        .await
        .unwrap();
    assert_eq!(digest.size, 0);
    assert_eq!(s.store.size(&key).await.unwrap(), 0);
    assert!(read_all(&s.store, &key, None).await.is_empty());
}

async fn ranged_get(s: Subject) {
    let key = unique_key("ranged.bin");
    let data = pattern(3, 100_000);
    s.store
        .put(
            &key,
            chunks(&data[..]),
            "application/octet-stream",
            Declared::default(),
        )
        .await
        .unwrap();
    let range = |start, end| Some(ByteRange { start, end });
    assert_eq!(
        read_all(&s.store, &key, range(10, Some(19))).await,
        data[10..20]
    );
    assert_eq!(
        read_all(&s.store, &key, range(99_990, None)).await,
        data[99_990..]
    );
    assert_eq!(
        read_all(&s.store, &key, range(99_000, Some(5_000_000))).await,
        data[99_000..],
        "an end past the object reads to its end"
    );
    for known_size in [None, Some(100_000)] {
        assert!(matches!(
            s.store.get(&key, range(100_000, None), known_size).await,
            Err(StorageError::InvalidRange { .. })
        ));
    }
}

async fn head_reports_size_and_absence(s: Subject) {
    let key = unique_key("head.bin");
    s.store
        .put(
            &key,
            chunks(&pattern(4, 12_345)[..]),
            "text/plain",
            Declared::default(),
        )
        .await
        .unwrap();
    assert_eq!(s.store.size(&key).await.unwrap(), 12_345);
    assert!(matches!(
        s.store.size(&unique_key("missing")).await,
        Err(StorageError::NotFound { .. })
    ));
    for known_size in [None, Some(12_345)] {
        assert!(matches!(
            s.store.get(&unique_key("missing"), None, known_size).await,
            Err(StorageError::NotFound { .. })
        ));
    }
}

async fn delete_removes_and_is_idempotent(s: Subject) {
    let key = unique_key("delete.bin");
    s.store
        .put(
            &key,
            chunks(&pattern(5, 10)[..]),
            "text/plain",
            Declared::default(),
        )
        .await
        .unwrap();
    s.store.delete(&key).await.unwrap();
    assert!(matches!(
        s.store.size(&key).await,
        Err(StorageError::NotFound { .. })
    ));
    s.store.delete(&key).await.unwrap();
}

/// 64 MiB: eight 8 MiB parts on S3. Streamed in and out; compared by checksum against
/// the generator, so the test itself never holds the object either.
async fn large_object_streams_byte_identical(s: Subject) {
    const SIZE: u64 = 64 * 1024 * 1024;
    let key = unique_key("large.bin");
    let digest = s
        .store
        .put(
            &key,
            chunks(PatternReader::new(6, SIZE)),
            "application/octet-stream",
            Declared::default(),
        )
        .await
        .unwrap();
    assert_eq!(digest.size, SIZE);
    let mut expected = ContentHasher::new();
    let mut stream = s.store.get(&key, None, None).await.unwrap();
    let mut reference = PatternReader::new(6, SIZE);
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        let mut want = vec![0u8; chunk.len()];
        tokio::io::AsyncReadExt::read_exact(&mut reference, &mut want)
            .await
            .unwrap();
        assert!(chunk[..] == want[..], "bytes differ near offset {read}");
        expected.update(&chunk);
        read += chunk.len() as u64;
    }
    assert_eq!(read, SIZE);
    assert_eq!(expected.finish(), digest);
    s.store.delete(&key).await.unwrap();
}

/// A copy whose bytes changed on disk (same size) no longer matches its checksum.
async fn checksum_catches_corruption(s: Subject) {
    let key = unique_key("corrupt.bin");
    let data = pattern(7, 50_000);
    let original = s
        .store
        .put(
            &key,
            chunks(&data[..]),
            "application/octet-stream",
            Declared::default(),
        )
        .await
        .unwrap();
    let mut corrupted = data.clone();
    corrupted[25_000] ^= 0x01;
    std::fs::write(s.disk.join(&key), &corrupted).expect("overwrite the object's file");
    let found = s.store.digest(&key).await.unwrap();
    assert_eq!(found.size, original.size);
    assert_ne!(
        found.checksum, original.checksum,
        "a flipped bit went unnoticed"
    );
}

async fn escaping_keys_are_refused(s: Subject) {
    for key in ["../../etc/passwd", "/etc/passwd", "a/../../b", ""] {
        assert!(
            matches!(
                s.store
                    .put(key, chunks(&b"x"[..]), "text/plain", Declared::default())
                    .await,
                Err(StorageError::InvalidKey { .. })
            ),
            "put {key:?} was accepted"
        );
        assert!(matches!(
            s.store.get(key, None, Some(1)).await,
            Err(StorageError::InvalidKey { .. })
        ));
        assert!(matches!(
            s.store.delete(key).await,
            Err(StorageError::InvalidKey { .. })
        ));
    }
}

/// Objects on the store concatenated into one: the bytes in order, the digest of them
/// all, the parts left as they were.
async fn compose_concatenates_parts(s: Subject) {
    let parts: Vec<(String, Vec<u8>)> = [(1, 5 * 1024 * 1024), (2, 5 * 1024 * 1024 + 7), (3, 3)]
        .into_iter()
        .map(|(seed, len)| (unique_key(&format!("part-{seed}")), pattern(seed, len)))
        .collect();
    for (key, data) in &parts {
        s.store
            .put(
                key,
                chunks(&data[..]),
                "application/octet-stream",
                Declared::default(),
            )
            .await
            .unwrap();
    }
    let whole: Vec<u8> = parts.iter().flat_map(|(_, d)| d.iter().copied()).collect();
    let key = unique_key("composed.bin");
    let keys: Vec<String> = parts.iter().map(|(k, _)| k.clone()).collect();
    let digest = s
        .store
        .compose(&keys, &key, "application/x-test")
        .await
        .unwrap();
    assert_eq!(digest, digest_of(&whole));
    assert!(read_all(&s.store, &key, None).await == whole, "other bytes");
    assert_eq!(read_all(&s.store, &parts[2].0, None).await, parts[2].1);
    let missing = vec![unique_key("not-there")];
    assert!(
        s.store
            .compose(&missing, &unique_key("x"), "a/b")
            .await
            .is_err()
    );
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod file_backend {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::file_subject().await).await;
            })*
        }
        mod s3_backend {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::s3_subject().await).await;
            })*
        }
        mod s3_backend_unsigned {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::s3_unsigned_subject().await).await;
            })*
        }
    };
}

contract!(
    round_trip,
    empty_object,
    ranged_get,
    head_reports_size_and_absence,
    delete_removes_and_is_idempotent,
    large_object_streams_byte_identical,
    checksum_catches_corruption,
    escaping_keys_are_refused,
    compose_concatenates_parts,
);

#[tokio::test]
async fn file_backend_never_writes_outside_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/tier");
    let store = Store::open(&BackendConfig::File { root }, TransferConfig::default())
        .await
        .unwrap();
    let _ = store
        .put(
            "../../escaped",
            chunks(&b"x"[..]),
            "text/plain",
            Declared::default(),
        )
        .await;
    let _ = store
        .put(
            "../../../escaped",
            chunks(&b"x"[..]),
            "text/plain",
            Declared::default(),
        )
        .await;
    assert!(!dir.path().join("a/escaped").exists());
    assert!(!dir.path().join("escaped").exists());
    assert!(matches!(
        store
            .put(
                ".strata-tmp/x",
                chunks(&b"x"[..]),
                "text/plain",
                Declared::default()
            )
            .await,
        Err(StorageError::InvalidKey { .. })
    ));
}

#[tokio::test]
async fn unreachable_s3_server_is_a_backend_error() {
    let mut tier = common::stack_tier("public");
    let BackendConfig::S3(s3) = &mut tier.backend else {
        panic!("stack tier public is not S3");
    };
    // Port 9 (discard) is closed on the test machines: connection refused.
    s3.endpoint = Some("http://127.0.0.1:9".into());
    let store = Store::open(&tier.backend, TransferConfig::default())
        .await
        .unwrap();
    match store.size("anything").await {
        Err(StorageError::Backend { backend, .. }) => assert_eq!(backend, "s3://strata-public"),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// A declared MD5 goes to the S3 server with the bytes and is what its receipt is
/// checked against: bytes that do not match it are refused, by the server or by us.
#[tokio::test]
async fn s3_puts_are_checked_against_a_declared_md5() {
    let s = s3_subject().await;
    let data = pattern(9, 1000);
    let key = unique_key("md5.bin");
    s.store
        .put(
            &key,
            chunks(&data[..]),
            "x",
            Declared {
                md5: Some(md5_of(&data)),
                ..Declared::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read_all(&s.store, &key, None).await, data);
    let mut wrong = md5_of(&data);
    wrong[0] ^= 1;
    assert!(
        s.store
            .put(
                &unique_key("bad-md5.bin"),
                chunks(&data[..]),
                "x",
                Declared {
                    md5: Some(wrong),
                    ..Declared::default()
                }
            )
            .await
            .is_err()
    );
}

/// Bytes damaged on their way to the server, in one request with their MD5 declared,
/// fail the put by that MD5 (no CRC32C goes with them then): the server refuses them,
/// or its receipt differs from it.
#[tokio::test]
async fn s3_puts_with_a_declared_md5_damaged_on_the_way_are_refused() {
    let server = common::OwnS3Server::start("flipped");
    let (tier, _proxy) = common::BitFlipProxy::tier(&server, "flipped", false).await;
    let store = Store::open(&tier.backend, TransferConfig::default())
        .await
        .unwrap();
    let data = pattern(15, 100 * 1024);
    let declared = Declared {
        md5: Some(md5_of(&data)),
        ..Declared::default()
    };
    let refused = store.put("damaged", chunks(&data[..]), "x", declared).await;
    let error = refused.expect_err("damaged bytes were taken").to_string();
    assert!(error.contains("Content-MD5"), "{error}");
    // Streamed on as they arrive, with their length declared.
    let declared = Declared {
        length: Some(data.len() as u64),
        ..declared
    };
    let refused = store
        .put("damaged-streamed", chunks(&data[..]), "x", declared)
        .await;
    let error = refused.expect_err("damaged bytes were taken").to_string();
    assert!(error.contains("Content-MD5"), "{error}");
}

/// A one-request put whose length is declared and whose bytes the server checks (a
/// declared MD5 or signed SHA-256) streams them on as they arrive; it stores exactly the
/// body, and fails when the body is not its declared length or when reading it fails,
/// even after every byte went out (a client's checksum is checked at the body's end).
#[tokio::test]
async fn s3_streamed_puts_take_exactly_the_declared_body() {
    let s = s3_subject().await;
    let data = pattern(16, 300 * 1024);
    let declared = Declared {
        length: Some(data.len() as u64),
        md5: Some(md5_of(&data)),
        ..Declared::default()
    };
    let key = unique_key("streamed.bin");
    let digest = s
        .store
        .put(&key, chunks(&data[..]), "x", declared)
        .await
        .unwrap();
    assert_eq!(digest, digest_of(&data));
    assert_eq!(read_all(&s.store, &key, None).await, data);
    let signed = Declared {
        md5: None,
        sha256: Some(sha256_of(&data)),
        ..declared
    };
    let key = unique_key("streamed-signed.bin");
    s.store
        .put(&key, chunks(&data[..]), "x", signed)
        .await
        .unwrap();
    assert_eq!(read_all(&s.store, &key, None).await, data);

    let short = s
        .store
        .put(
            &unique_key("short.bin"),
            chunks(&data[..1000]),
            "x",
            declared,
        )
        .await;
    assert!(
        matches!(&short, Err(StorageError::Body(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{short:?}"
    );
    let long = [&data[..], b"more"].concat();
    let long = s
        .store
        .put(&unique_key("long.bin"), chunks(&long[..]), "x", declared)
        .await;
    assert!(matches!(long, Err(StorageError::Body(_))), "{long:?}");

    let failing_at_its_end = futures_util::stream::iter([
        Ok(bytes::Bytes::from(data.clone())),
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the client's checksum differs",
        )),
    ]);
    let failed = s
        .store
        .put(&unique_key("failed.bin"), failing_at_its_end, "x", declared)
        .await;
    assert!(
        matches!(&failed, Err(StorageError::Body(e)) if e.kind() == std::io::ErrorKind::InvalidData),
        "{failed:?}"
    );
}

fn sha256_of(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// A SHA-256 declared for a body is the payload hash a signed write sends instead of
/// one hashed here, so the server checks the bytes against it: it takes them with the
/// right one and refuses them with a wrong one, in one request and as a part. An
/// unsigned tier sends no payload hash at all, and neither does a write with a declared
/// MD5 (the server checks the bytes against that).
#[tokio::test]
async fn s3_signed_writes_send_a_declared_sha256() {
    let s = s3_subject().await;
    let data = pattern(14, 1000);
    let declared = |sha256| Declared {
        sha256: Some(sha256),
        ..Declared::default()
    };
    let right = declared(sha256_of(&data));
    let mut wrong_sum = sha256_of(&data);
    wrong_sum[0] ^= 1;
    let wrong = declared(wrong_sum);
    let key = unique_key("sha256.bin");
    s.store
        .put(&key, chunks(&data[..]), "x", right)
        .await
        .unwrap();
    assert_eq!(read_all(&s.store, &key, None).await, data);
    let refused = unique_key("bad-sha256.bin");
    assert!(
        s.store
            .put(&refused, chunks(&data[..]), "x", wrong)
            .await
            .is_err()
    );
    assert!(matches!(
        s.store.size(&refused).await,
        Err(StorageError::NotFound { .. })
    ));
    let multipart = s.store.multipart().expect("S3 has multipart uploads");
    let key = unique_key("sha256-part.bin");
    let upload = multipart.start(&key, "x").await.unwrap();
    let part = bytes::Bytes::from(data.clone());
    assert!(
        multipart
            .send_part(&key, &upload, 1, part.clone(), wrong)
            .await
            .is_err()
    );
    multipart
        .send_part(&key, &upload, 1, part, right)
        .await
        .unwrap();
    multipart.abort(&key, &upload).await;
    let unsigned = s3_unsigned_subject().await;
    let key = unique_key("unsigned-sha256.bin");
    unsigned
        .store
        .put(&key, chunks(&data[..]), "x", wrong)
        .await
        .unwrap();
    assert_eq!(read_all(&unsigned.store, &key, None).await, data);
    let with_md5 = Declared {
        md5: Some(md5_of(&data)),
        ..wrong
    };
    let key = unique_key("md5-not-sha256.bin");
    s.store
        .put(&key, chunks(&data[..]), "x", with_md5)
        .await
        .unwrap();
    assert_eq!(read_all(&s.store, &key, None).await, data);
}

/// A multipart upload on the tier: parts sent into it (with and without a declared
/// MD5) and an object copied in as a part come out as one object, in part order; a
/// part whose declared MD5 is not its bytes' is refused.
#[tokio::test]
async fn s3_multipart_uploads_take_sent_and_stored_parts() {
    let s = s3_subject().await;
    let multipart = s.store.multipart().expect("S3 has multipart uploads");
    assert!(file_subject().await.store.multipart().is_none());
    let pieces = [
        pattern(11, 5 * 1024 * 1024),
        pattern(12, 5 * 1024 * 1024),
        pattern(13, 10),
    ];
    let key = unique_key("assembled.bin");
    let upload = multipart.start(&key, "application/x-test").await.unwrap();
    let first = multipart
        .send_part(
            &key,
            &upload,
            1,
            pieces[0].clone().into(),
            Declared {
                md5: Some(md5_of(&pieces[0])),
                ..Declared::default()
            },
        )
        .await
        .unwrap();
    let mut wrong = md5_of(&pieces[2]);
    wrong[15] ^= 1;
    assert!(
        multipart
            .send_part(
                &key,
                &upload,
                3,
                pieces[2].clone().into(),
                Declared {
                    md5: Some(wrong),
                    ..Declared::default()
                }
            )
            .await
            .is_err()
    );
    let last = multipart
        .send_part(
            &key,
            &upload,
            3,
            pieces[2].clone().into(),
            Declared::default(),
        )
        .await
        .unwrap();
    let stored = unique_key("stored-part.bin");
    s.store
        .put(&stored, chunks(&pieces[1][..]), "x", Declared::default())
        .await
        .unwrap();
    multipart
        .finish(
            &key,
            &upload,
            vec![
                UploadedPart::Sent {
                    number: 1,
                    part: first,
                },
                UploadedPart::Stored {
                    number: 2,
                    location: stored,
                },
                UploadedPart::Sent {
                    number: 3,
                    part: last,
                },
            ],
        )
        .await
        .unwrap();
    assert!(
        read_all(&s.store, &key, None).await == pieces.concat(),
        "other bytes"
    );
}
