//! The HubSpot connector: signed JSON batches of events in, CRM v3 REST
//! calls out (facts in `shared/crm/hubspot.md`, set-up in
//! `docs/connectors/hubspot.md`).
//!
//! Layout:
//! - `signature`: the v3 request signature (`X-HubSpot-Signature-v3`).
//! - `events`: a batch of HubSpot events into `Inbound` items (pure).
//! - `resolve`: deal and conversation events, which carry only ids, read
//!   their contact through the API.
//! - `actions`: fired actions into API calls, and HubSpot's "slow down" answers.
//!
//! Settings (the tenant's `crm` map): `client_secret` and `access_token`
//! are credentials; `portal_id`, `tags_property`, `owner_id` and `base_url`
//! are not.

mod actions;
mod events;
mod resolve;
mod signature;

pub use actions::deliver;
pub use resolve::resolve;

use super::inbound::{Inbound, InboundError, Request};
use super::limiter::Rate;
use super::outbound::ApiConfig;
use crate::tenant::{Provider, TenantRecord};

pub use signature::sign;

/// The app's client secret: the key of the webhook signature.
pub const CLIENT_SECRET: &str = "client_secret";
/// The private app's access token (`pat-…`): the Bearer of every API call.
pub const ACCESS_TOKEN: &str = "access_token";
/// Optional: the one HubSpot account (portal) whose events are scored.
pub const PORTAL_ID: &str = "portal_id";
/// Optional: the multi-checkbox contact property that holds tags.
pub const TAGS_PROPERTY: &str = "tags_property";
/// Optional: the HubSpot user who owns created tasks.
pub const OWNER_ID: &str = "owner_id";

/// Private apps on Free and Starter may make 100 calls per 10 s (higher
/// tiers 190); the lowest is the one every portal can take.
pub const API: ApiConfig = ApiConfig {
    provider: Provider::Hubspot,
    default_base: "https://api.hubapi.com",
    // EU accounts answer on api-eu1.hubapi.com; api.hubspot.com also serves the API.
    hosts: &["hubapi.com", "hubspot.com"],
    rate: Rate::per(100.0, 10.0),
    slow_down: actions::slow_down,
};

/// Checks the v3 signature with the tenant's `client_secret`.
pub fn verify(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), InboundError> {
    let secret = tenant
        .crm
        .get(CLIENT_SECRET)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| InboundError::Refused("the tenant has no HubSpot client_secret configured".into()))?;
    signature::verify(secret, request).map_err(|e| InboundError::Refused(e.to_string()))
}

/// One `Inbound` per event of the batch.
pub fn normalize(tenant: &TenantRecord, request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
    events::normalize(tenant, request.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use chrono::Utc;
    use serde_json::json;

    fn tenant(crm: serde_json::Value) -> TenantRecord {
        TenantRecord {
            id: crate::ids::TenantId::parse("t").unwrap(),
            provider: Provider::Hubspot,
            webhook_secret: crate::tenant::Secret::new("not-the-client-secret"),
            actions_url: None,
            crm: crm.as_object().cloned().unwrap_or_default(),
            token_hash: String::new(),
            previous_token: None,
            token_rotated_at: None,
            signing_secret: None,
            previous_signing: None,
            revision: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_tenant_without_a_client_secret_refuses_even_a_request_signed_with_its_webhook_secret() {
        let url = "https://h.test/v1/webhooks/hubspot/t";
        let now = Utc::now();
        let timestamp = now.timestamp_millis().to_string();
        let mut headers = HeaderMap::new();
        let signature = sign("not-the-client-secret", "POST", url, b"[]", &timestamp);
        headers.insert(signature::SIGNATURE_HEADER, signature.parse().unwrap());
        headers.insert(signature::TIMESTAMP_HEADER, timestamp.parse().unwrap());
        let request = Request { method: "POST", url, headers: &headers, body: b"[]", now };
        assert!(matches!(verify(&tenant(json!({})), &request), Err(InboundError::Refused(_))));
        let configured = tenant(json!({"client_secret": "not-the-client-secret"}));
        assert_eq!(verify(&configured, &request), Ok(()));
    }
}
