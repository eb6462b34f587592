//! Id-only Bitrix24 events made into interactions by reading the CRM back.
//!
//! Runs in the background worker: a deal or lead update becomes a stage
//! move only if its stage history has a recent move (keyed by the history
//! row, so several updates after one move score it once); a new lead made
//! by a form becomes its contact's form submission; an activity becomes
//! a call or an e-mail for the contact that owns it; a call's end takes its
//! contact from the call's CRM activity; an open-line message or session
//! takes its contact from the chat's CRM binding (`openlines`). Errors are
//! the outbox's: retried, then `dead` and replayable, never dropped; what
//! the CRM's data shows holds nothing to score ends `skipped`, with why.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

use super::openlines::resolve_chat;
use super::outbound::{numeric, portal, rest};
use super::{Pending, KEY_PREFIX, LEAD_PIPELINE};
use crate::crm::inbound::{derived_key, text, Unresolved};
use crate::crm::outbound::{permanent, CrmApi, Reach};
use crate::crm::{DeliveryError, Resolved};
use crate::engine::interaction::{Interaction, InteractionType};
use crate::ids::{ContactId, DealId, EventId};
use crate::tenant::TenantRecord;

/// A stage-history row older than this before the event was sent is an
/// earlier move (the update changed something else): nothing to score.
const MOVE_WINDOW: TimeDelta = TimeDelta::hours(1);

/// CRM entity type ids (`OWNER_TYPE_ID`, `entityTypeId`).
const LEAD_TYPE: u8 = 1;
const DEAL_TYPE: u8 = 2;
const DEAL: &str = "2";
const CONTACT: &str = "3";

/// The lead sources of Bitrix24's forms (`SOURCE_ID`): `WEBFORM` "CRM
/// form" and `CALLBACK` "Callback", two of the default sources.
const FORM_SOURCES: [&str; 2] = ["WEBFORM", "CALLBACK"];

/// Resolves one stored event through the tenant's portal.
pub async fn resolve(reach: Reach<'_>, tenant: &TenantRecord, event: &Unresolved) -> Result<Resolved, DeliveryError> {
    let pending: Pending = serde_json::from_value(event.event.clone())
        .map_err(|e| permanent(format!("the stored Bitrix24 event cannot be read: {e}")))?;
    match pending {
        Pending::OpenLineMessage { chat_id, occurred_at, attributes } => {
            let (api, _) = portal(reach, tenant)?;
            resolve_chat(&api, &event.key, "chat.message", chat_id.as_deref(), occurred_at, attributes).await
        }
        Pending::SessionStart { chat_id, occurred_at, attributes } => {
            let (api, _) = portal(reach, tenant)?;
            resolve_chat(&api, &event.key, "chat.first_message", chat_id.as_deref(), occurred_at, attributes).await
        }
        Pending::DealMove { member, deal_id, sent_at } => {
            let (api, _) = portal(reach, tenant)?;
            deal_move(&api, &member, &deal_id, sent_at).await
        }
        Pending::LeadMove { member, lead_id, sent_at } => {
            let (api, _) = portal(reach, tenant)?;
            lead_move(&api, &member, &lead_id, sent_at).await
        }
        Pending::LeadAdded { lead_id, sent_at } => {
            let (api, _) = portal(reach, tenant)?;
            let lead = numeric(&lead_id, "the lead id")?;
            let read = rest(&api, "crm.lead.get", &json!({"id": lead})).await?;
            form_submitted(&event.key, lead, &read.result, sent_at)
        }
        Pending::Activity { activity_id, sent_at } => {
            let (api, _) = portal(reach, tenant)?;
            activity(&api, &event.key, &activity_id, sent_at).await.map(Resolved::from)
        }
        Pending::Call { kind, activity_id, occurred_at, attributes } => {
            let activity_id = activity_id.ok_or_else(|| {
                permanent("the call has no CRM activity (CRM_ACTIVITY_ID), so its contact cannot be known")
            })?;
            let (api, _) = portal(reach, tenant)?;
            let owner = Owner::of(&read_activity(&api, &activity_id).await?);
            Ok(Resolved::from(
                owner.interaction(event.key.clone(), &kind, occurred_at, attributes).into_iter().collect::<Vec<_>>(),
            ))
        }
    }
}

/// `crm.stagehistory.list` of one deal (`entityTypeId` 2) or lead (1), newest first.
async fn stage_history(api: &CrmApi<'_>, entity_type: u8, owner: u64) -> Result<Value, DeliveryError> {
    let params = json!({"entityTypeId": entity_type, "filter": {"OWNER_ID": owner}, "order": {"ID": "DESC"}});
    Ok(rest(api, "crm.stagehistory.list", &params).await?.result)
}

/// The newest stage-history row of the deal, if it is a move made around
/// the event's time, as `deal.stage_changed` for the deal's contact.
async fn deal_move(
    api: &CrmApi<'_>,
    member: &str,
    deal_id: &str,
    sent_at: DateTime<Utc>,
) -> Result<Resolved, DeliveryError> {
    let deal = numeric(deal_id, "the deal id")?;
    let history = stage_history(api, DEAL_TYPE, deal).await?;
    let Some(moved) = latest_move(&history, "STAGE_ID", sent_at)? else { return Ok(no_move("deal", deal)) };
    let read = rest(api, "crm.deal.get", &json!({"id": deal})).await?;
    Ok(Resolved::Score(stage_changed(member, deal, moved, &read.result, sent_at)?.into_iter().collect()))
}

/// Why an update of a deal or lead scores nothing: it moved no stage.
fn no_move(kind: &str, id: u64) -> Resolved {
    Resolved::Skip(format!(
        "the update of {kind} {id} moved no stage (its stage history has no move in the {} before it was sent)",
        humanize(MOVE_WINDOW)
    ))
}

fn humanize(window: TimeDelta) -> String {
    match window.num_minutes() {
        60 => "hour".to_owned(),
        minutes => format!("{minutes} minutes"),
    }
}

/// One move of a deal, as its stage history tells it.
#[derive(Debug, Clone, PartialEq)]
struct Move {
    /// The history row's `ID`: unique per move, the interaction's key.
    row_id: String,
    stage: String,
    old_stage: Option<String>,
    pipeline: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// The newest row of `crm.stagehistory.list`'s `result` (ordered newest
/// first), if it is a move: not the object's creation (`TYPE_ID` 1), and
/// not older than `MOVE_WINDOW` before the event was sent. A deal's row
/// names its stage in `STAGE_ID`, a lead's in `STATUS_ID` (`stage_field`).
fn latest_move(result: &Value, stage_field: &str, sent_at: DateTime<Utc>) -> Result<Option<Move>, DeliveryError> {
    let rows = result.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let Some(latest) = rows.first() else { return Ok(None) };
    let (Some(row_id), Some(stage)) = (text(latest, "ID"), text(latest, stage_field)) else {
        return Err(permanent(format!("crm.stagehistory.list answered a row without ID or {stage_field}")));
    };
    if text(latest, "TYPE_ID").as_deref() == Some("1") {
        return Ok(None);
    }
    let at = text(latest, "CREATED_TIME").and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    let at = at.map(|t| t.with_timezone(&Utc));
    if at.is_some_and(|at| at < sent_at - MOVE_WINDOW) {
        return Ok(None);
    }
    Ok(Some(Move {
        row_id: row_id.into_owned(),
        stage: stage.into_owned(),
        old_stage: rows.get(1).and_then(|row| text(row, stage_field)).map(|s| s.into_owned()),
        pipeline: text(latest, "CATEGORY_ID").map(|c| c.into_owned()),
        at,
    }))
}

/// The move as `deal.stage_changed` for the contact in `crm.deal.get`'s
/// `result`; `None` when the deal has no contact.
fn stage_changed(
    member: &str,
    deal: u64,
    moved: Move,
    read: &Value,
    sent_at: DateTime<Utc>,
) -> Result<Option<Interaction>, DeliveryError> {
    let Some(contact) = text(read, "CONTACT_ID").filter(|c| c != "0") else {
        tracing::info!(deal, "the deal has no contact: its stage move scores nobody");
        return Ok(None);
    };
    let pipeline = moved.pipeline.or_else(|| text(read, "CATEGORY_ID").map(|c| c.into_owned()));
    let mut attributes = Map::new();
    attributes.insert("stage".into(), moved.stage.into());
    attributes.insert("pipeline".into(), pipeline.unwrap_or_else(|| "0".into()).into());
    if let Some(old) = moved.old_stage {
        attributes.insert("old_stage".into(), old.into());
    }
    attributes.insert("history_id".into(), moved.row_id.clone().into());
    Ok(Some(Interaction {
        id: derived_key(KEY_PREFIX, &[member, "stagehist", &moved.row_id]),
        kind: InteractionType::parse("deal.stage_changed").map_err(|e| permanent(e.to_string()))?,
        contact_id: contact_id(&contact)?,
        deal_id: Some(DealId::parse(deal.to_string()).map_err(|e| permanent(e.to_string()))?),
        occurred_at: moved.at.unwrap_or(sent_at),
        attributes,
        contact: Map::new(),
    }))
}

/// The newest status move of a lead, as `deal.stage_changed` in pipeline
/// `lead` with the lead as its deal (`L_<id>`), for the lead's contact.
async fn lead_move(
    api: &CrmApi<'_>,
    member: &str,
    lead_id: &str,
    sent_at: DateTime<Utc>,
) -> Result<Resolved, DeliveryError> {
    let lead = numeric(lead_id, "the lead id")?;
    let history = stage_history(api, LEAD_TYPE, lead).await?;
    let Some(moved) = latest_move(&history, "STATUS_ID", sent_at)? else { return Ok(no_move("lead", lead)) };
    let read = rest(api, "crm.lead.get", &json!({"id": lead})).await?;
    lead_status_changed(member, lead, moved, &read.result, sent_at)
}

/// The lead's deal id in scorehook: Bitrix24's own `L_` prefix for leads
/// (as in `UF_CRM_TASK`), so a lead never shares a deal's id.
pub(super) fn lead_deal(lead: u64) -> Result<DealId, DeliveryError> {
    DealId::parse(format!("{}{lead}", super::LEAD_PREFIX)).map_err(|e| permanent(e.to_string()))
}

/// The lead's contact (`CONTACT_ID`) in `crm.lead.get`'s `result`, or why there is none.
fn lead_contact(lead: u64, read: &Value, what: &str) -> Result<ContactId, String> {
    match text(read, "CONTACT_ID").filter(|c| c != "0") {
        Some(contact) => contact_id(&contact).map_err(|e| e.to_string()),
        None => Err(format!(
            "lead {lead} {what}, but it has no contact (CONTACT_ID): a lead scores through its contact, and scorehook scores contacts"
        )),
    }
}

fn lead_status_changed(
    member: &str,
    lead: u64,
    moved: Move,
    read: &Value,
    sent_at: DateTime<Utc>,
) -> Result<Resolved, DeliveryError> {
    let contact_id = match lead_contact(lead, read, &format!("moved to status {:?}", moved.stage)) {
        Ok(contact) => contact,
        Err(reason) => return Ok(Resolved::Skip(reason)),
    };
    let mut attributes = Map::new();
    attributes.insert("stage".into(), moved.stage.into());
    attributes.insert("pipeline".into(), LEAD_PIPELINE.into());
    if let Some(old) = moved.old_stage {
        attributes.insert("old_stage".into(), old.into());
    }
    attributes.insert("history_id".into(), moved.row_id.clone().into());
    attributes.insert("lead_id".into(), lead.to_string().into());
    Ok(Resolved::Score(vec![Interaction {
        id: derived_key(KEY_PREFIX, &[member, "leadhist", &moved.row_id]),
        kind: InteractionType::parse("deal.stage_changed").map_err(|e| permanent(e.to_string()))?,
        contact_id,
        deal_id: Some(lead_deal(lead)?),
        occurred_at: moved.at.unwrap_or(sent_at),
        attributes,
        contact: Map::new(),
    }]))
}

/// A new lead whose source is a form (`SOURCE_ID` `WEBFORM` or `CALLBACK`)
/// as `form.submitted` of the lead's contact; any other lead scores nothing.
fn form_submitted(key: &EventId, lead: u64, read: &Value, sent_at: DateTime<Utc>) -> Result<Resolved, DeliveryError> {
    let source = text(read, "SOURCE_ID");
    let Some(form) = FORM_SOURCES.into_iter().find(|form| source.as_deref() == Some(*form)) else {
        // A source is a short code of the portal's list (CALL, WEB, UC_…); anything else is not echoed.
        let shown = source
            .filter(|s| s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .map_or_else(|| "none".to_owned(), |s| s.into_owned());
        return Ok(Resolved::Skip(format!(
            "lead {lead} was not made by a form (its SOURCE_ID is {shown}, not WEBFORM or CALLBACK): a new lead scores only as a form submission"
        )));
    };
    let contact_id = match lead_contact(lead, read, "came from a form") {
        Ok(contact) => contact,
        Err(reason) => return Ok(Resolved::Skip(reason)),
    };
    let mut attributes = Map::new();
    attributes.insert("source".into(), form.into());
    attributes.insert("lead_id".into(), lead.to_string().into());
    let occurred_at = text(read, "DATE_CREATE").and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    Ok(Resolved::Score(vec![Interaction {
        id: key.clone(),
        kind: InteractionType::parse("form.submitted").map_err(|e| permanent(e.to_string()))?,
        contact_id,
        deal_id: Some(lead_deal(lead)?),
        occurred_at: occurred_at.map_or(sent_at, |t| t.with_timezone(&Utc)),
        attributes,
        contact: Map::new(),
    }]))
}

/// An activity, read with `crm.activity.get`, as a call or an e-mail.
async fn activity(
    api: &CrmApi<'_>,
    key: &EventId,
    activity_id: &str,
    sent_at: DateTime<Utc>,
) -> Result<Vec<Interaction>, DeliveryError> {
    let read = read_activity(api, activity_id).await?;
    Ok(activity_interaction(key, activity_id, &read, sent_at).into_iter().collect())
}

/// A call (`TYPE_ID` 2) or an e-mail (4), by `DIRECTION` (1 in, 2 out), for
/// the contact the activity belongs to; other activities (meetings, to-dos)
/// and activities of leads or companies score nothing.
fn activity_interaction(key: &EventId, activity_id: &str, read: &Value, sent_at: DateTime<Utc>) -> Option<Interaction> {
    let kind = match (text(read, "TYPE_ID").as_deref(), text(read, "DIRECTION").as_deref()) {
        (Some("2"), Some("1")) => "call.incoming",
        (Some("2"), Some("2")) => "call.outgoing",
        (Some("4"), Some("1")) => "email.received",
        (Some("4"), Some("2")) => "email.sent",
        _ => return None,
    };
    let mut attributes = Map::new();
    attributes.insert("activity_id".into(), activity_id.into());
    for (name, field) in [("provider", "PROVIDER_ID"), ("subject", "SUBJECT")] {
        if let Some(value) = text(read, field) {
            attributes.insert(name.into(), value.as_ref().into());
        }
    }
    let occurred_at = ["START_TIME", "CREATED"]
        .iter()
        .find_map(|field| text(read, field).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()))
        .map_or(sent_at, |t| t.with_timezone(&Utc));
    Owner::of(read).interaction(key.clone(), kind, occurred_at, attributes)
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

#[cfg(test)]
mod tests {
    use super::super::testing::{only_unresolved, run};
    use super::*;

    /// The sample's stored event, as the worker reads it back.
    fn stored(token: &str, file: &str) -> (Unresolved, Pending) {
        let event = only_unresolved(run(token, file));
        let pending = serde_json::from_value(event.event.clone()).unwrap();
        (event, pending)
    }

    /// crm.stagehistory.list's result for deal 759 after a move NEW -> PREPARATION.
    fn history(created: &str) -> Value {
        json!({"items": [
            {"ID": "3631", "TYPE_ID": "2", "OWNER_ID": "759", "CREATED_TIME": created,
             "CATEGORY_ID": "0", "STAGE_SEMANTIC_ID": "P", "STAGE_ID": "PREPARATION"},
            {"ID": "3630", "TYPE_ID": "1", "OWNER_ID": "759", "CREATED_TIME": "2025-01-09T09:50:02+03:00",
             "CATEGORY_ID": "0", "STAGE_SEMANTIC_ID": "P", "STAGE_ID": "NEW"}]})
    }

    #[test]
    fn the_deal_update_sample_resolves_to_the_move_keyed_by_its_history_row() {
        let (_, pending) =
            stored("jvh9y1ulvt2m6k5or90v9mg8nn32ozas", "oncrmdealupdate_outgoing_webhook_constructed.txt");
        let Pending::DealMove { member, deal_id, sent_at } = pending else { panic!("{pending:?}") };
        let moved = latest_move(&history("2025-01-09T09:56:40+03:00"), "STAGE_ID", sent_at).unwrap().unwrap();
        let deal = json!({"ID": "759", "CONTACT_ID": "42", "CATEGORY_ID": "0", "STAGE_ID": "PREPARATION"});
        let deal_id = numeric(&deal_id, "deal").unwrap();
        let interaction = stage_changed(&member, deal_id, moved.clone(), &deal, sent_at).unwrap().unwrap();
        assert_eq!(interaction.id.as_str(), "b24:d897063e1ce7c5eb9f04b9751eef5915:stagehist:3631");
        assert_eq!(interaction.kind.as_str(), "deal.stage_changed");
        assert_eq!(interaction.contact_id.as_str(), "42");
        assert_eq!(interaction.deal_id.as_ref().map(DealId::as_str), Some("759"));
        assert_eq!(interaction.occurred_at, "2025-01-09T06:56:40Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(
            Value::Object(interaction.attributes),
            json!({"stage": "PREPARATION", "pipeline": "0", "old_stage": "NEW", "history_id": "3631"})
        );
        let no_contact = json!({"ID": "759", "CONTACT_ID": "0"});
        assert_eq!(stage_changed(&member, deal_id, moved, &no_contact, sent_at).unwrap(), None);
    }

    #[test]
    fn only_a_recent_move_counts() {
        let sent_at: DateTime<Utc> = "2025-01-09T06:56:47Z".parse().unwrap();
        assert!(
            latest_move(&history("2025-01-09T08:58:00+03:00"), "STAGE_ID", sent_at).unwrap().is_some(),
            "59 min before"
        );
        assert_eq!(
            latest_move(&history("2025-01-09T08:50:00+03:00"), "STAGE_ID", sent_at).unwrap(),
            None,
            "an earlier move"
        );
        assert_eq!(latest_move(&json!({"items": []}), "STAGE_ID", sent_at).unwrap(), None, "no history");
        assert_eq!(latest_move(&Value::Null, "STAGE_ID", sent_at).unwrap(), None, "no items at all");
        let created_only = json!({"items": [{"ID": "1", "TYPE_ID": "1", "STAGE_ID": "NEW"}]});
        assert_eq!(latest_move(&created_only, "STAGE_ID", sent_at).unwrap(), None, "creation is not a move");
        assert!(latest_move(&json!({"items": [{"TYPE_ID": "2"}]}), "STAGE_ID", sent_at).is_err(), "a row without ID");
    }

    #[test]
    fn the_activity_sample_resolves_by_type_and_direction_for_its_contact() {
        let (event, pending) =
            stored("jvh9y1ulvt2m6k5or90v9mg8nn32ozas", "oncrmactivityadd_outgoing_webhook_constructed.txt");
        let Pending::Activity { activity_id, sent_at } = pending else { panic!("{pending:?}") };
        let read = |type_id: &str, direction: &str| {
            json!({"ID": "7953", "OWNER_TYPE_ID": "3", "OWNER_ID": "42", "TYPE_ID": type_id, "DIRECTION": direction,
                   "PROVIDER_ID": "VOXIMPLANT_CALL", "CREATED": "2026-03-11T17:28:50+03:00"})
        };
        let cases = [
            ("2", "1", Some("call.incoming")),
            ("2", "2", Some("call.outgoing")),
            ("4", "1", Some("email.received")),
            ("4", "2", Some("email.sent")),
            ("1", "1", None),
        ];
        for (type_id, direction, expected) in cases {
            let interaction = activity_interaction(&event.key, &activity_id, &read(type_id, direction), sent_at);
            assert_eq!(
                interaction.as_ref().map(|i| i.kind.as_str()),
                expected,
                "TYPE_ID {type_id} DIRECTION {direction}"
            );
            if let Some(interaction) = interaction {
                assert_eq!(interaction.id.as_str(), "b24:d897063e1ce7c5eb9f04b9751eef5915:activity:7953");
                assert_eq!(interaction.contact_id.as_str(), "42");
                assert_eq!(interaction.deal_id, None);
                assert_eq!(interaction.occurred_at, "2026-03-11T14:28:50Z".parse::<DateTime<Utc>>().unwrap());
                assert_eq!(
                    Value::Object(interaction.attributes),
                    json!({"activity_id": "7953", "provider": "VOXIMPLANT_CALL"})
                );
            }
        }
    }

    #[test]
    fn the_call_sample_resolves_to_a_missed_call_of_the_activity_owner() {
        let (event, pending) =
            stored("51856fefc120afa4b628cc82d3935cce", "onvoximplantcallend_missed_incoming_constructed.txt");
        let Pending::Call { kind, activity_id, occurred_at, attributes } = pending else { panic!("{pending:?}") };
        assert_eq!(activity_id.as_deref(), Some("7953"));
        let read = json!({"ID": "7953", "OWNER_TYPE_ID": "3", "OWNER_ID": "42", "TYPE_ID": "2", "DIRECTION": "1"});
        let interaction = Owner::of(&read).interaction(event.key, &kind, occurred_at, attributes).unwrap();
        assert_eq!(
            interaction.id.as_str(),
            "b24:d897063e1ce7c5eb9f04b9751eef5915:call:externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327"
        );
        assert_eq!(interaction.kind.as_str(), "call.missed");
        assert_eq!(interaction.contact_id.as_str(), "42");
        assert_eq!(interaction.attributes.get("line"), Some(&json!("REST_APP:")));
        assert_eq!(interaction.attributes.get("phone"), Some(&json!("+573001112233")));
    }

    /// crm.stagehistory.list's result for lead 5 after a move NEW -> IN_PROCESS (numbers, as the docs show them).
    fn lead_history() -> Value {
        json!({"items": [
            {"ID": 812, "TYPE_ID": 2, "OWNER_ID": 5, "CREATED_TIME": "2025-01-09T06:56:40+00:00",
             "STATUS_SEMANTIC_ID": "P", "STATUS_ID": "IN_PROCESS"},
            {"ID": 811, "TYPE_ID": 1, "OWNER_ID": 5, "CREATED_TIME": "2025-01-09T06:50:02+00:00",
             "STATUS_SEMANTIC_ID": "P", "STATUS_ID": "NEW"}]})
    }

    #[test]
    fn a_lead_status_move_is_a_stage_change_in_pipeline_lead_of_the_lead_s_contact() {
        let sent_at: DateTime<Utc> = "2025-01-09T06:56:47Z".parse().unwrap();
        let moved = latest_move(&lead_history(), "STATUS_ID", sent_at).unwrap().unwrap();
        assert!(latest_move(&lead_history(), "STAGE_ID", sent_at).is_err(), "a lead's rows have no STAGE_ID");
        let read = json!({"ID": "5", "STATUS_ID": "IN_PROCESS", "CONTACT_ID": "42"});
        let Resolved::Score(scored) = lead_status_changed("m", 5, moved.clone(), &read, sent_at).unwrap() else {
            panic!("not scored")
        };
        let [interaction] = scored.as_slice() else { panic!("{scored:?}") };
        assert_eq!(interaction.id.as_str(), "b24:m:leadhist:812");
        assert_eq!(interaction.kind.as_str(), "deal.stage_changed");
        assert_eq!(interaction.contact_id.as_str(), "42");
        assert_eq!(interaction.deal_id.as_ref().map(DealId::as_str), Some("L_5"));
        assert_eq!(
            Value::Object(interaction.attributes.clone()),
            json!({"stage": "IN_PROCESS", "pipeline": "lead", "old_stage": "NEW", "history_id": "812", "lead_id": "5"})
        );
        let no_contact = json!({"ID": "5", "CONTACT_ID": null});
        match lead_status_changed("m", 5, moved, &no_contact, sent_at).unwrap() {
            Resolved::Skip(reason) => assert!(reason.contains("lead 5") && reason.contains("no contact"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_lead_from_a_crm_form_is_a_form_submission() {
        let key = EventId::parse("b24:m:leadadd:5").unwrap();
        let sent_at: DateTime<Utc> = "2025-01-09T06:56:47Z".parse().unwrap();
        let from_form = json!({"ID": "5", "SOURCE_ID": "WEBFORM", "CONTACT_ID": "42",
            "DATE_CREATE": "2025-01-09T09:56:40+03:00"});
        let Resolved::Score(scored) = form_submitted(&key, 5, &from_form, sent_at).unwrap() else {
            panic!("not scored")
        };
        assert_eq!(scored[0].kind.as_str(), "form.submitted");
        assert_eq!(scored[0].contact_id.as_str(), "42");
        assert_eq!(scored[0].deal_id.as_ref().map(DealId::as_str), Some("L_5"));
        assert_eq!(scored[0].occurred_at, "2025-01-09T06:56:40Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(Value::Object(scored[0].attributes.clone()), json!({"source": "WEBFORM", "lead_id": "5"}));

        let skipped = |read: Value| match form_submitted(&key, 5, &read, sent_at).unwrap() {
            Resolved::Skip(reason) => reason,
            other => panic!("{other:?}"),
        };
        assert!(skipped(json!({"SOURCE_ID": "CALL", "CONTACT_ID": "42"})).contains("SOURCE_ID is CALL"));
        assert!(skipped(json!({"SOURCE_ID": "<b>x</b>"})).contains("SOURCE_ID is none"), "odd text is not echoed");
        assert!(skipped(json!({"SOURCE_ID": "WEBFORM", "CONTACT_ID": "0"})).contains("no contact"));
        let callback = json!({"SOURCE_ID": "CALLBACK", "CONTACT_ID": "42"});
        let Resolved::Score(scored) = form_submitted(&key, 5, &callback, sent_at).unwrap() else {
            panic!("not scored")
        };
        assert_eq!(scored[0].attributes.get("source"), Some(&json!("CALLBACK")), "a callback form is a form too");
    }

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
