//! `strata serve`: wires configuration, catalogue and tiers together and runs until
//! shut down.

use std::future::Future;

use anyhow::Context;

use crate::config::{BackendConfig, Config};
use crate::db::{Backend, Catalogue};
use crate::storage::Tiers;

/// Opens the catalogue (applying schema migrations) and every tier, logs what runs
/// where, and waits for `shutdown`.
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
    tracing::info!("strata is running; press Ctrl-C to stop");
    shutdown.await;
    tracing::info!("shutting down");
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
