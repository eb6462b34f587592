//! The HubSpot connector end to end: HubSpot's samples, signed with v3 as
//! HubSpot signs them, through the real webhook route; id-only events
//! resolved through a fake HubSpot API; and every action's call as
//! HubSpot documents it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use scorehook::crm::egress::Egress;
use serde_json::{json, Value};
use sha2::Sha256;

use scorehook::clock::Clock;
use scorehook::crm::{Delivered, Deliverer, DeliveryError};
use scorehook::ids::TenantId;
use scorehook::outbox::OutboxItem;
use scorehook::tenant::TenantRecord;

use crate::support::{crm_sample, FakeCrm, TestApp};

const CLIENT_SECRET: &str = "hubspot-client-secret-0123";
const TOKEN: &str = "pat-na1-00000000-test";
const PORTAL: &str = "48975575";
const BATCH: &str = "batch_engagement_signals_constructed.json";
const JANE: &str = "508369434347";

/// HubSpot's v3 signature, computed here from its definition (not with the
/// connector's own code): the URL given is already as HubSpot signs it.
fn v3(signed_url: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
    for part in [b"POST".as_slice(), signed_url.as_bytes(), body, timestamp.as_bytes()] {
        mac.update(part);
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A tenant pointed at `crm`, with a published profile that scores every
/// type the samples produce.
async fn hubspot_tenant(app: &TestApp, tenant: &str, crm: &FakeCrm) {
    let settings = json!({"client_secret": CLIENT_SECRET, "access_token": TOKEN, "base_url": crm.url,
        "portal_id": PORTAL});
    app.create_crm_tenant(tenant, "hubspot", settings).await;
    let profile = json!({"name": "Engagement", "rules": [
        {"id": "opened", "when": {"type": "email.opened"}, "points": 1},
        {"id": "clicked", "when": {"type": "email.clicked"}, "points": 2},
        {"id": "form", "when": {"type": "form.submitted"}, "points": 5},
        {"id": "meeting", "when": {"type": "appointment.booked"}, "points": 10},
        {"id": "won", "when": {"type": "deal.stage_changed", "attributes": {"stage": {"equals": "closedwon"}}},
         "points": 100},
        {"id": "chat", "when": {"type": "chat.message"}, "points": 1000},
        {"id": "updated", "when": {"type": "contact.updated"}, "points": 1}]});
    let path = format!("/v1/tenants/{tenant}/profiles/engagement");
    let (status, body) = app.admin(Method::PUT, &path, Some(profile)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.admin(Method::POST, &format!("{path}/publish"), None).await.0, StatusCode::OK);
}

/// Posts `body` to the tenant's HubSpot URL, signed at the clock's now.
async fn post_signed(app: &TestApp, tenant: &str, body: &[u8]) -> (StatusCode, Value) {
    let path = format!("/v1/webhooks/hubspot/{tenant}");
    let timestamp = app.clock.now().timestamp_millis().to_string();
    let signature = v3(&format!("{}{path}", app.base), body, &timestamp);
    let headers = [("x-hubspot-signature-v3", signature.as_str()), ("x-hubspot-request-timestamp", timestamp.as_str())];
    app.post_provider(&path, &headers, body).await
}

async fn all_actions(app: &TestApp, tenant: &str) -> Vec<Value> {
    let (status, body) = app.admin(Method::GET, &format!("/v1/tenants/{tenant}/actions"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["actions"].as_array().unwrap().clone()
}

fn script_resolution(crm: &FakeCrm) {
    let deal = json!({"id": "332507367156", "properties": {"pipeline": "default", "dealstage": "closedwon"},
        "associations": {"contacts": {"results": [{"id": JANE, "type": "deal_to_contact"}]}}});
    crm.on("GET", "/crm/v3/objects/deals/332507367156", 200, deal);
    let thread = json!({"id": "7012345678", "associatedContactId": 508369434347_u64, "status": "OPEN"});
    crm.on("GET", "/conversations/v3/conversations/threads/7012345678", 200, thread);
}

#[tokio::test]
async fn a_signed_batch_scores_now_queues_its_id_only_events_and_scores_them_once_resolved() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    hubspot_tenant(&app, "acme", &crm).await;
    script_resolution(&crm);

    let (status, body) = post_signed(&app, "acme", &crm_sample("hubspot", BATCH)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": 7, "duplicates": 0, "queued": 2, "unmapped": 1}));
    assert_eq!(app.score("acme", JANE).await, Some(json!(18)), "open, click, form and meeting score at once");
    assert_eq!(app.unmapped("acme").await, json!({"hubspot:contact.deletion": 1}));
    assert!(crm.calls().is_empty(), "nothing is resolved before the worker runs");

    app.drain_outbox().await;
    assert_eq!(app.score("acme", JANE).await, Some(json!(1118)), "the won deal and the chat message, resolved");
    let deal = crm.calls_to("GET", "/crm/v3/objects/deals/332507367156");
    assert_eq!(deal.len(), 1);
    assert_eq!(deal[0].query.as_deref(), Some("associations=contacts&properties=pipeline,dealstage"));
    assert_eq!(deal[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(crm.calls_to("GET", "/conversations/v3/conversations/threads/7012345678").len(), 1);
    assert_eq!(app.actions("acme", "done").await.len(), 2);

    // HubSpot's retry of the whole batch (attemptNumber 1) scores nothing twice.
    let retry =
        String::from_utf8(crm_sample("hubspot", BATCH)).unwrap().replace("\"attemptNumber\":0", "\"attemptNumber\":1");
    let (status, body) = post_signed(&app, "acme", retry.as_bytes()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": 0, "duplicates": 7, "unmapped": 1}));
    app.drain_outbox().await;
    assert_eq!(app.score("acme", JANE).await, Some(json!(1118)));
    assert_eq!(crm.calls().len(), 2, "resolved events are not resolved again");
}

#[tokio::test]
async fn a_redelivered_sample_scores_once() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    hubspot_tenant(&app, "acme", &crm).await;
    app.create_crm_tenant("docs", "hubspot", json!({"client_secret": CLIENT_SECRET})).await;
    let sample = crm_sample("hubspot", "contact_creation_docs.json");
    // The docs sample is of portal 62515: acme (portal 48975575) only counts it.
    let (_, body) = post_signed(&app, "acme", &sample).await;
    assert_eq!(body, json!({"accepted": 0, "duplicates": 0, "unmapped": 1}));
    assert_eq!(app.unmapped("acme").await, json!({"hubspot:other_portal": 1}));

    let profile =
        json!({"name": "Engagement", "rules": [{"id": "updated", "when": {"type": "contact.updated"}, "points": 1}]});
    assert_eq!(
        app.admin(Method::PUT, "/v1/tenants/docs/profiles/engagement", Some(profile)).await.0,
        StatusCode::CREATED
    );
    assert_eq!(app.admin(Method::POST, "/v1/tenants/docs/profiles/engagement/publish", None).await.0, StatusCode::OK);

    let (status, first) = post_signed(&app, "docs", &sample).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first, json!({"accepted": 1, "duplicates": 0}));
    // HubSpot's retry differs only in attemptNumber.
    let retry = String::from_utf8(sample).unwrap().replace("\"attemptNumber\":0", "\"attemptNumber\":1");
    let (status, again) = post_signed(&app, "docs", retry.as_bytes()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again, json!({"accepted": 0, "duplicates": 1}));
    assert_eq!(app.score("docs", "123").await, Some(json!(1)));
}

#[tokio::test]
async fn wrong_stale_and_missing_signatures_are_refused_and_nothing_is_stored() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    hubspot_tenant(&app, "acme", &crm).await;
    let body = crm_sample("hubspot", BATCH);
    let path = "/v1/webhooks/hubspot/acme";
    let url = format!("{}{path}", app.base);
    let now = app.clock.now().timestamp_millis();
    let fresh = now.to_string();
    let stale = (now - 301_000).to_string();
    let future = (now + 301_000).to_string();
    let good = v3(&url, &body, &fresh);
    let other_url = v3(&format!("{url}?x=1"), &body, &fresh);
    let stale_sig = v3(&url, &body, &stale);
    let future_sig = v3(&url, &body, &future);
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        (
            "signed for another URL",
            vec![("x-hubspot-signature-v3", &other_url), ("x-hubspot-request-timestamp", &fresh)],
        ),
        (
            "signed over five minutes ago",
            vec![("x-hubspot-signature-v3", &stale_sig), ("x-hubspot-request-timestamp", &stale)],
        ),
        (
            "signed in the future",
            vec![("x-hubspot-signature-v3", &future_sig), ("x-hubspot-request-timestamp", &future)],
        ),
        (
            "a good signature with another timestamp",
            vec![("x-hubspot-signature-v3", &good), ("x-hubspot-request-timestamp", &stale)],
        ),
        ("no signature", vec![("x-hubspot-request-timestamp", &fresh)]),
        ("no timestamp", vec![("x-hubspot-signature-v3", &good)]),
    ];
    for (why, headers) in &cases {
        let (status, answer) = app.post_provider(path, headers, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {answer}");
    }
    assert_eq!(app.score("acme", JANE).await, None);
    assert!(all_actions(&app, "acme").await.is_empty(), "no id-only event queued");
    assert_eq!(app.unmapped("acme").await, json!({}));

    // The same request, correctly signed, is accepted: the refusals were the signatures.
    let headers = [("x-hubspot-signature-v3", good.as_str()), ("x-hubspot-request-timestamp", fresh.as_str())];
    assert_eq!(app.post_provider(path, &headers, &body).await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_url_is_verified_as_hubspot_signs_it_with_escapes_decoded() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    hubspot_tenant(&app, "acme", &crm).await;
    let body = crm_sample("hubspot", BATCH);
    let path = "/v1/webhooks/hubspot/acme?src=hub%3Aspot%40eu";
    let timestamp = app.clock.now().timestamp_millis().to_string();
    let decoded = v3(&format!("{}/v1/webhooks/hubspot/acme?src=hub:spot@eu", app.base), &body, &timestamp);
    let headers = [("x-hubspot-signature-v3", decoded.as_str()), ("x-hubspot-request-timestamp", timestamp.as_str())];
    let (status, answer) = app.post_provider(path, &headers, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
}

#[tokio::test]
async fn unmapped_kinds_are_acknowledged_and_counted() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    hubspot_tenant(&app, "acme", &crm).await;
    let event = |kind: &str, id: u32| {
        json!({"eventId": id, "subscriptionId": 7, "portalId": 48975575, "appId": 1, "occurredAt": 1764078420000_u64,
            "subscriptionType": kind, "attemptNumber": 0, "objectId": 99, "changeFlag": "DELETED"})
    };
    let body = json!([event("contact.deletion", 1), event("company.creation", 2), event("contact.deletion", 3)]);
    let (status, answer) = post_signed(&app, "acme", &serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer, json!({"accepted": 0, "duplicates": 0, "unmapped": 3}));
    assert_eq!(app.unmapped("acme").await, json!({"hubspot:contact.deletion": 2, "hubspot:company.creation": 1}));
}

#[tokio::test]
async fn an_id_only_event_that_cannot_be_resolved_ends_dead_and_visible() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    let settings = json!({"client_secret": CLIENT_SECRET, "access_token": TOKEN, "base_url": crm.url});
    app.create_crm_tenant("acme", "hubspot", settings).await;
    let deal = json!({"id": "697680835", "properties": {"pipeline": "default"}, "associations": {}});
    crm.on("GET", "/crm/v3/objects/deals/697680835", 200, deal);

    let (status, body) = post_signed(&app, "acme", &crm_sample("hubspot", "deal_dealstage_change_real.json")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": 1, "duplicates": 0, "queued": 1}));
    app.drain_outbox().await;

    let dead = app.actions("acme", "dead").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["type"], "resolve_event");
    assert_eq!(dead[0]["contact_id"], "deal#697680835");
    let error = dead[0]["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("no associated contact"), "{error}");
    assert_eq!(crm.calls().len(), 1);
}

fn item(kind: &str, params: Value, contact: &str, deal: Option<&str>, fired_at: DateTime<Utc>) -> OutboxItem {
    crate::support::fired_action("acme", kind, params, contact, deal, fired_at)
}

async fn tenant_record(app: &TestApp) -> TenantRecord {
    app.local.service.store.tenant(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap()
}

#[tokio::test]
async fn every_action_reaches_hubspot_with_the_documented_call() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    let settings =
        json!({"client_secret": CLIENT_SECRET, "access_token": TOKEN, "base_url": crm.url, "owner_id": "64492917"});
    app.create_crm_tenant("acme", "hubspot", settings).await;
    let tenant = tenant_record(&app).await;
    let now: DateTime<Utc> = "2025-11-25T14:00:00Z".parse().unwrap();
    let deliverer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap();
    let service = &app.local.service;
    crm.on("POST", "/crm/v3/objects/tasks", 201, json!({"id": "9001"}));
    crm.on("POST", "/crm/v3/objects/notes", 201, json!({"id": "9002"}));
    let options = json!({"name": "scorehook_tags", "options": [{"label": "vip", "value": "vip", "displayOrder": 0, "hidden": false}]});
    crm.on("GET", "/crm/v3/properties/contacts/scorehook_tags", 200, options);
    crm.once(
        "GET",
        "/crm/v3/objects/contacts/101",
        200,
        &[],
        json!({"id": "101", "properties": {"scorehook_tags": "vip"}}),
    );
    crm.once(
        "GET",
        "/crm/v3/objects/contacts/101",
        200,
        &[],
        json!({"id": "101", "properties": {"scorehook_tags": "vip;hot"}}),
    );

    let cases = [
        item(
            "move_stage",
            json!({"pipeline": "default", "stage": "closedwon", "as_user": null}),
            "101",
            Some("555"),
            now,
        ),
        item("set_field", json!({"field": "scorehook_score", "profile": "engagement", "value": 42}), "101", None, now),
        item(
            "create_task",
            json!({"title": "Call back Ana", "body": "Score 42", "due_at": "2025-11-26T09:00:00Z"}),
            "101",
            Some("7001"),
            now,
        ),
        item("add_note", json!({"text": "High engagement"}), "101", None, now),
        item("add_tag", json!({"tag": "hot"}), "101", None, now),
        item("remove_tag", json!({"tag": "vip"}), "101", None, now),
    ];
    let mut statuses = Vec::new();
    for item in &cases {
        statuses.push(crate::support::sent(deliverer.deliver(&tenant, item, now, service).await));
    }
    assert_eq!(statuses, [Ok(200), Ok(200), Ok(201), Ok(201), Ok(200), Ok(200)]);

    let calls = crm.calls();
    let seen: Vec<(String, String, Option<String>)> =
        calls.iter().map(|c| (c.method.clone(), c.path.clone(), c.query.clone())).collect();
    let expected = [
        ("PATCH", "/crm/v3/objects/deals/555", None),
        ("PATCH", "/crm/v3/objects/contacts/101", None),
        ("POST", "/crm/v3/objects/tasks", None),
        ("POST", "/crm/v3/objects/notes", None),
        ("GET", "/crm/v3/properties/contacts/scorehook_tags", None),
        ("PATCH", "/crm/v3/properties/contacts/scorehook_tags", None),
        ("GET", "/crm/v3/objects/contacts/101", Some("properties=scorehook_tags")),
        ("PATCH", "/crm/v3/objects/contacts/101", None),
        ("GET", "/crm/v3/objects/contacts/101", Some("properties=scorehook_tags")),
        ("PATCH", "/crm/v3/objects/contacts/101", None),
    ];
    let expected: Vec<(String, String, Option<String>)> =
        expected.iter().map(|(m, p, q)| (m.to_string(), p.to_string(), q.map(str::to_owned))).collect();
    assert_eq!(seen, expected);
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{} {}",
            call.method,
            call.path
        );
        if call.method != "GET" {
            assert_eq!(call.header("content-type"), Some("application/json"), "{} {}", call.method, call.path);
        }
    }
    let bodies: Vec<&Value> = calls.iter().map(|c| &c.body).collect();
    assert_eq!(bodies[0], &json!({"properties": {"dealstage": "closedwon", "pipeline": "default"}}));
    assert_eq!(bodies[1], &json!({"properties": {"scorehook_score": "42"}}));
    assert_eq!(
        bodies[2],
        &json!({"properties": {"hs_timestamp": "2025-11-26T09:00:00Z", "hs_task_subject": "Call back Ana",
            "hs_task_body": "Score 42", "hs_task_status": "NOT_STARTED", "hs_task_type": "TODO",
            "hubspot_owner_id": "64492917"},
            "associations": [
                {"to": {"id": "101"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]},
                {"to": {"id": "7001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 216}]}]})
    );
    assert_eq!(
        bodies[3],
        &json!({"properties": {"hs_timestamp": "2025-11-25T14:00:00Z", "hs_note_body": "High engagement"},
            "associations": [
                {"to": {"id": "101"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]})
    );
    assert_eq!(
        bodies[5],
        &json!({"options": [{"label": "vip", "value": "vip", "displayOrder": 0, "hidden": false},
            {"label": "hot", "value": "hot", "displayOrder": 1, "hidden": false}]})
    );
    assert_eq!(bodies[7], &json!({"properties": {"scorehook_tags": "vip;hot"}}));
    assert_eq!(bodies[9], &json!({"properties": {"scorehook_tags": "hot"}}));
}

#[tokio::test]
async fn hubspots_rate_limit_answers_are_honoured() {
    let crm = FakeCrm::start().await;
    let app = TestApp::spawn().await;
    let settings = json!({"client_secret": CLIENT_SECRET, "access_token": TOKEN, "base_url": crm.url});
    app.create_crm_tenant("acme", "hubspot", settings).await;
    let tenant = tenant_record(&app).await;
    let now: DateTime<Utc> = "2025-11-25T14:00:00Z".parse().unwrap();
    let service = &app.local.service;
    let path = "/crm/v3/objects/contacts/101";
    let set_field = item("set_field", json!({"field": "scorehook_score", "value": 7}), "101", None, now);
    let limited = |policy: &str| json!({"status": "error", "message": "You have reached your limit.", "errorType": "RATE_LIMIT", "policyName": policy});
    let wait_of = |result: Result<Delivered, DeliveryError>| match result {
        Err(DeliveryError::Retryable { http_status, retry_after, .. }) => (http_status, retry_after),
        other => panic!("expected a retryable failure, got {other:?}"),
    };

    crm.once("PATCH", path, 429, &[], limited("TEN_SECONDLY_ROLLING"));
    let deliverer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap();
    let first = wait_of(deliverer.deliver(&tenant, &set_field, now, service).await);
    assert_eq!(first, (Some(429), Some(TimeDelta::seconds(10))));
    // The tenant's bucket now holds back further calls instead of hammering HubSpot.
    let held = wait_of(deliverer.deliver(&tenant, &set_field, now, service).await);
    assert_eq!(held.0, None);
    assert_eq!(crm.calls_to("PATCH", path).len(), 1);

    crm.once("PATCH", path, 429, &[("retry-after", "7")], limited("TEN_SECONDLY_ROLLING"));
    let answer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap().deliver(&tenant, &set_field, now, service).await;
    assert_eq!(wait_of(answer), (Some(429), Some(TimeDelta::seconds(7))));

    crm.once("PATCH", path, 429, &[], limited("DAILY"));
    let answer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap().deliver(&tenant, &set_field, now, service).await;
    assert_eq!(wait_of(answer), (Some(429), Some(TimeDelta::hours(10))), "until the next UTC midnight");

    let answer = Deliverer::new(Egress::ALLOW_PRIVATE).unwrap().deliver(&tenant, &set_field, now, service).await;
    assert_eq!(answer, Ok(Delivered::Sent(200)), "and once HubSpot accepts again, the call goes through");
}
