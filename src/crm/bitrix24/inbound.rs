//! Bitrix24 events in: the application-token check and the mapping of each
//! event kind to an interaction, an id-only event (deals, leads, activities,
//! calls, open-line messages and sessions), or an unmapped kind.
//!
//! Pure: no I/O, the clock comes with the request. Every read of the body
//! is a lookup that may find nothing, so no input can panic.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Pending, APPLICATION_TOKEN, KEY_PREFIX, MEMBER_ID};
use crate::crm::form;
use crate::crm::inbound::{
    derived_key, hashed_key, interaction, secret_matches, Inbound, InboundError, Request, Unresolved,
};
use crate::ids::{ContactId, DealId, EventId};
use crate::tenant::TenantRecord;

/// Refuses a request whose `auth[application_token]` is not the tenant's
/// (compared in constant time), or whose `auth[member_id]` is not the
/// tenant's portal when `crm.member_id` is set. Bitrix24 signs nothing
/// and its `ts` is the queue's send time, so there is no window to check.
pub fn verify(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), InboundError> {
    let stored = crm_setting(tenant, APPLICATION_TOKEN)
        .ok_or_else(|| InboundError::Refused("the tenant has no crm.application_token to check against".into()))?;
    let body = form::parse(request.body);
    let presented = at(&body, &["auth", "application_token"])
        .ok_or_else(|| InboundError::Refused("the body has no auth[application_token]".into()))?;
    if !secret_matches(presented, stored) {
        return Err(InboundError::Refused("auth[application_token] does not match".into()));
    }
    if let Some(portal) = crm_setting(tenant, MEMBER_ID) {
        let member = at(&body, &["auth", "member_id"]).unwrap_or_default();
        if !secret_matches(member, portal) {
            return Err(InboundError::Refused("auth[member_id] is not the tenant's portal".into()));
        }
    }
    Ok(())
}

/// One `Inbound` per event (open-line bodies may carry several messages).
pub fn normalize(tenant: &TenantRecord, request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
    let body = form::parse(request.body);
    let event = Event::read(tenant, &body, request)?;
    match event.kind.as_str() {
        "ONCRMCONTACTADD" => Ok(vec![event.contact_added()?]),
        "ONCRMDEALUPDATE" | "ONCRMDEALMOVETOCATEGORY" => Ok(vec![event.deal_changed()?]),
        "ONCRMLEADUPDATE" => Ok(vec![event.lead_changed()?]),
        "ONCRMLEADADD" => Ok(vec![event.lead_added()?]),
        "ONCRMACTIVITYADD" => Ok(vec![event.activity_added()?]),
        "ONVOXIMPLANTCALLEND" => Ok(vec![event.call_ended()?]),
        "ONOPENLINEMESSAGEADD" => event.open_line_messages(),
        "ONSESSIONSTART" => event.sessions_started(),
        _ => Ok(vec![Inbound::Unmapped(event.kind)]),
    }
}

/// The parts every event shares.
struct Event<'b> {
    /// Upper-case, as Bitrix24 sends it (`ONCRMDEALUPDATE`).
    kind: String,
    body: &'b Value,
    /// The portal (`auth[member_id]`), part of every key.
    member: String,
    /// `ts` as sent, for keys; `None` when absent.
    ts: Option<&'b str>,
    /// When the queue sent it (`ts`), or the request's arrival.
    sent_at: DateTime<Utc>,
    /// The raw body, for a content hash when nothing stable is present.
    raw: &'b [u8],
}

impl<'b> Event<'b> {
    fn read(tenant: &TenantRecord, body: &'b Value, request: &Request<'b>) -> Result<Self, InboundError> {
        let kind = at(body, &["event"])
            .ok_or_else(|| InboundError::Malformed("a Bitrix24 event body has an `event` field".into()))?
            .to_ascii_uppercase();
        let member = at(body, &["auth", "member_id"])
            .or_else(|| crm_setting(tenant, MEMBER_ID))
            .unwrap_or(tenant.id.as_str())
            .to_owned();
        let ts = at(body, &["ts"]);
        let sent_at = ts.and_then(|t| t.parse::<i64>().ok()).and_then(|t| DateTime::from_timestamp(t, 0));
        Ok(Self { kind, body, member, ts, sent_at: sent_at.unwrap_or(request.now), raw: request.body })
    }

    /// `b24:<member>:<parts…>`.
    fn key(&self, parts: &[&str]) -> EventId {
        let mut all = vec![self.member.as_str()];
        all.extend_from_slice(parts);
        derived_key(KEY_PREFIX, &all)
    }

    /// `b24:<member>:<event>:<id>:<ts>`, the proposed key for events with no id of their own.
    fn event_key(&self, id: &str) -> EventId {
        match self.ts {
            Some(ts) => self.key(&[&self.kind, id, ts]),
            None => hashed_key(KEY_PREFIX, self.raw),
        }
    }

    /// `data[FIELDS][ID]`, which every CRM event carries.
    fn object_id(&self) -> Result<&'b str, InboundError> {
        at(self.body, &["data", "FIELDS", "ID"])
            .ok_or_else(|| InboundError::Malformed(format!("a {} event has data[FIELDS][ID]", self.kind)))
    }

    fn contact_added(&self) -> Result<Inbound, InboundError> {
        let id = self.object_id()?;
        let contact = ContactId::parse(id).map_err(|e| InboundError::Malformed(e.to_string()))?;
        let mut attributes = Map::new();
        attributes.insert("change".into(), "created".into());
        let added =
            interaction(self.event_key(id), "contact.updated", contact, None, self.sent_at, attributes, Map::new());
        Ok(Inbound::Ready(added?))
    }

    fn deal_changed(&self) -> Result<Inbound, InboundError> {
        let id = self.object_id()?;
        let deal = DealId::parse(id).map_err(|e| InboundError::Malformed(e.to_string()))?;
        let pending = Pending::DealMove { member: self.member.clone(), deal_id: id.to_owned(), sent_at: self.sent_at };
        Ok(Inbound::Resolve(Unresolved {
            key: self.event_key(id),
            kind: self.kind.clone(),
            subject: ContactId::for_deal(&deal).to_string(),
            event: pending.to_value(),
        }))
    }

    /// A lead update: a status move, once its stage history is read.
    fn lead_changed(&self) -> Result<Inbound, InboundError> {
        let id = self.object_id()?;
        let pending = Pending::LeadMove { member: self.member.clone(), lead_id: id.to_owned(), sent_at: self.sent_at };
        Ok(Inbound::Resolve(Unresolved {
            key: self.event_key(id),
            kind: self.kind.clone(),
            subject: format!("lead:{id}"),
            event: pending.to_value(),
        }))
    }

    /// A new lead: a form submission if a form (CRM or callback) made it. A lead is added
    /// once, so its id alone keys it.
    fn lead_added(&self) -> Result<Inbound, InboundError> {
        let id = self.object_id()?;
        let pending = Pending::LeadAdded { lead_id: id.to_owned(), sent_at: self.sent_at };
        Ok(Inbound::Resolve(Unresolved {
            key: self.key(&["leadadd", id]),
            kind: self.kind.clone(),
            subject: format!("lead:{id}"),
            event: pending.to_value(),
        }))
    }

    fn activity_added(&self) -> Result<Inbound, InboundError> {
        let id = self.object_id()?;
        let pending = Pending::Activity { activity_id: id.to_owned(), sent_at: self.sent_at };
        Ok(Inbound::Resolve(Unresolved {
            key: self.key(&["activity", id]),
            kind: self.kind.clone(),
            subject: format!("activity:{id}"),
            event: pending.to_value(),
        }))
    }

    fn call_ended(&self) -> Result<Inbound, InboundError> {
        let data = |name: &str| at(self.body, &["data", name]);
        let call_id = data("CALL_ID")
            .ok_or_else(|| InboundError::Malformed("an ONVOXIMPLANTCALLEND event has data[CALL_ID]".into()))?;
        let call_type = data("CALL_TYPE").unwrap_or_default();
        let code = data("CALL_FAILED_CODE").unwrap_or("200");
        let Some(kind) = call_kind(call_type, code) else {
            return Ok(Inbound::Unmapped(format!("{}:CALL_TYPE={call_type}", self.kind)));
        };
        let mut attributes = Map::new();
        attributes.insert("call_id".into(), call_id.into());
        for (name, field) in [("line", "PORTAL_NUMBER"), ("phone", "PHONE_NUMBER"), ("failed_code", "CALL_FAILED_CODE")]
        {
            if let Some(value) = data(field) {
                attributes.insert(name.into(), value.into());
            }
        }
        if let Some(seconds) = data("CALL_DURATION").and_then(|d| d.parse::<u64>().ok()) {
            attributes.insert("duration".into(), seconds.into());
        }
        let started = data("CALL_START_DATE").and_then(|d| DateTime::parse_from_rfc3339(d).ok());
        let activity_id = data("CRM_ACTIVITY_ID").filter(|a| *a != "0");
        let pending = Pending::Call {
            kind: kind.to_owned(),
            activity_id: activity_id.map(str::to_owned),
            occurred_at: started.map_or(self.sent_at, |s| s.with_timezone(&Utc)),
            attributes,
        };
        Ok(Inbound::Resolve(Unresolved {
            key: self.key(&["call", call_id]),
            kind: self.kind.clone(),
            subject: activity_id.map_or_else(|| format!("call:{call_id}"), |a| format!("activity:{a}")),
            event: pending.to_value(),
        }))
    }

    /// `data[DATA][n]`, at least one.
    fn open_line_entries(&self) -> Result<Vec<&'b Value>, InboundError> {
        let entries = form::indexed(self.body.get("data").and_then(|d| d.get("DATA")).unwrap_or(&Value::Null));
        if entries.is_empty() {
            return Err(InboundError::Malformed(format!("an {} event has data[DATA][0]", self.kind)));
        }
        Ok(entries)
    }

    fn open_line_messages(&self) -> Result<Vec<Inbound>, InboundError> {
        self.open_line_entries()?.into_iter().map(|entry| self.open_line_message(entry)).collect()
    }

    fn sessions_started(&self) -> Result<Vec<Inbound>, InboundError> {
        self.open_line_entries()?.into_iter().map(|entry| self.session_started(entry)).collect()
    }

    /// A session opened by the client's first message: keyed by the
    /// session's id when the event carries one, else by chat and `ts`.
    fn session_started(&self, entry: &Value) -> Result<Inbound, InboundError> {
        let chat_id = at(entry, &["chat", "id"]);
        let external = at(entry, &["connector", "chat_id"]);
        let Some(subject) = chat_id.or(external) else {
            return Err(InboundError::Malformed("an ONSESSIONSTART event has data[DATA][n][chat][id]".into()));
        };
        let session = at(entry, &["session", "id"]);
        let mut attributes = chat_attributes(entry);
        if let Some(session) = session {
            attributes.insert("session_id".into(), session.into());
        }
        let key = match session {
            Some(session) => self.key(&["olsession", session]),
            None => self.event_key(subject),
        };
        let pending =
            Pending::SessionStart { chat_id: chat_id.map(str::to_owned), occurred_at: self.sent_at, attributes };
        Ok(Inbound::Resolve(Unresolved {
            key,
            kind: self.kind.clone(),
            subject: format!("chat:{subject}"),
            event: pending.to_value(),
        }))
    }

    fn open_line_message(&self, entry: &Value) -> Result<Inbound, InboundError> {
        let message_id = at(entry, &["message", "id"])
            .ok_or_else(|| InboundError::Malformed("an open-line message has data[DATA][n][message][id]".into()))?;
        if at(entry, &["message", "system"]) == Some("Y") {
            return Ok(Inbound::Unmapped(format!("{}:system", self.kind)));
        }
        // `chat[id]` is the portal's chat, the one `imopenlines.dialog.get`
        // knows; `connector[chat_id]` is the external system's.
        let chat_id = at(entry, &["chat", "id"]);
        let subject = chat_id.or_else(|| at(entry, &["connector", "chat_id"])).unwrap_or(message_id);
        let mut attributes = chat_attributes(entry);
        attributes.insert("message_id".into(), message_id.into());
        if let Some(text) = at(entry, &["message", "text"]) {
            attributes.insert("text".into(), text.into());
        }
        let occurred_at = at(entry, &["message", "date"])
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
            .map_or(self.sent_at, |d| d.with_timezone(&Utc));
        let pending = Pending::OpenLineMessage { chat_id: chat_id.map(str::to_owned), occurred_at, attributes };
        Ok(Inbound::Resolve(Unresolved {
            key: self.key(&["olmsg", message_id]),
            kind: self.kind.clone(),
            subject: format!("chat:{subject}"),
            event: pending.to_value(),
        }))
    }
}

/// What every open-line event says of its chat: `channel` (the connector),
/// `line` and `chat_id`.
fn chat_attributes(entry: &Value) -> Map<String, Value> {
    let mut attributes = Map::new();
    for (name, path) in
        [("channel", ["connector", "connector_id"]), ("line", ["connector", "line_id"]), ("chat_id", ["chat", "id"])]
    {
        if let Some(value) = at(entry, &path) {
            attributes.insert(name.into(), value.into());
        }
    }
    attributes
}

/// The canonical call type of `CALL_TYPE` (1 outgoing, 2 incoming, 3
/// incoming redirected, 4 callback, 5 informational) and `CALL_FAILED_CODE`
/// (`200` answered): an incoming call not answered is missed.
fn call_kind(call_type: &str, code: &str) -> Option<&'static str> {
    match call_type {
        "1" | "4" => Some("call.outgoing"),
        "2" | "3" if code == "200" => Some("call.incoming"),
        "2" | "3" => Some("call.missed"),
        _ => None,
    }
}

/// A non-empty string at a path of the parsed form (every form value is a string).
pub(super) fn at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(value, |node, key| node.get(key))?.as_str().filter(|s| !s.is_empty())
}

fn crm_setting<'t>(tenant: &'t TenantRecord, key: &str) -> Option<&'t str> {
    tenant.crm.get(key).and_then(Value::as_str).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{only_unresolved, request, run, sample, tenant};
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;
    use serde_json::json;

    const WEBHOOK_TOKEN: &str = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas";
    const APP_TOKEN: &str = "51856fefc120afa4b628cc82d3935cce";
    const SDK_TOKEN: &str = "3c6c9248ec54af6bea1159b43ee0ab32";

    #[test]
    fn the_real_contact_add_is_a_contact_update_with_the_proposed_key() {
        let items = run(SDK_TOKEN, "oncrmcontactadd_app_real_b24phpsdk.txt");
        let [Inbound::Ready(interaction)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!(interaction.kind.as_str(), "contact.updated");
        assert_eq!(interaction.contact_id.as_str(), "134806");
        assert_eq!(interaction.deal_id, None);
        assert_eq!(interaction.id.as_str(), "b24:010b6886ebc205e43ae65000ee00addb:ONCRMCONTACTADD:134806:1727018926");
        assert_eq!(interaction.occurred_at, DateTime::from_timestamp(1727018926, 0).unwrap());
        assert_eq!(interaction.attributes.get("change"), Some(&json!("created")));
    }

    #[test]
    fn a_deal_update_waits_for_its_stage_history() {
        let event = only_unresolved(run(WEBHOOK_TOKEN, "oncrmdealupdate_outgoing_webhook_constructed.txt"));
        // The event's own key (the README's fallback); the resolved move carries `stagehist:<row>`.
        assert_eq!(event.key.as_str(), "b24:d897063e1ce7c5eb9f04b9751eef5915:ONCRMDEALUPDATE:759:1736405807");
        assert_eq!(event.kind, "ONCRMDEALUPDATE");
        assert_eq!(event.subject, "deal#759");
        let pending: Pending = serde_json::from_value(event.event).unwrap();
        assert_eq!(
            pending,
            Pending::DealMove {
                member: "d897063e1ce7c5eb9f04b9751eef5915".into(),
                deal_id: "759".into(),
                sent_at: DateTime::from_timestamp(1736405807, 0).unwrap(),
            }
        );
    }

    #[test]
    fn an_activity_add_waits_for_the_activity() {
        let event = only_unresolved(run(WEBHOOK_TOKEN, "oncrmactivityadd_outgoing_webhook_constructed.txt"));
        assert_eq!(event.key.as_str(), "b24:d897063e1ce7c5eb9f04b9751eef5915:activity:7953");
        assert_eq!(event.subject, "activity:7953");
        let pending: Pending = serde_json::from_value(event.event).unwrap();
        assert_eq!(
            pending,
            Pending::Activity { activity_id: "7953".into(), sent_at: DateTime::from_timestamp(1773239330, 0).unwrap() }
        );
    }

    #[test]
    fn a_missed_incoming_call_waits_for_its_activity_owner() {
        let event = only_unresolved(run(APP_TOKEN, "onvoximplantcallend_missed_incoming_constructed.txt"));
        assert_eq!(
            event.key.as_str(),
            "b24:d897063e1ce7c5eb9f04b9751eef5915:call:externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327"
        );
        let Pending::Call { kind, activity_id, occurred_at, attributes } = serde_json::from_value(event.event).unwrap()
        else {
            panic!("not a call")
        };
        assert_eq!(kind, "call.missed");
        assert_eq!(activity_id.as_deref(), Some("7953"));
        assert_eq!(occurred_at, "2026-03-11T14:28:46Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(attributes.get("line"), Some(&json!("REST_APP:")));
        assert_eq!(attributes.get("phone"), Some(&json!("+573001112233")));
        assert_eq!(attributes.get("failed_code"), Some(&json!("304")));
        assert_eq!(attributes.get("duration"), Some(&json!(0)));
    }

    #[test]
    fn an_open_line_message_waits_for_a_chat_to_contact_lookup() {
        let event = only_unresolved(run(APP_TOKEN, "onopenlinemessageadd_docs.txt"));
        assert_eq!(event.key.as_str(), "b24:a223c6b3710f85df22e9377d6c4f7553:olmsg:80964");
        assert_eq!(event.subject, "chat:10585");
        let Pending::OpenLineMessage { chat_id, attributes, .. } = serde_json::from_value(event.event).unwrap() else {
            panic!("not an open-line message")
        };
        assert_eq!(chat_id.as_deref(), Some("10585"));
        assert_eq!(attributes.get("channel"), Some(&json!("livechat")));
        assert_eq!(attributes.get("text"), Some(&json!("hello")));
        assert_eq!(attributes.get("line"), Some(&json!("128")));
    }

    #[test]
    fn lead_events_wait_for_the_lead_and_a_new_lead_is_keyed_by_its_id_alone() {
        let headers = HeaderMap::new();
        let tenant = tenant(json!({"application_token": "tok"}));
        let items = |body: &[u8]| normalize(&tenant, &request(&headers, body)).unwrap();
        let update = only_unresolved(items(b"event=ONCRMLEADUPDATE&data[FIELDS][ID]=5&ts=100&auth[member_id]=m"));
        assert_eq!(update.key.as_str(), "b24:m:ONCRMLEADUPDATE:5:100");
        assert_eq!(update.subject, "lead:5");
        assert_eq!(
            serde_json::from_value::<Pending>(update.event).unwrap(),
            Pending::LeadMove {
                member: "m".into(),
                lead_id: "5".into(),
                sent_at: DateTime::from_timestamp(100, 0).unwrap()
            }
        );
        let added = only_unresolved(items(b"event=ONCRMLEADADD&data[FIELDS][ID]=5&ts=100&auth[member_id]=m"));
        let again = only_unresolved(items(b"event=ONCRMLEADADD&data[FIELDS][ID]=5&ts=160&auth[member_id]=m"));
        assert_eq!(added.key.as_str(), "b24:m:leadadd:5");
        assert_eq!(added.key, again.key, "a lead is added once, whenever the event is sent");
        assert!(matches!(serde_json::from_value(added.event).unwrap(), Pending::LeadAdded { .. }));
    }

    #[test]
    fn a_session_start_waits_for_its_chat_s_contact_keyed_by_its_session_when_it_has_one() {
        let headers = HeaderMap::new();
        let tenant = tenant(json!({"application_token": "tok"}));
        let items = |body: &[u8]| normalize(&tenant, &request(&headers, body)).unwrap();
        let start = b"event=ONSESSIONSTART&data[DATA][0][connector][connector_id]=livechat\
            &data[DATA][0][connector][line_id]=128&data[DATA][0][chat][id]=10585&ts=100&auth[member_id]=m";
        let event = only_unresolved(items(start));
        assert_eq!(event.key.as_str(), "b24:m:ONSESSIONSTART:10585:100");
        assert_eq!(event.subject, "chat:10585");
        let Pending::SessionStart { chat_id, attributes, .. } = serde_json::from_value(event.event).unwrap() else {
            panic!("not a session start")
        };
        assert_eq!(chat_id.as_deref(), Some("10585"));
        assert_eq!(Value::Object(attributes), json!({"channel": "livechat", "line": "128", "chat_id": "10585"}));

        let with_session = b"event=ONSESSIONSTART&data[DATA][0][chat][id]=10585&data[DATA][0][session][id]=4411&ts=1";
        assert_eq!(only_unresolved(items(with_session)).key.as_str(), "b24:t:olsession:4411");
        let no_chat = b"event=ONSESSIONSTART&data[DATA][0][session][id]=4411";
        assert!(matches!(normalize(&tenant, &request(&headers, no_chat)), Err(InboundError::Malformed(_))));
    }

    #[test]
    fn calls_are_typed_by_direction_and_outcome() {
        let cases = [
            ("1", "200", Some("call.outgoing"), "we called"),
            ("1", "486", Some("call.outgoing"), "we called, they were busy: still our call"),
            ("4", "200", Some("call.outgoing"), "a callback is ours"),
            ("2", "200", Some("call.incoming"), "answered"),
            ("3", "200", Some("call.incoming"), "answered after a redirect"),
            ("2", "304", Some("call.missed"), "missed"),
            ("2", "603-S", Some("call.missed"), "the caller gave up"),
            ("5", "200", None, "informational: unmapped"),
            ("", "200", None, "no type"),
        ];
        for (call_type, code, expected, why) in cases {
            assert_eq!(call_kind(call_type, code), expected, "{why}");
        }
    }

    #[test]
    fn unknown_events_are_unmapped_and_bodies_without_an_event_are_malformed() {
        let headers = HeaderMap::new();
        let tenant = tenant(json!({"application_token": "tok"}));
        let body = b"event=ONCRMCOMPANYADD&data[FIELDS][ID]=5&ts=1&auth[application_token]=tok";
        assert_eq!(normalize(&tenant, &request(&headers, body)), Ok(vec![Inbound::Unmapped("ONCRMCOMPANYADD".into())]));
        let echo = b"event=ONCRMCONTACTUPDATE&data[FIELDS][ID]=5&ts=1";
        assert_eq!(
            normalize(&tenant, &request(&headers, echo)),
            Ok(vec![Inbound::Unmapped("ONCRMCONTACTUPDATE".into())]),
            "our own score writes fire this: never scored"
        );
        let no_event = b"data[FIELDS][ID]=5";
        assert!(matches!(normalize(&tenant, &request(&headers, no_event)), Err(InboundError::Malformed(_))));
        let no_id = b"event=ONCRMDEALUPDATE&ts=1";
        assert!(matches!(normalize(&tenant, &request(&headers, no_id)), Err(InboundError::Malformed(_))));
        let json = br#"{"event":"ONCRMDEALUPDATE"}"#;
        assert!(matches!(normalize(&tenant, &request(&headers, json)), Err(InboundError::Malformed(_))));
    }

    #[test]
    fn the_worked_token_example_verifies_and_anything_else_is_refused() {
        let headers = HeaderMap::new();
        let body = sample("oncrmdealupdate_outgoing_webhook_constructed.txt");
        let good = tenant(json!({"application_token": WEBHOOK_TOKEN}));
        assert_eq!(verify(&good, &request(&headers, &body)), Ok(()));
        let with_portal =
            tenant(json!({"application_token": WEBHOOK_TOKEN, "member_id": "d897063e1ce7c5eb9f04b9751eef5915"}));
        assert_eq!(verify(&with_portal, &request(&headers, &body)), Ok(()));

        let refused = |tenant: &TenantRecord, body: &[u8], why: &str| {
            let outcome = verify(tenant, &request(&headers, body));
            assert!(matches!(outcome, Err(InboundError::Refused(_))), "{why}: {outcome:?}");
        };
        let wrong = tenant(json!({"application_token": "jvh9y1ulvt2m6k5or90v9mg8nn32ozaX"}));
        refused(&wrong, &body, "another token");
        refused(&tenant(json!({})), &body, "no token configured");
        refused(&tenant(json!({"application_token": ""})), &body, "an empty token configured");
        let other_portal = tenant(json!({"application_token": WEBHOOK_TOKEN, "member_id": "another"}));
        refused(&other_portal, &body, "another portal");
        let text = String::from_utf8(body.clone()).unwrap();
        let missing = text.replace("&auth%5Bapplication_token%5D=jvh9y1ulvt2m6k5or90v9mg8nn32ozas", "");
        refused(&good, missing.as_bytes(), "no token in the body");
        let empty = text.replace("=jvh9y1ulvt2m6k5or90v9mg8nn32ozas", "=");
        refused(&good, empty.as_bytes(), "an empty token in the body");
        let prefix = text.replace("=jvh9y1ulvt2m6k5or90v9mg8nn32ozas", "=jvh9y1ulvt2m6k5or90v9mg8nn32oza");
        refused(&good, prefix.as_bytes(), "a prefix of the token");
        refused(&good, b"", "an empty body");
    }

    #[test]
    fn a_redelivered_event_keeps_its_key_and_another_event_gets_another() {
        let headers = HeaderMap::new();
        let tenant = tenant(json!({"application_token": "tok"}));
        let key = |body: &[u8]| match normalize(&tenant, &request(&headers, body)).unwrap().as_slice() {
            [Inbound::Ready(i)] => i.id.clone(),
            other => panic!("{other:?}"),
        };
        let first = b"event=ONCRMCONTACTADD&data[FIELDS][ID]=5&ts=100&auth[member_id]=m";
        let later = b"event=ONCRMCONTACTADD&data[FIELDS][ID]=5&ts=101&auth[member_id]=m";
        assert_eq!(key(first), key(first));
        assert_ne!(key(first), key(later));
        let no_ts = b"event=ONCRMCONTACTADD&data[FIELDS][ID]=5";
        assert_eq!(key(no_ts), key(no_ts), "no ts: a hash of the body, still stable");
    }

    /// Form bodies built from the keys Bitrix24 uses, so normalize's deeper branches are reached.
    fn form_body() -> impl Strategy<Value = Vec<u8>> {
        let key = prop::sample::select(vec![
            "event",
            "ts",
            "data[FIELDS][ID]",
            "data[CALL_ID]",
            "data[CALL_TYPE]",
            "data[CALL_FAILED_CODE]",
            "data[CALL_START_DATE]",
            "data[CALL_DURATION]",
            "data[CRM_ACTIVITY_ID]",
            "data[DATA][0][message][id]",
            "data[DATA][0][message][system]",
            "data[DATA][1][chat][id]",
            "data[DATA][0][session][id]",
            "data[DATA][0][connector][chat_id]",
            "data[DATA][]",
            "auth[member_id]",
            "auth[application_token]",
        ]);
        let value = prop::sample::select(vec![
            "ONCRMCONTACTADD",
            "ONCRMDEALUPDATE",
            "ONCRMACTIVITYADD",
            "ONVOXIMPLANTCALLEND",
            "ONOPENLINEMESSAGEADD",
            "ONSESSIONSTART",
            "ONCRMLEADUPDATE",
            "ONCRMLEADADD",
            "tok",
            "1",
            "2",
            "Y",
            "",
            "%00",
            "a b",
            "#",
            "2026-03-11T17:28:46+03:00",
            "99999999999999999999",
        ]);
        prop::collection::vec((key, value), 0..12)
            .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&").into_bytes())
    }

    proptest! {
        #[test]
        fn no_bytes_or_header_make_verify_or_normalize_panic(
            body in prop::collection::vec(any::<u8>(), 0..400),
            header in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&header) {
                headers.insert("content-type", value);
            }
            let tenant = tenant(json!({"application_token": "tok", "member_id": "m"}));
            let _ = verify(&tenant, &request(&headers, &body));
            let _ = normalize(&tenant, &request(&headers, &body));
        }

        #[test]
        fn no_bitrix_shaped_body_makes_normalize_panic(body in form_body()) {
            let headers = HeaderMap::new();
            let tenant = tenant(json!({"application_token": "tok"}));
            let _ = verify(&tenant, &request(&headers, &body));
            if let Ok(items) = normalize(&tenant, &request(&headers, &body)) {
                for item in items {
                    if let Inbound::Resolve(event) = item {
                        prop_assert!(serde_json::from_value::<Pending>(event.event).is_ok());
                    }
                }
            }
        }
    }
}
