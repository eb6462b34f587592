//! What every provider's outbound side shares: the action to perform in
//! typed form, and one client for a tenant's CRM API that applies the
//! provider's auth, base URL, rate limit and "slow down" answers.
//!
//! Credentials never reach a log line or an attempt's error text: header
//! values are marked sensitive, and transport errors are reported without
//! their URL (a Bitrix24 webhook URL holds its secret in the path).

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

use super::egress::{self, Egress};
use super::limiter::{Limiter, Rate};
use super::DeliveryError;
use crate::ids::{ContactId, DealId};
use crate::metrics;
use crate::outbox::OutboxItem;
use crate::tenant::{Provider, TenantRecord};

/// How long a call may wait for its rate-limit token before it is handed
/// back to the outbox as retryable instead.
pub const PATIENCE: Duration = Duration::from_secs(2);

/// The most bytes of a CRM's answer read (a runaway body cannot fill memory).
const MAX_ANSWER: usize = 1 << 20;

/// A fired action, decoded from its params for a connector to perform.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    MoveStage {
        pipeline: String,
        stage: String,
        as_user: Option<String>,
    },
    AddTag(String),
    RemoveTag(String),
    /// Also what `notify` becomes without a URL: a task due at once, which
    /// the CRM notifies its assignee of.
    CreateTask {
        title: String,
        body: Option<String>,
        due_at: Option<DateTime<Utc>>,
        /// The CRM user to assign it to; `None`: the connector's default owner.
        assignee: Option<String>,
    },
    AddNote(String),
    /// Writes the score: `value` is `None` when the contact has no score in the profile.
    SetField {
        field: String,
        value: Option<f64>,
    },
}

impl Act {
    /// The action of an outbox item; `Permanent` for kinds a CRM does not perform.
    pub fn of(item: &OutboxItem) -> Result<Self, DeliveryError> {
        let params = &item.action.params;
        let text = |key: &str| params.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let required =
            |key: &str| text(key).ok_or_else(|| permanent(format!("the {} action has no {key}", item.action.kind)));
        Ok(match item.action.kind.as_str() {
            "move_stage" => {
                Act::MoveStage { pipeline: required("pipeline")?, stage: required("stage")?, as_user: text("as_user") }
            }
            "add_tag" => Act::AddTag(required("tag")?),
            "remove_tag" => Act::RemoveTag(required("tag")?),
            "create_task" => Act::CreateTask {
                title: required("title")?,
                body: text("body"),
                due_at: text("due_at").and_then(|d| d.parse().ok()),
                assignee: text("assignee"),
            },
            "notify" => {
                let message = required("message")?;
                Act::CreateTask {
                    title: headline(&message),
                    body: Some(message),
                    due_at: Some(item.action.fired_at),
                    assignee: text("user"),
                }
            }
            "add_note" => Act::AddNote(required("text")?),
            "set_field" => Act::SetField {
                field: required("field")?,
                value: params.get("value").and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok())),
            },
            other => return Err(permanent(format!("a CRM connector cannot perform {other:?} actions"))),
        })
    }
}

/// The most characters of a notice's first line a task title takes.
const HEADLINE_CHARS: usize = 200;

/// A task title from a notice: its first line, cut to 200 characters.
fn headline(message: &str) -> String {
    let line = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(message);
    match line.char_indices().nth(HEADLINE_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

/// Whether an action is a notice to post to its own URL (Slack- or
/// e-mail-service-compatible) rather than into the CRM.
pub fn posts_to_own_url(item: &OutboxItem) -> bool {
    item.action.kind == "notify" && item.action.params.get("url").and_then(Value::as_str).is_some_and(|u| !u.is_empty())
}

/// The contact an action is for (never a deal's scoring key).
pub fn contact_of(item: &OutboxItem) -> Result<&ContactId, DeliveryError> {
    let contact = &item.action.contact_id;
    match contact.deal() {
        Some(_) => Err(permanent("the action names a deal, not a contact")),
        None => Ok(contact),
    }
}

/// The deal an action is for, if any.
pub fn deal_of(item: &OutboxItem) -> Option<&DealId> {
    item.action.deal_id.as_ref()
}

pub fn permanent(message: impl Into<String>) -> DeliveryError {
    DeliveryError::Permanent { http_status: None, message: message.into() }
}

/// A credential or setting from the tenant's `crm` map, or a permanent
/// error that says which key to set.
pub fn setting<'t>(tenant: &'t TenantRecord, key: &str) -> Result<&'t str, DeliveryError> {
    tenant.crm.get(key).and_then(Value::as_str).filter(|v| !v.is_empty()).ok_or_else(|| {
        permanent(format!(
            "the tenant's crm settings have no {key:?}: set it with PUT /v1/tenants/{}, then replay",
            tenant.id
        ))
    })
}

/// How a provider's API is reached and how it says "slow down".
#[derive(Debug, Clone, Copy)]
pub struct ApiConfig {
    pub provider: Provider,
    /// Scheme and host (and any fixed path prefix); `crm.base_url` overrides
    /// it. Empty when each account has its own host: `base_url` is then required.
    pub default_base: &'static str,
    /// The hosts the provider's API lives on (see `egress::host_matches`):
    /// `crm.base_url` and every call must name one, unless the operator
    /// allows private targets (local fakes).
    pub hosts: &'static [&'static str],
    pub rate: Rate,
    /// `Some(wait)` when an answer means "rate limited": the call is retried
    /// after `wait` and the tenant's bucket pauses as long.
    pub slow_down: fn(&Answer, DateTime<Utc>) -> Option<TimeDelta>,
}

/// What the process shares across deliveries: the HTTP client, the buckets, the clock reading.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    pub http: &'a reqwest::Client,
    /// The outbound policy every URL is checked against before it is called.
    pub egress: Egress,
    pub limiter: &'a Limiter,
    pub now: DateTime<Utc>,
}

/// A CRM's answer, read whole (up to 1 MiB).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON; `Null` when empty or not JSON.
    pub body: Value,
    /// The body as text, cut to 300 characters, for the operator's log
    /// (redacted there); a tenant never sees it.
    pub excerpt: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// An answer as a CRM would give it, for the connectors' `slow_down` tests.
    #[cfg(test)]
    pub fn fake(status: u16, headers: &[(&'static str, &'static str)], body: Value) -> Self {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        Self { status, headers: map, body, excerpt: String::new() }
    }
}

/// One tenant's CRM API.
pub struct CrmApi<'a> {
    reach: Reach<'a>,
    tenant: &'a TenantRecord,
    config: &'a ApiConfig,
    /// The provider's published limit, or the tenant's `crm.api_rate`.
    rate: Rate,
    base: String,
    headers: HeaderMap,
}

impl<'a> CrmApi<'a> {
    /// The API at `crm.base_url` if set, else at the provider's default base.
    pub fn new(reach: Reach<'a>, tenant: &'a TenantRecord, config: &'a ApiConfig) -> Result<Self, DeliveryError> {
        let base = match tenant.crm.get("base_url").and_then(Value::as_str).filter(|b| !b.is_empty()) {
            Some(base) => base.to_owned(),
            None if !config.default_base.is_empty() => config.default_base.to_owned(),
            None => setting(tenant, "base_url")?.to_owned(),
        };
        Ok(Self::at(reach, tenant, config, &base))
    }

    /// The API at a base the connector built itself (a Bitrix24 webhook URL).
    pub fn at(reach: Reach<'a>, tenant: &'a TenantRecord, config: &'a ApiConfig, base: &str) -> Self {
        let rate = tenant_rate(tenant).unwrap_or(config.rate);
        let base = base.trim_end_matches('/').to_owned();
        Self { reach, tenant, config, rate, base, headers: HeaderMap::new() }
    }

    /// Adds a header to every call; its value is never logged.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Result<Self, DeliveryError> {
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| permanent(format!("the {name} credential holds characters a header cannot carry")))?;
        value.set_sensitive(true);
        self.headers.insert(HeaderName::from_static(name), value);
        Ok(self)
    }

    /// `Authorization: Bearer <token>`.
    pub fn with_bearer(self, token: &str) -> Result<Self, DeliveryError> {
        self.with_header("authorization", &format!("Bearer {token}"))
    }

    pub fn tenant(&self) -> &TenantRecord {
        self.tenant
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.reach.now
    }

    /// The base URL calls are made against.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Calls `method base+path` with an optional JSON body. `Ok` is a 2xx
    /// answer; a "slow down" answer, 408, 409, 429 or 5xx is retryable; any
    /// other status is permanent, with a fixed reason for its status.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, DeliveryError> {
        let (provider, hosts) = (self.config.provider.as_str(), self.config.hosts);
        let url = self.reach.egress.check_api(&format!("{}{path}", self.base), provider, hosts).map_err(|refused| {
            permanent(format!("the {provider} API's URL is refused by the outbound policy: {refused}"))
        })?;
        self.wait_for_token().await?;
        let mut request = self.reach.http.request(method.clone(), url);
        request = request.headers(self.headers.clone()).header("accept", "application/json");
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| permanent(format!("cannot encode the request: {e}")))?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let sent = Instant::now();
        let response = request.send().await.map_err(|e| match egress::refusal(&e) {
            Some(refused) => {
                permanent(format!("the {provider} API's host is refused by the outbound policy: {refused}"))
            }
            None => {
                metrics::crm_answer(provider, None, sent.elapsed());
                DeliveryError::Retryable {
                    http_status: None,
                    message: format!("cannot reach the {provider} API: {}", e.without_url()),
                    retry_after: None,
                }
            }
        })?;
        let answer = read(response).await;
        metrics::crm_answer(provider, Some(answer.status), sent.elapsed());
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        tracing::warn!(
            tenant = %self.tenant.id,
            provider,
            status = answer.status,
            excerpt = %log_excerpt(&answer.excerpt, self.tenant),
            "the CRM answered an error"
        );
        // The tenant is told the status and a fixed reason, never the body:
        // whatever answered is not the tenant's to read through scorehook.
        let what = format!("{method} {} answered {}: {}", redact_path(path), answer.status, reason(answer.status));
        if let Some(wait) = (self.config.slow_down)(&answer, self.reach.now) {
            let pause = wait.to_std().unwrap_or_default();
            self.reach.limiter.pause(self.config.provider, &self.tenant.id, self.rate, Instant::now(), pause);
            return Err(DeliveryError::Retryable {
                http_status: Some(answer.status),
                message: format!("{what}; {provider} asks to slow down, retrying after {} s", wait.num_seconds()),
                retry_after: Some(wait),
            });
        }
        let status = reqwest::StatusCode::from_u16(answer.status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
        Err(match super::generic::classify(status, &answer.headers, self.reach.now) {
            Err(DeliveryError::Retryable { http_status, retry_after, .. }) => {
                DeliveryError::Retryable { http_status, message: what, retry_after }
            }
            _ => DeliveryError::Permanent { http_status: Some(answer.status), message: what },
        })
    }

    async fn wait_for_token(&self) -> Result<(), DeliveryError> {
        let (provider, rate) = (self.config.provider, self.rate);
        match self.reach.limiter.take(provider, &self.tenant.id, rate, Instant::now(), PATIENCE) {
            Ok(wait) if wait.is_zero() => Ok(()),
            Ok(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Err(wait) => Err(DeliveryError::Retryable {
                http_status: None,
                message: format!("holding back to stay within {}'s rate limit", provider.as_str()),
                retry_after: TimeDelta::from_std(wait).ok(),
            }),
        }
    }
}

/// A tenant's own limit, `"api_rate": {"calls": 190, "seconds": 10}`, for
/// accounts whose plan allows more than the provider's base tier.
fn tenant_rate(tenant: &TenantRecord) -> Option<Rate> {
    let rate = tenant.crm.get("api_rate")?;
    let calls = rate.get("calls")?.as_f64().filter(|c| (1.0..=100_000.0).contains(c))?;
    let seconds = rate.get("seconds")?.as_f64().filter(|s| (0.1..=86_400.0).contains(s))?;
    Some(Rate::per(calls, seconds))
}

/// What a tenant is told about an error answer: a fixed reason per status.
pub fn reason(status: u16) -> &'static str {
    match status {
        300..=399 => "a redirect, which is never followed",
        400 => "the request was refused as invalid (check the action's settings and field names)",
        401 => "the credentials were refused (expired or revoked: update the crm settings)",
        403 => "the credentials lack a permission this action needs",
        404 => "the object or endpoint was not found",
        408 => "the request timed out",
        409 => "a concurrent change on the CRM's side",
        410 => "the object is gone",
        422 => "a value in the request was refused",
        429 => "rate limited",
        500..=599 => "an error on the CRM's side",
        _ => "an unexpected answer",
    }
}

/// An answer's excerpt as the operator's log keeps it: 200 characters at
/// most, control characters dropped, and every credential of the tenant's
/// (a CRM that echoes the request) replaced by `***`.
fn log_excerpt(excerpt: &str, tenant: &TenantRecord) -> String {
    let mut text: String = excerpt.chars().filter(|c| !c.is_control()).collect();
    let secrets = tenant
        .crm
        .iter()
        .filter(|(key, _)| !crate::tenant::PUBLIC_CRM_KEYS.contains(&key.as_str()))
        .filter_map(|(_, value)| value.as_str())
        .chain([tenant.webhook_secret.expose()]);
    for secret in secrets.filter(|s| s.len() >= 6) {
        text = text.replace(secret, "***");
    }
    text.chars().take(200).collect()
}

/// A path for an error message: the query (which may hold a token) is cut.
fn redact_path(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

async fn read(mut response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_ANSWER {
            bytes.truncate(MAX_ANSWER);
            break;
        }
    }
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
    Answer { status, headers, body, excerpt }
}

/// `Retry-After` in seconds, if the answer has one.
pub fn retry_after_seconds(answer: &Answer) -> Option<TimeDelta> {
    answer.header("retry-after")?.trim().parse::<u32>().ok().map(|s| TimeDelta::seconds(i64::from(s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::action::FiredAction;
    use crate::ids::{ActionId, TenantId, TriggerId};
    use serde_json::json;

    fn item(kind: &str, params: Value) -> OutboxItem {
        OutboxItem::new(
            TenantId::parse("t").unwrap(),
            FiredAction {
                id: ActionId::parse("a1").unwrap(),
                trigger: TriggerId::parse("hot").unwrap(),
                kind: kind.into(),
                params,
                contact_id: ContactId::parse("42").unwrap(),
                deal_id: None,
                fired_at: Utc::now(),
                skipped: None,
            },
        )
    }

    #[test]
    fn a_notice_without_a_url_is_a_task_due_at_once_for_its_user_and_with_one_goes_to_it() {
        let message = format!("\n  Jhon is hot: 7\nOpened the pricing page {}", "x".repeat(300));
        let notice = item("notify", json!({"message": message, "user": "u-7", "url": null}));
        assert!(!posts_to_own_url(&notice));
        assert_eq!(
            Act::of(&notice).unwrap(),
            Act::CreateTask {
                title: "Jhon is hot: 7".into(),
                body: Some(message.clone()),
                due_at: Some(notice.action.fired_at),
                assignee: Some("u-7".into()),
            }
        );
        let long = item("notify", json!({"message": "y".repeat(300)}));
        let Act::CreateTask { title, .. } = Act::of(&long).unwrap() else { panic!("a task") };
        assert_eq!(title.chars().count(), HEADLINE_CHARS + 1, "cut, with an ellipsis: {title}");
        assert!(posts_to_own_url(&item("notify", json!({"message": "m", "url": "https://hooks.slack.com/x"}))));
        assert!(Act::of(&item("notify", json!({"user": "u"}))).is_err(), "a notice needs its message");
    }

    #[test]
    fn decodes_every_crm_action() {
        let due = "2026-11-23T10:00:00Z";
        assert_eq!(
            Act::of(&item("create_task", json!({"title": "Call", "body": null, "due_at": due}))).unwrap(),
            Act::CreateTask { title: "Call".into(), body: None, due_at: Some(due.parse().unwrap()), assignee: None }
        );
        assert_eq!(
            Act::of(&item("create_task", json!({"title": "Call", "assignee": "u-7"}))).unwrap(),
            Act::CreateTask { title: "Call".into(), body: None, due_at: None, assignee: Some("u-7".into()) }
        );
        assert_eq!(
            Act::of(&item("set_field", json!({"field": "score", "profile": "p", "value": 12}))).unwrap(),
            Act::SetField { field: "score".into(), value: Some(12.0) }
        );
        assert_eq!(
            Act::of(&item("move_stage", json!({"pipeline": "p", "stage": "s", "as_user": null}))).unwrap(),
            Act::MoveStage { pipeline: "p".into(), stage: "s".into(), as_user: None }
        );
        assert!(matches!(Act::of(&item("add_tag", json!({"tag": ""}))), Err(DeliveryError::Permanent { .. })));
        assert!(matches!(Act::of(&item("adjust_score", json!({}))), Err(DeliveryError::Permanent { .. })));
    }

    #[test]
    fn a_tenant_may_raise_or_lower_its_rate() {
        let mut record = TenantRecord {
            id: TenantId::parse("t").unwrap(),
            provider: Provider::Hubspot,
            webhook_secret: crate::tenant::Secret::new("s"),
            actions_url: None,
            crm: serde_json::Map::new(),
            token_hash: String::new(),
            previous_token: None,
            token_rotated_at: None,
            signing_secret: None,
            previous_signing: None,
            revision: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        assert_eq!(tenant_rate(&record), None);
        record.crm.insert("api_rate".into(), json!({"calls": 190, "seconds": 10}));
        assert_eq!(tenant_rate(&record), Some(Rate::per(190.0, 10.0)));
        record.crm.insert("api_rate".into(), json!({"calls": 0, "seconds": 10}));
        assert_eq!(tenant_rate(&record), None, "a nonsensical rate keeps the provider's");
    }

    #[test]
    fn redacts_queries_from_paths() {
        assert_eq!(redact_path("/x?api_token=s"), "/x");
        assert_eq!(redact_path("/x"), "/x");
    }
}
