//! Serde helpers for floats that may be non-finite.
//!
//! JSON has no NaN or Infinity. A loss that diverges must still be reported truthfully, so
//! finite values are written as numbers and non-finite ones as the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"`. Reading accepts both forms (and `null` as NaN for
//! `Option`-less fields written by serializers that map NaN to `null`).

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use std::fmt;

/// Serialize one `f64`: a number when finite, else `"NaN"`, `"Infinity"` or `"-Infinity"`.
pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if *value > 0.0 {
        serializer.serialize_str("Infinity")
    } else {
        serializer.serialize_str("-Infinity")
    }
}

/// Deserialize one `f64` from a number, `"NaN"`, `"Infinity"`, `"-Infinity"` or `null` (NaN).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_any(FloatVisitor)
}

/// Parse the non-finite spellings accepted on the wire; `None` for anything else.
pub fn parse_non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

struct FloatVisitor;

impl<'de> Visitor<'de> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a number, "NaN", "Infinity" or "-Infinity""#)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse_non_finite(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// The same encoding for `Option<f64>`: absent or `null` is `None`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize `Some(x)` as [`super::serialize`] does, `None` as `null`.
    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserialize `null` as `None`, anything [`super::deserialize`] takes as `Some`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super")] f64);
        let value: Option<Wrapped> = Option::deserialize(deserializer)?;
        Ok(value.map(|Wrapped(v)| v))
    }
}
