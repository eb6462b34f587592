//! Id-only HubSpot events (deal stage changes, conversation events) into
//! interactions, by reading their contact through HubSpot's API.
//!
//! A deal's contact comes from its associations, read together with its
//! pipeline in one call; a conversation's from its thread's
//! `associatedContactId`. An event whose deal or thread has no contact
//! fails permanently, so it ends `dead` in the actions log, replayable once
//! the contact is associated in HubSpot.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Map, Value};

use super::events::CHAT_CHANNEL;
use super::{ACCESS_TOKEN, API};
use crate::crm::inbound::{text, Unresolved};
use crate::crm::outbound::{permanent, setting, CrmApi, Reach};
use crate::crm::DeliveryError;
use crate::engine::interaction::{Interaction, InteractionType};
use crate::ids::{ContactId, DealId};
use crate::tenant::TenantRecord;

/// What `events` stored for an id-only event.
struct Stored {
    kind: InteractionType,
    object: String,
    occurred_at: DateTime<Utc>,
    attributes: Map<String, Value>,
}

/// Reads the contact of a deal or conversation event through the API.
pub async fn resolve(
    reach: Reach<'_>,
    tenant: &TenantRecord,
    event: &Unresolved,
) -> Result<Vec<Interaction>, DeliveryError> {
    let stored = stored(event)?;
    let api = CrmApi::new(reach, tenant, &API)?.with_bearer(setting(tenant, ACCESS_TOKEN)?)?;
    let interaction = match stored.kind.as_str() {
        "deal.stage_changed" => deal_stage(&api, event, stored).await?,
        "chat.first_message" | "chat.message" | "chat.accepted" => chat(&api, event, stored).await?,
        other => return Err(permanent(format!("a stored HubSpot event of type {other:?} cannot be resolved"))),
    };
    Ok(vec![interaction])
}

fn stored(event: &Unresolved) -> Result<Stored, DeliveryError> {
    let unreadable = |what: &str| permanent(format!("the stored HubSpot event {} has no valid {what}", event.key));
    let kind = event.event.get("type").and_then(Value::as_str).ok_or_else(|| unreadable("type"))?;
    let kind = InteractionType::parse(kind).map_err(|_| unreadable("type"))?;
    let object = text(&event.event, "object_id").ok_or_else(|| unreadable("object_id"))?;
    // HubSpot's ids are numeric; anything else must not reach a URL path.
    if !object.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(unreadable("object_id"));
    }
    let occurred_at = event
        .event
        .get("occurred_at")
        .and_then(Value::as_str)
        .and_then(|at| at.parse().ok())
        .ok_or_else(|| unreadable("occurred_at"))?;
    let attributes = event.event.get("attributes").and_then(Value::as_object).cloned().unwrap_or_default();
    Ok(Stored { kind, object: object.into_owned(), occurred_at, attributes })
}

/// `GET /crm/v3/objects/deals/{id}?associations=contacts&properties=pipeline,dealstage`:
/// the first associated contact, and the deal's pipeline.
async fn deal_stage(api: &CrmApi<'_>, event: &Unresolved, stored: Stored) -> Result<Interaction, DeliveryError> {
    let path = format!("/crm/v3/objects/deals/{}?associations=contacts&properties=pipeline,dealstage", stored.object);
    let answer = api.call(Method::GET, &path, None).await?;
    let contact = answer
        .body
        .pointer("/associations/contacts/results")
        .and_then(Value::as_array)
        .and_then(|results| results.iter().find_map(|r| text(r, "id").or_else(|| text(r, "toObjectId"))))
        .ok_or_else(|| {
            permanent(format!("HubSpot deal {} has no associated contact; associate one, then replay", stored.object))
        })?;
    let contact = contact_id(&contact)?;
    let deal = DealId::parse(stored.object.clone()).map_err(|e| permanent(e.to_string()))?;
    let mut attributes = stored.attributes;
    if let Some(pipeline) = answer.body.get("properties").and_then(|p| text(p, "pipeline")) {
        attributes.insert("pipeline".into(), Value::String(pipeline.into_owned()));
    }
    Ok(Interaction {
        id: event.key.clone(),
        kind: stored.kind,
        contact_id: contact,
        deal_id: Some(deal),
        occurred_at: stored.occurred_at,
        attributes,
        contact: Map::new(),
    })
}

/// `GET /conversations/v3/conversations/threads/{id}`: its `associatedContactId`.
async fn chat(api: &CrmApi<'_>, event: &Unresolved, stored: Stored) -> Result<Interaction, DeliveryError> {
    let path = format!("/conversations/v3/conversations/threads/{}", stored.object);
    let answer = api.call(Method::GET, &path, None).await?;
    let contact = text(&answer.body, "associatedContactId").ok_or_else(|| {
        permanent(format!(
            "HubSpot thread {} has no associated contact (an anonymous visitor?); replay once it has one",
            stored.object
        ))
    })?;
    let mut attributes = stored.attributes;
    attributes.insert("channel".into(), Value::String(CHAT_CHANNEL.into()));
    Ok(Interaction {
        id: event.key.clone(),
        kind: stored.kind,
        contact_id: contact_id(&contact)?,
        deal_id: None,
        occurred_at: stored.occurred_at,
        attributes,
        contact: Map::new(),
    })
}

fn contact_id(id: &str) -> Result<ContactId, DeliveryError> {
    ContactId::parse(id).map_err(|e| permanent(format!("HubSpot answered an unusable contact id: {e}")))
}
