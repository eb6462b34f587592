//! Retroactive publish and simulation over stored history, on both stores:
//! a profile published late scores the past exactly as live scoring would
//! have; a recompute runs in batches with visible progress while webhooks
//! keep landing; a simulation reports without writing anything.

use std::sync::Arc;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use scorehook::clock::Clock;
use scorehook::outbox::Step;
use scorehook::service::recompute::RECOMPUTE_BATCH;

use crate::support::dynamo::fresh_store;
use crate::support::{interaction, TestApp};

const CONTACTS: [&str; 4] = ["ana", "jhon", "luz", "mar"];
const KINDS: [&str; 4] = ["email.opened", "email.clicked", "page.visited", "list.unsubscribed"];

/// Rules with every feature that depends on time and order.
fn rich_profile() -> Value {
    json!({"name": "Rich", "decay": {"percent": 10, "every": "1h"}, "rules": [
        {"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "3h"},
        {"id": "clicked", "when": {"type": "email.clicked"}, "points": 2.5, "cap": {"max": 2, "per": "2h"}},
        {"id": "pricing", "when": {"type": "page.visited"}, "points": 10, "once": true},
        {"id": "unsub", "when": {"type": "list.unsubscribed"}, "points": -4}]})
}

async fn put_profile(app: &TestApp, id: &str, spec: Value, publish: bool) {
    let (status, body) = app.admin(Method::PUT, &format!("/v1/tenants/acme/profiles/{id}"), Some(spec)).await;
    assert!(status.is_success(), "{body}");
    if publish {
        let (status, body) = app.admin(Method::POST, &format!("/v1/tenants/acme/profiles/{id}/publish"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Webhooks for every contact at spread-out instants, some delivered late.
async fn post_history(app: &TestApp, prefix: &str, count: usize) {
    for i in 0..count {
        let mut event = interaction(&format!("{prefix}{i}"), KINDS[(i * 7 + i / 3) % 4], CONTACTS[i % 4]);
        let late = if i % 5 == 0 { TimeDelta::minutes(40) } else { TimeDelta::zero() };
        event["occurred_at"] = json!(app.clock.now() - late);
        let (status, body) = app.post_webhook("acme", &event).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        app.advance(TimeDelta::minutes(13));
    }
}

async fn score(app: &TestApp, contact: &str, profile: &str) -> Value {
    let (_, view) = app.admin(Method::GET, &format!("/v1/tenants/acme/contacts/{contact}/scores"), None).await;
    view["scores"][profile]["score"].clone()
}

async fn board(app: &TestApp, profile: &str) -> Value {
    let (_, body) = app.admin(Method::GET, &format!("/v1/tenants/acme/contacts?profile={profile}"), None).await;
    let rows: Vec<Value> =
        body["contacts"].as_array().unwrap().iter().map(|r| json!([r["contact_id"], r["score"]])).collect();
    json!(rows)
}

async fn late_profile_equals_live_scoring(app: &TestApp) {
    app.create_tenant("acme", None).await;
    put_profile(app, "live", rich_profile(), true).await;
    post_history(app, "a", 24).await;
    put_profile(app, "late", rich_profile(), true).await;
    post_history(app, "b", 6).await; // scored live by both while the recompute waits
    app.sweep().await;

    let (_, late) = app.admin(Method::GET, "/v1/tenants/acme/profiles/late", None).await;
    assert_eq!(late["recompute"]["status"], "done", "{late}");
    assert_eq!(late["recompute"]["contacts_done"], 4);
    for contact in CONTACTS {
        let live = score(app, contact, "live").await;
        assert!(live.is_number(), "{contact} scored live");
        assert_eq!(score(app, contact, "late").await, live, "{contact}: the recomputed score equals live scoring");
    }
    assert_eq!(board(app, "late").await, board(app, "live").await, "the leaderboards agree");
    app.advance(TimeDelta::hours(5));
    app.sweep().await;
    assert_eq!(board(app, "late").await, board(app, "live").await, "and keep agreeing as points expire and decay");
}

#[tokio::test]
async fn embedded_a_late_published_profile_scores_history_like_live_scoring() {
    late_profile_equals_live_scoring(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn dynamodb_a_late_published_profile_scores_history_like_live_scoring() {
    let Some(store) = fresh_store().await else { return };
    late_profile_equals_live_scoring(&TestApp::spawn_on(Arc::new(store)).await).await;
}

#[tokio::test]
async fn republishing_an_edit_recomputes_and_keeps_manual_points() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let v1 = json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1}]});
    put_profile(&app, "engagement", v1, true).await;
    for i in 0..3 {
        app.post_webhook("acme", &interaction(&format!("o{i}"), "email.opened", "jhon")).await;
    }
    let add = json!({"op": "add", "points": 3});
    app.admin(Method::POST, "/v1/tenants/acme/contacts/jhon/scores/engagement", Some(add)).await;
    assert_eq!(score(&app, "jhon", "engagement").await, 6);

    let v2 = json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 2}]});
    put_profile(&app, "engagement", v2, false).await;
    app.sweep().await;
    assert_eq!(score(&app, "jhon", "engagement").await, 6, "a draft changes nothing");
    put_profile(
        &app,
        "engagement",
        json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 2}]}),
        true,
    )
    .await;
    app.sweep().await;
    assert_eq!(score(&app, "jhon", "engagement").await, 9, "three opens at 2 points, plus the manual 3");

    let (_, view) = app.admin(Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    let ledger = view["scores"]["engagement"]["ledger"].as_array().unwrap().clone();
    let rules: Vec<&str> = ledger.iter().map(|e| e["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["profile.recompute", "opened", "manual.add"], "{ledger:?}");
    assert_eq!((ledger[1]["points"].clone(), ledger[1]["merged"].clone()), (json!(6), json!(3)));
    assert_eq!(ledger[0]["profile_version"], 2);
}

#[tokio::test]
async fn a_recompute_runs_in_batches_with_visible_progress_while_webhooks_land() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let contacts = RECOMPUTE_BATCH * 2 + 7;
    let batch: Vec<Value> =
        (0..contacts).map(|i| interaction(&format!("e{i}"), "email.opened", &format!("c{i:04}"))).collect();
    let (status, body) = app.post_webhook("acme", &json!(batch)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    put_profile(
        &app,
        "engagement",
        json!({"name": "E", "rules": [{"id": "o", "when": {"type": "email.opened"}, "points": 1}]}),
        true,
    )
    .await;

    let service = &app.local.service;
    assert_eq!(service.advance_recomputes().await.unwrap(), Step::More);
    let (_, profile) = app.admin(Method::GET, "/v1/tenants/acme/profiles/engagement", None).await;
    assert_eq!(profile["recompute"]["status"], "running");
    assert_eq!(profile["recompute"]["contacts_done"], RECOMPUTE_BATCH);

    // Ingestion goes on mid-recompute, for a contact already done and one not yet.
    for (id, contact) in [("late-1", "c0000"), ("late-2", format!("c{:04}", contacts - 1).as_str())] {
        let (status, _) = app.post_webhook("acme", &interaction(id, "email.opened", contact)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    while service.advance_recomputes().await.unwrap() == Step::More {}
    let (_, profile) = app.admin(Method::GET, "/v1/tenants/acme/profiles/engagement", None).await;
    assert_eq!(profile["recompute"]["status"], "done");
    assert_eq!(profile["recompute"]["contacts_done"], contacts);
    assert_eq!(profile["recompute"]["contacts_changed"], contacts);
    assert_eq!(score(&app, "c0000", "engagement").await, 2, "history and the live event, once each");
    assert_eq!(score(&app, &format!("c{:04}", contacts - 1), "engagement").await, 2);
    assert_eq!(score(&app, "c0001", "engagement").await, 1);
}

async fn simulation_reports_and_writes_nothing(app: &TestApp) {
    app.create_tenant("acme", None).await;
    post_history(app, "a", 16).await;
    put_profile(app, "draft", rich_profile(), false).await;
    let hot = json!({"name": "Hot", "when": {"score": {"profile": "draft", "op": "gte", "value": 10}},
        "actions": [{"type": "add_tag", "tag": "hot"}]});
    app.admin(Method::PUT, "/v1/tenants/acme/triggers/hot", Some(hot)).await;

    let snapshot = || async {
        let mut views = Vec::new();
        for contact in CONTACTS {
            views.push(app.admin(Method::GET, &format!("/v1/tenants/acme/contacts/{contact}/scores"), None).await.1);
        }
        let (_, actions) = app.admin(Method::GET, "/v1/tenants/acme/actions", None).await;
        let (_, profile) = app.admin(Method::GET, "/v1/tenants/acme/profiles/draft", None).await;
        json!([views, actions, profile])
    };
    let before = snapshot().await;
    let (status, report) =
        app.admin(Method::POST, "/v1/tenants/acme/profiles/draft/simulate", Some(json!({"band": 5, "top": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!((report["contacts"].clone(), report["complete"].clone()), (json!(4), json!(true)));
    let banded: u64 = report["bands"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(banded, report["scored"].as_u64().unwrap(), "every scored contact is in one band");
    assert_eq!(report["top"].as_array().unwrap().len(), 2);
    assert!(report["top"][0]["score"].as_f64() >= report["top"][1]["score"].as_f64());
    assert!(report["triggers"]["hot"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(snapshot().await, before, "a simulation writes nothing");

    let (status, again) = app.admin(Method::POST, "/v1/tenants/acme/profiles/draft/simulate", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["scored"], report["scored"], "an empty body takes the defaults");
    let (status, body) =
        app.admin(Method::POST, "/v1/tenants/acme/profiles/draft/simulate", Some(json!({"contacts": 0}))).await;
    assert_eq!((status, body["error"]["path"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("contacts")));
}

#[tokio::test]
async fn embedded_a_simulation_reports_and_writes_nothing() {
    simulation_reports_and_writes_nothing(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn dynamodb_a_simulation_reports_and_writes_nothing() {
    let Some(store) = fresh_store().await else { return };
    simulation_reports_and_writes_nothing(&TestApp::spawn_on(Arc::new(store)).await).await;
}

/// `scorehook simulate` over the example files: the real binary, a fixed instant.
#[test]
fn the_simulate_command_reports_over_a_file_of_interactions() {
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scorehook"))
            .args(["simulate", "--profile", "examples/simulate/engagement.json"])
            .args(["--events", "examples/simulate/events.jsonl", "--triggers", "examples/simulate/triggers.json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let output = run(&["--band", "5", "--top", "2", "--at", "2026-11-23T00:00:00Z"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!((report["contacts"].clone(), report["scored"].clone()), (json!(4), json!(4)));
    // ana: 1 + 2 + 10 (pricing, once) + 1, each decayed 25% after 30 days except the open of Oct 10.
    assert_eq!(report["top"], json!([{"contact_id": "mar", "score": 12}, {"contact_id": "ana", "score": 10.5}]));
    assert_eq!(report["triggers"]["hot"], 2, "ana and mar crossed 10");

    let bad = run(&["--band", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--band must be positive"));
}

/// The same run with its interactions on standard input (`--events -`).
#[test]
fn the_simulate_command_reads_interactions_from_standard_input() {
    let args = ["simulate", "--profile", "examples/simulate/engagement.json", "--band", "5", "--top", "2"];
    let at = ["--at", "2026-11-23T00:00:00Z", "--triggers", "examples/simulate/triggers.json"];
    let from_file = std::process::Command::new(env!("CARGO_BIN_EXE_scorehook"))
        .args(args)
        .args(at)
        .args(["--events", "examples/simulate/events.jsonl"])
        .output()
        .unwrap();
    let from_stdin = std::process::Command::new(env!("CARGO_BIN_EXE_scorehook"))
        .args(args)
        .args(at)
        .args(["--events", "-"])
        .stdin(std::fs::File::open("examples/simulate/events.jsonl").unwrap())
        .output()
        .unwrap();
    assert!(from_stdin.status.success(), "{}", String::from_utf8_lossy(&from_stdin.stderr));
    let report: Value = serde_json::from_slice(&from_stdin.stdout).unwrap();
    assert_eq!(report["contacts"], 4);
    assert_eq!(from_stdin.stdout, from_file.stdout, "the same report either way");
}
