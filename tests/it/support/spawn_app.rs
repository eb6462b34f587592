//! `TestApp`: scorehook served on 127.0.0.1:0 over a fresh temporary data
//! directory, with a manual clock, plus one helper per endpoint.

use scorehook::clock::Clock;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use scorehook::app::Local;
use scorehook::clock::ManualClock;
use scorehook::crm::egress::Egress;
use scorehook::crm::signature;
use scorehook::outbox::{self, Step};
use scorehook::store::Store;
use scorehook::tenant::Secret;

pub const ADMIN_TOKEN: &str = "test-operator-token-0123456789abcdef";
pub const SECRET: &str = "whsec-test-0123456789";
/// The signing secret of the tenants `create_tenant` makes (Standard Webhooks: 24 bytes of key).
pub const SIGNING_SECRET: &str = "whsec_dGVzdC1zaWduaW5nLWtleS0wMTIzNDU2";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub local: Local,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Whole seconds: signatures carry unix seconds.
pub fn start_time() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

impl TestApp {
    /// A server whose outbox only moves when the test calls `drain_outbox`.
    pub async fn spawn() -> Self {
        Self::spawn_in(TempDir::new().unwrap(), false).await
    }

    /// A server with the background executor running, as `scorehook serve` does.
    pub async fn spawn_with_executor() -> Self {
        Self::spawn_in(TempDir::new().unwrap(), true).await
    }

    pub async fn spawn_in(dir: TempDir, executor: bool) -> Self {
        let clock = Arc::new(ManualClock::new(start_time()));
        let local = Local::open(dir.path(), clock.clone(), Some(Secret::new(ADMIN_TOKEN))).unwrap();
        Self::serve(local.with_egress(Egress::ALLOW_PRIVATE).unwrap(), clock, dir, executor).await
    }

    /// A server whose webhooks are limited per tenant to `rate`.
    pub async fn spawn_with_inbound_limit(rate: scorehook::crm::limiter::Rate) -> Self {
        let dir = TempDir::new().unwrap();
        let clock = Arc::new(ManualClock::new(start_time()));
        let mut local = Local::open(dir.path(), clock.clone(), Some(Secret::new(ADMIN_TOKEN)))
            .unwrap()
            .with_egress(Egress::ALLOW_PRIVATE)
            .unwrap();
        local.service = local.service.with_inbound_limit(scorehook::http::inbound_limit::InboundLimit::new(rate));
        Self::serve(local, clock, dir, false).await
    }

    /// A server over another store (DynamoDB), outbox driven by the test.
    pub async fn spawn_on(store: Arc<dyn Store>) -> Self {
        let clock = Arc::new(ManualClock::new(start_time()));
        let local = Local::new(store, clock.clone(), Some(Secret::new(ADMIN_TOKEN))).unwrap();
        Self::serve(local.with_egress(Egress::ALLOW_PRIVATE).unwrap(), clock, TempDir::new().unwrap(), false).await
    }

    /// A server with the outbound policy as deployed: public `https` targets
    /// only, so the tests' loopback fakes are out of reach.
    pub async fn spawn_public_only() -> Self {
        let (dir, clock) = (TempDir::new().unwrap(), Arc::new(ManualClock::new(start_time())));
        let local = Local::open(dir.path(), clock.clone(), Some(Secret::new(ADMIN_TOKEN))).unwrap();
        Self::serve(local.with_egress(Egress::PUBLIC_ONLY).unwrap(), clock, dir, false).await
    }

    async fn serve(local: Local, clock: Arc<ManualClock>, dir: TempDir, executor: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = local.clone();
        let server = tokio::spawn(async move {
            served
                .serve(listener, executor, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        });
        Self { base, http: reqwest::Client::new(), clock, local, dir, stop: Some(stop), server: Some(server) }
    }

    /// Stops the server and releases the store; returns the data directory for a restart.
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        let TestApp { dir, local, .. } = self;
        drop(local);
        dir
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    /// An admin call with the operator token; returns status and JSON body.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN_TOKEN), body).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a generic tenant; returns its own admin token.
    pub async fn create_tenant(&self, tenant: &str, actions_url: Option<&str>) -> String {
        let body = json!({"provider": "generic", "webhook_secret": SECRET, "actions_url": actions_url,
                          "signing_secret": SIGNING_SECRET});
        let (status, body) = self.admin(Method::PUT, &format!("/v1/tenants/{tenant}"), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// A tenant with the seeds' profile (published) and trigger.
    pub async fn seeds_tenant(&self, tenant: &str, actions_url: Option<&str>) -> String {
        let token = self.create_tenant(tenant, actions_url).await;
        let profile = format!("/v1/tenants/{tenant}/profiles/engagement");
        assert_eq!(self.admin(Method::PUT, &profile, Some(super::seeds_profile())).await.0, StatusCode::CREATED);
        assert_eq!(self.admin(Method::POST, &format!("{profile}/publish"), None).await.0, StatusCode::OK);
        let trigger = format!("/v1/tenants/{tenant}/triggers/hot");
        let (status, body) = self.admin(Method::PUT, &trigger, Some(super::seeds_trigger())).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        token
    }

    /// Posts raw bytes to the generic webhook, signed with `secret` at the clock's now.
    pub async fn post_raw(&self, tenant: &str, secret: &str, body: &[u8]) -> (StatusCode, Value) {
        let (timestamp, sig) = signature::sign(secret, self.clock.now(), body);
        self.post_signed(tenant, body, &timestamp, &sig).await
    }

    pub async fn post_signed(&self, tenant: &str, body: &[u8], timestamp: &str, sig: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/v1/webhooks/generic/{tenant}", self.base))
            .header("content-type", "application/json")
            .header(signature::TIMESTAMP_HEADER, timestamp)
            .header(signature::SIGNATURE_HEADER, sig)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a tenant of a CRM provider with these `crm` settings; returns its admin token.
    pub async fn create_crm_tenant(&self, tenant: &str, provider: &str, crm: Value) -> String {
        let body = json!({"provider": provider, "webhook_secret": SECRET, "crm": crm});
        let (status, body) = self.admin(Method::PUT, &format!("/v1/tenants/{tenant}"), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Posts a provider's webhook as the CRM would: `path_and_query` after
    /// the base (e.g. `/v1/webhooks/hubspot/t1?x=1`), these headers, these exact bytes.
    pub async fn post_provider(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}{path_and_query}", self.base)).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The tenant's tallies of unmapped webhook events, by `<provider>:<kind>`.
    pub async fn unmapped(&self, tenant: &str) -> Value {
        let (status, body) = self.admin(Method::GET, &format!("/v1/tenants/{tenant}/webhooks/unmapped"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["unmapped"].clone()
    }

    pub async fn post_webhook(&self, tenant: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(tenant, SECRET, &serde_json::to_vec(body).unwrap()).await
    }

    /// The contact's score in `engagement`, or `None` if it has none.
    pub async fn score(&self, tenant: &str, contact: &str) -> Option<Value> {
        let (status, body) =
            self.admin(Method::GET, &format!("/v1/tenants/{tenant}/contacts/{contact}/scores"), None).await;
        match status {
            StatusCode::NOT_FOUND => None,
            StatusCode::OK => body["scores"].get("engagement").map(|s| s["score"].clone()),
            other => panic!("scores answered {other}: {body}"),
        }
    }

    pub async fn actions(&self, tenant: &str, status: &str) -> Vec<Value> {
        let (code, body) =
            self.admin(Method::GET, &format!("/v1/tenants/{tenant}/actions?status={status}"), None).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        body["actions"].as_array().unwrap().clone()
    }

    /// Runs the sweeper (expiries, then deliveries) until nothing is due at the clock's now.
    pub async fn sweep(&self) {
        while scorehook::sweeper::sweep_due(&self.local.service, &self.local.deliverer, 10).await.unwrap() == Step::More
        {
        }
    }

    /// Runs the outbox executor until nothing is due at the clock's now.
    pub async fn drain_outbox(&self) {
        let (service, deliverer) = (&self.local.service, &self.local.deliverer);
        while outbox::deliver_due(service.store.as_ref(), deliverer, service.clock.as_ref(), service, 10).await.unwrap()
            == Step::More
        {}
    }
}
