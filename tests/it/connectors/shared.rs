//! What every connector shares at the webhook route: providers are routed
//! by the tenant's own provider, unknown ones are refused, and the
//! unmapped tallies start empty.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestApp;

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
