//! A real `scorehook serve` process, killed with SIGKILL and started again on
//! the same data directory: everything it answered 2xx for is still there.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use tokio::process::Command;

use crate::support::process::Server;
use crate::support::{interaction, RecordingCrm};

#[tokio::test]
async fn a_killed_server_restarts_with_scores_ledger_and_pending_actions() {
    use reqwest::Method;
    let dir = tempfile::TempDir::new().unwrap();
    let crm = RecordingCrm::start().await;
    crm.respond_with(&[503; 3]);
    // Retries wait an hour, so the restarted server's executor cannot retry
    // an action before the test has seen all three still failed, however
    // slowly the restart goes on a loaded machine.
    let no_early_retry = [("SCOREHOOK_RETRY_FIRST_MS", "3600000")];

    let server = Server::start_with_env(dir.path(), &no_early_retry).await;
    server.seeds_tenant(Some(&crm.url)).await;
    let mut events: Vec<Value> = (1..=4).map(|i| interaction(&format!("open-{i}"), "email.opened", "jhon")).collect();
    let mut demo = interaction("stage-demo", "deal.stage_changed", "jhon");
    demo["attributes"] = json!({"stage": "demo"});
    events.push(demo.clone());
    assert_eq!(server.webhook(&json!(events)).await, json!({"accepted": 5, "duplicates": 0}));
    // The executor tries each action once and the CRM answers 503: all three wait for a retry.
    for _ in 0..3 {
        crm.next(Duration::from_secs(10)).await;
    }
    // The CRM has answered; the executor records each failure just after.
    server.await_actions("acme", "failed", 3).await;
    let (_, before) = server.admin(Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    server.kill().await;

    let server = Server::start_with_env(dir.path(), &no_early_retry).await;
    let (_, after) = server.admin(Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    assert_eq!(after, before, "score and ledger survive SIGKILL");
    assert_eq!(after["scores"]["engagement"]["score"], 7);
    assert_eq!(after["scores"]["engagement"]["ledger"].as_array().unwrap().len(), 5);
    assert_eq!(server.webhook(&demo).await, json!({"accepted": 0, "duplicates": 1}), "dedupe markers survive");

    let (_, failed) = server.admin(Method::GET, "/v1/tenants/acme/actions?status=failed", None).await;
    let ids: Vec<String> =
        failed["actions"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 3, "the fired actions survive with their retry schedule: {failed}");
    for id in &ids {
        let (status, _) = server.admin(Method::POST, &format!("/v1/tenants/acme/actions/{id}/replay"), None).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let mut delivered = Vec::new();
    for _ in 0..3 {
        delivered.push(crm.next(Duration::from_secs(10)).await.body["id"].as_str().unwrap().to_owned());
    }
    delivered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(delivered, expected, "delivered after the restart under the same ids");
    server.kill().await;
}

#[tokio::test]
async fn a_stopped_app_restarts_with_its_pending_actions_still_pending() {
    let crm = RecordingCrm::start().await;
    let app = crate::support::TestApp::spawn().await;
    app.seeds_tenant("acme", Some(&crm.url)).await;
    let events: Vec<Value> = (1..=5).map(|i| interaction(&format!("open-{i}"), "email.opened", "jhon")).collect();
    app.post_webhook("acme", &json!(events)).await;
    assert_eq!(app.actions("acme", "pending").await.len(), 3, "fired, not yet tried");

    let app = crate::support::TestApp::spawn_in(app.stop().await, false).await;
    assert_eq!(app.score("acme", "jhon").await, Some(json!(5)));
    assert_eq!(app.actions("acme", "pending").await.len(), 3);
    app.drain_outbox().await;
    assert_eq!(crm.received().await.len(), 3);
    assert_eq!(app.actions("acme", "done").await.len(), 3);
}

/// The seeds' tenant after five opens, whose three actions the CRM refused for good.
async fn three_dead_actions() -> (RecordingCrm, crate::support::TestApp) {
    let crm = RecordingCrm::start().await;
    let app = crate::support::TestApp::spawn().await;
    app.seeds_tenant("acme", Some(&crm.url)).await;
    crm.respond_with(&[400, 400, 400]);
    let events: Vec<Value> = (1..=5).map(|i| interaction(&format!("open-{i}"), "email.opened", "jhon")).collect();
    app.post_webhook("acme", &json!(events)).await;
    app.drain_outbox().await;
    (crm, app)
}

#[tokio::test]
async fn the_replay_command_requeues_dead_actions_in_a_stopped_store() {
    let (_crm, app) = three_dead_actions().await;
    assert_eq!(app.actions("acme", "dead").await.len(), 3);
    let dir = app.stop().await;

    let output = Command::new(env!("CARGO_BIN_EXE_scorehook"))
        .args(["replay", "--tenant", "acme", "--all", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().filter(|l| l.starts_with("replayed act_")).count(), 3);

    let app = crate::support::TestApp::spawn_in(dir, false).await;
    assert_eq!(app.actions("acme", "pending").await.len(), 3);
    // The command stamped the replay with the system clock; move the test clock past it.
    app.advance(chrono::TimeDelta::seconds(5));
    app.drain_outbox().await;
    assert_eq!(app.actions("acme", "done").await.len(), 3);

    let nothing = Command::new(env!("CARGO_BIN_EXE_scorehook"))
        .args(["replay", "--tenant", "acme", "--data-dir"])
        .arg(app.stop().await.path())
        .output()
        .await
        .unwrap();
    assert!(!nothing.status.success(), "replay without ids or --all is an error");
}

#[tokio::test]
async fn the_replay_command_requeues_dead_actions_through_a_running_instance() {
    let (_crm, app) = three_dead_actions().await;
    let dead: Vec<Value> = app.actions("acme", "dead").await.iter().map(|a| a["id"].clone()).collect();
    assert_eq!(dead.len(), 3);

    let replay = |status: &str| {
        Command::new(env!("CARGO_BIN_EXE_scorehook"))
            .args(["replay", "--tenant", "acme", "--status", status, "--url", &app.base])
            .env("SCOREHOOK_ADMIN_TOKEN", crate::support::ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .output()
    };
    let output = replay("dead").await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut pending: Vec<Value> = app.actions("acme", "pending").await.iter().map(|a| a["id"].clone()).collect();
    pending.sort_by_key(|id| id.to_string());
    let mut expected = dead.clone();
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(pending, expected, "the same ids, queued again");
    assert!(app.actions("acme", "dead").await.is_empty());

    let refused = replay("done").await.unwrap();
    assert!(!refused.status.success(), "done actions are not replayed");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only dead and failed"));
}
