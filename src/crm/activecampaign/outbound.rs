//! ActiveCampaign actions out: each fired action becomes the API v3 calls
//! `shared/crm/activecampaign.md` §4 documents, at the account's own
//! `crm.base_url` (paths under `/api/3`) with the `Api-Token` header.
//!
//! Tags are native and go by id, so adding one finds or creates the tag
//! first, and removing one finds the contact's link to it. ActiveCampaign
//! has no idempotency header: a retry after a lost answer may create a
//! second task or note.

use std::borrow::Cow;

use chrono::SecondsFormat;
use reqwest::Method;
use serde_json::{json, Value};

use super::API;
use crate::crm::inbound::text;
use crate::crm::outbound::{contact_of, deal_of, permanent, setting, Act, CrmApi, Reach};
use crate::crm::DeliveryError;
use crate::ids::{ContactId, DealId};
use crate::outbox::OutboxItem;
use crate::tenant::TenantRecord;

/// The account's API key (Settings > Developer): a credential.
pub const TOKEN_SETTING: &str = "api_token";
/// The numeric id of the contact field `set_field` writes when the action's
/// field is not itself a numeric id.
pub const SCORE_FIELD_SETTING: &str = "score_field_id";
/// The deal task type id of created tasks (`GET /api/3/dealTasktypes`).
pub const TASK_TYPE_SETTING: &str = "task_type_id";
const DEFAULT_TASK_TYPE: &str = "1";

/// Where API v3 lives under the account's base URL.
const API_PATH: &str = "/api/3";

/// Performs one fired action through the tenant's ActiveCampaign API.
pub async fn deliver(reach: Reach<'_>, tenant: &TenantRecord, item: &OutboxItem) -> Result<u16, DeliveryError> {
    let act = Act::of(item)?;
    let api = client(reach, tenant)?;
    match act {
        Act::MoveStage { pipeline, stage, .. } => move_stage(&api, item, &pipeline, &stage).await,
        Act::AddTag(tag) => add_tag(&api, contact_of(item)?, &tag).await,
        Act::RemoveTag(tag) => remove_tag(&api, contact_of(item)?, &tag).await,
        Act::CreateTask { title, body, due_at, assignee } => {
            let due = due_at.unwrap_or_else(|| api.now()).to_rfc3339_opts(SecondsFormat::Secs, true);
            create_task(&api, item, &title, body.as_deref(), &due, assignee.as_deref()).await
        }
        Act::AddNote(note) => add_note(&api, item, &note).await,
        Act::SetField { field, value } => set_field(&api, contact_of(item)?, &field, value).await,
    }
}

/// The tenant's API: `crm.base_url` + `/api/3` (a base copied with `/api/3` works too).
fn client<'a>(reach: Reach<'a>, tenant: &'a TenantRecord) -> Result<CrmApi<'a>, DeliveryError> {
    let token = setting(tenant, TOKEN_SETTING)?;
    let account = setting(tenant, "base_url")?.trim_end_matches('/');
    let base = format!("{}{API_PATH}", account.trim_end_matches(API_PATH));
    CrmApi::at(reach, tenant, &API, &base).with_header("api-token", token)
}

/// `PUT /deals/{id}` with the stage and its pipeline (`group`); both must be ids.
async fn move_stage(api: &CrmApi<'_>, item: &OutboxItem, pipeline: &str, stage: &str) -> Result<u16, DeliveryError> {
    let deal = deal(item).ok_or_else(|| permanent("move_stage needs a deal, and the action names none"))?;
    if !is_id(pipeline) || !is_id(stage) {
        return Err(permanent(format!(
            "ActiveCampaign moves deals by pipeline and stage ids, not {pipeline:?}/{stage:?}: \
             use the ids from GET /api/3/dealGroups and /api/3/dealStages"
        )));
    }
    let body = json!({"deal": {"stage": stage, "group": pipeline}});
    Ok(api.call(Method::PUT, &format!("/deals/{}", segment(deal.as_str())), Some(&body)).await?.status)
}

/// Finds (or creates) the tag, then links it: `POST /contactTags`.
async fn add_tag(api: &CrmApi<'_>, contact: &ContactId, tag: &str) -> Result<u16, DeliveryError> {
    let tag_id = match find_tag(api, tag).await?.1 {
        Some(id) => id,
        None => create_tag(api, tag).await?,
    };
    let body = json!({"contactTag": {"contact": contact.as_str(), "tag": tag_id}});
    Ok(api.call(Method::POST, "/contactTags", Some(&body)).await?.status)
}

/// Deletes the contact's link to the tag; a tag that does not exist, or
/// that the contact does not have, leaves nothing to do.
async fn remove_tag(api: &CrmApi<'_>, contact: &ContactId, tag: &str) -> Result<u16, DeliveryError> {
    let (status, tag_id) = find_tag(api, tag).await?;
    let Some(tag_id) = tag_id else { return Ok(status) };
    let listed = api.call(Method::GET, &format!("/contacts/{}/contactTags", segment(contact.as_str())), None).await?;
    let link = array(&listed.body, "contactTags")
        .iter()
        .find(|link| text(link, "tag").as_deref() == Some(tag_id.as_str()))
        .and_then(|link| text(link, "id"));
    match link {
        Some(link) => Ok(api.call(Method::DELETE, &format!("/contactTags/{}", segment(&link)), None).await?.status),
        None => Ok(listed.status),
    }
}

/// `GET /tags?search=` and the contact tag named exactly `tag` (case
/// ignored when no exact match): the answer's status and the tag's id.
async fn find_tag(api: &CrmApi<'_>, tag: &str) -> Result<(u16, Option<String>), DeliveryError> {
    let query: String = form_urlencoded::byte_serialize(tag.as_bytes()).collect();
    let answer = api.call(Method::GET, &format!("/tags?search={query}"), None).await?;
    let tags: Vec<&Value> = array(&answer.body, "tags")
        .iter()
        .filter(|t| t.get("tagType").and_then(Value::as_str).is_none_or(|kind| kind == "contact"))
        .collect();
    let name = |t: &&Value| t.get("tag").and_then(Value::as_str).map(str::to_owned);
    let found = tags
        .iter()
        .find(|t| name(t).as_deref() == Some(tag))
        .or_else(|| tags.iter().find(|t| name(t).is_some_and(|n| n.eq_ignore_ascii_case(tag))));
    Ok((answer.status, found.and_then(|t| text(t, "id")).map(Cow::into_owned)))
}

/// `POST /tags` for a contact tag; the new tag's id.
async fn create_tag(api: &CrmApi<'_>, tag: &str) -> Result<String, DeliveryError> {
    let body = json!({"tag": {"tag": tag, "tagType": "contact", "description": ""}});
    let answer = api.call(Method::POST, "/tags", Some(&body)).await?;
    answer
        .body
        .get("tag")
        .and_then(|created| text(created, "id"))
        .map(Cow::into_owned)
        .ok_or_else(|| permanent(format!("POST /tags answered {} without a tag id", answer.status)))
}

/// `POST /dealTasks`, owned by the deal when the action names one, else by the contact.
async fn create_task(
    api: &CrmApi<'_>,
    item: &OutboxItem,
    title: &str,
    note: Option<&str>,
    due: &str,
    assignee: Option<&str>,
) -> Result<u16, DeliveryError> {
    let (owner_type, relid) = match deal(item) {
        Some(deal) => ("deal", id_value(deal.as_str())),
        None => ("contact", id_value(contact_of(item)?.as_str())),
    };
    let task_type = optional(api.tenant(), TASK_TYPE_SETTING).unwrap_or_else(|| DEFAULT_TASK_TYPE.to_owned());
    let mut task = json!({
        "title": title,
        "ownerType": owner_type,
        "relid": relid,
        "status": 0,
        "duedate": due,
        "dealTasktype": id_value(&task_type),
    });
    if let (Some(note), Some(fields)) = (note, task.as_object_mut()) {
        fields.insert("note".into(), Value::String(note.to_owned()));
    }
    if let (Some(user), Some(fields)) = (assignee, task.as_object_mut()) {
        fields.insert("assignee".into(), id_value(user));
    }
    Ok(api.call(Method::POST, "/dealTasks", Some(&json!({"dealTask": task}))).await?.status)
}

/// `POST /notes` on the contact (`Subscriber`), or on the deal when the action acts for a deal.
async fn add_note(api: &CrmApi<'_>, item: &OutboxItem, note: &str) -> Result<u16, DeliveryError> {
    let contact = &item.action.contact_id;
    let (relid, reltype) = match contact.deal() {
        Some(deal) => (id_value(deal.as_str()), "Deal"),
        None => (id_value(contact.as_str()), "Subscriber"),
    };
    let body = json!({"note": {"note": note, "relid": relid, "reltype": reltype}});
    Ok(api.call(Method::POST, "/notes", Some(&body)).await?.status)
}

/// `POST /fieldValues`: the score into a numeric contact field (empty when there is no score).
async fn set_field(
    api: &CrmApi<'_>,
    contact: &ContactId,
    field: &str,
    value: Option<f64>,
) -> Result<u16, DeliveryError> {
    let field_id = match is_id(field) {
        true => field.to_owned(),
        false => optional(api.tenant(), SCORE_FIELD_SETTING).ok_or_else(|| {
            permanent(format!(
                "ActiveCampaign writes fields by numeric id: the action's field {field:?} is not one, \
                 and the tenant's crm settings have no {SCORE_FIELD_SETTING:?}"
            ))
        })?,
    };
    let body = json!({
        "fieldValue": {"contact": contact.as_str(), "field": field_id, "value": value.map(number).unwrap_or_default()},
        "useDefaults": false,
    });
    Ok(api.call(Method::POST, "/fieldValues", Some(&body)).await?.status)
}

/// The deal an action is for: its deal, or the deal it acts for as a subject.
fn deal(item: &OutboxItem) -> Option<DealId> {
    deal_of(item).cloned().or_else(|| item.action.contact_id.deal())
}

/// ActiveCampaign ids are digits.
fn is_id(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// An id as a JSON number when it is one (as the documented examples send it), else as given.
fn id_value(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| Value::String(id.to_owned()), Value::from)
}

/// A setting given as a string or a number.
fn optional(tenant: &TenantRecord, key: &str) -> Option<String> {
    match tenant.crm.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A score as ActiveCampaign's field text: whole numbers without a fraction.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        value.to_string()
    }
}

/// An id as one URL path segment.
fn segment(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// An array in an answer's body, empty when absent.
fn array<'v>(body: &'v Value, key: &str) -> &'v [Value] {
    body.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_written_as_activecampaign_field_text() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(-3.0), "-3");
        assert_eq!(number(2.5), "2.5");
    }

    #[test]
    fn ids_go_out_as_numbers_when_they_are_numbers() {
        assert_eq!(id_value("42"), json!(42));
        assert_eq!(id_value("c_42"), json!("c_42"));
        assert!(is_id("7") && !is_id("") && !is_id("demo") && !is_id("-1"));
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }
}
