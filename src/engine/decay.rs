//! Decay: points that lose a fixed percentage every period.
//!
//! An entry booked at `at` with `{"percent": 25, "every": "30d"}` counts
//! `points × 0.75^k` after `k` whole periods, rounded half-even to the
//! hundredth once per entry. The product is computed exactly with big
//! integers, so the value at step `k` never depends on how often it was
//! computed before: no float, no drift.

use chrono::{DateTime, Utc};
use num_bigint::BigUint;
use serde::{Deserialize, Serialize};

use super::duration::Span;
use super::error::ConfigError;
use super::points::Points;

/// The shortest decay period: the sweeper's granularity is a second locally
/// and a minute on Lambda, so shorter steps could not be applied on time.
pub const MIN_PERIOD_SECONDS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decay {
    /// Whole percent lost each period, 1–100.
    pub percent: u8,
    pub every: Span,
}

impl Decay {
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if !(1..=100).contains(&self.percent) {
            return Err(ConfigError::new(format!("{path}.percent"), "a whole percent from 1 to 100"));
        }
        if self.every.seconds() < MIN_PERIOD_SECONDS {
            return Err(ConfigError::new(format!("{path}.every"), "at least 1m"));
        }
        Ok(())
    }

    /// Whole periods elapsed between `from` and `now`.
    pub fn steps(&self, from: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
        let elapsed = (now - from).num_seconds();
        u64::try_from(elapsed).map_or(0, |s| s / self.every.seconds())
    }

    /// The instant step `steps + 1` happens.
    pub fn step_at(&self, from: DateTime<Utc>, steps: u64) -> Option<DateTime<Utc>> {
        let seconds = i64::try_from(steps.checked_add(1)?.checked_mul(self.every.seconds())?).ok()?;
        from.checked_add_signed(chrono::TimeDelta::try_seconds(seconds)?)
    }

    /// `points × (1 − percent/100)^steps`, rounded half-even to the hundredth.
    pub fn apply(&self, points: Points, steps: u64) -> Points {
        if steps == 0 || points == Points::ZERO {
            return points;
        }
        if self.percent >= 100 {
            return Points::ZERO;
        }
        let keep = 100 - u32::from(self.percent);
        let cents = points.cents().unsigned_abs();
        if steps > zero_after(cents, keep) {
            return Points::ZERO;
        }
        // zero_after bounds steps to a few thousand, so the powers stay small.
        let k = u32::try_from(steps).unwrap_or(u32::MAX);
        let numerator = BigUint::from(cents) * BigUint::from(keep).pow(k);
        let denominator = BigUint::from(100u32).pow(k);
        let quotient = &numerator / &denominator;
        let twice_remainder = (numerator % &denominator) << 1u32;
        let round_up = match twice_remainder.cmp(&denominator) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Equal => quotient.bit(0),
        };
        let magnitude = u64::try_from(&quotient).unwrap_or(u64::MAX) + u64::from(round_up);
        // The magnitude never grows, so it fits back in the i64 it came from.
        let magnitude = i64::try_from(magnitude).unwrap_or(i64::MAX);
        Points::from_cents(if points.cents() < 0 { -magnitude } else { magnitude })
    }
}

/// A step count after which `cents × (keep/100)^k` is certainly below half a
/// hundredth (so rounds to zero): `ln(2·cents) / ln(100/keep)`, plus margin
/// for the float estimate. Only ever used to skip work that would yield zero.
fn zero_after(cents: u64, keep: u32) -> u64 {
    let bound = (2.0 * cents as f64).ln() / (100.0 / f64::from(keep)).ln();
    bound.ceil() as u64 + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decay(percent: u8) -> Decay {
        Decay { percent, every: Span::parse("30d").unwrap() }
    }

    #[test]
    fn the_contract_example_loses_a_quarter_each_period() {
        let d = decay(25);
        assert_eq!(d.apply(Points::whole(10), 0), Points::whole(10));
        assert_eq!(d.apply(Points::whole(10), 1), Points::from_cents(750));
        assert_eq!(d.apply(Points::whole(10), 2), Points::from_cents(562), "5.625 rounds half-even to 5.62");
    }

    #[test]
    fn ties_round_to_even() {
        let d = decay(50);
        // 0.05 × 0.5 = 0.025 → 0.02; 0.07 × 0.5 = 0.035 → 0.04; negatives mirror.
        assert_eq!(d.apply(Points::from_cents(5), 1), Points::from_cents(2));
        assert_eq!(d.apply(Points::from_cents(7), 1), Points::from_cents(4));
        assert_eq!(d.apply(Points::from_cents(-5), 1), Points::from_cents(-2));
        assert_eq!(d.apply(Points::from_cents(-7), 1), Points::from_cents(-4));
    }

    #[test]
    fn a_hundred_percent_is_gone_after_one_period() {
        assert_eq!(decay(100).apply(Points::whole(7), 1), Points::ZERO);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Decay { percent: 0, every: Span::parse("1d").unwrap() };
        assert_eq!(bad.validate("rules[0].decay").unwrap_err().path, "rules[0].decay.percent");
        let fast = Decay { percent: 10, every: Span::parse("30s").unwrap() };
        assert_eq!(fast.validate("decay").unwrap_err().path, "decay.every");
    }

    #[test]
    fn steps_count_whole_periods() {
        let d = Decay { percent: 10, every: Span::parse("1h").unwrap() };
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(d.steps(t0, t0 + chrono::TimeDelta::minutes(59)), 0);
        assert_eq!(d.steps(t0, t0 + chrono::TimeDelta::minutes(60)), 1);
        assert_eq!(d.steps(t0, t0 - chrono::TimeDelta::minutes(60)), 0, "a clock before the booking counts no step");
        assert_eq!(d.step_at(t0, 1), Some(t0 + chrono::TimeDelta::hours(2)));
    }

    proptest! {
        /// Exact: the big-integer result equals a direct i128 computation where that fits.
        #[test]
        fn matches_exact_rational_rounding(cents in -1_000_000i64..1_000_000, percent in 1u8..100, steps in 0u64..6) {
            let keep = i128::from(100 - percent);
            let numerator = i128::from(cents) * keep.pow(steps as u32);
            let denominator = 100i128.pow(steps as u32);
            let (q, r) = (numerator.abs() / denominator, numerator.abs() % denominator);
            let up = 2 * r > denominator || (2 * r == denominator && q % 2 == 1);
            let expected = (q + i128::from(up)) * numerator.signum();
            prop_assert_eq!(decay(percent).apply(Points::from_cents(cents), steps).cents() as i128, expected);
        }

        /// Decay only ever shrinks a value towards zero, and reaches zero.
        #[test]
        fn shrinks_monotonically_to_zero(cents in 1i64..1_000_000_000_000, percent in 1u8..=100, steps in 0u64..200) {
            let d = decay(percent);
            let now = d.apply(Points::from_cents(cents), steps);
            let next = d.apply(Points::from_cents(cents), steps + 1);
            prop_assert!(next <= now && next >= Points::ZERO);
            prop_assert_eq!(d.apply(Points::from_cents(cents), zero_after(cents as u64, 100 - u32::from(percent).min(99))), Points::ZERO);
        }
    }
}
