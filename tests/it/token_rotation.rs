//! Tenant admin token rotation over HTTP, on both stores: the new token
//! works at once, the replaced one only within its grace (measured on the
//! service's clock, moved by the test), a rotated-out token cannot rotate,
//! another tenant's token learns nothing, an update keeps the rotation, and
//! concurrent rotations with one token let exactly one through, and a
//! leaderboard cursor issued before a rotation pages within its grace.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use scorehook::clock::Clock;
use scorehook::tenant::hash_token;

use crate::support::dynamo::fresh_store;
use crate::support::{interaction, TestApp, ADMIN_TOKEN};

const ROTATE: &str = "/v1/tenants/acme/token/rotate";
const TENANT: &str = "/v1/tenants/acme";

async fn rotate(app: &TestApp, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    app.call(Method::POST, ROTATE, Some(token), body).await
}

/// Rotates and returns the new token, asserting the call succeeded.
async fn rotated(app: &TestApp, token: &str, grace_seconds: u64) -> String {
    let (status, answer) = rotate(app, token, Some(json!({"grace_seconds": grace_seconds}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["token"].as_str().unwrap().to_owned()
}

/// The status of a read of the tenant with `token`.
async fn opens(app: &TestApp, token: &str) -> StatusCode {
    app.call(Method::GET, TENANT, Some(token), None).await.0
}

fn at(answer: &Value, field: &str) -> Option<DateTime<Utc>> {
    answer[field].as_str().map(|s| s.parse().unwrap())
}

async fn on_dynamo() -> Option<TestApp> {
    Some(TestApp::spawn_on(Arc::new(fresh_store().await?)).await)
}

/// The whole life of a rotation: new token at once, old one until its grace ends.
async fn the_replaced_token_works_until_its_grace_ends(app: &TestApp) {
    let first = app.create_tenant("acme", None).await;
    let (_, refused) = app.call(Method::GET, TENANT, Some("sht_not-a-token"), None).await;

    let response = app
        .http
        .post(format!("{}{ROTATE}", app.base))
        .bearer_auth(&first)
        .json(&json!({"grace_seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store", "the token must not be cached on the way");
    let answer: Value = response.json().await.unwrap();
    let second = answer["token"].as_str().unwrap().to_owned();
    assert!(second.starts_with("sht_") && second.len() == 4 + 64, "made like a creation's token: {second}");
    assert_ne!(second, first);
    assert_eq!(answer["tenant"], "acme");
    let now = app.clock.now();
    assert_eq!(at(&answer, "previous_token_expires_at"), Some(now + TimeDelta::hours(1)));

    assert_eq!(opens(app, &second).await, StatusCode::OK, "the new token works at once");
    let (status, shown) = app.call(Method::GET, TENANT, Some(&first), None).await;
    assert_eq!(status, StatusCode::OK, "the old one works within its grace");
    assert_eq!(at(&shown, "token_rotated_at"), Some(now));
    assert_eq!(at(&shown, "previous_token_expires_at"), Some(now + TimeDelta::hours(1)));
    assert!(!shown.to_string().contains(&second) && !shown.to_string().contains(&hash_token(&second)), "{shown}");

    app.advance(TimeDelta::hours(1) - TimeDelta::seconds(1));
    assert_eq!(opens(app, &first).await, StatusCode::OK, "a second before the grace ends");
    app.advance(TimeDelta::seconds(1));
    let (status, answer) = app.call(Method::GET, TENANT, Some(&first), None).await;
    assert_eq!((status, &answer), (StatusCode::UNAUTHORIZED, &refused), "then refused like any bad token");
    let (status, answer) = rotate(app, &first, None).await;
    assert_eq!((status, &answer), (StatusCode::UNAUTHORIZED, &refused));
    let (_, shown) = app.call(Method::GET, TENANT, Some(&second), None).await;
    assert_eq!(shown["previous_token_expires_at"], Value::Null, "the grace is over: {shown}");
    assert_eq!(opens(app, &second).await, StatusCode::OK);
    assert_eq!(opens(app, ADMIN_TOKEN).await, StatusCode::OK, "the operator token is not touched");
}

#[tokio::test]
async fn the_replaced_token_works_until_its_grace_ends_embedded() {
    the_replaced_token_works_until_its_grace_ends(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn the_replaced_token_works_until_its_grace_ends_on_dynamodb() {
    let Some(app) = on_dynamo().await else { return };
    the_replaced_token_works_until_its_grace_ends(&app).await;
}

#[tokio::test]
async fn a_grace_of_zero_revokes_the_replaced_token_at_once() {
    let app = TestApp::spawn().await;
    let first = app.create_tenant("acme", None).await;
    let (status, answer) = rotate(&app, ADMIN_TOKEN, Some(json!({"grace_seconds": 0}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["previous_token_expires_at"], Value::Null);
    assert_eq!(opens(&app, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(opens(&app, answer["token"].as_str().unwrap()).await, StatusCode::OK);
}

#[tokio::test]
async fn the_default_grace_is_a_day_and_a_bad_grace_changes_nothing() {
    let app = TestApp::spawn().await;
    let first = app.create_tenant("acme", None).await;
    for (body, status) in [
        (json!({"grace_seconds": 604_801}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"grace_seconds": -1}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"grace_seconds": "1d"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"token": "sht_mine"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (got, answer) = rotate(&app, &first, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
    }
    let malformed = app.http.post(format!("{}{ROTATE}", app.base)).bearer_auth(&first).body("{not json");
    assert_eq!(malformed.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let (_, shown) = app.call(Method::GET, TENANT, Some(&first), None).await;
    assert_eq!(shown["token_rotated_at"], Value::Null, "no refused call rotated anything: {shown}");

    let (status, answer) = rotate(&app, &first, None).await;
    assert_eq!(status, StatusCode::OK, "no body at all takes the defaults: {answer}");
    assert_eq!(at(&answer, "previous_token_expires_at"), Some(app.clock.now() + TimeDelta::days(1)));
    let (status, answer) =
        rotate(&app, answer["token"].as_str().unwrap(), Some(json!({"grace_seconds": 604_800}))).await;
    assert_eq!(status, StatusCode::OK, "a week is the most: {answer}");
    assert_eq!(at(&answer, "previous_token_expires_at"), Some(app.clock.now() + TimeDelta::weeks(1)));
}

#[tokio::test]
async fn rotating_again_ends_the_grace_of_the_token_before() {
    let app = TestApp::spawn().await;
    let first = app.create_tenant("acme", None).await;
    let second = rotated(&app, &first, 3600).await;
    let third = rotated(&app, &second, 3600).await;
    assert_eq!(opens(&app, &first).await, StatusCode::UNAUTHORIZED, "only one replaced token is kept");
    assert_eq!(opens(&app, &second).await, StatusCode::OK);
    assert_eq!(opens(&app, &third).await, StatusCode::OK);
}

#[tokio::test]
async fn a_replaced_token_cannot_rotate_even_within_its_grace() {
    let app = TestApp::spawn().await;
    let first = app.create_tenant("acme", None).await;
    let second = rotated(&app, &first, 3600).await;
    let (status, answer) = rotate(&app, &first, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a leaked old token must not lock the owner out: {answer}");
    assert_eq!(opens(&app, &second).await, StatusCode::OK, "the refused call changed nothing");
    assert_eq!(opens(&app, &first).await, StatusCode::OK, "the old token still reads within its grace");
}

#[tokio::test]
async fn another_tenants_token_cannot_rotate_and_gets_the_unknown_tenants_answer() {
    let app = TestApp::spawn().await;
    let own = app.create_tenant("acme", None).await;
    let rival = app.create_tenant("rival", None).await;
    let (status, answer) = rotate(&app, &rival, Some(json!({"grace_seconds": 0}))).await;
    let ghost = app.call(Method::POST, "/v1/tenants/ghost/token/rotate", Some(&rival), Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!((status, answer), ghost, "the same answer as for a tenant that does not exist");
    let (_, shown) = app.call(Method::GET, TENANT, Some(&own), None).await;
    assert_eq!(shown["token_rotated_at"], Value::Null, "nothing was rotated: {shown}");
    let (status, _) = rotate(&app, "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_update_keeps_the_rotation_and_cannot_set_a_token() {
    let app = TestApp::spawn().await;
    let first = app.create_tenant("acme", None).await;
    let second = rotated(&app, &first, 3600).await;
    let update = json!({"provider": "generic", "actions_url": "http://127.0.0.1:9/actions"});
    let (status, answer) = app.call(Method::PUT, TENANT, Some(&second), Some(update)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(at(&answer, "previous_token_expires_at"), Some(app.clock.now() + TimeDelta::hours(1)));
    assert_eq!(opens(&app, &first).await, StatusCode::OK, "the update did not end the grace");
    assert_eq!(opens(&app, &second).await, StatusCode::OK);

    for smuggled in [
        json!({"provider": "generic", "token_hash": hash_token("sht_mine")}),
        json!({"provider": "generic", "token": "sht_mine"}),
        json!({"provider": "generic", "previous_token": {"hash": hash_token("sht_mine"), "expires_at": "2999-01-01T00:00:00Z"}}),
    ] {
        let (status, answer) = app.call(Method::PUT, TENANT, Some(&second), Some(smuggled.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{smuggled}: {answer}");
    }
    assert_eq!(opens(&app, "sht_mine").await, StatusCode::UNAUTHORIZED, "no update can choose a token");
    assert_eq!(opens(&app, &second).await, StatusCode::OK);
}

/// Several rotations with one token at once: one wins; the others are
/// refused (409, or 401 once the token they hold is no longer current),
/// so no caller holds a token that was silently dropped.
async fn concurrent_rotations_with_one_token_let_exactly_one_through(app: &TestApp) {
    let first = app.create_tenant("acme", None).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = app.http.post(format!("{}{ROTATE}", app.base)).bearer_auth(&first);
        calls.spawn(async move {
            let response = request.json(&json!({"grace_seconds": 3600})).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        });
    }
    let answers = calls.join_all().await;
    let won: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::OK).map(|(_, a)| a).collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (status, answer) in &answers {
        assert!(
            [StatusCode::OK, StatusCode::CONFLICT, StatusCode::UNAUTHORIZED].contains(status),
            "{status}: {answer}"
        );
    }
    let winner = won[0]["token"].as_str().unwrap();
    assert_eq!(
        rotate(app, winner, Some(json!({"grace_seconds": 0}))).await.0,
        StatusCode::OK,
        "the winner's is current"
    );
}

#[tokio::test]
async fn concurrent_rotations_with_one_token_let_exactly_one_through_embedded() {
    concurrent_rotations_with_one_token_let_exactly_one_through(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn concurrent_rotations_with_one_token_let_exactly_one_through_on_dynamodb() {
    let Some(app) = on_dynamo().await else { return };
    concurrent_rotations_with_one_token_let_exactly_one_through(&app).await;
}

/// A tenant item written before rotation existed (no revision attribute, no
/// rotation fields in its document) still authenticates, rotates, and
/// takes a revision from then on.
#[tokio::test]
async fn a_tenant_stored_before_rotation_existed_rotates_on_dynamodb() {
    let Some(store) = fresh_store().await else { return };
    let app = TestApp::spawn_on(Arc::new(store.clone())).await;
    let now = app.clock.now();
    let doc = json!({"id": "acme", "provider": "generic", "webhook_secret": "whsec-old-0123456789",
                     "actions_url": null, "crm": {}, "token_hash": hash_token("sht_legacy"),
                     "created_at": now, "updated_at": now});
    store
        .client()
        .put_item()
        .table_name(store.table())
        .item("pk", AttributeValue::S("T#acme".into()))
        .item("sk", AttributeValue::S("TENANT".into()))
        .item("doc", AttributeValue::S(doc.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(opens(&app, "sht_legacy").await, StatusCode::OK);
    let second = rotated(&app, "sht_legacy", 60).await;
    assert_eq!(opens(&app, &second).await, StatusCode::OK);
    assert_eq!(opens(&app, "sht_legacy").await, StatusCode::OK, "within its grace");
    let item = store
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("T#acme".into()))
        .key("sk", AttributeValue::S("TENANT".into()))
        .send()
        .await
        .unwrap();
    let revision = item.item().and_then(|i| i.get("revision")).and_then(|v| v.as_n().ok()).cloned();
    assert_eq!(revision.as_deref(), Some("1"), "the first save gives it a revision");
}

/// One contact of acme's leaderboard, after `cursor`.
async fn page(app: &TestApp, cursor: Option<String>) -> (StatusCode, Value) {
    let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
    app.admin(Method::GET, &format!("/v1/tenants/acme/contacts?profile=engagement&limit=1{after}"), None).await
}

/// Leaderboard cursors are signed with a key the token's hash gives: one
/// issued before a rotation still pages within the grace, and not after.
#[tokio::test]
async fn a_cursor_issued_before_a_rotation_pages_until_the_grace_ends() {
    let app = TestApp::spawn().await;
    let first = app.seeds_tenant("acme", None).await;
    for contact in ["ana", "bo", "cy"] {
        app.post_webhook("acme", &interaction(&format!("e-{contact}"), "email.opened", contact)).await;
    }
    let page = |cursor: Option<String>| page(&app, cursor);
    let (_, answer) = page(None).await;
    let cursor = answer["next_cursor"].as_str().unwrap().to_owned();
    rotated(&app, &first, 60).await;
    let (status, answer) = page(Some(cursor.clone())).await;
    assert_eq!(status, StatusCode::OK, "within the grace: {answer}");
    assert_eq!(answer["contacts"].as_array().map(Vec::len), Some(1));
    let (status, answer) = page(answer["next_cursor"].as_str().map(str::to_owned)).await;
    assert_eq!(status, StatusCode::OK, "a cursor issued after the rotation: {answer}");
    app.advance(TimeDelta::seconds(60));
    assert_eq!(page(Some(cursor)).await.0, StatusCode::BAD_REQUEST, "after the grace, an old cursor is refused");
}

#[tokio::test]
async fn the_token_a_creation_answers_is_not_cached_on_the_way() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .put(format!("{}/v1/tenants/acme", app.base))
        .bearer_auth(crate::support::spawn_app::ADMIN_TOKEN)
        .json(&json!({"provider": "generic", "webhook_secret": crate::support::spawn_app::SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer: Value = response.json().await.unwrap();
    assert!(answer["token"].as_str().is_some_and(|t| t.starts_with("sht_")), "{answer}");
}
