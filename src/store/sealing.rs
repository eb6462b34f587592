//! Tenant secrets sealed at rest: the webhook secret, the signing secrets
//! and every `crm` setting that may be a credential are encrypted together
//! (AES-256-GCM, a fresh random nonce per save, the tenant id as associated
//! data so a sealed blob cannot be moved to another tenant) before a tenant
//! record reaches either store, and opened when it is read.
//!
//! The stored document is the record with those fields taken out and one
//! `sealed` field added: everything else (provider, revision, non-secret
//! settings) stays readable for operators and conditions. A record stored
//! before sealing existed has no `sealed` field and reads as it is; its next
//! save seals it.
//!
//! The key is 32 bytes from the operator: a key file beside the embedded
//! store (created 0600), or on AWS a data key that KMS made and unwraps
//! (`store::dynamodb::data_key`).

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::Mac;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde_json::{Map, Value};

use super::StoreError;
use crate::ids::TenantId;
use crate::tenant::{TenantRecord, PUBLIC_CRM_KEYS};

/// The length of a sealing key, in bytes.
pub const KEY_LEN: usize = 32;
/// The stored field that holds the sealed secrets.
const SEALED: &str = "sealed";
/// The sealed form's version prefix.
const VERSION: &str = "v1.";
/// Top-level record fields that are secrets.
const SECRET_FIELDS: [&str; 2] = ["webhook_secret", "signing_secret"];
/// Where the replaced signing secret goes inside the sealed map.
const PREVIOUS_SIGNING_SECRET: &str = "previous_signing_secret";

pub struct Sealer {
    key: LessSafeKey,
    /// Names the key without giving it away: a keyed hash of a fixed text.
    fingerprint: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

fn corrupt(id: &TenantId, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("tenant {id}: {what}"))
}

/// Associated data: the tenant the secrets belong to.
fn aad(id: &TenantId) -> String {
    format!("scorehook tenant {id}")
}

impl Sealer {
    /// A sealer over a 32-byte key.
    pub fn from_key(bytes: &[u8]) -> Result<Self, StoreError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| StoreError::Unavailable(format!("a sealing key is {KEY_LEN} bytes, not {}", bytes.len())))?;
        let check = crate::keyed_hash::keyed(bytes, &[b"scorehook sealing key check"]).finalize().into_bytes();
        Ok(Self { key: LessSafeKey::new(unbound), fingerprint: hex::encode(&check[..16]) })
    }

    /// What tells this key from another (stored beside what it sealed, so a
    /// process with the wrong key can refuse to start instead of failing on
    /// every tenant).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The key in `path`, made there (32 random bytes, mode 0600) if the
    /// file does not exist yet.
    pub fn from_key_file(path: &Path) -> Result<Self, StoreError> {
        let cannot =
            |what: &str, e: std::io::Error| StoreError::Unavailable(format!("cannot {what} {}: {e}", path.display()));
        match std::fs::read(path) {
            Ok(bytes) => Self::from_key(&bytes)
                .map_err(|_| StoreError::Unavailable(format!("{} is not a {KEY_LEN}-byte key", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random::<KEY_LEN>()?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    private_dir(dir).map_err(|e| cannot("create the directory of", e))?;
                }
                let mut file = private_file(path).map_err(|e| cannot("create", e))?;
                file.write_all(&key).and_then(|()| file.sync_all()).map_err(|e| cannot("write", e))?;
                Self::from_key(&key)
            }
            Err(e) => Err(cannot("read", e)),
        }
    }

    /// Whether a stored tenant document has sealed secrets.
    pub fn is_sealed(doc: &Value) -> bool {
        doc.get(SEALED).is_some()
    }

    /// The document a tenant record is stored as: its secrets sealed.
    pub fn seal(&self, record: &TenantRecord) -> Result<Value, StoreError> {
        let mut doc = serde_json::to_value(record).map_err(|e| corrupt(&record.id, e))?;
        let Some(fields) = doc.as_object_mut() else { return Err(corrupt(&record.id, "not a JSON object")) };
        let mut secrets = Map::new();
        for name in SECRET_FIELDS {
            if let Some(value) = fields.remove(name) {
                secrets.insert(name.to_owned(), value);
            }
        }
        if let Some(previous) = fields.get_mut("previous_signing").and_then(Value::as_object_mut) {
            if let Some(secret) = previous.remove("secret") {
                secrets.insert(PREVIOUS_SIGNING_SECRET.to_owned(), secret);
            }
        }
        if let Some(crm) = fields.get_mut("crm").and_then(Value::as_object_mut) {
            let private: Vec<String> = crm.keys().filter(|k| !PUBLIC_CRM_KEYS.contains(&k.as_str())).cloned().collect();
            let private: Map<String, Value> = private.into_iter().filter_map(|k| crm.remove_entry(&k)).collect();
            secrets.insert("crm".to_owned(), Value::Object(private));
        }
        let plain = serde_json::to_vec(&secrets).map_err(|e| corrupt(&record.id, e))?;
        fields.insert(SEALED.to_owned(), Value::String(self.encrypt(&record.id, plain)?));
        Ok(doc)
    }

    /// A stored tenant document read back: sealed secrets opened, or an
    /// unsealed (older) document as it is.
    pub fn open(&self, id: &TenantId, mut doc: Value) -> Result<TenantRecord, StoreError> {
        if let Some(fields) = doc.as_object_mut() {
            if let Some(sealed) = fields.remove(SEALED) {
                let sealed = sealed.as_str().ok_or_else(|| corrupt(id, "its sealed secrets are not a string"))?;
                let secrets: Map<String, Value> =
                    serde_json::from_slice(&self.decrypt(id, sealed)?).map_err(|e| corrupt(id, e))?;
                unseal_into(fields, secrets);
            }
        }
        read_plain(id, doc)
    }

    fn encrypt(&self, id: &TenantId, mut plain: Vec<u8>) -> Result<String, StoreError> {
        let nonce = random::<NONCE_LEN>()?;
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(id)), &mut plain)
            .map_err(|_| corrupt(id, "cannot seal its secrets"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&plain);
        Ok(format!("{VERSION}{}", STANDARD.encode(blob)))
    }

    fn decrypt(&self, id: &TenantId, sealed: &str) -> Result<Vec<u8>, StoreError> {
        let unreadable = || corrupt(id, "its sealed secrets do not open with this key (was the key replaced?)");
        let encoded = sealed.strip_prefix(VERSION).ok_or_else(|| corrupt(id, "unknown sealed secrets version"))?;
        let mut blob = STANDARD.decode(encoded).map_err(|_| unreadable())?;
        if blob.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let mut body = blob.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&blob).map_err(|_| unreadable())?;
        let plain = self.key.open_in_place(nonce, Aad::from(aad(id)), &mut body).map_err(|_| unreadable())?;
        Ok(plain.to_vec())
    }
}

/// Puts sealed secrets back where `seal` took them from.
fn unseal_into(fields: &mut Map<String, Value>, mut secrets: Map<String, Value>) {
    if let Some(Value::Object(private)) = secrets.remove("crm") {
        if let Some(crm) = fields.entry("crm").or_insert_with(|| Value::Object(Map::new())).as_object_mut() {
            crm.extend(private);
        }
    }
    if let Some(secret) = secrets.remove(PREVIOUS_SIGNING_SECRET) {
        if let Some(previous) = fields.get_mut("previous_signing").and_then(Value::as_object_mut) {
            previous.insert("secret".to_owned(), secret);
        }
    }
    fields.extend(secrets);
}

/// A stored document with nothing sealed, as a record.
pub fn read_plain(id: &TenantId, doc: Value) -> Result<TenantRecord, StoreError> {
    if Sealer::is_sealed(&doc) {
        return Err(corrupt(id, "its secrets are sealed, and this store has no key to open them"));
    }
    serde_json::from_value(doc).map_err(|e| corrupt(id, e))
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Unavailable(format!("no randomness available: {e}")))?;
    Ok(bytes)
}

/// Creates `dir` (and its parents) if missing, only its owner may enter
/// it; an existing directory is left as it is.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new file only its owner can read and write.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn record() -> TenantRecord {
        let now = Utc::now();
        serde_json::from_value(json!({
            "id": "acme", "provider": "pipedrive", "webhook_secret": "inbound-secret-0123",
            "signing_secret": "whsec_c2lnbmluZy1zZWNyZXQtMDEyMzQ1Njc4OQ==",
            "previous_signing": {"secret": "whsec_b2xkLXNpZ25pbmctc2VjcmV0LTAxMjM0NTY3", "expires_at": now},
            "actions_url": null, "crm": {"api_token": "pd-api-token-abc", "base_url": "https://x.pipedrive.com",
                                         "basic_password": "basic-pass-xyz"},
            "token_hash": "00", "created_at": now, "updated_at": now, "revision": 3
        }))
        .unwrap()
    }

    #[test]
    fn a_sealed_record_holds_no_secret_and_opens_to_the_same_record() {
        let sealer = Sealer::from_key(&[7; KEY_LEN]).unwrap();
        let record = record();
        let doc = sealer.seal(&record).unwrap();
        let text = doc.to_string();
        for secret in
            ["inbound-secret-0123", "c2lnbmluZy1zZWNyZXQt", "b2xkLXNpZ25pbmct", "pd-api-token-abc", "basic-pass-xyz"]
        {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(doc["crm"], json!({"base_url": "https://x.pipedrive.com"}), "settings stay readable");
        assert_eq!(doc["revision"], 3);
        assert_eq!(sealer.open(&record.id, doc.clone()).unwrap(), record);
        assert_ne!(sealer.seal(&record).unwrap()[SEALED], doc[SEALED], "a fresh nonce on every save");
    }

    #[test]
    fn another_key_or_another_tenant_cannot_open_it() {
        let record = record();
        let doc = Sealer::from_key(&[7; KEY_LEN]).unwrap().seal(&record).unwrap();
        let other = Sealer::from_key(&[8; KEY_LEN]).unwrap();
        assert!(matches!(other.open(&record.id, doc.clone()), Err(StoreError::Corrupt(_))));
        let sealer = Sealer::from_key(&[7; KEY_LEN]).unwrap();
        let elsewhere = TenantId::parse("other").unwrap();
        assert!(matches!(sealer.open(&elsewhere, doc.clone()), Err(StoreError::Corrupt(_))), "bound to its tenant");
        let mut cut = doc;
        cut[SEALED] = json!("v1.AAAA");
        assert!(matches!(sealer.open(&record.id, cut), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_record_stored_before_sealing_reads_as_it_is() {
        let record = record();
        let plain = serde_json::to_value(&record).unwrap();
        let sealer = Sealer::from_key(&[7; KEY_LEN]).unwrap();
        assert_eq!(sealer.open(&record.id, plain.clone()).unwrap(), record);
        assert_eq!(read_plain(&record.id, plain).unwrap(), record);
        let sealed = sealer.seal(&record).unwrap();
        assert!(matches!(read_plain(&record.id, sealed), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_key_file_is_made_once_private_and_read_back() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("secrets.key");
        let record = record();
        let doc = Sealer::from_key_file(&path).unwrap().seal(&record).unwrap();
        assert_eq!(Sealer::from_key_file(&path).unwrap().open(&record.id, doc).unwrap(), record);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(Sealer::from_key_file(&path), Err(StoreError::Unavailable(_))));
    }
}
