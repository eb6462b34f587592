//! A local stand-in for a CRM's REST API: records every call (method, path,
//! query, headers, body) and answers from a script the test writes, per
//! method and path: one-shot answers first, then standing ones, else
//! `200 {}`. Connector tests point `crm.base_url` at it.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub raw: Bytes,
    /// The body as JSON; `Null` if empty or not JSON.
    pub body: Value,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Debug, Clone)]
struct Answer {
    method: String,
    path: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    once: bool,
}

#[derive(Clone, Default)]
struct Shared {
    calls: Arc<Mutex<Vec<Call>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
    /// Rung after every recorded call, for tests awaiting a background delivery.
    bell: Arc<tokio::sync::Notify>,
}

pub struct FakeCrm {
    /// `http://127.0.0.1:<port>`: the value for `crm.base_url`.
    pub url: String,
    shared: Shared,
}

impl FakeCrm {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let router = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { url, shared }
    }

    /// Every `method path` call from now on gets this answer (the latest standing answer wins).
    pub fn on(&self, method: &str, path: &str, status: u16, body: Value) {
        self.add(method, path, status, &[], body, false);
    }

    /// The next `method path` call gets this answer, with these headers; then the script moves on.
    pub fn once(&self, method: &str, path: &str, status: u16, headers: &[(&str, &str)], body: Value) {
        self.add(method, path, status, headers, body, true);
    }

    fn add(&self, method: &str, path: &str, status: u16, headers: &[(&str, &str)], body: Value, once: bool) {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let answer = Answer { method: method.into(), path: path.into(), status, headers, body, once };
        self.shared.answers.lock().unwrap().push(answer);
    }

    /// Every call received so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Awaits the first call to `method path` (made by a background executor), up to 30 s.
    pub async fn called(&self, method: &str, path: &str) -> Call {
        let wait = async {
            loop {
                let notified = self.shared.bell.notified();
                if let Some(call) = self.calls_to(method, path).into_iter().next() {
                    return call;
                }
                notified.await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait).await.expect("the call never came")
    }

    /// The calls received so far to `method path`.
    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.method == method && c.path == path).collect()
    }
}

async fn answer(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, raw: Bytes) -> Response {
    let call = Call {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
    };
    let chosen = {
        let mut answers = shared.answers.lock().unwrap();
        let matches = |a: &Answer| a.method == call.method && a.path == call.path;
        match answers.iter().position(|a| a.once && matches(a)) {
            Some(i) => Some(answers.remove(i)),
            None => answers.iter().rev().find(|a| !a.once && matches(a)).cloned(),
        }
    };
    shared.calls.lock().unwrap().push(call);
    shared.bell.notify_waiters();
    let Some(chosen) = chosen else { return (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response() };
    let mut response = (StatusCode::from_u16(chosen.status).unwrap(), axum::Json(chosen.body)).into_response();
    for (name, value) in chosen.headers {
        response.headers_mut().insert(HeaderName::try_from(name).unwrap(), HeaderValue::try_from(value).unwrap());
    }
    response
}
