//! Strata's S3 endpoint with real, independent S3 clients: boto3 (the AWS SDK for
//! Python, `tests/support/s3_client.py`), rclone and the AWS CLI, against `strata serve`
//! on the local stack (PostgreSQL, tansu, s3s-fs tiers) and on the embedded default.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{EmbeddedServer, StrataServer, TestDb, eventually, http, md5_of, pattern};

const ACCESS_KEY: &str = "strata-test";
const SECRET_KEY: &str = "strata-test-secret";

/// The S3 settings every server here starts with: two buckets, one key.
const S3_SETTINGS: [(&str, &str); 4] = [
    ("S3_LISTEN_ADDR", "127.0.0.1:0"),
    ("S3_BUCKETS", "data,logs"),
    ("S3_ACCESS_KEY_ID", ACCESS_KEY),
    ("S3_SECRET_ACCESS_KEY", SECRET_KEY),
];

/// Runs a boto3 scenario of `s3_client.py` against `endpoint` and returns what it
/// printed; panics with its output when it fails.
fn boto3(scenario: &str, endpoint: &str, bucket: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/s3_client.py"
        ))
        .args([scenario, endpoint, ACCESS_KEY, SECRET_KEY, bucket])
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "boto3 scenario {scenario} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the scenario prints JSON")
}

/// Whether the object under `key` in bucket `data` has the checksum of its bytes, read
/// from the file s3s-fs keeps them in.
async fn checksum_is_of_the_bytes(db: &TestDb, key: &str) -> bool {
    let catalogue = strata::db::Catalogue::connect(&db.url).await.unwrap();
    let object = catalogue
        .find_object_by_key("data", key)
        .await
        .unwrap()
        .expect("the object is catalogued");
    catalogue.close().await;
    let bytes = std::fs::read(common::s3_bucket_dir(&object.tier).join(&object.location)).unwrap();
    object.checksum == format!("blake3:{}", blake3::hash(&bytes).to_hex())
}

async fn stack_server(db: &TestDb, extra: &[(&str, &str)]) -> StrataServer {
    let mut settings = S3_SETTINGS.to_vec();
    settings.extend_from_slice(extra);
    StrataServer::start(db, &settings).await
}

/// The REST view of the object under `key` (the only one with that key).
fn rest_object(base: &str, key: &str) -> serde_json::Value {
    let (status, page) = http(
        "GET",
        &format!("{base}/api/v1/objects?key_prefix={}", urlencode(key)),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    let items = page["items"].as_array().unwrap();
    let found: Vec<_> = items.iter().filter(|o| o["key"] == key).collect();
    assert_eq!(found.len(), 1, "{page}");
    found[0].clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn boto3_puts_gets_lists_copies_and_deletes_on_the_stack() {
    let db = TestDb::postgres().await;
    let server = stack_server(&db, &[]).await;
    let endpoint = server.s3_endpoint();
    let put = boto3("objects", &endpoint, "logs", &[]);
    boto3("listing", &endpoint, "data", &[]);
    boto3("auth", &endpoint, "data", &[]);
    // REST sees what S3 wrote, with its bucket and key.
    let key = put["key"].as_str().unwrap();
    let object = rest_object(&server.base, key);
    assert_eq!(object["bucket"], "logs", "{object}");
    assert_eq!(object["tier"], "public", "{object}");
    // The MD5 a put declared is shown, as S3 clients see it in the ETag.
    let checked = key.replace("hello.txt", "checked");
    let expected = strata::storage::hex(&md5_of(b"checked"));
    assert_eq!(
        rest_object(&server.base, &checked)["md5"],
        expected.as_str()
    );
    // And S3 sees what REST wrote, in the first bucket.
    let id = server.ingest("from-rest/report.txt", "written over REST");
    let (status, view) = http("GET", &server.url(&format!("/api/v1/objects/{id}")), None);
    assert_eq!(status, 200);
    assert!(view.contains("\"bucket\":\"data\""), "{view}");
    assert!(view.contains("\"md5\":null"), "{view}");
    let read = rclone(&endpoint, &["cat", "strata:data/from-rest/report.txt"]);
    assert_eq!(read.stdout, b"written over REST");
    // Every answer is counted, by operation and outcome.
    for (sample, at_least) in [
        (
            "strata_s3_requests_total{operation=\"GetObject\",outcome=\"ok\"}",
            10.0,
        ),
        (
            "strata_s3_requests_total{operation=\"GetObject\",outcome=\"NoSuchKey\"}",
            1.0,
        ),
        (
            "strata_s3_requests_total{operation=\"PutObject\",outcome=\"BadDigest\"}",
            1.0,
        ),
        (
            "strata_s3_requests_total{operation=\"ListObjectsV2\",outcome=\"ok\"}",
            4.0,
        ),
    ] {
        let value = server.metric(sample).unwrap_or(0.0);
        assert!(value >= at_least, "{sample} is {value}");
    }
    drop(server);
    db.drop_db().await;
}

#[tokio::test]
async fn boto3_multipart_upload_of_200_mib_streams_on_the_stack() {
    let db = TestDb::postgres().await;
    // The download's 26 ranged GETs are 26 reads, a spike: no tier takes reactive moves
    // here, so that the peak measured is the endpoint's alone, not also a move's.
    let server = stack_server(
        &db,
        &[
            ("TIER_PRIVATE_PROMOTE_ABOVE", "none"),
            ("TIER_ONPREM_PROMOTE_ABOVE", "none"),
        ],
    )
    .await;
    let endpoint = server.s3_endpoint();
    // Idle once started and warmed up (connections, first requests), as a server in
    // use is: what is measured is what the large transfer adds.
    boto3("put-get", &endpoint, "data", &["1"]);
    let idle = server.peak_rss();
    let uploaded = boto3("multipart", &endpoint, "data", &["200"]);
    let grown = server.peak_rss().saturating_sub(idle);
    assert!(
        grown < 100 * 1024 * 1024,
        "a 200 MiB upload and download grew the peak RSS by {grown} bytes: buffered, not streamed"
    );
    let object = rest_object(&server.base, uploaded["key"].as_str().unwrap());
    assert_eq!(object["size"], uploaded["size"]);
    // The tier put the object together where it stays; only the upload whose key was
    // written meanwhile has its bytes copied under the object the key names now.
    let copied = "the key was written meanwhile";
    assert!(!server.log().contains(copied), "{}", server.log());
    let raced = boto3("raced-upload", &endpoint, "data", &[]);
    assert!(server.log().contains(copied), "{}", server.log());
    // The checksums the uploads put together from their parts are those of the bytes.
    for key in [&uploaded["key"], &raced["key"]] {
        assert!(
            checksum_is_of_the_bytes(&db, key.as_str().unwrap()).await,
            "{key}"
        );
    }
    // The parts are gone once the object is whole, and so is the aborted upload's.
    let catalogue = strata::db::Catalogue::connect(&db.url).await.unwrap();
    assert!(catalogue.copies_in_uploads().await.unwrap().is_empty());
    catalogue.close().await;
    drop(server);
    db.drop_db().await;
}

#[tokio::test]
async fn reads_through_the_endpoint_promote_like_rest_reads() {
    let db = TestDb::postgres().await;
    let server = stack_server(&db, &[]).await;
    let endpoint = server.s3_endpoint();
    let key = "hot/object.bin";
    let put = boto3("put", &endpoint, "data", &[key, "0.1"]);
    let read = boto3("read", &endpoint, "data", &[key, "150"]);
    assert_eq!(read["sha256"], serde_json::json!([put["sha256"]]));
    let id = rest_object(&server.base, key)["id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(
        Duration::from_secs(60),
        "a completed reactive_access_spike move of the object read 150 times",
        || async {
            let (_, page) = http(
                "GET",
                &server.url(&format!("/api/v1/migrations?object_id={id}")),
                None,
            );
            let page: serde_json::Value = serde_json::from_str(&page).unwrap_or_default();
            page["items"].as_array().is_some_and(|moves| {
                moves
                    .iter()
                    .any(|m| m["reason"] == "reactive_access_spike" && m["status"] == "completed")
            })
        },
    )
    .await;
    // Every GET is one access event, counted once.
    eventually(Duration::from_secs(30), "150 counted accesses", || async {
        rest_object(&server.base, key)["access"]["total"] == 150
    })
    .await;
    let object = rest_object(&server.base, key);
    assert_ne!(object["tier"], "public", "{object}");
    drop(server);
    db.drop_db().await;
}

/// Queues a manual move of `key`'s object to `tier` over REST and waits until it is there.
async fn move_to(server: &StrataServer, key: &str, tier: &str) {
    let id = rest_object(&server.base, key)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = http(
        "POST",
        &server.url(&format!("/api/v1/objects/{id}/migrations")),
        Some(&format!("{{\"to_tier\":\"{tier}\"}}")),
    );
    assert_eq!(status, 202, "{body}");
    eventually(Duration::from_secs(60), "the move to complete", || async {
        rest_object(&server.base, key)["tier"] == tier
    })
    .await;
}

#[tokio::test]
async fn reads_racing_moves_get_the_objects_bytes() {
    let db = TestDb::postgres().await;
    // Small parts: the tier's GET of the object is many ranged requests, most of them
    // made after the move removed the copy the read began on.
    let server = stack_server(&db, &[("S3_PART_SIZE_BYTES", "5242880")]).await;
    let endpoint = server.s3_endpoint();
    let key = "moving/object.bin";
    let put = boto3("put", &endpoint, "data", &[key, "80"]);
    let slow = {
        let endpoint = endpoint.clone();
        std::thread::spawn(move || boto3("read-slowly", &endpoint, "data", &[key, "8"]))
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    move_to(&server, key, "onprem").await;
    let read = slow.join().unwrap();
    assert_eq!(read["sha256"], serde_json::json!([put["sha256"]]));
    assert!(
        server
            .log()
            .contains("a read followed the object to its new tier"),
        "the read did not straddle the move"
    );
    // Whole reads while the object moves on, twice.
    let reader = {
        let endpoint = endpoint.clone();
        std::thread::spawn(move || boto3("read", &endpoint, "data", &[key, "6"]))
    };
    move_to(&server, key, "private").await;
    move_to(&server, key, "public").await;
    let read = reader.join().unwrap();
    assert_eq!(read["sha256"], serde_json::json!([put["sha256"]]));
    drop(server);
    db.drop_db().await;
}

#[tokio::test]
async fn idle_multipart_uploads_expire_with_their_parts() {
    let db = TestDb::postgres().await;
    let server = stack_server(&db, &[("S3_UPLOAD_EXPIRY_SECS", "2")]).await;
    let started = boto3(
        "start-upload",
        &server.s3_endpoint(),
        "data",
        &["left/behind.bin"],
    );
    let id = started["upload_id"].as_str().unwrap().to_string();
    let catalogue = strata::db::Catalogue::connect(&db.url).await.unwrap();
    let tier_upload = catalogue
        .get_upload(&id)
        .await
        .unwrap()
        .tier_upload
        .expect("parts go into a multipart upload on the S3 tier");
    // s3s-fs keeps an upload and its parts as files in its root that name the upload.
    let root = common::s3_bucket_dir("public")
        .parent()
        .unwrap()
        .to_path_buf();
    let tier_files = || {
        std::fs::read_dir(&root)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().contains(&tier_upload.id)
            })
            .count()
    };
    assert!(tier_files() > 0, "the part is not on the tier");
    eventually(
        Duration::from_secs(30),
        "the idle upload to be aborted and its part removed",
        || async { catalogue.get_upload(&id).await.is_err() && tier_files() == 0 },
    )
    .await;
    assert!(
        server
            .log()
            .contains("idle for longer than S3_UPLOAD_EXPIRY_SECS")
    );
    catalogue.close().await;
    drop(server);
    db.drop_db().await;
}

/// rclone configured through its environment for the endpoint, as remote `strata:`.
fn rclone(endpoint: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("rclone")
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_STRATA_TYPE", "s3")
        .env("RCLONE_CONFIG_STRATA_PROVIDER", "Other")
        .env("RCLONE_CONFIG_STRATA_ENDPOINT", endpoint)
        .env("RCLONE_CONFIG_STRATA_ACCESS_KEY_ID", ACCESS_KEY)
        .env("RCLONE_CONFIG_STRATA_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("RCLONE_CONFIG_STRATA_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_STRATA_REGION", "us-east-1")
        .output()
        .expect("run rclone");
    assert!(
        out.status.success(),
        "rclone {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command's output lines, sorted.
fn sorted_lines(out: &std::process::Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// rclone copies a directory in (small files and one in several parts), lists it,
/// checks it byte for byte, reads one file and deletes them all.
fn rclone_round_trip(endpoint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("a.txt", pattern(1, 10)),
        ("sub/b.bin", pattern(2, 70_000)),
        ("sub/deeper/c.bin", pattern(3, 12 * 1024 * 1024 + 3)),
        ("with space+plus.txt", pattern(4, 5)),
    ];
    for (name, data) in &files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let local = dir.path().to_str().unwrap();
    rclone(
        endpoint,
        &["copy", "--s3-chunk-size", "5M", local, "strata:data/rclone"],
    );
    let listed = rclone(
        endpoint,
        &["lsf", "-R", "--files-only", "strata:data/rclone"],
    );
    let names = sorted_lines(&listed);
    let mut expected: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    rclone(
        endpoint,
        &["check", "--download", local, "strata:data/rclone"],
    );
    // Every file's MD5 as rclone reads it from the endpoint: a one-request put's ETag
    // (the Content-MD5 rclone sent), a multipart upload's metadata rclone wrote; so
    // rclone can check its transfers and `sync --checksum` by hash.
    let sums = sorted_lines(&rclone(endpoint, &["md5sum", "strata:data/rclone"]));
    let mut expected: Vec<String> = files
        .iter()
        .map(|(name, data)| format!("{}  {name}", strata::storage::hex(&md5_of(data))))
        .collect();
    expected.sort();
    assert_eq!(sums, expected);
    let cat = rclone(endpoint, &["cat", "strata:data/rclone/sub/b.bin"]);
    assert!(cat.stdout == files[1].1, "rclone cat read other bytes");
    rclone(endpoint, &["delete", "strata:data/rclone"]);
    let after = rclone(endpoint, &["lsf", "-R", "strata:data/rclone"]);
    assert!(
        after.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
}

#[tokio::test]
async fn rclone_copies_lists_checks_and_deletes_on_the_stack() {
    let db = TestDb::postgres().await;
    let server = stack_server(&db, &[]).await;
    rclone_round_trip(&server.s3_endpoint());
    drop(server);
    db.drop_db().await;
}

/// The AWS CLI (`aws`, from PyPI) with the test key, path-style, against `endpoint`;
/// panics when it fails.
fn aws(endpoint: &str, args: &[&str]) -> std::process::Output {
    let out = aws_output(endpoint, args);
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`aws`], whatever its exit status.
fn aws_output(endpoint: &str, args: &[&str]) -> std::process::Output {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[default]\ns3 =\n    addressing_style = path\n",
    )
    .unwrap();
    Command::new("aws")
        .args(["--endpoint-url", endpoint])
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", config.path())
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .expect("run aws")
}

#[tokio::test]
async fn aws_cli_copies_lists_reads_and_removes_on_the_stack() {
    let db = TestDb::postgres().await;
    let server = stack_server(&db, &[]).await;
    let endpoint = server.s3_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let small = pattern(5, 10);
    // Over the CLI's 8 MiB threshold: a multipart upload and a download in ranges.
    let big = pattern(6, 20 * 1024 * 1024 + 5);
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/small.txt"), &small).unwrap();
    std::fs::write(dir.path().join("in/big.bin"), &big).unwrap();
    let local = dir.path().join("in").display().to_string();
    aws(
        &endpoint,
        &["s3", "cp", "--recursive", &local, "s3://data/cli/"],
    );
    let listed = aws(&endpoint, &["s3", "ls", "--recursive", "s3://data/cli/"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    for (name, len) in [("big.bin", big.len()), ("small.txt", small.len())] {
        assert!(
            listed.contains(&format!("{len} cli/{name}")),
            "{name} of {len} bytes not listed:\n{listed}"
        );
    }
    let out = dir.path().join("big.out");
    let out_path = out.display().to_string();
    aws(&endpoint, &["s3", "cp", "s3://data/cli/big.bin", &out_path]);
    assert!(
        std::fs::read(&out).unwrap() == big,
        "the CLI read other bytes"
    );
    aws(
        &endpoint,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "data",
            "--key",
            "cli/big.bin",
            "--range",
            "bytes=1000-1009",
            &out_path,
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), big[1000..1010]);
    assert!(checksum_is_of_the_bytes(&db, "cli/big.bin").await);
    aws(&endpoint, &["s3", "rm", "--recursive", "s3://data/cli/"]);
    // `aws s3 ls` of nothing exits with 1.
    let after = aws_output(&endpoint, &["s3", "ls", "--recursive", "s3://data/cli/"]);
    assert!(
        after.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    drop(server);
    db.drop_db().await;
}

#[tokio::test]
async fn the_embedded_default_serves_s3_clients() {
    let server = EmbeddedServer::start_with(&S3_SETTINGS).await;
    let endpoint = server.s3_endpoint();
    boto3("objects", &endpoint, "data", &[]);
    boto3("listing", &endpoint, "logs", &[]);
    boto3("multipart", &endpoint, "data", &["20"]);
    rclone_round_trip(&endpoint);
}
