//! Budgets and quotas (issue #19): a profile or trigger over a regex or
//! test budget, or past a tenant's quota, is a 422 naming the limit, and
//! the tenant's stored configuration is as it was.

use reqwest::{Method, StatusCode};
use scorehook::clock::Clock;
use serde_json::{json, Value};

use scorehook::engine::budget;
use scorehook::engine::profile::{ProfileRecord, ProfileSpec};
use scorehook::engine::trigger::TriggerSpec;
use scorehook::ids::{ProfileId, TenantId, TriggerId};
use scorehook::store::TriggerRecord;

use crate::support::{seeds_profile, TestApp};

/// A profile whose rule `i` matches page URLs against `pattern(i)`.
fn regex_profile(rules: usize, pattern: impl Fn(usize) -> String) -> Value {
    let rules: Vec<Value> = (0..rules)
        .map(|i| {
            json!({"id": format!("r{i}"), "points": 1,
                "when": {"type": "page.visited", "attributes": {"url": {"matches": pattern(i)}}}})
        })
        .collect();
    json!({"name": "Regexes", "rules": rules})
}

/// A tenant `acme` with the seeds' profile `engagement` published and a draft pending.
async fn tenant_with_a_profile(app: &TestApp) -> Value {
    app.create_tenant("acme", None).await;
    let path = "/v1/tenants/acme/profiles/engagement";
    assert_eq!(app.admin(Method::PUT, path, Some(seeds_profile())).await.0, StatusCode::CREATED);
    assert_eq!(app.admin(Method::POST, &format!("{path}/publish"), None).await.0, StatusCode::OK);
    let mut draft = seeds_profile();
    draft["description"] = json!("edited");
    assert_eq!(app.admin(Method::PUT, path, Some(draft)).await.0, StatusCode::OK);
    profiles(app).await
}

async fn profiles(app: &TestApp) -> Value {
    let (status, body) = app.admin(Method::GET, "/v1/tenants/acme/profiles", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asserts a 422 on `path` whose message says `limit`.
fn assert_refused(status: StatusCode, body: &Value, path: &str, limit: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(body["error"]["path"], path, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(limit), "the message names the limit ({limit}): {message}");
}

#[tokio::test]
async fn a_profile_over_the_regex_budget_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let before = tenant_with_a_profile(&app).await;
    // The issue's attack in small: regexes of ~190 KiB each, a thousand of them.
    let heavy = regex_profile(1000, |i| format!(r"\w{{3}}x{i}"));
    for id in ["engagement", "new"] {
        let (status, body) =
            app.admin(Method::PUT, &format!("/v1/tenants/acme/profiles/{id}"), Some(heavy.clone())).await;
        let path = body["error"]["path"].as_str().unwrap_or_default().to_owned();
        assert!(path.starts_with("rules[") && path.ends_with("].when.attributes.url.matches"), "{body}");
        assert_refused(status, &body, &path, "a profile's regexes may hold at most 2 MiB");
    }
    assert_eq!(profiles(&app).await, before, "neither the edit nor the new profile was saved");
}

#[tokio::test]
async fn profiles_within_their_budgets_but_past_the_tenants_are_422_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    // Three ~190 KiB regexes a profile: within its 2 MiB; as many such
    // profiles as the tenant's 4 MiB hold, by the engine's own measure.
    let heavy = regex_profile(3, |i| format!(r"\w{{3}}x{i}"));
    let spec: ProfileSpec = serde_json::from_value(heavy.clone()).unwrap();
    let each = spec.compile(&ProfileId::parse("p").unwrap(), 1).unwrap().regex_bytes;
    let fit = budget::TENANT_REGEX_BYTES / each;
    assert!((3..=10).contains(&fit), "{fit} profiles of {each} bytes");
    for i in 0..fit {
        let (status, body) =
            app.admin(Method::PUT, &format!("/v1/tenants/acme/profiles/p{i}"), Some(heavy.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "profile {i}: {body}");
    }
    let before = profiles(&app).await;
    let (status, body) = app.admin(Method::PUT, &format!("/v1/tenants/acme/profiles/p{fit}"), Some(heavy)).await;
    assert_refused(status, &body, "rules", "a tenant's regexes");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 4 MiB"), "{body}");
    // A trigger's event condition counts against the same budget.
    let trigger = json!({"name": "Visits", "when": {"event": {"type": "page.visited", "attributes": {"url": {"any": [
        {"matches": r"\w{3}y0"}, {"matches": r"\w{3}y1"}, {"matches": r"\w{3}y2"}]}}}},
        "actions": [{"type": "add_tag", "tag": "visitor"}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/visits", Some(trigger)).await;
    assert_refused(status, &body, "when", "at most 4 MiB");
    assert_eq!(profiles(&app).await, before, "no profile was added");
    let (status, _) = app.admin(Method::GET, "/v1/tenants/acme/triggers/visits", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no trigger was added");
    // A profile without regexes adds nothing to the budget: still accepted.
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/plain", Some(seeds_profile())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_rule_over_the_test_budget_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let before = tenant_with_a_profile(&app).await;
    let tests: Vec<Value> = (0..64).map(|i| json!({"equals": format!("campaign-{i}")})).collect();
    let wide = json!({"name": "Wide", "rules": [
        {"id": "opened", "when": {"type": "email.opened"}, "points": 1},
        {"id": "campaigns", "when": {"type": "email.opened", "attributes": {"campaign_id": {"any": tests}}}, "points": 1}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(wide)).await;
    assert_refused(status, &body, "rules[1].when", "at most 64 tests");
    assert_eq!(profiles(&app).await, before);
}

/// Stores `count` profiles straight into the store (faster than the API):
/// published ones, or drafts never published.
async fn store_profiles(app: &TestApp, count: usize, published: bool) {
    let tenant = TenantId::parse("acme").unwrap();
    let spec: ProfileSpec = serde_json::from_value(seeds_profile()).unwrap();
    for i in 0..count {
        let id = ProfileId::parse(format!("stored-{i}")).unwrap();
        let mut record = ProfileRecord::new_draft(id, spec.clone(), app.clock.now());
        if published {
            record.publish(app.clock.now());
        }
        app.local.service.store.put_profile(&tenant, &record).await.unwrap();
    }
}

#[tokio::test]
async fn a_new_profile_past_the_tenants_profile_quota_is_422_and_edits_still_pass() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    store_profiles(&app, 100, true).await;
    let before = profiles(&app).await;
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/one-more", Some(seeds_profile())).await;
    assert_refused(status, &body, "id", "at most 100 profiles");
    assert_eq!(profiles(&app).await, before, "the profile was not created");
    let mut edit = seeds_profile();
    edit["description"] = json!("edited");
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/stored-7", Some(edit)).await;
    assert_eq!(status, StatusCode::OK, "editing one of the hundred is not a new profile: {body}");
}

#[tokio::test]
async fn a_new_draft_past_the_tenants_draft_quota_is_422_and_drafts_can_still_be_edited() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    store_profiles(&app, 50, false).await;
    let before = profiles(&app).await;
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/one-more", Some(seeds_profile())).await;
    assert_refused(status, &body, "id", "at most 50 unpublished drafts");
    assert_eq!(profiles(&app).await, before);
    let mut edit = seeds_profile();
    edit["description"] = json!("edited");
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/stored-7", Some(edit)).await;
    assert_eq!(status, StatusCode::OK, "a draft's edit adds no draft: {body}");
}

#[tokio::test]
async fn a_new_trigger_past_the_tenants_trigger_quota_is_422_and_edits_still_pass() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let tenant = TenantId::parse("acme").unwrap();
    let body = json!({"name": "Missed", "when": {"event": {"type": "call.missed"}}, "enabled": false,
        "actions": [{"type": "add_note", "text": "call back"}]});
    let spec: TriggerSpec = serde_json::from_value(body.clone()).unwrap();
    for i in 0..200 {
        let record = TriggerRecord {
            id: TriggerId::parse(format!("stored-{i}")).unwrap(),
            spec: spec.clone(),
            updated_at: app.clock.now(),
        };
        app.local.service.store.put_trigger(&tenant, &record).await.unwrap();
    }
    let (status, answer) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/one-more", Some(body.clone())).await;
    assert_refused(status, &answer, "id", "at most 200 triggers");
    let (status, _) = app.admin(Method::GET, "/v1/tenants/acme/triggers/one-more", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the trigger was not created");
    let mut edit = body;
    edit["name"] = json!("Missed call");
    let (status, answer) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/stored-7", Some(edit)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}
