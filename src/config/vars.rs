//! Reading the variables: each one trimmed, parsed and checked against its range, and
//! an error that names the variable, its value and what was expected.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;

pub(super) fn invalid(var: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var: var.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

/// Typed access to the variable lookup.
pub(super) struct Vars<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The variable's value, trimmed; `None` when unset or blank.
    pub(super) fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A secret: the variable's value, or the contents of the file that `<var>_FILE`
    /// names (as Docker and Kubernetes mount secrets), trimmed; setting both is an error.
    pub(super) fn secret(&self, var: &str) -> Result<Option<String>, ConfigError> {
        let file_var = format!("{var}_FILE");
        match (self.get(var), self.get(&file_var)) {
            (Some(_), Some(_)) => Err(ConfigError::Both {
                var: var.into(),
                other: file_var,
            }),
            (value, None) => Ok(value),
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map(|text| Some(text.trim().to_string()).filter(|t| !t.is_empty()))
                .map_err(|e| invalid(&file_var, &path, &format!("a readable file ({e})"))),
        }
    }

    pub(super) fn parse_opt<T: FromStr>(
        &self,
        var: &str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(var) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| invalid(var, &v, expected)),
        }
    }

    pub(super) fn parse_in<T>(
        &self,
        var: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let expected = format!("a whole number from {} to {}", range.start(), range.end());
        let value = self.parse_opt(var, &expected)?.unwrap_or(default);
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(invalid(var, &value.to_string(), &expected))
        }
    }

    /// A duration given in milliseconds, within `range` (ms).
    pub(super) fn parse_millis(
        &self,
        var: &str,
        default: Duration,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let millis = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        Ok(Duration::from_millis(self.parse_in(var, millis, range)?))
    }

    /// A duration given in seconds, within `range` (s).
    pub(super) fn parse_secs(
        &self,
        var: &str,
        default: Duration,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.parse_in(
            var,
            default.as_secs(),
            range,
        )?))
    }

    pub(super) fn parse_bool(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(invalid(var, &v, "true or false")),
            },
        }
    }

    pub(super) fn parse_cost(&self, var: &str) -> Result<f64, ConfigError> {
        let expected = "a non-negative number";
        let cost: f64 = self.parse_opt(var, expected)?.unwrap_or(0.0);
        if cost.is_finite() && cost >= 0.0 {
            Ok(cost)
        } else {
            Err(invalid(var, &cost.to_string(), expected))
        }
    }
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
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://strata:s3cret@db:5432/strata"),
            "postgres://strata:***@db:5432/strata"
        );
        assert_eq!(redact_url("postgres://db/strata"), "postgres://db/strata");
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }

    #[test]
    fn secrets_come_from_the_variable_or_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.display().to_string();
        let missing = dir.path().join("absent").display().to_string();
        let lookup = |pairs: Vec<(&'static str, String)>| {
            move |var: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.clone())
            }
        };

        let value = lookup(vec![("API_TOKEN", "plain".into())]);
        assert_eq!(
            Vars(&value).secret("API_TOKEN").unwrap().as_deref(),
            Some("plain")
        );
        let from_file = lookup(vec![("API_TOKEN_FILE", path.clone())]);
        assert_eq!(
            Vars(&from_file).secret("API_TOKEN").unwrap().as_deref(),
            Some("from-file")
        );
        let both = lookup(vec![
            ("API_TOKEN", "plain".into()),
            ("API_TOKEN_FILE", path),
        ]);
        let err = Vars(&both).secret("API_TOKEN").unwrap_err().to_string();
        assert!(
            err.contains("API_TOKEN and API_TOKEN_FILE are both set"),
            "{err}"
        );
        let unreadable = lookup(vec![("API_TOKEN_FILE", missing)]);
        let err = Vars(&unreadable)
            .secret("API_TOKEN")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("API_TOKEN_FILE") && err.contains("a readable file"),
            "{err}"
        );
        let neither = lookup(vec![]);
        assert_eq!(Vars(&neither).secret("API_TOKEN").unwrap(), None);
    }
}
