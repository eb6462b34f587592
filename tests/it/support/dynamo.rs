//! DynamoDB for tests: a real DynamoDB API server (moto, started by
//! `scripts/test.sh`) at `DYNAMODB_ENDPOINT`. Each call makes a fresh table,
//! so tests never share state. Without an endpoint the DynamoDB tests skip
//! on a developer machine and fail under CI (`CI=true`).

use scorehook::store::dynamodb::DynamoStore;
use scorehook::store::sealing::{Sealer, KEY_LEN};

pub fn endpoint() -> Option<String> {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but DYNAMODB_ENDPOINT is not set: the DynamoDB tests must run in CI (use scripts/test.sh)")
        }
        _ => {
            eprintln!("skipped: DYNAMODB_ENDPOINT is not set (scripts/test.sh starts moto and sets it)");
            None
        }
    }
}

/// A store over a new, empty table; `None` when the tests should skip.
pub async fn fresh_store() -> Option<DynamoStore> {
    let endpoint = endpoint()?;
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).unwrap();
    let table = format!("scorehook-test-{}", hex::encode(suffix));
    let store =
        DynamoStore::connect(table, Some(&endpoint)).await.with_sealer(Sealer::from_key(&[9; KEY_LEN]).unwrap());
    assert!(store.ensure_table().await.unwrap(), "a fresh table is created");
    Some(store)
}
