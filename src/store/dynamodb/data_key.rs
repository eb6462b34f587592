//! The sealing key on AWS: a data key that KMS made under the operator's
//! key (`GenerateDataKey`, AES-256), kept in the table only wrapped (one
//! item), and unwrapped by KMS once per process (`Decrypt`). The plain key
//! lives only in the process's memory; whoever reads the table, a backup or
//! its stream without `kms:Decrypt` on that key sees no tenant secret.

use std::path::Path;

use aws_sdk_dynamodb::primitives::Blob as DynamoBlob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use super::items::key;
use super::{unavailable, DynamoStore, PutIf};
use crate::store::sealing::Sealer;
use crate::store::StoreError;

/// The item holding the wrapped data key: a partition no tenant's key can
/// name (tenant partitions start `T#`).
const PK: &str = "_scorehook";
const SK: &str = "DATA_KEY#1";
const WRAPPED: &str = "wrapped";
const KEY_ID: &str = "kms_key_id";
/// The item naming the key file the table's secrets are sealed with (its fingerprint).
const CHECK_SK: &str = "KEY_FILE#1";
const FINGERPRINT: &str = "fingerprint";

/// The KMS key (id, ARN or alias) the table's data key is made under.
pub const KMS_KEY_VAR: &str = "SCOREHOOK_KMS_KEY_ID";
/// A local key file instead of KMS (`sam local`, `cargo lambda watch`).
pub const KEY_FILE_VAR: &str = "SCOREHOOK_SECRETS_KEY_FILE";

/// The sealer the settings name: KMS under `SCOREHOOK_KMS_KEY_ID` (its
/// endpoint from the AWS configuration, e.g. `AWS_ENDPOINT_URL_KMS`), else
/// the key file `SCOREHOOK_SECRETS_KEY_FILE`, else `default_file` (made
/// if missing). With none of them, tenant secrets could not be sealed, and
/// the process must not start.
pub async fn configured_sealer(
    store: &DynamoStore,
    aws: &aws_config::SdkConfig,
    settings: &crate::settings::Settings,
    default_file: Option<&Path>,
) -> Result<Sealer, StoreError> {
    if let Some(key_id) = settings.kms_key_id() {
        if stored_check(store).await?.is_some() {
            return Err(StoreError::Unavailable(format!(
                "this table's tenant secrets are sealed with a key file, not KMS: unset {KMS_KEY_VAR} and set \
                 {KEY_FILE_VAR} to that file"
            )));
        }
        return sealer(store, &aws_sdk_kms::Client::new(aws), &key_id).await;
    }
    let Some(file) = settings.secrets_key_file().or_else(|| default_file.map(Path::to_path_buf)) else {
        return Err(StoreError::Unavailable(format!(
            "no key to seal tenant secrets with: set {KMS_KEY_VAR} (AWS KMS) or {KEY_FILE_VAR} (a local key file)"
        )));
    };
    if let Some(item) = store.get(key(PK.to_owned(), SK)).await? {
        let made_under = item.get(KEY_ID).and_then(|v| v.as_s().ok()).map_or("a KMS key", String::as_str);
        return Err(StoreError::Unavailable(format!(
            "this table's tenant secrets are sealed with its KMS data key (made under {made_under}): set \
             {KMS_KEY_VAR} instead of a key file"
        )));
    }
    let sealer = Sealer::from_key_file(&file)?;
    checked(store, sealer).await
}

/// A key file's sealer, if it is the one the table's secrets are sealed
/// with: the first to seal stores its fingerprint, any other key is refused.
async fn checked(store: &DynamoStore, sealer: Sealer) -> Result<Sealer, StoreError> {
    let mut item = key(PK.to_owned(), CHECK_SK);
    item.insert(FINGERPRINT.to_owned(), AttributeValue::S(sealer.fingerprint().to_owned()));
    if !store.put_if(item, PutIf::Absent).await? {
        let stored = stored_check(store).await?;
        if stored.as_deref() != Some(sealer.fingerprint()) {
            return Err(StoreError::Unavailable(format!(
                "this table's tenant secrets are sealed with another key file than {KEY_FILE_VAR} names: use that one"
            )));
        }
    }
    Ok(sealer)
}

/// The fingerprint of the key file the table's secrets are sealed with, if any.
async fn stored_check(store: &DynamoStore) -> Result<Option<String>, StoreError> {
    let item = store.get(key(PK.to_owned(), CHECK_SK)).await?;
    Ok(item.and_then(|i| i.get(FINGERPRINT).and_then(|v| v.as_s().ok()).cloned()))
}

/// The table's sealer: its data key unwrapped by KMS, or, the first time,
/// a new one made under `key_id` and stored wrapped. Two processes that
/// make one at once keep the first stored.
pub async fn sealer(store: &DynamoStore, kms: &aws_sdk_kms::Client, key_id: &str) -> Result<Sealer, StoreError> {
    if let Some(wrapped) = stored(store).await? {
        return unwrap(kms, wrapped).await;
    }
    let made = kms.generate_data_key().key_id(key_id).key_spec(DataKeySpec::Aes256).send().await.map_err(|e| {
        StoreError::Unavailable(format!("KMS cannot make a data key under {key_id}: {}", unavailable(e)))
    })?;
    let (Some(plain), Some(wrapped)) = (made.plaintext(), made.ciphertext_blob()) else {
        return Err(StoreError::Unavailable("KMS answered GenerateDataKey without the key".into()));
    };
    let mut item = key(PK.to_owned(), SK);
    item.insert(WRAPPED.to_owned(), AttributeValue::B(DynamoBlob::new(wrapped.as_ref())));
    item.insert(KEY_ID.to_owned(), AttributeValue::S(key_id.to_owned()));
    if store.put_if(item, PutIf::Absent).await? {
        tracing::info!(kms_key_id = key_id, "made the table's data key for tenant secrets");
        return Sealer::from_key(plain.as_ref());
    }
    // Another process stored one first: use that one.
    let wrapped = stored(store).await?.ok_or_else(|| StoreError::Unavailable("the data key vanished".into()))?;
    unwrap(kms, wrapped).await
}

async fn stored(store: &DynamoStore) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(item) = store.get(key(PK.to_owned(), SK)).await? else { return Ok(None) };
    match item.get(WRAPPED) {
        Some(AttributeValue::B(blob)) => Ok(Some(blob.as_ref().to_vec())),
        _ => Err(StoreError::Corrupt("the data key item has no wrapped key".into())),
    }
}

async fn unwrap(kms: &aws_sdk_kms::Client, wrapped: Vec<u8>) -> Result<Sealer, StoreError> {
    let out =
        kms.decrypt().ciphertext_blob(Blob::new(wrapped)).send().await.map_err(|e| {
            StoreError::Unavailable(format!("KMS cannot unwrap the table's data key: {}", unavailable(e)))
        })?;
    let plain =
        out.plaintext().ok_or_else(|| StoreError::Unavailable("KMS answered Decrypt without the key".into()))?;
    Sealer::from_key(plain.as_ref())
}
