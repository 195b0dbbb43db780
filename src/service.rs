//! `strata serve`: wires configuration, catalogue and tiers together and runs until
//! shut down.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{BackendConfig, Config};
use crate::db::{Backend, Catalogue};
use crate::mover::Mover;
use crate::storage::Tiers;

/// How long moves in flight may take to finish after a shutdown signal; after that the
/// process exits and their leases run out, so another process (or the next start)
/// recovers them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the catalogue (applying schema migrations) and every tier, runs the mover, and
/// stops on `shutdown`.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let catalogue = Catalogue::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening the catalogue at {}",
                redact_url(&config.database_url)
            )
        })?;
    if catalogue.backend() == Backend::Sqlite {
        tracing::warn!(
            database = %config.database_url,
            "catalogue runs on embedded SQLite; set DATABASE_URL=postgres://… for production"
        );
    }
    let tiers = Tiers::open(&config.tiers, config.transfer)
        .await
        .context("opening the tiers")?;
    for (tier, store) in tiers.iter() {
        let embedded = matches!(tier.backend, BackendConfig::File { .. });
        tracing::info!(
            tier = %tier.name,
            backend = %store,
            capacity_bytes = tier.capacity_bytes,
            default = tier.name == config.default_tier,
            "tier ready{}",
            if embedded { " (local directory; set TIER_<NAME>_URL=s3://… for production)" } else { "" }
        );
    }
    let stop = CancellationToken::new();
    let mover = tokio::spawn(
        Mover::new(catalogue.clone(), Arc::new(tiers), config.mover).run(stop.clone()),
    );
    tracing::info!("strata is running; press Ctrl-C to stop");
    shutdown.await;
    tracing::info!("shutting down; letting moves in flight finish");
    stop.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, mover).await.is_err() {
        tracing::warn!("moves still running after {SHUTDOWN_GRACE:?}; they resume after restart");
    }
    catalogue.close().await;
    Ok(())
}

/// The URL with any password replaced, for log lines and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://strata:s3cret@db:5432/strata"),
            "postgres://strata:***@db:5432/strata"
        );
        assert_eq!(redact_url("postgres://db/strata"), "postgres://db/strata");
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }
}
