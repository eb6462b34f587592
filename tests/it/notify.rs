//! `notify`, "tell the team": with a URL, a Slack- or e-mail-service-
//! compatible `{"text": …}` POST, signed; without one, a generic tenant's
//! receiver gets the envelope and a CRM a task due at once, assigned to the
//! user named (else the tenant's default owner), which the CRM notifies.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use scorehook::clock::Clock;
use scorehook::crm::egress::Egress;
use scorehook::crm::{standard_webhooks, Deliverer};
use scorehook::ids::TenantId;

use crate::support::spawn_app::SIGNING_SECRET;
use crate::support::{interaction, FakeCrm, RecordingCrm, TestApp};

/// A trigger that sends `notify` (these keys besides its message) on every open.
fn notice(extra: Value) -> Value {
    let mut action = json!({"type": "notify", "message": "{{contact.id}} is hot: {{score.e}} points"});
    action.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"name": "Tell the team", "when": {"event": {"type": "email.opened"}}, "runs": "every_time",
           "actions": [action]})
}

async fn scoring_opens(app: &TestApp, tenant: &str) {
    let path = format!("/v1/tenants/{tenant}/profiles/e");
    let rules = json!({"name": "E", "rules": [{"id": "o", "when": {"type": "email.opened"}, "points": 1}]});
    assert_eq!(app.admin(Method::PUT, &path, Some(rules)).await.0, StatusCode::CREATED);
    assert_eq!(app.admin(Method::POST, &format!("{path}/publish"), None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn with_a_url_the_team_gets_a_signed_text_post_and_without_one_the_receiver_gets_the_notice() {
    let (app, receiver, slack) = (TestApp::spawn().await, RecordingCrm::start().await, RecordingCrm::start().await);
    app.create_tenant("acme", Some(&receiver.url)).await;
    scoring_opens(&app, "acme").await;
    let both = json!({"name": "Tell the team", "when": {"event": {"type": "email.opened"}}, "runs": "every_time",
        "actions": [{"type": "notify", "message": "{{contact.id}} is hot: {{score.e}} points", "url": slack.url},
                    {"type": "notify", "message": "Call {{contact.id}}", "user": "u-7"}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/team", Some(both)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    app.post_webhook("acme", &interaction("open-1", "email.opened", "jhon")).await;
    app.drain_outbox().await;
    let posted = slack.received().await;
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].body, json!({"text": "jhon is hot: 1 points"}), "Slack's incoming-webhook shape");
    let key = standard_webhooks::key_of(SIGNING_SECRET).unwrap();
    let header = |name: &str| posted[0].header(name);
    let verified = standard_webhooks::verify(
        &key,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &posted[0].raw,
        app.clock.now(),
    );
    assert_eq!(verified, Ok(()), "signed like every action");
    let enveloped = receiver.received().await;
    assert_eq!(enveloped.len(), 1, "only the notice without a URL goes to actions_url");
    assert_eq!(enveloped[0].body["type"], "notify");
    assert_eq!(enveloped[0].body["params"], json!({"message": "Call jhon", "user": "u-7", "url": null}));
    assert_eq!(app.actions("acme", "done").await.len(), 2);
}

#[tokio::test]
async fn a_notice_url_is_held_to_the_outbound_policy_and_a_bad_notice_is_refused() {
    let app = TestApp::spawn_public_only().await;
    app.create_tenant("acme", None).await;
    scoring_opens(&app, "acme").await;
    let path = "/v1/tenants/acme/triggers/team";
    for (extra, field) in [
        (json!({"url": "http://127.0.0.1:9/hook"}), "actions[0].url"),
        (json!({"url": "https://169.254.169.254/latest"}), "actions[0].url"),
        (json!({"url": "ftp://example.com"}), "actions[0].url"),
        (json!({"user": " "}), "actions[0].user"),
        (json!({"message": ""}), "actions[0].message"),
    ] {
        let (status, body) = app.admin(Method::PUT, path, Some(notice(extra.clone()))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{extra}: {body}");
        assert_eq!(body["error"]["path"], field, "{extra}: {body}");
    }
    let (status, _) = app.admin(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was saved");
}

#[tokio::test]
async fn on_hubspot_a_notice_is_a_task_due_now_for_the_user_or_the_default_owner() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    let settings = json!({"client_secret": "hs-client-secret-0123", "access_token": "pat-na1-test",
                          "base_url": crm.url, "owner_id": "64492917"});
    app.create_crm_tenant("acme", "hubspot", settings).await;
    let tenant = app.local.service.store.tenant(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap();
    crm.on("POST", "/crm/v3/objects/tasks", 201, json!({"id": "9001"}));
    let deliverer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap();
    let now: DateTime<Utc> = "2025-11-25T14:00:00Z".parse().unwrap();
    for (user, owner) in [(json!("111"), "111"), (Value::Null, "64492917")] {
        let params = json!({"message": "Ana is hot\nScore 42", "user": user, "url": null});
        let item = crate::support::fired_action("acme", "notify", params, "101", None, now);
        let delivered = deliverer.deliver(&tenant, &item, now, &app.local.service).await;
        assert_eq!(crate::support::sent(delivered), Ok(201));
        let call = crm.calls().pop().unwrap();
        assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/crm/v3/objects/tasks"));
        let properties = &call.body["properties"];
        assert_eq!(properties["hs_task_subject"], "Ana is hot");
        assert_eq!(properties["hs_task_body"], "Ana is hot\nScore 42");
        assert_eq!(properties["hs_timestamp"], "2025-11-25T14:00:00Z", "due when it fired");
        assert_eq!(properties["hubspot_owner_id"], owner);
    }
}
