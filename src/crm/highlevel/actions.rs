//! Fired actions into HighLevel API v2 calls.
//!
//! Every call carries `Authorization: Bearer <access_token>` and
//! `Version: 2021-07-28`. Tags are native (`POST`/`DELETE
//! /contacts/{id}/tags`, the removal with a JSON body); tasks and notes
//! attach to the contact only, so a deal is named in their body; the score
//! goes into a contact custom field by id. The token never reaches an error.

use chrono::SecondsFormat;
use reqwest::Method;
use serde_json::{json, Value};

use super::{API, API_VERSION};
use crate::crm::outbound::{contact_of, deal_of, permanent, setting, Act, CrmApi, Reach};
use crate::crm::DeliveryError;
use crate::outbox::OutboxItem;
use crate::tenant::TenantRecord;

/// The tenant setting naming the numeric contact custom field that receives the score.
pub const SCORE_FIELD_SETTING: &str = "score_field_id";

/// The tenant's API, authenticated and versioned.
pub fn api<'a>(reach: Reach<'a>, tenant: &'a TenantRecord) -> Result<CrmApi<'a>, DeliveryError> {
    CrmApi::new(reach, tenant, &API)?.with_bearer(setting(tenant, "access_token")?)?.with_header("version", API_VERSION)
}

/// Performs one fired action through the API.
pub async fn deliver(reach: Reach<'_>, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    let (method, path, body) = request(tenant, item, reach.now)?;
    let answer = api(reach, tenant)?.call(method, &path, Some(&body)).await?;
    Ok(answer.status)
}

/// The one call an action makes: method, path and JSON body.
fn request(
    tenant: &TenantRecord,
    item: &OutboxItem,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Method, String, Value), DeliveryError> {
    let contact = || contact_of(item).map(|c| format!("/contacts/{}", segment(c.as_str())));
    let deal_note = deal_of(item).map(|d| format!("Deal (opportunity): {d}"));
    Ok(match Act::of(item)? {
        Act::MoveStage { pipeline, stage, as_user } => {
            let deal = deal_of(item).ok_or_else(|| permanent("move_stage needs a deal (opportunity) to move"))?;
            let path = format!("/opportunities/{}", segment(deal.as_str()));
            let mut change = json!({"pipelineId": pipeline, "pipelineStageId": stage});
            // The API records the token as the one who moved it; `as_user` assigns the opportunity to that user.
            if let Some(user) = as_user {
                change["assignedTo"] = Value::String(user);
            }
            (Method::PUT, path, change)
        }
        Act::AddTag(tag) => (Method::POST, format!("{}/tags", contact()?), json!({"tags": [tag]})),
        Act::RemoveTag(tag) => (Method::DELETE, format!("{}/tags", contact()?), json!({"tags": [tag]})),
        Act::CreateTask { title, body, due_at, assignee } => {
            let due = due_at.unwrap_or(now).to_rfc3339_opts(SecondsFormat::Secs, true);
            let mut task = json!({"title": title, "dueDate": due, "completed": false});
            if let Some(user) = assignee {
                task["assignedTo"] = Value::String(user);
            }
            if let Some(text) = joined(body, deal_note) {
                task["body"] = Value::String(text);
            }
            (Method::POST, format!("{}/tasks", contact()?), task)
        }
        Act::AddNote(text) => {
            let text = joined(Some(text), deal_note).unwrap_or_default();
            (Method::POST, format!("{}/notes", contact()?), json!({"body": text}))
        }
        Act::SetField { field, value } => {
            let id = score_field(tenant, &field)?;
            (Method::PUT, contact()?, json!({"customFields": [{"id": id, "field_value": number(value)}]}))
        }
    })
}

/// The action's text with the deal mentioned on a line of its own.
fn joined(text: Option<String>, deal: Option<String>) -> Option<String> {
    match (text, deal) {
        (Some(text), Some(deal)) => Some(format!("{text}\n\n{deal}")),
        (text, deal) => text.or(deal),
    }
}

/// The custom field id: the action's field when it looks like a HighLevel
/// id, else the tenant's `score_field_id`.
fn score_field(tenant: &TenantRecord, field: &str) -> Result<String, DeliveryError> {
    if looks_like_id(field) {
        return Ok(field.to_owned());
    }
    setting(tenant, SCORE_FIELD_SETTING).map(str::to_owned)
}

/// HighLevel ids are 20 (sometimes 24) ASCII letters and digits, e.g.
/// `BcdmQEsNgz6AVpgLVUJ0`; field names like `scorehook_score` are not.
fn looks_like_id(field: &str) -> bool {
    (20..=24).contains(&field.len())
        && field.bytes().all(|b| b.is_ascii_alphanumeric())
        && field.bytes().any(|b| b.is_ascii_digit())
        && field.bytes().any(|b| b.is_ascii_alphabetic())
}

/// Whole scores as integers (`12`, not `12.0`); no score clears the field.
fn number(value: Option<f64>) -> Value {
    match value {
        Some(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => json!(v as i64),
        Some(v) => json!(v),
        None => Value::Null,
    }
}

/// An id as one path segment: anything but unreserved characters is percent-encoded.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::highlevel::auth::tests::tenant;
    use crate::engine::action::FiredAction;
    use crate::ids::{ActionId, ContactId, DealId, TenantId, TriggerId};
    use chrono::{DateTime, Utc};

    fn item(kind: &str, params: Value, deal: Option<&str>) -> OutboxItem {
        OutboxItem::new(
            TenantId::parse("hl").unwrap(),
            FiredAction {
                id: ActionId::parse("a1").unwrap(),
                trigger: TriggerId::parse("hot").unwrap(),
                kind: kind.into(),
                params,
                contact_id: ContactId::parse("c42").unwrap(),
                deal_id: deal.map(|d| DealId::parse(d).unwrap()),
                fired_at: Utc::now(),
                skipped: None,
            },
        )
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn each_action_is_the_documented_call() {
        let t = tenant(json!({"score_field_id": "BcdmQEsNgz6AVpgLVUJ0"}));
        let run =
            |kind: &str, params: Value, deal: Option<&str>| request(&t, &item(kind, params, deal), now()).unwrap();
        assert_eq!(
            run("move_stage", json!({"pipeline": "p1", "stage": "s2"}), Some("opp1")),
            (Method::PUT, "/opportunities/opp1".into(), json!({"pipelineId": "p1", "pipelineStageId": "s2"}))
        );
        assert_eq!(
            run("add_tag", json!({"tag": "Caliente"}), None),
            (Method::POST, "/contacts/c42/tags".into(), json!({"tags": ["Caliente"]}))
        );
        assert_eq!(
            run("remove_tag", json!({"tag": "Caliente"}), None),
            (Method::DELETE, "/contacts/c42/tags".into(), json!({"tags": ["Caliente"]}))
        );
        assert_eq!(
            run(
                "create_task",
                json!({"title": "Follow up", "body": "Call", "due_at": "2026-11-24T10:00:00Z"}),
                Some("opp1")
            ),
            (
                Method::POST,
                "/contacts/c42/tasks".into(),
                json!({"title": "Follow up", "body": "Call\n\nDeal (opportunity): opp1", "dueDate": "2026-11-24T10:00:00Z", "completed": false})
            )
        );
        assert_eq!(
            run("create_task", json!({"title": "Follow up"}), None),
            (
                Method::POST,
                "/contacts/c42/tasks".into(),
                json!({"title": "Follow up", "dueDate": "2026-11-23T10:00:00Z", "completed": false})
            )
        );
        assert_eq!(
            run("add_note", json!({"text": "Hot"}), None),
            (Method::POST, "/contacts/c42/notes".into(), json!({"body": "Hot"}))
        );
        assert_eq!(
            run("set_field", json!({"field": "scorehook_score", "value": 12}), None),
            (
                Method::PUT,
                "/contacts/c42".into(),
                json!({"customFields": [{"id": "BcdmQEsNgz6AVpgLVUJ0", "field_value": 12}]})
            )
        );
        assert_eq!(
            run("set_field", json!({"field": "Zx81QEsNgz6AVpgLVUJ9", "value": 2.5}), None).2,
            json!({"customFields": [{"id": "Zx81QEsNgz6AVpgLVUJ9", "field_value": 2.5}]}),
            "a field id in the action wins"
        );
    }

    #[test]
    fn missing_settings_and_deals_are_permanent() {
        let bare = tenant(json!({}));
        let set = item("set_field", json!({"field": "scorehook_score", "value": 1}), None);
        assert!(matches!(request(&bare, &set, now()), Err(DeliveryError::Permanent { .. })));
        let moving = item("move_stage", json!({"pipeline": "p", "stage": "s"}), None);
        assert!(matches!(request(&bare, &moving, now()), Err(DeliveryError::Permanent { .. })));
    }

    #[test]
    fn ids_are_single_path_segments() {
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(segment("wWhVuzqpRuOA1ZVWi4FC"), "wWhVuzqpRuOA1ZVWi4FC");
        assert!(looks_like_id("BcdmQEsNgz6AVpgLVUJ0"));
        assert!(!looks_like_id("scorehook_score"));
        assert!(!looks_like_id("abcdefghijklmnopqrst"));
        assert_eq!(number(None), Value::Null);
    }
}
