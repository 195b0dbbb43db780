//! Times the mover on the local stack, for `scripts/bench/mover.sh` to compare with
//! rclone on the same servers:
//!
//! ```text
//! cargo bench --bench mover_transfer -- large FILE          # one object, public -> onprem
//! cargo bench --bench mover_transfer -- many COUNT BYTES N  # COUNT objects, N moves at once
//! ```
//!
//! Objects are first stored on the public tier and catalogued (not timed); then the
//! moves are queued and run by the mover, timed until the last one completed. Every
//! move includes the read-back verification of the copy. The catalogue is a fresh
//! PostgreSQL database on the stack's server, dropped afterwards. Prints one JSON line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::{AnyConnection, Connection, Executor};
use strata::config::Config;
use strata::db::{Catalogue, MoveReason, MoveStatus, NewMove, NewObject, ObjectContent, new_id};
use strata::mover::Mover;
use strata::storage::{Declared, Tiers};
use tokio::io::AsyncRead;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    strata::config::load_dotenv()?;
    let mut config = Config::from_env()?;
    let (count, concurrency) = match args.first().map(String::as_str) {
        Some("large") => (1, 1),
        Some("many") => (
            args.get(1).context("COUNT")?.parse()?,
            args.get(3).context("N")?.parse()?,
        ),
        _ => bail!("usage: mover_transfer large FILE | many COUNT BYTES N"),
    };
    config.mover.concurrency = concurrency;
    config.mover.poll_interval = Duration::from_millis(10);

    sqlx::any::install_default_drivers();
    let name = format!("strata_bench_{}", uuid::Uuid::now_v7().simple());
    let mut admin = AnyConnection::connect(&config.database_url).await?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    let base = config
        .database_url
        .rsplit_once('/')
        .context("database URL")?
        .0;
    let catalogue = Catalogue::connect(&format!("{base}/{name}")).await?;
    let tiers = Arc::new(Tiers::open(&config.tiers, config.transfer).await?);

    let mut bytes = 0;
    for i in 0..count {
        let body: Box<dyn AsyncRead + Unpin + Send> = match args[0].as_str() {
            "large" => Box::new(tokio::fs::File::open(args.get(1).context("FILE")?).await?),
            _ => {
                let size: usize = args.get(2).context("BYTES")?.parse()?;
                Box::new(std::io::Cursor::new(payload(i, size)))
            }
        };
        bytes += ingest(&catalogue, &tiers, i, body).await?;
    }

    let started = Instant::now();
    let stop = CancellationToken::new();
    let mover =
        tokio::spawn(Mover::new(catalogue.clone(), tiers.clone(), config.mover).run(stop.clone()));
    loop {
        let completed: i64 = catalogue
            .move_counts()
            .await?
            .iter()
            .filter(|(status, _, _)| *status == MoveStatus::Completed)
            .map(|(_, _, n)| n)
            .sum();
        if completed >= count as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.cancel();
    mover.await?;
    // The moved copies go with the bench's catalogue: a run leaves no bytes on the stack.
    for i in 0..count {
        let key = format!("bench/{i}");
        if let Some(object) = catalogue.find_object_by_key("strata", &key).await? {
            tiers
                .store(&object.tier)
                .context("the object's tier")?
                .delete(&object.location)
                .await?;
        }
    }
    catalogue.close().await;
    admin
        .execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
        .await?;
    println!(
        "{{\"objects\": {count}, \"bytes\": {bytes}, \"concurrency\": {concurrency}, \"secs\": {secs:.3}, \"objects_per_s\": {:.1}, \"mib_per_s\": {:.1}}}",
        count as f64 / secs,
        bytes as f64 / 1048576.0 / secs
    );
    Ok(())
}

/// Deterministic, incompressible bytes for object `i`.
fn payload(i: usize, size: usize) -> Vec<u8> {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Stores `body` on the public tier, catalogues it and queues its move to onprem.
async fn ingest(
    catalogue: &Catalogue,
    tiers: &Tiers,
    i: usize,
    body: impl AsyncRead + Unpin + Send,
) -> anyhow::Result<i64> {
    let id = new_id();
    let location = format!("{id}/ingest");
    let digest = tiers
        .store("public")
        .context("public tier")?
        .put(
            &location,
            ReaderStream::with_capacity(body, 64 << 10),
            "application/octet-stream",
            Declared::default(),
        )
        .await?;
    let object = catalogue
        .insert_object(&NewObject {
            id,
            bucket: "strata".into(),
            key: format!("bench/{i}"),
            content: ObjectContent {
                size: digest.size as i64,
                content_type: "application/octet-stream".into(),
                checksum: digest.checksum,
                md5: None,
                tier: "public".into(),
                location,
                metadata: Default::default(),
            },
        })
        .await?;
    catalogue
        .enqueue_move(&NewMove {
            object_id: object.id.clone(),
            object_version: 1,
            from_tier: "public".into(),
            to_tier: "onprem".into(),
            reason: MoveReason::Manual,
            bytes_total: object.size,
        })
        .await?;
    Ok(object.size)
}
