//! Id-only Bitrix24 events made into interactions by reading the CRM back.
//!
//! Runs in the background worker: a deal update becomes a stage move only
//! if the deal's stage history has a recent move (keyed by the history
//! row, so several updates after one move score it once); an activity
//! becomes a call or an e-mail for the contact that owns it; a call's end
//! takes its contact from the call's CRM activity. Errors are the
//! outbox's: retried, then `dead` and replayable, never dropped.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

use super::outbound::{numeric, portal, rest};
use super::{Pending, KEY_PREFIX};
use crate::crm::inbound::{derived_key, text, Unresolved};
use crate::crm::outbound::{permanent, CrmApi, Reach};
use crate::crm::DeliveryError;
use crate::engine::interaction::{Interaction, InteractionType};
use crate::ids::{ContactId, DealId, EventId};
use crate::tenant::TenantRecord;

/// A stage-history row older than this before the event was sent is an
/// earlier move (the update changed something else): nothing to score.
const MOVE_WINDOW: TimeDelta = TimeDelta::hours(1);

/// CRM entity type ids (`OWNER_TYPE_ID`).
const DEAL: &str = "2";
const CONTACT: &str = "3";

/// Resolves one stored event through the tenant's portal.
pub async fn resolve(
    reach: Reach<'_>,
    tenant: &TenantRecord,
    event: &Unresolved,
) -> Result<Vec<Interaction>, DeliveryError> {
    let pending: Pending = serde_json::from_value(event.event.clone())
        .map_err(|e| permanent(format!("the stored Bitrix24 event cannot be read: {e}")))?;
    match pending {
        Pending::OpenLineMessage { chat_id, .. } => Err(unlinked_chat(chat_id.as_deref())),
        Pending::DealMove { member, deal_id, sent_at } => {
            let (api, _) = portal(reach, tenant)?;
            deal_move(&api, &member, &deal_id, sent_at).await
        }
        Pending::Activity { activity_id, sent_at } => {
            let (api, _) = portal(reach, tenant)?;
            activity(&api, &event.key, &activity_id, sent_at).await
        }
        Pending::Call { kind, activity_id, occurred_at, attributes } => {
            let activity_id = activity_id.ok_or_else(|| {
                permanent("the call has no CRM activity (CRM_ACTIVITY_ID), so its contact cannot be known")
            })?;
            let (api, _) = portal(reach, tenant)?;
            let owner = Owner::of(&read_activity(&api, &activity_id).await?);
            Ok(owner.interaction(event.key.clone(), &kind, occurred_at, attributes).into_iter().collect())
        }
    }
}

/// Open-line events name a chat and its external user, not a CRM contact,
/// and the chat-to-CRM lookup is not verified: the event ends `dead`,
/// visible and replayable, instead of being dropped or guessed.
fn unlinked_chat(chat_id: Option<&str>) -> DeliveryError {
    permanent(format!(
        "open-line chat {} is not tied to a CRM contact in the event, and scorehook has no verified \
         chat-to-contact lookup for Bitrix24 yet: the message is kept here, unscored",
        chat_id.unwrap_or("(none)")
    ))
}

/// The newest stage-history row of the deal, if it is a move made around
/// the event's time, as `deal.stage_changed` for the deal's contact.
async fn deal_move(
    api: &CrmApi<'_>,
    member: &str,
    deal_id: &str,
    sent_at: DateTime<Utc>,
) -> Result<Vec<Interaction>, DeliveryError> {
    let deal = numeric(deal_id, "the deal id")?;
    let history = rest(
        api,
        "crm.stagehistory.list",
        &json!({"entityTypeId": 2, "filter": {"OWNER_ID": deal}, "order": {"ID": "DESC"}}),
    )
    .await?;
    let rows = history.result.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(latest) = rows.first() else { return Ok(Vec::new()) };
    let (Some(row_id), Some(stage)) = (text(latest, "ID"), text(latest, "STAGE_ID")) else {
        return Err(permanent(format!("crm.stagehistory.list for deal {deal} answered a row without ID or STAGE_ID")));
    };
    // TYPE_ID 1 is the deal's creation, not a move.
    if text(latest, "TYPE_ID").as_deref() == Some("1") {
        return Ok(Vec::new());
    }
    let moved_at = text(latest, "CREATED_TIME").and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    let moved_at = moved_at.map(|t| t.with_timezone(&Utc));
    if moved_at.is_some_and(|at| at < sent_at - MOVE_WINDOW) {
        return Ok(Vec::new());
    }
    let read = rest(api, "crm.deal.get", &json!({"id": deal})).await?;
    let Some(contact) = text(&read.result, "CONTACT_ID").filter(|c| c != "0") else {
        tracing::info!(deal, "the deal has no contact: its stage move scores nobody");
        return Ok(Vec::new());
    };
    let mut attributes = Map::new();
    attributes.insert("stage".into(), stage.as_ref().into());
    let pipeline = text(latest, "CATEGORY_ID").or_else(|| text(&read.result, "CATEGORY_ID"));
    attributes.insert("pipeline".into(), pipeline.as_deref().unwrap_or("0").into());
    if let Some(old) = rows.get(1).and_then(|row| text(row, "STAGE_ID")) {
        attributes.insert("old_stage".into(), old.as_ref().into());
    }
    attributes.insert("history_id".into(), row_id.as_ref().into());
    let interaction = Interaction {
        id: derived_key(KEY_PREFIX, &[member, "stagehist", &row_id]),
        kind: known("deal.stage_changed"),
        contact_id: contact_id(&contact)?,
        deal_id: Some(DealId::parse(deal.to_string()).map_err(|e| permanent(e.to_string()))?),
        occurred_at: moved_at.unwrap_or(sent_at),
        attributes,
        contact: Map::new(),
    };
    Ok(vec![interaction])
}

/// An activity as a call (`TYPE_ID` 2) or an e-mail (4), by `DIRECTION`
/// (1 in, 2 out); other activities (meetings, to-dos) score nothing.
async fn activity(
    api: &CrmApi<'_>,
    key: &EventId,
    activity_id: &str,
    sent_at: DateTime<Utc>,
) -> Result<Vec<Interaction>, DeliveryError> {
    let read = read_activity(api, activity_id).await?;
    let kind = match (text(&read, "TYPE_ID").as_deref(), text(&read, "DIRECTION").as_deref()) {
        (Some("2"), Some("1")) => "call.incoming",
        (Some("2"), Some("2")) => "call.outgoing",
        (Some("4"), Some("1")) => "email.received",
        (Some("4"), Some("2")) => "email.sent",
        _ => return Ok(Vec::new()),
    };
    let mut attributes = Map::new();
    attributes.insert("activity_id".into(), activity_id.into());
    for (name, field) in [("provider", "PROVIDER_ID"), ("subject", "SUBJECT")] {
        if let Some(value) = text(&read, field) {
            attributes.insert(name.into(), value.as_ref().into());
        }
    }
    let occurred_at = ["START_TIME", "CREATED"]
        .iter()
        .find_map(|field| text(&read, field).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()))
        .map_or(sent_at, |t| t.with_timezone(&Utc));
    let owner = Owner::of(&read);
    Ok(owner.interaction(key.clone(), kind, occurred_at, attributes).into_iter().collect())
}

/// `crm.activity.get`'s `result`, which must be an object.
async fn read_activity(api: &CrmApi<'_>, activity_id: &str) -> Result<Value, DeliveryError> {
    let id = numeric(activity_id, "the activity id")?;
    let read = rest(api, "crm.activity.get", &json!({"id": id})).await?;
    match read.result {
        Value::Object(_) => Ok(read.result),
        _ => Err(permanent(format!("crm.activity.get found no activity {id}"))),
    }
}

/// The contact (and deal) an activity is about: its owner, or its bindings.
struct Owner {
    contact: Option<String>,
    deal: Option<String>,
}

impl Owner {
    fn of(activity: &Value) -> Self {
        let mut bound: Vec<(String, String)> = Vec::new();
        if let (Some(kind), Some(id)) = (text(activity, "OWNER_TYPE_ID"), text(activity, "OWNER_ID")) {
            bound.push((kind.into_owned(), id.into_owned()));
        }
        for binding in activity.get("BINDINGS").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(kind), Some(id)) = (text(binding, "OWNER_TYPE_ID"), text(binding, "OWNER_ID")) {
                bound.push((kind.into_owned(), id.into_owned()));
            }
        }
        let first =
            |wanted: &str| bound.iter().find(|(kind, id)| kind == wanted && id != "0").map(|(_, id)| id.clone());
        Self { contact: first(CONTACT), deal: first(DEAL) }
    }

    /// `None` when no contact owns it (a lead's or a company's activity).
    fn interaction(
        &self,
        id: EventId,
        kind: &str,
        occurred_at: DateTime<Utc>,
        attributes: Map<String, Value>,
    ) -> Option<Interaction> {
        let contact = self.contact.as_deref().and_then(|c| ContactId::parse(c).ok());
        let Some(contact_id) = contact else {
            tracing::info!(event_id = %id, "the activity belongs to no contact: nothing to score");
            return None;
        };
        Some(Interaction {
            id,
            kind: InteractionType::parse(kind).ok()?,
            contact_id,
            deal_id: self.deal.as_deref().and_then(|d| DealId::parse(d).ok()),
            occurred_at,
            attributes,
            contact: Map::new(),
        })
    }
}

fn contact_id(id: &str) -> Result<ContactId, DeliveryError> {
    ContactId::parse(id).map_err(|e| permanent(format!("Bitrix24 answered an unusable contact id: {e}")))
}

/// A catalogue type by name (only ever called with catalogue names).
fn known(name: &str) -> InteractionType {
    InteractionType::parse(name).unwrap_or_else(|e| unreachable!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_activity_belongs_to_its_contact_owner_or_binding() {
        let owned = Owner::of(&json!({"OWNER_TYPE_ID": "3", "OWNER_ID": "42"}));
        assert_eq!((owned.contact.as_deref(), owned.deal.as_deref()), (Some("42"), None));
        let bound = Owner::of(&json!({"OWNER_TYPE_ID": 2, "OWNER_ID": 759,
            "BINDINGS": [{"OWNER_TYPE_ID": "2", "OWNER_ID": "759"}, {"OWNER_TYPE_ID": "3", "OWNER_ID": "42"}]}));
        assert_eq!((bound.contact.as_deref(), bound.deal.as_deref()), (Some("42"), Some("759")));
        let lead = Owner::of(&json!({"OWNER_TYPE_ID": "1", "OWNER_ID": "5"}));
        let at = Utc::now();
        let key = EventId::parse("b24:m:activity:1").unwrap();
        assert!(lead.interaction(key, "call.incoming", at, Map::new()).is_none(), "a lead is not a contact");
        let odd = Owner::of(&json!({"OWNER_TYPE_ID": [], "BINDINGS": "nope"}));
        assert!(odd.contact.is_none());
    }
}
