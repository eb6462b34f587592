//! Tenant isolation: a tenant's token opens its own tenant only, and is
//! refused elsewhere with the very answer an unknown tenant gets (so it
//! reveals nothing); another tenant's webhook secret is refused; secrets
//! and CRM credentials never come back in any answer.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{interaction, TestApp};

/// Every admin route, with a body where it takes one.
fn admin_routes(tenant: &str) -> Vec<(Method, String, Option<Value>)> {
    let t = format!("/v1/tenants/{tenant}");
    let profile = json!({"name": "P", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1}]});
    let trigger = json!({"name": "T", "when": {"score": {"profile": "engagement", "gte": 1}}, "actions": []});
    vec![
        (Method::GET, t.clone(), None),
        (Method::PUT, t.clone(), Some(json!({"provider": "generic"}))),
        (Method::GET, format!("{t}/webhooks/unmapped"), None),
        (Method::GET, format!("{t}/profiles"), None),
        (Method::GET, format!("{t}/profiles/engagement"), None),
        (Method::PUT, format!("{t}/profiles/stolen"), Some(profile)),
        (Method::POST, format!("{t}/profiles/engagement/publish"), None),
        (Method::POST, format!("{t}/profiles/engagement/archive"), None),
        (Method::POST, format!("{t}/profiles/engagement/simulate"), Some(json!({}))),
        (Method::GET, format!("{t}/triggers"), None),
        (Method::GET, format!("{t}/triggers/hot"), None),
        (Method::PUT, format!("{t}/triggers/stolen"), Some(trigger)),
        (Method::GET, format!("{t}/contacts?profile=engagement"), None),
        (Method::GET, format!("{t}/contacts/jhon/scores"), None),
        (Method::POST, format!("{t}/contacts/jhon/scores/engagement"), Some(json!({"op": "add", "points": 5}))),
        (Method::GET, format!("{t}/deals?profile=engagement"), None),
        (Method::GET, format!("{t}/deals/d1/scores"), None),
        (Method::GET, format!("{t}/actions"), None),
        (Method::POST, format!("{t}/actions/act_x/replay"), None),
        // Last: it replaces the tenant's token (the replaced one keeps a minute's grace).
        (Method::POST, format!("{t}/token/rotate"), Some(json!({"grace_seconds": 60}))),
    ]
}

#[tokio::test]
async fn another_tenants_token_opens_nothing_and_reveals_nothing() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    let rival = app.seeds_tenant("rival", None).await;

    for ((method, path, body), (_, ghost_path, _)) in admin_routes("acme").into_iter().zip(admin_routes("ghost")) {
        let (status, answer) = app.call(method.clone(), &path, Some(&rival), body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {answer}");
        let (ghost_status, ghost_answer) = app.call(method.clone(), &ghost_path, Some(&rival), body).await;
        assert_eq!((status, &answer), (ghost_status, &ghost_answer), "{method} {path}: same as for no tenant at all");
    }
    // Nothing the refused calls tried was done.
    assert_eq!(app.score("acme", "jhon").await, Some(json!(1)), "the score was not adjusted");
    let (_, profiles) = app.admin(Method::GET, "/v1/tenants/acme/profiles", None).await;
    assert!(!profiles.to_string().contains("stolen"), "{profiles}");
}

#[tokio::test]
async fn a_webhook_signed_with_another_tenants_secret_is_refused() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let rival = json!({"provider": "generic", "webhook_secret": "rival-secret-0123456789"});
    assert_eq!(app.admin(Method::PUT, "/v1/tenants/rival", Some(rival)).await.0, StatusCode::CREATED);
    let body = serde_json::to_vec(&interaction("e1", "email.opened", "jhon")).unwrap();
    let (status, _) = app.post_raw("acme", "rival-secret-0123456789", &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.score("acme", "jhon").await, None);
}

#[tokio::test]
async fn secrets_and_crm_credentials_never_come_back() {
    let app = TestApp::spawn().await;
    let credentials = json!({
        "access_token": "pat-na1-very-secret-token", "client_secret": "hub-client-secret-42", "portal_id": "62515"
    });
    let token = app.create_crm_tenant("hub", "hubspot", credentials).await;
    let secrets = ["pat-na1-very-secret-token", "hub-client-secret-42", crate::support::spawn_app::SECRET, &token];
    let (_, shown) = app.admin(Method::GET, "/v1/tenants/hub", None).await;
    assert_eq!(shown["crm"], json!({"portal_id": "62515"}), "only the non-secret settings are shown");
    let mut answers = Vec::new();
    for (method, path, body) in admin_routes("hub") {
        answers.push(app.call(method.clone(), &path, Some(&token), body.clone()).await.1);
        answers.push(app.admin(method, &path, body).await.1);
    }
    for answer in &answers {
        let text = answer.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "an answer leaked a secret: {text}");
        }
    }
}
