//! Tenant secrets are sealed at rest on both stores: the embedded store's
//! directory and files are private to their owner and hold no secret's
//! bytes; on DynamoDB (moto, with moto's KMS) a tenant item's `doc` holds
//! none, and a second process opens them through KMS. Records stored in
//! plaintext by an earlier release still read, and are sealed on their
//! next save.

use std::sync::Arc;

use redb::ReadableTable;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use scorehook::clock::ManualClock;
use scorehook::ids::TenantId;
use scorehook::service::admin::TenantInput;
use scorehook::service::{Caller, Service};
use scorehook::store::dynamodb::{data_key, DynamoStore};
use scorehook::store::Store;
use scorehook::tenant::{Provider, Secret};

use crate::support::dynamo::{endpoint, fresh_store};
use crate::support::spawn_app::{SECRET, SIGNING_SECRET};
use crate::support::{interaction, TestApp};

const API_TOKEN: &str = "pd-api-token-3f9a1c";
const PASSWORD: &str = "basic-password-77e2";

/// Every secret a Pipedrive tenant holds, as its settings give them.
fn secrets() -> [&'static str; 4] {
    [SECRET, SIGNING_SECRET, API_TOKEN, PASSWORD]
}

fn pipedrive(tenant: &str) -> Value {
    json!({"provider": "pipedrive", "webhook_secret": SECRET, "signing_secret": SIGNING_SECRET,
           "crm": {"api_token": API_TOKEN, "basic_password": PASSWORD, "webhook_user": "crm-user-"}, "tenant": tenant})
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_embedded_store_is_private_to_its_owner_and_holds_no_secret_in_the_clear() {
    let parent = tempfile::TempDir::new().unwrap();
    let data = parent.path().join("data");
    let clock = Arc::new(ManualClock::new(crate::support::spawn_app::start_time()));
    let local = scorehook::app::Local::open(&data, clock, None).unwrap();
    let mut body = pipedrive("acme");
    body.as_object_mut().unwrap().remove("tenant");
    let input = TenantInput {
        provider: Provider::Pipedrive,
        webhook_secret: Some(Secret::new(SECRET)),
        actions_url: None,
        crm: body["crm"].as_object().unwrap().clone(),
        signing_secret: Some(Secret::new(SIGNING_SECRET)),
    };
    let tenant = TenantId::parse("acme").unwrap();
    local.service.put_tenant(&Caller::Operator, &tenant, input).await.unwrap();
    drop(local);

    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700, "the data directory");
        assert_eq!(mode(&data.join("scorehook.redb")), 0o600, "the store's file");
        assert_eq!(mode(&data.join("secrets.key")), 0o600, "the key file");
    }
    let file = std::fs::read(data.join("scorehook.redb")).unwrap();
    for secret in secrets() {
        assert!(!contains(&file, secret), "{secret} is in the store's file");
    }
    // Opened again, the secrets read back whole.
    let store = scorehook::store::embedded::EmbeddedStore::open(&data).unwrap();
    let record = store.tenant(&tenant).await.unwrap().unwrap();
    assert_eq!(record.webhook_secret.expose(), SECRET);
    assert_eq!(record.signing_secret.as_ref().map(Secret::expose), Some(SIGNING_SECRET));
    assert_eq!(record.crm["api_token"], API_TOKEN);
    assert_eq!(record.crm["webhook_user"], "crm-user-");
    drop(store);

    // Without its key the directory's sealed secrets cannot be read: it does not open, and no key is made.
    std::fs::remove_file(data.join("secrets.key")).unwrap();
    let refused = scorehook::store::embedded::EmbeddedStore::open(&data).unwrap_err().to_string();
    assert!(refused.contains("secrets.key is missing"), "{refused}");
    assert!(!data.join("secrets.key").exists());
}

#[tokio::test]
async fn a_tenant_stored_in_the_clear_by_an_earlier_release_reads_and_is_sealed_on_its_next_save() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let dir = app.stop().await;
    // As an earlier release stored it: the record as plain JSON.
    let rows = |name| -> redb::TableDefinition<&str, &[u8]> { redb::TableDefinition::new(name) };
    let path = dir.path().join("scorehook.redb");
    let plain = {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let plain = {
            let mut tenants = txn.open_table(rows("tenants")).unwrap();
            let mut doc: Value = serde_json::from_slice(tenants.get("acme").unwrap().unwrap().value()).unwrap();
            assert!(doc.get("sealed").is_some() && doc.get("webhook_secret").is_none(), "{doc}");
            let fields = doc.as_object_mut().unwrap();
            fields.remove("sealed");
            fields.insert("webhook_secret".into(), json!(SECRET));
            tenants.insert("acme", serde_json::to_vec(&doc).unwrap().as_slice()).unwrap();
            doc
        };
        txn.commit().unwrap();
        plain
    };
    assert_eq!(plain["webhook_secret"], SECRET);

    let app = TestApp::spawn_in(dir, false).await;
    let (status, body) = app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the clear record authenticates: {body}");
    let update = json!({"provider": "generic", "actions_url": null});
    assert_eq!(app.admin(Method::PUT, "/v1/tenants/acme", Some(update)).await.0, StatusCode::OK);
    let dir = app.stop().await;
    let db = redb::Database::open(dir.path().join("scorehook.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let tenants = txn.open_table(rows("tenants")).unwrap();
    let row = tenants.get("acme").unwrap().unwrap().value().to_vec();
    assert!(!contains(&row, SECRET), "sealed on its next save");
}

/// A KMS key on the test endpoint (moto's KMS).
async fn kms_key(endpoint: &str) -> (aws_sdk_kms::Client, String) {
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let kms = aws_sdk_kms::Client::new(&aws);
    let key = kms.create_key().description("scorehook test").send().await.unwrap();
    let id = key.key_metadata().unwrap().key_id().to_owned();
    (kms, id)
}

#[tokio::test]
async fn on_dynamodb_the_tenant_item_holds_no_secret_and_another_process_opens_them_through_kms() {
    let (Some(endpoint), Some(keyed)) = (endpoint(), fresh_store().await) else { return };
    let (kms, key_id) = kms_key(&endpoint).await;
    let table = keyed.table().to_owned();
    let client = keyed.client().clone();
    let process = || DynamoStore::new(client.clone(), table.clone());

    let clock = Arc::new(ManualClock::new(crate::support::spawn_app::start_time()));
    let first = process().with_sealer(data_key::sealer(&process(), &kms, &key_id).await.unwrap());
    let service = Service::new(Arc::new(first), clock.clone(), None);
    let tenant = TenantId::parse("acme").unwrap();
    let input = |signing: Option<&str>| TenantInput {
        provider: Provider::Pipedrive,
        webhook_secret: Some(Secret::new(SECRET)),
        actions_url: None,
        crm: pipedrive("acme")["crm"].as_object().unwrap().clone(),
        signing_secret: signing.map(Secret::new),
    };
    service.put_tenant(&Caller::Operator, &tenant, input(Some(SIGNING_SECRET))).await.unwrap();

    let raw = |sk: &'static str, pk: &'static str| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            let key = [("pk", pk), ("sk", sk)]
                .map(|(k, v)| (k.to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned())));
            client.get_item().table_name(table).set_key(Some(key.into())).send().await.unwrap().item().cloned()
        }
    };
    let item = raw("TENANT", "T#acme").await.expect("the tenant item");
    let doc = item["doc"].as_s().unwrap();
    for secret in secrets() {
        assert!(!doc.contains(secret), "{secret} in the doc: {doc}");
    }
    let wrapped = raw("DATA_KEY#1", "_scorehook").await.expect("the wrapped data key");
    assert!(wrapped["wrapped"].as_b().is_ok());

    // Another process: the data key through KMS's Decrypt, the secrets whole.
    let second = process().with_sealer(data_key::sealer(&process(), &kms, &key_id).await.unwrap());
    let record = second.tenant(&tenant).await.unwrap().unwrap();
    assert_eq!(record.webhook_secret.expose(), SECRET);
    assert_eq!(record.crm["api_token"], API_TOKEN);
    // A process whose key is not the table's cannot read them, and says so.
    let wrong = process().with_sealer(scorehook::store::sealing::Sealer::from_key(&[1; 32]).unwrap());
    assert!(matches!(wrong.tenant(&tenant).await, Err(scorehook::store::StoreError::Corrupt(_))));
    // Without any key, nothing can be saved in the clear.
    let keyless = Service::new(Arc::new(process()), clock, None);
    assert!(keyless.put_tenant(&Caller::Operator, &tenant, input(None)).await.is_err());
    let still = raw("TENANT", "T#acme").await.unwrap();
    assert_eq!(still["doc"], item["doc"], "the refused save changed nothing");
}

#[tokio::test]
async fn a_table_refuses_a_key_other_than_the_one_its_secrets_are_sealed_with() {
    let (Some(endpoint), Some(kms_table), Some(file_table)) = (endpoint(), fresh_store().await, fresh_store().await)
    else {
        return;
    };
    let (kms, key_id) = kms_key(&endpoint).await;
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let dir = tempfile::TempDir::new().unwrap();
    let with_file = |name: &str| scorehook::settings::Settings {
        secrets_key_file: Some(dir.path().join(name)),
        ..Default::default()
    };
    let with_kms = scorehook::settings::Settings { kms_key_id: Some(key_id.clone()), ..Default::default() };
    let open = |table: &DynamoStore| DynamoStore::new(table.client().clone(), table.table().to_owned());

    // A KMS-sealed table: a key file is refused, naming KMS.
    data_key::sealer(&open(&kms_table), &kms, &key_id).await.unwrap();
    let refused = data_key::configured_sealer(&open(&kms_table), &aws, &with_file("a.key"), None).await.unwrap_err();
    assert!(refused.to_string().contains("SCOREHOOK_KMS_KEY_ID"), "{refused}");

    // A key-file table: its first key stands; another file, or KMS, is refused.
    data_key::configured_sealer(&open(&file_table), &aws, &with_file("a.key"), None).await.unwrap();
    data_key::configured_sealer(&open(&file_table), &aws, &with_file("a.key"), None).await.unwrap();
    let other = data_key::configured_sealer(&open(&file_table), &aws, &with_file("b.key"), None).await.unwrap_err();
    assert!(other.to_string().contains("another key file"), "{other}");
    let kms_on_file = data_key::configured_sealer(&open(&file_table), &aws, &with_kms, None).await.unwrap_err();
    assert!(kms_on_file.to_string().contains("sealed with a key file"), "{kms_on_file}");
}
