//! Fired actions into HubSpot CRM v3 calls, and HubSpot's "slow down"
//! answers into waits.
//!
//! HubSpot has no tags: a tag is an option of a multi-checkbox contact
//! property (`scorehook_tags` unless `tags_property` names another),
//! whose value is the checked options joined by `;`. Adding one is a
//! read-modify-write: the option is added to the property if missing,
//! then the contact's value is read, extended and written whole (a PATCH
//! replaces the value). Tasks and notes are created with their default
//! associations to the contact and, when the action names one, the deal.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{ACCESS_TOKEN, API, OWNER_ID, TAGS_PROPERTY};
use crate::crm::inbound::text;
use crate::crm::outbound::{contact_of, deal_of, permanent, retry_after_seconds, setting, Act, Answer, CrmApi, Reach};
use crate::crm::DeliveryError;
use crate::outbox::OutboxItem;
use crate::tenant::TenantRecord;

/// The tags property when the tenant names none.
pub const DEFAULT_TAGS_PROPERTY: &str = "scorehook_tags";
/// HubSpot's default association type ids (HUBSPOT_DEFINED).
const TASK_TO_CONTACT: u32 = 204;
const TASK_TO_DEAL: u32 = 216;
const NOTE_TO_CONTACT: u32 = 202;
const NOTE_TO_DEAL: u32 = 214;
/// The wait for a 429 of the ten-second rolling window without `Retry-After`.
const ROLLING_WINDOW: TimeDelta = TimeDelta::seconds(10);
/// The wait HubSpot asks for on 423 Locked.
const LOCKED_WAIT: TimeDelta = TimeDelta::seconds(2);

/// Performs one fired action; `Ok` is the status of the last call.
pub async fn deliver(reach: Reach<'_>, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    let act = Act::of(item)?;
    let api = CrmApi::new(reach, tenant, &API)?.with_bearer(setting(tenant, ACCESS_TOKEN)?)?;
    let answer = match act {
        Act::MoveStage { pipeline, stage, as_user: _ } => move_stage(&api, item, &pipeline, &stage).await?,
        Act::AddTag(tag) => add_tag(&api, item, &tag).await?,
        Act::RemoveTag(tag) => remove_tag(&api, item, &tag).await?,
        Act::CreateTask { title, body, due_at, assignee } => {
            create_task(&api, item, &title, body.as_deref(), due_at, assignee.as_deref()).await?
        }
        Act::AddNote(text) => add_note(&api, item, &text).await?,
        Act::SetField { field, value } => set_field(&api, item, &field, value).await?,
    };
    Ok(answer.status)
}

/// 429: `Retry-After` when sent (undocumented), else one rolling window,
/// or until the next UTC midnight for the daily limit (the portal's own
/// time zone, where HubSpot resets it, is not known). 423 Locked: 2 s.
/// 477 Migration in progress: its `Retry-After`.
pub fn slow_down(answer: &Answer, now: DateTime<Utc>) -> Option<TimeDelta> {
    match answer.status {
        429 => retry_after_seconds(answer).or_else(|| match answer.body.get("policyName").and_then(Value::as_str) {
            Some("DAILY") => Some(until_next_utc_midnight(now)),
            _ => Some(ROLLING_WINDOW),
        }),
        423 => retry_after_seconds(answer).or(Some(LOCKED_WAIT)),
        477 => retry_after_seconds(answer).or(Some(ROLLING_WINDOW)),
        _ => None,
    }
}

fn until_next_utc_midnight(now: DateTime<Utc>) -> TimeDelta {
    let midnight = now.date_naive().succ_opt().and_then(|day| day.and_hms_opt(0, 0, 0)).map(|at| at.and_utc());
    midnight.map_or(TimeDelta::days(1), |at| (at - now).max(TimeDelta::seconds(1)))
}

/// An id for a URL path: HubSpot's ids are numeric, anything else is refused.
fn path_id<'i>(id: &'i str, what: &str) -> Result<&'i str, DeliveryError> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(permanent(format!("{what} {id:?} is not a HubSpot id")))
    }
}

fn contact(item: &OutboxItem) -> Result<&str, DeliveryError> {
    path_id(contact_of(item)?.as_str(), "contact")
}

/// The action's deal: its `deal_id`, or the subject of a deal profile's action.
fn deal(item: &OutboxItem) -> Result<Option<String>, DeliveryError> {
    let deal = deal_of(item).cloned().or_else(|| item.action.contact_id.deal());
    deal.map(|d| path_id(d.as_str(), "deal").map(str::to_owned)).transpose()
}

/// `PATCH /crm/v3/objects/deals/{id}` with the stage and its pipeline.
async fn move_stage(api: &CrmApi<'_>, item: &OutboxItem, pipeline: &str, stage: &str) -> Result<Answer, DeliveryError> {
    let deal = deal(item)?.ok_or_else(|| permanent("move_stage needs a deal: the action names none"))?;
    let body = json!({"properties": {"dealstage": stage, "pipeline": pipeline}});
    api.call(Method::PATCH, &format!("/crm/v3/objects/deals/{deal}"), Some(&body)).await
}

/// `PATCH /crm/v3/objects/contacts/{id}`: the score as a string (empty clears it).
async fn set_field(
    api: &CrmApi<'_>,
    item: &OutboxItem,
    field: &str,
    value: Option<f64>,
) -> Result<Answer, DeliveryError> {
    let contact = contact(item)?;
    let value = value.map(|v| v.to_string()).unwrap_or_default();
    let body = json!({"properties": {field: value}});
    api.call(Method::PATCH, &format!("/crm/v3/objects/contacts/{contact}"), Some(&body)).await
}

/// The associations of a new task or note: the contact and/or the deal.
fn associations(item: &OutboxItem, to_contact: u32, to_deal: u32) -> Result<Vec<Value>, DeliveryError> {
    let association = |id: &str, type_id: u32| json!({"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]});
    let mut list = Vec::new();
    if item.action.contact_id.deal().is_none() {
        list.push(association(contact(item)?, to_contact));
    }
    if let Some(deal) = deal(item)? {
        list.push(association(&deal, to_deal));
    }
    Ok(list)
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `POST /crm/v3/objects/tasks`: due at `hs_timestamp` (now when no due date).
async fn create_task(
    api: &CrmApi<'_>,
    item: &OutboxItem,
    title: &str,
    body: Option<&str>,
    due_at: Option<DateTime<Utc>>,
    assignee: Option<&str>,
) -> Result<Answer, DeliveryError> {
    let mut properties = Map::new();
    properties.insert("hs_timestamp".into(), json!(timestamp(due_at.unwrap_or(api.now()))));
    properties.insert("hs_task_subject".into(), json!(title));
    if let Some(body) = body {
        properties.insert("hs_task_body".into(), json!(body));
    }
    properties.insert("hs_task_status".into(), json!("NOT_STARTED"));
    properties.insert("hs_task_type".into(), json!("TODO"));
    let settings = Value::Object(api.tenant().crm.clone());
    if let Some(owner) = assignee.map(Cow::Borrowed).or_else(|| text(&settings, OWNER_ID)) {
        properties.insert("hubspot_owner_id".into(), json!(owner));
    }
    let body = json!({"properties": properties, "associations": associations(item, TASK_TO_CONTACT, TASK_TO_DEAL)?});
    api.call(Method::POST, "/crm/v3/objects/tasks", Some(&body)).await
}

/// `POST /crm/v3/objects/notes`, timestamped now.
async fn add_note(api: &CrmApi<'_>, item: &OutboxItem, text: &str) -> Result<Answer, DeliveryError> {
    let body = json!({
        "properties": {"hs_timestamp": timestamp(api.now()), "hs_note_body": text},
        "associations": associations(item, NOTE_TO_CONTACT, NOTE_TO_DEAL)?,
    });
    api.call(Method::POST, "/crm/v3/objects/notes", Some(&body)).await
}

/// The tenant's tags property, checked for use in a path.
fn tags_property(api: &CrmApi<'_>) -> Result<String, DeliveryError> {
    let name = api.tenant().crm.get(TAGS_PROPERTY).and_then(Value::as_str).filter(|p| !p.is_empty());
    let name = name.unwrap_or(DEFAULT_TAGS_PROPERTY);
    if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(name.to_owned())
    } else {
        Err(permanent(format!("tags_property {name:?} is not a HubSpot property name")))
    }
}

fn checked_tag(tag: &str) -> Result<&str, DeliveryError> {
    if tag.contains(';') {
        return Err(permanent(format!("the tag {tag:?} contains ';', which separates HubSpot checkbox values")));
    }
    Ok(tag)
}

/// The contact's tags: `GET /crm/v3/objects/contacts/{id}?properties=<property>`.
async fn read_tags(api: &CrmApi<'_>, contact: &str, property: &str) -> Result<(Answer, Vec<String>), DeliveryError> {
    let path = format!("/crm/v3/objects/contacts/{contact}?properties={property}");
    let answer = api.call(Method::GET, &path, None).await?;
    let value = answer.body.get("properties").and_then(|p| p.get(property)).and_then(Value::as_str);
    let tags = value.unwrap_or_default().split(';').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    let tags = tags.collect();
    Ok((answer, tags))
}

/// Writes the whole value: `PATCH /crm/v3/objects/contacts/{id}`.
async fn write_tags(api: &CrmApi<'_>, contact: &str, property: &str, tags: &[String]) -> Result<Answer, DeliveryError> {
    let body = json!({"properties": {property: tags.join(";")}});
    api.call(Method::PATCH, &format!("/crm/v3/objects/contacts/{contact}"), Some(&body)).await
}

/// Makes `tag` an option of the property: `GET`, then, when missing,
/// `PATCH /crm/v3/properties/contacts/<property>` with the complete list.
async fn ensure_option(api: &CrmApi<'_>, property: &str, tag: &str) -> Result<(), DeliveryError> {
    let path = format!("/crm/v3/properties/contacts/{property}");
    let answer = api.call(Method::GET, &path, None).await?;
    let mut options = answer.body.get("options").and_then(Value::as_array).cloned().unwrap_or_default();
    if options.iter().any(|o| o.get("value").and_then(Value::as_str) == Some(tag)) {
        return Ok(());
    }
    options.push(json!({"label": tag, "value": tag, "displayOrder": options.len(), "hidden": false}));
    api.call(Method::PATCH, &path, Some(&json!({"options": options}))).await?;
    Ok(())
}

async fn add_tag(api: &CrmApi<'_>, item: &OutboxItem, tag: &str) -> Result<Answer, DeliveryError> {
    let (contact, tag, property) = (contact(item)?, checked_tag(tag)?, tags_property(api)?);
    ensure_option(api, &property, tag).await?;
    let (read, mut tags) = read_tags(api, contact, &property).await?;
    if tags.iter().any(|t| t == tag) {
        return Ok(read);
    }
    tags.push(tag.to_owned());
    write_tags(api, contact, &property, &tags).await
}

async fn remove_tag(api: &CrmApi<'_>, item: &OutboxItem, tag: &str) -> Result<Answer, DeliveryError> {
    let (contact, property) = (contact(item)?, tags_property(api)?);
    let (read, tags) = read_tags(api, contact, &property).await?;
    if !tags.iter().any(|t| t == tag) {
        return Ok(read);
    }
    let kept: Vec<String> = tags.into_iter().filter(|t| t != tag).collect();
    write_tags(api, contact, &property, &kept).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn answer(status: u16, retry_after: Option<&str>, body: Value) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert("retry-after", HeaderValue::from_str(value).unwrap());
        }
        Answer { status, headers, body, excerpt: String::new() }
    }

    #[test]
    fn slow_down_follows_hubspots_policies() {
        let now: DateTime<Utc> = "2025-11-25T14:00:00Z".parse().unwrap();
        let rolling = json!({"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"});
        assert_eq!(slow_down(&answer(429, None, rolling.clone()), now), Some(TimeDelta::seconds(10)));
        assert_eq!(slow_down(&answer(429, Some("3"), rolling), now), Some(TimeDelta::seconds(3)));
        let daily = json!({"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY"});
        assert_eq!(slow_down(&answer(429, None, daily), now), Some(TimeDelta::hours(10)));
        assert_eq!(slow_down(&answer(429, None, Value::Null), now), Some(TimeDelta::seconds(10)));
        assert_eq!(slow_down(&answer(423, None, Value::Null), now), Some(TimeDelta::seconds(2)));
        assert_eq!(slow_down(&answer(477, Some("30"), Value::Null), now), Some(TimeDelta::seconds(30)));
        assert_eq!(slow_down(&answer(500, Some("30"), Value::Null), now), None);
        assert_eq!(slow_down(&answer(400, None, Value::Null), now), None);
    }

    #[test]
    fn the_daily_wait_never_ends_at_zero() {
        let just_before: DateTime<Utc> = "2025-11-25T23:59:59.900Z".parse().unwrap();
        assert_eq!(until_next_utc_midnight(just_before), TimeDelta::seconds(1));
    }

    #[test]
    fn only_plain_ids_reach_a_path() {
        assert_eq!(path_id("123", "contact"), Ok("123"));
        assert!(path_id("../x", "contact").is_err());
        assert!(path_id("1?a=b", "contact").is_err());
        assert!(path_id("", "contact").is_err());
    }
}
