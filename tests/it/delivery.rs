//! The outbox: failed deliveries are retried with the same id after a
//! backoff, permanent failures and exhausted retries are dead letters, and
//! replay re-queues them. Time is a manual clock: nothing here sleeps.

use std::sync::Arc;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use scorehook::outbox::retry::RetryPolicy;
use serde_json::{json, Value};

use crate::support::{interaction, RecordingCrm, TestApp};

/// A tenant whose trigger fires one `add_tag` on every email open.
async fn tag_on_open(app: &TestApp, actions_url: Option<&str>) {
    app.create_tenant("acme", actions_url).await;
    let profile = json!({"name": "E", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1}]});
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(profile)).await;
    app.admin(Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None).await;
    let trigger = json!({"name": "Tag", "when": {"event": {"type": "email.opened"}}, "actions": [{"type": "add_tag", "tag": "opened"}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/tag", Some(trigger)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn only(actions: Vec<Value>) -> Value {
    assert_eq!(actions.len(), 1, "{actions:?}");
    actions.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_500_is_retried_after_backoff_with_the_same_id_until_it_succeeds() {
    let crm = RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    tag_on_open(&app, Some(&crm.url)).await;
    crm.respond_with(&[500, 503]);
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;

    app.drain_outbox().await;
    let failed = only(app.actions("acme", "failed").await);
    assert_eq!(failed["attempts"][0]["http_status"], 500);
    assert!(failed["next_attempt_at"].is_string());

    app.drain_outbox().await;
    let mut requests = crm.received().await;
    assert_eq!(requests.len(), 1, "not retried before its backoff");

    app.advance(TimeDelta::minutes(1));
    app.drain_outbox().await;
    app.advance(TimeDelta::minutes(1));
    app.drain_outbox().await;

    requests.extend(crm.received().await);
    assert_eq!(requests.len(), 3, "500, 503, then 204");
    let ids: Vec<&Value> = requests.iter().map(|r| &r.body["id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one id across retries: {ids:?}");
    let done = only(app.actions("acme", "done").await);
    assert_eq!(done["id"], *ids[0]);
    let statuses: Vec<&Value> = done["attempts"].as_array().unwrap().iter().map(|a| &a["http_status"]).collect();
    assert_eq!(statuses, [&json!(500), &json!(503), &json!(204)]);
}

#[tokio::test]
async fn a_429_or_503_with_retry_after_waits_as_long_as_asked() {
    let crm = RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    tag_on_open(&app, Some(&crm.url)).await;
    crm.retry_after("120");
    crm.respond_with(&[429, 503]);
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;

    for (status, answered) in [(429, 1), (503, 2)] {
        app.drain_outbox().await;
        let failed = only(app.actions("acme", "failed").await);
        assert_eq!(failed["attempts"][answered - 1]["http_status"], status);
        app.advance(TimeDelta::seconds(119));
        app.drain_outbox().await;
        assert_eq!(crm.received().await.len(), 1, "{status}: not before the 120 s asked (backoff alone is ~1 s)");
        app.advance(TimeDelta::seconds(2));
    }
    app.drain_outbox().await;
    assert_eq!(crm.received().await.len(), 1, "delivered on the third attempt");
    assert_eq!(only(app.actions("acme", "done").await)["attempts"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn exhausted_retries_are_dead_letters_that_replay_under_the_same_id() {
    let crm = RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    tag_on_open(&app, Some(&crm.url)).await;
    let attempts = RetryPolicy::default().max_attempts as usize;
    crm.respond_with(&vec![500; attempts]);
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    for _ in 0..attempts {
        app.drain_outbox().await;
        app.advance(TimeDelta::hours(2));
    }
    let dead = only(app.actions("acme", "dead").await);
    assert_eq!(dead["attempts"].as_array().unwrap().len(), attempts);
    assert_eq!(crm.received().await.len(), attempts);

    let id = dead["id"].as_str().unwrap();
    let (status, replayed) = app.admin(Method::POST, &format!("/v1/tenants/acme/actions/{id}/replay"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["status"], "pending");
    assert_eq!(replayed["reason"], serde_json::Value::Null, "a replay clears the reason");
    app.drain_outbox().await;
    let requests = crm.received().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body["id"], id);
    assert_eq!(only(app.actions("acme", "done").await)["attempts"].as_array().unwrap().len(), attempts + 1);

    let (status, _) = app.admin(Method::POST, &format!("/v1/tenants/acme/actions/{id}/replay"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a done action is not replayed");
    let (status, _) = app.admin(Method::POST, "/v1/tenants/acme/actions/act_unknown/replay", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_4xx_is_final_and_a_missing_actions_url_is_a_dead_letter_with_a_reason() {
    let crm = RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    tag_on_open(&app, Some(&crm.url)).await;
    crm.respond_with(&[400]);
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    app.drain_outbox().await;
    let dead = only(app.actions("acme", "dead").await);
    assert_eq!(dead["attempts"][0]["http_status"], 400);
    assert!(dead["reason"].as_str().unwrap().contains("400"), "a dead item says why: {dead}");

    let other = TestApp::spawn().await;
    tag_on_open(&other, None).await;
    other.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    other.drain_outbox().await;
    let dead = only(other.actions("acme", "dead").await);
    assert!(dead["attempts"][0]["error"].as_str().unwrap().contains("actions_url"), "{dead}");
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried() {
    let app = TestApp::spawn().await;
    // Port 9 (discard) is closed on loopback: the connection is refused.
    tag_on_open(&app, Some("http://127.0.0.1:9/actions")).await;
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    app.drain_outbox().await;
    let failed = only(app.actions("acme", "failed").await);
    assert_eq!(failed["attempts"][0]["http_status"], Value::Null);
    assert!(failed["attempts"][0]["error"].as_str().unwrap().contains("cannot reach"), "{failed}");
}

#[tokio::test]
async fn a_replay_during_an_in_flight_delivery_is_not_overwritten() {
    let crm = RecordingCrm::start().await;
    let app = Arc::new(TestApp::spawn().await);
    tag_on_open(&app, Some(&crm.url)).await;
    crm.respond_with(&[500, 500]);
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    app.drain_outbox().await;
    crm.received().await;
    let id = only(app.actions("acme", "failed").await)["id"].as_str().unwrap().to_owned();

    // The retry is in flight, held by the CRM, when the admin replays the action.
    app.advance(TimeDelta::minutes(1));
    let release = crm.hold_next();
    let executor = tokio::spawn({
        let app = Arc::clone(&app);
        async move { app.drain_outbox().await }
    });
    crm.next(std::time::Duration::from_secs(10)).await;
    let (status, _) = app.admin(Method::POST, &format!("/v1/tenants/acme/actions/{id}/replay"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    release.send(()).unwrap();
    executor.await.unwrap();

    let pending = only(app.actions("acme", "pending").await);
    assert_eq!(pending["attempts"].as_array().unwrap().len(), 2, "the in-flight attempt is recorded: {pending}");
    app.drain_outbox().await;
    assert_eq!(crm.received().await.len(), 1, "the replay is delivered");
    assert_eq!(only(app.actions("acme", "done").await)["id"], id);
}

#[tokio::test]
async fn a_webhook_action_with_a_body_posts_that_body_rendered_and_signed() {
    let receiver = RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let profile = json!({"name": "E", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 3}]});
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(profile)).await;
    app.admin(Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None).await;
    let slack = |text: &str| {
        json!({"name": "Hot", "when": {"score": {"profile": "engagement", "op": "gte", "value": 3}},
               "actions": [{"type": "webhook", "url": receiver.url,
                            "body": {"text": text, "unfurl_links": false, "blocks": [{"type": "section", "n": 1, "tag": "{{event.type}}"}]}}]})
    };
    let (status, refused) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/hot", Some(slack("{{nope}}"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["path"], "actions[0].body.text");
    let (status, body) =
        app.admin(Method::PUT, "/v1/tenants/acme/triggers/hot", Some(slack("{{contact.id}} is hot: {{score}}"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    app.drain_outbox().await;
    let request = receiver.received().await.pop().expect("the webhook was posted");
    let expected = json!({"text": "jhon is hot: 3", "unfurl_links": false,
                          "blocks": [{"type": "section", "n": 1, "tag": "email.opened"}]});
    assert_eq!(request.body, expected, "the rendered body itself, not the envelope");
    let done = only(app.actions("acme", "done").await);
    assert_eq!(done["params"]["body"], expected, "the action shows what was sent");
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("idempotency-key").as_deref(), done["id"].as_str());
    let verified = scorehook::crm::standard_webhooks::verify(
        &scorehook::crm::standard_webhooks::key_of(crate::support::spawn_app::SIGNING_SECRET).unwrap(),
        header("webhook-id").as_deref(),
        header("webhook-timestamp").as_deref(),
        header("webhook-signature").as_deref(),
        &request.raw,
        chrono::Utc::now(),
    );
    assert!(verified.is_ok(), "signed over the body sent: {verified:?}");
}
