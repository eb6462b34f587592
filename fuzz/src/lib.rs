//! What the fuzz targets share: a fixed clock, a tenant whose every
//! credential is known, the request format the six webhook targets read, and
//! the invariants checked on whatever a parser accepts.
//!
//! A webhook input is one line of tab-separated request metadata, then the
//! body: `query<TAB>x-hubspot-signature-v3<TAB>…<LF>body`. The line's first
//! field is the URL's query string; the others fill the headers of
//! `HEADERS` in order (a value that is not a valid header value is left
//! out). An input without a line feed is all body. Seeds are real samples
//! behind an empty line (`\n{…}`), or behind `key=secret` for the keyed
//! schemes, so the fuzzer starts deep in each provider's mapping.

use chrono::{DateTime, TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use scorehook::crm;
use scorehook::crm::inbound::{Inbound, Request, Unresolved};
use scorehook::engine::interaction::{parse_body, Interaction};
use scorehook::http::extract::parse_json;
use scorehook::ids::TenantId;
use scorehook::tenant::{Provider, Secret, TenantRecord};

/// Every secret, token, user name and webhook key of the fuzzed tenant: a
/// fuzzer that finds this word gets past the keyed schemes.
pub const SECRET: &str = "secret";

/// Headers some provider's scheme reads, filled from the metadata line in this order.
pub const HEADERS: [&str; 7] = [
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "x-ghl-signature",
    "x-wh-signature",
    "authorization",
    "x-scorehook-timestamp",
    "x-scorehook-signature",
];

/// The request time of every run (2024-06-01T00:00:00Z): an input replays the same way forever.
pub fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_717_200_000, 0).single().unwrap_or_default()
}

/// A tenant of `provider` whose every credential is `SECRET`.
pub fn tenant(provider: Provider) -> TenantRecord {
    let mut crm = Map::new();
    for key in ["client_secret", "application_token", "webhook_user"] {
        crm.insert(key.to_owned(), Value::String(SECRET.to_owned()));
    }
    TenantRecord {
        id: TenantId::parse("fuzz").unwrap_or_else(|e| panic!("the fuzz tenant id is valid: {e}")),
        provider,
        webhook_secret: Secret::new(SECRET),
        actions_url: None,
        crm,
        token_hash: String::new(),
        previous_token: None,
        token_rotated_at: None,
        signing_secret: None,
        previous_signing: None,
        created_at: now(),
        updated_at: now(),
        revision: 0,
    }
}

/// One fuzz input read as a webhook request (see the module comment).
pub struct Webhook<'a> {
    pub url: String,
    pub headers: HeaderMap,
    pub body: &'a [u8],
}

impl<'a> Webhook<'a> {
    pub fn read(provider: Provider, data: &'a [u8]) -> Self {
        let (meta, body) = match data.iter().position(|&b| b == b'\n') {
            Some(at) => (&data[..at], &data[at + 1..]),
            None => (&data[..0], data),
        };
        let mut fields = meta.split(|&b| b == b'\t');
        let query = String::from_utf8_lossy(fields.next().unwrap_or_default());
        let url = format!("https://h.test/v1/webhooks/{}/fuzz?{query}", provider.as_str());
        let mut headers = HeaderMap::new();
        for (name, value) in HEADERS.iter().zip(fields) {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        Self { url, headers, body }
    }

    pub fn request(&self) -> Request<'_> {
        Request { method: "POST", url: &self.url, headers: &self.headers, body: self.body, now: now() }
    }
}

/// Runs one input through everything the webhook route does before
/// storing: `verify`, then the provider's body parser (called whatever
/// `verify` said, since a fuzzer cannot forge a signature), and checks
/// that whatever is accepted can be stored and read back.
pub fn webhook(provider: Provider, data: &[u8]) {
    let tenant = tenant(provider);
    let webhook = Webhook::read(provider, data);
    let request = webhook.request();
    let _ = crm::verify(&tenant, &request);
    if provider == Provider::Generic {
        // As the route does: JSON first (400), then the interactions' shape (422).
        let Ok(value) = parse_json::<Value>(webhook.body) else { return };
        if let Ok(interactions) = parse_body(value) {
            interactions.iter().for_each(stored_and_read_back);
        }
        return;
    }
    let Ok(items) = crm::normalize(&tenant, &request) else { return };
    assert!(items.len() <= crm::inbound::MAX_EVENTS, "{} items passed the batch limit", items.len());
    for item in &items {
        match item {
            Inbound::Ready(interaction) => stored_and_read_back(interaction),
            Inbound::Resolve(event) => queued_and_read_back(event),
            Inbound::Unmapped(_) => {}
        }
    }
}

/// An accepted interaction is stored as JSON and read back when the ledger
/// is replayed: it must read back, with the same identity and time.
/// (Attribute values are not compared: serde_json may move a float's last
/// bit on reading, which is not ours to fix.)
pub fn stored_and_read_back(interaction: &Interaction) {
    let bytes = serde_json::to_vec(interaction).unwrap_or_else(|e| panic!("cannot encode {interaction:?}: {e}"));
    let back: Interaction = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!("an accepted interaction does not read back: {e}: {}", String::from_utf8_lossy(&bytes))
    });
    assert_eq!(
        (&back.id, &back.kind, &back.contact_id, &back.deal_id, back.occurred_at),
        (&interaction.id, &interaction.kind, &interaction.contact_id, &interaction.deal_id, interaction.occurred_at),
        "an interaction changed on its way through the store"
    );
}

/// An id-only event is queued in the outbox as JSON and read back by the
/// resolver: it must read back with the same key.
pub fn queued_and_read_back(event: &Unresolved) {
    let value = serde_json::to_value(event).unwrap_or_else(|e| panic!("cannot encode {event:?}: {e}"));
    let back: Unresolved =
        serde_json::from_value(value).unwrap_or_else(|e| panic!("a queued event does not read back: {e}: {event:?}"));
    assert_eq!((&back.key, &back.kind, &back.subject), (&event.key, &event.kind, &event.subject));
}

/// Splits an input at its first line feed: a parser's text, then optional
/// JSON fields for it to be evaluated against.
pub fn text_then_fields(data: &[u8]) -> (&[u8], Map<String, Value>) {
    let Some(at) = data.iter().position(|&b| b == b'\n') else { return (data, sample_fields()) };
    let fields = parse_json::<Map<String, Value>>(&data[at + 1..]).unwrap_or_else(|_| sample_fields());
    (&data[..at], fields)
}

/// Contact fields and attributes of every JSON kind, for inputs that bring none.
pub fn sample_fields() -> Map<String, Value> {
    let value = serde_json::json!({
        "url": "https://example.com/pricing", "stage": "demo", "amount": 1500.5, "count": 3,
        "vip": true, "tags": ["a", "b"], "nested": {"plan": "pro"}, "none": null,
    });
    value.as_object().cloned().unwrap_or_default()
}

/// An interaction of `kind` (or `email.opened` when that is no type) carrying `attributes`.
pub fn interaction(kind: Option<&str>, attributes: Map<String, Value>) -> Interaction {
    let body = serde_json::json!({
        "id": "evt-fuzz", "type": "email.opened", "contact_id": "c-1", "deal_id": "d-1",
        "occurred_at": now(), "contact": {"email": "a@example.com"},
    });
    let mut interaction: Interaction =
        serde_json::from_value(body).unwrap_or_else(|e| panic!("the fuzz interaction is valid: {e}"));
    if let Some(kind) = kind.and_then(|k| scorehook::engine::interaction::InteractionType::parse(k).ok()) {
        interaction.kind = kind;
    }
    interaction.attributes = attributes;
    interaction
}
