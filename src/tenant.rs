//! A connected CRM account as stored: provider, secrets, settings, token hash
//! (and, after a rotation, the previous token's hash until its grace ends).
//!
//! Secrets live only here and in the store. Reads go out through the HTTP
//! layer's own wire type, which has no field for them, and `Secret`'s
//! `Debug` prints `***`, so a log line cannot leak one by accident.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::ids::TenantId;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The CRM whose webhooks a tenant receives and whose API its actions call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Generic,
    Hubspot,
    Highlevel,
    Activecampaign,
    Bitrix24,
    Pipedrive,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Generic => "generic",
            Provider::Hubspot => "hubspot",
            Provider::Highlevel => "highlevel",
            Provider::Activecampaign => "activecampaign",
            Provider::Bitrix24 => "bitrix24",
            Provider::Pipedrive => "pipedrive",
        }
    }
}

/// `crm` settings keys that are safe to show back; everything else may be a credential.
pub const PUBLIC_CRM_KEYS: &[&str] = &[
    "base_url",
    "location_id",
    "api_url",
    "pipelines",
    "score_field",
    "api_rate",
    // HubSpot
    "portal_id",
    "tags_property",
    "owner_id",
    // Bitrix24
    "member_id",
    "responsible_id",
    // Pipedrive (the webhook's user name is not the secret half)
    "webhook_user",
    "company_id",
    "label_field",
    "task_type",
    "activity_types",
    // HighLevel: public keys that replace the published ones (sandboxes, rotations)
    "ed25519_public_key",
    "rsa_public_key",
    // ActiveCampaign and HighLevel write the score by field id
    "score_field_id",
    "task_type_id",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub provider: Provider,
    pub webhook_secret: Secret,
    pub actions_url: Option<String>,
    /// Provider settings; may hold credentials, so never returned whole.
    #[serde(default)]
    pub crm: Map<String, Value>,
    /// SHA-256 of the tenant's admin token, hex.
    pub token_hash: String,
    /// The token a rotation replaced, still accepted until its grace ends.
    /// Records stored before rotation existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token: Option<PreviousToken>,
    /// When the admin token was last rotated; `None` if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_rotated_at: Option<DateTime<Utc>>,
    /// The key outbound requests are signed with (Standard Webhooks,
    /// `whsec_…`), never the inbound `webhook_secret`. `None` for tenants
    /// stored before it existed: their actions carry the deprecated
    /// `X-Scorehook-*` signature made with the webhook secret until one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<Secret>,
    /// What signed outbound requests before the signing secret last changed,
    /// still signing beside it until its grace ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_signing: Option<PreviousSigning>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Save counter: the store writes `revision + 1` only over `revision`
    /// (0: no record, or one stored before revisions existed), so two
    /// writers that read the same record cannot both land.
    #[serde(default)]
    pub revision: u64,
}

/// A rotated-out admin token: its hash, and the instant it stops working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousToken {
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub expires_at: DateTime<Utc>,
}

/// A replaced outbound signing key: the signing secret, or `None` for the
/// deprecated `X-Scorehook-*` signature with the webhook secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSigning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    pub expires_at: DateTime<Utc>,
}

/// How long a replaced signing key keeps signing beside the new one, so a
/// receiver can switch keys without refusing a delivery.
pub fn signing_grace() -> TimeDelta {
    TimeDelta::hours(24)
}

/// Which of a tenant's admin tokens a bearer token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMatch {
    /// The token in force.
    Current,
    /// The token a rotation replaced, within its grace.
    Previous,
}

impl TenantRecord {
    /// Whether `token` is this tenant's admin token (the current one, or the
    /// previous one before its grace ends at `now`). Both hashes are compared,
    /// each in constant time, whichever matches.
    pub fn token_match(&self, token: &str, now: DateTime<Utc>) -> Option<TokenMatch> {
        let hash = hash_token(token);
        let in_grace = self.previous_in_grace(now);
        // Without a previous token, the current hash stands in, so both comparisons always run.
        let previous_hash = in_grace.map_or(self.token_hash.as_bytes(), |p| p.hash.as_bytes());
        let current = hash.as_bytes().ct_eq(self.token_hash.as_bytes());
        let previous = hash.as_bytes().ct_eq(previous_hash) & Choice::from(u8::from(in_grace.is_some()));
        if current.into() {
            Some(TokenMatch::Current)
        } else if previous.into() {
            Some(TokenMatch::Previous)
        } else {
            None
        }
    }

    /// Replaces the admin token with the one hashed as `new_hash`. The token
    /// replaced keeps working for `grace` (none when zero); a previous token
    /// still in its grace is dropped, as only one is kept.
    pub fn rotate_token(&mut self, new_hash: String, grace: TimeDelta, now: DateTime<Utc>) {
        let old = std::mem::replace(&mut self.token_hash, new_hash);
        let expires_at = now.checked_add_signed(grace).unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.previous_token = (grace > TimeDelta::zero()).then_some(PreviousToken { hash: old, expires_at });
        self.token_rotated_at = Some(now);
        self.updated_at = now;
    }

    /// Sets the outbound signing secret; the key it replaces (or the
    /// deprecated scheme, for a tenant that had none) keeps signing beside it
    /// for [`signing_grace`]. Setting the same secret again changes nothing.
    pub fn set_signing_secret(&mut self, secret: Secret, now: DateTime<Utc>) {
        if self.signing_secret.as_ref() == Some(&secret) {
            return;
        }
        let replaced = self.signing_secret.replace(secret);
        let expires_at = now.checked_add_signed(signing_grace()).unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.previous_signing = Some(PreviousSigning { secret: replaced, expires_at });
    }

    /// The replaced signing key, if it still signs at `now`.
    pub fn previous_signing_in_grace(&self, now: DateTime<Utc>) -> Option<&PreviousSigning> {
        self.previous_signing.as_ref().filter(|p| now < p.expires_at)
    }

    /// The previous token, if its grace has not ended at `now`.
    fn previous_in_grace(&self, now: DateTime<Utc>) -> Option<&PreviousToken> {
        self.previous_token.as_ref().filter(|p| now < p.expires_at)
    }

    /// When the previous token stops working, if it still works at `now`.
    pub fn previous_token_expires_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous_in_grace(now).map(|p| p.expires_at)
    }

    /// The keys a leaderboard cursor may be signed with: the current token's
    /// hash (which signs new cursors) and the previous one's within its
    /// grace, so a listing paged across a rotation does not break.
    pub fn cursor_keys(&self, now: DateTime<Utc>) -> impl Iterator<Item = &[u8]> {
        let previous = self.previous_in_grace(now).map(|p| p.hash.as_bytes());
        std::iter::once(self.token_hash.as_bytes()).chain(previous)
    }

    pub fn score_field(&self) -> &str {
        self.crm.get("score_field").and_then(Value::as_str).unwrap_or(crate::engine::action::DEFAULT_SCORE_FIELD)
    }

    pub fn public_crm(&self) -> Map<String, Value> {
        public_crm(&self.crm)
    }
}

/// The CRM settings that may be shown: everything but credentials.
pub fn public_crm(crm: &Map<String, Value>) -> Map<String, Value> {
    crm.iter().filter(|(k, _)| PUBLIC_CRM_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "***");
    }

    #[test]
    fn public_crm_hides_credentials() {
        let crm = serde_json::json!({"access_token": "x", "score_field": "lead", "api_token": "y"});
        let record = TenantRecord {
            id: TenantId::parse("t").unwrap(),
            provider: Provider::Generic,
            webhook_secret: Secret::new("s"),
            actions_url: None,
            crm: crm.as_object().unwrap().clone(),
            token_hash: hash_token("tok"),
            previous_token: None,
            token_rotated_at: None,
            signing_secret: None,
            previous_signing: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            revision: 0,
        };
        assert_eq!(Value::Object(record.public_crm()), serde_json::json!({"score_field": "lead"}));
        assert_eq!(record.token_match("tok", Utc::now()), Some(TokenMatch::Current));
        assert_eq!(record.token_match("tok2", Utc::now()), None);
        assert_eq!(record.score_field(), "lead");
    }

    fn record_at(now: DateTime<Utc>) -> TenantRecord {
        let stored = serde_json::json!({
            "id": "t", "provider": "generic", "webhook_secret": "s", "actions_url": null,
            "token_hash": hash_token("first"), "created_at": now, "updated_at": now
        });
        serde_json::from_value(stored).unwrap()
    }

    #[test]
    fn a_record_stored_before_rotation_existed_reads_with_no_rotation_state() {
        let now = Utc::now();
        let record = record_at(now);
        assert_eq!((record.previous_token.as_ref(), record.token_rotated_at, record.revision), (None, None, 0));
        assert_eq!(record.token_match("first", now), Some(TokenMatch::Current));
        let written = serde_json::to_value(&record).unwrap();
        assert!(written.get("previous_token").is_none(), "no rotation, nothing new written: {written}");
    }

    #[test]
    fn a_rotated_out_token_works_until_its_grace_ends_then_never() {
        let now = Utc::now();
        let mut record = record_at(now);
        record.rotate_token(hash_token("second"), TimeDelta::hours(1), now);
        assert_eq!(record.token_match("second", now), Some(TokenMatch::Current));
        assert_eq!(record.token_match("first", now), Some(TokenMatch::Previous));
        let last = now + TimeDelta::hours(1) - TimeDelta::milliseconds(1);
        assert_eq!(record.token_match("first", last), Some(TokenMatch::Previous));
        assert_eq!(record.token_match("first", now + TimeDelta::hours(1)), None, "the grace ends at its instant");
        assert_eq!(record.previous_token_expires_at(now), Some(now + TimeDelta::hours(1)));
        assert_eq!(record.previous_token_expires_at(now + TimeDelta::hours(1)), None);
        assert_eq!(record.cursor_keys(now).count(), 2);
        assert_eq!(record.cursor_keys(now + TimeDelta::hours(1)).count(), 1);
        assert_eq!((record.token_rotated_at, record.updated_at), (Some(now), now));
    }

    #[test]
    fn rotating_again_keeps_only_the_token_just_replaced() {
        let now = Utc::now();
        let mut record = record_at(now);
        record.rotate_token(hash_token("second"), TimeDelta::hours(1), now);
        record.rotate_token(hash_token("third"), TimeDelta::hours(1), now);
        assert_eq!(record.token_match("first", now), None, "only one previous token is kept");
        assert_eq!(record.token_match("second", now), Some(TokenMatch::Previous));
        record.rotate_token(hash_token("fourth"), TimeDelta::zero(), now);
        assert_eq!(record.token_match("third", now), None, "no grace revokes at once");
        assert_eq!(record.token_match("second", now), None);
        assert!(record.previous_token.is_none());
    }

    #[test]
    fn a_grace_past_the_end_of_time_does_not_panic() {
        let now = Utc::now();
        let mut record = record_at(now);
        record.rotate_token(hash_token("second"), TimeDelta::MAX, now);
        assert_eq!(record.token_match("first", now), Some(TokenMatch::Previous));
    }
}
