//! The outbound policy, with the operator's setting off as deployed: no
//! tenant can aim scorehook at loopback, link-local or private addresses,
//! at plain http or another scheme, whether the URL names the address or a
//! name that resolves to it; and a redirect is never followed, so no
//! credential reaches a host nobody configured. The fakes listen on
//! loopback, which is exactly what must stay out of reach.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use scorehook::crm::egress::Egress;
use scorehook::crm::{Deliverer, DeliveryError};
use scorehook::ids::TenantId;

use crate::support::spawn_app::SECRET;
use crate::support::{fired_action, interaction, FakeCrm, RecordingCrm, TestApp};

/// `https://localhost:<port>` of a fake on 127.0.0.1: it passes every check
/// made on the text, and only the resolver stands between it and the fake.
fn by_name(url: &str) -> String {
    let port = url.rsplit(':').next().unwrap();
    format!("https://localhost:{port}")
}

#[tokio::test]
async fn urls_a_tenant_names_are_refused_when_saved_unless_public_https_and_nothing_changes() {
    let app = TestApp::spawn_public_only().await;
    let put = |body: Value| app.admin(Method::PUT, "/v1/tenants/acme", Some(body));
    for url in [
        "http://127.0.0.1:4000/actions",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/",
        "https://0.0.0.0/",
        "https://10.0.0.7/",
        "https://[::ffff:127.0.0.1]/",
        "https://user:pass@hooks.example.com/",
        "not a url",
    ] {
        let body = json!({"provider": "generic", "webhook_secret": SECRET, "actions_url": url});
        let (status, answer) = put(body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {answer}");
        assert_eq!(answer["error"]["path"], "actions_url", "{url}");
    }
    for base in ["file:///etc/passwd", "gopher://internal:70/_", "http://api.hubapi.com", "https://172.16.0.1"] {
        let body = json!({"provider": "hubspot", "webhook_secret": SECRET, "crm": {"base_url": base}});
        let (status, answer) = put(body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{base}: {answer}");
        assert_eq!(answer["error"]["path"], "crm.base_url", "{base}");
    }
    assert_eq!(app.admin(Method::GET, "/v1/tenants/acme", None).await.0, StatusCode::NOT_FOUND, "nothing was created");

    let good = json!({"provider": "generic", "webhook_secret": SECRET, "actions_url": "https://hooks.example.com/in"});
    assert_eq!(put(good).await.0, StatusCode::CREATED);
    let bad = json!({"provider": "generic", "actions_url": "https://192.168.1.1/in"});
    assert_eq!(put(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, tenant) = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(tenant["actions_url"], "https://hooks.example.com/in", "the refused update changed nothing");

    let trigger = json!({"name": "T", "when": {"event": {"type": "email.opened"}},
                         "actions": [{"type": "webhook", "url": "https://127.0.0.1:8080/hook"}]});
    let (status, answer) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/t", Some(trigger)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["path"], "actions[0].url");
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_at_connect_time_for_actions_url_and_webhook_actions() {
    let receiver = RecordingCrm::start().await;
    let app = TestApp::spawn_public_only().await;
    let body = json!({"provider": "generic", "webhook_secret": SECRET, "actions_url": format!("{}/actions", by_name(&receiver.url))});
    assert_eq!(
        app.admin(Method::PUT, "/v1/tenants/acme", Some(body)).await.0,
        StatusCode::CREATED,
        "a name passes the save check"
    );
    let trigger = json!({"name": "T", "when": {"event": {"type": "email.opened"}}, "actions": [
        {"type": "add_tag", "tag": "opened"},
        {"type": "webhook", "url": format!("{}/hook", by_name(&receiver.url))}]});
    assert_eq!(app.admin(Method::PUT, "/v1/tenants/acme/triggers/t", Some(trigger)).await.0, StatusCode::CREATED);
    let profile = json!({"name": "E", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1}]});
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(profile)).await;
    app.admin(Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None).await;

    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    app.drain_outbox().await;
    let dead = app.actions("acme", "dead").await;
    assert_eq!(dead.len(), 2, "both refused for good, not retried: {dead:?}");
    for action in &dead {
        let reason = action["reason"].as_str().unwrap();
        assert!(reason.contains("outbound policy") && reason.contains("not on the public internet"), "{reason}");
        assert!(!reason.contains("localhost"), "the reason is fixed, without the URL: {reason}");
    }
    assert!(receiver.received().await.is_empty(), "nothing reached the loopback listener");
}

#[tokio::test]
async fn a_crm_api_on_a_name_that_resolves_to_loopback_is_refused_and_never_called() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let settings = json!({"api_token": "ac-token", "base_url": by_name(&crm.url)});
    app.create_crm_tenant("acme", "activecampaign", settings).await;
    let tenant = app.local.service.store.tenant(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap();
    let item = fired_action("acme", "add_note", json!({"text": "x"}), "42", None, chrono::Utc::now());
    let deliverer = Deliverer::new(Egress::PUBLIC_ONLY).unwrap();
    match deliverer.deliver(&tenant, &item, chrono::Utc::now(), &app.local.service).await {
        Err(DeliveryError::Permanent { message, http_status: None }) => {
            assert!(message.contains("outbound policy"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(crm.calls().is_empty(), "the CRM fake was never called");
}

#[tokio::test]
async fn a_redirect_is_a_permanent_failure_and_no_credential_reaches_the_second_host() {
    let (app, first, second) = (TestApp::spawn().await, FakeCrm::start().await, FakeCrm::start().await);
    let settings = json!({"api_token": "ac-token-never-forwarded", "base_url": first.url});
    app.create_crm_tenant("acme", "activecampaign", settings).await;
    let tenant = app.local.service.store.tenant(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap();
    let elsewhere = format!("{}/api/3/notes", second.url);
    first.once("POST", "/api/3/notes", 307, &[("location", elsewhere.as_str())], json!({}));
    let item = fired_action("acme", "add_note", json!({"text": "x"}), "42", None, chrono::Utc::now());
    let deliverer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap();
    match deliverer.deliver(&tenant, &item, chrono::Utc::now(), &app.local.service).await {
        Err(DeliveryError::Permanent { http_status: Some(307), message }) => {
            assert!(message.contains("307"), "the failure names the status: {message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(first.calls().len(), 1);
    assert!(second.calls().is_empty(), "the redirect was not followed");
}

#[tokio::test]
async fn a_crm_api_base_url_must_name_one_of_the_providers_hosts_when_saved_and_when_sent() {
    let app = TestApp::spawn_public_only().await;
    let put = |body: Value| app.admin(Method::PUT, "/v1/tenants/acme", Some(body));
    for (provider, base) in [
        ("hubspot", "https://example.com"),
        ("hubspot", "https://hubapi.com.example.com"),
        ("pipedrive", "https://api.pipedrive.com.example.com"),
        ("activecampaign", "https://acme.example.com"),
        ("highlevel", "https://services.leadconnectorhq.com.evil.example"),
    ] {
        let body = json!({"provider": provider, "webhook_secret": SECRET, "crm": {"base_url": base}});
        let (status, answer) = put(body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{provider} {base}: {answer}");
        assert_eq!(answer["error"]["path"], "crm.base_url");
        assert!(answer["error"]["message"].as_str().unwrap().contains("API hosts"), "{answer}");
    }
    let hook = json!({"provider": "bitrix24", "webhook_secret": SECRET,
                      "crm": {"webhook_url": "https://b24.example.com/rest/1/code/"}});
    assert_eq!(put(hook).await.1["error"]["path"], "crm.webhook_url");
    for (url, path) in [
        (json!("https://b24.example.com/rest/7/code/"), "crm.user_webhooks.7"),
        (json!("http://127.0.0.1:9/rest/7/code/"), "crm.user_webhooks.7"),
        (json!(7), "crm.user_webhooks.7"),
    ] {
        let hook = json!({"provider": "bitrix24", "webhook_secret": SECRET, "crm": {"user_webhooks": {"7": url}}});
        assert_eq!(put(hook).await.1["error"]["path"], path, "{url}");
    }
    assert_eq!(app.admin(Method::GET, "/v1/tenants/acme", None).await.0, StatusCode::NOT_FOUND, "nothing was created");
    for (provider, base) in [
        ("hubspot", "https://api-eu1.hubapi.com"),
        ("pipedrive", "https://acme.pipedrive.com"),
        ("activecampaign", "https://acme.api-us1.com"),
    ] {
        let body = json!({"provider": provider, "webhook_secret": SECRET, "crm": {"base_url": base}});
        let (status, answer) = put(body).await;
        assert!(status.is_success(), "{provider} {base}: {answer}");
    }

    // A record that predates the rule is refused when it is sent.
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    app.create_crm_tenant("acme", "activecampaign", json!({"api_token": "t", "base_url": "https://acme.example.com"}))
        .await;
    let tenant = app.local.service.store.tenant(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap();
    let item = fired_action("acme", "add_note", json!({"text": "x"}), "42", None, chrono::Utc::now());
    match Deliverer::new(Egress::PUBLIC_ONLY)
        .unwrap()
        .deliver(&tenant, &item, chrono::Utc::now(), &app.local.service)
        .await
    {
        Err(DeliveryError::Permanent { message, http_status: None }) => {
            assert!(message.contains("not one of activecampaign's API hosts"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(crm.calls().is_empty());
}

#[tokio::test]
async fn a_tenant_sees_the_status_and_a_fixed_reason_never_the_answers_body_nor_a_urls_query() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let settings = json!({"api_token": "ac-token-echoed", "base_url": crm.url});
    app.create_crm_tenant("acme", "activecampaign", settings).await;
    crm.on("POST", "/api/3/notes", 403, json!({"message": "INTERNAL-ONLY: db=10.0.0.5 token ac-token-echoed"}));
    let tenant = app.local.service.store.tenant(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap();
    let item = fired_action("acme", "add_note", json!({"text": "x"}), "42", None, chrono::Utc::now());
    let deliverer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap();
    match deliverer.deliver(&tenant, &item, chrono::Utc::now(), &app.local.service).await {
        Err(DeliveryError::Permanent { http_status: Some(403), message }) => {
            assert!(message.contains("403") && message.contains("lack a permission"), "{message}");
            assert!(!message.contains("INTERNAL-ONLY") && !message.contains("ac-token"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(crm.calls().len(), 1, "the CRM was called and its answer read");

    let hook = json!({"provider": "generic", "webhook_secret": SECRET,
                      "actions_url": "https://hooks.example.com/in?token=s3cret#x"});
    assert_eq!(app.admin(Method::PUT, "/v1/tenants/gen", Some(hook)).await.0, StatusCode::CREATED);
    let (_, shown) = app.admin(Method::GET, "/v1/tenants/gen", None).await;
    assert_eq!(shown["actions_url"], "https://hooks.example.com/in?***", "{shown}");
    let query =
        json!({"crm": {"api_token": "t", "base_url": "https://acme.api-us1.com?q=1#"}, "provider": "activecampaign"});
    let (status, answer) = app.admin(Method::PUT, "/v1/tenants/acme", Some(query)).await;
    assert_eq!((status, &answer["error"]["path"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("crm.base_url")));
}
