//! The admin API: tenants and tokens, profiles and their lifecycle,
//! triggers, the leaderboard, contact scores and manual adjustments.

use reqwest::{Method, StatusCode};
use scorehook::clock::Clock;
use serde_json::{json, Value};

use crate::support::{interaction, seeds_profile, TestApp, ADMIN_TOKEN};

#[tokio::test]
async fn creating_a_tenant_returns_its_token_once_and_reads_never_show_secrets() {
    let app = TestApp::spawn().await;
    let body = json!({"provider": "generic", "webhook_secret": "whsec-very-secret-1234",
        "actions_url": "http://127.0.0.1:9/actions", "crm": {"access_token": "crm-credential-xyz", "score_field": "lead"}});
    let (status, created) = app.admin(Method::PUT, "/v1/tenants/acme", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("sht_") && token.len() > 60, "{created}");

    let (status, updated) = app.admin(Method::PUT, "/v1/tenants/acme", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(updated.get("token").is_none(), "the token is shown only on creation");

    let (status, read) = app.call(Method::GET, "/v1/tenants/acme", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["crm"], json!({"score_field": "lead"}));
    let text = read.to_string();
    for secret in ["whsec-very-secret-1234", "crm-credential-xyz", token] {
        assert!(!text.contains(secret), "{secret} leaked in {text}");
    }
}

#[tokio::test]
async fn tenant_tokens_work_for_their_own_tenant_only() {
    let app = TestApp::spawn().await;
    let token_a = app.seeds_tenant("tenant-a", None).await;
    app.seeds_tenant("tenant-b", None).await;
    app.post_webhook("tenant-b", &interaction("e1", "email.opened", "jhon")).await;

    let (status, _) = app.call(Method::GET, "/v1/tenants/tenant-a/profiles", Some(&token_a), None).await;
    assert_eq!(status, StatusCode::OK);

    let b = "/v1/tenants/tenant-b";
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, b.to_owned(), None),
        (Method::PUT, b.to_owned(), Some(json!({"provider": "generic", "actions_url": "http://evil.test/"}))),
        (Method::GET, format!("{b}/profiles"), None),
        (Method::PUT, format!("{b}/profiles/engagement"), Some(json!({"name": "hijack", "rules": []}))),
        (Method::POST, format!("{b}/profiles/engagement/archive"), None),
        (Method::PUT, format!("{b}/triggers/hot"), Some(crate::support::seeds_trigger())),
        (Method::GET, format!("{b}/contacts?profile=engagement"), None),
        (Method::GET, format!("{b}/contacts/jhon/scores"), None),
        (Method::POST, format!("{b}/contacts/jhon/scores/engagement"), Some(json!({"op": "set", "points": 100}))),
        (Method::GET, format!("{b}/actions"), None),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = app.call(method.clone(), &path, Some(&token_a), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {answer}");
    }
    assert_eq!(app.score("tenant-b", "jhon").await, Some(json!(1)), "tenant-b's score is untouched");
    let (_, profile) = app.admin(Method::GET, &format!("{b}/profiles/engagement"), None).await;
    assert_eq!(profile["status"], "published", "tenant-b's profile was neither edited nor archived");
    assert_eq!(profile["draft"], Value::Null);
}

#[tokio::test]
async fn missing_or_wrong_tokens_are_401_and_only_the_operator_creates_tenants() {
    let app = TestApp::spawn().await;
    let token = app.create_tenant("acme", None).await;
    for bad in [None, Some("nope"), Some("sht_0000")] {
        let (status, body) = app.call(Method::GET, "/v1/tenants/acme/profiles", bad, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let response =
        app.http.put(format!("{}/v1/tenants/acme/profiles/p", app.base)).body("{not json").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the token is checked before the body is read");
    let new = json!({"provider": "generic", "webhook_secret": "whsec-0123456789abcdef"});
    let (status, _) = app.call(Method::PUT, "/v1/tenants/other", Some(&token), Some(new)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.call(Method::GET, "/v1/tenants/other", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the tenant was not created");
}

#[tokio::test]
async fn tenant_input_is_validated() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"provider": "generic"}), "webhook_secret"),
        (json!({"provider": "generic", "webhook_secret": "short"}), "webhook_secret"),
        (
            json!({"provider": "generic", "webhook_secret": "whsec-0123456789abcdef", "actions_url": "ftp://x"}),
            "actions_url",
        ),
    ];
    for (body, path) in cases {
        let (status, answer) = app.admin(Method::PUT, "/v1/tenants/acme", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["path"], path, "{answer}");
    }
    let (status, _) = app.admin(Method::PUT, "/v1/tenants/acme", Some(json!({"provider": "carrier-pigeon"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.admin(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no rejected body created the tenant");
}

#[tokio::test]
async fn drafts_never_score_published_profiles_do_and_archived_ones_stop() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let profile = "/v1/tenants/acme/profiles/engagement";
    let (status, draft) = app.admin(Method::PUT, profile, Some(seeds_profile())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((draft["status"].clone(), draft["version"].clone()), (json!("draft"), json!(1)));

    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    assert_eq!(app.score("acme", "jhon").await, None, "a draft never scores");

    let (_, published) = app.admin(Method::POST, &format!("{profile}/publish"), None).await;
    assert_eq!(published["status"], "published");
    app.post_webhook("acme", &interaction("e2", "email.opened", "jhon")).await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(1)));

    let mut edited = seeds_profile();
    edited["rules"][0]["points"] = json!(10);
    let (status, record) = app.admin(Method::PUT, profile, Some(edited)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((record["version"].clone(), record["published_version"].clone()), (json!(2), json!(1)));
    app.post_webhook("acme", &interaction("e3", "email.opened", "jhon")).await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(2)), "the edit waits for publish");

    app.admin(Method::POST, &format!("{profile}/publish"), None).await;
    app.post_webhook("acme", &interaction("e4", "email.opened", "jhon")).await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(12)));

    let (_, archived) = app.admin(Method::POST, &format!("{profile}/archive"), None).await;
    assert_eq!(archived["status"], "archived");
    app.post_webhook("acme", &interaction("e5", "email.opened", "jhon")).await;
    assert_eq!(app.score("acme", "jhon").await, None, "archived profiles leave listings and stop scoring");
    let (_, board) = app.admin(Method::GET, "/v1/tenants/acme/contacts?profile=engagement", None).await;
    assert_eq!(board["contacts"], json!([]));
    app.admin(Method::POST, &format!("{profile}/publish"), None).await;
    assert_eq!(
        app.score("acme", "jhon").await,
        Some(json!(12)),
        "re-published, its history is back and e5 never scored"
    );
    let (_, board) = app.admin(Method::GET, "/v1/tenants/acme/contacts?profile=engagement", None).await;
    assert_eq!(board["contacts"][0]["score"], 12);
    app.admin(Method::POST, &format!("{profile}/archive"), None).await;

    let (_, list) = app.admin(Method::GET, "/v1/tenants/acme/profiles", None).await;
    assert_eq!(list["profiles"][0]["id"], "engagement");
}

#[tokio::test]
async fn invalid_profiles_and_triggers_are_422_with_the_field_path() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let profile = "/v1/tenants/acme/profiles/engagement";
    let bad_rule =
        json!({"name": "E", "rules": [{"id": "r", "points": 1, "when": {"attributes": {"url": {"matches": "("}}}}]});
    let (status, body) = app.admin(Method::PUT, profile, Some(bad_rule)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["path"], "rules[0].when.attributes.url.matches");

    let (status, body) =
        app.admin(Method::PUT, profile, Some(json!({"name": "E", "rules": [{"id": "r", "points": "lots"}]}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["path"], "rules[0].points", "serde errors name the field too");

    let response =
        app.http.put(format!("{}{profile}", app.base)).bearer_auth(ADMIN_TOKEN).body("{nope").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // serde would read a struct from an array of its fields in order.
    let positional = json!(["E", [{"id": "r", "points": 1, "when": {"type": "email.opened"}}]]);
    let (status, body) = app.admin(Method::PUT, profile, Some(positional)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["message"], "the body must be a JSON object", "{body}");

    let (status, _) = app.admin(Method::GET, profile, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no rejected body created the profile");

    let (status, body) = app.admin(Method::POST, "/v1/tenants/acme/token/rotate", Some(json!([]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an optional body must be an object too: {body}");

    let (status, body) =
        app.admin(Method::PUT, "/v1/tenants/acme/triggers/hot", Some(crate::support::seeds_trigger())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a trigger on a missing profile");
    assert_eq!(body["error"]["path"], "when.score.profile");
    let (status, _) = app.admin(Method::POST, "/v1/tenants/acme/profiles/nope/publish", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_leaderboard_sorts_filters_and_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let scores = [
        ("c1", json!(5)),
        ("c2", json!(-3)),
        ("c3", json!(12)),
        ("c4", json!(5)),
        ("c5", json!(0)),
        ("c6", json!(7.5)),
        ("c7", json!(100)),
    ];
    for (contact, points) in scores {
        let path = format!("/v1/tenants/acme/contacts/{contact}/scores/engagement");
        let (status, body) = app.admin(Method::POST, &path, Some(json!({"op": "set", "points": points}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let app = &app;
    let page = |query: String| async move {
        let (status, body) = app.admin(Method::GET, &format!("/v1/tenants/acme/contacts?{query}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    };
    let ids = |body: &Value| {
        body["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["contact_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let body = page(format!("profile=engagement&limit=3{cursor}")).await;
        seen.extend(ids(&body));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["c7", "c3", "c6", "c4", "c1", "c5", "c2"], "descending by score, ties by contact id");

    let body = page("profile=engagement&order=asc&min=0&max=7.5".into()).await;
    assert_eq!(ids(&body), ["c5", "c1", "c4", "c6"]);
    assert_eq!(body["contacts"][3]["score"], json!(7.5));
    assert!(body["contacts"][0]["updated_at"].is_string());

    let first = page("profile=engagement&limit=1".into()).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, _) = app
        .admin(Method::GET, &format!("/v1/tenants/acme/contacts?profile=engagement&order=asc&cursor={cursor}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a cursor only works for the listing that issued it");
    let forged = format!("{}{}", &cursor[..cursor.len() - 1], if cursor.ends_with('0') { "1" } else { "0" });
    let (status, body) = app
        .admin(Method::GET, &format!("/v1/tenants/acme/contacts?profile=engagement&limit=1&cursor={forged}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a forged cursor is refused: {body}");
    app.seeds_tenant("other", None).await;
    for contact in ["x1", "x2"] {
        let path = format!("/v1/tenants/other/contacts/{contact}/scores/engagement");
        app.admin(Method::POST, &path, Some(json!({"op": "set", "points": 1}))).await;
    }
    let (_, theirs) = app.admin(Method::GET, "/v1/tenants/other/contacts?profile=engagement&limit=1", None).await;
    let theirs = theirs["next_cursor"].as_str().unwrap();
    let (status, _) = app
        .admin(Method::GET, &format!("/v1/tenants/acme/contacts?profile=engagement&limit=1&cursor={theirs}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "another tenant's cursor is refused");
    for bad in ["profile=engagement&limit=0", "profile=engagement&min=abc", "limit=5"] {
        let (status, _) = app.admin(Method::GET, &format!("/v1/tenants/acme/contacts?{bad}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let (status, _) = app.admin(Method::GET, "/v1/tenants/acme/contacts?profile=ghost", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manual_adjustments_with_expiry_and_reset_show_in_the_ledger() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    let path = "/v1/tenants/acme/contacts/jhon/scores/engagement";
    let steps = [
        (json!({"op": "add", "points": 10}), json!(11)),
        (json!({"op": "subtract", "points": 2.5}), json!(8.5)),
        (json!({"op": "set", "points": 3}), json!(3)),
        (json!({"op": "add", "points": 4, "expires_in": "1h"}), json!(7)),
    ];
    for (body, expected) in steps {
        let (status, answer) = app.admin(Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}: {answer}");
        assert_eq!(answer["score"], expected, "{body}");
    }
    let (_, view) = app.admin(Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    let ledger = view["scores"]["engagement"]["ledger"].as_array().unwrap();
    let rules: Vec<&str> = ledger.iter().map(|e| e["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["opened", "manual.add", "manual.subtract", "manual.set", "manual.add"]);
    assert_eq!(ledger[0]["event_id"], "e1");
    assert!(ledger[4]["expires_at"].is_string());

    app.advance(chrono::TimeDelta::hours(1));
    assert_eq!(app.score("acme", "jhon").await, Some(json!(3)), "the expiring add stopped counting at its instant");

    let (_, reset) = app.admin(Method::POST, path, Some(json!({"op": "reset"}))).await;
    assert_eq!(reset["score"], Value::Null);
    assert_eq!(app.score("acme", "jhon").await, None, "a reset score is empty");

    for (bad, code) in [
        (json!({"op": "add"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"op": "add", "points": -1}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"op": "multiply", "points": 2}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"op": "add", "points": 1, "expires_in": "soon"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, body) = app.admin(Method::POST, path, Some(bad.clone())).await;
        assert_eq!(status, code, "{bad}: {body}");
    }
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/fit", Some(json!({"name": "Fit", "rules": []}))).await;
    let (status, _) = app
        .admin(Method::POST, "/v1/tenants/acme/contacts/jhon/scores/fit", Some(json!({"op": "add", "points": 1})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a draft profile cannot be adjusted");
}

#[tokio::test]
async fn health_and_unknown_routes() {
    let app = TestApp::spawn().await;
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = app.call(Method::GET, "/v2/nothing", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn limits_keep_every_commit_inside_one_dynamodb_transaction() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let profile = json!({"name": "P", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1}]});
    for i in 0..25 {
        let path = format!("/v1/tenants/acme/profiles/p{i}");
        app.admin(Method::PUT, &path, Some(profile.clone())).await;
        let (status, body) = app.admin(Method::POST, &format!("{path}/publish"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/p25", Some(profile.clone())).await;
    let (status, body) = app.admin(Method::POST, "/v1/tenants/acme/profiles/p25/publish", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "the 26th published profile: {body}");
    app.admin(Method::POST, "/v1/tenants/acme/profiles/p0/archive", None).await;
    let (status, _) = app.admin(Method::POST, "/v1/tenants/acme/profiles/p25/publish", None).await;
    assert_eq!(status, StatusCode::OK, "after archiving one there is room");

    let trigger = |actions: usize| {
        json!({"name": "T", "when": {"event": {"type": "email.opened"}},
               "actions": vec![json!({"type": "add_tag", "tag": "t"}); actions]})
    };
    for id in ["t1", "t2", "t3"] {
        let (status, body) =
            app.admin(Method::PUT, &format!("/v1/tenants/acme/triggers/{id}"), Some(trigger(20))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/t4", Some(trigger(1))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "61 actions in all: {body}");
    assert_eq!(body["error"]["path"], "actions");
    let (status, _) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/t3", Some(trigger(19))).await;
    assert_eq!(status, StatusCode::OK, "editing a trigger counts its new actions, not its old ones");
    let (status, _) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/t4", Some(trigger(1))).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn expired_points_leave_the_leaderboard_at_their_instant_and_fire_lt_triggers() {
    let crm = crate::support::RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    app.create_tenant("acme", Some(&crm.url)).await;
    let profile = json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 5, "expires_in": "1h"}]});
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(profile)).await;
    app.admin(Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None).await;
    let cooling = json!({"name": "Cooling", "when": {"score": {"profile": "engagement", "op": "lt", "value": 5}},
        "actions": [{"type": "add_tag", "tag": "cooling"}]});
    app.admin(Method::PUT, "/v1/tenants/acme/triggers/cooling", Some(cooling)).await;
    let mut opened = interaction("e1", "email.opened", "jhon");
    opened["occurred_at"] = json!(app.clock.now());
    app.post_webhook("acme", &opened).await;
    let board = || async {
        let (_, body) = app.admin(Method::GET, "/v1/tenants/acme/contacts?profile=engagement&max=4", None).await;
        body["contacts"].as_array().unwrap().len()
    };
    app.sweep().await;
    assert_eq!(board().await, 0, "5 points: not below 5 yet");
    assert!(crm.received().await.is_empty());

    app.advance(chrono::TimeDelta::hours(1));
    app.sweep().await;
    assert_eq!(board().await, 1, "the leaderboard sees the expiry once swept");
    let (_, listed) = app.admin(Method::GET, "/v1/tenants/acme/contacts?profile=engagement", None).await;
    assert_eq!(listed["contacts"][0]["score"], 0);
    let received = crm.received().await;
    assert_eq!(received.len(), 1, "the drop below 5 fired the lt trigger");
    assert_eq!(received[0].body["params"]["tag"], "cooling");
    app.sweep().await;
    assert!(crm.received().await.is_empty(), "an expiry is settled once");
}

#[tokio::test]
async fn an_adjust_score_action_moves_another_profile_atomically() {
    let crm = crate::support::RecordingCrm::start().await;
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", Some(&crm.url)).await;
    let boost = json!({"name": "Boost", "when": {"score": {"profile": "engagement", "op": "gte", "value": 2}},
        "actions": [{"type": "adjust_score", "profile": "intent", "op": "add", "points": 10}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/boost", Some(boost.clone())).await;
    assert_eq!(
        (status, body["error"]["path"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("actions[0].profile"))
    );

    let intent = json!({"name": "Intent", "rules": []});
    app.admin(Method::PUT, "/v1/tenants/acme/profiles/intent", Some(intent)).await;
    app.admin(Method::POST, "/v1/tenants/acme/profiles/intent/publish", None).await;
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/triggers/boost", Some(boost)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for i in 0..2 {
        app.post_webhook("acme", &interaction(&format!("o{i}"), "email.opened", "jhon")).await;
    }
    let (_, view) = app.admin(Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    assert_eq!(view["scores"]["intent"]["score"], 10);
    assert_eq!(view["scores"]["intent"]["ledger"][0]["rule"], "trigger.boost.add");
    app.drain_outbox().await;
    assert!(crm.received().await.is_empty(), "adjust_score never reaches the CRM");
}
