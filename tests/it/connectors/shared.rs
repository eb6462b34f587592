//! What every connector shares at the webhook route: providers are routed
//! by the tenant's own provider, unknown ones are refused, and the
//! unmapped tallies start empty.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::failing_store::FailingStore;
use crate::support::{interaction, TestApp};
use scorehook::store::embedded::EmbeddedStore;

#[tokio::test]
async fn a_webhook_for_another_provider_than_the_tenants_is_refused_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let (status, body) = app.post_provider("/v1/webhooks/hubspot/acme", &[], b"[]").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = app.post_provider("/v1/webhooks/salesforce/acme", &[], b"[]").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(app.unmapped("acme").await, json!({}));

    // A HubSpot tenant's generic-signed webhook is refused the same way.
    app.create_crm_tenant("hub", "hubspot", json!({"client_secret": "s"})).await;
    let (status, _) = app.post_webhook("hub", &json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_failure_to_store_answers_503_and_the_redelivery_scores() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = Arc::new(FailingStore::new(Arc::new(EmbeddedStore::open(dir.path()).unwrap())));
    let app = TestApp::spawn_on(store.clone()).await;
    app.seeds_tenant("acme", None).await;
    let event = interaction("evt_1", "email.opened", "jhon");

    store.fail_writes(true);
    let (status, body) = app.post_webhook("acme", &event).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert_eq!(app.score("acme", "jhon").await, None, "nothing was scored");

    store.fail_writes(false);
    let (status, body) = app.post_webhook("acme", &event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 1, "the redelivery is not mistaken for a duplicate");
    assert!(app.score("acme", "jhon").await.is_some());
}
