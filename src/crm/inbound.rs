//! What every provider's inbound side works with and produces.
//!
//! A connector gets the request as received (method, the public URL the CRM
//! called, headers, raw body) and turns it, after checking its
//! authenticity, into a list of `Inbound` items: interactions ready to
//! score, events that carry only ids and must be resolved through the CRM's
//! API in the background, and event kinds scorehook does not map (counted,
//! never an error: CRMs ban endpoints that keep failing).
//!
//! Everything here is pure: no I/O, the clock comes in with the request.

use std::borrow::Cow;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::engine::interaction::{Interaction, InteractionType};
use crate::ids::{ContactId, DealId, EventId};

/// One webhook request as the CRM sent it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Upper-case, e.g. `POST`.
    pub method: &'a str,
    /// The full public URL the CRM called, query included, exactly as
    /// received (HubSpot signs it): scheme and host come from
    /// `SCOREHOOK_PUBLIC_URL` when set, else from the forwarded headers.
    pub url: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub now: DateTime<Utc>,
}

impl<'a> Request<'a> {
    /// A header's value, if present and printable; names match case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The URL's query string, without the `?`.
    pub fn query(&self) -> &'a str {
        self.url.split_once('?').map(|(_, q)| q).unwrap_or_default()
    }

    /// The first value of a query parameter, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query().as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
}

/// What one provider event became.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// Everything needed is in the body: score it now.
    Ready(Interaction),
    /// Only ids: stored durably, answered 2xx, resolved through the CRM's API
    /// by the background worker, then scored.
    Resolve(Unresolved),
    /// A kind scorehook does not map (e.g. `contact.deletion`): acknowledged
    /// and counted per tenant and kind.
    Unmapped(String),
}

/// An event that names its contact (or deal, thread, email) only by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unresolved {
    /// The stored event's idempotency key: the same event delivered twice
    /// is queued once. The resolved interactions usually carry it too, or a
    /// finer one (a Bitrix24 stage move keys on its history row, so several
    /// updates after one move score it once).
    pub key: EventId,
    /// The provider's event kind, e.g. `deal.propertyChange` or `ONCRMDEALUPDATE`.
    pub kind: String,
    /// What the event names, for the actions log until it is resolved
    /// (`deal#759`, an email address, a thread id).
    pub subject: String,
    /// Whatever the provider's resolver needs: the raw event, or the parts of it that matter.
    pub event: Value,
}

/// Why a webhook request was refused. Nothing is stored for either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// Missing, wrong or stale credentials or signature (401).
    #[error("{0}")]
    Refused(String),
    /// The body is not what this CRM sends (400).
    #[error("{0}")]
    Malformed(String),
}

/// The most events one request may carry (HubSpot batches up to 100).
pub const MAX_EVENTS: usize = crate::engine::interaction::MAX_BATCH;

/// An idempotency key from a provider prefix and stable parts, joined by
/// `:`. Parts that would make an invalid or over-long id (whitespace, `#`,
/// more than 256 bytes) are replaced by one SHA-256 of the whole, so any
/// input still gives a stable, valid key.
pub fn derived_key(prefix: &str, parts: &[&str]) -> EventId {
    let joined = std::iter::once(prefix).chain(parts.iter().copied()).collect::<Vec<_>>().join(":");
    EventId::parse(joined.clone()).unwrap_or_else(|_| hashed_key(prefix, joined.as_bytes()))
}

/// `prefix:h:<sha256 hex>` of arbitrary bytes: for events with nothing stable but their content.
pub fn hashed_key(prefix: &str, content: &[u8]) -> EventId {
    EventId::hashed(prefix, &Sha256::digest(content).into())
}

/// An interaction from a connector's parts; a kind outside the catalogue
/// is a malformed body.
pub fn interaction(
    id: EventId,
    kind: &str,
    contact_id: ContactId,
    deal_id: Option<DealId>,
    occurred_at: DateTime<Utc>,
    attributes: Map<String, Value>,
    contact: Map<String, Value>,
) -> Result<Interaction, InboundError> {
    let kind = InteractionType::parse(kind).map_err(|e| InboundError::Malformed(e.to_string()))?;
    Ok(Interaction { id, kind, contact_id, deal_id, occurred_at, attributes, contact })
}

/// Constant-time equality of a presented secret with the stored one.
pub fn secret_matches(presented: &str, stored: &str) -> bool {
    !stored.is_empty() && bool::from(presented.as_bytes().ct_eq(stored.as_bytes()))
}

/// A string field of a JSON object, or a number written as a string (CRMs mix both).
pub fn text<'v>(value: &'v Value, key: &str) -> Option<Cow<'v, str>> {
    match value.get(key)? {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_keys_are_stable_and_always_valid() {
        assert_eq!(derived_key("ac", &["open", "42", "57"]).as_str(), "ac:open:42:57");
        let spaced = derived_key("ac", &["open", "2026-11-22 10:00:00", "57"]);
        assert!(spaced.as_str().starts_with("ac:h:"), "{spaced}");
        assert_eq!(spaced, derived_key("ac", &["open", "2026-11-22 10:00:00", "57"]));
        assert_ne!(spaced, derived_key("ac", &["open", "2026-11-22 10:00:01", "57"]));
        let long = "x".repeat(300);
        assert!(EventId::parse(derived_key("p", &[&long]).as_str()).is_ok());
        assert!(hashed_key("#bad prefix#", b"x").as_str().starts_with("badprefix:h:"));
    }

    #[test]
    fn reads_query_parameters_decoded() {
        let headers = HeaderMap::new();
        let request = Request {
            method: "POST",
            url: "https://h.test/v1/webhooks/activecampaign/t?key=a%2Bb&type=page.visited",
            headers: &headers,
            body: b"",
            now: Utc::now(),
        };
        assert_eq!(request.query_param("key").as_deref(), Some("a+b"));
        assert_eq!(request.query_param("type").as_deref(), Some("page.visited"));
        assert_eq!(request.query_param("nope"), None);
    }

    #[test]
    fn compares_secrets_and_reads_mixed_fields() {
        assert!(secret_matches("s3cret", "s3cret"));
        assert!(!secret_matches("s3cre", "s3cret"));
        assert!(!secret_matches("", ""));
        let v = json!({"a": "x", "n": 7, "e": "", "o": {}});
        assert_eq!(text(&v, "a").as_deref(), Some("x"));
        assert_eq!(text(&v, "n").as_deref(), Some("7"));
        assert_eq!(text(&v, "e"), None);
        assert_eq!(text(&v, "o"), None);
    }
}
