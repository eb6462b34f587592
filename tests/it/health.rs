//! Liveness and readiness: `/healthz` answers whatever the store does;
//! `/readyz` answers 503 (with `Retry-After`) when the store cannot be read.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use scorehook::store::dynamodb::DynamoStore;

use crate::support::TestApp;

#[tokio::test]
async fn readyz_reads_the_store_and_healthz_does_not() {
    let up = TestApp::spawn().await;
    let ready = up.http.get(format!("{}/readyz", up.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap(), json!({"status": "ready"}));

    // A DynamoDB endpoint where nothing listens: the store is gone.
    let gone = DynamoStore::connect("scorehook-gone", Some("http://127.0.0.1:1")).await;
    let down = TestApp::spawn_on(Arc::new(gone.clone())).await;
    let not_ready = down.http.get(format!("{}/readyz", down.base)).send().await.unwrap();
    assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The route is public: probes right after it reuse its answer instead of reading again.
    let reads = gone.metrics().calls;
    for _ in 0..3 {
        let again = down.http.get(format!("{}/readyz", down.base)).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(gone.metrics().calls, reads, "no store read for the probes within a second");
    assert!(not_ready.headers().contains_key("retry-after"));
    let body: serde_json::Value = not_ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable");
    let alive = down.http.get(format!("{}/healthz", down.base)).send().await.unwrap();
    assert_eq!(alive.status(), StatusCode::OK, "liveness does not touch the store");
}
