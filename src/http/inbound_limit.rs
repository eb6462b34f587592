//! The per-tenant inbound rate limit: a webhook URL is public, so one
//! tenant's flood (or someone else's, aimed at it) must not take the store's
//! capacity from the others. Each process keeps a token bucket per tenant;
//! past it the webhook answers 429 with `Retry-After`, which every CRM
//! treats as "try later" (HighLevel retries only that).

use std::time::{Duration, Instant};

use crate::crm::limiter::{Limiter, Rate};
use crate::ids::TenantId;
use crate::tenant::Provider;

pub const PER_SECOND_VAR: &str = "SCOREHOOK_INBOUND_PER_SECOND";

/// Requests per second per tenant and process, with ten seconds' worth as burst.
const DEFAULT_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
pub struct InboundLimit {
    limiter: Limiter,
    rate: Rate,
}

impl Default for InboundLimit {
    fn default() -> Self {
        Self::new(Rate { burst: DEFAULT_PER_SECOND * 10.0, per_second: DEFAULT_PER_SECOND })
    }
}

/// `SCOREHOOK_INBOUND_PER_SECOND` that is not a number from 1 to 100000.
#[derive(Debug, thiserror::Error)]
#[error("{PER_SECOND_VAR} must be a whole number from 1 to 100000, not {0:?}")]
pub struct InvalidInboundRate(pub String);

impl InboundLimit {
    pub fn new(rate: Rate) -> Self {
        Self { limiter: Limiter::default(), rate }
    }

    /// The default, or `SCOREHOOK_INBOUND_PER_SECOND`'s value (burst: ten seconds' worth).
    pub fn parse(value: Option<String>) -> Result<Self, InvalidInboundRate> {
        match value {
            None => Ok(Self::default()),
            Some(value) => {
                let per_second: u32 =
                    value.parse().ok().filter(|n| (1..=100_000).contains(n)).ok_or(InvalidInboundRate(value))?;
                let per_second = f64::from(per_second);
                Ok(Self::new(Rate { burst: per_second * 10.0, per_second }))
            }
        }
    }

    /// `Err(seconds to wait)` when the tenant is over its rate.
    pub fn admit(&self, provider: Provider, tenant: &TenantId) -> Result<(), u32> {
        self.limiter
            .take(provider, tenant, self.rate, Instant::now(), Duration::ZERO)
            .map(|_| ())
            .map_err(|wait| u32::try_from(wait.as_secs()).unwrap_or(u32::MAX).saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_burst_then_asks_to_retry_later() {
        let limit = InboundLimit::new(Rate { burst: 2.0, per_second: 0.5 });
        let tenant = TenantId::parse("t").unwrap();
        assert_eq!(limit.admit(Provider::Generic, &tenant), Ok(()));
        assert_eq!(limit.admit(Provider::Generic, &tenant), Ok(()));
        let wait = limit.admit(Provider::Generic, &tenant).unwrap_err();
        assert!((2..=3).contains(&wait), "about two seconds: {wait}");
        let other = TenantId::parse("u").unwrap();
        assert_eq!(limit.admit(Provider::Generic, &other), Ok(()), "another tenant has its own bucket");
    }
}
