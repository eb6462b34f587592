//! A connected CRM account as stored: provider, secrets, settings, token hash.
//!
//! Secrets live only here and in the store. Reads go out through the HTTP
//! layer's own wire type, which has no field for them, and `Secret`'s
//! `Debug` prints `***`, so a log line cannot leak one by accident.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TenantRecord {
    /// Whether `token` is this tenant's admin token, in constant time.
    pub fn token_matches(&self, token: &str) -> bool {
        hash_token(token).as_bytes().ct_eq(self.token_hash.as_bytes()).into()
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
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        assert_eq!(Value::Object(record.public_crm()), serde_json::json!({"score_field": "lead"}));
        assert!(record.token_matches("tok"));
        assert!(!record.token_matches("tok2"));
        assert_eq!(record.score_field(), "lead");
    }
}
