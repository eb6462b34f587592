//! The canonical interaction: one normalised event about a contact.
//!
//! Every provider's webhook becomes interactions first; the engine sees
//! nothing else. Parsing here is total: any JSON value either becomes an
//! `Interaction` or an `InvalidInteraction` that says which field is wrong.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{ContactId, DealId, EventId};

/// The interaction types of the contract; `custom.<name>` is open.
pub const KNOWN_TYPES: &[&str] = &[
    "email.opened",
    "email.clicked",
    "email.received",
    "email.sent",
    "email.forwarded",
    "email.bounced",
    "form.submitted",
    "call.outgoing",
    "call.incoming",
    "call.missed",
    "chat.first_message",
    "chat.accepted",
    "chat.message",
    "page.visited",
    "event.recorded",
    "list.subscribed",
    "list.unsubscribed",
    "field.changed",
    "appointment.booked",
    "invoice.paid",
    "deal.stage_changed",
    "contact.updated",
];

/// An interaction as history keeps it: with the instant it was received,
/// which is the `now` it was scored at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub interaction: Interaction,
    #[serde(with = "crate::timestamp")]
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InteractionType(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interaction type {0:?} is unknown: use one of the catalogue's types (e.g. email.opened) or custom.<name> with a-z 0-9 _ . -")]
pub struct UnknownType(pub String);

impl InteractionType {
    pub fn parse(text: &str) -> Result<Self, UnknownType> {
        let custom_ok = |name: &str| {
            !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
        };
        match text.strip_prefix("custom.") {
            Some(name) if custom_ok(name) => Ok(Self(text.to_owned())),
            None if KNOWN_TYPES.contains(&text) => Ok(Self(text.to_owned())),
            _ => Err(UnknownType(text.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InteractionType {
    type Error = UnknownType;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<InteractionType> for String {
    fn from(kind: InteractionType) -> String {
        kind.0
    }
}

impl fmt::Display for InteractionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One normalised event. Field names are the wire names of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interaction {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: InteractionType,
    pub contact_id: ContactId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_id: Option<DealId>,
    #[serde(with = "crate::timestamp")]
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub contact: Map<String, Value>,
}

/// Why a JSON value is not an interaction; `at` is the position in a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interaction [{at}]: {message}")]
pub struct InvalidInteraction {
    pub at: usize,
    pub message: String,
}

/// The most interactions one webhook body may carry (HubSpot sends up to 100).
pub const MAX_BATCH: usize = 500;

/// A body is one interaction or an array of them; all must be valid.
pub fn parse_body(body: Value) -> Result<Vec<Interaction>, InvalidInteraction> {
    let items = match body {
        Value::Array(items) => items,
        single => vec![single],
    };
    if items.is_empty() {
        return Err(InvalidInteraction { at: 0, message: "the array is empty".into() });
    }
    if items.len() > MAX_BATCH {
        return Err(InvalidInteraction {
            at: MAX_BATCH,
            message: format!("a body carries at most {MAX_BATCH} interactions, this one {}", items.len()),
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(at, item)| {
            if !item.is_object() {
                return Err(InvalidInteraction { at, message: "expected a JSON object".into() });
            }
            serde_json::from_value(item).map_err(|e| InvalidInteraction { at, message: e.to_string() })
        })
        .collect()
}

impl Interaction {
    /// The ledger and cap time of this interaction: when it happened, but
    /// never later than `now`, so a sender's clock cannot book future points.
    pub fn effective_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.occurred_at.min(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({"id": "evt_01", "type": "email.opened", "contact_id": "c_42",
               "occurred_at": "2026-11-22T10:00:00Z",
               "attributes": {"campaign_id": "spring"}, "contact": {"email": "jhon@x.test"}})
    }

    #[test]
    fn parses_one_or_many() {
        assert_eq!(parse_body(valid()).unwrap().len(), 1);
        assert_eq!(parse_body(json!([valid(), valid()])).unwrap().len(), 2);
    }

    #[test]
    fn names_the_bad_item_and_field() {
        let mut bad = valid();
        bad["type"] = json!("email.exploded");
        let err = parse_body(json!([valid(), bad])).unwrap_err();
        assert_eq!(err.at, 1);
        assert!(err.message.contains("email.exploded"), "{err}");

        let mut missing = valid();
        missing.as_object_mut().unwrap().remove("contact_id");
        assert!(parse_body(missing).unwrap_err().message.contains("contact_id"));
    }

    #[test]
    fn refuses_non_objects_empty_batches_and_bad_times() {
        assert!(parse_body(json!(42)).is_err());
        assert!(parse_body(json!([])).is_err());
        let mut bad_time = valid();
        bad_time["occurred_at"] = json!("yesterday");
        assert!(parse_body(bad_time).is_err());
        let mut extra = valid();
        extra["surprise"] = json!(1);
        assert!(parse_body(extra).unwrap_err().message.contains("surprise"));
    }

    #[test]
    fn custom_types_are_open_but_checked() {
        assert!(InteractionType::parse("custom.webinar_attended").is_ok());
        assert!(InteractionType::parse("custom.").is_err());
        assert!(InteractionType::parse("custom.Has Space").is_err());
        for known in KNOWN_TYPES {
            assert!(InteractionType::parse(known).is_ok());
        }
    }
}
