//! Bitrix24 end to end: the real and documented event bodies through the
//! webhook route (application token checked, nothing stored when refused),
//! id-only events resolved through a fake portal REST API by the outbox,
//! and every action's REST call as the portal receives it.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use scorehook::clock::Clock;
use scorehook::crm::egress::Egress;
use scorehook::crm::{Deliverer, DeliveryError};
use scorehook::ids::{ContactId, TenantId};
use scorehook::outbox::OutboxItem;
use scorehook::tenant::TenantRecord;
use serde_json::{json, Value};

use crate::support::{crm_sample, FakeCrm, TestApp};

/// The token in the outgoing-webhook samples (the worked example of bitrix24.md §2).
const WEBHOOK_TOKEN: &str = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas";
/// The token of the app-style samples (call end, open line).
const APP_TOKEN: &str = "51856fefc120afa4b628cc82d3935cce";
/// The token of the real b24phpsdk request.
const SDK_TOKEN: &str = "3c6c9248ec54af6bea1159b43ee0ab32";
/// The webhook code: a secret that must never show in an error text.
const HOOK_CODE: &str = "abc123secret";
/// Where every REST method lands at the fake portal.
const REST: &str = "/rest/1/abc123secret";

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// A Bitrix24 tenant calling `crm` as its portal, with a published profile
/// that gives points to each interaction type this connector produces.
async fn portal_tenant(app: &TestApp, tenant: &str, crm: &FakeCrm, token: &str) {
    let settings = json!({
        "application_token": token,
        "webhook_url": format!("https://example.bitrix24.com/rest/1/{HOOK_CODE}/"),
        "base_url": crm.url,
    });
    app.create_crm_tenant(tenant, "bitrix24", settings).await;
    let profile = json!({"name": "Engagement", "rules": [
        {"id": "created", "when": {"type": "contact.updated"}, "points": 1},
        {"id": "moved", "when": {"type": "deal.stage_changed", "attributes": {"stage": {"equals": "PREPARATION"}}}, "points": 3},
        {"id": "missed", "when": {"type": "call.missed"}, "points": 5},
        {"id": "mail", "when": {"type": "email.received"}, "points": 7}]});
    let path = format!("/v1/tenants/{tenant}/profiles/engagement");
    let (status, body) = app.admin(Method::PUT, &path, Some(profile)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.admin(Method::POST, &format!("{path}/publish"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The interactions stored for a contact of tenant `acme`, as JSON.
async fn recorded(app: &TestApp, contact: &str) -> Vec<Value> {
    let (tenant, contact) = (TenantId::parse("acme").unwrap(), ContactId::parse(contact).unwrap());
    let history = app.local.service.store.history(&tenant, &contact).await.unwrap();
    history.into_iter().map(|r| serde_json::to_value(r.interaction).unwrap()).collect()
}

async fn post(app: &TestApp, tenant: &str, body: &[u8]) -> (StatusCode, Value) {
    app.post_provider(&format!("/v1/webhooks/bitrix24/{tenant}"), &[FORM], body).await
}

fn sample(file: &str) -> Vec<u8> {
    crm_sample("bitrix24", file)
}

/// A sample with one of its form values replaced (raw, as encoded in the file).
fn edited(file: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(sample(file)).unwrap();
    assert!(text.contains(from), "{from} is not in {file}");
    text.replace(from, to).into_bytes()
}

#[tokio::test]
async fn the_real_contact_add_is_accepted_scored_and_scored_once_when_redelivered() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, SDK_TOKEN).await;
    let body = sample("oncrmcontactadd_app_real_b24phpsdk.txt");

    let (status, report) = post(&app, "acme", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{report}");
    assert_eq!(report, json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(app.score("acme", "134806").await, Some(json!(1)));
    let created = json!({"id": "b24:010b6886ebc205e43ae65000ee00addb:ONCRMCONTACTADD:134806:1727018926",
        "type": "contact.updated", "contact_id": "134806", "occurred_at": "2024-09-22T15:28:46Z",
        "attributes": {"change": "created"}});
    assert_eq!(recorded(&app, "134806").await, vec![created.clone()]);

    let (status, report) = post(&app, "acme", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{report}");
    assert_eq!(report, json!({"accepted": 0, "duplicates": 1}), "the same event scores once");
    assert_eq!(app.score("acme", "134806").await, Some(json!(1)));
    assert_eq!(recorded(&app, "134806").await, vec![created]);
    assert!(crm.calls().is_empty(), "a contact add needs no API call");
}

#[tokio::test]
async fn a_wrong_or_missing_token_or_another_portal_is_refused_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, SDK_TOKEN).await;
    let contact = "oncrmcontactadd_app_real_b24phpsdk.txt";
    let deal = "oncrmdealupdate_outgoing_webhook_constructed.txt";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("another portal's token", sample(deal)),
        ("a wrong token", edited(contact, SDK_TOKEN, "3c6c9248ec54af6bea1159b43ee0ab33")),
        ("no token", edited(contact, &format!("&auth%5Bapplication_token%5D={SDK_TOKEN}"), "")),
        ("an empty token", edited(contact, &format!("={SDK_TOKEN}"), "=")),
        ("an unknown event with a wrong token", b"event=ONCRMLEADADD&auth[application_token]=x".to_vec()),
    ];
    for (why, body) in cases {
        let (status, answer) = post(&app, "acme", &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {answer}");
    }

    // Pinned to its portal, the tenant refuses the right token from another member_id.
    let pinned = json!({"provider": "bitrix24", "webhook_secret": "whsec-test-0123456789",
        "crm": {"application_token": SDK_TOKEN, "member_id": "d897063e1ce7c5eb9f04b9751eef5915"}});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme", Some(pinned)).await;
    assert!(status.is_success(), "{body}");
    let (status, answer) = post(&app, "acme", &sample(contact)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another portal: {answer}");

    assert_eq!(app.score("acme", "134806").await, None, "nothing scored");
    assert!(app.actions("acme", "pending").await.is_empty(), "nothing queued");
    assert_eq!(app.unmapped("acme").await, json!({}), "nothing counted");
    assert!(crm.calls().is_empty());
}

#[tokio::test]
async fn an_unmapped_event_is_acknowledged_and_counted() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let company = edited("oncrmdealupdate_outgoing_webhook_constructed.txt", "ONCRMDEALUPDATE", "ONCRMCOMPANYADD");
    let echo = edited("oncrmdealupdate_outgoing_webhook_constructed.txt", "ONCRMDEALUPDATE", "ONCRMCONTACTUPDATE");
    for body in [&company, &company, &echo] {
        let (status, report) = post(&app, "acme", body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{report}");
        assert_eq!(report["unmapped"], 1, "{report}");
    }
    assert_eq!(app.unmapped("acme").await, json!({"bitrix24:ONCRMCOMPANYADD": 2, "bitrix24:ONCRMCONTACTUPDATE": 1}));
    assert!(app.actions("acme", "pending").await.is_empty());
}

/// The stage history of deal 759 after a move NEW -> PREPARATION, as crm.stagehistory.list answers it.
fn stage_history() -> Value {
    json!({"result": {"items": [
        {"ID": "3631", "TYPE_ID": "2", "OWNER_ID": "759", "CREATED_TIME": "2025-01-09T09:56:40+03:00",
         "CATEGORY_ID": "0", "STAGE_SEMANTIC_ID": "P", "STAGE_ID": "PREPARATION"},
        {"ID": "3630", "TYPE_ID": "1", "OWNER_ID": "759", "CREATED_TIME": "2025-01-09T09:50:02+03:00",
         "CATEGORY_ID": "0", "STAGE_SEMANTIC_ID": "P", "STAGE_ID": "NEW"}]}, "total": 2})
}

#[tokio::test]
async fn a_deal_update_is_stored_then_resolved_through_the_stage_history_and_scored_once() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    crm.on("POST", &format!("{REST}/crm.stagehistory.list.json"), 200, stage_history());
    crm.on(
        "POST",
        &format!("{REST}/crm.deal.get.json"),
        200,
        json!({"result": {"ID": "759", "CONTACT_ID": "42", "CATEGORY_ID": "0"}}),
    );

    let (status, report) = post(&app, "acme", &sample("oncrmdealupdate_outgoing_webhook_constructed.txt")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{report}");
    assert_eq!(report["queued"], 1, "{report}");
    assert_eq!(app.score("acme", "42").await, None, "not scored before it is resolved");
    assert!(crm.calls().is_empty(), "the route makes no API call");

    app.drain_outbox().await;
    assert_eq!(app.score("acme", "42").await, Some(json!(3)));
    let moved = json!({"id": "b24:d897063e1ce7c5eb9f04b9751eef5915:stagehist:3631", "type": "deal.stage_changed",
        "contact_id": "42", "deal_id": "759", "occurred_at": "2025-01-09T06:56:40Z",
        "attributes": {"stage": "PREPARATION", "pipeline": "0", "old_stage": "NEW", "history_id": "3631"}});
    assert_eq!(recorded(&app, "42").await, vec![moved.clone()]);
    let history = crm.calls_to("POST", &format!("{REST}/crm.stagehistory.list.json"));
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].header("content-type"), Some("application/json"));
    assert_eq!(history[0].body, json!({"entityTypeId": 2, "filter": {"OWNER_ID": 759}, "order": {"ID": "DESC"}}));
    assert_eq!(crm.calls_to("POST", &format!("{REST}/crm.deal.get.json"))[0].body, json!({"id": 759}));
    assert_eq!(app.actions("acme", "done").await.len(), 1);

    // Another update of the same deal (a title edit, a later ts) finds the
    // same history row: its key (stagehist:3631) has scored already.
    let later = edited("oncrmdealupdate_outgoing_webhook_constructed.txt", "ts=1736405807", "ts=1736405867");
    let (status, report) = post(&app, "acme", &later).await;
    assert_eq!((status, report["queued"].clone()), (StatusCode::ACCEPTED, json!(1)));
    app.drain_outbox().await;
    assert_eq!(app.score("acme", "42").await, Some(json!(3)), "one move scores once");
    assert_eq!(recorded(&app, "42").await, vec![moved]);

    // The same delivery twice is queued once.
    let (_, again) = post(&app, "acme", &later).await;
    assert_eq!(again["duplicates"], 1, "{again}");
}

#[tokio::test]
async fn a_deal_update_without_a_recent_move_scores_nothing() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let mut old = stage_history();
    old["result"]["items"][0]["CREATED_TIME"] = json!("2024-12-01T10:00:00+03:00");
    crm.on("POST", &format!("{REST}/crm.stagehistory.list.json"), 200, old);

    post(&app, "acme", &sample("oncrmdealupdate_outgoing_webhook_constructed.txt")).await;
    app.drain_outbox().await;
    let skipped = app.actions("acme", "skipped").await;
    assert_eq!(skipped.len(), 1, "resolved, to nothing: {skipped:?}");
    let reason = skipped[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("the update of deal ") && reason.contains("moved no stage"), "{skipped:?}");
    assert!(app.actions("acme", "done").await.is_empty());
    assert!(crm.calls_to("POST", &format!("{REST}/crm.deal.get.json")).is_empty());
    assert_eq!(app.score("acme", "42").await, None);
}

#[tokio::test]
async fn an_activity_add_is_resolved_to_an_email_of_its_contact() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let activity = json!({"result": {"ID": "7953", "OWNER_TYPE_ID": "3", "OWNER_ID": "42", "TYPE_ID": "4",
        "DIRECTION": "1", "PROVIDER_ID": "CRM_EMAIL", "SUBJECT": "Re: quote", "CREATED": "2026-03-11T17:28:50+03:00"}});
    crm.on("POST", &format!("{REST}/crm.activity.get.json"), 200, activity);

    let (status, report) = post(&app, "acme", &sample("oncrmactivityadd_outgoing_webhook_constructed.txt")).await;
    assert_eq!((status, report["queued"].clone()), (StatusCode::ACCEPTED, json!(1)), "{report}");
    app.drain_outbox().await;
    assert_eq!(app.score("acme", "42").await, Some(json!(7)));
    let email = json!({"id": "b24:d897063e1ce7c5eb9f04b9751eef5915:activity:7953", "type": "email.received",
        "contact_id": "42", "occurred_at": "2026-03-11T14:28:50Z",
        "attributes": {"activity_id": "7953", "provider": "CRM_EMAIL", "subject": "Re: quote"}});
    assert_eq!(recorded(&app, "42").await, vec![email]);
    assert_eq!(crm.calls_to("POST", &format!("{REST}/crm.activity.get.json"))[0].body, json!({"id": 7953}));
}

#[tokio::test]
async fn a_missed_call_takes_its_contact_from_the_call_activity() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, APP_TOKEN).await;
    let activity = json!({"result": {"ID": "7953", "OWNER_TYPE_ID": "3", "OWNER_ID": "42", "TYPE_ID": "2",
        "DIRECTION": "1", "PROVIDER_ID": "VOXIMPLANT_CALL"}});
    crm.on("POST", &format!("{REST}/crm.activity.get.json"), 200, activity);

    let body = sample("onvoximplantcallend_missed_incoming_constructed.txt");
    let (status, report) = post(&app, "acme", &body).await;
    assert_eq!((status, report["queued"].clone()), (StatusCode::ACCEPTED, json!(1)), "{report}");
    app.drain_outbox().await;
    assert_eq!(app.score("acme", "42").await, Some(json!(5)));
    let missed = json!({
        "id": "b24:d897063e1ce7c5eb9f04b9751eef5915:call:externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327",
        "type": "call.missed", "contact_id": "42", "occurred_at": "2026-03-11T14:28:46Z",
        "attributes": {"call_id": "externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327", "line": "REST_APP:",
            "phone": "+573001112233", "failed_code": "304", "duration": 0}});
    assert_eq!(recorded(&app, "42").await, vec![missed]);
    assert_eq!(crm.calls_to("POST", &format!("{REST}/crm.activity.get.json"))[0].body, json!({"id": 7953}));
}

#[tokio::test]
async fn events_that_cannot_be_resolved_end_dead_and_visible() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, APP_TOKEN).await;
    crm.on(
        "POST",
        &format!("{REST}/crm.activity.get.json"),
        400,
        json!({"error": "", "error_description": "Not found"}),
    );

    crm.on(
        "POST",
        &format!("{REST}/imopenlines.dialog.get.json"),
        200,
        json!({"error": "ACCESS_ERROR", "error_description": "Current user does not have access to the dialog"}),
    );
    let call = sample("onvoximplantcallend_missed_incoming_constructed.txt");
    let chat = sample("onopenlinemessageadd_docs.txt");
    for body in [&call, &chat] {
        let (status, report) = post(&app, "acme", body).await;
        assert_eq!((status, report["queued"].clone()), (StatusCode::ACCEPTED, json!(1)), "{report}");
    }
    app.drain_outbox().await;

    let dead = app.actions("acme", "dead").await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let errors: Vec<&str> = dead.iter().map(|d| d["attempts"][0]["error"].as_str().unwrap()).collect();
    assert!(errors.iter().any(|e| e.contains("crm.activity.get.json answered 400")), "{errors:?}");
    assert!(errors.iter().all(|e| !e.contains("Not found")), "the answer's body stays out: {errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("imopenlines.dialog.get answered 200 with error ACCESS_ERROR")),
        "{errors:?}"
    );
    assert!(errors.iter().all(|e| !e.contains("does not have access")), "{errors:?}");
    assert!(errors.iter().all(|e| !e.contains(HOOK_CODE)), "the webhook code never shows: {errors:?}");
    assert_eq!(app.score("acme", "42").await, None);
}

/// A fired action for contact 42 (and deal 759), as the engine would queue it.
fn fired(kind: &str, params: Value, deal: Option<&str>) -> OutboxItem {
    crate::support::fired_action("acme", kind, params, "42", deal, Utc::now())
}

async fn record(app: &TestApp) -> TenantRecord {
    app.local.service.store.tenant(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap()
}

async fn deliver(app: &TestApp, item: &OutboxItem) -> Result<u16, DeliveryError> {
    crate::support::sent(
        Deliverer::new(Egress::ALLOW_PRIVATE)
            .unwrap()
            .deliver(&record(app).await, item, app.clock.now(), &app.local.service)
            .await,
    )
}

/// The one call made to `method`, checked for the JSON POST every method is.
fn only_call(crm: &FakeCrm, method: &str) -> Value {
    let calls = crm.calls_to("POST", &format!("{REST}/{method}.json"));
    assert_eq!(calls.len(), 1, "{method}: {calls:?}");
    assert_eq!(calls[0].header("content-type"), Some("application/json"), "{method}");
    assert_eq!(calls[0].header("authorization"), None, "the webhook URL is the credential");
    calls[0].body.clone()
}

#[tokio::test]
async fn every_action_makes_the_documented_rest_call() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    crm.on("POST", &format!("{REST}/crm.item.update.json"), 200, json!({"result": {"item": {"id": 759}}}));
    crm.on("POST", &format!("{REST}/crm.contact.update.json"), 200, json!({"result": true}));
    crm.on("POST", &format!("{REST}/tasks.task.add.json"), 200, json!({"result": {"task": {"id": "3711"}}}));
    crm.on("POST", &format!("{REST}/crm.timeline.comment.add.json"), 200, json!({"result": 999}));

    let stage = fired("move_stage", json!({"pipeline": "1", "stage": "C1:PREPARATION"}), Some("759"));
    assert_eq!(deliver(&app, &stage).await, Ok(200));
    assert_eq!(
        only_call(&crm, "crm.item.update"),
        json!({"entityTypeId": 2, "id": 759, "fields": {"categoryId": 1, "stageId": "C1:PREPARATION"}})
    );

    let due: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
    let task = fired("create_task", json!({"title": "Follow up", "body": "Call them", "due_at": due}), Some("759"));
    assert_eq!(deliver(&app, &task).await, Ok(200));
    assert_eq!(
        only_call(&crm, "tasks.task.add"),
        json!({"fields": {"TITLE": "Follow up", "DESCRIPTION": "Call them", "RESPONSIBLE_ID": 1,
            "DEADLINE": "2026-11-23T10:00:00+00:00", "UF_CRM_TASK": ["C_42", "D_759"]}})
    );

    let note = fired("add_note", json!({"text": "High engagement: prioritise 42"}), None);
    assert_eq!(deliver(&app, &note).await, Ok(200));
    assert_eq!(
        only_call(&crm, "crm.timeline.comment.add"),
        json!({"fields": {"ENTITY_ID": 42, "ENTITY_TYPE": "contact", "COMMENT": "High engagement: prioritise 42"}})
    );

    let score = fired("set_field", json!({"field": "scorehook_score", "profile": "engagement", "value": 12}), None);
    assert_eq!(deliver(&app, &score).await, Ok(200));
    assert_eq!(
        only_call(&crm, "crm.contact.update"),
        json!({"id": 42, "fields": {"UF_CRM_SCOREHOOK_SCORE": 12.0}, "params": {"REGISTER_SONET_EVENT": "N"}})
    );
}

#[tokio::test]
async fn tags_are_a_read_modify_write_of_the_multiple_field() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let get = format!("{REST}/crm.contact.get.json");
    let update = format!("{REST}/crm.contact.update.json");

    crm.once("POST", &get, 200, &[], json!({"result": {"ID": "42", "UF_CRM_SCOREHOOK_TAGS": ["webinar"]}}));
    assert_eq!(deliver(&app, &fired("add_tag", json!({"tag": "Caliente"}), None)).await, Ok(200));
    assert_eq!(crm.calls_to("POST", &get)[0].body, json!({"id": 42}));
    let written = crm.calls_to("POST", &update);
    assert_eq!(
        written[0].body,
        json!({"id": 42, "fields": {"UF_CRM_SCOREHOOK_TAGS": ["webinar", "Caliente"]}, "params": {"REGISTER_SONET_EVENT": "N"}})
    );

    crm.once("POST", &get, 200, &[], json!({"result": {"ID": "42", "UF_CRM_SCOREHOOK_TAGS": ["webinar", "Caliente"]}}));
    assert_eq!(deliver(&app, &fired("remove_tag", json!({"tag": "Caliente"}), None)).await, Ok(200));
    let written = crm.calls_to("POST", &update);
    assert_eq!(written.len(), 2);
    assert_eq!(written[1].body["fields"], json!({"UF_CRM_SCOREHOOK_TAGS": ["webinar"]}));

    // Already there: nothing to write.
    crm.once("POST", &get, 200, &[], json!({"result": {"ID": "42", "UF_CRM_SCOREHOOK_TAGS": ["Caliente"]}}));
    assert_eq!(deliver(&app, &fired("add_tag", json!({"tag": "Caliente"}), None)).await, Ok(200));
    assert_eq!(crm.calls_to("POST", &update).len(), 2);

    // No such field on the portal: a dead letter that says what to create.
    crm.once("POST", &get, 200, &[], json!({"result": {"ID": "42", "NAME": "Jhon"}}));
    match deliver(&app, &fired("add_tag", json!({"tag": "Caliente"}), None)).await {
        Err(DeliveryError::Permanent { message, .. }) => {
            assert!(message.contains("UF_CRM_SCOREHOOK_TAGS"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_success_status_carrying_an_error_is_not_a_success() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let denied = json!({"error": "ACCESS_DENIED", "error_description": "Access denied."});
    crm.once("POST", &format!("{REST}/crm.item.update.json"), 200, &[], denied);
    let stage = fired("move_stage", json!({"pipeline": "0", "stage": "WON"}), Some("759"));
    match deliver(&app, &stage).await {
        Err(DeliveryError::Permanent { message, .. }) => {
            assert!(message.contains("ACCESS_DENIED"), "{message}");
            assert!(!message.contains(HOOK_CODE), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let no_deal = fired("move_stage", json!({"pipeline": "0", "stage": "WON"}), None);
    assert!(matches!(deliver(&app, &no_deal).await, Err(DeliveryError::Permanent { .. })));
}

#[tokio::test]
async fn the_portals_rate_limit_answers_are_retried_after_the_wait_they_imply() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let note = fired("add_note", json!({"text": "hi"}), None);
    let path = format!("{REST}/crm.timeline.comment.add.json");

    let limited = json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"});
    crm.once("POST", &path, 503, &[], limited);
    match deliver(&app, &note).await {
        Err(DeliveryError::Retryable { http_status, retry_after, message }) => {
            assert_eq!(http_status, Some(503));
            assert_eq!(retry_after, Some(TimeDelta::seconds(2)), "no Retry-After: a short back-off");
            assert!(!message.contains(HOOK_CODE), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let reset = app.clock.now().timestamp() + 45;
    let operating = json!({"error": "OPERATION_TIME_LIMIT", "time": {"operating_reset_at": reset}});
    crm.once("POST", &path, 429, &[], operating);
    match deliver(&app, &note).await {
        Err(DeliveryError::Retryable { http_status, retry_after, .. }) => {
            assert_eq!(http_status, Some(429));
            assert_eq!(retry_after, Some(TimeDelta::seconds(45)), "until time.operating_reset_at");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(crm.calls_to("POST", &path).len(), 2);
}

#[tokio::test]
async fn an_unreachable_portal_is_retryable_and_its_webhook_code_stays_secret() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    // Point the tenant at a port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let settings = json!({"provider": "bitrix24", "webhook_secret": "whsec-test-0123456789", "crm": {
        "application_token": WEBHOOK_TOKEN,
        "webhook_url": format!("https://example.bitrix24.com/rest/1/{HOOK_CODE}/"),
        "base_url": format!("http://{closed}")}});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme", Some(settings)).await;
    assert!(status.is_success(), "{body}");
    match deliver(&app, &fired("add_note", json!({"text": "hi"}), None)).await {
        Err(DeliveryError::Retryable { message, .. }) => assert!(!message.contains(HOOK_CODE), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// `imopenlines.dialog.get`'s answer for chat 10585, bound as `entity_data_2` says.
fn dialog(entity_data_2: &str) -> Value {
    json!({"result": {"id": 10585, "type": "lines", "entity_type": "LINES", "entity_id": "livechat|128|10587|1985",
        "entity_data_1": "Y|CONTACT|42|N|N|4411|1714649632|128|0|", "entity_data_2": entity_data_2}})
}

#[tokio::test]
async fn an_open_line_message_is_scored_for_the_contact_its_chat_is_bound_to() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, APP_TOKEN).await;
    let profile = json!({"name": "Chats", "rules": [{"id": "chat", "when": {"type": "chat.message"}, "points": 4}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/chats", Some(profile)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.admin(Method::POST, "/v1/tenants/acme/profiles/chats/publish", None).await;
    crm.on("POST", &format!("{REST}/imopenlines.dialog.get.json"), 200, dialog("LEAD|0|COMPANY|0|CONTACT|42|DEAL|759"));

    let (status, report) = post(&app, "acme", &sample("onopenlinemessageadd_docs.txt")).await;
    assert_eq!((status, report["queued"].clone()), (StatusCode::ACCEPTED, json!(1)), "{report}");
    app.drain_outbox().await;

    assert_eq!(only_call(&crm, "imopenlines.dialog.get"), json!({"CHAT_ID": 10585}));
    let message = json!({"id": "b24:a223c6b3710f85df22e9377d6c4f7553:olmsg:80964", "type": "chat.message",
        "contact_id": "42", "deal_id": "759", "occurred_at": "2024-05-02T11:33:52Z",
        "attributes": {"channel": "livechat", "line": "128", "chat_id": "10585", "message_id": "80964", "text": "hello"}});
    assert_eq!(recorded(&app, "42").await, vec![message]);
    let (_, scores) = app.admin(Method::GET, "/v1/tenants/acme/contacts/42/scores", None).await;
    assert_eq!(scores["scores"]["chats"]["score"], json!(4), "{scores}");
    assert_eq!(app.actions("acme", "done").await.len(), 1);
}

#[tokio::test]
async fn an_open_line_chat_bound_to_no_contact_ends_skipped_with_its_reason() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, APP_TOKEN).await;
    let mut lead_only = dialog("LEAD|5|COMPANY|0|CONTACT|0|DEAL|0");
    lead_only["result"]["entity_data_1"] = json!("Y|LEAD|5|N|N|4411|1714649632|128|0|");
    crm.on("POST", &format!("{REST}/imopenlines.dialog.get.json"), 200, lead_only);

    post(&app, "acme", &sample("onopenlinemessageadd_docs.txt")).await;
    app.drain_outbox().await;

    let skipped = app.actions("acme", "skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(
        skipped[0]["reason"],
        "open-line chat 10585 is bound only to lead 5 (imopenlines.dialog.get): no contact to score"
    );
    assert!(app.actions("acme", "dead").await.is_empty(), "not dead: nothing is wrong");
    assert_eq!(app.score("acme", "42").await, None);
}

#[tokio::test]
async fn a_session_start_is_the_first_message_of_the_chat_s_contact() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, APP_TOKEN).await;
    crm.on("POST", &format!("{REST}/imopenlines.dialog.get.json"), 200, dialog("LEAD|0|COMPANY|0|CONTACT|42|DEAL|0"));
    // The docs' ONSESSIONSTART example (api-reference/imopenlines/openlines/events/on-session-start.md), form-encoded.
    let body = "event=ONSESSIONSTART&eventId=1&data%5BDATA%5D%5B0%5D%5Bconnector%5D%5Bconnector_id%5D=livechat\
        &data%5BDATA%5D%5B0%5D%5Bconnector%5D%5Bline_id%5D=128&data%5BDATA%5D%5B0%5D%5Bconnector%5D%5Bchat_id%5D=10585\
        &data%5BDATA%5D%5B0%5D%5Bconnector%5D%5Buser_id%5D=1984&data%5BDATA%5D%5B0%5D%5Bchat%5D%5Bid%5D=10585\
        &data%5BDATA%5D%5B0%5D%5Buser%5D%5Bid%5D=128&data%5BDATA%5D%5B0%5D%5Buser%5D%5Bname%5D=linename&ts=1714649632\
        &auth%5Bmember_id%5D=a223c6b3710f85df22e9377d6c4f7553&auth%5Bapplication_token%5D=51856fefc120afa4b628cc82d3935cce";

    let (status, report) = post(&app, "acme", body.as_bytes()).await;
    assert_eq!((status, report["queued"].clone()), (StatusCode::ACCEPTED, json!(1)), "{report}");
    app.drain_outbox().await;

    let first = json!({"id": "b24:a223c6b3710f85df22e9377d6c4f7553:ONSESSIONSTART:10585:1714649632",
        "type": "chat.first_message", "contact_id": "42", "occurred_at": "2024-05-02T11:33:52Z",
        "attributes": {"channel": "livechat", "line": "128", "chat_id": "10585"}});
    assert_eq!(recorded(&app, "42").await, vec![first]);
    assert_eq!(only_call(&crm, "imopenlines.dialog.get"), json!({"CHAT_ID": 10585}));
}

#[tokio::test]
async fn a_lead_status_move_is_scored_as_a_stage_change_in_pipeline_lead() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let profile = json!({"name": "Leads", "rules": [{"id": "working", "when": {"type": "deal.stage_changed",
        "attributes": {"pipeline": {"equals": "lead"}, "stage": {"equals": "IN_PROCESS"}}}, "points": 2}]});
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/leads", Some(profile)).await;
    app.admin(Method::POST, "/v1/tenants/acme/profiles/leads/publish", None).await;
    let history = json!({"result": {"items": [
        {"ID": 812, "TYPE_ID": 2, "OWNER_ID": 759, "CREATED_TIME": "2025-01-09T09:56:40+03:00",
         "STATUS_SEMANTIC_ID": "P", "STATUS_ID": "IN_PROCESS"},
        {"ID": 811, "TYPE_ID": 1, "OWNER_ID": 759, "CREATED_TIME": "2025-01-09T09:50:02+03:00",
         "STATUS_SEMANTIC_ID": "P", "STATUS_ID": "NEW"}]}, "total": 2});
    crm.on("POST", &format!("{REST}/crm.stagehistory.list.json"), 200, history);
    crm.on("POST", &format!("{REST}/crm.lead.get.json"), 200, json!({"result": {"ID": "759", "CONTACT_ID": "42"}}));

    let body = edited("oncrmdealupdate_outgoing_webhook_constructed.txt", "ONCRMDEALUPDATE", "ONCRMLEADUPDATE");
    let (status, report) = post(&app, "acme", &body).await;
    assert_eq!((status, report["queued"].clone()), (StatusCode::ACCEPTED, json!(1)), "{report}");
    app.drain_outbox().await;

    assert_eq!(
        only_call(&crm, "crm.stagehistory.list"),
        json!({"entityTypeId": 1, "filter": {"OWNER_ID": 759}, "order": {"ID": "DESC"}})
    );
    assert_eq!(only_call(&crm, "crm.lead.get"), json!({"id": 759}));
    let moved = json!({"id": "b24:d897063e1ce7c5eb9f04b9751eef5915:leadhist:812", "type": "deal.stage_changed",
        "contact_id": "42", "deal_id": "L_759", "occurred_at": "2025-01-09T06:56:40Z",
        "attributes": {"stage": "IN_PROCESS", "pipeline": "lead", "old_stage": "NEW", "history_id": "812",
            "lead_id": "759"}});
    assert_eq!(recorded(&app, "42").await, vec![moved]);
    let (_, scores) = app.admin(Method::GET, "/v1/tenants/acme/contacts/42/scores", None).await;
    assert_eq!(scores["scores"]["leads"]["score"], json!(2), "{scores}");
}

#[tokio::test]
async fn a_new_lead_from_a_form_is_a_form_submission_and_any_other_is_skipped() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let get = format!("{REST}/crm.lead.get.json");
    crm.once("POST", &get, 200, &[], json!({"result": {"ID": "759", "SOURCE_ID": "WEBFORM", "CONTACT_ID": "42"}}));
    crm.once("POST", &get, 200, &[], json!({"result": {"ID": "760", "SOURCE_ID": "CALL", "CONTACT_ID": "42"}}));

    let form = edited("oncrmdealupdate_outgoing_webhook_constructed.txt", "ONCRMDEALUPDATE", "ONCRMLEADADD");
    post(&app, "acme", &form).await;
    app.drain_outbox().await;
    let submitted = recorded(&app, "42").await;
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    assert_eq!(submitted[0]["type"], "form.submitted");
    assert_eq!(submitted[0]["id"], "b24:d897063e1ce7c5eb9f04b9751eef5915:leadadd:759");
    assert_eq!(submitted[0]["deal_id"], "L_759");
    assert_eq!(submitted[0]["attributes"], json!({"source": "WEBFORM", "lead_id": "759"}));

    let call = String::from_utf8(form).unwrap().replace("%5BID%5D=759", "%5BID%5D=760");
    assert!(call.contains("%5BID%5D=760"));
    post(&app, "acme", call.as_bytes()).await;
    app.drain_outbox().await;
    let skipped = app.actions("acme", "skipped").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(reason.contains("lead 760 was not made by a form (its SOURCE_ID is CALL,"), "{reason}");
    assert_eq!(recorded(&app, "42").await.len(), 1);
}

#[tokio::test]
async fn a_move_goes_to_the_named_pipeline_with_the_category_prefixed_stage() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let update = format!("{REST}/crm.item.update.json");
    crm.on("POST", &update, 200, json!({"result": {"item": {"id": 759}}}));

    // By category id, the stage without its prefix.
    let by_id = fired("move_stage", json!({"pipeline": "2", "stage": "WON"}), Some("759"));
    assert_eq!(deliver(&app, &by_id).await, Ok(200));
    assert_eq!(
        only_call(&crm, "crm.item.update"),
        json!({"entityTypeId": 2, "id": 759, "fields": {"categoryId": 2, "stageId": "C2:WON"}})
    );

    // By name, as crm.category.list gives it; the general pipeline's stages are bare.
    let categories = json!({"result": {"categories": [
        {"id": 9, "name": "Wholesale", "sort": 200, "entityTypeId": 2, "isDefault": "N"},
        {"id": 0, "name": "General", "sort": 300, "entityTypeId": 2, "isDefault": "Y"}]}, "total": 2});
    crm.on("POST", &format!("{REST}/crm.category.list.json"), 200, categories);
    let by_name = fired("move_stage", json!({"pipeline": "wholesale", "stage": "C9:PREPARATION"}), Some("759"));
    assert_eq!(deliver(&app, &by_name).await, Ok(200));
    let general = fired("move_stage", json!({"pipeline": "General", "stage": "NEW"}), Some("759"));
    assert_eq!(deliver(&app, &general).await, Ok(200));
    let listed = crm.calls_to("POST", &format!("{REST}/crm.category.list.json"));
    assert_eq!(listed.iter().map(|c| c.body.clone()).collect::<Vec<_>>(), vec![json!({"entityTypeId": 2}); 2]);
    let moves: Vec<Value> = crm.calls_to("POST", &update).into_iter().map(|c| c.body["fields"].clone()).collect();
    assert_eq!(
        moves,
        vec![
            json!({"categoryId": 2, "stageId": "C2:WON"}),
            json!({"categoryId": 9, "stageId": "C9:PREPARATION"}),
            json!({"categoryId": 0, "stageId": "NEW"}),
        ]
    );

    // A name the portal does not have: a dead action that says so, and no move.
    let unknown = fired("move_stage", json!({"pipeline": "Retail", "stage": "NEW"}), Some("759"));
    match deliver(&app, &unknown).await {
        Err(DeliveryError::Permanent { message, .. }) => assert!(message.contains("\"Retail\""), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(crm.calls_to("POST", &update).len(), 3);
}

#[tokio::test]
async fn a_stage_of_another_pipeline_is_refused_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    let cases = [
        (json!({"pipeline": "1", "stage": "C2:WON"}), "759", "a stage of pipeline 2 for pipeline 1"),
        (json!({"pipeline": "0", "stage": "C2:WON"}), "759", "a stage of pipeline 2 for the general pipeline"),
        (json!({"pipeline": "lead", "stage": "IN_PROCESS"}), "759", "pipeline lead for a deal"),
        (json!({"pipeline": "0", "stage": "NEW"}), "L_5", "a lead in a deal pipeline"),
        (json!({"pipeline": "lead", "stage": "C2:WON"}), "L_5", "a deal stage for a lead"),
    ];
    for (params, deal, why) in cases {
        match deliver(&app, &fired("move_stage", params, Some(deal))).await {
            Err(DeliveryError::Permanent { message, .. }) => assert!(!message.is_empty(), "{why}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    let refused = deliver(&app, &fired("move_stage", json!({"pipeline": "1", "stage": "C2:WON"}), Some("759"))).await;
    let Err(DeliveryError::Permanent { message, .. }) = refused else { panic!("{refused:?}") };
    assert!(message.contains("stage \"C2:WON\" is a stage of pipeline 2, not of pipeline 1"), "{message}");
    assert!(crm.calls().is_empty(), "nothing reached the portal: {:?}", crm.calls());
}

#[tokio::test]
async fn a_lead_moves_to_its_status_through_crm_lead_update() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    portal_tenant(&app, "acme", &crm, WEBHOOK_TOKEN).await;
    crm.on("POST", &format!("{REST}/crm.lead.update.json"), 200, json!({"result": true}));

    let lead = fired("move_stage", json!({"pipeline": "lead", "stage": "IN_PROCESS"}), Some("L_5"));
    assert_eq!(deliver(&app, &lead).await, Ok(200));
    assert_eq!(only_call(&crm, "crm.lead.update"), json!({"id": 5, "fields": {"STATUS_ID": "IN_PROCESS"}}));
    assert!(crm.calls_to("POST", &format!("{REST}/crm.item.update.json")).is_empty());
}

#[tokio::test]
async fn a_move_as_a_user_is_made_through_that_user_s_webhook_or_refused() {
    let app = TestApp::spawn().await;
    let crm = FakeCrm::start().await;
    let settings = json!({
        "application_token": WEBHOOK_TOKEN,
        "webhook_url": format!("https://example.bitrix24.com/rest/1/{HOOK_CODE}/"),
        "user_webhooks": {"7": "https://example.bitrix24.com/rest/7/sevenscode/", "8": "https://example.bitrix24.com/rest/9/ninescode/"},
        "base_url": crm.url,
    });
    app.create_crm_tenant("acme", "bitrix24", settings).await;
    let as_seven = "/rest/7/sevenscode/crm.item.update.json";
    crm.on("POST", as_seven, 200, json!({"result": {"item": {"id": 759}}}));
    crm.on("POST", &format!("{REST}/crm.item.update.json"), 200, json!({"result": {"item": {"id": 759}}}));

    let seven = fired("move_stage", json!({"pipeline": "2", "stage": "C2:WON", "as_user": "7"}), Some("759"));
    assert_eq!(deliver(&app, &seven).await, Ok(200));
    let made = crm.calls_to("POST", as_seven);
    assert_eq!(made.len(), 1, "made as user 7: {:?}", crm.calls());
    assert_eq!(made[0].body, json!({"entityTypeId": 2, "id": 759, "fields": {"categoryId": 2, "stageId": "C2:WON"}}));
    assert!(crm.calls_to("POST", &format!("{REST}/crm.item.update.json")).is_empty(), "not as the webhook's user");

    // The webhook's own user needs no other webhook.
    let own = fired("move_stage", json!({"pipeline": "2", "stage": "C2:WON", "as_user": "1"}), Some("759"));
    assert_eq!(deliver(&app, &own).await, Ok(200));
    assert_eq!(crm.calls_to("POST", &format!("{REST}/crm.item.update.json")).len(), 1);

    // A user without a webhook, or with another user's: refused, nothing sent.
    let before = crm.calls().len();
    for (user, expected) in [("12", "no webhook of user 12"), ("8", "is user 9's webhook, not user 8's")] {
        let action = fired("move_stage", json!({"pipeline": "2", "stage": "WON", "as_user": user}), Some("759"));
        match deliver(&app, &action).await {
            Err(DeliveryError::Permanent { message, .. }) => {
                assert!(message.contains(expected), "{message}");
                assert!(!message.contains("ninescode") && !message.contains(HOOK_CODE), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(crm.calls().len(), before);
}
