//! RFC 3339 timestamps in stored and answered JSON, written and read
//! without `core::fmt`.
//!
//! A contact's state carries three instants per pending entry, and every
//! webhook decodes and re-encodes that state: with chrono's own serde
//! (formatting through `Display`, parsing through its general parser) the
//! instants were most of the state's encoding cost under load. The text is
//! exactly chrono's (`2026-11-22T10:00:00Z`, with 3, 6 or 9 fraction digits
//! when there are any), so values written either way read back the same;
//! anything outside the plain UTC shape (an offset, a year past 9999, a
//! leap second) goes through chrono as before.
//!
//! Use as `#[serde(with = "crate::timestamp")]`, or `crate::timestamp::option`
//! for an `Option`.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serialize, Serializer};

pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 30];
    match write(at, &mut text).and_then(|len| std::str::from_utf8(&text[..len]).ok()) {
        Some(text) => serializer.serialize_str(text),
        None => at.serialize(serializer),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(InstantVisitor)
}

/// The same for `Option<DateTime<Utc>>` (`null` for `None`).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        deserializer.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            super::deserialize(deserializer).map(Some)
        }
    }
}

struct InstantVisitor;

impl Visitor<'_> for InstantVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        match read(text.as_bytes()) {
            Some(at) => Ok(at),
            // What chrono's own `Deserialize` does.
            None => text.parse::<DateTime<FixedOffset>>().map(|at| at.with_timezone(&Utc)).map_err(E::custom),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z` into `out`, the length
/// written; `None` for what only chrono writes (years outside 0–9999, leap
/// seconds).
fn write(at: &DateTime<Utc>, out: &mut [u8; 30]) -> Option<usize> {
    let (year, nanos) = (at.year(), at.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    out[..20].copy_from_slice(b"0000-00-00T00:00:00Z");
    for (start, value, count) in [
        (0, year as u32, 4),
        (5, at.month(), 2),
        (8, at.day(), 2),
        (11, at.hour(), 2),
        (14, at.minute(), 2),
        (17, at.second(), 2),
    ] {
        put_digits(&mut out[start..start + count], value);
    }
    let (value, count) = match nanos {
        0 => return Some(20),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    out[19] = b'.';
    put_digits(&mut out[20..20 + count], value);
    out[20 + count] = b'Z';
    Some(21 + count)
}

/// `value`'s last `digits.len()` decimal digits, zero-padded.
fn put_digits(digits: &mut [u8], mut value: u32) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The shape `write` writes (any fraction of 1 to 9 digits), or `None`.
fn read(text: &[u8]) -> Option<DateTime<Utc>> {
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let bytes = text.get(range)?;
        bytes.iter().try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if text.len() < 20 || separators.iter().any(|&(at, sep)| text[at] != sep) || text.last() != Some(&b'Z') {
        return None;
    }
    let nanos = match &text[19..text.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            number(20..text.len() - 1)? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    // Refuses a leap second (`:60`): chrono's to read.
    let time = date.and_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
    Some(time.and_utc())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Both {
        #[serde(with = "crate::timestamp")]
        at: DateTime<Utc>,
        #[serde(with = "crate::timestamp::option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chrono {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    fn instant(seconds: i64, nanos: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, nanos).single().unwrap()
    }

    /// Instants with no fraction, or 3, 6 or 9 fraction digits.
    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        let seconds = -62_135_596_800i64..253_402_300_800; // years 0001 to 9999
        let nanos = prop_oneof![
            Just(0u32),
            (0u32..1000).prop_map(|n| n * 1_000_000),
            (0u32..1_000_000).prop_map(|n| n * 1000),
            0u32..1_000_000_000
        ];
        (seconds, nanos).prop_map(|(s, n)| instant(s, n))
    }

    proptest! {
        #[test]
        fn writes_exactly_what_chrono_writes(at in any_instant(), maybe in proptest::option::of(any_instant())) {
            let ours = serde_json::to_string(&Both { at, maybe }).unwrap();
            let chrono = serde_json::to_string(&Chrono { at, maybe }).unwrap();
            prop_assert_eq!(&ours, &chrono);
            prop_assert_eq!(serde_json::from_str::<Both>(&ours).unwrap(), Both { at, maybe });
        }

        #[test]
        fn reads_whatever_chrono_reads(at in any_instant(), offset_minutes in -900i32..900) {
            let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let text = serde_json::to_string(&at.with_timezone(&offset)).unwrap();
            let read: DateTime<Utc> = deserialize(&mut serde_json::Deserializer::from_str(&text)).unwrap();
            prop_assert_eq!(read, at);
        }

        #[test]
        fn reads_and_refuses_as_chrono_does(
            text in "[0-9TZ:.+-]{0,32}|[0-9]{4}-[0-2][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,10})?Z?"
        ) {
            let json = serde_json::to_string(&text).unwrap();
            let ours = deserialize(&mut serde_json::Deserializer::from_str(&json)).ok();
            let chrono = serde_json::from_str::<DateTime<Utc>>(&json).ok();
            prop_assert_eq!(ours, chrono);
        }
    }

    #[test]
    fn reads_any_fraction_length_and_the_edges() {
        let read = |text: &str| read(text.as_bytes());
        assert_eq!(read("2026-11-22T10:00:00Z"), Some(instant(1_795_341_600, 0)));
        assert_eq!(read("2026-11-22T10:00:00.5Z"), Some(instant(1_795_341_600, 500_000_000)));
        assert_eq!(read("2026-11-22T10:00:00.12Z"), Some(instant(1_795_341_600, 120_000_000)));
        assert_eq!(read("0000-01-01T00:00:00Z").map(|t| t.year()), Some(0));
        for refused in [
            "2026-11-22T10:00:00",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00.1234567890Z",
            "2026-02-30T10:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:60Z",
            "2026-11-22 10:00:00Z",
            "+2026-11-22T10:00:00Z",
        ] {
            assert_eq!(read(refused), None, "{refused}");
        }
    }

    #[test]
    fn null_and_wrong_types_are_read_as_chrono_reads_them() {
        let none: Both = serde_json::from_str(r#"{"at": "2026-11-22T10:00:00Z", "maybe": null}"#).unwrap();
        assert_eq!(none.maybe, None);
        assert!(serde_json::from_str::<Both>(r#"{"at": 5, "maybe": null}"#).is_err());
        assert!(serde_json::from_str::<Both>(r#"{"at": "2026-11-22T10:00:00Z", "maybe": "soon"}"#).is_err());
    }
}
