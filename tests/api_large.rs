//! A 300 MiB object through the HTTP API on the real stack: upload and download stream
//! with flat server memory, and Range requests return exactly the bytes asked for.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};

use common::{PatternReader, StrataServer, TestDb, curl};
use tokio::io::AsyncReadExt;

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 300 * MIB;

fn file_hash(path: &std::path::Path) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::fs::File::open(path).unwrap())
        .unwrap();
    hasher.finalize()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mib_object_streams_through_the_api_with_flat_memory() {
    let db = TestDb::postgres().await;
    let server = StrataServer::start(&db, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    {
        let mut reader = PatternReader::new(7, SIZE);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        let mut buf = vec![0u8; MIB as usize];
        loop {
            let n = reader.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).unwrap();
        }
    }
    // Warm up: one small round trip, so the baseline includes pools and buffers.
    let small = dir.path().join("small");
    std::fs::write(&small, b"warm").unwrap();
    let warm = curl(&[
        "-X",
        "POST",
        "-T",
        small.to_str().unwrap(),
        &server.url("/api/v1/objects?key=warm"),
    ]);
    assert_eq!(warm.status, 201);
    let baseline = server.peak_rss();

    let uploaded = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/octet-stream",
        "-T",
        source.to_str().unwrap(),
        &server.url("/api/v1/objects?key=big.bin"),
    ]);
    assert_eq!(
        uploaded.status,
        201,
        "{}",
        String::from_utf8_lossy(&uploaded.body)
    );
    let object = uploaded.json();
    assert_eq!(object["size"], SIZE);
    let expected = file_hash(&source);
    assert_eq!(object["checksum"], format!("blake3:{}", expected.to_hex()));
    let after_upload = server.peak_rss();

    let id = object["id"].as_str().unwrap();
    let content = server.url(&format!("/api/v1/objects/{id}/content"));
    let target = dir.path().join("downloaded");
    let status = std::process::Command::new("curl")
        .args(["-s", "-o"])
        .arg(&target)
        .args(["-w", "%{http_code}", &content])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");
    assert_eq!(file_hash(&target), expected, "the download is the upload");
    let after_download = server.peak_rss();

    // Up to one part in flight per upload stream plus transport buffers; the object
    // itself (300 MiB) must never be held.
    let growth = after_download.saturating_sub(baseline);
    assert!(
        growth < 96 * MIB,
        "server peak RSS grew by {} MiB (baseline {} MiB, after upload {} MiB, after download {} MiB)",
        growth / MIB,
        baseline / MIB,
        after_upload / MIB,
        after_download / MIB
    );

    // Ranges: the first byte, across the 8 MiB part boundaries, a suffix, the tail.
    let mut local = std::fs::File::open(&source).unwrap();
    for (range, start, len) in [
        ("bytes=0-0".to_string(), 0, 1),
        (
            format!("bytes={}-{}", 8 * MIB - 10, 8 * MIB + 9),
            8 * MIB - 10,
            20,
        ),
        (
            format!("bytes={}-{}", 100 * MIB + 3, 117 * MIB),
            100 * MIB + 3,
            17 * MIB - 2,
        ),
        ("bytes=-1000".to_string(), SIZE - 1000, 1000),
        (format!("bytes={}-", SIZE - 5), SIZE - 5, 5),
    ] {
        let part = curl(&["-H", &format!("Range: {range}"), &content]);
        assert_eq!(part.status, 206, "{range}");
        let mut want = vec![0u8; len as usize];
        local.seek(SeekFrom::Start(start)).unwrap();
        local.read_exact(&mut want).unwrap();
        assert_eq!(part.body.len(), want.len(), "{range}");
        assert!(part.body == want, "{range}: other bytes than asked for");
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {start}-{}/{SIZE}", start + len - 1).as_str())
        );
    }
    drop(server);
    db.drop_db().await;
}
