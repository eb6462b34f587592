//! `POST /v1/webhooks/generic/{tenant}`: every rejection has its status and
//! stores nothing; accepted bodies are scored once.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use scorehook::clock::Clock;
use scorehook::http::extract::BODY_READ_TIMEOUT_VAR;
use serde_json::{json, Value};

use crate::support::process::Server;
use crate::support::spawn_app::SECRET;
use crate::support::{interaction, TestApp};

/// Proves a rejected delivery stored nothing: the contact has no state, and
/// the same event id is still new (its dedupe marker was never written).
async fn assert_nothing_stored(app: &TestApp, event: &Value) {
    let contact = event["contact_id"].as_str().unwrap();
    assert_eq!(app.score("acme", contact).await, None, "the contact must not exist");
    let (status, body) = app.post_webhook("acme", event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": 1, "duplicates": 0}), "the rejected event must not count as seen");
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn accepts_one_interaction_or_an_array_and_counts_duplicates() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let (status, body) = app.post_webhook("acme", &interaction("e1", "email.opened", "jhon")).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 1, "duplicates": 0})));

    let batch = json!([
        interaction("e1", "email.opened", "jhon"),
        interaction("e2", "email.opened", "jhon"),
        interaction("e2", "email.opened", "jhon"),
        interaction("e3", "email.opened", "ana")
    ]);
    let (status, body) = app.post_webhook("acme", &batch).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"accepted": 2, "duplicates": 2})));
    assert_eq!(app.score("acme", "jhon").await, Some(json!(2)));
    assert_eq!(app.score("acme", "ana").await, Some(json!(1)));
}

#[tokio::test]
async fn a_wrong_secret_is_401_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let event = interaction("e1", "email.opened", "jhon");
    let (status, body) = app.post_raw("acme", "not-the-secret-at-all", &serde_json::to_vec(&event).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    assert_nothing_stored(&app, &event).await;
}

#[tokio::test]
async fn a_stale_or_missing_signature_is_401_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let event = interaction("e1", "email.opened", "jhon");
    let bytes = serde_json::to_vec(&event).unwrap();
    let old = app.clock.now() - chrono::TimeDelta::seconds(301);
    let (timestamp, sig) = scorehook::crm::signature::sign(crate::support::spawn_app::SECRET, old, &bytes);
    let (status, body) = app.post_signed("acme", &bytes, &timestamp, &sig).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The same answer as for an unknown tenant: the detail is logged, not told.
    assert_eq!(body["error"]["message"], "unknown tenant or bad signature (the server log says which)", "{body}");

    let response = app.http.post(format!("{}/v1/webhooks/generic/acme", app.base)).body(bytes).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_nothing_stored(&app, &event).await;
}

#[tokio::test]
async fn an_unknown_tenant_is_refused_like_a_bad_signature() {
    let app = TestApp::spawn().await;
    let (status, body) = app.post_webhook("nobody", &interaction("e1", "email.opened", "jhon")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
}

/// Webhooks to made-up tenant ids cost one store read per id per refresh,
/// not one each; creating the tenant makes it known at once.
#[tokio::test]
async fn an_unknown_tenant_is_remembered_briefly_and_known_as_soon_as_it_is_created() {
    let Some(store) = crate::support::dynamo::fresh_store().await else { return };
    let app = TestApp::spawn_on(std::sync::Arc::new(store.clone())).await;
    let probe = interaction("e1", "email.opened", "jhon");
    assert_eq!(app.post_webhook("ghost", &probe).await.0, StatusCode::UNAUTHORIZED);
    let before = store.metrics().calls;
    for _ in 0..5 {
        assert_eq!(app.post_webhook("ghost", &probe).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(store.metrics().calls, before, "the repeats were answered from the cache");
    app.seeds_tenant("ghost", None).await;
    assert_eq!(app.post_webhook("ghost", &probe).await.0, StatusCode::ACCEPTED, "known once created");
}

#[tokio::test]
async fn malformed_json_is_400_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    for bad in [&b"{\"id\": \"e1\", "[..], b"", b"not json"] {
        let (status, body) = app.post_raw("acme", crate::support::spawn_app::SECRET, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&body, "malformed_json");
    }
    assert_nothing_stored(&app, &interaction("e1", "email.opened", "jhon")).await;
}

#[tokio::test]
async fn a_body_over_256_kib_is_413_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let mut event = interaction("e1", "email.opened", "jhon");
    event["attributes"] = json!({"padding": "x".repeat(256 * 1024)});
    let (status, body) = app.post_webhook("acme", &event).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, "payload_too_large");
    assert_nothing_stored(&app, &interaction("e1", "email.opened", "jhon")).await;
}

#[tokio::test]
async fn json_that_is_not_an_interaction_is_422_and_stores_nothing_of_the_batch() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let good = interaction("e1", "email.opened", "jhon");
    let cases = [
        json!([good.clone(), interaction("e2", "email.exploded", "jhon")]),
        json!([good.clone(), {"id": "e3", "type": "email.opened"}]),
        json!({"id": "e4", "type": "email.opened", "contact_id": "has space", "occurred_at": "2026-11-22T10:00:00Z"}),
        json!(42),
        json!([]),
    ];
    for case in cases {
        let (status, body) = app.post_webhook("acme", &case).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {body}");
        assert_error(&body, "invalid_request");
    }
    assert_nothing_stored(&app, &good).await;
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after_and_nothing_stored() {
    // A burst of two, refilled so slowly that the third request is over.
    let app = TestApp::spawn_with_inbound_limit(scorehook::crm::limiter::Rate { burst: 2.0, per_second: 0.01 }).await;
    app.seeds_tenant("acme", None).await;
    app.seeds_tenant("other", None).await;
    // Forged requests are refused before the limit: they use up none of it.
    for _ in 0..3 {
        let forged = serde_json::to_vec(&interaction("forged", "email.opened", "jhon")).unwrap();
        assert_eq!(app.post_raw("acme", "not-the-secret-0123", &forged).await.0, StatusCode::UNAUTHORIZED);
    }
    for id in ["e1", "e2"] {
        assert_eq!(app.post_webhook("acme", &interaction(id, "email.opened", "jhon")).await.0, StatusCode::ACCEPTED);
    }
    let third = interaction("e3", "email.opened", "jhon");
    let (timestamp, sig) =
        scorehook::crm::signature::sign(SECRET, app.clock.now(), &serde_json::to_vec(&third).unwrap());
    let response = app
        .http
        .post(format!("{}/v1/webhooks/generic/acme", app.base))
        .header(scorehook::crm::signature::TIMESTAMP_HEADER, timestamp)
        .header(scorehook::crm::signature::SIGNATURE_HEADER, sig)
        .body(serde_json::to_vec(&third).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u32 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 90, "the bucket refills one request per 100 s: {wait}");
    assert_eq!(app.score("acme", "jhon").await, Some(json!(2)), "the third did not score");
    let (status, _) = app.post_webhook("other", &interaction("e1", "email.opened", "ana")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "another tenant is not held back");
}

/// A real server with a one-second body-read timeout (`SCOREHOOK_BODY_READ_TIMEOUT_SECS`).
#[tokio::test]
async fn a_body_that_stops_arriving_is_refused_after_the_read_timeout_and_stores_nothing() {
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::TempDir::new().unwrap();
    let server = Server::start_with_env(dir.path(), &[(BODY_READ_TIMEOUT_VAR, "1")]).await;
    server.seeds_tenant(None).await;

    let event = interaction("slow-1", "email.opened", "jhon");
    let body = serde_json::to_vec(&event).unwrap();
    let (timestamp, sig) = scorehook::crm::signature::sign(SECRET, chrono::Utc::now(), &body);
    let addr = server.base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/webhooks/generic/acme HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-scorehook-timestamp: {timestamp}\r\nx-scorehook-signature: {sig}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    // Then nothing more: only the server's own timeout can end the request.
    // The safety net is shorter than the 15 s default, so the answer comes
    // in time only if the configured second is the one in force.
    let answer = tokio::time::timeout(Duration::from_secs(10), read_response(&mut stream))
        .await
        .expect("the server must give up on the body by itself");
    let (head, json) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let json: Value = serde_json::from_str(json).unwrap();
    assert_error(&json, "malformed_request");

    let (status, _) = server.admin(Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the contact must not exist");
    assert_eq!(server.webhook(&event).await, json!({"accepted": 1, "duplicates": 0}), "the event was never seen");
    server.kill().await;
}

/// One HTTP/1.1 response, read until its `content-length` body is whole.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    loop {
        let mut chunk = [0; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        bytes.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned));
            let whole = length.and_then(|l| l.trim().parse::<usize>().ok()).is_some_and(|l| body.len() >= l);
            if whole || n == 0 {
                return text;
            }
        }
        assert!(n > 0, "the connection closed before an answer: {text}");
    }
}

#[tokio::test]
async fn an_invalid_body_read_timeout_stops_the_server_at_start() {
    let dir = tempfile::TempDir::new().unwrap();
    for bad in ["0", "2s"] {
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_scorehook"))
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(dir.path())
            .env(BODY_READ_TIMEOUT_VAR, bad)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), run).await.expect("it must not serve").unwrap();
        assert!(!output.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(BODY_READ_TIMEOUT_VAR) && stderr.contains(bad), "{bad}: {stderr}");
    }
}

#[tokio::test]
async fn an_operator_token_shorter_than_32_characters_stops_the_server_at_start_and_writes_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_scorehook"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("SCOREHOOK_ADMIN_TOKEN", "dev-admin-token")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run).await.expect("it must not serve").unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SCOREHOOK_ADMIN_TOKEN is 15 characters long") && stderr.contains("at least 32"),
        "{stderr}"
    );
    assert!(!stderr.contains("dev-admin-token"), "the token itself is not printed: {stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no store was created");
}
