//! Interoperability of the S3 backend with an independent S3 client (rclone): each reads
//! what the other wrote, byte for byte, on the local stack's s3s-fs server.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{chunks, digest_of, pattern, s3_store, stack_env};
use futures_util::StreamExt;
use strata::storage::Declared;

const TIER: &str = "onprem";

/// rclone configured through its environment for the stack's S3 server of [`TIER`].
fn rclone(args: &[&str]) -> Command {
    let env = stack_env();
    let mut cmd = Command::new("rclone");
    cmd.args(args)
        // rclone 1.60 (Debian) refuses to start when AWS_CA_BUNDLE is set, which some
        // machines do; the stack's endpoint is plain HTTP on loopback, so it is not needed.
        .env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG_STACK_TYPE", "s3")
        .env("RCLONE_CONFIG_STACK_PROVIDER", "Other")
        .env("RCLONE_CONFIG_STACK_ENDPOINT", &env["TIER_ONPREM_ENDPOINT"])
        .env(
            "RCLONE_CONFIG_STACK_ACCESS_KEY_ID",
            &env["TIER_ONPREM_ACCESS_KEY_ID"],
        )
        .env(
            "RCLONE_CONFIG_STACK_SECRET_ACCESS_KEY",
            &env["TIER_ONPREM_SECRET_ACCESS_KEY"],
        )
        .env("RCLONE_CONFIG_STACK_FORCE_PATH_STYLE", "true")
        .env("RCLONE_CONFIG_STACK_REGION", "us-east-1");
    cmd
}

fn remote(key: &str) -> String {
    format!("stack:strata-{TIER}/{key}")
}

#[tokio::test]
async fn rclone_reads_what_strata_wrote() {
    let store = s3_store(TIER).await;
    // 20 MiB: a three-part multipart upload at the default 8 MiB part size.
    let data = pattern(11, 20 * 1024 * 1024 + 17);
    let key = format!("interop/{}/from-strata.bin", uuid::Uuid::now_v7());
    store
        .put(
            &key,
            chunks(&data[..]),
            "application/octet-stream",
            Declared::default(),
        )
        .await
        .unwrap();
    let out = rclone(&["cat", &remote(&key)])
        .output()
        .expect("run rclone");
    assert!(
        out.status.success(),
        "rclone cat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "rclone read different bytes");
    store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn strata_reads_what_rclone_wrote() {
    let store = s3_store(TIER).await;
    let data = pattern(12, 3 * 1024 * 1024 + 5);
    let key = format!("interop/{}/from-rclone.bin", uuid::Uuid::now_v7());
    let mut child = rclone(&["rcat", &remote(&key)])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rclone");
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rclone rcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(store.size(&key).await.unwrap(), data.len() as u64);
    let mut read = Vec::new();
    let mut stream = store.get(&key, None, None).await.unwrap();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    assert!(read == data, "strata read different bytes");
    assert_eq!(store.digest(&key).await.unwrap(), digest_of(&data));
}
