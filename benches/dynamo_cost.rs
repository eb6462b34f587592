//! DynamoDB round trips and capacity units per interaction, counted at the
//! client by `DynamoStore::metrics` (units computed from item sizes, since
//! moto reports none for transactions), over the real HTTP router.
//!
//! Needs a DynamoDB API at `DYNAMODB_ENDPOINT` (moto: `scripts/bench.sh`
//! starts `scripts/moto_serial.py`). Runs only when given `--bench`
//! (`scripts/bench.sh` runs the built binary with it); under `cargo test
//! --all-targets` it does nothing. Prints one line per case:
//! `case<TAB>interactions<TAB>calls<TAB>read_half_units<TAB>write_units`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};

use scorehook::app::Local;
use scorehook::clock::SystemClock;
use scorehook::crm::signature;
use scorehook::store::dynamodb::DynamoStore;
use scorehook::tenant::Secret;

const ADMIN: &str = "bench-operator-token";
const SECRET: &str = "bench-webhook-secret-0123456789";
/// Contacts per case: enough to average, few enough for moto's one-at-a-time server.
const N: usize = 10;

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
    }

    async fn webhook(&self, body: &Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let (timestamp, sig) = signature::sign(SECRET, Utc::now(), &bytes);
        let response = self
            .http
            .post(format!("{}/v1/webhooks/generic/bench", self.base))
            .header("content-type", "application/json")
            .header(signature::TIMESTAMP_HEADER, timestamp)
            .header(signature::SIGNATURE_HEADER, sig)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    }
}

fn event(id: &str, contact: &str) -> Value {
    json!({"id": id, "type": "email.opened", "contact_id": contact, "occurred_at": Utc::now(),
        "attributes": {"campaign_id": "spring"}})
}

/// Runs `work` and prints the store's counters it moved, per interaction.
async fn measure<F: std::future::Future<Output = ()>>(store: &DynamoStore, case: &str, interactions: usize, work: F) {
    let before = store.metrics();
    work.await;
    let after = store.metrics();
    println!(
        "{case}\t{interactions}\t{}\t{}\t{}",
        after.calls - before.calls,
        after.read_half_units - before.read_half_units,
        after.write_units - before.write_units
    );
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let endpoint = std::env::var("DYNAMODB_ENDPOINT").expect("DYNAMODB_ENDPOINT (moto) is required");
    let table = format!("scorehook-bench-{}", std::process::id());
    let sealer = scorehook::store::sealing::Sealer::from_key(&[9; scorehook::store::sealing::KEY_LEN]).unwrap();
    let store = DynamoStore::connect(table, Some(&endpoint)).await.with_sealer(sealer);
    store.ensure_table().await.unwrap();
    // The configuration cache outlives the run, so the cases count only the
    // per-interaction calls; `config_reload_new_contact` below counts the
    // reload that each process pays once per refresh period (5 s by default).
    let client = serve(&store, Duration::from_secs(3600)).await;

    client
        .admin(Method::PUT, "/v1/tenants/bench", Some(json!({"provider": "generic", "webhook_secret": SECRET})))
        .await;
    let profile = json!({"name": "Engagement", "rules": [
        {"id": "opened", "when": {"type": "email.opened"}, "points": 1},
        {"id": "demo", "when": {"type": "deal.stage_changed", "attributes": {"stage": {"equals": "demo"}}}, "points": 3}]});
    client.admin(Method::PUT, "/v1/tenants/bench/profiles/engagement", Some(profile)).await;
    client.admin(Method::POST, "/v1/tenants/bench/profiles/engagement/publish", None).await;
    let trigger = json!({"name": "Hot lead", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}},
        "runs": "on_enter", "actions": [
            {"type": "add_note", "text": "High engagement: prioritise {{contact.id}}"},
            {"type": "create_task", "title": "Follow up", "due_in": "1d"},
            {"type": "add_tag", "tag": "Caliente"}]});
    client.admin(Method::PUT, "/v1/tenants/bench/triggers/hot", Some(trigger)).await;
    // Warms the per-process configuration cache (one read per refresh period).
    client.webhook(&event("warm-up", "warm")).await;

    measure(&store, "common_new_contact", N, async {
        for i in 0..N {
            client.webhook(&event(&format!("new-{i}"), &format!("c{i}"))).await;
        }
    })
    .await;
    // Every contact now has 1 point; three more opens each bring them to 4.
    for round in 0..3 {
        for i in 0..N {
            client.webhook(&event(&format!("warm-{round}-{i}"), &format!("c{i}"))).await;
        }
    }
    measure(&store, "fires_trigger_3_actions", N, async {
        for i in 0..N {
            client.webhook(&event(&format!("fire-{i}"), &format!("c{i}"))).await;
        }
    })
    .await;
    measure(&store, "common_known_contact", N, async {
        for i in 0..N {
            client.webhook(&event(&format!("known-{i}"), &format!("c{i}"))).await;
        }
    })
    .await;
    measure(&store, "duplicate", N, async {
        for i in 0..N {
            client.webhook(&event(&format!("known-{i}"), &format!("c{i}"))).await;
        }
    })
    .await;
    let batch: Vec<Value> = (0..N).map(|i| event(&format!("batch-{i}"), &format!("b{i}"))).collect();
    measure(&store, "batch_distinct_contacts", N, client.webhook(&Value::Array(batch))).await;
    let batch: Vec<Value> = (0..N).map(|i| event(&format!("batch-one-{i}"), "one")).collect();
    measure(&store, "batch_one_contact", N, client.webhook(&Value::Array(batch))).await;
    let reloading = serve(&store, Duration::ZERO).await;
    measure(&store, "config_reload_new_contact", 1, reloading.webhook(&event("reload", "r1"))).await;
}

/// The router over `store` on a free loopback port, its configuration cached for `refresh`.
async fn serve(store: &DynamoStore, refresh: Duration) -> Client {
    let mut local = Local::new(Arc::new(store.clone()), Arc::new(SystemClock), Some(Secret::new(ADMIN))).unwrap();
    local.service = local.service.with_config_refresh(refresh);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // No executor: fired actions stay queued, so only ingest's own calls are counted.
    tokio::spawn(local.serve(listener, false, std::future::pending()));
    Client { base, http: reqwest::Client::new() }
}
