//! Dead actions and refused credentials are pushed to the operator: one
//! signed notice per tenant, cause and hour, however many actions die.

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::json;

use scorehook::clock::Clock;
use scorehook::crm::egress::Egress;
use scorehook::crm::standard_webhooks;
use scorehook::outbox::alerts::Alerts;

use crate::support::recording_crm::Recorded;
use crate::support::{interaction, RecordingCrm, TestApp};

/// A tenant whose every open fires one `add_tag` to `receiver`.
async fn tagging(app: &TestApp, receiver: &RecordingCrm) {
    app.create_tenant("acme", Some(&receiver.url)).await;
    let profile = "/v1/tenants/acme/profiles/e";
    let rules = json!({"name": "E", "rules": [{"id": "o", "when": {"type": "email.opened"}, "points": 1}]});
    assert_eq!(app.admin(Method::PUT, profile, Some(rules)).await.0, StatusCode::CREATED);
    assert_eq!(app.admin(Method::POST, &format!("{profile}/publish"), None).await.0, StatusCode::OK);
    let trigger = json!({"name": "Tag", "when": {"event": {"type": "email.opened"}}, "runs": "every_time",
                         "actions": [{"type": "add_tag", "tag": "opened"}]});
    assert_eq!(app.admin(Method::PUT, "/v1/tenants/acme/triggers/tag", Some(trigger)).await.0, StatusCode::CREATED);
}

async fn open(app: &TestApp, id: &str) {
    assert_eq!(app.post_webhook("acme", &interaction(id, "email.opened", "jhon")).await.0, StatusCode::ACCEPTED);
    app.drain_outbox().await;
}

#[tokio::test]
async fn one_signed_notice_per_tenant_cause_and_hour() {
    let (mut app, receiver, operator) =
        (TestApp::spawn().await, RecordingCrm::start().await, RecordingCrm::start().await);
    let secret = standard_webhooks::new_secret().unwrap();
    let alerts = Alerts::new(&operator.url, &secret, Egress::ALLOW_PRIVATE).unwrap();
    app.local.deliverer = app.local.deliverer.clone().with_alerts(Some(alerts));
    tagging(&app, &receiver).await;

    receiver.respond_with(&[400, 400, 401, 400]);
    open(&app, "o1").await;
    open(&app, "o2").await;
    assert_eq!(app.actions("acme", "dead").await.len(), 2);
    let notices = operator.received().await;
    assert_eq!(notices.len(), 1, "two dead actions of one cause, one notice: {notices:?}");
    let notice = &notices[0];
    assert_eq!(notice.body["type"], "action.dead");
    assert_eq!(notice.body["tenant"], "acme");
    assert_eq!(notice.body["http_status"], 400);
    let verify = |r: &Recorded| {
        standard_webhooks::verify(
            &standard_webhooks::key_of(&secret).unwrap(),
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
            &r.raw,
            app.clock.now(),
        )
    };
    assert_eq!(verify(notice), Ok(()), "signed with the operator's alert secret");

    open(&app, "o3").await;
    let refused = operator.received().await;
    assert_eq!(refused.len(), 1, "a 401 is a cause of its own");
    assert_eq!(refused[0].body["type"], "crm.credentials_refused");

    open(&app, "o4").await;
    assert!(operator.received().await.is_empty(), "still the same hour");
    app.advance(TimeDelta::hours(1));
    receiver.respond_with(&[400]);
    open(&app, "o5").await;
    let next_hour = operator.received().await;
    assert_eq!(next_hour.len(), 1, "the next hour's notice");
    assert_eq!(next_hour[0].body["type"], "action.dead");
}

#[tokio::test]
async fn the_embedded_store_forgets_claims_a_day_past_their_end() {
    use scorehook::store::Store;
    let dir = tempfile::TempDir::new().unwrap();
    let store = scorehook::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    let at: chrono::DateTime<chrono::Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
    assert!(store.claim("alert\u{1f}acme\u{1f}action.dead\u{1f}1", at).await.unwrap());
    assert!(!store.claim("alert\u{1f}acme\u{1f}action.dead\u{1f}1", at).await.unwrap(), "taken");
    // A claim taken more than a day after the first one's end forgets it.
    assert!(store.claim("alert\u{1f}acme\u{1f}action.dead\u{1f}2", at + TimeDelta::hours(25)).await.unwrap());
    assert!(store.claim("alert\u{1f}acme\u{1f}action.dead\u{1f}1", at).await.unwrap(), "forgotten, so free again");
    assert!(!store.claim("alert\u{1f}acme\u{1f}action.dead\u{1f}2", at).await.unwrap(), "the recent one is kept");
}
