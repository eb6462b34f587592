//! Identifier newtypes, parsed once at the boundary.
//!
//! Every id that crosses the wire is checked here so a `ContactId` can never
//! stand in for a `TenantId`, and so the stores can build composite keys with
//! a separator (`#` for DynamoDB, `\u{1f}` for the embedded store) that no id
//! may contain.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an id was refused; the message says what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is invalid: {rule}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
    pub rule: &'static str,
}

/// Names chosen by admins (tenants, profiles, triggers, rules): short and URL-safe.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Ids chosen by CRMs (contacts, deals, events): anything printable but the
/// key separators and the invisible format characters (Unicode category
/// Cf), which would let two ids that look the same name different contacts.
fn is_external_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !is_format_char(c) && c != '#'
}

/// Unicode's format characters (category Cf): soft hyphen, bidi marks and
/// overrides, zero-width joiners and spaces, word joiner and invisible
/// operators, the byte-order mark, interlinear annotation and tag characters.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{890}'..='\u{891}' | '\u{8e2}'
        | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{110bd}' | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}' | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $check:ident, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                if value.is_empty() || value.len() > $max || !value.chars().all($check) {
                    return Err(InvalidId { kind: $kind, value, rule: $rule });
                }
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// One connected CRM account.
    TenantId, "tenant id", 64, is_name_char, "use 1-64 characters from A-Z a-z 0-9 _ -"
);
id_type!(
    /// A scoring profile's key, unique within a tenant.
    ProfileId, "profile id", 64, is_name_char, "use 1-64 characters from A-Z a-z 0-9 _ -"
);
id_type!(
    /// A trigger's key, unique within a tenant.
    TriggerId, "trigger id", 64, is_name_char, "use 1-64 characters from A-Z a-z 0-9 _ -"
);
id_type!(
    /// A rule's key, unique within its profile.
    RuleId, "rule id", 64, is_name_char, "use 1-64 characters from A-Z a-z 0-9 _ -"
);
id_type!(
    /// The CRM's contact id.
    ContactId, "contact id", 256, is_external_char,
    "use 1-256 bytes without whitespace, control or invisible format characters, or '#'"
);
id_type!(
    /// The CRM's deal (opportunity) id.
    DealId, "deal id", 256, is_external_char,
    "use 1-256 bytes without whitespace, control or invisible format characters, or '#'"
);
id_type!(
    /// An interaction's idempotency key: the same id twice scores once.
    EventId, "event id", 256, is_external_char,
    "use 1-256 bytes without whitespace, control or invisible format characters, or '#'"
);
id_type!(
    /// A fired action; stable across delivery retries and replays.
    ActionId, "action id", 64, is_name_char, "use 1-64 characters from A-Z a-z 0-9 _ -"
);

impl EventId {
    /// `prefix:h:<digest hex>`, for events with nothing stable but their
    /// content. Valid by construction: the prefix keeps only its first 32
    /// ASCII letters and digits, so the id is at most 99 printable bytes.
    pub fn hashed(prefix: &str, digest: &[u8; 32]) -> Self {
        let prefix: String = prefix.chars().filter(char::is_ascii_alphanumeric).take(32).collect();
        Self(format!("{prefix}:h:{}", hex::encode(digest)))
    }
}

impl ActionId {
    /// `act_` and the first 28 hex digits of `digest`. Valid by construction
    /// (32 characters from 0-9 a-f _), so nothing to parse.
    pub fn from_digest(digest: &[u8; 32]) -> Self {
        Self(format!("act_{}", &hex::encode(digest)[..28]))
    }
}

/// The key prefix of a deal's scoring state: deals are scored as subjects
/// of their own, stored beside contacts under `deal#<deal id>`. No CRM id
/// can contain `#`, so a deal's key never meets a contact's.
const DEAL_SUBJECT: &str = "deal#";

impl ContactId {
    /// The key a deal's scoring state is stored under.
    pub fn for_deal(deal: &DealId) -> Self {
        Self(format!("{DEAL_SUBJECT}{deal}"))
    }

    /// The deal whose scoring state this key holds; `None` for a contact.
    pub fn deal(&self) -> Option<DealId> {
        self.0.strip_prefix(DEAL_SUBJECT).map(|deal| DealId(deal.to_owned()))
    }

    /// A stored subject key: a contact id, or a deal's `deal#<deal id>`.
    /// Only the stores read this form; ids from outside go through `parse`.
    pub fn parse_subject(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        match value.strip_prefix(DEAL_SUBJECT) {
            Some(deal) => DealId::parse(deal).map(|deal| Self::for_deal(&deal)),
            None => Self::parse(value),
        }
    }
}

/// Serde for stored subject keys (`#[serde(with = "crate::ids::subject")]`):
/// the state of a deal is stored like a contact's, under its subject key.
pub mod subject {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::ContactId;

    pub fn serialize<S: Serializer>(id: &ContactId, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(id.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ContactId, D::Error> {
        ContactId::parse_subject(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }

    /// The same for an optional key.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::super::ContactId;

        pub fn serialize<S: Serializer>(id: &Option<ContactId>, serializer: S) -> Result<S::Ok, S::Error> {
            match id {
                Some(id) => serializer.serialize_some(id.as_str()),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ContactId>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(ContactId::parse_subject)
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn ids_built_from_digests_are_ones_parse_accepts(prefix in any::<String>(), digest in any::<[u8; 32]>()) {
            let event = EventId::hashed(&prefix, &digest);
            prop_assert_eq!(EventId::parse(event.as_str()), Ok(event.clone()));
            prop_assert!(event.as_str().ends_with(&hex::encode(digest)));
            let action = ActionId::from_digest(&digest);
            prop_assert_eq!(ActionId::parse(action.as_str()), Ok(action.clone()));
            prop_assert_eq!(action.as_str().len(), 32);
        }
    }

    #[test]
    fn external_ids_refuse_invisible_format_characters() {
        for sneaky in ["jhon\u{200b}", "\u{202e}nhoj", "\u{feff}42", "a\u{2060}b", "x\u{e0041}", "soft\u{ad}hyphen"] {
            assert!(ContactId::parse(sneaky).is_err(), "{sneaky:?} was accepted");
            assert!(EventId::parse(sneaky).is_err(), "{sneaky:?} was accepted");
        }
        for fine in ["jhon", "Bogotá-42", "مرحبا", "c_42@x.test", "日本"] {
            assert!(ContactId::parse(fine).is_ok(), "{fine:?} was refused");
        }
    }

    #[test]
    fn names_accept_url_safe_characters_only() {
        assert!(TenantId::parse("acme-prod_1").is_ok());
        for bad in ["", "a b", "a/b", "a#b", "é", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn external_ids_accept_emails_and_refuse_separators() {
        assert!(ContactId::parse("jhon+1@x.test").is_ok());
        assert!(EventId::parse("hubspot:123:456").is_ok());
        for bad in ["", "a b", "a#b", "a\u{1f}b", "tab\t"] {
            assert!(ContactId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn deal_subjects_round_trip_and_never_pass_as_contacts() {
        let deal = DealId::parse("d-7").unwrap();
        let subject = ContactId::for_deal(&deal);
        assert_eq!(subject.deal(), Some(deal));
        assert_eq!(ContactId::parse_subject(subject.as_str()).unwrap(), subject);
        assert!(ContactId::parse(subject.as_str()).is_err(), "a subject key is not a contact id");
        assert!(ContactId::parse_subject("deal#a#b").is_err());
        assert_eq!(ContactId::parse("deal").unwrap().deal(), None);
    }

    #[test]
    fn serde_refuses_invalid_ids() {
        let err = serde_json::from_str::<ContactId>("\"a b\"").unwrap_err();
        assert!(err.to_string().contains("contact id"), "{err}");
    }
}
