//! When to try a failed delivery again.
//!
//! Exponential backoff from 5 s, doubling to a 1 h ceiling, eight attempts in
//! all (about two hours end to end), with a jitter derived from the action id
//! so retries of many actions spread out yet each schedule is reproducible.
//! A receiver's `Retry-After` is honoured when it asks for longer.

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use crate::ids::ActionId;

pub const MAX_ATTEMPTS: u32 = 8;
const BASE_SECONDS: i64 = 5;
const CEILING_SECONDS: i64 = 3_600;

/// The delay before attempt `failed + 1`, or `None` when `failed` was the last.
pub fn backoff(action: &ActionId, failed: u32) -> Option<TimeDelta> {
    if failed >= MAX_ATTEMPTS {
        return None;
    }
    let exponent = failed.saturating_sub(1).min(20);
    let base = (BASE_SECONDS << exponent).min(CEILING_SECONDS);
    // Up to +25% jitter, fixed per (action, attempt).
    let digest = Sha256::digest(format!("{action}:{failed}").as_bytes());
    let jitter = i64::from(u16::from_be_bytes([digest[0], digest[1]])) * base / 4 / i64::from(u16::MAX);
    Some(TimeDelta::seconds(base + jitter))
}

pub fn next_attempt(
    action: &ActionId,
    failed: u32,
    retry_after: Option<TimeDelta>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let delay = backoff(action, failed)?;
    let asked = retry_after.unwrap_or(TimeDelta::zero()).min(TimeDelta::seconds(CEILING_SECONDS));
    Some(now + delay.max(asked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_exponentially_to_a_ceiling_then_stops() {
        let id = ActionId::parse("act_1").unwrap();
        let delays: Vec<i64> = (1..MAX_ATTEMPTS).map(|n| backoff(&id, n).unwrap().num_seconds()).collect();
        for (n, pair) in delays.windows(2).enumerate() {
            assert!(pair[1] >= pair[0], "attempt {n}: {delays:?}");
        }
        assert!((5..=7).contains(&delays[0]), "{delays:?}");
        assert!(delays.iter().all(|&d| d <= CEILING_SECONDS * 5 / 4));
        assert_eq!(backoff(&id, MAX_ATTEMPTS), None);
    }

    #[test]
    fn honours_a_longer_retry_after() {
        let id = ActionId::parse("act_1").unwrap();
        let now = Utc::now();
        let at = next_attempt(&id, 1, Some(TimeDelta::seconds(120)), now).unwrap();
        assert_eq!(at - now, TimeDelta::seconds(120));
        let capped = next_attempt(&id, 1, Some(TimeDelta::days(2)), now).unwrap();
        assert_eq!(capped - now, TimeDelta::seconds(CEILING_SECONDS));
    }
}
