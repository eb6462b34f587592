//! HighLevel end to end: signed marketplace events and keyed workflow
//! webhooks through the real route, email-only events resolved through a
//! fake LeadConnector API, and every action's call as HighLevel documents it.
//!
//! Signatures use RFC 8032 test key 1 (the worked example of highlevel.md
//! §2), installed per tenant as `ed25519_public_key`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{SecondsFormat, TimeDelta};
use reqwest::{Method, StatusCode};
use ring::signature::Ed25519KeyPair;
use scorehook::clock::Clock;
use scorehook::crm::egress::Egress;
use scorehook::crm::{Deliverer, DeliveryError};
use scorehook::ids::TenantId;
use scorehook::outbox::OutboxItem;
use serde_json::{json, Value};

use crate::support::spawn_app::SECRET;
use crate::support::{crm_sample, FakeCrm, TestApp};

const TEST_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const TEST_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
const TOKEN: &str = "pit-test-token";

fn sign(body: &[u8]) -> String {
    let seed = hex::decode(TEST_SEED).unwrap();
    let key = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    STANDARD.encode(key.sign(body).as_ref())
}

fn sample(file: &str) -> Vec<u8> {
    crm_sample("highlevel", file)
}

/// A sample with its envelope `timestamp` moved to `at` (the samples date from 2021).
fn stamped(file: &str, at: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&sample(file)).unwrap();
    body["timestamp"] = json!(at.to_rfc3339_opts(SecondsFormat::Millis, true));
    serde_json::to_vec(&body).unwrap()
}

/// A HighLevel tenant whose profile scores what the samples produce.
async fn tenant(app: &TestApp, name: &str, crm: &FakeCrm) {
    let settings = json!({"ed25519_public_key": TEST_PUBLIC_KEY, "access_token": TOKEN, "base_url": crm.url, "score_field_id": "BcdmQEsNgz6AVpgLVUJ0"});
    app.create_crm_tenant(name, "highlevel", settings).await;
    let profile = json!({"name": "Engagement", "rules": [
        {"id": "chat", "when": {"type": "chat.message"}, "points": 2},
        {"id": "stage", "when": {"type": "deal.stage_changed"}, "points": 3},
        {"id": "missed", "when": {"type": "call.missed"}, "points": 4},
        {"id": "sent", "when": {"type": "email.sent"}, "points": 1},
        {"id": "form", "when": {"type": "form.submitted", "attributes": {"form_id": {"equals": "frm_123"}}}, "points": 5}]});
    let path = format!("/v1/tenants/{name}/profiles/engagement");
    let (status, body) = app.admin(Method::PUT, &path, Some(profile)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.admin(Method::POST, &format!("{path}/publish"), None).await.0, StatusCode::OK);
}

async fn post_signed(app: &TestApp, tenant: &str, body: &[u8]) -> (StatusCode, Value) {
    let signature = sign(body);
    let headers = [("content-type", "application/json"), ("x-ghl-signature", signature.as_str())];
    app.post_provider(&format!("/v1/webhooks/highlevel/{tenant}"), &headers, body).await
}

#[tokio::test]
async fn signed_events_are_accepted_and_score_once_however_often_they_are_delivered() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, "hl", &crm).await;

    // The exact sample bytes (no timestamp in this one) verify and score.
    let (status, body) = post_signed(&app, "hl", &sample("inbound_message_call_voicemail_docs.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.score("hl", "gb7laj5aYQC4glDtP1r5").await, Some(json!(4)));

    let stage = stamped("opportunity_stage_update_docs.json", app.clock.now());
    let (status, body) = post_signed(&app, "hl", &stage).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 1, "duplicates": 0})));
    let (status, again) = post_signed(&app, "hl", &stage).await;
    assert_eq!((status, again), (StatusCode::ACCEPTED, json!({"accepted": 0, "duplicates": 1})), "the redelivery");
    assert_eq!(app.score("hl", "cJAWDskpkJHbRbhAT7bs").await, Some(json!(3)), "scored once");
}

#[tokio::test]
async fn wrong_stale_or_missing_signatures_are_refused_and_store_nothing() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, "hl", &crm).await;
    let now = app.clock.now();
    let stage = stamped("opportunity_stage_update_docs.json", now);
    let stats = sample("lc_email_stats_delivered_docs.json");
    let task = br#"{"type":"TaskCreate","locationId":"l1","id":"t1"}"#.to_vec();
    let path = "/v1/webhooks/highlevel/hl";

    for body in [&stage, &stats, &task] {
        let wrong = sign(b"another body");
        let headers = [("content-type", "application/json"), ("x-ghl-signature", wrong.as_str())];
        assert_eq!(app.post_provider(path, &headers, body).await.0, StatusCode::UNAUTHORIZED, "wrong signature");
        let missing = [("content-type", "application/json")];
        assert_eq!(app.post_provider(path, &missing, body).await.0, StatusCode::UNAUTHORIZED, "no signature");
        let keyed = format!("{path}?key=not-the-secret");
        assert_eq!(app.post_provider(&keyed, &missing, body).await.0, StatusCode::UNAUTHORIZED, "wrong URL key");
    }
    let stale = stamped("opportunity_stage_update_docs.json", now - TimeDelta::minutes(121));
    let (status, body) = post_signed(&app, "hl", &stale).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    assert_eq!(app.score("hl", "cJAWDskpkJHbRbhAT7bs").await, None, "nothing scored");
    assert_eq!(app.actions("hl", "pending").await, Vec::<Value>::new(), "nothing queued");
    assert_eq!(app.unmapped("hl").await, json!({}), "nothing counted");
}

#[tokio::test]
async fn unmapped_kinds_are_acknowledged_and_counted() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, "hl", &crm).await;
    let task = br#"{"type":"TaskCreate","locationId":"l1","id":"t1"}"#;
    let (status, body) = post_signed(&app, "hl", task).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    post_signed(&app, "hl", task).await;
    assert_eq!(app.unmapped("hl").await, json!({"highlevel:TaskCreate": 2}));
}

#[tokio::test]
async fn a_workflow_webhook_with_the_tenants_key_scores_once() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, "hl", &crm).await;
    let body = sample("workflow_webhook_form_submitted_constructed.json");
    let path = format!("/v1/webhooks/highlevel/hl?key={SECRET}");
    let headers = [("content-type", "application/json")];
    assert_eq!(app.post_provider(&path, &headers, &body).await.0, StatusCode::ACCEPTED);
    let (_, again) = app.post_provider(&path, &headers, &body).await;
    assert_eq!(again, json!({"accepted": 0, "duplicates": 1}), "an identical re-run collapses");
    assert_eq!(app.score("hl", "c_42hlWf01").await, Some(json!(5)));
}

#[tokio::test]
async fn an_email_only_event_is_stored_then_resolved_through_the_api_and_scored() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, "hl", &crm).await;
    crm.on("GET", "/contacts/search/duplicate", 200, json!({"contact": {"id": "c_mail", "email": "test@example.com"}}));
    let stats = sample("lc_email_stats_delivered_docs.json");

    let (status, body) = post_signed(&app, "hl", &stats).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 1, "duplicates": 0, "queued": 1})));
    let (_, again) = post_signed(&app, "hl", &stats).await;
    assert_eq!(again, json!({"accepted": 0, "duplicates": 1}), "queued once");
    assert!(crm.calls().is_empty(), "nothing resolved before the worker runs");

    app.drain_outbox().await;
    let lookups = crm.calls_to("GET", "/contacts/search/duplicate");
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].query.as_deref(), Some("locationId=ve9EPM428h8vShlRW1KT&email=test%40example.com"));
    assert_eq!(lookups[0].header("authorization"), Some("Bearer pit-test-token"));
    assert_eq!(lookups[0].header("version"), Some("2021-07-28"));
    assert_eq!(app.score("hl", "c_mail").await, Some(json!(1)));
    assert_eq!(app.actions("hl", "done").await.len(), 1);
}

#[tokio::test]
async fn an_email_event_for_an_unknown_address_ends_dead_not_dropped() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, "hl", &crm).await;
    crm.on("GET", "/contacts/search/duplicate", 200, json!({"contact": null}));
    let (status, _) = post_signed(&app, "hl", &sample("lc_email_stats_delivered_docs.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.drain_outbox().await;
    let dead = app.actions("hl", "dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["type"], "resolve_event");
    let error = dead[0]["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("no HighLevel contact"), "{}", dead[0]);
}

fn item(kind: &str, params: Value, deal: Option<&str>, fired_at: chrono::DateTime<chrono::Utc>) -> OutboxItem {
    crate::support::fired_action("hl", kind, params, "c42", deal, fired_at)
}

#[tokio::test]
async fn every_action_makes_the_documented_call() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, "hl", &crm).await;
    let record = app.local.service.store.tenant(&TenantId::parse("hl").unwrap()).await.unwrap().unwrap();
    let now = app.clock.now();
    let deliverer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap();
    let cases = [
        (
            "move_stage",
            json!({"pipeline": "VDm7RPYC2GLUvdpKmBfC", "stage": "e93b"}),
            "PUT",
            "/opportunities/opp1",
            json!({"pipelineId": "VDm7RPYC2GLUvdpKmBfC", "pipelineStageId": "e93b"}),
        ),
        (
            "move_stage",
            json!({"pipeline": "VDm7RPYC2GLUvdpKmBfC", "stage": "e93b", "as_user": "usr_77"}),
            "PUT",
            "/opportunities/opp1",
            json!({"pipelineId": "VDm7RPYC2GLUvdpKmBfC", "pipelineStageId": "e93b", "assignedTo": "usr_77"}),
        ),
        ("add_tag", json!({"tag": "Caliente"}), "POST", "/contacts/c42/tags", json!({"tags": ["Caliente"]})),
        ("remove_tag", json!({"tag": "Caliente"}), "DELETE", "/contacts/c42/tags", json!({"tags": ["Caliente"]})),
        (
            "create_task",
            json!({"title": "Follow up", "body": "Call today", "due_at": "2026-11-24T10:00:00Z"}),
            "POST",
            "/contacts/c42/tasks",
            json!({"title": "Follow up", "body": "Call today\n\nDeal (opportunity): opp1", "dueDate": "2026-11-24T10:00:00Z", "completed": false}),
        ),
        (
            "notify",
            json!({"message": "Hot lead: c42\nscore 12", "user": "usr_77", "url": null}),
            "POST",
            "/contacts/c42/tasks",
            json!({"title": "Hot lead: c42", "body": "Hot lead: c42\nscore 12\n\nDeal (opportunity): opp1",
                   "dueDate": now.to_rfc3339_opts(SecondsFormat::Secs, true), "completed": false,
                   "assignedTo": "usr_77"}),
        ),
        (
            "add_note",
            json!({"text": "High engagement"}),
            "POST",
            "/contacts/c42/notes",
            json!({"body": "High engagement\n\nDeal (opportunity): opp1"}),
        ),
        (
            "set_field",
            json!({"field": "scorehook_score", "profile": "engagement", "value": 12}),
            "PUT",
            "/contacts/c42",
            json!({"customFields": [{"id": "BcdmQEsNgz6AVpgLVUJ0", "field_value": 12}]}),
        ),
    ];
    crm.on("POST", "/contacts/c42/tags", 201, json!({"tags": ["Caliente"]}));
    for (kind, params, method, path, body) in cases {
        let delivered = crate::support::sent(
            deliverer.deliver(&record, &item(kind, params, Some("opp1"), now), now, &app.local.service).await,
        );
        let expected = if kind == "add_tag" { 201 } else { 200 };
        assert_eq!(delivered, Ok(expected), "{kind}");
        let calls = crm.calls_to(method, path);
        let call = calls.last().unwrap_or_else(|| panic!("{kind}: no {method} {path} in {:?}", crm.calls()));
        assert_eq!(call.body, body, "{kind}");
        assert_eq!(call.header("authorization"), Some("Bearer pit-test-token"), "{kind}");
        assert_eq!(call.header("version"), Some("2021-07-28"), "{kind}");
        assert_eq!(call.header("content-type"), Some("application/json"), "{kind}");
        assert_eq!(call.header("accept"), Some("application/json"), "{kind}");
    }
    assert_eq!(crm.calls().len(), 8, "one call per action");
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_or_one_ten_second_interval() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, "hl", &crm).await;
    let record = app.local.service.store.tenant(&TenantId::parse("hl").unwrap()).await.unwrap().unwrap();
    let now = app.clock.now();
    let tag = item("add_tag", json!({"tag": "Caliente"}), None, now);
    let limited = json!({"statusCode": 429, "message": "Too many requests"});

    crm.once("POST", "/contacts/c42/tags", 429, &[("retry-after", "30")], limited.clone());
    match Deliverer::new(Egress::ALLOW_PRIVATE).unwrap().deliver(&record, &tag, now, &app.local.service).await {
        Err(DeliveryError::Retryable { http_status, retry_after, .. }) => {
            assert_eq!((http_status, retry_after), (Some(429), Some(TimeDelta::seconds(30))));
        }
        other => panic!("{other:?}"),
    }
    // A fresh deliverer: the first one's bucket now pauses this tenant for 30 s.
    crm.once("POST", "/contacts/c42/tags", 429, &[], limited);
    match Deliverer::new(Egress::ALLOW_PRIVATE).unwrap().deliver(&record, &tag, now, &app.local.service).await {
        Err(DeliveryError::Retryable { retry_after, .. }) => assert_eq!(retry_after, Some(TimeDelta::seconds(10))),
        other => panic!("{other:?}"),
    }
    assert_eq!(crm.calls_to("POST", "/contacts/c42/tags").len(), 2);
}
