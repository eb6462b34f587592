//! A real `scorehook serve` process on a data directory, for tests that
//! kill it (SIGKILL) or read its log.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::spawn_app::SECRET;
use super::ADMIN_TOKEN;

pub struct Server {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts the binary on port 0 with its log at `level` written to `log`,
    /// and reads the address it prints.
    pub async fn start_logging(data_dir: &Path, level: &str, log: impl Into<Stdio>) -> Self {
        Self::start_with(data_dir, level, log, &[]).await
    }

    /// Starts it with its log (at `warn`) dropped and these environment variables set (settings under test).
    pub async fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with(data_dir, "warn", Stdio::null(), env).await
    }

    async fn start_with(data_dir: &Path, level: &str, log: impl Into<Stdio>, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_scorehook"))
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data_dir)
            .env("SCOREHOOK_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", level)
            // The tests' fakes listen on loopback: the operator's setting lets the server reach them.
            .env("SCOREHOOK_ALLOW_PRIVATE_TARGETS", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
        let base = line.strip_prefix("scorehook listening on ").unwrap().to_owned();
        Self { child, base, http: reqwest::Client::new() }
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Tenant `acme` (generic) with the seeds' profile (published) and trigger; answers the tenant's own token.
    pub async fn seeds_tenant(&self, actions_url: Option<&str>) -> String {
        let tenant = json!({"provider": "generic", "webhook_secret": SECRET, "actions_url": actions_url});
        let (status, created) = self.admin(Method::PUT, "/v1/tenants/acme", Some(tenant)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        for (method, path, body) in [
            (Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(super::seeds_profile())),
            (Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None),
            (Method::PUT, "/v1/tenants/acme/triggers/hot", Some(super::seeds_trigger())),
        ] {
            let (status, answer) = self.admin(method, path, body).await;
            assert!(status.is_success(), "{path}: {answer}");
        }
        created["token"].as_str().unwrap_or_default().to_owned()
    }

    /// Posts `body` to tenant `acme`'s generic webhook, signed now; it must be accepted.
    pub async fn webhook(&self, body: &Value) -> Value {
        let response = post_webhook(&self.http, &self.base, serde_json::to_vec(body).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        response.json().await.unwrap()
    }

    /// Awaits, up to 30 s, the executor's record of exactly `count` of the
    /// tenant's actions in `status`: the process is another program, so its
    /// store is polled. Answers those actions.
    pub async fn await_actions(&self, tenant: &str, status: &str, count: usize) -> Vec<Value> {
        let path = format!("/v1/tenants/{tenant}/actions?status={status}");
        let recorded = async {
            loop {
                let (_, listed) = self.admin(Method::GET, &path, None).await;
                if let Some(actions) = listed["actions"].as_array().filter(|a| a.len() == count) {
                    return actions.clone();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), recorded)
            .await
            .unwrap_or_else(|_| panic!("{count} {status} actions of {tenant} never recorded"))
    }

    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// Posts `bytes` to tenant `acme`'s generic webhook at `base`, signed now.
/// A transport error (the server is gone) is the caller's to judge.
pub async fn post_webhook(http: &reqwest::Client, base: &str, bytes: Vec<u8>) -> reqwest::Result<reqwest::Response> {
    let (timestamp, sig) = scorehook::crm::signature::sign(SECRET, chrono::Utc::now(), &bytes);
    http.post(format!("{base}/v1/webhooks/generic/acme"))
        .header("x-scorehook-timestamp", timestamp)
        .header("x-scorehook-signature", sig)
        .body(bytes)
        .send()
        .await
}
