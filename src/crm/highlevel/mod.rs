//! The HighLevel (GoHighLevel / LeadConnector API v2) connector.
//!
//! HighLevel calls scorehook two ways: marketplace-app webhooks (one typed,
//! signed event per request) and workflow "Webhook" actions (flat contact
//! keys, unsigned, authenticated by the tenant's secret in the URL query).
//! Actions go back through the v2 REST API with the location's token.
//!
//! Layout:
//! - `auth`: the authenticity schemes (Ed25519, legacy RSA, URL key) and the replay window;
//! - `events`: bodies into `Inbound` items, per the mapping in `docs/connectors/highlevel.md`;
//! - `resolve`: email-only events (`LCEmailStats`) into interactions, through the contacts API;
//! - `actions`: fired actions into API calls.
//!
//! Facts: `/work/shared/crm/highlevel.md`.

mod actions;
mod auth;
mod events;
mod resolve;

pub use actions::deliver;
pub use auth::verify;
pub use events::normalize;
pub use resolve::resolve;

use chrono::{DateTime, TimeDelta, Utc};

use super::limiter::Rate;
use super::outbound::{retry_after_seconds, Answer, ApiConfig};
use crate::tenant::Provider;

/// The API version every v2 call must name in a `Version` header.
pub const API_VERSION: &str = "2021-07-28";

/// HighLevel's published burst limit: 100 calls per 10 s per app and location.
const BURST: f64 = 100.0;
const INTERVAL_SECONDS: i64 = 10;

pub const API: ApiConfig = ApiConfig {
    provider: Provider::Highlevel,
    default_base: "https://services.leadconnectorhq.com",
    // API v2, and v1 on rest.gohighlevel.com.
    hosts: &["leadconnectorhq.com", "gohighlevel.com"],
    rate: Rate::per(BURST, INTERVAL_SECONDS as f64),
    slow_down,
};

/// HighLevel says "slow down" with a 429. It documents no `Retry-After`:
/// honour one if sent, else the interval it announces in
/// `X-RateLimit-Interval-Milliseconds`, else one burst interval (10 s).
fn slow_down(answer: &Answer, _now: DateTime<Utc>) -> Option<TimeDelta> {
    if answer.status != 429 {
        return None;
    }
    let interval = || {
        let ms = answer.header("x-ratelimit-interval-milliseconds")?.trim().parse::<u32>().ok()?;
        Some(TimeDelta::milliseconds(i64::from(ms.max(1000))))
    };
    Some(retry_after_seconds(answer).or_else(interval).unwrap_or(TimeDelta::seconds(INTERVAL_SECONDS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    fn answer(status: u16, headers: &[(&'static str, &'static str)]) -> Answer {
        Answer::fake(status, headers, Value::Null)
    }

    #[test]
    fn a_429_waits_for_retry_after_or_the_announced_interval_or_ten_seconds() {
        let now = Utc::now();
        assert_eq!(slow_down(&answer(429, &[("retry-after", "7")]), now), Some(TimeDelta::seconds(7)));
        assert_eq!(
            slow_down(&answer(429, &[("x-ratelimit-interval-milliseconds", "10000")]), now),
            Some(TimeDelta::seconds(10))
        );
        assert_eq!(slow_down(&answer(429, &[]), now), Some(TimeDelta::seconds(10)));
        assert_eq!(slow_down(&answer(503, &[("retry-after", "7")]), now), None, "only 429 means slow down");
        assert_eq!(slow_down(&answer(400, &[]), now), None);
    }

    #[test]
    fn the_rate_is_a_burst_of_100_refilled_over_10_seconds() {
        assert_eq!(API.rate, Rate::per(100.0, 10.0));
        assert_eq!(API.default_base, "https://services.leadconnectorhq.com");
    }
}
