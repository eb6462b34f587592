//! Pipedrive end to end: real webhook bodies with HTTP Basic credentials
//! through the route, id-only deal events resolved through a fake Pipedrive
//! API, and every action checked call by call at that fake.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use scorehook::crm::egress::Egress;
use serde_json::{json, Value};

use scorehook::crm::{Deliverer, DeliveryError};
use scorehook::ids::TenantId;
use scorehook::outbox::OutboxItem;
use scorehook::tenant::TenantRecord;

use crate::support::spawn_app::SECRET;
use crate::support::{crm_sample, FakeCrm, TestApp};

const TENANT: &str = "pd";
const USER: &str = "scorehook";
const TOKEN: &str = "pd-api-token-1";
const HOOK: &str = "/v1/webhooks/pipedrive/pd";
/// A custom person field's code (Pipedrive's 40-character hash).
const SCORE_CODE: &str = "d4de1c1518b4531717c676029a45911c340390a6";

/// `Authorization: Basic …` for this user and password.
fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A Pipedrive tenant whose API is `crm`, with a published profile scoring Pipedrive's interactions.
async fn pipedrive_tenant(app: &TestApp, crm: &FakeCrm) {
    pipedrive_tenant_at(app, &crm.url).await;
}

/// The same, with its API at `base_url`.
async fn pipedrive_tenant_at(app: &TestApp, base_url: &str) {
    let settings = json!({"webhook_user": USER, "api_token": TOKEN, "base_url": base_url, "company_id": "8087566"});
    app.create_crm_tenant(TENANT, "pipedrive", settings).await;
    let profile = format!("/v1/tenants/{TENANT}/profiles/engagement");
    let body = json!({"name": "Engagement", "rules": [
        {"id": "stage", "when": {"type": "deal.stage_changed", "attributes": {"stage": {"equals": 3}}}, "points": 3},
        {"id": "meeting", "when": {"type": "appointment.booked"}, "points": 5}]});
    let (status, answer) = app.admin(Method::PUT, &profile, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(app.admin(Method::POST, &format!("{profile}/publish"), None).await.0, StatusCode::OK);
}

async fn post(app: &TestApp, authorization: Option<&str>, body: &[u8]) -> (StatusCode, Value) {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(authorization.map(|a| ("authorization", a)));
    app.post_provider(HOOK, &headers, body).await
}

/// A sample with one edit applied.
fn edited(file: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&crm_sample("pipedrive", file)).unwrap();
    edit(&mut value);
    serde_json::to_vec(&value).unwrap()
}

#[tokio::test]
async fn a_stage_change_with_the_right_credentials_is_accepted_and_scores() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    let body = crm_sample("pipedrive", "v2_change_deal_stage.json");
    let (status, answer) = post(&app, Some(&basic(USER, SECRET)), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer, json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(app.score(TENANT, "8").await, Some(json!(3)));

    let (status, _) =
        post(&app, Some(&basic(USER, SECRET)), &crm_sample("pipedrive", "v2_create_activity_meeting_docs.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(app.score(TENANT, "10").await, Some(json!(5)), "a booked meeting scores its person");
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_refused_and_nothing_is_stored() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    let without_person = edited("v2_change_deal_stage.json", |v| v["data"]["person_id"] = Value::Null);
    let unmapped = edited("v2_change_deal_stage.json", |v| v["meta"]["action"] = json!("delete"));
    let cases = [
        ("wrong password", Some(basic(USER, "not-the-secret"))),
        ("wrong user", Some(basic("someone", SECRET))),
        ("another scheme", Some(format!("Bearer {SECRET}"))),
        ("no credentials", None),
    ];
    // Pipedrive's scheme has no timestamp, so there is no stale case: replays are absorbed by the keys.
    for (why, authorization) in cases {
        for body in [crm_sample("pipedrive", "v2_change_deal_stage.json"), without_person.clone(), unmapped.clone()] {
            let (status, answer) = post(&app, authorization.as_deref(), &body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {answer}");
        }
    }
    assert_eq!(app.score(TENANT, "8").await, None, "nothing scored");
    assert!(app.actions(TENANT, "pending").await.is_empty(), "nothing queued");
    assert_eq!(app.unmapped(TENANT).await, json!({}), "nothing tallied");
}

#[tokio::test]
async fn a_redelivered_stage_change_scores_once() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    let auth = basic(USER, SECRET);
    let first = crm_sample("pipedrive", "v2_change_deal_stage.json");
    assert_eq!(post(&app, Some(&auth), &first).await.0, StatusCode::ACCEPTED);
    // Pipedrive's retry carries the same event id, with `attempt` counting up.
    let retry = edited("v2_change_deal_stage.json", |v| v["meta"]["attempt"] = json!(2));
    let (status, answer) = post(&app, Some(&auth), &retry).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer, json!({"accepted": 0, "duplicates": 1}));
    assert_eq!(app.score(TENANT, "8").await, Some(json!(3)));
}

#[tokio::test]
async fn unmapped_kinds_are_acknowledged_and_counted() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    let auth = basic(USER, SECRET);
    let deleted = edited("v2_change_deal_stage.json", |v| v["meta"]["action"] = json!("delete"));
    let note = edited("v2_change_deal_stage.json", |v| v["meta"]["entity"] = json!("note"));
    let other_company = edited("v2_change_deal_stage.json", |v| v["meta"]["company_id"] = json!("1"));
    for body in [&deleted, &deleted, &note, &other_company] {
        let (status, answer) = post(&app, Some(&auth), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["unmapped"], json!(1));
    }
    assert_eq!(
        app.unmapped(TENANT).await,
        json!({"pipedrive:delete.deal": 2, "pipedrive:change.note": 1, "pipedrive:other_company": 1})
    );
    assert_eq!(app.score(TENANT, "8").await, None);
}

#[tokio::test]
async fn a_deal_without_a_person_is_stored_then_resolved_through_the_api_and_scored() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    crm.on("GET", "/api/v2/deals/8", 200, json!({"success": true, "data": {"id": 8, "person_id": 6}}));
    let body = edited("v2_change_deal_stage.json", |v| v["data"]["person_id"] = Value::Null);
    let (status, answer) = post(&app, Some(&basic(USER, SECRET)), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["queued"], json!(1));
    assert_eq!(app.score(TENANT, "6").await, None, "not scored before it is resolved");

    app.drain_outbox().await;
    assert_eq!(app.score(TENANT, "6").await, Some(json!(3)));
    let calls = crm.calls_to("GET", "/api/v2/deals/8");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header("x-api-token"), Some(TOKEN));

    // The same event again is already known: nothing more is queued or scored.
    let (_, again) = post(&app, Some(&basic(USER, SECRET)), &body).await;
    assert_eq!(again["duplicates"], json!(1), "{again}");
    app.drain_outbox().await;
    assert_eq!(app.score(TENANT, "6").await, Some(json!(3)));
}

/// With the outbound policy as deployed, resolving an id-only event through
/// an API whose name resolves to loopback is refused, and nothing calls it.
#[tokio::test]
async fn resolving_through_an_api_on_a_private_address_is_refused_with_the_policy_on() {
    let (app, crm) = (TestApp::spawn_public_only().await, FakeCrm::start().await);
    pipedrive_tenant_at(&app, "https://acme.pipedrive.com").await;
    // As stored before the host rule existed: a name that resolves to the fake.
    let port = crm.url.rsplit(':').next().unwrap();
    let store = &app.local.service.store;
    let mut record = store.tenant(&TenantId::parse(TENANT).unwrap()).await.unwrap().unwrap();
    record.crm.insert("base_url".into(), json!(format!("https://localhost:{port}")));
    store.put_tenant(&record).await.unwrap();
    let body = edited("v2_change_deal_stage.json", |v| v["data"]["person_id"] = Value::Null);
    assert_eq!(post(&app, Some(&basic(USER, SECRET)), &body).await.1["queued"], json!(1));
    app.drain_outbox().await;
    let dead = app.actions(TENANT, "dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["type"], "resolve_event");
    assert!(dead[0]["reason"].as_str().unwrap().contains("outbound policy"), "{}", dead[0]);
    assert!(crm.calls().is_empty(), "the API was never called");
}

#[tokio::test]
async fn a_deal_that_still_has_no_person_ends_dead_and_visible() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    crm.on("GET", "/api/v2/deals/8", 200, json!({"success": true, "data": {"id": 8, "person_id": null}}));
    let body = edited("v2_change_deal_stage.json", |v| v["data"]["person_id"] = Value::Null);
    assert_eq!(post(&app, Some(&basic(USER, SECRET)), &body).await.0, StatusCode::ACCEPTED);
    app.drain_outbox().await;
    let dead = app.actions(TENANT, "dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["type"], "resolve_event");
    assert_eq!(dead[0]["contact_id"], "deal#8");
    let error = dead[0]["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("deal 8 has no person"), "{}", dead[0]);
}

/// An action fired for person 8 on deal 8, as the engine would queue it.
fn fired(kind: &str, params: Value) -> OutboxItem {
    crate::support::fired_action(TENANT, kind, params, "8", Some("8"), Utc::now())
}

async fn tenant_record(app: &TestApp) -> TenantRecord {
    app.local.service.store.tenant(&TenantId::parse(TENANT).unwrap()).await.unwrap().unwrap()
}

async fn deliver(app: &TestApp, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    crate::support::sent(
        Deliverer::new(Egress::ALLOW_PRIVATE).unwrap().deliver(tenant, item, Utc::now(), &app.local.service).await,
    )
}

/// One call at the fake Pipedrive: method, path, JSON body (`Null` without one).
type Expected = (String, String, Value);

/// Method, path and body of every call since `from`, each checked to carry the token (and JSON type when it has a body).
fn calls_since(crm: &FakeCrm, from: usize) -> Vec<Expected> {
    crm.calls()
        .into_iter()
        .skip(from)
        .map(|call| {
            assert_eq!(call.header("x-api-token"), Some(TOKEN), "{} {}", call.method, call.path);
            if !call.body.is_null() {
                assert_eq!(call.header("content-type"), Some("application/json"), "{} {}", call.method, call.path);
            }
            (call.method, call.path, call.body)
        })
        .collect()
}

fn call(method: &str, path: &str, body: Value) -> Expected {
    (method.to_owned(), path.to_owned(), body)
}

#[tokio::test]
async fn every_action_reaches_pipedrive_as_documented() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    let tenant = tenant_record(&app).await;
    let score_field = json!({"field_code": SCORE_CODE, "field_name": "Engagement score", "field_type": "double"});
    let label_field = json!({"field_code": "label_ids", "field_name": "Label", "options": [{"id": 5, "label": "Warm", "color": "red"}]});
    crm.on(
        "GET",
        "/api/v2/personFields",
        200,
        json!({"success": true, "data": [{"field_code": "name"}, label_field, score_field]}),
    );
    crm.on("GET", "/api/v2/persons/8", 200, json!({"success": true, "data": {"id": 8, "label_ids": [5]}}));
    let created = json!({"success": true, "data": [{"id": 5, "label": "Warm"}, {"id": 9, "label": "Caliente"}]});
    crm.on("POST", "/api/v2/personFields/label_ids/options", 200, created);

    let stages = json!({"success": true, "data": [{"id": 3, "name": "Qualified", "pipeline_id": 1}, {"id": 4, "name": "Demo", "pipeline_id": 1}]});
    crm.on("GET", "/api/v2/stages", 200, stages);

    let due = "2026-11-24T09:30:00Z";
    let cases: Vec<(&str, Value, Vec<Expected>)> = vec![
        (
            "move_stage",
            json!({"pipeline": "1", "stage": "3", "allow_backwards": false, "as_user": null}),
            vec![call("PATCH", "/api/v2/deals/8", json!({"stage_id": 3}))],
        ),
        (
            "move_stage",
            json!({"pipeline": "1", "stage": "3", "as_user": "12415231"}),
            vec![call("PATCH", "/api/v2/deals/8", json!({"stage_id": 3, "owner_id": 12415231}))],
        ),
        (
            "move_stage",
            json!({"pipeline": "1", "stage": "demo"}),
            vec![call("GET", "/api/v2/stages", Value::Null), call("PATCH", "/api/v2/deals/8", json!({"stage_id": 4}))],
        ),
        (
            "add_tag",
            json!({"tag": "Caliente"}),
            vec![
                call("GET", "/api/v2/personFields", Value::Null),
                call("POST", "/api/v2/personFields/label_ids/options", json!([{"label": "Caliente"}])),
                call("GET", "/api/v2/persons/8", Value::Null),
                call("PATCH", "/api/v2/persons/8", json!({"label_ids": [5, 9]})),
            ],
        ),
        (
            "remove_tag",
            json!({"tag": "Warm"}),
            vec![
                call("GET", "/api/v2/personFields", Value::Null),
                call("GET", "/api/v2/persons/8", Value::Null),
                call("PATCH", "/api/v2/persons/8", json!({"label_ids": []})),
            ],
        ),
        (
            "create_task",
            json!({"title": "Follow up", "body": "Score 42", "due_at": due}),
            vec![call(
                "POST",
                "/api/v2/activities",
                json!({"subject": "Follow up", "type": "task", "due_date": "2026-11-24",
                "due_time": "09:30", "deal_id": 8, "participants": [{"person_id": 8, "primary": true}],
                "note": "<p>Score 42</p>", "done": false}),
            )],
        ),
        (
            "add_note",
            json!({"text": "High engagement: prioritise 8"}),
            vec![call(
                "POST",
                "/api/v1/notes",
                json!({"content": "<p>High engagement: prioritise 8</p>", "person_id": 8, "deal_id": 8}),
            )],
        ),
        (
            "set_field",
            json!({"field": SCORE_CODE, "profile": "engagement", "value": 42}),
            vec![call("PATCH", "/api/v2/persons/8", json!({"custom_fields": {SCORE_CODE: 42}}))],
        ),
        (
            "set_field",
            json!({"field": "Engagement score", "profile": "engagement", "value": 7.5}),
            vec![
                call("GET", "/api/v2/personFields", Value::Null),
                call("PATCH", "/api/v2/persons/8", json!({"custom_fields": {SCORE_CODE: 7.5}})),
            ],
        ),
    ];
    for (kind, params, expected) in cases {
        let from = crm.calls().len();
        assert_eq!(deliver(&app, &tenant, &fired(kind, params)).await, Ok(200), "{kind}");
        assert_eq!(calls_since(&crm, from), expected, "{kind}");
    }
}

#[tokio::test]
async fn a_tag_already_on_the_person_is_not_written_again() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    let tenant = tenant_record(&app).await;
    crm.on(
        "GET",
        "/api/v2/personFields",
        200,
        json!({"data": [{"field_code": "label_ids", "options": [{"id": 5, "label": "Warm"}]}]}),
    );
    crm.on("GET", "/api/v2/persons/8", 200, json!({"data": {"id": 8, "label_ids": [5]}}));
    assert_eq!(deliver(&app, &tenant, &fired("add_tag", json!({"tag": "Warm"}))).await, Ok(200));
    assert!(crm.calls_to("PATCH", "/api/v2/persons/8").is_empty());
}

#[tokio::test]
async fn tags_go_to_a_custom_multi_option_field_when_the_tenant_names_one() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let settings = json!({"webhook_user": USER, "api_token": TOKEN, "base_url": crm.url, "label_field": SCORE_CODE});
    app.create_crm_tenant(TENANT, "pipedrive", settings).await;
    let tenant = tenant_record(&app).await;
    let field = json!({"field_code": SCORE_CODE, "field_type": "set", "options": [{"id": 13, "label": "Warm"}, {"id": 14, "label": "Hot"}]});
    crm.on("GET", "/api/v2/personFields", 200, json!({"data": [{"field_code": "label_ids", "options": []}, field]}));
    crm.on("GET", "/api/v2/persons/8", 200, json!({"data": {"id": 8, "custom_fields": {SCORE_CODE: [13]}}}));
    assert_eq!(deliver(&app, &tenant, &fired("add_tag", json!({"tag": "Hot"}))).await, Ok(200));
    let writes = crm.calls_to("PATCH", "/api/v2/persons/8");
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].body, json!({"custom_fields": {SCORE_CODE: [13, 14]}}));
}

#[tokio::test]
async fn pipedrives_rate_limit_answer_is_retried_after_the_wait_it_names() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    pipedrive_tenant(&app, &crm).await;
    let tenant = tenant_record(&app).await;
    let headers = [("x-ratelimit-limit", "20"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "5")];
    crm.once("PATCH", "/api/v2/deals/8", 429, &headers, json!({"success": false, "error": "Rate limit exceeded"}));
    let item = fired("move_stage", json!({"pipeline": "1", "stage": "3"}));
    match deliver(&app, &tenant, &item).await {
        Err(DeliveryError::Retryable { http_status, retry_after, message }) => {
            assert_eq!(http_status, Some(429));
            assert_eq!(retry_after, Some(TimeDelta::seconds(5)));
            assert!(!message.contains(TOKEN), "the token never reaches an error: {message}");
        }
        other => panic!("expected a retryable 429, got {other:?}"),
    }
}

#[tokio::test]
async fn an_action_without_an_api_token_fails_permanently_naming_the_setting() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let settings = json!({"webhook_user": USER, "base_url": crm.url});
    app.create_crm_tenant(TENANT, "pipedrive", settings).await;
    let tenant = tenant_record(&app).await;
    match deliver(&app, &tenant, &fired("add_note", json!({"text": "x"}))).await {
        Err(DeliveryError::Permanent { message, .. }) => assert!(message.contains("api_token"), "{message}"),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(crm.calls().is_empty());
}
