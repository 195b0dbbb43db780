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
