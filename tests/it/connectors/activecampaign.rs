//! ActiveCampaign end to end: its form bodies through the webhook route with
//! the tenant's secret in the URL's `key`, and every action out to a fake
//! of its API v3, with the calls, headers and bodies its docs name.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use scorehook::clock::Clock;
use scorehook::crm::egress::Egress;
use scorehook::crm::{Deliverer, DeliveryError};
use scorehook::ids::TenantId;
use scorehook::outbox::OutboxItem;
use scorehook::tenant::TenantRecord;
use serde_json::{json, Value};

use crate::support::spawn_app::SECRET;
use crate::support::{crm_sample, seeds_profile, FakeCrm, TestApp};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const TOKEN: &str = "ac-api-token-123";

/// An ActiveCampaign tenant whose API is `crm`, with the seeds' profile published.
async fn tenant(app: &TestApp, crm: &FakeCrm, extra: Value) -> TenantRecord {
    let mut settings = json!({"api_token": TOKEN, "base_url": crm.url});
    if let (Some(settings), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
        settings.extend(extra.clone());
    }
    app.create_crm_tenant("acme", "activecampaign", settings).await;
    let profile = "/v1/tenants/acme/profiles/engagement";
    assert_eq!(app.admin(Method::PUT, profile, Some(seeds_profile())).await.0, StatusCode::CREATED);
    assert_eq!(app.admin(Method::POST, &format!("{profile}/publish"), None).await.0, StatusCode::OK);
    app.local.service.store.tenant(&TenantId::parse("acme").unwrap()).await.unwrap().unwrap()
}

async fn post(app: &TestApp, query: &str, body: &[u8]) -> (StatusCode, Value) {
    app.post_provider(&format!("/v1/webhooks/activecampaign/acme{query}"), &[FORM], body).await
}

/// Nothing was scored, queued or counted for the tenant.
async fn assert_nothing_stored(app: &TestApp) {
    assert_eq!(app.score("acme", "42").await, None);
    assert!(app.actions("acme", "pending").await.is_empty());
    assert_eq!(app.unmapped("acme").await, json!({}));
}

#[tokio::test]
async fn an_open_posted_with_the_tenant_key_is_accepted_and_scores() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, &crm, json!({})).await;
    let (status, body) =
        post(&app, &format!("?key={SECRET}"), &crm_sample("activecampaign", "open_constructed.txt")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(app.score("acme", "42").await, Some(json!(1)));
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_refused_and_nothing_is_stored() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, &crm, json!({})).await;
    let open = crm_sample("activecampaign", "open_constructed.txt");
    for (query, why) in [
        ("", "no key"),
        ("?key=", "an empty key"),
        ("?key=whsec-test-012345678", "a prefix of the secret"),
        ("?key=wrong&type=page.visited", "a wrong key"),
        ("?token=whsec-test-0123456789", "the secret under another name"),
    ] {
        let (status, body) = post(&app, query, &open).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    }
    // The key in a header instead of the URL is not the scheme either.
    let (status, _) =
        app.post_provider("/v1/webhooks/activecampaign/acme", &[FORM, ("x-scorehook-key", SECRET)], &open).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&app, "?key=wrong", b"type=sent&campaign%5Bid%5D=57").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an unmapped kind is refused too without the key");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn a_redelivered_event_scores_once() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, &crm, json!({})).await;
    let open = crm_sample("activecampaign", "open_constructed.txt");
    let query = format!("?key={SECRET}");
    assert_eq!(post(&app, &query, &open).await.0, StatusCode::ACCEPTED);
    let (status, again) = post(&app, &query, &open).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again, json!({"accepted": 0, "duplicates": 1}));
    assert_eq!(app.score("acme", "42").await, Some(json!(1)));

    // Another open (another second) of the same campaign counts.
    let later = String::from_utf8(open).unwrap().replace("10%3A00%3A00", "10%3A05%3A00");
    assert_eq!(post(&app, &query, later.as_bytes()).await.1, json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(app.score("acme", "42").await, Some(json!(2)));
}

#[tokio::test]
async fn unmapped_kinds_are_acknowledged_and_counted() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, &crm, json!({})).await;
    let query = format!("?key={SECRET}");
    let (status, body) = post(&app, &query, b"type=sent&campaign%5Bid%5D=57&list=1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["unmapped"], 1);
    let automation = crm_sample("activecampaign", "automation_webhook_action_capture_anonymised.txt");
    assert_eq!(post(&app, &query, &automation).await.0, StatusCode::ACCEPTED, "no type in the URL");
    assert_eq!(post(&app, &query, b"type=sent&campaign%5Bid%5D=58").await.0, StatusCode::ACCEPTED);
    assert_eq!(app.unmapped("acme").await, json!({"activecampaign:sent": 2, "activecampaign:automation": 1}));
    assert_eq!(app.score("acme", "42").await, None);
}

#[tokio::test]
async fn an_automation_webhook_takes_its_type_from_the_url_and_a_repeat_counts_once() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, &crm, json!({})).await;
    let automation = crm_sample("activecampaign", "automation_webhook_action_capture_anonymised.txt");
    let query = format!("?key={SECRET}&type=email.opened");
    assert_eq!(post(&app, &query, &automation).await.1, json!({"accepted": 1, "duplicates": 0}));
    assert_eq!(post(&app, &query, &automation).await.1, json!({"accepted": 0, "duplicates": 1}));
    assert_eq!(app.score("acme", "42").await, Some(json!(1)));
    app.advance(TimeDelta::hours(1));
    assert_eq!(post(&app, &query, &automation).await.1, json!({"accepted": 1, "duplicates": 0}), "a later run");
    assert_eq!(app.score("acme", "42").await, Some(json!(2)));
}

#[tokio::test]
async fn a_body_that_is_no_activecampaign_event_is_a_400_and_stores_nothing() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, &crm, json!({})).await;
    let (status, body) = post(&app, &format!("?key={SECRET}"), b"type=open&campaign%5Bid%5D=57").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_nothing_stored(&app).await;
}

/// A fired action for contact 42 (and deal `deal`), built as the engine would.
fn item(kind: &str, params: Value, deal: Option<&str>) -> OutboxItem {
    crate::support::fired_action("acme", kind, params, "42", deal, Utc::now())
}

/// Delivers through a fresh deliverer (its own rate-limit buckets).
async fn deliver(app: &TestApp, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    let now: DateTime<Utc> = app.clock.now();
    crate::support::sent(
        Deliverer::new(Egress::ALLOW_PRIVATE).unwrap().deliver(tenant, item, now, &app.local.service).await,
    )
}

/// Every call carries the account's token; calls with a body send JSON.
fn assert_authenticated(crm: &FakeCrm) {
    let calls = crm.calls();
    assert!(!calls.is_empty());
    for call in calls {
        assert_eq!(call.header("api-token"), Some(TOKEN), "{} {}", call.method, call.path);
        if !call.raw.is_empty() {
            assert_eq!(call.header("content-type"), Some("application/json"), "{} {}", call.method, call.path);
        }
    }
}

fn methods_and_paths(crm: &FakeCrm) -> Vec<String> {
    crm.calls().iter().map(|c| format!("{} {}", c.method, c.path)).collect()
}

#[tokio::test]
async fn add_tag_creates_a_missing_tag_then_links_it_to_the_contact() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    crm.on("GET", "/api/3/tags", 200, json!({"tags": [{"id": "3", "tag": "Caliente pero no", "tagType": "contact"}]}));
    crm.on("POST", "/api/3/tags", 201, json!({"tag": {"id": "20", "tag": "Caliente"}}));
    crm.on("POST", "/api/3/contactTags", 201, json!({"contactTag": {"id": "9", "contact": "42", "tag": "20"}}));
    let status = deliver(&app, &tenant, &item("add_tag", json!({"tag": "Caliente"}), None)).await;
    assert_eq!(status, Ok(201));
    assert_eq!(methods_and_paths(&crm), ["GET /api/3/tags", "POST /api/3/tags", "POST /api/3/contactTags"]);
    let calls = crm.calls();
    assert_eq!(calls[0].query.as_deref(), Some("search=Caliente"));
    assert_eq!(calls[1].body, json!({"tag": {"tag": "Caliente", "tagType": "contact", "description": ""}}));
    assert_eq!(calls[2].body, json!({"contactTag": {"contact": "42", "tag": "20"}}));
    assert_authenticated(&crm);
}

#[tokio::test]
async fn add_tag_reuses_an_existing_contact_tag_whatever_its_case() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    let tags = json!({"tags": [
        {"id": "19", "tag": "Caliente", "tagType": "deal"},
        {"id": "20", "tag": "caliente", "tagType": "contact"}]});
    crm.on("GET", "/api/3/tags", 200, tags);
    crm.on("POST", "/api/3/contactTags", 201, json!({"contactTag": {"id": "9"}}));
    assert_eq!(deliver(&app, &tenant, &item("add_tag", json!({"tag": "Caliente"}), None)).await, Ok(201));
    assert_eq!(methods_and_paths(&crm), ["GET /api/3/tags", "POST /api/3/contactTags"], "no tag is created");
    let link = &crm.calls_to("POST", "/api/3/contactTags")[0];
    assert_eq!(link.body, json!({"contactTag": {"contact": "42", "tag": "20"}}), "the contact tag, not the deal tag");
}

#[tokio::test]
async fn add_tag_fails_permanently_when_the_created_tag_has_no_id() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    crm.on("GET", "/api/3/tags", 200, json!({"tags": []}));
    crm.on("POST", "/api/3/tags", 201, json!({"unexpected": true}));
    let result = deliver(&app, &tenant, &item("add_tag", json!({"tag": "Caliente"}), None)).await;
    assert!(matches!(result, Err(DeliveryError::Permanent { .. })), "{result:?}");
    assert!(crm.calls_to("POST", "/api/3/contactTags").is_empty());
}

#[tokio::test]
async fn remove_tag_deletes_the_contacts_link_to_the_tag() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    crm.on("GET", "/api/3/tags", 200, json!({"tags": [{"id": "20", "tag": "Caliente", "tagType": "contact"}]}));
    crm.on(
        "GET",
        "/api/3/contacts/42/contactTags",
        200,
        json!({"contactTags": [{"id": "5", "contact": "42", "tag": "19"}, {"id": "6", "contact": "42", "tag": "20"}]}),
    );
    crm.on("DELETE", "/api/3/contactTags/6", 200, json!({}));
    assert_eq!(deliver(&app, &tenant, &item("remove_tag", json!({"tag": "Caliente"}), None)).await, Ok(200));
    assert_eq!(
        methods_and_paths(&crm),
        ["GET /api/3/tags", "GET /api/3/contacts/42/contactTags", "DELETE /api/3/contactTags/6"]
    );
    assert_eq!(crm.calls()[0].query.as_deref(), Some("search=Caliente"));
    assert_authenticated(&crm);
}

#[tokio::test]
async fn remove_tag_of_a_tag_the_contact_lacks_deletes_nothing() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    crm.on("GET", "/api/3/tags", 200, json!({"tags": [{"id": "20", "tag": "Caliente", "tagType": "contact"}]}));
    crm.on("GET", "/api/3/contacts/42/contactTags", 200, json!({"contactTags": [{"id": "5", "tag": "19"}]}));
    assert_eq!(deliver(&app, &tenant, &item("remove_tag", json!({"tag": "Caliente"}), None)).await, Ok(200));
    assert_eq!(methods_and_paths(&crm), ["GET /api/3/tags", "GET /api/3/contacts/42/contactTags"]);
}

#[tokio::test]
async fn create_task_is_a_deal_task_on_the_deal_when_known_else_on_the_contact() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({"task_type_id": "3"})).await;
    crm.on("POST", "/api/3/dealTasks", 201, json!({"dealTask": {"id": "1"}}));
    let params = json!({"title": "Follow up", "body": "Call about pricing", "due_at": "2026-11-23T10:00:00Z"});
    assert_eq!(deliver(&app, &tenant, &item("create_task", params, Some("7"))).await, Ok(201));
    let no_body = json!({"title": "Follow up", "body": null, "due_at": null});
    assert_eq!(deliver(&app, &tenant, &item("create_task", no_body, None)).await, Ok(201));
    let calls = crm.calls_to("POST", "/api/3/dealTasks");
    assert_eq!(
        calls[0].body,
        json!({"dealTask": {"title": "Follow up", "ownerType": "deal", "relid": 7, "status": 0,
            "note": "Call about pricing", "duedate": "2026-11-23T10:00:00Z", "dealTasktype": 3}})
    );
    let due_now = app.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        calls[1].body,
        json!({"dealTask": {"title": "Follow up", "ownerType": "contact", "relid": 42, "status": 0,
            "duedate": due_now, "dealTasktype": 3}})
    );
    assert_authenticated(&crm);
}

#[tokio::test]
async fn create_task_defaults_to_task_type_1() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    let params = json!({"title": "Follow up", "due_at": "2026-11-23T10:00:00Z"});
    assert_eq!(deliver(&app, &tenant, &item("create_task", params, None)).await, Ok(200));
    assert_eq!(crm.calls_to("POST", "/api/3/dealTasks")[0].body["dealTask"]["dealTasktype"], json!(1));
}

#[tokio::test]
async fn add_note_is_a_note_on_the_contact() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    crm.on("POST", "/api/3/notes", 201, json!({"note": {"id": "11"}}));
    let note = item("add_note", json!({"text": "High engagement: prioritise 42"}), Some("7"));
    assert_eq!(deliver(&app, &tenant, &note).await, Ok(201));
    assert_eq!(
        crm.calls_to("POST", "/api/3/notes")[0].body,
        json!({"note": {"note": "High engagement: prioritise 42", "relid": 42, "reltype": "Subscriber"}})
    );
    assert_authenticated(&crm);
}

#[tokio::test]
async fn set_field_writes_the_score_into_the_configured_numeric_field() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({"score_field_id": "7"})).await;
    let score = item("set_field", json!({"field": "scorehook_score", "profile": "engagement", "value": 12.0}), None);
    assert_eq!(deliver(&app, &tenant, &score).await, Ok(200));
    let by_id = item("set_field", json!({"field": "9", "profile": "engagement", "value": 2.5}), None);
    assert_eq!(deliver(&app, &tenant, &by_id).await, Ok(200));
    let calls = crm.calls_to("POST", "/api/3/fieldValues");
    assert_eq!(
        calls[0].body,
        json!({"fieldValue": {"contact": "42", "field": "7", "value": "12"}, "useDefaults": false})
    );
    assert_eq!(
        calls[1].body,
        json!({"fieldValue": {"contact": "42", "field": "9", "value": "2.5"}, "useDefaults": false})
    );
    assert_authenticated(&crm);
}

#[tokio::test]
async fn set_field_without_a_field_id_fails_permanently_and_calls_nothing() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    let score = item("set_field", json!({"field": "scorehook_score", "profile": "engagement", "value": 12}), None);
    match deliver(&app, &tenant, &score).await {
        Err(DeliveryError::Permanent { message, .. }) => assert!(message.contains("score_field_id"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(crm.calls().is_empty());
}

#[tokio::test]
async fn move_stage_updates_the_deals_stage_and_pipeline() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    crm.on("PUT", "/api/3/deals/7", 200, json!({"deal": {"id": "7", "stage": "4"}}));
    let params = json!({"pipeline": "2", "stage": "4", "allow_backwards": false, "as_user": null});
    assert_eq!(deliver(&app, &tenant, &item("move_stage", params, Some("7"))).await, Ok(200));
    assert_eq!(methods_and_paths(&crm), ["PUT /api/3/deals/7"]);
    assert_eq!(crm.calls()[0].body, json!({"deal": {"stage": "4", "group": "2"}}));
    assert_authenticated(&crm);

    let no_deal = item("move_stage", json!({"pipeline": "2", "stage": "4"}), None);
    assert!(matches!(deliver(&app, &tenant, &no_deal).await, Err(DeliveryError::Permanent { .. })));
    let by_name = item("move_stage", json!({"pipeline": "sales", "stage": "demo"}), Some("7"));
    assert!(matches!(deliver(&app, &tenant, &by_name).await, Err(DeliveryError::Permanent { .. })));
    assert_eq!(crm.calls().len(), 1, "refused moves call nothing");
}

#[tokio::test]
async fn a_base_url_given_with_api_3_is_not_doubled() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let mut tenant = tenant(&app, &crm, json!({})).await;
    tenant.crm.insert("base_url".into(), json!(format!("{}/api/3/", crm.url)));
    assert_eq!(deliver(&app, &tenant, &item("add_note", json!({"text": "x"}), None)).await, Ok(200));
    assert_eq!(methods_and_paths(&crm), ["POST /api/3/notes"]);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_or_one_second() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    crm.once("POST", "/api/3/notes", 429, &[("retry-after", "30")], json!({"message": "Too Many Requests"}));
    crm.once("POST", "/api/3/notes", 429, &[], json!({"message": "Too Many Requests"}));
    let note = item("add_note", json!({"text": "x"}), None);
    for expected in [30, 1] {
        match deliver(&app, &tenant, &note).await {
            Err(DeliveryError::Retryable { http_status, retry_after, .. }) => {
                assert_eq!(http_status, Some(429));
                assert_eq!(retry_after, Some(TimeDelta::seconds(expected)));
            }
            other => panic!("expected a retryable 429, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_bad_token_is_a_permanent_failure_that_does_not_leak_the_token() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    crm.on("POST", "/api/3/notes", 403, json!({"message": "Forbidden"}));
    match deliver(&app, &tenant, &item("add_note", json!({"text": "x"}), None)).await {
        Err(DeliveryError::Permanent { http_status, message }) => {
            assert_eq!(http_status, Some(403));
            assert!(message.contains("lack a permission") && !message.contains(TOKEN), "{message}");
            assert!(!message.contains("Forbidden"), "the answer's body stays out: {message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_activecampaign_event_is_ever_resolved() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    let tenant = tenant(&app, &crm, json!({})).await;
    let event = json!({"key": "ac:x", "kind": "open", "subject": "42", "event": {}});
    match deliver(&app, &tenant, &item(scorehook::crm::RESOLVE_KIND, event, None)).await {
        Err(DeliveryError::Permanent { message, .. }) => {
            assert!(message.contains("no ActiveCampaign event"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(crm.calls().is_empty());
}

/// ActiveCampaign's own "contacts in my metro area" example: a fit rule on
/// a custom field, fed by the webhook's `contact[fields][…]`.
#[tokio::test]
async fn custom_fields_and_the_ip_feed_contact_fit_rules() {
    let (app, crm) = (TestApp::spawn().await, FakeCrm::start().await);
    tenant(&app, &crm, json!({})).await;
    let metro = json!({"name": "Fit", "rules": [
        {"id": "metro", "when": {"contact": {"city": {"in": ["Bogotá", "Medellín"]}}}, "points": 10, "once": true},
        {"id": "owned", "when": {"contact": {"contact_owner": {"equals": "Ana Owner"}, "ip": {"exists": true}}}, "points": 1, "once": true}]});
    let (status, body) = app.admin(reqwest::Method::PUT, "/v1/tenants/acme/profiles/fit", Some(metro)).await;
    assert!(status.is_success(), "{body}");
    let (status, body) = app.admin(reqwest::Method::POST, "/v1/tenants/acme/profiles/fit/publish", None).await;
    assert!(status.is_success(), "{body}");

    let mut automation = crm_sample("activecampaign", "automation_webhook_action_capture_anonymised.txt");
    automation.extend_from_slice(b"&contact%5Bfields%5D%5Bcity%5D=Medell%C3%ADn");
    let query = format!("?key={SECRET}&type=page.visited");
    assert_eq!(post(&app, &query, &automation).await.1, json!({"accepted": 1, "duplicates": 0}));
    let (_, scores) = app.admin(reqwest::Method::GET, "/v1/tenants/acme/contacts/42/scores", None).await;
    assert_eq!(scores["scores"]["fit"]["score"], 11, "the city, the owner and the IP all came through: {scores}");
}
