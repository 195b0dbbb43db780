//! How Strata's Kafka clients reach a managed broker: TLS and SASL settings, and any
//! other librdkafka property, given to every client alike (producer, consumer, dead
//! letter producer).

use std::fmt;

use super::ConfigError;
use super::vars::{Vars, invalid};

/// librdkafka properties every Kafka client gets, in the order given.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(Vec<(String, String)>);

impl KafkaProperties {
    /// The `(name, value)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn set(&mut self, name: &str, value: String) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.into(), value));
    }
}

/// Values of passwords and secrets are not shown.
impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let secret = k.contains("password") || k.contains("secret");
                (k, if secret { "<redacted>" } else { v.as_str() })
            }))
            .finish()
    }
}

/// `KAFKA_SECURITY_PROTOCOL` and what goes with it, then `KAFKA_PROPERTIES`
/// (`name=value;name=value`, librdkafka's names), which may override any of them.
/// `brokers` says whether `KAFKA_BROKERS` is set: the embedded broker takes none.
pub(super) fn kafka_properties(
    vars: &Vars<'_>,
    brokers: bool,
) -> Result<KafkaProperties, ConfigError> {
    let mut properties = KafkaProperties::default();
    let protocol = vars
        .get("KAFKA_SECURITY_PROTOCOL")
        .map(|p| p.to_ascii_lowercase());
    let sasl = match protocol.as_deref() {
        None | Some("plaintext" | "ssl") => false,
        Some("sasl_plaintext" | "sasl_ssl") => true,
        Some(other) => {
            return Err(invalid(
                "KAFKA_SECURITY_PROTOCOL",
                other,
                "plaintext, ssl, sasl_plaintext or sasl_ssl",
            ));
        }
    };
    if let Some(protocol) = protocol {
        properties.set("security.protocol", protocol);
    }
    for (var, property) in [
        ("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
        ("KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location"),
        ("KAFKA_SSL_KEY_LOCATION", "ssl.key.location"),
    ] {
        if let Some(path) = vars.get(var) {
            if !std::path::Path::new(&path).is_file() {
                return Err(invalid(var, &path, "the path of a readable PEM file"));
            }
            properties.set(property, path);
        }
    }
    if let Some(password) = vars.secret("KAFKA_SSL_KEY_PASSWORD")? {
        properties.set("ssl.key.password", password);
    }
    let mechanism = vars
        .get("KAFKA_SASL_MECHANISM")
        .map(|m| m.to_ascii_uppercase());
    let username = vars.get("KAFKA_SASL_USERNAME");
    let password = vars.secret("KAFKA_SASL_PASSWORD")?;
    if sasl {
        let mechanism = mechanism.unwrap_or_else(|| "PLAIN".into());
        if !matches!(
            mechanism.as_str(),
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" | "OAUTHBEARER"
        ) {
            return Err(invalid(
                "KAFKA_SASL_MECHANISM",
                &mechanism,
                "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
            ));
        }
        if mechanism != "OAUTHBEARER" {
            for (var, value) in [
                ("KAFKA_SASL_USERNAME", &username),
                ("KAFKA_SASL_PASSWORD", &password),
            ] {
                if value.is_none() {
                    return Err(ConfigError::Missing {
                        var: var.into(),
                        why: format!("KAFKA_SASL_MECHANISM {mechanism} signs in with it"),
                    });
                }
            }
        }
        properties.set("sasl.mechanism", mechanism);
        if let Some(username) = username {
            properties.set("sasl.username", username);
        }
        if let Some(password) = password {
            properties.set("sasl.password", password);
        }
    } else if let Some(var) = [
        ("KAFKA_SASL_MECHANISM", mechanism.is_some()),
        ("KAFKA_SASL_USERNAME", username.is_some()),
        ("KAFKA_SASL_PASSWORD", password.is_some()),
    ]
    .iter()
    .find_map(|(var, set)| set.then_some(*var))
    {
        return Err(ConfigError::Missing {
            var: "KAFKA_SECURITY_PROTOCOL".into(),
            why: format!("{var} is set, which only SASL uses: sasl_plaintext or sasl_ssl"),
        });
    }
    if let Some(list) = vars.get("KAFKA_PROPERTIES") {
        for pair in list.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .map(|(n, v)| (n.trim(), v.trim()))
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| {
                    invalid(
                        "KAFKA_PROPERTIES",
                        pair,
                        "name=value pairs of librdkafka properties, separated by ';'",
                    )
                })?;
            properties.set(name, value.into());
        }
    }
    if !brokers && !properties.is_empty() {
        return Err(ConfigError::Missing {
            var: "KAFKA_BROKERS".into(),
            why: "Kafka security settings or KAFKA_PROPERTIES are set; the embedded broker \
                  takes none"
                .into(),
        });
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<KafkaProperties, ConfigError> {
        let lookup = |var: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.to_string())
        };
        kafka_properties(&Vars(&lookup), true)
    }

    #[test]
    fn sasl_scram_over_tls() {
        let properties = parse(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
            ("KAFKA_SASL_USERNAME", "strata"),
            ("KAFKA_SASL_PASSWORD", "pw"),
            (
                "KAFKA_PROPERTIES",
                "ssl.endpoint.identification.algorithm=none; client.id=s",
            ),
        ])
        .unwrap();
        let pairs: Vec<_> = properties.pairs().collect();
        assert_eq!(
            pairs,
            [
                ("security.protocol", "sasl_ssl"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.username", "strata"),
                ("sasl.password", "pw"),
                ("ssl.endpoint.identification.algorithm", "none"),
                ("client.id", "s"),
            ]
        );
        let shown = format!("{properties:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("\"pw\""),
            "{shown}"
        );
    }

    #[test]
    fn incomplete_or_unknown_settings_are_named() {
        let missing = parse(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("KAFKA_SASL_USERNAME", "strata"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("KAFKA_SASL_PASSWORD must be set"),
            "{missing}"
        );
        let stray = parse(&[("KAFKA_SASL_USERNAME", "strata")])
            .unwrap_err()
            .to_string();
        assert!(
            stray.contains("KAFKA_SECURITY_PROTOCOL must be set"),
            "{stray}"
        );
        let unknown = parse(&[("KAFKA_SECURITY_PROTOCOL", "tls")])
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("KAFKA_SECURITY_PROTOCOL"), "{unknown}");
        let malformed = parse(&[("KAFKA_PROPERTIES", "novalue")])
            .unwrap_err()
            .to_string();
        assert!(malformed.contains("KAFKA_PROPERTIES"), "{malformed}");
        let absent_ca = parse(&[("KAFKA_SSL_CA_LOCATION", "/nonexistent/ca.pem")])
            .unwrap_err()
            .to_string();
        assert!(absent_ca.contains("KAFKA_SSL_CA_LOCATION"), "{absent_ca}");
    }

    #[test]
    fn the_embedded_broker_takes_no_security_settings() {
        let lookup = |var: &str| (var == "KAFKA_SECURITY_PROTOCOL").then(|| "ssl".to_string());
        assert!(kafka_properties(&Vars(&lookup), false).is_err());
        let none = |_: &str| None;
        assert!(kafka_properties(&Vars(&none), false).unwrap().is_empty());
    }
}
