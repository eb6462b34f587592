//! The `generic` provider's outbound side: each action is a signed JSON POST
//! to the tenant's `actions_url` (or the action's own URL for `webhook`,
//! with the action's own rendered body when it has one), with the action id
//! as `Idempotency-Key` and `webhook-id` so receivers can drop repeats.
//! The signature is Standard Webhooks' with the tenant's signing secret;
//! tenants stored before signing secrets get the deprecated `X-Scorehook-*`
//! one, made with the webhook secret, until they set one (and for a grace
//! after, beside the new one).

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::json;

use super::egress;
use super::inbound::Request;
use super::outbound::{posts_to_own_url, Reach};
use super::signature::SignatureError;
use super::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{standard_webhooks, DeliveryError};
use crate::metrics;
use crate::outbox::OutboxItem;
use crate::tenant::{Provider, TenantRecord};

/// The body the receiver gets; see "Contract details" in the design.
pub fn envelope(item: &OutboxItem) -> serde_json::Value {
    let action = &item.action;
    json!({
        "id": action.id,
        "type": action.kind,
        "tenant": item.tenant,
        "contact_id": action.contact_id,
        "deal_id": action.deal_id,
        "trigger": action.trigger,
        "params": action.params,
        "fired_at": action.fired_at,
    })
}

pub async fn deliver(reach: Reach<'_>, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    let now = reach.now;
    let own_url = item.action.kind == "webhook" || posts_to_own_url(item);
    let url = match own_url {
        true => item.action.params.get("url").and_then(|u| u.as_str()).map(str::to_owned),
        false => tenant.actions_url.clone(),
    };
    let Some(url) = url else {
        return Err(DeliveryError::Permanent {
            http_status: None,
            message: "the tenant has no actions_url: set one with PUT /v1/tenants/{tenant}, then replay".into(),
        });
    };
    let url = reach.egress.check(&url).map_err(|refused| DeliveryError::Permanent {
        http_status: None,
        message: format!("the receiver's URL is refused by the outbound policy: {refused}"),
    })?;
    // A `webhook` action with a body of its own sends just that, and a
    // `notify` with a URL `{"text": message}` (Slack or e-mail service
    // payloads); everything else sends the action envelope.
    let params = &item.action.params;
    let own_body = match item.action.kind.as_str() {
        "webhook" => params.get("body").cloned(),
        "notify" if own_url => Some(json!({"text": params.get("message")})),
        _ => None,
    };
    let payload = own_body.unwrap_or_else(|| envelope(item));
    let body = serde_json::to_vec(&payload).map_err(|e| DeliveryError::Permanent {
        http_status: None,
        message: format!("cannot encode the action: {e}"),
    })?;
    let mut request = reach
        .http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("idempotency-key", item.action.id.as_str());
    for (name, value) in signature_headers(tenant, item.action.id.as_str(), now, &body) {
        request = request.header(name, value);
    }
    let sent = Instant::now();
    let response = request.body(body).send().await.map_err(|e| match egress::refusal(&e) {
        Some(refused) => DeliveryError::Permanent {
            http_status: None,
            message: format!("the receiver's host is refused by the outbound policy: {refused}"),
        },
        // Without the URL: its query may hold a secret.
        None => {
            metrics::crm_answer(Provider::Generic.as_str(), None, sent.elapsed());
            DeliveryError::Retryable {
                http_status: None,
                message: format!("cannot reach the receiver: {}", e.without_url()),
                retry_after: None,
            }
        }
    })?;
    metrics::crm_answer(Provider::Generic.as_str(), Some(response.status().as_u16()), sent.elapsed());
    classify(response.status(), response.headers(), now)
}

/// The headers that sign `body` as message `id` for `tenant` at `now`: the
/// Standard Webhooks ones with every signing key in force (the signing
/// secret, and the one it replaced during its grace), and the deprecated
/// `X-Scorehook-*` ones while the tenant has no signing secret or is in the
/// grace after its first one.
pub fn signature_headers(
    tenant: &TenantRecord,
    id: &str,
    now: DateTime<Utc>,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let previous = tenant.previous_signing_in_grace(now);
    let keys: Vec<Vec<u8>> = [tenant.signing_secret.as_ref(), previous.and_then(|p| p.secret.as_ref())]
        .into_iter()
        .flatten()
        .filter_map(|secret| standard_webhooks::key_of(secret.expose()))
        .collect();
    let legacy = tenant.signing_secret.is_none() || previous.is_some_and(|p| p.secret.is_none());
    let mut headers = Vec::new();
    if !keys.is_empty() {
        headers.extend(standard_webhooks::sign(&keys, id, now, body));
    }
    if legacy {
        let (timestamp, signature) = signature::sign(tenant.webhook_secret.expose(), now, body);
        headers.extend([(TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature)]);
    }
    headers
}

/// Checks a `generic` webhook with the tenant's webhook secret: by its
/// `X-Scorehook-*` headers when it has any, else by the Standard Webhooks
/// ones (keyed with the secret's `whsec_` key, or its bytes).
pub fn verify(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), SignatureError> {
    let secret = tenant.webhook_secret.expose();
    let ours = [TIMESTAMP_HEADER, SIGNATURE_HEADER].map(|name| request.header(name));
    if ours.iter().any(Option::is_some) || request.header(standard_webhooks::SIGNATURE_HEADER).is_none() {
        return signature::verify(secret, ours[0], ours[1], request.body, request.now);
    }
    let [id, timestamp, signed] =
        [standard_webhooks::ID_HEADER, standard_webhooks::TIMESTAMP_HEADER, standard_webhooks::SIGNATURE_HEADER]
            .map(|name| request.header(name));
    let key = standard_webhooks::inbound_key(secret);
    standard_webhooks::verify(&key, id, timestamp, signed, request.body, request.now)
}

/// 2xx is done; 408, 409 (a concurrent change on the receiver's side), 429
/// and 5xx are worth retrying; any other status is final.
pub fn classify(status: StatusCode, headers: &HeaderMap, now: DateTime<Utc>) -> Result<u16, DeliveryError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(code);
    }
    let message = format!("the receiver answered {status}");
    let transient = [StatusCode::REQUEST_TIMEOUT, StatusCode::CONFLICT, StatusCode::TOO_MANY_REQUESTS];
    if status.is_server_error() || transient.contains(&status) {
        let retry_after = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| retry_after(v, now));
        return Err(DeliveryError::Retryable { http_status: Some(code), message, retry_after });
    }
    Err(DeliveryError::Permanent { http_status: Some(code), message })
}

/// `Retry-After` as delay-seconds or as an HTTP date.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<TimeDelta> {
    if let Ok(seconds) = value.trim().parse::<u32>() {
        return Some(TimeDelta::seconds(i64::from(seconds)));
    }
    let at = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    Some((at.with_timezone(&Utc) - now).max(TimeDelta::zero()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn classifies_statuses_by_what_to_do_next() {
        let now = Utc::now();
        let empty = HeaderMap::new();
        assert_eq!(classify(StatusCode::NO_CONTENT, &empty, now), Ok(204));
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &empty, now),
            Err(DeliveryError::Retryable { .. })
        ));
        assert!(matches!(classify(StatusCode::BAD_REQUEST, &empty, now), Err(DeliveryError::Permanent { .. })));
        assert!(matches!(classify(StatusCode::CONFLICT, &empty, now), Err(DeliveryError::Retryable { .. })));
        assert!(matches!(classify(StatusCode::NOT_FOUND, &empty, now), Err(DeliveryError::Permanent { .. })));
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        match classify(StatusCode::TOO_MANY_REQUESTS, &headers, now) {
            Err(DeliveryError::Retryable { retry_after, .. }) => assert_eq!(retry_after, Some(TimeDelta::seconds(30))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_retry_after_dates() {
        let now: DateTime<Utc> = "2015-10-21T07:27:00Z".parse().unwrap();
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(TimeDelta::seconds(60)));
        assert_eq!(retry_after("soon", now), None);
    }
}
