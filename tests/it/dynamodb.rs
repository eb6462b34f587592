//! scorehook over HTTP on DynamoDB (moto): the seeds' example, a storm of
//! redelivered concurrent events, the round trips per interaction, and the
//! TTL attributes the table relies on.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;
use serde_json::json;

use scorehook::clock::Clock;
use scorehook::store::dynamodb::DynamoStore;

use crate::support::dynamo::fresh_store;
use crate::support::{interaction, RecordingCrm, TestApp};

async fn app_on_dynamo() -> Option<(TestApp, DynamoStore)> {
    let store = fresh_store().await?;
    Some((TestApp::spawn_on(Arc::new(store.clone())).await, store))
}

#[tokio::test]
async fn the_seeds_example_runs_unchanged_on_dynamodb() {
    let Some((app, _)) = app_on_dynamo().await else { return };
    let crm = RecordingCrm::start().await;
    app.seeds_tenant("acme", Some(&crm.url)).await;
    for i in 1..=4 {
        app.post_webhook("acme", &interaction(&format!("open-{i}"), "email.opened", "jhon")).await;
    }
    app.drain_outbox().await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(4)));
    assert!(crm.received().await.is_empty());

    let mut demo = interaction("stage-demo", "deal.stage_changed", "jhon");
    demo["attributes"] = json!({"stage": "demo"});
    app.post_webhook("acme", &demo).await;
    let (_, again) = app.post_webhook("acme", &demo).await;
    assert_eq!(again, json!({"accepted": 0, "duplicates": 1}));
    app.drain_outbox().await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(7)));
    let mut kinds: Vec<String> =
        crm.received().await.iter().map(|r| r.body["type"].as_str().unwrap().to_owned()).collect();
    kinds.sort();
    assert_eq!(kinds, ["add_note", "add_tag", "create_task"]);
    assert_eq!(app.actions("acme", "done").await.len(), 3);

    app.post_webhook("acme", &interaction("open-5", "email.opened", "jhon")).await;
    app.drain_outbox().await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(8)));
    assert!(crm.received().await.is_empty(), "on_enter does not fire again");
    let (_, board) = app.admin(reqwest::Method::GET, "/v1/tenants/acme/contacts?profile=engagement", None).await;
    assert_eq!(
        board["contacts"],
        json!([{"contact_id": "jhon", "score": 8, "updated_at": board["contacts"][0]["updated_at"]}])
    );
}

#[tokio::test]
async fn a_storm_of_redelivered_concurrent_events_scores_each_exactly_once() {
    let Some((app, _)) = app_on_dynamo().await else { return };
    app.seeds_tenant("acme", None).await;
    let app = Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for copy in 0..2 {
        for i in 0..200 {
            let app = Arc::clone(&app);
            tasks.spawn(async move {
                let _ = copy;
                app.post_webhook("acme", &interaction(&format!("storm-{i}"), "email.opened", "jhon")).await
            });
        }
    }
    let (mut accepted, mut duplicates) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        accepted += body["accepted"].as_u64().unwrap();
        duplicates += body["duplicates"].as_u64().unwrap();
    }
    assert_eq!((accepted, duplicates), (200, 200));
    assert_eq!(app.score("acme", "jhon").await, Some(json!(200)));
}

#[tokio::test]
async fn a_common_interaction_costs_two_dynamodb_calls() {
    let Some((app, store)) = app_on_dynamo().await else { return };
    app.seeds_tenant("acme", None).await;
    // The first webhook warms the per-process configuration cache.
    app.post_webhook("acme", &interaction("warm-up", "email.opened", "ana")).await;
    let before = store.metrics();
    let (status, _) = app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let after = store.metrics();
    assert_eq!(after.calls - before.calls, 2, "one GetItem of the contact, one TransactWriteItems");
    // Marker, state, history, one leaderboard row and one ledger item: 5 small items at 2 WCU each.
    assert_eq!(after.write_units - before.write_units, 10);
    assert_eq!(after.read_half_units - before.read_half_units, 2, "one strongly consistent read of a new contact");
}

#[tokio::test]
async fn finished_actions_get_a_ttl_and_dead_ones_wait_for_a_replay() {
    let Some((app, store)) = app_on_dynamo().await else { return };
    let crm = RecordingCrm::start().await;
    crm.respond_with(&[204, 400]);
    app.seeds_tenant("acme", Some(&crm.url)).await;
    let mut demo = interaction("stage-demo", "deal.stage_changed", "jhon");
    demo["deal_id"] = json!("d_7");
    demo["attributes"] = json!({"pipeline": "sales", "stage": "demo"});
    for event in [interaction("o1", "email.opened", "jhon"), interaction("o2", "email.opened", "jhon"), demo] {
        assert_eq!(app.post_webhook("acme", &event).await.0, StatusCode::ACCEPTED);
    }
    app.drain_outbox().await;
    let (done, dead) = (app.actions("acme", "done").await, app.actions("acme", "dead").await);
    assert!(!done.is_empty() && !dead.is_empty(), "one of each: {done:?} {dead:?}");
    let ttl_of = |action: &serde_json::Value| {
        let (store, id) = (store.clone(), action["id"].as_str().unwrap().to_owned());
        async move {
            let pk = format!("T#acme#A#{id}");
            let item = store
                .client()
                .get_item()
                .table_name(store.table())
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S("ACTION".into()))
                .send()
                .await
                .unwrap()
                .item()
                .cloned()
                .unwrap();
            item.get("ttl").map(|v| v.as_n().unwrap().parse::<i64>().unwrap())
        }
    };
    let finished = chrono::DateTime::parse_from_rfc3339(done[0]["attempts"][0]["at"].as_str().unwrap()).unwrap();
    let days = scorehook::store::dynamodb::items::FINISHED_ACTION_DAYS;
    assert_eq!(ttl_of(&done[0]).await, Some(finished.timestamp() + days * 86_400));
    assert_eq!(ttl_of(&dead[0]).await, None, "a dead action stays until someone replays it");
}

#[tokio::test]
async fn ttl_attributes_are_set_for_markers_and_expiring_ledger_items() {
    let Some((app, store)) = app_on_dynamo().await else { return };
    app.create_tenant("acme", None).await;
    let profile = json!({"name": "E", "rules": [
        {"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "30d"},
        {"id": "forever", "when": {"type": "email.clicked"}, "points": 1}]});
    app.admin(reqwest::Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(profile)).await;
    app.admin(reqwest::Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None).await;
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    app.post_webhook("acme", &interaction("e2", "email.clicked", "jhon")).await;

    let get = |pk: String, sk: String| {
        let store = store.clone();
        async move {
            store
                .client()
                .get_item()
                .table_name(store.table())
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .unwrap()
                .item()
                .cloned()
                .unwrap()
        }
    };
    let ttl = |item: &std::collections::HashMap<String, AttributeValue>| {
        item.get("ttl").map(|v| v.as_n().unwrap().parse::<i64>().unwrap())
    };
    let now = app.clock.now().timestamp();
    let marker = get("T#acme#E#e1".into(), "EVENT".into()).await;
    assert_eq!(ttl(&marker), Some(now + 90 * 86_400), "dedupe markers live for the retention window");
    let expiring = get("T#acme#C#jhon".into(), format!("LEDGER#{:020}", 0)).await;
    assert_eq!(ttl(&expiring), Some(chrono::DateTime::parse_from_rfc3339("2026-12-22T10:00:00Z").unwrap().timestamp()));
    let forever = get("T#acme#C#jhon".into(), format!("LEDGER#{:020}", 1)).await;
    assert_eq!(ttl(&forever), None, "points that never expire are never reclaimed");
}

#[tokio::test]
async fn the_largest_allowed_commit_fits_one_transaction() {
    let Some((app, store)) = app_on_dynamo().await else { return };
    app.create_tenant("acme", None).await;
    let profile = json!({"name": "P", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1}]});
    for i in 0..25 {
        let path = format!("/v1/tenants/acme/profiles/p{i}");
        app.admin(reqwest::Method::PUT, &path, Some(profile.clone())).await;
        app.admin(reqwest::Method::POST, &format!("{path}/publish"), None).await;
    }
    for id in ["t1", "t2", "t3"] {
        let trigger = json!({"name": "T", "when": {"event": {"type": "email.opened"}},
            "actions": vec![json!({"type": "add_tag", "tag": "t"}); 20]});
        let (status, _) =
            app.admin(reqwest::Method::PUT, &format!("/v1/tenants/acme/triggers/{id}"), Some(trigger)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let before = store.metrics();
    let (status, body) = app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 1, "duplicates": 0})));
    assert_eq!(store.metrics().calls - before.calls, 3, "config read, state read, one transaction");
    let (_, view) = app.admin(reqwest::Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    assert_eq!(view["scores"].as_object().unwrap().len(), 25);
    let (_, pending) = app.admin(reqwest::Method::GET, "/v1/tenants/acme/actions?status=pending&limit=100", None).await;
    assert_eq!(pending["actions"].as_array().unwrap().len(), 60);
}
