//! The score builder page through the Lambda entry point: a Function URL
//! request parsed by `lambda_http` and answered by the one router, so the
//! page that `scorehook serve` shows is the one the deployed function shows.
//! (The page's own behaviour is tested in a real browser: tests/ui.)

use std::sync::Arc;

use http_body_util::BodyExt;
use serde_json::json;
use tempfile::TempDir;

use scorehook::app::Local;
use scorehook::clock::ManualClock;
use scorehook::lambda;

use crate::support::spawn_app::start_time;

/// A Function URL (payload v2) GET of `path`, as Lambda hands it over.
fn function_url_get(path: &str) -> String {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "abcdefghijklmnop.lambda-url.eu-west-1.on.aws", "accept": "text/html"},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghijklmnop",
            "domainName": "abcdefghijklmnop.lambda-url.eu-west-1.on.aws", "domainPrefix": "abcdefghijklmnop",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "test"},
            "requestId": "c5a3b6e1-0000-4000-8000-0000000000ui", "routeKey": "$default", "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": 1795860000000_u64
        },
        "isBase64Encoded": false
    })
    .to_string()
}

#[tokio::test]
async fn the_function_serves_the_page_and_its_assets_without_a_token() {
    let dir = TempDir::new().unwrap();
    let local = Local::open(dir.path(), Arc::new(ManualClock::new(start_time())), None).unwrap();
    let router = scorehook::http::router(local.service.clone());
    for (path, content_type, marker) in [
        ("/ui", "text/html; charset=utf-8", "Sign in"),
        ("/ui/app.js", "text/javascript; charset=utf-8", "/v1/tenants/"),
        ("/ui/app.css", "text/css; charset=utf-8", ".chart"),
    ] {
        let request = lambda_http::request::from_str(&function_url_get(path)).unwrap();
        let response = lambda::http::handle(&router, request).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert!(headers["content-security-policy"].to_str().unwrap().contains("connect-src 'self'"), "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(marker), "{path}");
    }
    // The page is public, the data is not: the API behind it still wants a token.
    let request = lambda_http::request::from_str(&function_url_get("/v1/tenants/acme/profiles")).unwrap();
    assert_eq!(lambda::http::handle(&router, request).await.status(), 401);
}
