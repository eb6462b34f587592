//! No secret reaches a log line: a real `scorehook serve` at debug level
//! takes a keyed ActiveCampaign webhook (the secret is in the URL), refuses
//! a wrong one, rotates the tenant's admin token, and delivers an action
//! with the tenant's API token; its whole log is then scanned for every
//! secret involved.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::process::Server;
use crate::support::spawn_app::SECRET;
use crate::support::{crm_sample, seeds_profile, FakeCrm, ADMIN_TOKEN};

#[tokio::test]
async fn no_secret_or_credential_appears_in_any_log_line() {
    let dir = tempfile::TempDir::new().unwrap();
    let log_path = dir.path().join("server.log");
    let crm = FakeCrm::start().await;
    crm.on("GET", "/api/3/tags", 200, json!({"tags": [{"id": "20", "tag": "Caliente", "tagType": "contact"}]}));
    crm.on("POST", "/api/3/contactTags", 201, json!({"contactTag": {"id": "1", "contact": "42", "tag": "20"}}));
    let api_token = "ac-api-token-do-not-log-77";
    let server =
        Server::start_logging(&dir.path().join("data"), "debug", std::fs::File::create(&log_path).unwrap()).await;

    let tenant = json!({"provider": "activecampaign", "webhook_secret": SECRET,
                        "crm": {"base_url": crm.url, "api_token": api_token}});
    let (status, created) = server.admin(Method::PUT, "/v1/tenants/ac", Some(tenant)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let tenant_token = created["token"].as_str().unwrap().to_owned();
    let (status, rotated) = server.admin(Method::POST, "/v1/tenants/ac/token/rotate", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let rotated_token = rotated["token"].as_str().unwrap().to_owned();
    server.admin(Method::PUT, "/v1/tenants/ac/profiles/engagement", Some(seeds_profile())).await;
    server.admin(Method::POST, "/v1/tenants/ac/profiles/engagement/publish", None).await;
    let trigger = json!({"name": "Warm", "when": {"score": {"profile": "engagement", "op": "gte", "value": 1}},
                         "actions": [{"type": "add_tag", "tag": "Caliente"}]});
    server.admin(Method::PUT, "/v1/tenants/ac/triggers/warm", Some(trigger)).await;

    let body = crm_sample("activecampaign", "open_constructed.txt");
    let post = |key: &str| {
        server
            .http
            .post(format!("{}/v1/webhooks/activecampaign/ac?key={key}", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
    };
    assert_eq!(post("a-wrong-key-that-is-also-secret").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post(SECRET).await.unwrap().status(), StatusCode::ACCEPTED);
    let delivered = crm.called("POST", "/api/3/contactTags").await;
    assert_eq!(delivered.header("api-token"), Some(api_token), "the token went to the CRM, where it belongs");
    // The CRM has the call, but the server logs the delivery only once the
    // answer is back, just before it records the action done: wait for that.
    server.await_actions("ac", "done", 1).await;
    let (_, tenant) = server.admin(Method::GET, "/v1/tenants/ac", None).await;
    assert_eq!(tenant["crm"], json!({"base_url": crm.url}));
    server.kill().await;

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("webhook refused"), "the log was captured: {log}");
    assert!(log.contains("action delivered"), "the delivery was logged: {log}");
    assert!(log.contains("tenant admin token rotated"), "the rotation was logged: {log}");
    let secrets = [SECRET, api_token, ADMIN_TOKEN, &tenant_token, &rotated_token, "a-wrong-key-that-is-also-secret"];
    for secret in secrets {
        assert!(!log.contains(secret), "a log line holds a secret ({secret}):\n{log}");
    }
}
