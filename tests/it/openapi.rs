//! `GET /openapi.json`: the document is OpenAPI 3 whose references all
//! resolve, it names every route the router serves and only those, and
//! every operation's auth and error answers are stated.
//!
//! "Every route" is proved two ways: no module of `src/http` registers a
//! route except through `utoipa_axum::routes!` (which documents it in the
//! same step), and every documented operation is answered by its handler
//! while every other method on a documented path is 405.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::spawn_app::{TestApp, ADMIN_TOKEN};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn document(app: &TestApp) -> Value {
    let response = app.http.get(format!("{}/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "served without a token");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    response.json().await.unwrap()
}

/// Every `(path, method, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, &'static str, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                out.push((path.clone(), method, operation.clone()));
            }
        }
    }
    out
}

/// Every `$ref` anywhere in `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => refs(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[tokio::test]
async fn the_document_is_openapi_3_and_every_reference_resolves() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["title"], "scorehook");
    assert!(doc["info"]["version"].is_string());
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20, "references are used: {}", found.len());
    for reference in &found {
        assert!(resolve(&doc, reference).is_some(), "{reference} does not resolve");
    }
    let mut ids = BTreeSet::new();
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(ids.insert(id.clone()), "{method} {path}: operationId {id:?} is not unique");
        let responses = operation["responses"].as_object().unwrap();
        assert!(responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')), "{method} {path}: no success");
        // Every `{name}` of the template is a declared path parameter, and no other is.
        let in_template: BTreeSet<String> =
            path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}').map(str::to_owned)).collect();
        let declared: BTreeSet<String> = operation["parameters"]
            .as_array()
            .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        assert_eq!(in_template, declared, "{method} {path}");
    }
}

#[tokio::test]
async fn every_operation_states_its_auth_and_its_error_answers() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    // Admin is the default; only the public operations and the webhook say otherwise.
    assert_eq!(doc["security"], serde_json::json!([{"admin_token": []}]));
    assert_eq!(doc["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");
    for (path, method, operation) in operations(&doc) {
        let responses = operation["responses"].as_object().unwrap();
        // The tenants' routes and the operator's own (`/v1/quarantine`, `/metrics`) need the admin token.
        if path.starts_with("/v1/tenants/") || path == "/v1/quarantine" || path == "/metrics" {
            assert!(operation.get("security").is_none(), "{method} {path} must need the admin token");
            for status in ["401", "404", "500", "503"] {
                assert!(responses.contains_key(status), "{method} {path}: no {status}");
            }
        } else if path.starts_with("/v1/webhooks/") {
            let schemes: Vec<&str> = operation["security"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                .collect();
            for scheme in ["generic_signature", "hubspot_signature", "highlevel_signature", "webhook_key"] {
                assert!(schemes.contains(&scheme), "{scheme} is not among {schemes:?}");
                assert!(doc["components"]["securitySchemes"][scheme].is_object(), "{scheme}");
            }
            for status in ["400", "401", "404", "413", "422", "429", "503"] {
                assert!(responses.contains_key(status), "{method} {path}: no {status}");
            }
            assert!(responses["429"]["headers"]["Retry-After"].is_object(), "429 says when to retry");
        } else {
            assert_eq!(operation["security"], serde_json::json!([{}]), "{method} {path} is public");
        }
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
            }
            if status == "503" {
                assert!(response["headers"]["Retry-After"].is_object(), "{method} {path}: 503 without Retry-After");
            }
        }
    }
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(error["required"], serde_json::json!(["code", "message"]));
}

/// A concrete URL for a path template.
fn concrete(template: &str) -> String {
    template
        .replace("{provider}", "generic")
        .replace("{tenant}", "acme")
        .replace("{profile}", "engagement")
        .replace("{trigger}", "hot")
        .replace("{action}", "act_1")
        .replace("{id}", "c_1")
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_is() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 25, "{} operations", ops.len());
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = format!("{}{}", app.base, concrete(path));
        for method in METHODS {
            let response = app
                .http
                .request(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            if item.get(method).is_some() {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert!(!body.contains("no such route"), "{method} {path} fell through to the fallback");
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is served but not documented");
            }
        }
    }
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_route_is_registered_except_with_its_operation() {
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"), &mut files);
    assert!(files.len() > 10, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // `OpenApiRouter::new()` is the one way in; a plain axum `Router::new()` is not.
        let text = text.replace("OpenApiRouter::new()", "OpenApiRouter");
        for forbidden in [".route(", ".route_service(", ".nest(", ".nest_service(", "Router::new()", "routing::"] {
            assert!(
                !text.contains(forbidden),
                "{} uses `{forbidden}`: register routes with `utoipa_axum::routes!` so /openapi.json documents them",
                file.display()
            );
        }
    }
}

/// Schemathesis-style regression: a path segment that does not decode (`%FF`
/// is not UTF-8) once got axum's plain-text 400, an answer the document does
/// not have. Every operation with a path parameter now answers it in the
/// JSON error shape, with a status the operation documents.
#[tokio::test]
async fn an_undecodable_path_segment_gets_a_documented_json_error_on_every_operation() {
    let app = TestApp::spawn().await;
    app.create_tenant("acme", None).await;
    let doc = document(&app).await;
    let mut tried = 0;
    for (path, method, operation) in operations(&doc) {
        let params: Vec<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{')?.strip_suffix('}')).filter(|p| *p != "tenant").collect();
        for param in params {
            let url = format!("{}{}", app.base, concrete(&path.replace(&format!("{{{param}}}"), "%FF")));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app.http.request(method.clone(), &url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
            let status = response.status();
            let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
            let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
            assert_eq!(content_type, "application/json", "{method} {path} with {param}=%FF");
            assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
            assert!(operation["responses"].get(status.as_str()).is_some(), "{method} {path}: {status} undocumented");
            tried += 1;
        }
    }
    assert!(tried >= 15, "{tried} operations tried");
}
