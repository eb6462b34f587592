//! A local HTTP server standing in for a CRM: it records every request into
//! a channel and answers with statuses the test scripts (204 once the script
//! runs out), with a `Retry-After` header on errors when the test sets one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Makes the next request wait for the test's go-ahead before answering.
type Gate = Arc<Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>;

#[derive(Clone)]
struct Shared {
    sender: mpsc::UnboundedSender<Recorded>,
    script: Arc<Mutex<VecDeque<u16>>>,
    gate: Gate,
    retry_after: Arc<Mutex<Option<String>>>,
}

pub struct RecordingCrm {
    pub url: String,
    received: tokio::sync::Mutex<mpsc::UnboundedReceiver<Recorded>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    gate: Gate,
    retry_after: Arc<Mutex<Option<String>>>,
}

impl RecordingCrm {
    pub async fn start() -> Self {
        let (sender, received) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let gate: Gate = Arc::default();
        let retry_after: Arc<Mutex<Option<String>>> = Arc::default();
        let shared = Shared {
            sender,
            script: Arc::clone(&script),
            gate: Arc::clone(&gate),
            retry_after: Arc::clone(&retry_after),
        };
        let router = Router::new().route("/actions", post(record)).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/actions", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { url, received: tokio::sync::Mutex::new(received), script, gate, retry_after }
    }

    /// Error answers carry `Retry-After: <value>` from now on.
    pub fn retry_after(&self, value: &str) {
        *self.retry_after.lock().unwrap() = Some(value.to_owned());
    }

    /// The next request is recorded at once but answered only when the returned sender fires.
    pub fn hold_next(&self) -> tokio::sync::oneshot::Sender<()> {
        let (release, wait) = tokio::sync::oneshot::channel();
        *self.gate.lock().unwrap() = Some(wait);
        release
    }

    /// The next requests get these statuses, in order.
    pub fn respond_with(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses.iter().copied());
    }

    /// Every request received so far.
    pub async fn received(&self) -> Vec<Recorded> {
        let mut rx = self.received.lock().await;
        let mut all = Vec::new();
        while let Ok(request) = rx.try_recv() {
            all.push(request);
        }
        all
    }

    /// Awaits the next request (for paths driven by the background executor).
    pub async fn next(&self, within: Duration) -> Recorded {
        let mut rx = self.received.lock().await;
        tokio::time::timeout(within, rx.recv()).await.expect("no request arrived in time").expect("channel closed")
    }
}

async fn record(State(shared): State<Shared>, headers: HeaderMap, raw: Bytes) -> (StatusCode, HeaderMap) {
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let status = StatusCode::from_u16(shared.script.lock().unwrap().pop_front().unwrap_or(204)).unwrap();
    let gate = shared.gate.lock().unwrap().take();
    let _ = shared.sender.send(Recorded { headers, raw, body });
    if let Some(gate) = gate {
        let _ = gate.await;
    }
    let mut answer = HeaderMap::new();
    if let Some(value) = shared.retry_after.lock().unwrap().clone().filter(|_| !status.is_success()) {
        answer.insert("retry-after", value.parse().unwrap());
    }
    (status, answer)
}
