//! Score points as fixed-point decimals with two places, within one bound.
//!
//! Points are counted in hundredths in an `i64`, so sums never drift the way
//! floats do, and a later fractional feature (decay) needs no migration. On
//! the wire a whole number stays a JSON integer (`7`), anything else is a
//! decimal with at most two places (`7.25`).
//!
//! Every value, whether read from outside, booked by a rule or summed over
//! any number of entries, lies within ±`Points::MAX` (a trillion points):
//! arithmetic saturates at the bound instead of at `i64`'s, so a value the
//! engine computes is always one the store can read back.

use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Hundredths per point.
const SCALE: i64 = 100;
/// The bound, in hundredths: a trillion points.
const MAX_CENTS: i64 = 1_000_000_000_000 * SCALE;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Points(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("points must be a number with at most two decimal places, between -1e12 and 1e12")]
pub struct InvalidPoints;

impl Points {
    pub const ZERO: Points = Points(0);
    /// The largest score or points value: 1e12. Sums stop here.
    pub const MAX: Points = Points(MAX_CENTS);
    /// The smallest: -1e12.
    pub const MIN: Points = Points(-MAX_CENTS);

    /// Hundredths, brought within the bound.
    pub fn from_cents(cents: i64) -> Self {
        Self(cents.clamp(-MAX_CENTS, MAX_CENTS))
    }

    pub fn whole(points: i64) -> Self {
        Self::from_cents(points.saturating_mul(SCALE))
    }

    /// The exact sum, or `None` if it would leave the bound.
    pub fn checked_add(self, other: Points) -> Option<Points> {
        let sum = self.0.checked_add(other.0)?;
        (-MAX_CENTS..=MAX_CENTS).contains(&sum).then_some(Points(sum))
    }

    /// The exact difference, or `None` if it would leave the bound.
    pub fn checked_sub(self, other: Points) -> Option<Points> {
        self.checked_add(-other)
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// Reads the number's shortest decimal form, so `0.29` is 29 hundredths
    /// exactly and a third decimal place is refused rather than rounded away.
    pub fn from_json(number: &serde_json::Number) -> Result<Self, InvalidPoints> {
        let cents = match number.as_i64() {
            Some(whole) => whole.checked_mul(SCALE).ok_or(InvalidPoints)?,
            None => parse_decimal(&number.to_string()).ok_or(InvalidPoints)?,
        };
        if cents.abs() > MAX_CENTS {
            return Err(InvalidPoints);
        }
        Ok(Self(cents))
    }

    pub fn to_json(self) -> serde_json::Value {
        if self.0 % SCALE == 0 {
            serde_json::Value::from(self.0 / SCALE)
        } else {
            // Two decimal places always print exactly as the shortest f64 repr.
            serde_json::Value::from(self.0 as f64 / SCALE as f64)
        }
    }
}

/// `-12.5` → -1250; `None` for exponents, more than two places or overflow.
fn parse_decimal(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || frac.len() > 2 || !all_digits(whole) || !all_digits(frac) {
        return None;
    }
    let frac_cents = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse::<i64>().ok()?,
    };
    let cents = whole.parse::<i64>().ok()?.checked_mul(SCALE)?.checked_add(frac_cents)?;
    Some(if negative { -cents } else { cents })
}

impl Add for Points {
    type Output = Points;
    /// Saturates at the bound.
    fn add(self, other: Points) -> Points {
        Points::from_cents(self.0.saturating_add(other.0))
    }
}

impl AddAssign for Points {
    fn add_assign(&mut self, other: Points) {
        *self = *self + other;
    }
}

impl Sub for Points {
    type Output = Points;
    /// Saturates at the bound.
    fn sub(self, other: Points) -> Points {
        Points::from_cents(self.0.saturating_sub(other.0))
    }
}

impl Neg for Points {
    type Output = Points;
    /// Exact: the bound is symmetric.
    fn neg(self) -> Points {
        Points(-self.0)
    }
}

impl std::iter::Sum for Points {
    fn sum<I: Iterator<Item = Points>>(iter: I) -> Points {
        iter.fold(Points::ZERO, Add::add)
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, frac) = (abs / SCALE as u64, abs % SCALE as u64);
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else if frac % 10 == 0 {
            write!(f, "{sign}{whole}.{}", frac / 10)
        } else {
            write!(f, "{sign}{whole}.{frac:02}")
        }
    }
}

impl Serialize for Points {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        Points::from_json(&number).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(json: &str) -> Result<Points, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn whole_and_two_place_numbers_are_exact() {
        assert_eq!(parse("7").unwrap(), Points::whole(7));
        assert_eq!(parse("-20").unwrap(), Points::whole(-20));
        assert_eq!(parse("0.29").unwrap(), Points::from_cents(29));
        assert_eq!(parse("-1.5").unwrap(), Points::from_cents(-150));
    }

    #[test]
    fn more_places_and_non_numbers_are_refused() {
        for bad in ["0.125", "\"3\"", "null", "1e300", "true"] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn serialises_integers_as_integers() {
        assert_eq!(serde_json::to_string(&Points::whole(8)).unwrap(), "8");
        assert_eq!(serde_json::to_string(&Points::from_cents(725)).unwrap(), "7.25");
        assert_eq!(Points::from_cents(-1050).to_string(), "-10.5");
        assert_eq!(Points::from_cents(5).to_string(), "0.05");
    }

    #[test]
    fn the_bound_itself_reads_back_and_one_hundredth_more_does_not() {
        assert_eq!(parse("1000000000000").unwrap(), Points::MAX);
        assert_eq!(parse("-1000000000000").unwrap(), Points::MIN);
        assert!(parse("1000000000000.01").is_err());
        assert!(parse("-1000000000000.01").is_err());
    }

    proptest! {
        /// Whatever arithmetic made a value, it is one the parser reads back.
        #[test]
        fn sums_and_differences_stay_within_the_bound_and_read_back(
            a in any::<i64>(), b in any::<i64>(), c in any::<i64>(),
        ) {
            let (a, b, c) = (Points::from_cents(a), Points::from_cents(b), Points::from_cents(c));
            for value in [a + b, a - b, a + b + c, -(a - c), [a, b, c].into_iter().sum()] {
                prop_assert!(Points::MIN <= value && value <= Points::MAX);
                prop_assert_eq!(parse(&serde_json::to_string(&value).unwrap()).unwrap(), value);
            }
            match a.cents().checked_add(b.cents()) {
                Some(exact) if exact.abs() <= MAX_CENTS => prop_assert_eq!(a.checked_add(b), Some(Points(exact))),
                _ => prop_assert_eq!(a.checked_add(b), None),
            }
        }

        #[test]
        fn json_round_trips(cents in -MAX_CENTS..=MAX_CENTS) {
            let points = Points::from_cents(cents);
            let text = serde_json::to_string(&points).unwrap();
            prop_assert_eq!(parse(&text).unwrap(), points);
        }
    }
}
