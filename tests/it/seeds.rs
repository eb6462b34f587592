//! The seeds' example end to end: a contact warms up, crosses 5, and the
//! three actions reach the CRM exactly once, signed, with stable ids.

use scorehook::clock::Clock;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::spawn_app::SIGNING_SECRET;
use crate::support::{interaction, RecordingCrm, TestApp};
use scorehook::crm::standard_webhooks;

#[tokio::test]
async fn jhon_warms_up_and_the_hot_lead_actions_are_delivered_exactly_once() {
    let crm = RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", Some(&crm.url)).await;

    for i in 1..=4 {
        let (status, _) = app.post_webhook("acme", &interaction(&format!("open-{i}"), "email.opened", "jhon")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    app.drain_outbox().await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(4)));
    assert!(crm.received().await.is_empty(), "nothing fires at 4");

    let mut demo = interaction("stage-demo", "deal.stage_changed", "jhon");
    demo["deal_id"] = json!("d_7");
    demo["attributes"] = json!({"pipeline": "sales", "stage": "demo"});
    app.post_webhook("acme", &demo).await;
    let (_, again) = app.post_webhook("acme", &demo).await;
    assert_eq!(again, json!({"accepted": 0, "duplicates": 1}), "the CRM's retry scores once");
    assert_eq!(app.score("acme", "jhon").await, Some(json!(7)));
    app.drain_outbox().await;

    let requests = crm.received().await;
    let kinds: Vec<&str> = requests.iter().map(|r| r.body["type"].as_str().unwrap()).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(sorted, ["add_note", "add_tag", "create_task"], "each action exactly once");
    for request in &requests {
        let body = &request.body;
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["contact_id"], "jhon");
        assert_eq!(body["deal_id"], "d_7");
        assert_eq!(body["trigger"], "hot");
        assert!(body["id"].as_str().unwrap().starts_with("act_"));
        assert_eq!(request.header("idempotency-key"), body["id"].as_str());
        assert_eq!(request.header("webhook-id"), body["id"].as_str(), "the message id is the action's");
        let verified = standard_webhooks::verify(
            &standard_webhooks::key_of(SIGNING_SECRET).unwrap(),
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.header("webhook-signature"),
            &request.raw,
            app.clock.now(),
        );
        assert_eq!(verified, Ok(()), "actions are signed with the tenant's signing secret");
        assert_eq!(request.header("x-scorehook-signature"), None, "not with the webhook secret");
        match body["type"].as_str().unwrap() {
            "add_note" => assert_eq!(body["params"]["text"], "High engagement: prioritise jhon"),
            "add_tag" => assert_eq!(body["params"]["tag"], "Caliente"),
            "create_task" => {
                assert_eq!(body["params"]["title"], "Follow up");
                let due: chrono::DateTime<chrono::Utc> = body["params"]["due_at"].as_str().unwrap().parse().unwrap();
                assert_eq!(due, app.clock.now() + chrono::TimeDelta::days(1));
            }
            other => panic!("unexpected action {other}"),
        }
    }
    assert_eq!(app.actions("acme", "done").await.len(), 3);

    app.post_webhook("acme", &interaction("open-5", "email.opened", "jhon")).await;
    app.drain_outbox().await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(8)));
    assert!(crm.received().await.is_empty(), "on_enter does not fire again at 8");
    assert_eq!(app.actions("acme", "done").await.len(), 3);
}

#[tokio::test]
async fn the_background_executor_delivers_without_being_driven() {
    let crm = RecordingCrm::start().await;
    let app = TestApp::spawn_with_executor().await;
    app.seeds_tenant("acme", Some(&crm.url)).await;
    let batch: Vec<_> = (1..=5).map(|i| interaction(&format!("open-{i}"), "email.opened", "jhon")).collect();
    app.post_webhook("acme", &json!(batch)).await;
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(crm.next(Duration::from_secs(10)).await.body["type"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    assert_eq!(kinds, ["add_note", "add_tag", "create_task"]);
}
