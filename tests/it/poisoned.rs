//! One bad contact stops nothing else. Scores stay within ±1e12 whatever
//! is asked (the admin API refuses what would leave the bound, scoring
//! saturates); a contact stored unreadable by an earlier release is set
//! aside while the sweeper, the executor and every other tenant's work go
//! on; and the operator repairs it from its ledger and history.

use std::time::Duration;

use chrono::TimeDelta;
use redb::ReadableTable;
use reqwest::{Method, StatusCode};
use scorehook::clock::Clock;
use serde_json::{json, Value};

use crate::support::{interaction, RecordingCrm, TestApp};

const SET_TO_THE_BOUND: &str = "/v1/tenants/pz/contacts/big/scores/engagement";

/// Tenant `pz` (the seeds' profile, published) with contact `big` set to
/// the bound by hand, then scored by one open.
async fn contact_at_the_bound(app: &TestApp) {
    app.seeds_tenant("pz", None).await;
    let (status, body) =
        app.admin(Method::POST, SET_TO_THE_BOUND, Some(json!({"op": "set", "points": 1_000_000_000_000i64}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.post_webhook("pz", &interaction("open-big", "email.opened", "big")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn a_score_at_the_bound_saturates_reads_back_and_refuses_more_by_hand() {
    let app = TestApp::spawn().await;
    contact_at_the_bound(&app).await;

    let (status, scores) = app.admin(Method::GET, "/v1/tenants/pz/contacts/big/scores", None).await;
    assert_eq!(status, StatusCode::OK, "the contact reads back: {scores}");
    let engagement = &scores["scores"]["engagement"];
    assert_eq!(engagement["score"], json!(1_000_000_000_000i64));
    let opened = engagement["ledger"].as_array().unwrap().iter().find(|e| e["rule"] == "opened").unwrap();
    assert_eq!((opened["points"].clone(), opened["saturated"].clone()), (json!(0), json!(1)), "{opened}");

    for (op, points) in [("add", json!(1)), ("subtract", json!(1_000_000_000_000i64))] {
        let body = json!({"op": op, "points": points});
        let (status, answer) = app.admin(Method::POST, SET_TO_THE_BOUND, Some(body)).await;
        let expected = if op == "add" { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
        assert_eq!(status, expected, "{op}: {answer}");
    }
    let (status, answer) = app.admin(Method::POST, SET_TO_THE_BOUND, Some(json!({"op": "set", "points": -1e12}))).await;
    assert_eq!(status, StatusCode::OK, "0 to -1e12 fits: {answer}");
    let (status, answer) = app.admin(Method::POST, SET_TO_THE_BOUND, Some(json!({"op": "set", "points": 1e12}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a 2e12 step does not: {answer}");
    assert_eq!(answer["error"]["path"], "points");
    assert_eq!(app.score("pz", "big").await, Some(json!(-1_000_000_000_000i64)), "the refused change changed nothing");

    let (status, board) = app.admin(Method::GET, "/v1/tenants/pz/contacts?profile=engagement", None).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let (status, reversed) =
        app.admin(Method::GET, "/v1/tenants/pz/contacts?profile=engagement&min=20&max=10", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a reversed range is an error, not an empty page: {reversed}");
    assert_eq!(reversed["error"]["path"], "min");
}

/// Writes into the stopped store's file what an earlier release wrote for
/// `pz`/`big` after the same requests: a total one point past the bound,
/// which no longer reads as a score, and its leaderboard row keyed by it.
fn poison(dir: &std::path::Path) {
    let table = |name| -> redb::TableDefinition<&str, &[u8]> { redb::TableDefinition::new(name) };
    let sortable = |cents: u64| format!("{:016x}", cents ^ (1 << 63));
    let db = redb::Database::open(dir.join("scorehook.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut contacts = txn.open_table(table("contacts")).unwrap();
        let key = "pz\u{1f}big";
        let mut state: Value = serde_json::from_slice(contacts.get(key).unwrap().unwrap().value()).unwrap();
        state["scores"]["engagement"]["total"] = json!(1_000_000_000_001i64);
        contacts.insert(key, serde_json::to_vec(&state).unwrap().as_slice()).unwrap();

        let mut scores = txn.open_table(table("scores")).unwrap();
        let row = |cents| format!("pz\u{1f}engagement\u{1f}{}\u{1f}big", sortable(cents));
        let updated =
            scores.remove(row(100_000_000_000_000).as_str()).unwrap().expect("the row at the bound").value().to_vec();
        scores.insert(row(100_000_000_000_100).as_str(), updated.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

/// An interaction that happened at the test clock's now.
fn now_event(app: &TestApp, id: &str, kind: &str, contact: &str) -> Value {
    let mut event = interaction(id, kind, contact);
    event["occurred_at"] = json!(app.clock.now());
    event
}

async fn quarantined(app: &TestApp) -> Vec<Value> {
    let (status, body) = app.admin(Method::GET, "/v1/quarantine", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["quarantined"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_poisoned_contact_is_set_aside_while_other_tenants_work_completes_and_a_repair_restores_it() {
    let crm = RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    contact_at_the_bound(&app).await;
    // Its open expires in an hour: the contact is in the sweeper's due index.
    let expiring = json!({"name": "Opens", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "1h"}]});
    app.admin(Method::PUT, "/v1/tenants/pz/profiles/recent", Some(expiring)).await;
    app.admin(Method::POST, "/v1/tenants/pz/profiles/recent/publish", None).await;
    app.sweep().await;
    app.post_webhook("pz", &now_event(&app, "open-big-2", "email.opened", "big")).await;

    // Another tenant: three actions fired and not yet delivered, a deadline running.
    app.seeds_tenant("ok", Some(&crm.url)).await;
    let deadline = json!({"name": "Unanswered", "when": {"deadline": {"start": {"type": "chat.first_message"},
        "awaits": {"type": "chat.accepted"}, "within_s": 60}}, "actions": [{"type": "add_tag", "tag": "unanswered"}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/ok/triggers/unanswered", Some(deadline)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let opens: Vec<Value> = (1..=5).map(|i| now_event(&app, &format!("o{i}"), "email.opened", "ana")).collect();
    assert_eq!(app.post_webhook("ok", &json!(opens)).await.0, StatusCode::ACCEPTED);
    let mut chat = now_event(&app, "chat-1", "chat.first_message", "ana");
    chat["attributes"] = json!({"channel": "whatsapp"});
    assert_eq!(app.post_webhook("ok", &chat).await.0, StatusCode::ACCEPTED);
    assert_eq!(app.actions("ok", "pending").await.len(), 3);

    let dir = app.stop().await;
    poison(dir.path());
    let app = TestApp::spawn_in(dir, false).await;
    let (status, _) = app.admin(Method::GET, "/v1/tenants/pz/contacts/big/scores", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "the poisoned contact does not read");

    // Both tenants publish again: each recompute walks its contacts.
    let edited =
        json!({"name": "Engagement", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 2}]});
    for tenant in ["pz", "ok"] {
        let profile = format!("/v1/tenants/{tenant}/profiles/engagement");
        assert!(app.admin(Method::PUT, &profile, Some(edited.clone())).await.0.is_success());
        assert_eq!(app.admin(Method::POST, &format!("{profile}/publish"), None).await.0, StatusCode::OK);
    }
    // Past the open's expiry and the chat's deadline: all of it is due.
    app.advance(TimeDelta::hours(2));
    app.sweep().await;

    let mut delivered = Vec::new();
    for _ in 0..4 {
        delivered.push(crm.next(Duration::from_secs(10)).await.body["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        delivered.iter().filter(|t| *t == "add_tag").count(),
        2,
        "the hot tag and the deadline's: {delivered:?}"
    );
    assert_eq!(app.actions("ok", "done").await.len(), 4, "the other tenant's actions, timer included, were delivered");
    let (_, ok_profile) = app.admin(Method::GET, "/v1/tenants/ok/profiles/engagement", None).await;
    assert_eq!(ok_profile["recompute"]["status"], "done", "{ok_profile}");
    assert_eq!(app.score("ok", "ana").await, Some(json!(10)), "recomputed at 2 points per open");
    let (_, pz_profile) = app.admin(Method::GET, "/v1/tenants/pz/profiles/engagement", None).await;
    assert_eq!(
        pz_profile["recompute"]["status"], "done",
        "the poisoned tenant's own recompute went past it: {pz_profile}"
    );
    assert_eq!(pz_profile["recompute"]["contacts_skipped"], 1, "{pz_profile}");

    let aside = quarantined(&app).await;
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        (aside[0]["tenant"].clone(), aside[0]["kind"].clone(), aside[0]["key"].clone()),
        (json!("pz"), json!("contact"), json!("big"))
    );
    assert!(aside[0]["error"].as_str().unwrap().contains("corrupt"), "{aside:?}");
    // Set aside, it is out of the sweeper's way: another step finds nothing of it.
    let count = aside[0]["count"].clone();
    app.sweep().await;
    assert_eq!(quarantined(&app).await[0]["count"], count, "the sweeper no longer picks it");

    // The repair: the operator's alone.
    let tenant_token = app.create_tenant("other", None).await;
    let (status, _) = app.call(Method::POST, "/v1/tenants/other/contacts/big/repair", Some(&tenant_token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a tenant's token cannot repair");
    let (status, repaired) = app.admin(Method::POST, "/v1/tenants/pz/contacts/big/repair", None).await;
    assert_eq!(status, StatusCode::OK, "{repaired}");
    assert_eq!(repaired["was_readable"], false);
    // Rebuilt: 2 opens × 2 points and the manual 1e12, at the bound; `recent`'s opens expired.
    assert_eq!(repaired["scores"], json!({"engagement": 1_000_000_000_000i64}), "{repaired}");
    let (status, scores) = app.admin(Method::GET, "/v1/tenants/pz/contacts/big/scores", None).await;
    assert_eq!(status, StatusCode::OK, "{scores}");
    assert_eq!(scores["scores"]["engagement"]["score"], json!(1_000_000_000_000i64));
    assert!(quarantined(&app).await.is_empty(), "released");
    let (_, board) = app.admin(Method::GET, "/v1/tenants/pz/contacts?profile=engagement", None).await;
    assert_eq!(
        board["contacts"].as_array().unwrap().len(),
        1,
        "one leaderboard row, not the poisoned one beside it: {board}"
    );
    let (status, _) = app
        .admin(Method::POST, SET_TO_THE_BOUND, Some(json!({"op": "subtract", "points": 1_000_000_000_000i64})))
        .await;
    assert_eq!(status, StatusCode::OK, "the contact takes changes again");
    assert_eq!(app.score("pz", "big").await, Some(json!(0)));
}
