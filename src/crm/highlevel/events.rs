//! HighLevel bodies into canonical interactions.
//!
//! A body is one marketplace event (discriminated by `type`; `InvoicePaid`
//! also arrives without one and is recognised by its shape) or one workflow
//! "Webhook" action body (flat contact keys; the interaction type is the
//! admin's `customData.scorehook_event`, or the URL's `type`). The mapping
//! is the table in `docs/connectors/highlevel.md`.
//!
//! Idempotency keys: `webhookId` when present; else derived from the
//! location, the type and the event's own id (`hl:<location>:<type>:<id>`);
//! contact events, whose only id is the contact's, and workflow bodies are
//! keyed by a hash of what identifies them, so identical deliveries collapse
//! and distinct ones do not. Pure and total: no input panics.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::crm::inbound::{derived_key, hashed_key, interaction, text, Inbound, InboundError, Request, Unresolved};
use crate::engine::interaction::{Interaction, InteractionType};
use crate::ids::{ContactId, DealId, EventId};
use crate::tenant::TenantRecord;

/// The prefix of every derived key.
const PREFIX: &str = "hl";

/// The outbox kind (and `Unresolved::kind`) of an email-stats event awaiting its contact.
pub const EMAIL_STATS: &str = "LCEmailStats";

/// Turns one HighLevel event (or workflow body) into inbound items.
pub fn normalize(_tenant: &TenantRecord, request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
    let body: Value =
        serde_json::from_slice(request.body).map_err(|e| malformed(&format!("the body is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(malformed("the body is not a JSON object"));
    }
    let event = Event { body: &body, raw: request.body, now: request.now };
    match body.get("type") {
        Some(Value::String(kind)) => event.typed(kind),
        Some(_) => Err(malformed("the event's type is not a string")),
        None if is_invoice(&body) => event.invoice("InvoicePaid"),
        None if body.get("contact_id").is_some() => event.workflow(request),
        None => Err(malformed("neither a HighLevel event (no type) nor a workflow webhook body (no contact_id)")),
    }
}

fn malformed(message: &str) -> InboundError {
    InboundError::Malformed(message.to_owned())
}

/// The invoice doc example has no `type`: an `_id`, a `contactDetails` and invoice fields.
fn is_invoice(body: &Value) -> bool {
    body.get("_id").is_some()
        && body.get("contactDetails").is_some_and(Value::is_object)
        && (body.get("invoiceNumber").is_some() || body.get("amountPaid").is_some())
}

/// The location an event belongs to: `locationId`, invoices' `altId`, or a workflow's `location.id`.
pub fn location_of(body: &Value) -> Option<&str> {
    let direct = ["locationId", "altId"].iter().find_map(|k| body.get(*k).and_then(Value::as_str));
    direct.or_else(|| body.get("location")?.get("id")?.as_str()).filter(|l| !l.is_empty())
}

/// An instant as HighLevel writes one: RFC 3339 text, or unix seconds or milliseconds.
pub fn instant(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => {
            let seconds = n.as_f64()?;
            let seconds = if seconds.abs() >= 1e12 { seconds / 1000.0 } else { seconds };
            if !seconds.is_finite() || seconds.abs() > 1e11 {
                return None;
            }
            Utc.timestamp_millis_opt((seconds * 1000.0).round() as i64).single()
        }
        _ => None,
    }
}

/// One parsed body and what every mapping needs from the request.
struct Event<'a> {
    body: &'a Value,
    raw: &'a [u8],
    now: DateTime<Utc>,
}

impl Event<'_> {
    fn typed(&self, kind: &str) -> Result<Vec<Inbound>, InboundError> {
        match kind {
            "InboundMessage" => self.message(true),
            "OutboundMessage" => self.message(false),
            "OpportunityStageUpdate" => self.stage_update(),
            "ContactUpdate" | "ContactTagUpdate" => self.contact_update(kind),
            "ContactDndUpdate" => self.dnd_update(),
            "AppointmentCreate" => self.appointment(),
            "InvoicePaid" => self.invoice(kind),
            EMAIL_STATS => self.email_stats(),
            other => Ok(vec![Inbound::Unmapped(other.to_owned())]),
        }
    }

    fn field(&self, key: &str) -> Option<String> {
        text(self.body, key).map(|v| v.into_owned())
    }

    fn location(&self) -> String {
        location_of(self.body).unwrap_or_default().to_owned()
    }

    /// `webhookId` when present, else the derivation given.
    fn key(&self, derive: impl FnOnce() -> EventId) -> EventId {
        match self.field("webhookId") {
            Some(id) => EventId::parse(id.clone()).unwrap_or_else(|_| hashed_key(PREFIX, id.as_bytes())),
            None => derive(),
        }
    }

    /// `hl:<location>:<type>:<id…>`, or a hash of the body when the event has no id.
    fn derived(&self, kind: &str, ids: &[Option<String>]) -> EventId {
        let ids: Option<Vec<String>> = ids.iter().cloned().collect();
        match ids {
            Some(ids) => {
                let location = self.location();
                let mut parts = vec![location.as_str(), kind];
                parts.extend(ids.iter().map(String::as_str));
                derived_key(PREFIX, &parts)
            }
            None => hashed_key(PREFIX, self.raw),
        }
    }

    /// When it happened: the first readable of these fields, else `now`.
    fn occurred_at(&self, from: &[Option<&Value>]) -> DateTime<Utc> {
        from.iter().flatten().find_map(|v| instant(v)).unwrap_or(self.now)
    }

    fn message(&self, inbound: bool) -> Result<Vec<Inbound>, InboundError> {
        let kind = if inbound { "InboundMessage" } else { "OutboundMessage" };
        let channel = self.field("messageType").unwrap_or_default();
        let status = self.field("status").unwrap_or_default();
        let call_status = self.field("callStatus").unwrap_or_default();
        let canonical = match (channel.to_ascii_lowercase().as_str(), inbound) {
            ("email" | "type_email", true) => "email.received",
            ("email" | "type_email", false) => "email.sent",
            ("call" | "type_call", true) if status == "voicemail" || missed(&call_status) => "call.missed",
            ("call" | "type_call", true) => "call.incoming",
            ("call" | "type_call", false) => "call.outgoing",
            ("voicemail" | "type_voicemail", true) => "call.missed",
            (_, true) if !channel.is_empty() => "chat.message",
            _ => return Ok(vec![Inbound::Unmapped(format!("{kind}:{channel}"))]),
        };
        let mut attributes = Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value.filter(|v| !v.is_null()) {
                attributes.insert(name.to_owned(), value);
            }
        };
        let get = |key: &str| self.body.get(key).cloned();
        put("conversation_id", get("conversationId"));
        match canonical {
            "email.received" | "email.sent" => {
                put("subject", get("subject"));
                put("thread", get("threadId"));
                put("message_id", get("emailMessageId").or_else(|| get("messageId")));
            }
            "chat.message" => {
                put("channel", Some(Value::String(channel.clone())));
                put("text", get("body"));
            }
            _ => {
                put("status", get("status"));
                put("call_status", get("callStatus"));
                put("duration", get("callDuration"));
                put("user_id", get("userId"));
            }
        }
        let id = self.field("messageId").or_else(|| self.field("emailMessageId")).or_else(|| self.field("id"));
        let key = self.key(|| self.derived(kind, &[id]));
        let at = self.occurred_at(&[self.body.get("dateAdded"), self.body.get("timestamp")]);
        let contact = self.field("contactId").ok_or_else(|| malformed("the message has no contactId"))?;
        Ok(vec![Inbound::Ready(build(key, canonical, &contact, None, at, attributes, Map::new())?)])
    }

    fn stage_update(&self) -> Result<Vec<Inbound>, InboundError> {
        let kind = "OpportunityStageUpdate";
        let contact = self.field("contactId").ok_or_else(|| malformed("the opportunity has no contactId"))?;
        let deal = self.field("id").ok_or_else(|| malformed("the opportunity has no id"))?;
        let deal = DealId::parse(deal).map_err(|e| malformed(&e.to_string()))?;
        let mut attributes = Map::new();
        for (name, key) in [
            ("pipeline", "pipelineId"),
            ("stage", "pipelineStageId"),
            ("status", "status"),
            ("monetary_value", "monetaryValue"),
            ("name", "name"),
        ] {
            if let Some(value) = self.body.get(key).filter(|v| !v.is_null()) {
                attributes.insert(name.to_owned(), value.clone());
            }
        }
        let key = self.key(|| self.derived(kind, &[Some(deal.to_string()), self.field("pipelineStageId")]));
        let at = self.occurred_at(&[self.body.get("timestamp")]);
        Ok(vec![Inbound::Ready(build(key, "deal.stage_changed", &contact, Some(deal), at, attributes, Map::new())?)])
    }

    fn contact_update(&self, kind: &str) -> Result<Vec<Inbound>, InboundError> {
        let contact = self.field("id").ok_or_else(|| malformed("the contact event has no id"))?;
        let mut attributes = Map::new();
        attributes.insert("change".into(), Value::String(kind.to_owned()));
        if let Some(tags) = self.body.get("tags").filter(|t| t.is_array()) {
            attributes.insert("tags".into(), tags.clone());
        }
        // The contact's id is its only id, so updates are told apart by content.
        let key = self.key(|| hashed_key(PREFIX, self.raw));
        let at = self.occurred_at(&[self.body.get("timestamp"), self.body.get("dateUpdated")]);
        Ok(vec![Inbound::Ready(build(key, "contact.updated", &contact, None, at, attributes, self.contact_fields())?)])
    }

    /// The contact's fields remembered for contact conditions.
    fn contact_fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        for (name, key) in [
            ("email", "email"),
            ("phone", "phone"),
            ("first_name", "firstName"),
            ("last_name", "lastName"),
            ("company_name", "companyName"),
            ("city", "city"),
            ("state", "state"),
            ("country", "country"),
            ("postal_code", "postalCode"),
            ("source", "source"),
            ("website", "website"),
            ("tags", "tags"),
            ("dnd", "dnd"),
        ] {
            if let Some(value) = self.body.get(key).filter(|v| !v.is_null()) {
                fields.insert(name.to_owned(), value.clone());
            }
        }
        fields
    }

    /// One list interaction per channel the event states: DND `active` means
    /// unsubscribed from `dnd:<channel>`, `inactive` subscribed.
    fn dnd_update(&self) -> Result<Vec<Inbound>, InboundError> {
        let contact = self.field("id").ok_or_else(|| malformed("the contact event has no id"))?;
        let at = self.occurred_at(&[self.body.get("timestamp"), self.body.get("dateUpdated")]);
        let base = self.key(|| hashed_key(PREFIX, self.raw));
        let mut states: Vec<(String, bool)> = match self.body.get("dndSettings").and_then(Value::as_object) {
            Some(settings) => settings
                .iter()
                .filter_map(|(channel, s)| Some((channel.clone(), s.get("status")?.as_str()? == "active")))
                .collect(),
            None => Vec::new(),
        };
        if states.is_empty() {
            if let Some(all) = self.body.get("dnd").and_then(Value::as_bool) {
                states.push(("all".to_owned(), all));
            }
        }
        if states.is_empty() {
            return Ok(vec![Inbound::Unmapped("ContactDndUpdate:no-dnd-state".to_owned())]);
        }
        states
            .into_iter()
            .map(|(channel, dnd)| {
                let kind = if dnd { "list.unsubscribed" } else { "list.subscribed" };
                let mut attributes = Map::new();
                attributes.insert("list_id".into(), Value::String(format!("dnd:{channel}")));
                attributes.insert("channel".into(), Value::String(channel.clone()));
                let key = derived_key(base.as_str(), &["dnd", &channel]);
                build(key, kind, &contact, None, at, attributes, self.contact_fields()).map(Inbound::Ready)
            })
            .collect()
    }

    fn appointment(&self) -> Result<Vec<Inbound>, InboundError> {
        let kind = "AppointmentCreate";
        let appointment = self.body.get("appointment").filter(|a| a.is_object()).unwrap_or(&Value::Null);
        let contact = text(appointment, "contactId").ok_or_else(|| malformed("the appointment has no contactId"))?;
        let mut attributes = Map::new();
        for (name, key) in [
            ("appointment_id", "id"),
            ("calendar_id", "calendarId"),
            ("status", "appointmentStatus"),
            ("start_time", "startTime"),
            ("source", "source"),
        ] {
            if let Some(value) = appointment.get(key).filter(|v| !v.is_null()) {
                attributes.insert(name.to_owned(), value.clone());
            }
        }
        let id = text(appointment, "id").map(|i| i.into_owned());
        let key = self.key(|| self.derived(kind, &[id]));
        let at = self.occurred_at(&[appointment.get("dateAdded"), self.body.get("timestamp")]);
        Ok(vec![Inbound::Ready(build(key, "appointment.booked", &contact, None, at, attributes, Map::new())?)])
    }

    fn invoice(&self, kind: &str) -> Result<Vec<Inbound>, InboundError> {
        if self.field("status").is_some_and(|s| s != "paid") {
            return Ok(vec![Inbound::Unmapped(format!("Invoice:{}", self.field("status").unwrap_or_default()))]);
        }
        let details = self.body.get("contactDetails").unwrap_or(&Value::Null);
        let contact = text(details, "id").ok_or_else(|| malformed("the invoice has no contactDetails.id"))?;
        let mut attributes = Map::new();
        for (name, key) in [
            ("amount", "amountPaid"),
            ("currency", "currency"),
            ("invoice_id", "_id"),
            ("invoice_number", "invoiceNumber"),
            ("total", "total"),
        ] {
            if let Some(value) = self.body.get(key).filter(|v| !v.is_null()) {
                attributes.insert(name.to_owned(), value.clone());
            }
        }
        let key = self.key(|| self.derived(kind, &[self.field("_id")]));
        let at = self.occurred_at(&[self.body.get("timestamp"), self.body.get("updatedAt")]);
        let mut fields = Map::new();
        if let Some(email) = details.get("email").filter(|e| e.is_string()) {
            fields.insert("email".into(), email.clone());
        }
        Ok(vec![Inbound::Ready(build(key, "invoice.paid", &contact, None, at, attributes, fields)?)])
    }

    /// Email statistics name the recipient's address only: stored to be
    /// resolved to a contact through the API (see `resolve`).
    fn email_stats(&self) -> Result<Vec<Inbound>, InboundError> {
        let payload = self.body.get("webhookPayload").filter(|p| p.is_object()).unwrap_or(&Value::Null);
        let event = text(payload, "event").map(|e| e.into_owned()).unwrap_or_default();
        let canonical = match event.as_str() {
            "delivered" => "email.sent",
            "opened" => "email.opened",
            "clicked" => "email.clicked",
            "failed" | "bounced" => "email.bounced",
            _ => return Ok(vec![Inbound::Unmapped(format!("{EMAIL_STATS}:{event}"))]),
        };
        let email = text(payload, "recipient").ok_or_else(|| malformed("the email event has no recipient"))?;
        let id = text(payload, "id").map(|i| i.into_owned());
        let key = self.key(|| self.derived(EMAIL_STATS, &[Some(event.clone()), id]));
        let mut attributes = Map::new();
        attributes.insert("event".into(), Value::String(event.clone()));
        let message_id = payload.get("message").and_then(|m| m.get("headers")).and_then(|h| h.get("message-id"));
        if let Some(message_id) = message_id.filter(|m| m.is_string()) {
            attributes.insert("message_id".into(), message_id.clone());
        }
        for (name, key) in [("url", "url"), ("campaigns", "campaigns")] {
            if let Some(value) = payload.get(key).filter(|v| !v.is_null()) {
                attributes.insert(name.to_owned(), value.clone());
            }
        }
        let pending = PendingEmail {
            location_id: self.location(),
            email: email.clone().into_owned(),
            kind: canonical.to_owned(),
            occurred_at: self.occurred_at(&[payload.get("timestamp"), self.body.get("timestamp")]),
            attributes,
        };
        let event = serde_json::to_value(&pending).map_err(|e| malformed(&e.to_string()))?;
        Ok(vec![Inbound::Resolve(Unresolved { key, kind: EMAIL_STATS.to_owned(), subject: email.into_owned(), event })])
    }

    /// A workflow "Webhook" action: the admin names the interaction type.
    fn workflow(&self, request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
        let custom = self.body.get("customData").and_then(Value::as_object);
        let named = custom.and_then(|c| c.get("scorehook_event")).and_then(Value::as_str).map(str::to_owned);
        let Some(kind) = named.or_else(|| request.query_param("type")).filter(|k| !k.is_empty()) else {
            return Ok(vec![Inbound::Unmapped("workflow".to_owned())]);
        };
        if InteractionType::parse(&kind).is_err() {
            return Ok(vec![Inbound::Unmapped(format!("workflow:{kind}"))]);
        }
        let contact = self.field("contact_id").ok_or_else(|| malformed("the workflow body's contact_id is empty"))?;
        let mut attributes = Map::new();
        for (name, value) in custom.into_iter().flatten() {
            if name != "scorehook_event" && !value.is_null() {
                attributes.insert(name.clone(), value.clone());
            }
        }
        let workflow = self.body.get("workflow").unwrap_or(&Value::Null);
        if let Some(id) = text(workflow, "id") {
            attributes.insert("workflow_id".into(), Value::String(id.into_owned()));
        }
        if let Some(name) = text(workflow, "name") {
            attributes.insert("workflow_name".into(), Value::String(name.into_owned()));
        }
        let mut fields = Map::new();
        for key in
            ["email", "phone", "first_name", "last_name", "country", "timezone", "contact_source", "contact_type"]
        {
            if let Some(value) = self.body.get(key).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
                fields.insert(key.to_owned(), value.clone());
            }
        }
        let key = workflow_key(&self.location(), text(workflow, "id").as_deref().unwrap_or(""), &contact, self.raw);
        Ok(vec![Inbound::Ready(build(key, &kind, &contact, None, self.now, attributes, fields)?)])
    }
}

/// `hash(location, workflow, contact, body)`: the body has no event id or
/// time, so an identical re-run collapses and any difference does not.
fn workflow_key(location: &str, workflow: &str, contact: &str, raw: &[u8]) -> EventId {
    let mut content = [location, workflow, contact].join("\u{1f}").into_bytes();
    content.push(0x1f);
    content.extend_from_slice(raw);
    hashed_key(PREFIX, &content)
}

/// Call outcomes that mean nobody answered (HighLevel's exact strings beyond `voicemail` are unverified).
fn missed(call_status: &str) -> bool {
    matches!(call_status, "voicemail" | "no-answer" | "busy" | "missed" | "failed" | "canceled")
}

/// An email-stats event waiting for its contact: the interaction minus `contact_id`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PendingEmail {
    pub location_id: String,
    pub email: String,
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub attributes: Map<String, Value>,
}

/// `inbound::interaction` for a contact id still in text form.
fn build(
    id: EventId,
    kind: &str,
    contact: &str,
    deal: Option<DealId>,
    occurred_at: DateTime<Utc>,
    attributes: Map<String, Value>,
    contact_fields: Map<String, Value>,
) -> Result<Interaction, InboundError> {
    let contact_id = ContactId::parse(contact).map_err(|e| malformed(&e.to_string()))?;
    interaction(id, kind, contact_id, deal, occurred_at, attributes, contact_fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::highlevel::auth::tests::{sample, tenant};
    use axum::http::HeaderMap;
    use proptest::prelude::*;
    use serde_json::json;

    fn items(file: &str, url: &str) -> Vec<Inbound> {
        let body = sample(file);
        let headers = HeaderMap::new();
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        normalize(&tenant(json!({})), &Request { method: "POST", url, headers: &headers, body: &body, now }).unwrap()
    }

    fn one(file: &str) -> Interaction {
        match items(file, "https://h.test/v1/webhooks/highlevel/hl").as_slice() {
            [Inbound::Ready(interaction)] => interaction.clone(),
            other => panic!("{file}: {other:?}"),
        }
    }

    fn check(i: &Interaction, kind: &str, contact: &str, key: &str) {
        assert_eq!(i.kind.as_str(), kind);
        assert_eq!(i.contact_id.as_str(), contact);
        assert_eq!(i.id.as_str(), key);
    }

    #[test]
    fn an_inbound_sms_is_a_chat_message() {
        let i = one("inbound_message_sms_docs.json");
        check(&i, "chat.message", "cI08i1Bls3iTB9bKgFJh", "4a1e0f3c-5b2d-4c8e-9f61-2d7a8b9c0e11");
        assert_eq!(i.attributes["channel"], "SMS");
        assert_eq!(i.attributes["text"], "This is a test message");
        assert_eq!(i.occurred_at, "2021-04-21T11:31:45.750Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn an_unanswered_inbound_call_is_missed() {
        let i = one("inbound_message_call_voicemail_docs.json");
        check(
            &i,
            "call.missed",
            "gb7laj5aYQC4glDtP1r5",
            "hl:0dalah57827q67DAuXUxbpy:InboundMessage:QkNS0DNje0FjoLQdD5O3",
        );
        assert_eq!(i.attributes["status"], "voicemail");
    }

    #[test]
    fn a_stage_update_moves_the_deal() {
        let i = one("opportunity_stage_update_docs.json");
        check(&i, "deal.stage_changed", "cJAWDskpkJHbRbhAT7bs", "9b2c7d10-1f4e-4a55-8c3b-6e0d2a4f7b21");
        assert_eq!(i.deal_id.as_ref().map(DealId::as_str), Some("wWhVuzqpRuOA1ZVWi4FC"));
        assert_eq!(i.attributes["pipeline"], "VDm7RPYC2GLUvdpKmBfC");
        assert_eq!(i.attributes["stage"], "e93ba61a-53b3-45e7-985a-c7732dbcdb69");
    }

    #[test]
    fn a_tag_update_carries_the_whole_tag_list() {
        let i = one("contact_tag_update_docs.json");
        check(&i, "contact.updated", "nmFmQEsNgz6AVpgLVUJ0", "c3f1a9e2-7d44-4b0e-a1c5-0f9e8d7c6b53");
        assert_eq!(i.attributes["tags"], json!(["id magna sed Lorem", "Duis dolor commodo aliqua"]));
        assert_eq!(i.contact["email"], "JohnDeo@gmail.comm");
    }

    #[test]
    fn a_created_appointment_is_booked() {
        let i = one("appointment_create_docs.json");
        check(&i, "appointment.booked", "9NkT25Vor1v4aQatFsv2", "e8a4b6c2-0d19-4f7a-b3e5-92c1d0f4a6b7");
        assert_eq!(i.attributes["calendar_id"], "BqTwX8QFwXzpegMve9EQ");
        assert_eq!(i.attributes["status"], "confirmed");
    }

    #[test]
    fn a_paid_invoice_without_a_type_is_recognised_by_its_shape() {
        let i = one("invoice_paid_docs.json");
        check(
            &i,
            "invoice.paid",
            "6578278e879ad2646715ba9c",
            "hl:6578278e879ad2646715ba9c:InvoicePaid:6578278e879ad2646715ba9c",
        );
        assert_eq!(i.attributes["amount"], 999);
        assert_eq!(i.attributes["currency"], "USD");
    }

    #[test]
    fn email_stats_wait_to_be_resolved_by_recipient() {
        let items = items("lc_email_stats_delivered_docs.json", "https://h.test/x");
        let [Inbound::Resolve(event)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!(event.key.as_str(), "hl:ve9EPM428h8vShlRW1KT:LCEmailStats:delivered:ve9EPM428h8vShlRW1KT");
        assert_eq!(event.kind, EMAIL_STATS);
        assert_eq!(event.subject, "test@example.com");
        let pending: PendingEmail = serde_json::from_value(event.event.clone()).unwrap();
        assert_eq!(pending.kind, "email.sent");
        assert_eq!(pending.location_id, "ve9EPM428h8vShlRW1KT");
        assert_eq!(pending.occurred_at, Utc.timestamp_opt(1714032441, 0).unwrap());
        assert_eq!(pending.attributes["event"], "delivered");
    }

    #[test]
    fn a_workflow_webhook_is_the_admins_event_keyed_by_its_content() {
        let i = one("workflow_webhook_form_submitted_constructed.json");
        let body = sample("workflow_webhook_form_submitted_constructed.json");
        let expected = workflow_key("loc_ABC123", "wf_7f3c2a10", "c_42hlWf01", &body);
        check(&i, "form.submitted", "c_42hlWf01", expected.as_str());
        assert!(i.id.as_str().starts_with("hl:h:"));
        assert_eq!(i.attributes["form_id"], "frm_123");
        assert_eq!(i.attributes["workflow_id"], "wf_7f3c2a10");
        assert!(!i.attributes.contains_key("scorehook_event"));
        assert_ne!(expected, workflow_key("loc_ABC123", "wf_7f3c2a10", "c_other", &body));
    }

    #[test]
    fn a_workflow_body_without_an_event_type_takes_the_urls_or_is_unmapped() {
        let mut body: Value =
            serde_json::from_slice(&sample("workflow_webhook_form_submitted_constructed.json")).unwrap();
        body["customData"] = json!({"page": "/pricing"});
        let raw = serde_json::to_vec(&body).unwrap();
        let headers = HeaderMap::new();
        let run = |url: &str| {
            let request = Request { method: "POST", url, headers: &headers, body: &raw, now: Utc::now() };
            normalize(&tenant(json!({})), &request).unwrap()
        };
        assert_eq!(run("https://h.test/x?key=s"), vec![Inbound::Unmapped("workflow".into())]);
        let items = run("https://h.test/x?key=s&type=page.visited");
        let [Inbound::Ready(i)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!(i.kind.as_str(), "page.visited");
        assert_eq!(i.attributes["page"], "/pricing");
        assert_eq!(
            run("https://h.test/x?type=email.exploded"),
            vec![Inbound::Unmapped("workflow:email.exploded".into())]
        );
    }

    #[test]
    fn other_kinds_are_unmapped_and_strange_bodies_malformed() {
        let run = |body: &[u8]| {
            let headers = HeaderMap::new();
            let request = Request { method: "POST", url: "https://h.test/x", headers: &headers, body, now: Utc::now() };
            normalize(&tenant(json!({})), &request)
        };
        assert_eq!(run(br#"{"type":"TaskCreate","locationId":"l"}"#), Ok(vec![Inbound::Unmapped("TaskCreate".into())]));
        assert_eq!(
            run(br#"{"type":"OutboundMessage","messageType":"SMS","contactId":"c"}"#),
            Ok(vec![Inbound::Unmapped("OutboundMessage:SMS".into())])
        );
        assert_eq!(
            run(br#"{"type":"LCEmailStats","webhookPayload":{"event":"complained","recipient":"a@b.c"}}"#),
            Ok(vec![Inbound::Unmapped("LCEmailStats:complained".into())])
        );
        for bad in
            [&b"not json"[..], b"[]", b"{}", br#"{"type":7}"#, br#"{"type":"InboundMessage","messageType":"SMS"}"#]
        {
            assert!(matches!(run(bad), Err(InboundError::Malformed(_))), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn calls_and_emails_map_by_direction() {
        let run = |body: Value| {
            let raw = serde_json::to_vec(&body).unwrap();
            let headers = HeaderMap::new();
            let request =
                Request { method: "POST", url: "https://h.test/x", headers: &headers, body: &raw, now: Utc::now() };
            match normalize(&tenant(json!({})), &request).unwrap().as_slice() {
                [Inbound::Ready(i)] => (i.kind.as_str().to_owned(), i.attributes.clone()),
                other => panic!("{other:?}"),
            }
        };
        let call = json!({"type": "InboundMessage", "contactId": "c", "messageType": "CALL", "messageId": "m",
            "status": "completed", "callStatus": "completed", "callDuration": 42});
        let (kind, attributes) = run(call.clone());
        assert_eq!(kind, "call.incoming");
        assert_eq!(attributes["duration"], 42);
        let mut outbound = call.clone();
        outbound["type"] = json!("OutboundMessage");
        assert_eq!(run(outbound).0, "call.outgoing");
        let email = json!({"type": "InboundMessage", "contactId": "c", "messageType": "Email", "messageId": "m",
            "subject": "Re: pricing", "threadId": "t1"});
        let (kind, attributes) = run(email.clone());
        assert_eq!(kind, "email.received");
        assert_eq!((&attributes["subject"], &attributes["thread"]), (&json!("Re: pricing"), &json!("t1")));
        let mut sent = email;
        sent["type"] = json!("OutboundMessage");
        assert_eq!(run(sent).0, "email.sent");
    }

    #[test]
    fn a_dnd_update_subscribes_and_unsubscribes_per_channel() {
        let body = json!({"type": "ContactDndUpdate", "id": "c1", "webhookId": "w1",
            "dndSettings": {"Email": {"status": "active"}, "SMS": {"status": "inactive"}}});
        let raw = serde_json::to_vec(&body).unwrap();
        let headers = HeaderMap::new();
        let request =
            Request { method: "POST", url: "https://h.test/x", headers: &headers, body: &raw, now: Utc::now() };
        let kinds: Vec<(String, String, String)> = normalize(&tenant(json!({})), &request)
            .unwrap()
            .into_iter()
            .map(|item| match item {
                Inbound::Ready(i) => {
                    (i.kind.to_string(), i.attributes["list_id"].as_str().unwrap().to_owned(), i.id.to_string())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("list.unsubscribed".into(), "dnd:Email".into(), "w1:dnd:Email".into()),
                ("list.subscribed".into(), "dnd:SMS".into(), "w1:dnd:SMS".into())
            ]
        );
    }

    #[test]
    fn reads_instants_in_every_form_highlevel_writes() {
        let expected = Utc.timestamp_opt(1714032441, 0).unwrap();
        assert_eq!(instant(&json!(1714032441)), Some(expected));
        assert_eq!(instant(&json!(1714032441000_i64)), Some(expected));
        assert_eq!(instant(&json!("2024-04-25T08:07:21Z")), Some(expected));
        assert_eq!(instant(&json!("yesterday")), None);
        assert_eq!(instant(&json!(1e300)), None);
        assert_eq!(instant(&json!(null)), None);
    }

    /// Field names HighLevel bodies use, so generated bodies reach the mappings.
    const KEYS: &[&str] = &[
        "type",
        "contactId",
        "contact_id",
        "id",
        "_id",
        "messageType",
        "status",
        "callStatus",
        "webhookId",
        "timestamp",
        "dateAdded",
        "locationId",
        "altId",
        "location",
        "appointment",
        "contactDetails",
        "webhookPayload",
        "event",
        "recipient",
        "dndSettings",
        "dnd",
        "customData",
        "scorehook_event",
        "workflow",
        "tags",
        "pipelineStageId",
        "amountPaid",
        "invoiceNumber",
        "body",
        "message",
        "headers",
    ];
    const TYPES: &[&str] = &[
        "InboundMessage",
        "OutboundMessage",
        "OpportunityStageUpdate",
        "ContactUpdate",
        "ContactTagUpdate",
        "ContactDndUpdate",
        "AppointmentCreate",
        "InvoicePaid",
        "LCEmailStats",
        "TaskCreate",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            proptest::sample::select(TYPES).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(proptest::sample::select(KEYS), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn no_body_shaped_like_highlevels_makes_normalize_panic(
            kind in proptest::option::of(proptest::sample::select(TYPES)),
            fields in proptest::collection::btree_map(proptest::sample::select(KEYS), json_value(), 0..12),
            query in "[a-z=&.]{0,20}",
        ) {
            let mut body: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if let Some(kind) = kind {
                body.insert("type".into(), Value::from(kind));
            }
            let raw = serde_json::to_vec(&Value::Object(body)).unwrap();
            let headers = HeaderMap::new();
            let url = format!("https://h.test/x?{query}");
            let request = Request { method: "POST", url: &url, headers: &headers, body: &raw, now: Utc::now() };
            let tenant = tenant(json!({"location_id": "l1"}));
            let _ = crate::crm::highlevel::auth::verify(&tenant, &request);
            let _ = normalize(&tenant, &request);
        }
    }
}
