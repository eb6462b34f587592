//! What every connector shares at the webhook route: providers are routed
//! by the tenant's own provider, unknown ones are refused, and the
//! unmapped tallies start empty.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::failing_store::FailingStore;
use crate::support::spawn_app::SECRET;
use crate::support::{crm_sample, interaction, TestApp};
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

/// HighLevel redelivers only after a 429, so that is what a failure to
/// store answers it, with `Retry-After`; the redelivery then scores.
#[tokio::test]
async fn a_failure_to_store_answers_highlevel_429_with_retry_after() {
    let dir = tempfile::TempDir::new().unwrap();
    let store = Arc::new(FailingStore::new(Arc::new(EmbeddedStore::open(dir.path()).unwrap())));
    let app = TestApp::spawn_on(store.clone()).await;
    app.create_crm_tenant("hl", "highlevel", json!({})).await;
    let profile = "/v1/tenants/hl/profiles/engagement";
    let rules = json!({"name": "Forms", "rules": [{"id": "form", "when": {"type": "form.submitted"}, "points": 5}]});
    assert_eq!(app.admin(Method::PUT, profile, Some(rules)).await.0, StatusCode::CREATED);
    assert_eq!(app.admin(Method::POST, &format!("{profile}/publish"), None).await.0, StatusCode::OK);
    let body = crm_sample("highlevel", "workflow_webhook_form_submitted_constructed.json");
    let url = format!("{}/v1/webhooks/highlevel/hl?key={SECRET}", app.base);
    let post = || app.http.post(&url).header("content-type", "application/json").body(body.clone()).send();

    store.fail_writes(true);
    let refused = post().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("60"));
    assert_eq!(app.score("hl", "c_42hlWf01").await, None, "nothing was scored");

    store.fail_writes(false);
    let accepted = post().await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(app.score("hl", "c_42hlWf01").await, Some(json!(5)), "the redelivery scores");
}
