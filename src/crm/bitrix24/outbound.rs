//! Bitrix24 calls out: the portal's REST API through the tenant's
//! incoming-webhook URL, the fired actions, and Bitrix24's "slow down".
//!
//! The webhook URL (`https://<portal>/rest/<user>/<code>/`) is the
//! credential: it is only ever the base of a call, never part of an error
//! text (the framework's client strips URLs from transport errors, and the
//! paths here are just `/<method>.json`).

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{API, RESPONSIBLE_ID, WEBHOOK_URL};
use crate::crm::outbound::{contact_of, deal_of, permanent, setting, Act, Answer, CrmApi, Reach};
use crate::crm::DeliveryError;
use crate::outbox::OutboxItem;
use crate::tenant::TenantRecord;

/// The multiple string user field that stands in for tags (contacts have none in REST).
pub const TAGS_FIELD: &str = "UF_CRM_SCOREHOOK_TAGS";

/// How long to hold back after `503 QUERY_LIMIT_EXCEEDED`: the bucket
/// drains 2 per second, so a few freed slots are a second or two away.
const QUERY_LIMIT_PAUSE: TimeDelta = TimeDelta::seconds(2);
/// After `429 OPERATION_TIME_LIMIT` without `time.operating_reset_at`.
const OPERATING_PAUSE: TimeDelta = TimeDelta::seconds(60);
/// The operating budget is counted over 10 minutes: no wait is longer.
const LONGEST_PAUSE: TimeDelta = TimeDelta::minutes(10);

/// `Some(wait)` for Bitrix24's rate-limit answers: `503` with
/// `QUERY_LIMIT_EXCEEDED` (no `Retry-After`), and `429`
/// (`OPERATION_TIME_LIMIT`) until `time.operating_reset_at`.
pub fn slow_down(answer: &Answer, now: DateTime<Utc>) -> Option<TimeDelta> {
    let code = answer.body.get("error").and_then(Value::as_str);
    match answer.status {
        503 if code == Some("QUERY_LIMIT_EXCEEDED") => Some(QUERY_LIMIT_PAUSE),
        429 => Some(operating_reset(&answer.body, now).unwrap_or(OPERATING_PAUSE)),
        _ => None,
    }
}

/// The wait until `time.operating_reset_at` (unix seconds), within 1 s to 10 min.
fn operating_reset(body: &Value, now: DateTime<Utc>) -> Option<TimeDelta> {
    let at = body.get("time")?.get("operating_reset_at")?;
    let seconds = at.as_f64().or_else(|| at.as_str()?.parse().ok())?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 1e12 {
        return None;
    }
    let reset = DateTime::from_timestamp(seconds.ceil() as i64, 0)?;
    Some((reset - now).clamp(TimeDelta::seconds(1), LONGEST_PAUSE))
}

/// The parts of an incoming-webhook URL that matter.
pub(super) struct Webhook {
    /// `<origin>/rest/<user>/<code>`: calls append `/<method>.json`.
    pub base: String,
    /// The user the webhook acts as (`/rest/<user>/…`).
    pub user: String,
}

/// Reads `crm.webhook_url`; `crm.base_url`, when set, replaces its scheme and host.
pub(super) fn webhook(tenant: &TenantRecord) -> Result<Webhook, DeliveryError> {
    webhook_at(tenant, setting(tenant, WEBHOOK_URL)?, "crm.webhook_url")
}

/// Reads the webhook URL `hook`, the setting `key` (named in errors, the
/// URL never); `crm.base_url`, when set, replaces its scheme and host.
pub(super) fn webhook_at(tenant: &TenantRecord, hook: &str, key: &str) -> Result<Webhook, DeliveryError> {
    let shape = format!("{key} must look like https://<portal>/rest/<user>/<code>/");
    let url = reqwest::Url::parse(hook).map_err(|_| permanent(shape.clone()))?;
    let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    let user = match segments.as_slice() {
        ["rest", user, _code, ..] if user.bytes().all(|b| b.is_ascii_digit()) => (*user).to_owned(),
        _ => return Err(permanent(shape)),
    };
    let origin = match tenant.crm.get("base_url").and_then(Value::as_str).filter(|b| !b.is_empty()) {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => url.origin().ascii_serialization(),
    };
    Ok(Webhook { base: format!("{origin}/{}", segments.join("/")), user })
}

/// The tenant's portal API, every call going to its webhook URL.
pub(super) fn portal<'a>(reach: Reach<'a>, tenant: &'a TenantRecord) -> Result<(CrmApi<'a>, String), DeliveryError> {
    let hook = webhook(tenant)?;
    Ok((CrmApi::at(reach, tenant, &API, &hook.base), hook.user))
}

/// A successful REST answer: the HTTP status and its `result`.
pub(super) struct Reply {
    pub status: u16,
    pub result: Value,
}

/// `POST <webhook>/<method>.json` with a JSON body. A 2xx that carries
/// `{"error": …}` is a failure too (retryable when it is the rate limit).
pub(super) async fn rest(api: &CrmApi<'_>, method: &str, params: &Value) -> Result<Reply, DeliveryError> {
    let answer = api.call(Method::POST, &format!("/{method}.json"), Some(params)).await?;
    let Some(code) = answer.body.get("error") else {
        return Ok(Reply { status: answer.status, result: answer.body.get("result").cloned().unwrap_or(Value::Null) });
    };
    // Bitrix24's error codes are a documented vocabulary (`ACCESS_DENIED`,
    // `NOT_FOUND`, …): one of that shape is named; the description, free
    // text, goes only to the operator's log.
    let code = code
        .as_str()
        .filter(|c| !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let code = code.unwrap_or("(unnamed)");
    let description = answer.body.get("error_description").and_then(Value::as_str).unwrap_or_default();
    let description: String = description.chars().filter(|c| !c.is_control()).take(200).collect();
    tracing::warn!(tenant = %api.tenant().id, method, code, description, "Bitrix24 answered an error");
    let message = format!("{method} answered {} with error {code}", answer.status);
    Err(match code {
        "QUERY_LIMIT_EXCEEDED" => {
            DeliveryError::Retryable { http_status: Some(answer.status), message, retry_after: Some(QUERY_LIMIT_PAUSE) }
        }
        _ => DeliveryError::Permanent { http_status: Some(answer.status), message },
    })
}

/// A Bitrix24 object id: a positive integer, sent as a JSON number.
pub(super) fn numeric(id: &str, what: &str) -> Result<u64, DeliveryError> {
    id.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| permanent(format!("{what} {id:?} is not a Bitrix24 id")))
}

/// Performs one fired action; `Ok` is the HTTP status of the last call.
pub async fn deliver(reach: Reach<'_>, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    let act = Act::of(item)?;
    let (api, user) = portal(reach, tenant)?;
    let contact = || numeric(contact_of(item)?.as_str(), "the contact id");
    let reply = match act {
        Act::MoveStage { pipeline, stage, as_user } => {
            return super::stages::move_stage(reach, tenant, item, &pipeline, &stage, as_user.as_deref()).await
        }
        Act::AddTag(tag) => return retag(&api, contact()?, Retag::Add(tag)).await,
        Act::RemoveTag(tag) => return retag(&api, contact()?, Retag::Remove(tag)).await,
        Act::CreateTask { title, body, due_at, assignee } => {
            let responsible = match assignee {
                Some(user) => numeric(&user, "the assignee (a Bitrix24 user id)")?,
                None => responsible(tenant, &user)?,
            };
            let mut links = vec![format!("C_{}", contact()?)];
            if let Some(deal) = deal_of(item) {
                links.push(format!("D_{}", numeric(deal.as_str(), "the deal id")?));
            }
            let mut fields = Map::new();
            fields.insert("TITLE".into(), title.into());
            if let Some(body) = body {
                fields.insert("DESCRIPTION".into(), body.into());
            }
            fields.insert("RESPONSIBLE_ID".into(), responsible.into());
            if let Some(due) = due_at {
                fields.insert("DEADLINE".into(), due.to_rfc3339_opts(SecondsFormat::Secs, false).into());
            }
            fields.insert("UF_CRM_TASK".into(), json!(links));
            rest(&api, "tasks.task.add", &json!({"fields": fields})).await?
        }
        Act::AddNote(text) => {
            let fields = json!({"ENTITY_ID": contact()?, "ENTITY_TYPE": "contact", "COMMENT": text});
            rest(&api, "crm.timeline.comment.add", &json!({"fields": fields})).await?
        }
        Act::SetField { field, value } => {
            let field = user_field(&field)?;
            let params = json!({"id": contact()?, "fields": {field: value}, "params": {"REGISTER_SONET_EVENT": "N"}});
            rest(&api, "crm.contact.update", &params).await?
        }
    };
    Ok(reply.status)
}

/// The user tasks are assigned to: `crm.responsible_id` (text or number),
/// else the user the incoming webhook acts as.
fn responsible(tenant: &TenantRecord, webhook_user: &str) -> Result<u64, DeliveryError> {
    match tenant.crm.get(RESPONSIBLE_ID) {
        Some(Value::Number(n)) => numeric(&n.to_string(), "crm.responsible_id"),
        Some(Value::String(s)) if !s.is_empty() => numeric(s, "crm.responsible_id"),
        _ => numeric(webhook_user, "the webhook's user"),
    }
}

/// `score` → `UF_CRM_SCORE`; names already starting `UF_CRM_` are kept.
/// Bitrix24 allows `A-Z 0-9 _`, at most 50 characters in all.
fn user_field(field: &str) -> Result<String, DeliveryError> {
    let upper = field.to_ascii_uppercase();
    let name = if upper.starts_with("UF_CRM_") { upper } else { format!("UF_CRM_{upper}") };
    let valid = name.len() <= 50 && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(permanent(format!(
            "{field:?} cannot name a Bitrix24 user field (A-Z 0-9 _, at most 50 characters with UF_CRM_)"
        )));
    }
    Ok(name)
}

enum Retag {
    Add(String),
    Remove(String),
}

/// Read-modify-write of the tags field: the whole array is written back.
/// A tag already there (or already gone) needs no write.
async fn retag(api: &CrmApi<'_>, contact: u64, change: Retag) -> Result<u16, DeliveryError> {
    let read = rest(api, "crm.contact.get", &json!({"id": contact})).await?;
    let current = read.result.get(TAGS_FIELD).ok_or_else(|| {
        permanent(format!(
            "contact {contact} has no {TAGS_FIELD} field: create it once with crm.contact.userfield.add (see the Bitrix24 connector docs)"
        ))
    })?;
    let mut tags = tag_values(current);
    let changed = match &change {
        Retag::Add(tag) if !tags.contains(tag) => {
            tags.push(tag.clone());
            true
        }
        Retag::Remove(tag) if tags.contains(tag) => {
            tags.retain(|t| t != tag);
            true
        }
        _ => false,
    };
    if !changed {
        return Ok(read.status);
    }
    let params = json!({"id": contact, "fields": {TAGS_FIELD: tags}, "params": {"REGISTER_SONET_EVENT": "N"}});
    Ok(rest(api, "crm.contact.update", &params).await?.status)
}

/// A multiple field's values: an array of strings (or numbers); `false`,
/// `null` and `""` are how an empty field comes back.
fn tag_values(value: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::tenant;
    use super::*;

    fn answer(status: u16, body: Value) -> Answer {
        Answer::fake(status, &[], body)
    }

    #[test]
    fn the_rate_limit_answers_slow_down_and_nothing_else_does() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let limited = json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"});
        assert_eq!(slow_down(&answer(503, limited), now), Some(TimeDelta::seconds(2)));
        let reset = now.timestamp() + 42;
        let operating = json!({"error": "OPERATION_TIME_LIMIT", "time": {"operating_reset_at": reset}});
        assert_eq!(slow_down(&answer(429, operating), now), Some(TimeDelta::seconds(42)));
        let as_text = json!({"error": "OPERATION_TIME_LIMIT", "time": {"operating_reset_at": reset.to_string()}});
        assert_eq!(slow_down(&answer(429, as_text), now), Some(TimeDelta::seconds(42)));
        assert_eq!(
            slow_down(&answer(429, json!({"error": "OPERATION_TIME_LIMIT"})), now),
            Some(TimeDelta::seconds(60))
        );
        let past = json!({"time": {"operating_reset_at": now.timestamp() - 100}});
        assert_eq!(slow_down(&answer(429, past), now), Some(TimeDelta::seconds(1)), "never less than a second");
        let far = json!({"time": {"operating_reset_at": now.timestamp() + 86_400}});
        assert_eq!(slow_down(&answer(429, far), now), Some(TimeDelta::minutes(10)), "never past the 10-minute budget");
        assert_eq!(slow_down(&answer(503, json!({"error": "OVERLOAD_LIMIT"})), now), None, "a manual block");
        assert_eq!(slow_down(&answer(500, Value::Null), now), None);
        assert_eq!(slow_down(&answer(200, json!({"result": true})), now), None);
    }

    #[test]
    fn the_webhook_url_gives_base_and_user_and_base_url_replaces_its_host() {
        let hook = webhook(&tenant(json!({"webhook_url": "https://portal.bitrix24.com/rest/1/abc123/"}))).unwrap();
        assert_eq!(hook.base, "https://portal.bitrix24.com/rest/1/abc123");
        assert_eq!(hook.user, "1");
        let local = tenant(
            json!({"webhook_url": "https://portal.bitrix24.com/rest/7/abc123", "base_url": "http://127.0.0.1:9/"}),
        );
        assert_eq!(webhook(&local).unwrap().base, "http://127.0.0.1:9/rest/7/abc123");
        for bad in ["not a url", "https://portal.bitrix24.com/", "https://portal.bitrix24.com/rest/x/abc/"] {
            let err = webhook(&tenant(json!({"webhook_url": bad}))).err().unwrap();
            assert!(!err.to_string().contains(bad), "the URL never reaches the error: {err}");
        }
        let secret = "https://portal.bitrix24.com/rest/x/s3cr3tcode/";
        let err = webhook(&tenant(json!({"webhook_url": secret}))).err().unwrap();
        assert!(!err.to_string().contains("s3cr3tcode"), "{err}");
        assert!(matches!(webhook(&tenant(json!({}))), Err(DeliveryError::Permanent { .. })));
    }

    #[test]
    fn score_fields_become_user_field_names() {
        assert_eq!(user_field("scorehook_score").unwrap(), "UF_CRM_SCOREHOOK_SCORE");
        assert_eq!(user_field("UF_CRM_LEAD_SCORE").unwrap(), "UF_CRM_LEAD_SCORE");
        assert!(user_field("has space").is_err());
        assert!(user_field(&"x".repeat(44)).is_err(), "UF_CRM_ plus 44 is over 50");
    }

    #[test]
    fn tag_fields_read_whatever_an_empty_or_full_field_looks_like() {
        assert_eq!(tag_values(&json!(["a", "b", ""])), vec!["a", "b"]);
        assert_eq!(tag_values(&json!(false)), Vec::<String>::new());
        assert_eq!(tag_values(&Value::Null), Vec::<String>::new());
        assert_eq!(tag_values(&json!("solo")), vec!["solo"]);
        assert_eq!(tag_values(&json!([7])), vec!["7"]);
    }

    #[test]
    fn tasks_go_to_the_configured_user_or_the_webhooks_own() {
        assert_eq!(responsible(&tenant(json!({})), "1").unwrap(), 1);
        assert_eq!(responsible(&tenant(json!({"responsible_id": "17"})), "1").unwrap(), 17);
        assert_eq!(responsible(&tenant(json!({"responsible_id": 17})), "1").unwrap(), 17);
        assert!(responsible(&tenant(json!({"responsible_id": "boss"})), "1").is_err());
    }

    #[test]
    fn ids_must_be_bitrix_integers() {
        assert_eq!(numeric("42", "c").unwrap(), 42);
        assert!(numeric("0", "c").is_err());
        assert!(numeric("c_42", "c").is_err());
    }
}
