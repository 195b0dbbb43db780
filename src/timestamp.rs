//! Time as Strata keeps it, epoch milliseconds (UTC): the clock, and RFC 3339 to and
//! from it.
//!
//! The catalogue keeps time as epoch milliseconds; events and the API speak RFC 3339,
//! read and written by the `time` crate.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::format_description::{self, BorrowedFormatItem};

/// Current time as epoch milliseconds (UTC).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Parses `2026-11-21T10:00:00Z`, with optional fractional seconds and a `Z` or
/// `±HH:MM` offset, into epoch milliseconds. `None` when it is not such a timestamp.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// `2026-11-21T10:00:00Z` and `2026-11-21T10:00:00.120Z`: RFC 3339 in UTC, with
/// three digits of milliseconds when there are any.
static WHOLE_SECONDS: LazyLock<Vec<BorrowedFormatItem<'static>>> = LazyLock::new(|| {
    format_description::parse_borrowed::<2>("[year]-[month]-[day]T[hour]:[minute]:[second]Z")
        .expect("a valid format description")
});
static MILLISECONDS: LazyLock<Vec<BorrowedFormatItem<'static>>> = LazyLock::new(|| {
    format_description::parse_borrowed::<2>(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z",
    )
    .expect("a valid format description")
});

/// Formats epoch milliseconds as `2026-11-21T10:00:00.123Z` (UTC; milliseconds only
/// when there are any).
pub fn format_rfc3339_ms(epoch_ms: i64) -> String {
    let format = if epoch_ms.rem_euclid(1000) == 0 {
        &WHOLE_SECONDS
    } else {
        &MILLISECONDS
    };
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(format.as_slice()).ok())
        .unwrap_or_else(|| format!("{epoch_ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2026-11-21T10:00:00Z"),
            Some(1_795_255_200_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-21T11:00:00.25+01:00"),
            Some(1_795_255_200_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-21T09:30:00.123456-00:30"),
            Some(1_795_255_200_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for text in [
            "",
            "yesterday",
            "2026-11-21",
            "2026-11-21T10:00:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T10:00:00.Z",
            "2026-11-21T10:00:00+1:00",
            "2026-11-21T10:00:00Zjunk",
            "२०२६-11-21T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(text), None, "{text:?}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0, 1_795_255_200_000, 1_795_255_200_250, 951_782_400_000, -1] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms), "{ms}");
        }
        assert_eq!(format_rfc3339_ms(1_795_255_200_000), "2026-11-21T10:00:00Z");
        assert_eq!(
            format_rfc3339_ms(1_795_255_200_250),
            "2026-11-21T10:00:00.250Z"
        );
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
