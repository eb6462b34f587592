//! Open-line chats tied to their CRM contact.
//!
//! Open-line events (`ONOPENLINEMESSAGEADD`, `ONSESSIONSTART`) name a chat
//! and the client's external user, never a CRM contact. The chat itself
//! knows: `imopenlines.dialog.get` with the chat's id answers the chat, whose
//! `entity_data_2` lists the CRM objects it is bound to as pairs
//! (`LEAD|0|COMPANY|0|CONTACT|42|DEAL|759`, `0` for none) and whose
//! `entity_data_1` starts with the one CRM object of the session
//! (`Y|CONTACT|42|…`; `N|NONE|0|…` when there is none). The REST docs list
//! both fields as the chat's "external data"; their layout is that of
//! Bitrix24's own open-lines module, which writes them.
//!
//! A chat bound to no contact (a lead only, or nothing yet) scores nobody:
//! the event ends `skipped`, with that reason.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::outbound::{numeric, rest};
use crate::crm::inbound::text;
use crate::crm::outbound::{permanent, CrmApi};
use crate::crm::{DeliveryError, Resolved};
use crate::engine::interaction::{Interaction, InteractionType};
use crate::ids::{ContactId, DealId, EventId};

/// The CRM objects an open-line chat is bound to (positive ids only).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Binding {
    pub contact: Option<String>,
    pub deal: Option<String>,
    pub lead: Option<String>,
    pub company: Option<String>,
}

impl Binding {
    /// Reads `imopenlines.dialog.get`'s `result`: `entity_data_2` first,
    /// then the session's one object in `entity_data_1` for what it lacks.
    pub fn of(dialog: &Value) -> Self {
        let mut binding = Self::default();
        if let Some(pairs) = text(dialog, "entity_data_2") {
            let parts: Vec<&str> = pairs.split('|').collect();
            for pair in parts.chunks(2) {
                if let [kind, id] = pair {
                    binding.set(kind, id);
                }
            }
        }
        if let Some(session) = text(dialog, "entity_data_1") {
            let parts: Vec<&str> = session.split('|').collect();
            if let ["Y", kind, id, ..] = parts.as_slice() {
                if binding.slot(kind).is_some_and(|slot| slot.is_none()) {
                    binding.set(kind, id);
                }
            }
        }
        binding
    }

    fn slot(&mut self, kind: &str) -> Option<&mut Option<String>> {
        match kind {
            "CONTACT" => Some(&mut self.contact),
            "DEAL" => Some(&mut self.deal),
            "LEAD" => Some(&mut self.lead),
            "COMPANY" => Some(&mut self.company),
            _ => None,
        }
    }

    /// Keeps `id` under `kind` when it is a Bitrix24 id (`0` means none).
    fn set(&mut self, kind: &str, id: &str) {
        let valid = id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) && id.bytes().any(|b| b != b'0');
        if let (Some(slot), true) = (self.slot(kind), valid) {
            *slot = Some(id.trim_start_matches('0').to_owned());
        }
    }

    /// What the chat is bound to instead of a contact, for a skip's reason.
    fn instead(&self) -> String {
        let others: Vec<String> = [("lead", &self.lead), ("company", &self.company), ("deal", &self.deal)]
            .into_iter()
            .filter_map(|(kind, id)| id.as_ref().map(|id| format!("{kind} {id}")))
            .collect();
        match others.as_slice() {
            [] => "to no CRM object".to_owned(),
            _ => format!("only to {}", others.join(", ")),
        }
    }
}

/// `imopenlines.dialog.get` `{"CHAT_ID": <chat>}`: the chat's CRM bindings.
pub(super) async fn binding(api: &CrmApi<'_>, chat_id: &str) -> Result<Binding, DeliveryError> {
    let chat = numeric(chat_id, "the open-line chat id")?;
    let read = rest(api, "imopenlines.dialog.get", &json!({"CHAT_ID": chat})).await?;
    match read.result {
        Value::Object(_) => Ok(Binding::of(&read.result)),
        _ => Err(permanent(format!("imopenlines.dialog.get found no chat {chat}"))),
    }
}

/// An open-line event (`kind` is `chat.message` or `chat.first_message`)
/// as an interaction of the chat's contact, or skipped with the reason.
pub(super) async fn resolve_chat(
    api: &CrmApi<'_>,
    key: &EventId,
    kind: &str,
    chat_id: Option<&str>,
    occurred_at: DateTime<Utc>,
    attributes: Map<String, Value>,
) -> Result<Resolved, DeliveryError> {
    let Some(chat_id) = chat_id else {
        return Ok(Resolved::Skip(
            "the open-line event names no portal chat (data[DATA][n][chat][id]) whose CRM contact could be read".into(),
        ));
    };
    let binding = binding(api, chat_id).await?;
    chat_interaction(key, kind, chat_id, &binding, occurred_at, attributes)
}

/// The interaction for a chat bound as `binding` says; skipped without a contact.
pub(super) fn chat_interaction(
    key: &EventId,
    kind: &str,
    chat_id: &str,
    binding: &Binding,
    occurred_at: DateTime<Utc>,
    attributes: Map<String, Value>,
) -> Result<Resolved, DeliveryError> {
    let Some(contact) = &binding.contact else {
        return Ok(Resolved::Skip(format!(
            "open-line chat {chat_id} is bound {} (imopenlines.dialog.get): no contact to score",
            binding.instead()
        )));
    };
    let contact_id = ContactId::parse(contact.as_str()).map_err(|e| permanent(e.to_string()))?;
    let deal_id = binding.deal.as_deref().and_then(|d| DealId::parse(d).ok());
    Ok(Resolved::Score(vec![Interaction {
        id: key.clone(),
        kind: InteractionType::parse(kind).map_err(|e| permanent(e.to_string()))?,
        contact_id,
        deal_id,
        occurred_at,
        attributes,
        contact: Map::new(),
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_s_bindings_come_from_its_crm_pairs_then_its_session() {
        let both = json!({"id": 10585, "entity_type": "LINES",
            "entity_data_1": "Y|DEAL|759|N|N|4411|1714649632|128|0|",
            "entity_data_2": "LEAD|0|COMPANY|0|CONTACT|42|DEAL|759"});
        assert_eq!(
            Binding::of(&both),
            Binding { contact: Some("42".into()), deal: Some("759".into()), lead: None, company: None }
        );
        let session_only = json!({"entity_data_1": "Y|CONTACT|42|N|N|1|0|128|0|", "entity_data_2": ""});
        assert_eq!(Binding::of(&session_only).contact.as_deref(), Some("42"));
        // The docs' example: a chat not (yet) in the CRM.
        let none = json!({"entity_data_1": "N|NONE|0|N|N|0|1591872180|1|0|", "entity_data_2": ""});
        assert_eq!(Binding::of(&none), Binding::default());
        let lead = json!({"entity_data_2": "LEAD|5|COMPANY|0|CONTACT|0|DEAL|0"});
        assert_eq!(Binding::of(&lead), Binding { lead: Some("5".into()), ..Binding::default() });
        assert_eq!(Binding::of(&lead).instead(), "only to lead 5");
        assert_eq!(Binding::default().instead(), "to no CRM object");
    }

    #[test]
    fn odd_chat_data_binds_nothing_and_never_panics() {
        for odd in [
            json!({"entity_data_2": "CONTACT"}),
            json!({"entity_data_2": "CONTACT|x42|DEAL|-1"}),
            json!({"entity_data_2": "|||"}),
            json!({"entity_data_2": 42}),
            json!({"entity_data_1": "Y|CONTACT"}),
            json!({"entity_data_1": "N|CONTACT|42"}),
            json!({"entity_data_2": format!("CONTACT|{}", "9".repeat(30))}),
            json!([]),
            Value::Null,
        ] {
            assert_eq!(Binding::of(&odd).contact, None, "{odd}");
        }
    }

    #[test]
    fn a_bound_chat_scores_its_contact_and_an_unbound_one_says_why_it_is_skipped() {
        let key = EventId::parse("b24:m:olmsg:80964").unwrap();
        let at: DateTime<Utc> = "2024-05-02T11:33:52Z".parse().unwrap();
        let mut attributes = Map::new();
        attributes.insert("channel".into(), "livechat".into());
        let bound = Binding { contact: Some("42".into()), deal: Some("759".into()), ..Binding::default() };
        let Resolved::Score(scored) =
            chat_interaction(&key, "chat.message", "10585", &bound, at, attributes.clone()).unwrap()
        else {
            panic!("not scored")
        };
        assert_eq!(scored.len(), 1);
        assert_eq!(scored[0].contact_id.as_str(), "42");
        assert_eq!(scored[0].deal_id.as_ref().map(DealId::as_str), Some("759"));
        assert_eq!(scored[0].kind.as_str(), "chat.message");
        assert_eq!(scored[0].id, key);

        let lead = Binding { lead: Some("5".into()), ..Binding::default() };
        assert_eq!(
            chat_interaction(&key, "chat.first_message", "10585", &lead, at, attributes).unwrap(),
            Resolved::Skip(
                "open-line chat 10585 is bound only to lead 5 (imopenlines.dialog.get): no contact to score".into()
            )
        );
    }
}
