//! Interaction and deadline triggers through the API: each attribute
//! condition the CRMs' trigger screens offer, each `runs` mode, and
//! deadlines fired by the sweeper through the store's due-work index (both
//! stores) or cancelled by the awaited interaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use scorehook::clock::Clock;

use crate::support::dynamo::fresh_store;
use crate::support::{interaction, TestApp};

async fn put_trigger(app: &TestApp, id: &str, when: Value, runs: &str) {
    let spec = json!({"name": id, "when": when, "runs": runs, "actions": [{"type": "add_tag", "tag": id}]});
    let (status, body) = app.admin(Method::PUT, &format!("/v1/tenants/acme/triggers/{id}"), Some(spec)).await;
    assert!(status.is_success(), "{id}: {body}");
}

async fn post(app: &TestApp, id: &str, kind: &str, contact: &str, attributes: Value) {
    let mut event = interaction(id, kind, contact);
    event["attributes"] = attributes;
    event["occurred_at"] = json!(app.clock.now());
    let (status, body) = app.post_webhook("acme", &event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// How many actions each trigger fired, over every status.
async fn fired(app: &TestApp) -> BTreeMap<String, u64> {
    let (status, body) = app.admin(Method::GET, "/v1/tenants/acme/actions?limit=500", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut counts = BTreeMap::new();
    for action in body["actions"].as_array().unwrap() {
        *counts.entry(action["trigger"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn interaction_triggers_match_on_the_attributes_crms_offer() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let on = |kind: &str, attributes: Value| json!({"event": {"type": kind, "attributes": attributes}});
    put_trigger(&app, "pricing_link", on("email.clicked", json!({"url": {"contains": "/pricing"}})), "every_time")
        .await;
    put_trigger(&app, "demo_form", on("form.submitted", json!({"form_id": {"equals": "demo"}})), "every_time").await;
    let sales_line = json!({"any": [{"type": "call.outgoing"}, {"type": "call.incoming"}, {"type": "call.missed"}],
        "attributes": {"line": {"equals": "+57 1 555 0100"}}});
    put_trigger(&app, "sales_line", json!({"event": sales_line}), "every_time").await;
    put_trigger(&app, "wa_first", on("chat.first_message", json!({"channel": {"equals": "whatsapp"}})), "every_time")
        .await;
    put_trigger(&app, "wa_accepted", on("chat.accepted", json!({"channel": {"in": ["whatsapp", "telegram"]}})), "once")
        .await;
    let words = json!({"channel": {"equals": "whatsapp"}, "text": {"matches": "(?i)\\b(price|quote)\\b"}});
    put_trigger(&app, "asks_price", on("chat.message", words), "on_enter").await;

    post(&app, "c1", "email.clicked", "ana", json!({"url": "https://x.test/pricing?utm=1"})).await;
    post(&app, "c2", "email.clicked", "ana", json!({"url": "https://x.test/blog"})).await;
    post(&app, "f1", "form.submitted", "ana", json!({"form_id": "demo"})).await;
    post(&app, "f2", "form.submitted", "ana", json!({"form_id": "newsletter"})).await;
    post(&app, "k1", "call.missed", "ana", json!({"line": "+57 1 555 0100"})).await;
    post(&app, "k2", "call.incoming", "ana", json!({"line": "+57 1 555 0100"})).await;
    post(&app, "k3", "call.outgoing", "ana", json!({"line": "+57 1 555 0199"})).await;
    post(&app, "w1", "chat.first_message", "ana", json!({"channel": "whatsapp"})).await;
    post(&app, "w2", "chat.first_message", "ben", json!({"channel": "webchat"})).await;
    post(&app, "a1", "chat.accepted", "ana", json!({"channel": "whatsapp"})).await;
    post(&app, "a2", "chat.accepted", "ana", json!({"channel": "telegram"})).await; // once: not again
    post(&app, "m1", "chat.message", "ana", json!({"channel": "whatsapp", "text": "What's the PRICE?"})).await;
    post(&app, "m2", "chat.message", "ana", json!({"channel": "whatsapp", "text": "and a quote"})).await; // still in
    post(&app, "m3", "chat.message", "ana", json!({"channel": "whatsapp", "text": "thanks"})).await;
    post(&app, "m4", "chat.message", "ana", json!({"channel": "whatsapp", "text": "quote please"})).await; // enters again
    post(&app, "m5", "chat.message", "ana", json!({"channel": "webchat", "text": "price"})).await;

    let expected: BTreeMap<String, u64> = [
        ("pricing_link", 1),
        ("demo_form", 1),
        ("sales_line", 2),
        ("wa_first", 1),
        ("wa_accepted", 1),
        ("asks_price", 2),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_owned(), n))
    .collect();
    assert_eq!(fired(&app).await, expected);
}

async fn deadlines_fire_unless_cancelled(app: &TestApp) {
    app.create_tenant("acme", None).await;
    let deadline = json!({"deadline": {"start": {"type": "chat.first_message"}, "awaits": {"type": "chat.accepted"},
        "within_s": 600}});
    put_trigger(app, "not_accepted", deadline, "every_time").await;

    post(app, "m1", "chat.first_message", "ana", json!({"channel": "whatsapp"})).await;
    post(app, "m2", "chat.first_message", "ben", json!({"channel": "whatsapp"})).await;
    app.advance(TimeDelta::seconds(30));
    post(app, "a2", "chat.accepted", "ben", json!({"channel": "whatsapp"})).await;

    app.advance(TimeDelta::seconds(569));
    app.sweep().await;
    assert!(fired(app).await.is_empty(), "599 s: not yet");
    app.advance(TimeDelta::seconds(2));
    app.sweep().await;
    let (_, body) = app.admin(Method::GET, "/v1/tenants/acme/actions", None).await;
    let actions = body["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{body}");
    assert_eq!(
        (actions[0]["contact_id"].clone(), actions[0]["trigger"].clone()),
        (json!("ana"), json!("not_accepted"))
    );

    app.advance(TimeDelta::hours(1));
    app.sweep().await;
    assert_eq!(fired(app).await.len(), 1, "a timer fires once; ben's was cancelled");
    assert_eq!(fired(app).await["not_accepted"], 1);
}

#[tokio::test]
async fn embedded_deadlines_fire_unless_cancelled() {
    deadlines_fire_unless_cancelled(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn dynamodb_deadlines_fire_unless_cancelled() {
    let Some(store) = fresh_store().await else { return };
    deadlines_fire_unless_cancelled(&TestApp::spawn_on(Arc::new(store)).await).await;
}

#[tokio::test]
async fn a_backwards_stage_move_is_recorded_skipped_with_its_reason() {
    let app = TestApp::spawn().await;
    let tenant = json!({"provider": "generic", "webhook_secret": crate::support::spawn_app::SECRET,
        "crm": {"pipelines": {"sales": ["new", "demo", "negotiation", "won"]}}});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme", Some(tenant)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let spec = json!({"name": "Demo on open", "when": {"event": {"type": "email.opened"}},
        "actions": [{"type": "move_stage", "pipeline": "sales", "stage": "demo", "as_user": "u-7"}]});
    app.admin(Method::PUT, "/v1/tenants/acme/triggers/demo", Some(spec)).await;

    let mut stage = interaction("s1", "deal.stage_changed", "ana");
    stage["deal_id"] = json!("d1");
    stage["attributes"] = json!({"pipeline": "sales", "stage": "won"});
    app.post_webhook("acme", &stage).await;
    let mut opened = interaction("o1", "email.opened", "ana");
    opened["deal_id"] = json!("d1");
    app.post_webhook("acme", &opened).await;

    let skipped = app.actions("acme", "skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("back from \"won\" to \"demo\""), "{skipped:?}");
    assert_eq!(skipped[0]["params"]["as_user"], "u-7");
    assert!(app.actions("acme", "pending").await.is_empty(), "nothing is sent");
    app.sweep().await;
    assert_eq!(app.actions("acme", "skipped").await.len(), 1, "and the executor leaves it alone");
}

/// Contacts scored before the trigger exists: ana 6, ben 2, luz 8.
async fn scored_before_the_trigger(app: &TestApp) {
    app.create_tenant("acme", None).await;
    let profile = json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 2}]});
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(profile)).await;
    app.admin(Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None).await;
    for (contact, opens) in [("ana", 3), ("ben", 1), ("luz", 4)] {
        for n in 0..opens {
            post(app, &format!("{contact}{n}"), "email.opened", contact, json!({})).await;
        }
    }
    app.sweep().await;
}

async fn a_trigger_applied_to_existing_contacts_fires_once_for_those_matching(app: &TestApp) {
    scored_before_the_trigger(app).await;
    let spec = |apply: bool, tag: &str| {
        json!({"name": "Hot", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}},
            "apply_to_existing": apply, "actions": [{"type": "add_tag", "tag": tag}]})
    };
    app.admin(Method::PUT, "/v1/tenants/acme/triggers/plain", Some(spec(false, "plain"))).await;
    let (status, saved) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/hot", Some(spec(true, "hot"))).await;
    assert_eq!((status, saved["existing"]["status"].clone()), (StatusCode::CREATED, json!("running")), "{saved}");
    app.sweep().await;

    let (_, hot) = app.admin(Method::GET, "/v1/tenants/acme/triggers/hot", None).await;
    assert_eq!(hot["existing"]["status"], "done", "{hot}");
    assert_eq!(
        (hot["existing"]["contacts_done"].clone(), hot["existing"]["contacts_changed"].clone()),
        (json!(3), json!(2))
    );
    let (_, body) = app.admin(Method::GET, "/v1/tenants/acme/actions", None).await;
    let mut by_contact: Vec<(String, String)> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["trigger"].as_str().unwrap().to_owned(), a["contact_id"].as_str().unwrap().to_owned()))
        .collect();
    by_contact.sort();
    assert_eq!(by_contact, [("hot".into(), "ana".into()), ("hot".into(), "luz".into())], "only the matching, once");

    // Saving it again unchanged starts nothing; from now on changes count as usual.
    app.admin(Method::PUT, "/v1/tenants/acme/triggers/hot", Some(spec(true, "hot"))).await;
    app.sweep().await;
    post(app, "ben9", "email.opened", "ben", json!({})).await;
    post(app, "ben10", "email.opened", "ben", json!({})).await;
    app.sweep().await;
    let mut counts = fired(app).await;
    assert_eq!((counts.remove("hot"), counts.remove("plain")), (Some(3), Some(1)), "ben entered: both fire for him");
}

#[tokio::test]
async fn embedded_a_trigger_applied_to_existing_contacts_fires_once_for_those_matching() {
    a_trigger_applied_to_existing_contacts_fires_once_for_those_matching(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn dynamodb_a_trigger_applied_to_existing_contacts_fires_once_for_those_matching() {
    let Some(store) = fresh_store().await else { return };
    a_trigger_applied_to_existing_contacts_fires_once_for_those_matching(&TestApp::spawn_on(Arc::new(store)).await)
        .await;
}
