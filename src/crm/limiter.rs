//! Per-tenant token buckets for calls into a CRM's API.
//!
//! Each provider publishes a limit (HubSpot 100 per 10 s, Bitrix24 2 per
//! second with a burst of 50, …); a tenant's calls draw from one bucket in
//! this process. A call that would have to wait briefly waits; one that
//! would wait longer is handed back to the outbox as retryable after that
//! wait. When the CRM itself says "slow down", the bucket is emptied until
//! the time it names, so the next calls do not hammer it either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids::TenantId;
use crate::tenant::Provider;

/// A provider's published limit: `burst` calls at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

impl Rate {
    /// `calls` per `seconds`, all of them usable at once.
    pub const fn per(calls: f64, seconds: f64) -> Self {
        Self { burst: calls, per_second: calls / seconds }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every tenant this process calls for.
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<(Provider, TenantId), Bucket>>,
}

impl Limiter {
    /// Takes one token; `Ok(wait)` when it is (or will be, after `wait`)
    /// available within `patience`, else `Err(wait)` and nothing is taken.
    pub fn take(
        &self,
        provider: Provider,
        tenant: &TenantId,
        rate: Rate,
        now: Instant,
        patience: Duration,
    ) -> Result<Duration, Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry((provider, tenant.clone())).or_insert(Bucket { tokens: rate.burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        let tokens = (bucket.tokens + elapsed * rate.per_second).min(rate.burst);
        let after = tokens - 1.0;
        let wait = if after >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-after / rate.per_second) };
        bucket.at = now.max(bucket.at);
        if wait > patience {
            bucket.tokens = tokens;
            return Err(wait);
        }
        // Negative tokens queue the caller behind those already waiting.
        bucket.tokens = after;
        Ok(wait)
    }

    /// The CRM asked to slow down for `pause`: no token until it has passed.
    pub fn pause(&self, provider: Provider, tenant: &TenantId, rate: Rate, now: Instant, pause: Duration) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Refilling from `-pause × rate`: empty again exactly when the pause ends.
        let tokens = -(pause.as_secs_f64() * rate.per_second);
        buckets.insert((provider, tenant.clone()), Bucket { tokens, at: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("t").unwrap()
    }

    #[test]
    fn allows_the_burst_then_spaces_calls_at_the_rate() {
        let limiter = Limiter::default();
        let rate = Rate { burst: 3.0, per_second: 2.0 };
        let t0 = Instant::now();
        let patience = Duration::from_secs(1);
        for _ in 0..3 {
            assert_eq!(limiter.take(Provider::Bitrix24, &tenant(), rate, t0, patience), Ok(Duration::ZERO));
        }
        assert_eq!(limiter.take(Provider::Bitrix24, &tenant(), rate, t0, patience), Ok(Duration::from_millis(500)));
        assert_eq!(limiter.take(Provider::Bitrix24, &tenant(), rate, t0, patience), Ok(Duration::from_secs(1)));
        // Beyond patience: refused, and nothing taken.
        assert_eq!(limiter.take(Provider::Bitrix24, &tenant(), rate, t0, patience), Err(Duration::from_millis(1500)));
        let later = t0 + Duration::from_secs(1);
        assert_eq!(limiter.take(Provider::Bitrix24, &tenant(), rate, later, patience), Ok(Duration::from_millis(500)));
        // Other tenants and providers have buckets of their own.
        let other = TenantId::parse("u").unwrap();
        assert_eq!(limiter.take(Provider::Bitrix24, &other, rate, t0, patience), Ok(Duration::ZERO));
        assert_eq!(limiter.take(Provider::Hubspot, &tenant(), rate, t0, patience), Ok(Duration::ZERO));
    }

    #[test]
    fn a_pause_holds_every_call_until_it_ends() {
        let limiter = Limiter::default();
        let rate = Rate::per(100.0, 10.0);
        let t0 = Instant::now();
        limiter.pause(Provider::Hubspot, &tenant(), rate, t0, Duration::from_secs(10));
        let refused = limiter.take(Provider::Hubspot, &tenant(), rate, t0, Duration::from_secs(1));
        assert!(refused.is_err_and(|wait| wait >= Duration::from_secs(10)), "{refused:?}");
        let after = t0 + Duration::from_secs(11);
        assert!(limiter.take(Provider::Hubspot, &tenant(), rate, after, Duration::ZERO).is_ok());
    }
}
