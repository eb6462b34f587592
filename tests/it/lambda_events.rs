//! Every sample under `events/` through its real Lambda handler, in-process,
//! against moto: HTTP events through `lambda_http`'s own request parsing
//! and the one router; the stream batch through the executor; the schedule
//! through the sweeper.

use scorehook::crm::egress::Egress;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use scorehook::clock::ManualClock;
use scorehook::crm::Deliverer;
use scorehook::engine::ledger::ContactState;
use scorehook::ids::{ContactId, TenantId};
use scorehook::lambda;
use scorehook::outbox::OutboxItem;
use scorehook::service::Service;
use scorehook::store::dynamodb::DynamoStore;
use scorehook::store::{Commit, Store};
use scorehook::tenant::Secret;

use crate::support::dynamo::fresh_store;
use crate::support::RecordingCrm;

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The instant the samples were signed at.
fn signed_at() -> DateTime<Utc> {
    let event: Value = serde_json::from_str(&sample("function-url-webhook-generic.json")).unwrap();
    let seconds = event["headers"]["x-scorehook-timestamp"].as_str().unwrap().parse().unwrap();
    DateTime::from_timestamp(seconds, 0).unwrap()
}

/// A store with the example tenant applied, and a service at the samples' time.
async fn demo() -> Option<(DynamoStore, Service, Arc<ManualClock>)> {
    let store = fresh_store().await?;
    let clock = Arc::new(ManualClock::new(signed_at()));
    // The example's receiver is on loopback: the operator's setting allows it.
    let service =
        Service::new(Arc::new(store.clone()), clock.clone(), Some(Secret::new("dev-admin-token-for-local-use-only")))
            .with_egress(Egress::ALLOW_PRIVATE);
    service.apply(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")).await.unwrap();
    Some((store, service, clock))
}

async fn call(router: &axum::Router, name: &str) -> (u16, Value) {
    let request = lambda_http::request::from_str(&sample(name)).unwrap();
    let response = lambda::http::handle(router, request).await;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn the_http_handler_serves_every_function_url_sample() {
    let Some((_, service, _)) = demo().await else { return };
    let router = scorehook::http::router(service);
    assert_eq!(
        call(&router, "function-url-webhook-generic.json").await,
        (202, json!({"accepted": 1, "duplicates": 0}))
    );
    assert_eq!(
        call(&router, "function-url-webhook-generic-batch.json").await,
        (202, json!({"accepted": 1, "duplicates": 1})),
        "the batch repeats evt_01"
    );
    let (status, board) = call(&router, "function-url-admin-leaderboard.json").await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(board["contacts"][0]["contact_id"], "c_42");
    assert_eq!(board["contacts"][0]["score"], 4, "one open and the demo stage");
    let (status, profile) = call(&router, "function-url-admin-put-profile.json").await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!((profile["version"].clone(), profile["published_version"].clone()), (json!(2), json!(1)));
}

/// Stores the action the stream sample announces, as a commit would.
async fn queue_sample_action(store: &DynamoStore, status_due: bool) -> OutboxItem {
    let batch: Value = serde_json::from_str(&sample("dynamodb-stream-outbox-batch.json")).unwrap();
    let doc = batch["Records"][0]["dynamodb"]["NewImage"]["doc"]["S"].as_str().unwrap();
    let mut item: OutboxItem = serde_json::from_str(doc).unwrap();
    if !status_due {
        item.next_attempt_at = Some(signed_at() + chrono::TimeDelta::days(1));
    }
    let tenant = TenantId::parse("demo").unwrap();
    let state = ContactState::new(ContactId::parse("c_queue").unwrap());
    let commit = Commit {
        tenant: &tenant,
        expected_version: 0,
        before: None,
        state: &state,
        interaction: None,
        received_at: signed_at(),
        ledger: &[],
        actions: std::slice::from_ref(&item),
    };
    store.commit(commit).await.unwrap();
    item
}

async fn point_actions_at(service: &Service, crm: &RecordingCrm) {
    let input = scorehook::service::admin::TenantInput {
        provider: scorehook::tenant::Provider::Generic,
        webhook_secret: None,
        actions_url: Some(crm.url.clone()),
        crm: Default::default(),
        signing_secret: None,
    };
    let tenant = TenantId::parse("demo").unwrap();
    service.put_tenant(&scorehook::service::Caller::Operator, &tenant, input).await.unwrap();
}

#[tokio::test]
async fn the_executor_delivers_queued_actions_from_a_stream_batch_once() {
    let Some((store, service, _)) = demo().await else { return };
    let crm = RecordingCrm::start().await;
    point_actions_at(&service, &crm).await;
    let item = queue_sample_action(&store, true).await;
    let batch: Value = serde_json::from_str(&sample("dynamodb-stream-outbox-batch.json")).unwrap();
    let deliverer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap();

    let response = lambda::executor::handle(&service, &deliverer, &batch).await;
    assert_eq!(response, json!({"batchItemFailures": []}));
    let received = crm.received().await;
    assert_eq!(received.len(), 1, "only the inserted pending action is delivered");
    assert_eq!(received[0].body["id"], item.action.id.as_str());

    // The stream delivers at least once: the same batch again sends nothing.
    lambda::executor::handle(&service, &deliverer, &batch).await;
    assert!(crm.received().await.is_empty());
    let stored = store.action(&item.tenant, &item.action.id).await.unwrap().unwrap();
    assert_eq!(stored.status, scorehook::outbox::ActionStatus::Done);
}

#[tokio::test]
async fn the_sweeper_delivers_what_is_due_on_its_schedule() {
    let Some((store, service, clock)) = demo().await else { return };
    let schedule: Value = serde_json::from_str(&sample("schedule-sweeper.json")).unwrap();
    assert_eq!(schedule["detail-type"], "Scheduled Event");
    let crm = RecordingCrm::start().await;
    point_actions_at(&service, &crm).await;
    let item = queue_sample_action(&store, false).await;
    let deliverer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap();
    let deadline = SystemTime::now() + Duration::from_secs(60);

    let report = lambda::sweeper::handle(&service, &deliverer, deadline).await.unwrap();
    assert_eq!(report["drained"], true);
    assert!(crm.received().await.is_empty(), "not due yet");

    clock.advance(chrono::TimeDelta::days(1));
    lambda::sweeper::handle(&service, &deliverer, deadline).await.unwrap();
    let received = crm.received().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["id"], item.action.id.as_str());
}

#[test]
fn webhook_samples_are_signed_interactions() {
    for (name, count) in [("function-url-webhook-generic.json", 1), ("function-url-webhook-generic-batch.json", 2)] {
        let sample: Value = serde_json::from_str(&sample(name)).unwrap();
        let body = sample["body"].as_str().unwrap();
        let interactions = scorehook::engine::interaction::parse_body(serde_json::from_str(body).unwrap()).unwrap();
        assert_eq!(interactions.len(), count, "{name}");
        let headers = &sample["headers"];
        let verified = scorehook::crm::signature::verify(
            "demo-secret-change-me",
            headers["x-scorehook-timestamp"].as_str(),
            headers["x-scorehook-signature"].as_str(),
            body.as_bytes(),
            signed_at(),
        );
        assert_eq!(verified, Ok(()), "{name}");
    }
}
