//! The ActiveCampaign connector: webhooks in, API v3 calls out.
//!
//! ActiveCampaign signs nothing, so the tenant's secret travels in the
//! webhook URL's `key` query parameter (`verify`). Its bodies are
//! form-urlencoded with bracketed keys, one event per request, and every
//! event names its contact, so nothing ever needs resolving (`inbound`).
//! Actions call the per-account API at `crm.base_url` with the `Api-Token`
//! header (`outbound`). Facts: `shared/crm/activecampaign.md`.

mod inbound;
mod outbound;

pub use inbound::verify;
pub use outbound::deliver;

use chrono::{DateTime, TimeDelta, Utc};

use super::inbound::{Inbound, InboundError, Request, Unresolved};
use super::limiter::Rate;
use super::outbound::{permanent, retry_after_seconds, Answer, ApiConfig, Reach};
use super::DeliveryError;
use crate::engine::interaction::Interaction;
use crate::tenant::{Provider, TenantRecord};

/// ActiveCampaign's published limit is 5 requests per second per account;
/// the base URL is per account, so there is no default.
pub const API: ApiConfig = ApiConfig {
    provider: Provider::Activecampaign,
    default_base: "",
    // Each account's API: `https://<account>.api-us1.com`; its app: `<account>.activehosted.com`.
    hosts: &["api-us1.com", "activehosted.com"],
    rate: Rate::per(5.0, 1.0),
    slow_down,
};

/// How long to wait after a 429 that names no `Retry-After`.
const DEFAULT_SLOW_DOWN: TimeDelta = TimeDelta::seconds(1);

/// ActiveCampaign says "slow down" with 429 and (usually) `Retry-After` in seconds.
fn slow_down(answer: &Answer, _now: DateTime<Utc>) -> Option<TimeDelta> {
    (answer.status == 429).then(|| retry_after_seconds(answer).unwrap_or(DEFAULT_SLOW_DOWN))
}

/// One ActiveCampaign event (one request) into one inbound item.
pub fn normalize(_tenant: &TenantRecord, request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
    inbound::normalize(request).map(|item| vec![item])
}

/// Every ActiveCampaign event carries its contact id, so `normalize` never
/// produces an id-only event; one found in the outbox was not made here.
pub async fn resolve(
    _reach: Reach<'_>,
    _tenant: &TenantRecord,
    _event: &Unresolved,
) -> Result<Vec<Interaction>, DeliveryError> {
    Err(permanent("no ActiveCampaign event needs resolving: every event names its contact"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    fn answer(status: u16, retry_after: Option<&'static str>) -> Answer {
        let headers: Vec<_> = retry_after.map(|v| ("retry-after", v)).into_iter().collect();
        Answer::fake(status, &headers, Value::Null)
    }

    #[test]
    fn a_429_slows_down_for_its_retry_after_or_one_second() {
        let now = Utc::now();
        assert_eq!(slow_down(&answer(429, Some("7")), now), Some(TimeDelta::seconds(7)));
        assert_eq!(slow_down(&answer(429, None), now), Some(TimeDelta::seconds(1)));
        assert_eq!(slow_down(&answer(429, Some("soon")), now), Some(TimeDelta::seconds(1)));
        assert_eq!(slow_down(&answer(503, Some("7")), now), None, "a 503 is an ordinary retryable answer");
        assert_eq!(slow_down(&answer(200, None), now), None);
    }

    #[test]
    fn the_rate_is_five_per_second() {
        assert_eq!(API.rate, Rate::per(5.0, 1.0));
    }
}
