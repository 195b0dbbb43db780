//! Values as JSON writers send them: JSON Schema calls `30.0` an integer, and so do many
//! clients, so fields of whole numbers take it.

use serde::Deserialize;

/// A non-negative whole number, also when written as `30.0` (JSON Schema calls that an
/// integer too).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    whole(&number).ok_or_else(|| not_whole(&number))
}

/// [`whole_number`], for an optional field (absent or `null`: `None`).
pub fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(|number| whole(&number).ok_or_else(|| not_whole(&number)))
        .transpose()
}

fn whole(number: &serde_json::Number) -> Option<u64> {
    number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

fn not_whole<E: serde::de::Error>(number: &serde_json::Number) -> E {
    E::custom(format!("expected a whole number, got {number}"))
}
