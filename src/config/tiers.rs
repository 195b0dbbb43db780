//! The tiers' settings: `TIERS`, `DEFAULT_TIER` and each tier's `TIER_<NAME>_…`
//! variables (backend, capacity, thresholds, prices).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::vars::{Vars, invalid};
use super::{ConfigError, DEFAULT_LANDING_TIER, DEFAULT_TIERS};

/// One storage tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierConfig {
    /// Tier name as used in the API (`onprem`, `private`, `public`, …).
    pub name: String,
    /// Where the tier's bytes live.
    pub backend: BackendConfig,
    /// Bytes the tier may hold; `None` is unbounded (`TIER_<NAME>_CAPACITY_BYTES`).
    pub capacity_bytes: Option<u64>,
    /// Share of the capacity the forecaster leaves free for bursts
    /// (`TIER_<NAME>_HEADROOM`, 0 to below 1).
    pub headroom: f64,
    /// Prices used for cost estimates.
    pub costs: TierCosts,
    /// Accesses within the detector window above which a spike promotes an object into
    /// this tier; `None` never promotes into it reactively (`TIER_<NAME>_PROMOTE_ABOVE`).
    pub promote_above: Option<u64>,
    /// Predicted accesses over the forecast horizon above which the forecaster places an
    /// object on this tier; `None` never places one there proactively
    /// (`TIER_<NAME>_PREDICT_ABOVE`).
    pub predict_above: Option<f64>,
}

/// Prices of one tier, in any one currency.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TierCosts {
    /// Storage per GB-month (`TIER_<NAME>_COST_GB_MONTH`).
    pub storage_gb_month: f64,
    /// Per 1,000 reads (`TIER_<NAME>_COST_PER_1K_READS`).
    pub per_1k_reads: f64,
    /// Per GB transferred out (`TIER_<NAME>_COST_TRANSFER_GB`).
    pub transfer_gb: f64,
}

/// The backend behind a tier, from `TIER_<NAME>_URL`.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendConfig {
    /// A local or mounted directory (`file:///DIR`).
    File {
        /// Directory holding the tier's objects.
        root: PathBuf,
    },
    /// An S3-protocol bucket (`s3://BUCKET`).
    S3(S3Config),
}

/// Connection settings of an S3-protocol tier.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Custom endpoint such as `http://127.0.0.1:9000`; `None` means AWS (`TIER_<NAME>_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Signing region (`TIER_<NAME>_REGION`, default `us-east-1`).
    pub region: String,
    /// Path-style addressing, needed by MinIO and most self-hosted servers
    /// (`TIER_<NAME>_PATH_STYLE`, default true when an endpoint is set).
    pub path_style: bool,
    /// Sign each upload's bytes (their SHA-256 in the request signature), which costs
    /// a SHA-256 pass on both ends, on Strata's only when the S3 client that sent the
    /// bytes did not sign them (`TIER_<NAME>_SIGN_PAYLOAD`). An upload that carries its
    /// S3 client's `Content-MD5` (a signed header the server checks the bytes against)
    /// signs no payload hash besides. Default: true for a
    /// plain `http://` endpoint, where the signature is what protects the bytes in
    /// transit; false for `https://` and AWS, where TLS does (the AWS SDKs' convention).
    /// Every upload carries its CRC32C either way; a signed one needs no MD5 hashed for
    /// a server that reports no CRC32C (the server checked the signed SHA-256).
    pub sign_payload: bool,
    /// Static keys; `None` uses the AWS default credential chain.
    pub credentials: Option<StaticCredentials>,
    /// PEM certificates of the authorities trusted for an `https://` endpoint besides
    /// the system's (`TIER_<NAME>_CA_BUNDLE`, else `AWS_CA_BUNDLE`); `None` for plain
    /// `http://` endpoints.
    pub ca_certificates: Option<Vec<u8>>,
}

/// An access key pair (`TIER_<NAME>_ACCESS_KEY_ID`, `TIER_<NAME>_SECRET_ACCESS_KEY`).
#[derive(Clone, PartialEq)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl fmt::Debug for StaticCredentials {
    // Secrets must never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// True for names usable as a tier: lowercase ASCII letters, digits and `_`, starting with
/// a letter, so that `TIER_<NAME>_…` variables can be derived from them.
pub fn is_valid_tier_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Share of a tier's capacity kept free for bursts unless `TIER_<NAME>_HEADROOM` says
/// otherwise: none. A burst denser than a full tier's least dense resident pushes it out;
/// free room would only take in bursts worth less than the objects it was kept from.
const DEFAULT_HEADROOM: f64 = 0.0;

/// The seed's proactive thresholds of the hottest tiers: predicted accesses over the
/// horizon above which an object belongs there (also what makes an hour hot in the
/// simulator's report when the hottest tier is filled by rank).
pub const SEED_PREDICT_ABOVE: [f64; 2] = [50.0, 10.0];

/// Promotion thresholds. Reactive: by default the hottest tier takes objects with more
/// than 100 accesses a detector window and the next one more than 20; proactive: more
/// than 50 and 10 predicted accesses over the forecast horizon (the seed's numbers). The
/// coldest tier is where objects start, so nothing is promoted into it. A tier with a
/// capacity is filled by rank instead: its proactive threshold, only when set, is a
/// floor its objects must pass, and its reactive one is the detector's level only.
fn apply_promotion_thresholds(
    vars: &Vars<'_>,
    tiers: &mut [TierConfig],
) -> Result<(), ConfigError> {
    const REACTIVE: [u64; 2] = [100, 20];
    const PROACTIVE: [f64; 2] = SEED_PREDICT_ABOVE;
    let coldest = tiers.len().saturating_sub(1);
    for (position, tier) in tiers.iter_mut().enumerate() {
        let name = tier.name.to_ascii_uppercase();
        let var = format!("TIER_{name}_PROMOTE_ABOVE");
        let default = REACTIVE
            .get(position)
            .copied()
            .filter(|_| position < coldest);
        tier.promote_above = match vars.get(&var).as_deref() {
            None => default,
            Some("none") => None,
            Some(_) => Some(vars.parse_in(&var, 0, 1..=u64::from(u32::MAX))?),
        };
        let var = format!("TIER_{name}_PREDICT_ABOVE");
        let default = PROACTIVE
            .get(position)
            .copied()
            .filter(|_| position < coldest && tier.capacity_bytes.is_none());
        let expected = "a positive number of predicted accesses, or none";
        tier.predict_above = match vars.get(&var).as_deref() {
            None => default,
            Some("none") => None,
            Some(_) => match vars.parse_opt::<f64>(&var, expected)? {
                Some(t) if t.is_finite() && t > 0.0 => Some(t),
                _ => return Err(invalid(&var, &vars.get(&var).unwrap_or_default(), expected)),
            },
        };
    }
    Ok(())
}

/// The tiers `TIERS` names, hottest first, each with its settings, and the tier new
/// objects land on.
pub(super) fn tiers_config(
    vars: &Vars<'_>,
    data_dir: &Path,
) -> Result<(Vec<TierConfig>, String), ConfigError> {
    let tier_list = vars.get("TIERS").unwrap_or_else(|| DEFAULT_TIERS.into());
    let mut seen = HashSet::new();
    let mut tiers = Vec::new();
    for name in tier_list.split(',').map(str::trim) {
        if !is_valid_tier_name(name) {
            return Err(invalid(
                "TIERS",
                &tier_list,
                "a comma-separated list of tier names made of a-z, 0-9 and _, starting with a letter",
            ));
        }
        if !seen.insert(name) {
            return Err(invalid("TIERS", &tier_list, "each tier named once"));
        }
        tiers.push(vars.tier(name, data_dir)?);
    }
    apply_promotion_thresholds(vars, &mut tiers)?;
    let default_tier = vars
        .get("DEFAULT_TIER")
        .unwrap_or_else(|| DEFAULT_LANDING_TIER.into());
    if !seen.contains(default_tier.as_str()) {
        return Err(invalid(
            "DEFAULT_TIER",
            &default_tier,
            &format!("one of the tiers in TIERS ({tier_list})"),
        ));
    }
    Ok((tiers, default_tier))
}

impl Vars<'_> {
    pub(super) fn tier(&self, name: &str, data_dir: &Path) -> Result<TierConfig, ConfigError> {
        let prefix = format!("TIER_{}_", name.to_ascii_uppercase());
        let var = |suffix: &str| format!("{prefix}{suffix}");
        let url_var = var("URL");
        let backend = match self.get(&url_var) {
            None => BackendConfig::File {
                root: data_dir.join("tiers").join(name),
            },
            Some(url) => self.backend(&url_var, &url, &var)?,
        };
        let capacity_bytes = self.parse_opt(&var("CAPACITY_BYTES"), "a whole number of bytes")?;
        let headroom_var = var("HEADROOM");
        let expected = "a share of the capacity from 0 to below 1";
        let headroom = self
            .parse_opt::<f64>(&headroom_var, expected)?
            .unwrap_or(DEFAULT_HEADROOM);
        if !(0.0..1.0).contains(&headroom) {
            return Err(invalid(&headroom_var, &headroom.to_string(), expected));
        }
        Ok(TierConfig {
            name: name.into(),
            backend,
            capacity_bytes,
            headroom,
            promote_above: None,
            predict_above: None,
            costs: TierCosts {
                storage_gb_month: self.parse_cost(&var("COST_GB_MONTH"))?,
                per_1k_reads: self.parse_cost(&var("COST_PER_1K_READS"))?,
                transfer_gb: self.parse_cost(&var("COST_TRANSFER_GB"))?,
            },
        })
    }

    fn backend(
        &self,
        url_var: &str,
        url: &str,
        var: &dyn Fn(&str) -> String,
    ) -> Result<BackendConfig, ConfigError> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(invalid(url_var, url, "file:///DIR with a directory path"));
            }
            return Ok(BackendConfig::File { root: path.into() });
        }
        let Some(bucket) = url.strip_prefix("s3://") else {
            return Err(invalid(url_var, url, "s3://BUCKET or file:///DIR"));
        };
        let bucket = bucket.trim_end_matches('/');
        if !is_valid_bucket_name(bucket) {
            return Err(invalid(
                url_var,
                url,
                "s3://BUCKET with a bucket name of 3 to 63 characters: a-z, 0-9, '.' and '-'",
            ));
        }
        let endpoint = self.get(&var("ENDPOINT"));
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(invalid(&var("ENDPOINT"), e, "an http:// or https:// URL"));
        }
        let access_key_id = self.secret(&var("ACCESS_KEY_ID"))?;
        let secret_access_key = self.secret(&var("SECRET_ACCESS_KEY"))?;
        let credentials = match (access_key_id, secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => Some(StaticCredentials {
                access_key_id,
                secret_access_key,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    var: var("SECRET_ACCESS_KEY"),
                    why: format!("{} is set", var("ACCESS_KEY_ID")),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    var: var("ACCESS_KEY_ID"),
                    why: format!("{} is set", var("SECRET_ACCESS_KEY")),
                });
            }
        };
        let tls = endpoint
            .as_deref()
            .is_none_or(|e| e.starts_with("https://"));
        let ca_var = var("CA_BUNDLE");
        let ca_certificates = match [ca_var.as_str(), "AWS_CA_BUNDLE"]
            .into_iter()
            .find_map(|v| self.get(v).map(|path| (v, path)))
        {
            Some((v, path)) if tls => Some(read_ca_bundle(v, &path)?),
            _ => None,
        };
        Ok(BackendConfig::S3(S3Config {
            ca_certificates,
            bucket: bucket.into(),
            path_style: self.parse_bool(&var("PATH_STYLE"), endpoint.is_some())?,
            sign_payload: self.parse_bool(
                &var("SIGN_PAYLOAD"),
                endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://")),
            )?,
            endpoint,
            region: self
                .get(&var("REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            credentials,
        }))
    }
}

/// The PEM certificates in the file `var` names.
fn read_ca_bundle(var: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        invalid(
            var,
            path,
            &format!("a readable PEM file of CA certificates ({e})"),
        )
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid(var, path, "a PEM file of CA certificates"));
    }
    Ok(pem)
}

fn is_valid_bucket_name(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}
