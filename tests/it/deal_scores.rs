//! Deal scores on both stores: a `"subject": "deal"` profile scores deals by
//! the interactions' `deal_id`, lists them at `/deals` like contacts, expires
//! their points, fires score triggers whose actions act on the deal, and
//! scores stored history when published late.

use std::sync::Arc;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use scorehook::clock::Clock;

use crate::support::dynamo::fresh_store;
use crate::support::{interaction, TestApp};

fn deal_profile() -> Value {
    json!({"name": "Deal heat", "subject": "deal", "rules": [
        {"id": "call", "when": {"type": "call.outgoing"}, "points": 3},
        {"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "1h"}]})
}

fn contact_profile() -> Value {
    json!({"name": "Engagement", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1}]})
}

async fn put(app: &TestApp, path: &str, body: Value) {
    let (status, answer) = app.admin(Method::PUT, &format!("/v1/tenants/acme/{path}"), Some(body)).await;
    assert!(status.is_success(), "{path}: {answer}");
}

async fn publish(app: &TestApp, profile: &str) {
    let (status, body) = app.admin(Method::POST, &format!("/v1/tenants/acme/profiles/{profile}/publish"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn post(app: &TestApp, id: &str, kind: &str, contact: &str, deal: Option<&str>) {
    let mut event = interaction(id, kind, contact);
    event["occurred_at"] = json!(app.clock.now());
    if let Some(deal) = deal {
        event["deal_id"] = json!(deal);
    }
    let (status, body) = app.post_webhook("acme", &event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// `[[deal, score], …]` of one page of `/deals`.
async fn deals(app: &TestApp, query: &str) -> (Value, Value) {
    let (status, body) = app.admin(Method::GET, &format!("/v1/tenants/acme/deals?profile=heat{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: Vec<Value> =
        body["deals"].as_array().unwrap().iter().map(|r| json!([r["deal_id"], r["score"]])).collect();
    (json!(rows), body["next_cursor"].clone())
}

async fn deals_are_scored_listed_and_acted_on(app: &TestApp) {
    app.create_tenant("acme", None).await;
    put(app, "profiles/heat", deal_profile()).await;
    publish(app, "heat").await;
    put(app, "profiles/engagement", contact_profile()).await;
    publish(app, "engagement").await;
    let trigger = json!({"name": "Hot deal", "when": {"score": {"profile": "heat", "op": "gte", "value": 7}},
        "runs": "on_enter", "actions": [{"type": "move_stage", "pipeline": "sales", "stage": "negotiation"}]});
    put(app, "triggers/hot_deal", trigger).await;

    post(app, "e1", "call.outgoing", "ana", Some("d1")).await;
    post(app, "e2", "email.opened", "ben", Some("d1")).await;
    post(app, "e3", "call.outgoing", "ana", Some("d2")).await;
    post(app, "e4", "email.opened", "ana", None).await;
    post(app, "e5", "call.outgoing", "ben", Some("d1")).await;
    post(app, "e5", "call.outgoing", "ben", Some("d1")).await; // a redelivery scores once

    assert_eq!(deals(app, "").await, (json!([["d1", 7], ["d2", 3]]), Value::Null));
    assert_eq!(deals(app, "&min=5").await.0, json!([["d1", 7]]), "filtered by range");
    let (first, cursor) = deals(app, "&order=asc&limit=1").await;
    assert_eq!(first, json!([["d2", 3]]));
    let cursor = cursor.as_str().expect("a next page");
    assert_eq!(deals(app, &format!("&order=asc&limit=1&cursor={cursor}")).await.0, json!([["d1", 7]]));

    let (status, d1) = app.admin(Method::GET, "/v1/tenants/acme/deals/d1/scores", None).await;
    assert_eq!(status, StatusCode::OK, "{d1}");
    assert_eq!(d1["deal_id"], "d1");
    let rules: Vec<&Value> = d1["scores"]["heat"]["ledger"].as_array().unwrap().iter().map(|e| &e["rule"]).collect();
    assert_eq!(rules, [&json!("call"), &json!("opened"), &json!("call")]);
    assert!(d1["scores"].get("engagement").is_none(), "a deal has no contact scores");
    let (_, ana) = app.admin(Method::GET, "/v1/tenants/acme/contacts/ana/scores", None).await;
    assert_eq!(ana["scores"]["engagement"]["score"], 1);
    assert!(ana["scores"].get("heat").is_none(), "a contact has no deal scores");

    let fired = app.actions("acme", "pending").await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        (fired[0]["type"].clone(), fired[0]["deal_id"].clone(), fired[0]["contact_id"].clone()),
        (json!("move_stage"), json!("d1"), json!("ben")),
        "the deal's trigger acts on the deal, for the contact who last acted on it"
    );

    app.advance(TimeDelta::minutes(61));
    app.sweep().await;
    assert_eq!(deals(app, "").await.0, json!([["d1", 6], ["d2", 3]]), "the open's point expired");

    let adjust = |deal: &str, profile: &str| format!("/v1/tenants/acme/deals/{deal}/scores/{profile}");
    let (status, body) = app.admin(Method::POST, &adjust("d2", "heat"), Some(json!({"op": "add", "points": 2}))).await;
    assert_eq!((status, body["score"].clone()), (StatusCode::OK, json!(5)), "{body}");
    let (status, _) = app.admin(Method::POST, &adjust("d404", "heat"), Some(json!({"op": "add", "points": 2}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deal never seen has no contact to act for");

    // Each kind is read and moved through its own listing.
    let (status, body) = app.admin(Method::GET, "/v1/tenants/acme/contacts?profile=heat", None).await;
    assert_eq!((status, body["error"]["path"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("profile")));
    let (status, _) = app.admin(Method::GET, "/v1/tenants/acme/deals?profile=engagement", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let wrong = json!({"op": "add", "points": 1});
    let (status, _) = app.admin(Method::POST, "/v1/tenants/acme/contacts/ana/scores/heat", Some(wrong)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.admin(Method::GET, "/v1/tenants/acme/contacts/deal%23d1/scores", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deal's key is no contact id");
    let across = json!({"name": "x", "when": {"score": {"profile": "heat", "op": "gte", "value": 1}},
        "actions": [{"type": "adjust_score", "profile": "engagement", "op": "add", "points": 1}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/across", Some(across)).await;
    assert_eq!(
        (status, body["error"]["path"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("actions[0].profile"))
    );
    let mut as_contacts = deal_profile();
    as_contacts["subject"] = json!("contact");
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/heat", Some(as_contacts)).await;
    assert_eq!((status, body["error"]["path"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("subject")));
}

#[tokio::test]
async fn embedded_deals_are_scored_listed_and_acted_on() {
    deals_are_scored_listed_and_acted_on(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn dynamodb_deals_are_scored_listed_and_acted_on() {
    let Some(store) = fresh_store().await else { return };
    deals_are_scored_listed_and_acted_on(&TestApp::spawn_on(Arc::new(store)).await).await;
}

/// A draft deal profile starts deal history; simulating and publishing it score that history.
async fn a_late_deal_profile_scores_deal_history(app: &TestApp) {
    app.create_tenant("acme", None).await;
    put(app, "profiles/heat", deal_profile()).await;
    for (n, deal) in ["d1", "d2", "d1", "d3", "d1"].iter().enumerate() {
        post(app, &format!("c{n}"), "call.outgoing", "ana", Some(deal)).await;
    }
    post(app, "x", "call.outgoing", "ana", None).await;

    let (status, report) =
        app.admin(Method::POST, "/v1/tenants/acme/profiles/heat/simulate", Some(json!({"top": 1}))).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!((report["scored"].clone(), report["top"].clone()), (json!(3), json!([{"deal_id": "d1", "score": 9}])));
    assert_eq!(deals(app, "").await.0, json!([]), "a draft scores nothing");

    publish(app, "heat").await;
    app.sweep().await;
    let (_, heat) = app.admin(Method::GET, "/v1/tenants/acme/profiles/heat", None).await;
    assert_eq!(heat["recompute"]["status"], "done", "{heat}");
    assert_eq!(heat["recompute"]["contacts_done"], 3, "the deals, not the contact");
    assert_eq!(deals(app, "").await.0, json!([["d1", 9], ["d3", 3], ["d2", 3]]), "ties: by id, in the order asked");
}

#[tokio::test]
async fn embedded_a_late_deal_profile_scores_deal_history() {
    a_late_deal_profile_scores_deal_history(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn dynamodb_a_late_deal_profile_scores_deal_history() {
    let Some(store) = fresh_store().await else { return };
    a_late_deal_profile_scores_deal_history(&TestApp::spawn_on(Arc::new(store)).await).await;
}
