//! The S3 endpoint's settings (`S3_*` but the tier transfer ones): where it listens, its
//! buckets and who may use it.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::ConfigError;
use super::vars::{Vars, invalid};

/// The bucket every object lives in unless `S3_BUCKETS` names others; objects stored
/// before there were buckets are in it.
pub const DEFAULT_BUCKET: &str = "strata";

/// The S3 endpoint of `strata serve`.
#[derive(Clone, PartialEq, Eq)]
pub struct S3EndpointConfig {
    /// Address it listens on; `None` leaves it off (`S3_LISTEN_ADDR`).
    pub listen: Option<SocketAddr>,
    /// Its buckets; the first is where objects ingested over REST go (`S3_BUCKETS`).
    pub buckets: Vec<String>,
    /// The one access key requests must be signed with (`S3_ACCESS_KEY_ID`,
    /// `S3_SECRET_ACCESS_KEY`); `None` only with `allow_anonymous`.
    pub credentials: Option<S3Credentials>,
    /// Whether unsigned requests are served (`S3_ALLOW_ANONYMOUS`).
    pub allow_anonymous: bool,
    /// How long a multipart upload may go without a new part before it is aborted and
    /// its parts removed, as S3's lifecycle rule for incomplete uploads does
    /// (`S3_UPLOAD_EXPIRY_SECS`).
    pub upload_expiry: Duration,
}

/// An access key and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret the signatures are made with.
    pub secret_access_key: String,
}

impl S3EndpointConfig {
    /// The bucket objects ingested over REST go into.
    pub fn default_bucket(&self) -> &str {
        &self.buckets[0]
    }

    /// Whether `name` is one of the endpoint's buckets.
    pub fn has_bucket(&self, name: &str) -> bool {
        self.buckets.iter().any(|b| b == name)
    }
}

impl Default for S3EndpointConfig {
    fn default() -> Self {
        S3EndpointConfig {
            listen: None,
            buckets: vec![DEFAULT_BUCKET.into()],
            credentials: None,
            allow_anonymous: false,
            upload_expiry: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

// The secret never reaches a log line through `{:?}`.
impl fmt::Debug for S3EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3EndpointConfig")
            .field("listen", &self.listen)
            .field("buckets", &self.buckets)
            .field(
                "access_key_id",
                &self.credentials.as_ref().map(|c| &c.access_key_id),
            )
            .field("allow_anonymous", &self.allow_anonymous)
            .field("upload_expiry", &self.upload_expiry)
            .finish()
    }
}

pub(super) fn s3_endpoint_config(vars: &Vars<'_>) -> Result<S3EndpointConfig, ConfigError> {
    let listen = match vars.get("S3_LISTEN_ADDR") {
        None => None,
        Some(listen) => Some(listen.parse().map_err(|_| {
            invalid(
                "S3_LISTEN_ADDR",
                &listen,
                "an address such as 127.0.0.1:9000 or [::]:9000",
            )
        })?),
    };
    let buckets = match vars.get("S3_BUCKETS") {
        None => vec![DEFAULT_BUCKET.to_string()],
        Some(list) => {
            let mut buckets: Vec<String> = Vec::new();
            for name in list.split(',').map(str::trim) {
                if !is_valid_bucket_name(name) || buckets.iter().any(|b| b == name) {
                    return Err(invalid(
                        "S3_BUCKETS",
                        &list,
                        "distinct S3 bucket names (3-63 of a-z, 0-9, '-' and '.', starting \
                         and ending with a letter or digit), separated by commas",
                    ));
                }
                buckets.push(name.to_string());
            }
            buckets
        }
    };
    let credentials = match (
        vars.secret("S3_ACCESS_KEY_ID")?,
        vars.secret("S3_SECRET_ACCESS_KEY")?,
    ) {
        (Some(access_key_id), Some(secret_access_key)) => Some(S3Credentials {
            access_key_id,
            secret_access_key,
        }),
        (None, None) => None,
        (Some(_), None) => return Err(missing("S3_SECRET_ACCESS_KEY", "S3_ACCESS_KEY_ID")),
        (None, Some(_)) => return Err(missing("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")),
    };
    let allow_anonymous = vars.parse_bool("S3_ALLOW_ANONYMOUS", false)?;
    if listen.is_some() && credentials.is_none() && !allow_anonymous {
        return Err(ConfigError::Missing {
            var: "S3_ACCESS_KEY_ID".into(),
            why: "S3_LISTEN_ADDR turns the S3 endpoint on, and it refuses unsigned requests \
                  unless S3_ALLOW_ANONYMOUS=true; set S3_ACCESS_KEY_ID and \
                  S3_SECRET_ACCESS_KEY"
                .into(),
        });
    }
    Ok(S3EndpointConfig {
        listen,
        buckets,
        credentials,
        allow_anonymous,
        upload_expiry: vars.parse_secs(
            "S3_UPLOAD_EXPIRY_SECS",
            S3EndpointConfig::default().upload_expiry,
            1..=365 * 24 * 3600,
        )?,
    })
}

fn missing(var: &str, set: &str) -> ConfigError {
    ConfigError::Missing {
        var: var.into(),
        why: format!("{set} is set, and signatures need both"),
    }
}

/// S3's rules for a bucket name (without the rarely used exceptions it also forbids,
/// such as names formatted like IP addresses).
fn is_valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<S3EndpointConfig, ConfigError> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        s3_endpoint_config(&Vars(&lookup))
    }

    #[test]
    fn off_with_one_default_bucket_unless_set() {
        let config = parse(&[]).unwrap();
        assert_eq!(config, S3EndpointConfig::default());
        assert_eq!(config.default_bucket(), "strata");
    }

    #[test]
    fn listening_needs_credentials_or_anonymous_access() {
        let err = parse(&[("S3_LISTEN_ADDR", "127.0.0.1:9000")]).unwrap_err();
        assert!(err.to_string().contains("S3_ALLOW_ANONYMOUS"), "{err}");
        let open = parse(&[
            ("S3_LISTEN_ADDR", "127.0.0.1:9000"),
            ("S3_ALLOW_ANONYMOUS", "true"),
        ])
        .unwrap();
        assert!(open.allow_anonymous && open.credentials.is_none());
        let signed = parse(&[
            ("S3_LISTEN_ADDR", "127.0.0.1:9000"),
            ("S3_ACCESS_KEY_ID", "ak"),
            ("S3_SECRET_ACCESS_KEY", "very-secret"),
        ])
        .unwrap();
        assert_eq!(signed.credentials.as_ref().unwrap().access_key_id, "ak");
        assert!(!format!("{signed:?}").contains("very-secret"));
        let half = parse(&[("S3_ACCESS_KEY_ID", "ak")]).unwrap_err();
        assert!(half.to_string().contains("S3_SECRET_ACCESS_KEY"), "{half}");
    }

    #[test]
    fn buckets_are_checked_names() {
        let config = parse(&[("S3_BUCKETS", "data, logs.2026")]).unwrap();
        assert_eq!(config.buckets, ["data", "logs.2026"]);
        assert_eq!(config.default_bucket(), "data");
        for bad in ["Data", "ab", "data,data", "-data", "a..b", "data,"] {
            assert!(parse(&[("S3_BUCKETS", bad)]).is_err(), "{bad} accepted");
        }
    }
}
