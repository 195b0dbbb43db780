//! Streams one file through a tier's S3 backend and back: put from disk, then get to
//! disk, and prints throughput and the process's peak RSS as one JSON line.
//!
//! Run by `scripts/bench/storage.sh`, which compares the figures with `rclone copy` on
//! the same server and file:
//!
//! ```text
//! cargo bench --bench storage_transfer -- FILE [TIER]
//! ```
//!
//! The tier's settings come from the environment (the local stack's `.stack/stack.env`).

use std::time::Instant;

use futures_util::StreamExt;
use strata::config::Config;
use strata::storage::{Declared, Store};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; positional arguments are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(path) = args.first() else {
        anyhow::bail!("usage: storage_transfer FILE [TIER]");
    };
    let tier = args.get(1).map(String::as_str).unwrap_or("public");
    strata::config::load_dotenv()?;
    let config = Config::from_env()?;
    let tier_config = config
        .tier(tier)
        .ok_or_else(|| anyhow::anyhow!("no tier {tier}"))?;
    let store = Store::open(&tier_config.backend, config.transfer).await?;
    let key = format!("bench/{}", uuid::Uuid::now_v7());

    let started = Instant::now();
    let file = tokio::fs::File::open(path).await?;
    let digest = store
        .put(
            &key,
            ReaderStream::with_capacity(file, 64 << 10),
            "application/octet-stream",
            Declared::default(),
        )
        .await?;
    let put_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let out_path = format!("{path}.strata-get");
    let mut out =
        tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(&out_path).await?);
    let mut stream = store.get(&key, None, None).await?;
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    let get_secs = started.elapsed().as_secs_f64();
    store.delete(&key).await?;

    let mib = digest.size as f64 / (1024.0 * 1024.0);
    println!(
        "{{\"bytes\": {}, \"put_secs\": {put_secs:.3}, \"put_mib_s\": {:.1}, \"get_secs\": {get_secs:.3}, \"get_mib_s\": {:.1}, \"peak_rss_mib\": {:.1}}}",
        digest.size,
        mib / put_secs,
        mib / get_secs,
        peak_rss_kib()? as f64 / 1024.0
    );
    Ok(())
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))
}
