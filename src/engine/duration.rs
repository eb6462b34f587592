//! Durations as admins write them: `30s`, `15m`, `12h`, `30d`, `8w`.
//!
//! Parsed once when a profile or trigger is saved; the engine only ever sees
//! a whole number of seconds.

use std::fmt;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

/// The longest accepted duration, 100 years: keeps every timestamp sum far from overflow.
const MAX_SECONDS: u64 = 100 * 365 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span {
    seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("duration {0:?} is invalid: write a positive whole number and a unit, as in 30s, 15m, 12h, 30d or 8w (at most 100 years)")]
pub struct InvalidSpan(pub String);

impl Span {
    pub fn from_seconds(seconds: u64) -> Result<Self, InvalidSpan> {
        if seconds == 0 || seconds > MAX_SECONDS {
            return Err(InvalidSpan(format!("{seconds}s")));
        }
        Ok(Self { seconds })
    }

    pub fn parse(text: &str) -> Result<Self, InvalidSpan> {
        let invalid = || InvalidSpan(text.to_owned());
        let unit = text.chars().next_back().ok_or_else(invalid)?;
        let number = &text[..text.len() - unit.len_utf8()];
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let count: u64 = number.parse().map_err(|_| invalid())?;
        let factor = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(invalid()),
        };
        let seconds = count.checked_mul(factor).ok_or_else(invalid)?;
        Self::from_seconds(seconds).map_err(|_| invalid())
    }

    pub fn seconds(self) -> u64 {
        self.seconds
    }

    pub fn as_delta(self) -> TimeDelta {
        // MAX_SECONDS fits in i64 by a wide margin.
        TimeDelta::seconds(self.seconds as i64)
    }
}

impl TryFrom<String> for Span {
    type Error = InvalidSpan;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Span> for String {
    fn from(span: Span) -> String {
        span.to_string()
    }
}

impl fmt::Display for Span {
    /// The largest unit that divides the duration exactly, so `parse(display(x)) == x`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        for (factor, unit) in [(604_800, 'w'), (86_400, 'd'), (3_600, 'h'), (60, 'm')] {
            if s.is_multiple_of(factor) {
                return write!(f, "{}{unit}", s / factor);
            }
        }
        write!(f, "{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(Span::parse("30s").unwrap().seconds(), 30);
        assert_eq!(Span::parse("15m").unwrap().seconds(), 900);
        assert_eq!(Span::parse("12h").unwrap().seconds(), 43_200);
        assert_eq!(Span::parse("30d").unwrap().seconds(), 2_592_000);
        assert_eq!(Span::parse("8w").unwrap().seconds(), 4_838_400);
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "s", "0s", "-1d", "1.5h", "1y", "10", "d30", "1 d", "99999999999999999999w", "5300w", "1é"] {
            assert!(Span::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(Span::parse("14d").unwrap().to_string(), "2w");
        assert_eq!(Span::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(Span::parse("120s").unwrap().to_string(), "2m");
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,12}") {
            let _ = Span::parse(&text);
        }

        #[test]
        fn display_round_trips(seconds in 1u64..MAX_SECONDS) {
            let span = Span::from_seconds(seconds).unwrap();
            prop_assert_eq!(Span::parse(&span.to_string()).unwrap(), span);
        }
    }
}
