//! Configuration as code against a running instance, over the admin API:
//! `scorehook apply -f DIR` shows what would change (a plan) and changes it
//! only with `--yes`; `scorehook export` writes a tenant's configuration
//! back out as a tenant file; `scorehook replay --url` re-queues dead or
//! failed actions. Works the same against `scorehook serve` and a deployed
//! Function URL, since it only speaks HTTP.

use std::fmt;

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::engine::profile::ProfileSpec;
use crate::engine::trigger::TriggerSpec;
use crate::ids::{ActionId, ProfileId, TenantId, TriggerId};
use crate::outbox::ActionStatus;
use crate::service::apply::TenantFile;
use crate::tenant::public_crm;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{method} {path} answered {status}: {body}")]
    Refused { method: Method, path: String, status: StatusCode, body: String },
    #[error("{0}")]
    Plan(String),
}

/// The admin API of one instance, called with one bearer token.
pub struct Remote {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Remote {
    pub fn new(base: &str, token: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned(), token: token.to_owned() }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|source| ClientError::Unreachable { url: url.clone(), source })?;
        let status = response.status();
        let text = response.text().await.map_err(|source| ClientError::Unreachable { url, source })?;
        if status == StatusCode::NOT_FOUND && method == Method::GET {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ClientError::Refused { method, path: path.to_owned(), status, body: text });
        }
        Ok(Some(serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn get(&self, path: &str) -> Result<Option<Value>, ClientError> {
        self.call(Method::GET, path, None).await
    }
}

/// One difference between a file and the instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    CreateTenant,
    UpdateTenant(Vec<String>),
    /// Save (when `changed` is non-empty) and publish a profile.
    Profile {
        id: ProfileId,
        new: bool,
        changed: Vec<String>,
    },
    Trigger {
        id: TriggerId,
        new: bool,
        changed: Vec<String>,
    },
}

/// What applying one tenant file would do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tenant: TenantId,
    pub steps: Vec<Step>,
    pub unchanged: usize,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tenant {}", self.tenant)?;
        let list = |changed: &[String]| changed.join(", ");
        for step in &self.steps {
            match step {
                Step::CreateTenant => writeln!(f, "  + tenant (new; its admin token is printed once)")?,
                Step::UpdateTenant(changed) => writeln!(f, "  ~ tenant: {}", list(changed))?,
                Step::Profile { id, new: true, .. } => writeln!(f, "  + profile {id} (published on apply)")?,
                Step::Profile { id, changed, .. } if changed.is_empty() => {
                    writeln!(f, "  ~ profile {id}: publish (not live as in the file)")?
                }
                Step::Profile { id, changed, .. } => {
                    writeln!(f, "  ~ profile {id}: {} (published on apply)", list(changed))?
                }
                Step::Trigger { id, new: true, .. } => writeln!(f, "  + trigger {id}")?,
                Step::Trigger { id, changed, .. } => writeln!(f, "  ~ trigger {id}: {}", list(changed))?,
            }
        }
        if self.unchanged > 0 {
            writeln!(f, "  = {} unchanged", self.unchanged)?;
        }
        Ok(())
    }
}

/// Names the top-level keys (and rule ids) in which two specs differ.
fn differences(desired: &Value, current: &Value) -> Vec<String> {
    let empty = Map::new();
    let (want, have) = (desired.as_object().unwrap_or(&empty), current.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = want.keys().chain(have.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changed = Vec::new();
    for key in keys {
        let (a, b) = (want.get(key), have.get(key));
        if a == b {
            continue;
        }
        match (key.as_str(), a.and_then(Value::as_array), b.and_then(Value::as_array)) {
            ("rules", Some(a), Some(b)) => changed.extend(rule_differences(a, b)),
            _ => changed.push(key.clone()),
        }
    }
    changed
}

fn rule_differences(desired: &[Value], current: &[Value]) -> Vec<String> {
    let id = |rule: &Value| rule["id"].as_str().unwrap_or_default().to_owned();
    let find = |rules: &[Value], wanted: &str| rules.iter().find(|r| id(r) == wanted).cloned();
    let mut changed = Vec::new();
    for rule in desired {
        match find(current, &id(rule)) {
            None => changed.push(format!("rule {} added", id(rule))),
            Some(old) if &old != rule => changed.push(format!("rule {} changed", id(rule))),
            Some(_) => {}
        }
    }
    for rule in current {
        if find(desired, &id(rule)).is_none() {
            changed.push(format!("rule {} removed", id(rule)));
        }
    }
    if changed.is_empty() {
        changed.push("rule order".to_owned());
    }
    changed
}

fn normalized<T: serde::Serialize + serde::de::DeserializeOwned>(value: &Value) -> Option<Value> {
    serde_json::from_value::<T>(value.clone()).ok().and_then(|spec| serde_json::to_value(spec).ok())
}

/// Compares a tenant file with what the instance holds. Secrets are
/// write-only: they are compared only by whether they are needed.
pub async fn plan(remote: &Remote, file: &TenantFile, update_secrets: bool) -> Result<Plan, ClientError> {
    let tenant = &file.tenant;
    let mut plan = Plan { tenant: tenant.clone(), steps: Vec::new(), unchanged: 0 };
    match remote.get(&format!("/v1/tenants/{tenant}")).await? {
        None if file.webhook_secret.is_none() => {
            return Err(ClientError::Plan(format!("tenant {tenant} does not exist; its file needs a webhook_secret")))
        }
        None => plan.steps.push(Step::CreateTenant),
        Some(current) => {
            let mut changed = Vec::new();
            if current["provider"] != json!(file.provider) {
                changed.push("provider".to_owned());
            }
            if current["actions_url"] != json!(file.actions_url) {
                changed.push("actions_url".to_owned());
            }
            if current["crm"] != Value::Object(public_crm(&file.crm)) {
                changed.push("crm".to_owned());
            }
            if update_secrets {
                changed.push("secrets (write-only, sent as given)".to_owned());
            }
            if changed.is_empty() {
                plan.unchanged += 1;
            } else {
                plan.steps.push(Step::UpdateTenant(changed));
            }
        }
    }
    let exists = !plan.steps.contains(&Step::CreateTenant);
    for (id, spec) in &file.profiles {
        let desired = serde_json::to_value(spec).unwrap_or_default();
        let current = if exists { remote.get(&format!("/v1/tenants/{tenant}/profiles/{id}")).await? } else { None };
        let Some(current) = current else {
            plan.steps.push(Step::Profile { id: id.clone(), new: true, changed: Vec::new() });
            continue;
        };
        let latest = if current["draft"].is_null() { &current["published"] } else { &current["draft"] };
        let changed = differences(&desired, &normalized::<ProfileSpec>(latest).unwrap_or_default());
        let live = current["status"] == "published" && current["draft"].is_null();
        if changed.is_empty() && live {
            plan.unchanged += 1;
        } else {
            plan.steps.push(Step::Profile { id: id.clone(), new: false, changed });
        }
    }
    for (id, spec) in &file.triggers {
        let desired = serde_json::to_value(spec).unwrap_or_default();
        let current = if exists { remote.get(&format!("/v1/tenants/{tenant}/triggers/{id}")).await? } else { None };
        let Some(mut current) = current else {
            plan.steps.push(Step::Trigger { id: id.clone(), new: true, changed: Vec::new() });
            continue;
        };
        if let Some(fields) = current.as_object_mut() {
            // What the server adds to a spec: its id, when it was saved, its job's progress.
            for key in ["id", "updated_at", "existing"] {
                fields.remove(key);
            }
        }
        let changed = differences(&desired, &normalized::<TriggerSpec>(&current).unwrap_or_default());
        if changed.is_empty() {
            plan.unchanged += 1;
        } else {
            plan.steps.push(Step::Trigger { id: id.clone(), new: false, changed });
        }
    }
    Ok(plan)
}

impl Plan {
    /// The profiles the plan publishes (each then recomputes over stored history).
    pub fn published(&self) -> impl Iterator<Item = &ProfileId> {
        self.steps.iter().filter_map(|step| match step {
            Step::Profile { id, .. } => Some(id),
            _ => None,
        })
    }
}

/// A plan step naming something its file does not hold: a plan made from another file.
fn not_in_file(kind: &str, id: &str) -> ClientError {
    ClientError::Plan(format!("the plan names {kind} {id}, which the file does not hold"))
}

/// What creating a tenant answered once: its admin token, and the signing
/// secret made for it when its file named none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub token: String,
    pub signing_secret: Option<String>,
}

/// Carries out a plan; returns what the creation answered, if it created the tenant.
pub async fn execute(
    remote: &Remote,
    file: &TenantFile,
    plan: &Plan,
    update_secrets: bool,
) -> Result<Option<Created>, ClientError> {
    let tenant = &file.tenant;
    let mut created = None;
    for step in &plan.steps {
        match step {
            Step::CreateTenant | Step::UpdateTenant(_) => {
                let mut body = json!({"provider": file.provider, "actions_url": file.actions_url});
                let creating = *step == Step::CreateTenant;
                if creating || update_secrets {
                    body["webhook_secret"] = json!(file.webhook_secret);
                    body["crm"] = json!(file.crm);
                    if file.signing_secret.is_some() {
                        body["signing_secret"] = json!(file.signing_secret);
                    }
                } else if public_crm(&file.crm).len() == file.crm.len() {
                    body["crm"] = json!(file.crm);
                } else {
                    return Err(ClientError::Plan(format!(
                        "tenant {tenant}: its crm settings hold credentials, which are write-only; pass \
                         --update-secrets to send them"
                    )));
                }
                let answer = remote.call(Method::PUT, &format!("/v1/tenants/{tenant}"), Some(&body)).await?;
                let shown = |answer: &Value, key: &str| answer[key].as_str().map(str::to_owned);
                let answered = answer.and_then(|a| {
                    Some(Created { token: shown(&a, "token")?, signing_secret: shown(&a, "signing_secret") })
                });
                created = answered.or(created);
            }
            Step::Profile { id, changed, new } => {
                let path = format!("/v1/tenants/{tenant}/profiles/{id}");
                if *new || !changed.is_empty() {
                    let spec = file.profiles.get(id).ok_or_else(|| not_in_file("profile", id.as_str()))?;
                    remote.call(Method::PUT, &path, Some(&json!(spec))).await?;
                }
                remote.call(Method::POST, &format!("{path}/publish"), None).await?;
            }
            Step::Trigger { id, .. } => {
                let path = format!("/v1/tenants/{tenant}/triggers/{id}");
                let spec = file.triggers.get(id).ok_or_else(|| not_in_file("trigger", id.as_str()))?;
                remote.call(Method::PUT, &path, Some(&json!(spec))).await?;
            }
        }
    }
    Ok(created)
}

/// A tenant's configuration as a tenant file: published profiles (their
/// live spec; drafts and archived profiles are left out, and named in the
/// returned notes), triggers, and settings without secrets.
pub async fn export(remote: &Remote, tenant: &TenantId) -> Result<(Value, Vec<String>), ClientError> {
    let found = remote.get(&format!("/v1/tenants/{tenant}")).await?;
    let current = found.ok_or_else(|| ClientError::Plan(format!("tenant {tenant} not found")))?;
    let mut notes = Vec::new();
    let mut profiles = Map::new();
    let listed = remote.get(&format!("/v1/tenants/{tenant}/profiles")).await?.unwrap_or_default();
    for profile in listed["profiles"].as_array().into_iter().flatten() {
        let id = profile["id"].as_str().unwrap_or_default().to_owned();
        if profile["status"] == "published" {
            profiles.insert(id.clone(), profile["published"].clone());
            if !profile["draft"].is_null() {
                notes.push(format!("profile {id}: an unpublished draft was left out"));
            }
        } else {
            notes.push(format!("profile {id}: {} and left out", profile["status"].as_str().unwrap_or("?")));
        }
    }
    let mut triggers = Map::new();
    let listed = remote.get(&format!("/v1/tenants/{tenant}/triggers")).await?.unwrap_or_default();
    for trigger in listed["triggers"].as_array().into_iter().flatten() {
        let mut spec = trigger.clone();
        if let Some(fields) = spec.as_object_mut() {
            fields.remove("updated_at");
            if let Some(Value::String(id)) = fields.remove("id") {
                triggers.insert(id, spec);
            }
        }
    }
    notes.push("webhook_secret and CRM credentials are write-only and not exported".to_owned());
    let file = json!({
        "tenant": tenant,
        "provider": current["provider"],
        "actions_url": current["actions_url"],
        "crm": current["crm"],
        "profiles": profiles,
        "triggers": triggers,
    });
    Ok((file, notes))
}

/// Replays the named actions and every action in one of `statuses`
/// (newest 500 of each) through the admin API; returns the ids replayed.
pub async fn replay(
    remote: &Remote,
    tenant: &TenantId,
    ids: &[ActionId],
    statuses: &[ActionStatus],
) -> Result<Vec<ActionId>, ClientError> {
    let mut ids = ids.to_vec();
    for status in statuses {
        let status = serde_json::to_value(status).unwrap_or(Value::Null);
        let path = format!("/v1/tenants/{tenant}/actions?status={}&limit=500", status.as_str().unwrap_or_default());
        let listed = remote.get(&path).await?.unwrap_or(Value::Null);
        let listed = listed["actions"].as_array().map(Vec::as_slice).unwrap_or_default();
        ids.extend(listed.iter().filter_map(|a| ActionId::parse(a["id"].as_str()?).ok()));
    }
    for id in &ids {
        remote.call(Method::POST, &format!("/v1/tenants/{tenant}/actions/{id}/replay"), None).await?;
    }
    Ok(ids)
}

/// How far a profile's recompute (after a publish) has come.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub profile: ProfileId,
    pub version: u64,
    /// `running`, `done` or `cancelled`.
    pub status: String,
    pub done: u64,
    /// `None` until the job has counted the tenant's contacts.
    pub total: Option<u64>,
    /// At the pace so far, what is left; `None` until both are known.
    pub eta: Option<std::time::Duration>,
}

impl Progress {
    /// The recompute in a `GET …/profiles/{p}` answer, at `now`; `None` without one.
    pub fn of(profile: &ProfileId, answer: &Value, now: chrono::DateTime<chrono::Utc>) -> Option<Self> {
        let job = answer.get("recompute").filter(|j| j.is_object())?;
        let done = job["contacts_done"].as_u64().unwrap_or(0);
        let total = job["contacts_total"].as_u64();
        let started: Option<chrono::DateTime<chrono::Utc>> = job["started_at"].as_str().and_then(|s| s.parse().ok());
        let elapsed = started.map(|at| (now - at).to_std().unwrap_or_default());
        let eta = match (total, elapsed) {
            (Some(total), Some(elapsed)) if done > 0 && total > done => {
                Some(elapsed.mul_f64((total - done) as f64 / done as f64))
            }
            (Some(total), Some(_)) if total <= done => Some(std::time::Duration::ZERO),
            _ => None,
        };
        Some(Self {
            profile: profile.clone(),
            version: job["version"].as_u64().unwrap_or(0),
            status: job["status"].as_str().unwrap_or("running").to_owned(),
            done,
            total,
            eta,
        })
    }

    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "recompute of {} v{}: {}", self.profile, self.version, self.done)?;
        if let Some(total) = self.total {
            let percent = (self.done.min(total) * 100).checked_div(total).unwrap_or(100);
            write!(f, "/{total} contacts ({percent}%)")?;
        } else {
            write!(f, " contacts")?;
        }
        match (self.running(), self.eta) {
            (true, Some(eta)) => write!(f, ", about {}s left", eta.as_secs().max(1)),
            (true, None) => Ok(()),
            (false, _) => write!(f, ", {}", self.status),
        }
    }
}

/// Follows the recompute of each profile until it ends, reporting its
/// progress every `every`; the last report of each.
pub async fn follow_recomputes(
    remote: &Remote,
    tenant: &TenantId,
    profiles: &[ProfileId],
    every: std::time::Duration,
    mut report: impl FnMut(&Progress),
) -> Result<Vec<Progress>, ClientError> {
    let mut last = Vec::new();
    for profile in profiles {
        loop {
            let answer = remote.get(&format!("/v1/tenants/{tenant}/profiles/{profile}")).await?;
            let Some(progress) = answer.and_then(|a| Progress::of(profile, &a, chrono::Utc::now())) else { break };
            report(&progress);
            if !progress.running() {
                last.push(progress);
                break;
            }
            tokio::time::sleep(every).await;
        }
    }
    Ok(last)
}
