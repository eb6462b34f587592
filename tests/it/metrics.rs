//! Metrics: `GET /metrics` of a real `scorehook serve` process holds exactly
//! the counts of a scripted run, for the operator only; the Lambda executor's
//! invocation ends with EMF lines that parse as EMF and carry the same names;
//! the README explains every name.
//!
//! The exact counts are read from a process of their own: the recorder is
//! process-wide and metrics carry no tenant label, so in this test binary
//! every other test would add to them.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use scorehook::metrics::{Kind, ALL};

use crate::support::process::Server;
use crate::support::{interaction, RecordingCrm, TestApp, ADMIN_TOKEN};

/// Every sample of a Prometheus text exposition, by `name{sorted labels}`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let mut labels: Vec<&str> = labels.split(',').filter(|l| !l.is_empty()).collect();
        labels.sort_unstable();
        found.insert(format!("{name}{{{}}}", labels.join(",")), value.parse().unwrap());
    }
    found
}

/// The key `samples` files `name` with `labels` under.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    labels.sort_unstable();
    format!("{name}{{{}}}", labels.join(","))
}

/// A sample's metric as declared: `_bucket`, `_sum` and `_count` belong to their histogram.
fn declared(sample: &str) -> Option<&'static scorehook::metrics::Metric> {
    let name = sample.split('{').next().unwrap_or_default();
    scorehook::metrics::find(name).or_else(|| {
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s))?;
        scorehook::metrics::find(base).filter(|m| m.kind == Kind::Histogram)
    })
}

async fn scrape(server: &Server, token: Option<&str>) -> reqwest::Response {
    let mut request = server.http.get(format!("{}/metrics", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_metrics_endpoint_holds_exactly_the_counts_of_a_scripted_run() {
    let dir = tempfile::TempDir::new().unwrap();
    let crm = RecordingCrm::start().await;
    // The first delivery is refused for good (400): that action is dead at once; the other two are delivered.
    crm.respond_with(&[400]);
    let server = Server::start_with_env(dir.path(), &[]).await;
    let tenant_token = server.seeds_tenant(Some(&crm.url)).await;

    // Five opens in one body: the trigger (score >= 5) fires its three actions.
    let events: Vec<Value> = (1..=5).map(|i| interaction(&format!("open-{i}"), "email.opened", "jhon")).collect();
    assert_eq!(server.webhook(&json!(events)).await, json!({"accepted": 5, "duplicates": 0}));
    // A redelivery of one of them.
    assert_eq!(server.webhook(&events[0]).await, json!({"accepted": 0, "duplicates": 1}));
    // A forged one.
    let forged = server
        .http
        .post(format!("{}/v1/webhooks/generic/acme", server.base))
        .header("x-scorehook-timestamp", chrono::Utc::now().timestamp().to_string())
        .header("x-scorehook-signature", format!("v1={}", "0".repeat(64)))
        .body(serde_json::to_vec(&interaction("forged", "email.opened", "jhon")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    server.await_actions("acme", "dead", 1).await;
    server.await_actions("acme", "done", 2).await;

    for (token, why) in [(None, "no token"), (Some(tenant_token.as_str()), "a tenant's token")] {
        let response = scrape(&server, token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{why}: the JSON error shape");
    }
    let response = scrape(&server, Some(ADMIN_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    let found = samples(&text);

    let generic = |label: (&'static str, &'static str)| [("provider", "generic"), label];
    let expected: Vec<(String, f64)> = vec![
        (series("scorehook_webhook_events_total", &generic(("outcome", "accepted"))), 5.0),
        (series("scorehook_webhook_events_total", &generic(("outcome", "duplicate"))), 1.0),
        (series("scorehook_webhook_refused_total", &generic(("reason", "signature"))), 1.0),
        (series("scorehook_actions_total", &generic(("outcome", "fired"))), 3.0),
        (series("scorehook_actions_total", &generic(("outcome", "delivered"))), 2.0),
        (series("scorehook_actions_total", &generic(("outcome", "dead"))), 1.0),
        (series("scorehook_crm_answers_total", &generic(("status", "204"))), 2.0),
        (series("scorehook_crm_answers_total", &generic(("status", "400"))), 1.0),
        (series("scorehook_crm_call_seconds_count", &[("provider", "generic")]), 3.0),
        // Each interaction of a body is scored, the redelivered one too (it is found a duplicate).
        (series("scorehook_scoring_seconds_count", &[]), 6.0),
        (series("scorehook_commits_total", &[]), 5.0),
        (series("scorehook_jobs_total", &[("kind", "recompute"), ("status", "started")]), 1.0),
    ];
    for (key, count) in &expected {
        assert_eq!(found.get(key), Some(count), "{key} in\n{text}");
    }
    // Nothing else was counted: no other webhook outcome, refusal or action outcome.
    for prefix in ["scorehook_webhook_", "scorehook_actions_total", "scorehook_crm_answers_total"] {
        let counted: Vec<&String> = found.keys().filter(|k| k.starts_with(prefix)).collect();
        let wanted = expected.iter().filter(|(k, _)| k.starts_with(prefix)).count();
        assert_eq!(counted.len(), wanted, "{prefix}: {counted:?}");
    }
    assert!(found.keys().all(|k| !k.starts_with("scorehook_commit_conflicts_total")), "one writer, no conflict");
    assert!(found.contains_key("scorehook_outbox_lag_seconds{}"), "the sweeper reports the lag: {text}");
    for key in found.keys() {
        assert!(declared(key).is_some(), "{key} is not declared in scorehook::metrics");
    }
    assert!(text.contains("# HELP scorehook_actions_total "), "described: {text}");
    server.kill().await;
}

#[tokio::test]
async fn the_metrics_endpoint_takes_the_operator_token_only_and_is_404_where_nothing_is_exported() {
    // This in-process server installed no Prometheus exporter (only `scorehook serve` does).
    let app = TestApp::spawn().await;
    let tenant_token = app.create_tenant("acme", None).await;
    let get = |token: Option<String>| {
        let mut request = app.http.get(format!("{}/metrics", app.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some(tenant_token)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let response = get(Some(ADMIN_TOKEN.to_owned())).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

/// Checks one line against the EMF specification; answers each metric's name and value.
fn emf_metrics(line: &str) -> Vec<(String, Value)> {
    let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    let meta = &doc["_aws"];
    assert!(meta["Timestamp"].is_u64(), "{line}");
    let directives = meta["CloudWatchMetrics"].as_array().unwrap();
    assert!(!directives.is_empty());
    let mut metrics = Vec::new();
    for directive in directives {
        assert_eq!(directive["Namespace"], "scorehook");
        for set in directive["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert!(set.len() <= 30);
            for dimension in set {
                let value = &doc[dimension.as_str().unwrap()];
                assert!(value.as_str().is_some_and(|v| !v.is_empty()), "dimension {dimension} has no value: {line}");
            }
        }
        let definitions = directive["Metrics"].as_array().unwrap();
        assert!(!definitions.is_empty() && definitions.len() <= 100);
        for definition in definitions {
            let name = definition["Name"].as_str().unwrap();
            assert!(["Count", "Seconds", "None"].contains(&definition["Unit"].as_str().unwrap()), "{definition}");
            let value = &doc[name];
            let values = value.as_array().cloned().unwrap_or_else(|| vec![value.clone()]);
            assert!(!values.is_empty() && values.len() <= 100, "{name}: {value}");
            assert!(values.iter().all(Value::is_number), "{name}: {value}");
            metrics.push((name.to_owned(), doc.clone()));
        }
    }
    metrics
}

#[tokio::test]
async fn an_emf_line_from_the_lambda_executor_parses_as_emf_with_the_same_names() {
    // As every Lambda function does at init; this test binary installs no other exporter.
    assert!(scorehook::metrics::install_emf());
    let crm = RecordingCrm::start().await;
    crm.respond_with(&[400]);
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", Some(&crm.url)).await;
    let events: Vec<Value> = (1..=5).map(|i| interaction(&format!("open-{i}"), "email.opened", "jhon")).collect();
    assert_eq!(app.post_webhook("acme", &json!(events)).await.0, StatusCode::ACCEPTED);
    let pending = app.actions("acme", "pending").await;
    assert_eq!(pending.len(), 3);
    // The stream batch DynamoDB would hand the executor for these inserts.
    let records: Vec<Value> = pending
        .iter()
        .enumerate()
        .map(|(i, action)| {
            let id = action["id"].as_str().unwrap();
            json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": i.to_string(), "NewImage": {
                "pk": {"S": format!("T#acme#A#{id}")}, "sk": {"S": "ACTION"}, "status": {"S": "pending"}}}})
        })
        .collect();
    let batch = json!({ "Records": records });

    let mut out = Vec::new();
    let work = scorehook::lambda::executor::handle(&app.local.service, &app.local.deliverer, &batch);
    let answer = scorehook::lambda::measured(&mut out, work).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(crm.received().await.len(), 3, "each action was tried once");

    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "the invocation wrote no EMF line");
    let mut names = BTreeMap::<String, Vec<Value>>::new();
    for line in &lines {
        for (name, doc) in emf_metrics(line) {
            names.entry(name).or_default().push(doc);
        }
    }
    // The same names `GET /metrics` carries: those `scorehook::metrics` declares.
    let declared: Vec<&str> = ALL.iter().map(|m| m.name).collect();
    for name in names.keys() {
        assert!(declared.contains(&name.as_str()), "{name} is not a declared name");
    }
    let actions = &names["scorehook_actions_total"];
    let count = |outcome: &str| -> u64 {
        actions
            .iter()
            .filter(|d| d["provider"] == "generic" && d["outcome"] == outcome)
            .map(|d| d["scorehook_actions_total"].as_u64().unwrap())
            .sum()
    };
    // Other tests of this binary may record too, so these are lower bounds.
    assert!(count("dead") >= 1 && count("delivered") >= 2, "{actions:?}");
    let answers = &names["scorehook_crm_answers_total"];
    assert!(answers.iter().any(|d| d["status"] == "400"), "{answers:?}");
    assert!(names.contains_key("scorehook_crm_call_seconds"), "{:?}", names.keys());
}

#[test]
fn the_readme_explains_every_metric() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## ").find(|s| s.starts_with("Metrics\n")).expect("a Metrics section in the README");
    for metric in ALL {
        assert!(section.contains(&format!("`{}`", metric.name)), "the README's Metrics section omits {}", metric.name);
        for label in metric.labels {
            assert!(section.contains(&format!("`{label}`")), "{}: label {label} is not explained", metric.name);
        }
    }
}
