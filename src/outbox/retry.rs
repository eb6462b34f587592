//! When to try a failed delivery again.
//!
//! Exponential backoff from the first delay (1 s by default), doubling to a
//! 1 h ceiling, 15 attempts in all by default (about three hours end to
//! end), with a jitter derived from the action id so retries of many
//! actions spread out yet each schedule is reproducible. A receiver's
//! `Retry-After` is honoured when it asks for longer. Operators tune the
//! first delay and the attempts with `SCOREHOOK_RETRY_FIRST_MS` and
//! `SCOREHOOK_MAX_ATTEMPTS`.

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use crate::ids::ActionId;

pub const FIRST_DELAY_VAR: &str = "SCOREHOOK_RETRY_FIRST_MS";
pub const MAX_ATTEMPTS_VAR: &str = "SCOREHOOK_MAX_ATTEMPTS";
const CEILING_MILLIS: i64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before the first retry, 100 ms to 1 h.
    pub first_delay_ms: i64,
    /// Attempts in all before an action is `dead`, 1-50.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { first_delay_ms: 1_000, max_attempts: 15 }
    }
}

/// An environment variable that does not hold a valid policy value.
#[derive(Debug, thiserror::Error)]
#[error("{var} must be {rule}, not {value:?}")]
pub struct InvalidPolicy {
    pub var: &'static str,
    pub rule: &'static str,
    pub value: String,
}

impl RetryPolicy {
    /// The default, with the variables that are set (`get` answers each) applied.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, InvalidPolicy> {
        let mut policy = Self::default();
        if let Some(value) = get(FIRST_DELAY_VAR) {
            let rule = "a whole number of milliseconds from 100 to 3600000";
            policy.first_delay_ms = value
                .parse()
                .ok()
                .filter(|ms| (100..=CEILING_MILLIS).contains(ms))
                .ok_or(InvalidPolicy { var: FIRST_DELAY_VAR, rule, value })?;
        }
        if let Some(value) = get(MAX_ATTEMPTS_VAR) {
            let rule = "a whole number from 1 to 50";
            policy.max_attempts = value.parse().ok().filter(|n| (1..=50).contains(n)).ok_or(InvalidPolicy {
                var: MAX_ATTEMPTS_VAR,
                rule,
                value,
            })?;
        }
        Ok(policy)
    }

    /// The delay before attempt `failed + 1`, or `None` when `failed` was the last.
    pub fn backoff(&self, action: &ActionId, failed: u32) -> Option<TimeDelta> {
        if failed >= self.max_attempts {
            return None;
        }
        let exponent = failed.saturating_sub(1).min(30);
        let base = self.first_delay_ms.saturating_mul(1 << exponent).min(CEILING_MILLIS);
        // Up to +25% jitter, fixed per (action, attempt).
        let digest = Sha256::digest(format!("{action}:{failed}").as_bytes());
        let jitter = i64::from(u16::from_be_bytes([digest[0], digest[1]])) * base / 4 / i64::from(u16::MAX);
        Some(TimeDelta::milliseconds(base + jitter))
    }

    pub fn next_attempt(
        &self,
        action: &ActionId,
        failed: u32,
        retry_after: Option<TimeDelta>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let delay = self.backoff(action, failed)?;
        let asked = retry_after.unwrap_or(TimeDelta::zero()).min(TimeDelta::milliseconds(CEILING_MILLIS));
        Some(now + delay.max(asked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_from_about_a_second_to_a_ceiling_then_stops() {
        let policy = RetryPolicy::default();
        let id = ActionId::parse("act_1").unwrap();
        for failed in 1..policy.max_attempts {
            let base = (1_000i64 << (failed - 1)).min(CEILING_MILLIS);
            let delay = policy.backoff(&id, failed).unwrap().num_milliseconds();
            assert!((base..=base * 5 / 4).contains(&delay), "after attempt {failed}: {delay} ms, base {base} ms");
        }
        assert_eq!(policy.backoff(&id, policy.max_attempts), None);
    }

    #[test]
    fn honours_a_longer_retry_after() {
        let policy = RetryPolicy::default();
        let id = ActionId::parse("act_1").unwrap();
        let now = Utc::now();
        let at = policy.next_attempt(&id, 1, Some(TimeDelta::seconds(120)), now).unwrap();
        assert_eq!(at - now, TimeDelta::seconds(120));
        let capped = policy.next_attempt(&id, 1, Some(TimeDelta::days(2)), now).unwrap();
        assert_eq!(capped - now, TimeDelta::milliseconds(CEILING_MILLIS));
    }

    #[test]
    fn reads_its_variables_and_refuses_bad_values() {
        let vars = |first: &'static str, max: &'static str| {
            move |var: &str| match var {
                FIRST_DELAY_VAR => Some(first.to_owned()),
                MAX_ATTEMPTS_VAR => Some(max.to_owned()),
                _ => None,
            }
        };
        let policy = RetryPolicy::from_vars(vars("250", "3")).unwrap();
        assert_eq!(policy, RetryPolicy { first_delay_ms: 250, max_attempts: 3 });
        let id = ActionId::parse("act_1").unwrap();
        assert_eq!(policy.backoff(&id, 3), None, "three attempts in all");
        for (first, max) in [("10", "3"), ("1s", "3"), ("1000", "0"), ("1000", "many")] {
            let err = RetryPolicy::from_vars(vars(first, max)).unwrap_err();
            assert!(err.to_string().contains("must be"), "{err}");
        }
    }
}
