//! A Pipedrive webhook body into interactions.
//!
//! Pipedrive sends one event per request: v2 `{meta, data, previous}`
//! (the default since 2025) or legacy v1 `{meta, current, previous, event}`.
//! Both are read into one `Event` view, then mapped by entity and action
//! (pipedrive.md §2): a deal's stage change, a person created or changed
//! (plus one `field.changed` per changed field), and activities by their
//! type key (meeting booked, call or email done). Everything else is
//! acknowledged as `Unmapped`: Pipedrive bans endpoints that keep failing.
//!
//! Pure: no I/O, and the clock only as a fallback for a missing timestamp.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

use super::keys;
use super::resolve::PendingDeal;
use crate::crm::inbound::{derived_key, interaction, text, Inbound, InboundError, Request, Unresolved};
use crate::engine::interaction::InteractionType;
use crate::ids::{ContactId, DealId, EventId};
use crate::tenant::TenantRecord;

/// The prefix of every Pipedrive idempotency key.
const PREFIX: &str = "pipedrive";

/// Kind tallied when the tenant names a `company_id` and the event is another company's.
pub const OTHER_COMPANY: &str = "other_company";

/// Activity type keys scored when the tenant sets no `activity_types`.
const DEFAULT_ACTIVITY_TYPES: &[(&str, &str)] =
    &[("meeting", "appointment.booked"), ("call", "call.outgoing"), ("email", "email.sent")];

/// The interaction type scored when an activity is created, not when it is done.
const BOOKED: &str = "appointment.booked";

static NULL: Value = Value::Null;

/// Turns one webhook body (one event) into inbound items.
pub fn normalize(tenant: &TenantRecord, request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
    let body: Value = serde_json::from_slice(request.body)
        .map_err(|e| InboundError::Malformed(format!("a Pipedrive webhook body is JSON: {e}")))?;
    let event = Event::parse(&body)?;
    if let Some(expected) = company_setting(tenant) {
        if event.company().as_deref() != Some(expected.as_str()) {
            return Ok(vec![Inbound::Unmapped(OTHER_COMPANY.into())]);
        }
    }
    match (event.entity, event.action()) {
        ("deal", Action::Change) => deal(&event, request.now),
        ("person", Action::Create | Action::Change) => person(&event, request.now),
        ("activity", Action::Create | Action::Change) => activity(&event, tenant, request.now),
        _ => Ok(vec![Inbound::Unmapped(event.kind())]),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Create,
    Change,
    Other,
}

/// One event, v1 or v2, seen the same way.
struct Event<'v> {
    version: Version,
    /// As sent: v2 `create`/`change`/`delete`, v1 `added`/`updated`/`deleted`/`merged`.
    action: &'v str,
    entity: &'v str,
    meta: &'v Value,
    /// The object now (v2 `data`, v1 `current`); `Null` when deleted.
    data: &'v Value,
    /// v2: only the changed fields, old values; v1: the whole previous object.
    previous: &'v Value,
}

impl<'v> Event<'v> {
    fn parse(body: &'v Value) -> Result<Self, InboundError> {
        let meta = body
            .get("meta")
            .filter(|m| m.is_object())
            .ok_or_else(|| InboundError::Malformed("a Pipedrive webhook body has a meta object".into()))?;
        let field = |v: &'v Value, k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let part = |k: &str| body.get(k).unwrap_or(&NULL);
        if let (Some(action), Some(entity)) = (field(meta, "action"), field(meta, "entity")) {
            return Ok(Self {
                version: Version::V2,
                action,
                entity,
                meta,
                data: part("data"),
                previous: part("previous"),
            });
        }
        let named = field(body, "event").and_then(|e| e.split_once('.'));
        let (action, entity) = named
            .or_else(|| field(meta, "action").zip(field(meta, "object")))
            .ok_or_else(|| InboundError::Malformed("the body names no event (meta.action and meta.entity)".into()))?;
        Ok(Self { version: Version::V1, action, entity, meta, data: part("current"), previous: part("previous") })
    }

    fn action(&self) -> Action {
        match self.action {
            "create" | "added" => Action::Create,
            "change" | "updated" => Action::Change,
            _ => Action::Other,
        }
    }

    /// `change.deal` (v2) or `updated.deal` (v1): the name unmapped events are counted under.
    fn kind(&self) -> String {
        format!("{}.{}", self.action, self.entity)
    }

    fn company(&self) -> Option<String> {
        text(self.meta, "company_id").map(|c| c.into_owned())
    }

    /// The idempotency key (pipedrive.md §1.6), with a suffix when one event gives several interactions.
    fn key(&self, suffix: Option<&str>) -> Result<EventId, InboundError> {
        let missing = |what: &str| InboundError::Malformed(format!("the event's meta has no {what}"));
        let company = self.company().ok_or_else(|| missing("company_id"))?;
        let id = text(self.meta, "id").ok_or_else(|| missing("id"))?;
        let mut parts = vec![company];
        if self.version == Version::V1 {
            let at = ["timestamp_micro", "timestamp_milli", "timestamp"].iter().find_map(|k| text(self.meta, k));
            let at = at.ok_or_else(|| missing("timestamp"))?;
            parts.extend([self.kind(), id.into_owned(), at.into_owned()]);
        } else {
            parts.push(id.into_owned());
        }
        parts.extend(suffix.map(str::to_owned));
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(derived_key(PREFIX, &parts))
    }

    /// When it happened: v2 `meta.timestamp` (ISO-8601, or epoch seconds for
    /// some entities), v1 the finest timestamp given; else when it arrived.
    fn occurred_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let number = |k: &str| self.meta.get(k).and_then(Value::as_i64);
        let from_v1 = number("timestamp_micro")
            .and_then(DateTime::from_timestamp_micros)
            .or_else(|| number("timestamp_milli").and_then(DateTime::from_timestamp_millis));
        let from_string = self.meta.get("timestamp").and_then(Value::as_str).and_then(|t| t.parse().ok());
        let from_seconds = number("timestamp").and_then(|s| Utc.timestamp_opt(s, 0).single());
        from_v1.or(from_string).or(from_seconds).unwrap_or(now)
    }

    /// The changed fields with their old values: v2 lists only those in
    /// `previous` (custom fields nested under `custom_fields`); v1 sends both
    /// whole objects, so they are compared. `update_time` is not a change of
    /// its own.
    fn changes(&self) -> Vec<Change<'v>> {
        let Some(previous) = self.previous.as_object() else { return Vec::new() };
        let new = |k: &str| self.data.get(k).unwrap_or(&NULL);
        let mut changes = Vec::new();
        for (field, old) in previous {
            if field == "update_time" {
                continue;
            }
            if field == "custom_fields" && self.version == Version::V2 {
                let current = self.data.get("custom_fields").unwrap_or(&NULL);
                for (code, old) in old.as_object().into_iter().flatten() {
                    changes.push(Change { field: code, old, new: current.get(code.as_str()).unwrap_or(&NULL) });
                }
                continue;
            }
            if self.version == Version::V1 && old == new(field) {
                continue;
            }
            changes.push(Change { field, old, new: new(field) });
        }
        changes
    }
}

struct Change<'v> {
    field: &'v str,
    old: &'v Value,
    new: &'v Value,
}

/// `change.deal` / `updated.deal`: scored only when the stage (or pipeline) moved.
fn deal(event: &Event<'_>, now: DateTime<Utc>) -> Result<Vec<Inbound>, InboundError> {
    let previous = event.previous;
    let moved = match event.version {
        Version::V2 => previous.get("stage_id").is_some() || previous.get("pipeline_id").is_some(),
        Version::V1 => ["stage_id", "pipeline_id"]
            .iter()
            .any(|k| previous.get(k).is_some_and(|old| Some(old) != event.data.get(k))),
    };
    if !moved {
        return Ok(vec![Inbound::Unmapped(event.kind())]);
    }
    let deal_id = id_at(event.data, "id")
        .or_else(|| entity_id(event))
        .and_then(|d| DealId::parse(d).ok())
        .ok_or_else(|| InboundError::Malformed("the deal event names no deal id".into()))?;
    let mut attributes = Map::new();
    attributes.insert("pipeline".into(), event.data.get("pipeline_id").cloned().unwrap_or_default());
    attributes.insert("stage".into(), event.data.get("stage_id").cloned().unwrap_or_default());
    attributes.insert("old_stage".into(), previous.get("stage_id").cloned().unwrap_or_default());
    if let Some(old) = previous.get("pipeline_id").filter(|old| Some(*old) != event.data.get("pipeline_id")) {
        attributes.insert("old_pipeline".into(), old.clone());
    }
    add_change_source(event, &mut attributes);
    let key = event.key(None)?;
    let occurred_at = event.occurred_at(now);
    let Some(contact) = contact_at(event.data, "person_id") else {
        let pending = PendingDeal { deal_id: deal_id.clone(), occurred_at, attributes };
        let event_value = serde_json::to_value(&pending)
            .map_err(|e| InboundError::Malformed(format!("cannot keep the deal event: {e}")))?;
        return Ok(vec![Inbound::Resolve(Unresolved {
            key,
            kind: event.kind(),
            subject: ContactId::for_deal(&deal_id).to_string(),
            event: event_value,
        })]);
    };
    let interaction =
        interaction(key, "deal.stage_changed", contact, Some(deal_id), occurred_at, attributes, Map::new())?;
    Ok(vec![Inbound::Ready(interaction)])
}

/// `create.person` / `change.person`: `contact.updated`, and on a change one
/// `field.changed` per changed field (keyed by the field's name or hash).
fn person(event: &Event<'_>, now: DateTime<Utc>) -> Result<Vec<Inbound>, InboundError> {
    let contact = contact_at(event.data, "id")
        .or_else(|| entity_id(event).and_then(|c| ContactId::parse(c).ok()))
        .ok_or_else(|| InboundError::Malformed("the person event names no person id".into()))?;
    let occurred_at = event.occurred_at(now);
    let mut updated =
        interaction(event.key(None)?, "contact.updated", contact.clone(), None, occurred_at, Map::new(), Map::new())?;
    updated.contact = contact_details(event.data);
    let mut items = vec![Inbound::Ready(updated)];
    if event.action() == Action::Change {
        for change in event.changes() {
            let attributes = Map::from_iter([
                ("field".to_owned(), Value::String(change.field.to_owned())),
                ("old".to_owned(), change.old.clone()),
                ("new".to_owned(), change.new.clone()),
            ]);
            let key = event.key(Some(change.field))?;
            items.push(Inbound::Ready(interaction(
                key,
                "field.changed",
                contact.clone(),
                None,
                occurred_at,
                attributes,
                Map::new(),
            )?));
        }
    }
    Ok(items)
}

/// `create.activity` / `change.activity`, by the activity's type key: a
/// booked type (a meeting) scores when created, the others when done.
fn activity(event: &Event<'_>, tenant: &TenantRecord, now: DateTime<Utc>) -> Result<Vec<Inbound>, InboundError> {
    let type_key = event.data.get("type").and_then(Value::as_str).unwrap_or_default();
    let unmapped = || Ok(vec![Inbound::Unmapped(format!("{}:{type_key}", event.kind()))]);
    let Some(kind) = activity_type(tenant, type_key) else { return unmapped() };
    let done_now = is_true(event.data.get("done"));
    let scores = match (kind.as_str(), event.action()) {
        (BOOKED, action) => action == Action::Create,
        (_, Action::Create) => done_now,
        (_, _) => done_now && event.previous.get("done").is_some_and(|d| !is_true(Some(d))),
    };
    if !scores {
        return unmapped();
    }
    let Some(contact) = contact_at(event.data, "person_id").or_else(|| primary_participant(event.data)) else {
        return Ok(vec![Inbound::Unmapped(format!("{}:no_person", event.kind()))]);
    };
    let deal = id_at(event.data, "deal_id").and_then(|d| DealId::parse(d).ok());
    let mut attributes = Map::new();
    attributes.insert("activity_type".into(), Value::String(type_key.to_owned()));
    if let Some(id) = event.data.get("id").filter(|id| !id.is_null()) {
        attributes.insert("activity_id".into(), id.clone());
    }
    add_change_source(event, &mut attributes);
    let interaction =
        interaction(event.key(None)?, kind.as_str(), contact, deal, event.occurred_at(now), attributes, Map::new())?;
    Ok(vec![Inbound::Ready(interaction)])
}

/// The interaction type of an activity type key: the tenant's
/// `activity_types` map when set (it replaces the defaults), else the defaults.
fn activity_type(tenant: &TenantRecord, type_key: &str) -> Option<InteractionType> {
    let name = match tenant.crm.get(keys::ACTIVITY_TYPES).and_then(Value::as_object) {
        Some(table) => table.get(type_key).and_then(Value::as_str)?.to_owned(),
        None => DEFAULT_ACTIVITY_TYPES.iter().find(|(k, _)| *k == type_key).map(|(_, t)| (*t).to_owned())?,
    };
    InteractionType::parse(&name).ok()
}

/// `app` or `api`: rules can tell edits in Pipedrive from integrations' writes.
fn add_change_source(event: &Event<'_>, attributes: &mut Map<String, Value>) {
    if let Some(source) = event.meta.get("change_source").and_then(Value::as_str) {
        attributes.insert("change_source".into(), json!(source));
    }
}

/// An id at `key`: a number, a non-empty string, or v1's `{"value": id, "name": …}`.
fn id_at(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        object @ Value::Object(_) => id_at(object, "value"),
        _ => None,
    }
}

fn contact_at(value: &Value, key: &str) -> Option<ContactId> {
    id_at(value, key).and_then(|c| ContactId::parse(c).ok())
}

/// The entity's id from `meta`: v2 `entity_id`, v1 `id`.
fn entity_id(event: &Event<'_>) -> Option<String> {
    let key = if event.version == Version::V2 { "entity_id" } else { "id" };
    text(event.meta, key).map(|id| id.into_owned())
}

/// The primary participant of an activity (v2 `participants[].primary`, v1 `primary_flag`).
fn primary_participant(data: &Value) -> Option<ContactId> {
    let participants = data.get("participants")?.as_array()?;
    let primary = |p: &&Value| is_true(p.get("primary")) || is_true(p.get("primary_flag"));
    let chosen = participants.iter().find(primary).or_else(|| participants.first())?;
    contact_at(chosen, "person_id")
}

/// A flag sent as a boolean (v2) or as 0/1 (older v1 objects).
fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

/// The person's name and primary email, when the body carries them.
fn contact_details(data: &Value) -> Map<String, Value> {
    let mut contact = Map::new();
    if let Some(name) = data.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        contact.insert("name".into(), json!(name));
    }
    let emails = data.get("emails").or_else(|| data.get("email")).and_then(Value::as_array);
    let emails = emails.map(Vec::as_slice).unwrap_or_default();
    let chosen = emails.iter().find(|e| is_true(e.get("primary"))).or_else(|| emails.first());
    if let Some(email) = chosen.and_then(|e| e.get("value")).and_then(Value::as_str).filter(|e| !e.is_empty()) {
        contact.insert("email".into(), json!(email));
    }
    contact
}

/// The tenant's Pipedrive company id, if it limits events to one company.
fn company_setting(tenant: &TenantRecord) -> Option<String> {
    match tenant.crm.get(keys::COMPANY_ID)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::engine::interaction::Interaction;
    use crate::ids::TenantId;
    use crate::tenant::{hash_token, Provider, Secret};
    use axum::http::HeaderMap;
    use proptest::prelude::*;

    pub fn tenant(secret: &str, crm: Value) -> TenantRecord {
        TenantRecord {
            id: TenantId::parse("t").unwrap(),
            provider: Provider::Pipedrive,
            webhook_secret: Secret::new(secret),
            actions_url: None,
            crm: crm.as_object().cloned().unwrap_or_default(),
            token_hash: hash_token("tok"),
            previous_token: None,
            token_rotated_at: None,
            signing_secret: None,
            previous_signing: None,
            revision: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    pub fn request<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Request<'a> {
        Request {
            method: "POST",
            url: "http://127.0.0.1:1/v1/webhooks/pipedrive/t",
            headers,
            body,
            now: "2026-11-23T10:00:00Z".parse().unwrap(),
        }
    }

    fn sample(file: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/crm/pipedrive/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }

    fn run(crm: Value, body: &[u8]) -> Result<Vec<Inbound>, InboundError> {
        let headers = HeaderMap::new();
        normalize(&tenant("s", crm), &request(&headers, body))
    }

    fn ready(items: Vec<Inbound>) -> Vec<Interaction> {
        items
            .into_iter()
            .map(|item| match item {
                Inbound::Ready(interaction) => interaction,
                other => panic!("expected a ready interaction, got {other:?}"),
            })
            .collect()
    }

    /// Type, contact, deal, key and the attributes the samples README names.
    fn assert_is(i: &Interaction, kind: &str, contact: &str, deal: Option<&str>, key: &str, attributes: Value) {
        assert_eq!(i.kind.as_str(), kind, "{i:?}");
        assert_eq!(i.contact_id.as_str(), contact, "{i:?}");
        assert_eq!(i.deal_id.as_ref().map(|d| d.as_str()), deal, "{i:?}");
        assert_eq!(i.id.as_str(), key, "{i:?}");
        for (name, value) in attributes.as_object().unwrap() {
            assert_eq!(i.attributes.get(name), Some(value), "attribute {name} of {i:?}");
        }
    }

    #[test]
    fn a_v2_stage_change_is_a_deal_stage_changed_with_the_old_stage() {
        let items = ready(run(json!({}), &sample("v2_change_deal_stage.json")).unwrap());
        assert_eq!(items.len(), 1);
        let key = "pipedrive:8087566:5b1f3e2a-7c4d-4e8f-9a0b-1c2d3e4f5a6b";
        let attributes = json!({"pipeline": 1, "stage": 3, "old_stage": 2, "change_source": "app"});
        assert_is(&items[0], "deal.stage_changed", "8", Some("8"), key, attributes);
        assert_eq!(items[0].occurred_at, "2022-11-24T15:20:13.512Z".parse::<DateTime<Utc>>().unwrap());
        assert!(!items[0].attributes.contains_key("old_pipeline"), "the pipeline did not change");
    }

    #[test]
    fn a_v2_person_change_is_contact_updated_plus_one_field_changed_per_field() {
        let items = ready(run(json!({}), &sample("v2_change_person_docs.json")).unwrap());
        let key = "pipedrive:8087566:7c812ffd-8f50-45ea-a597-b8fcba2da9c0";
        assert_eq!(items.len(), 3, "{items:?}");
        assert_is(&items[0], "contact.updated", "8", None, key, json!({}));
        assert_eq!(items[0].contact.get("name"), Some(&json!("Sample Person")));
        let first = json!({"field": "first_name", "old": "Sample", "new": "Sample Person"});
        assert_is(&items[1], "field.changed", "8", None, &format!("{key}:first_name"), first);
        let name = json!({"field": "name", "old": "Sample", "new": "Sample Person"});
        assert_is(&items[2], "field.changed", "8", None, &format!("{key}:name"), name);
    }

    #[test]
    fn a_v2_meeting_created_is_an_appointment_booked() {
        let items = ready(run(json!({}), &sample("v2_create_activity_meeting_docs.json")).unwrap());
        assert_eq!(items.len(), 1);
        let key = "pipedrive:8087566:bbba59e9-1d1f-4794-9472-72540d421386";
        assert_is(&items[0], "appointment.booked", "10", Some("10"), key, json!({"activity_type": "meeting"}));
    }

    #[test]
    fn a_v2_call_logged_done_is_an_outgoing_call() {
        let items = ready(run(json!({}), &sample("v2_create_activity_call_done.json")).unwrap());
        assert_eq!(items.len(), 1);
        let key = "pipedrive:8087566:c2d7a1e0-3b4f-4a5e-8d6c-9e0f1a2b3c4d";
        assert_is(&items[0], "call.outgoing", "8", Some("8"), key, json!({"activity_type": "call", "activity_id": 57}));
    }

    #[test]
    fn a_v1_stage_change_is_keyed_by_event_object_and_timestamp() {
        let items = ready(run(json!({}), &sample("v1_updated_deal_stage.json")).unwrap());
        assert_eq!(items.len(), 1);
        let key = "pipedrive:1689563:updated.deal:14:1764079500123456";
        assert_is(
            &items[0],
            "deal.stage_changed",
            "6",
            Some("14"),
            key,
            json!({"pipeline": 1, "stage": 3, "old_stage": 2}),
        );
        assert_eq!(items[0].occurred_at, DateTime::from_timestamp_micros(1764079500123456).unwrap());
    }

    fn body(sample_file: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value: Value = serde_json::from_slice(&sample(sample_file)).unwrap();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn a_deal_without_a_person_is_queued_for_resolution_under_its_final_key() {
        let bytes = body("v2_change_deal_stage.json", |v| v["data"]["person_id"] = Value::Null);
        let items = run(json!({}), &bytes).unwrap();
        let [Inbound::Resolve(event)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!(event.key.as_str(), "pipedrive:8087566:5b1f3e2a-7c4d-4e8f-9a0b-1c2d3e4f5a6b");
        assert_eq!(event.kind, "change.deal");
        assert_eq!(event.subject, "deal#8");
        let pending: PendingDeal = serde_json::from_value(event.event.clone()).unwrap();
        assert_eq!(pending.deal_id.as_str(), "8");
        assert_eq!(pending.attributes.get("old_stage"), Some(&json!(2)));
    }

    #[test]
    fn unscored_events_are_unmapped_never_errors() {
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "a deal edit that moves no stage",
                body("v2_change_deal_stage.json", |v| v["previous"] = json!({"title": "x"})),
                "change.deal",
            ),
            (
                "a deleted deal",
                body("v2_change_deal_stage.json", |v| v["meta"]["action"] = json!("delete")),
                "delete.deal",
            ),
            (
                "an unknown entity",
                body("v2_change_deal_stage.json", |v| v["meta"]["entity"] = json!("deal_installment")),
                "change.deal_installment",
            ),
            ("a note", body("v2_change_deal_stage.json", |v| v["meta"]["entity"] = json!("note")), "change.note"),
            (
                "a task created, not done",
                body("v2_create_activity_meeting_docs.json", |v| v["data"]["type"] = json!("task")),
                "create.activity:task",
            ),
            (
                "a call planned, not done",
                body("v2_create_activity_call_done.json", |v| v["data"]["done"] = json!(false)),
                "create.activity:call",
            ),
            (
                "a meeting without a person",
                body("v2_create_activity_meeting_docs.json", |v| v["data"]["person_id"] = Value::Null),
                "create.activity:no_person",
            ),
            (
                "a v1 merge",
                body("v1_updated_deal_stage.json", |v| v["event"] = json!("merged.person")),
                "merged.person",
            ),
        ];
        for (why, bytes, kind) in cases {
            assert_eq!(run(json!({}), &bytes), Ok(vec![Inbound::Unmapped(kind.into())]), "{why}");
        }
    }

    #[test]
    fn a_call_marked_done_later_scores_then() {
        let bytes = body("v2_create_activity_call_done.json", |v| {
            v["meta"]["action"] = json!("change");
            v["previous"] = json!({"done": false});
        });
        let items = ready(run(json!({}), &bytes).unwrap());
        assert_eq!(items[0].kind.as_str(), "call.outgoing");
    }

    #[test]
    fn activity_types_are_configurable_per_tenant() {
        let bytes = body("v2_create_activity_call_done.json", |v| v["data"]["type"] = json!("demo"));
        let items = ready(run(json!({"activity_types": {"demo": "custom.demo_done"}}), &bytes).unwrap());
        assert_eq!(items[0].kind.as_str(), "custom.demo_done");
        // The tenant's table replaces the defaults.
        let call = sample("v2_create_activity_call_done.json");
        let unmapped = run(json!({"activity_types": {"demo": "custom.demo_done"}}), &call).unwrap();
        assert_eq!(unmapped, vec![Inbound::Unmapped("create.activity:call".into())]);
    }

    #[test]
    fn another_companys_events_are_unmapped_when_the_tenant_names_its_company() {
        let bytes = sample("v2_change_deal_stage.json");
        assert_eq!(run(json!({"company_id": "1"}), &bytes), Ok(vec![Inbound::Unmapped(OTHER_COMPANY.into())]));
        assert!(matches!(run(json!({"company_id": "8087566"}), &bytes).unwrap()[0], Inbound::Ready(_)));
        let v1 = sample("v1_updated_deal_stage.json");
        assert!(matches!(run(json!({"company_id": 1689563}), &v1).unwrap()[0], Inbound::Ready(_)));
    }

    #[test]
    fn a_v1_person_update_changes_the_fields_that_differ() {
        let bytes = body("v1_updated_deal_stage.json", |v| {
            v["event"] = json!("updated.person");
            v["meta"]["object"] = json!("person");
            v["current"] = json!({"id": 6, "name": "Ana Lima", "email": [{"value": "ana@x.test", "primary": true}],
                                 "phone": [], "update_time": "2025-11-25 14:05:00"});
            v["previous"] = json!({"id": 6, "name": "Ana", "email": [{"value": "ana@x.test", "primary": true}],
                                  "phone": [], "update_time": "2025-11-24 09:00:00"});
        });
        let items = ready(run(json!({}), &bytes).unwrap());
        let key = "pipedrive:1689563:updated.person:14:1764079500123456";
        assert_eq!(items.len(), 2, "{items:?}");
        assert_is(&items[0], "contact.updated", "6", None, key, json!({}));
        assert_eq!(items[0].contact.get("email"), Some(&json!("ana@x.test")));
        let name = json!({"field": "name", "old": "Ana", "new": "Ana Lima"});
        assert_is(&items[1], "field.changed", "6", None, &format!("{key}:name"), name);
    }

    #[test]
    fn an_activity_without_person_id_falls_back_to_its_primary_participant() {
        let bytes = body("v2_create_activity_meeting_docs.json", |v| {
            v["data"]["person_id"] = Value::Null;
            v["data"]["participants"] = json!([{"person_id": 3, "primary": false}, {"person_id": 4, "primary": true}]);
        });
        let items = ready(run(json!({}), &bytes).unwrap());
        assert_eq!(items[0].contact_id.as_str(), "4");
    }

    #[test]
    fn custom_fields_change_under_their_hash() {
        let hash = "d4de1c1518b4531717c676029a45911c340390a6";
        let bytes = body("v2_change_person_docs.json", |v| {
            v["previous"] = json!({"custom_fields": {hash: {"type": "double", "value": 1}}, "update_time": "x"});
            v["data"]["custom_fields"] = json!({hash: {"type": "double", "value": 2}});
        });
        let items = ready(run(json!({}), &bytes).unwrap());
        assert_eq!(items.len(), 2, "update_time is not a change: {items:?}");
        assert_eq!(items[1].id.as_str(), format!("pipedrive:8087566:7c812ffd-8f50-45ea-a597-b8fcba2da9c0:{hash}"));
        assert_eq!(items[1].attributes.get("new"), Some(&json!({"type": "double", "value": 2})));
    }

    #[test]
    fn bodies_pipedrive_does_not_send_are_malformed() {
        for bytes in [&b"not json"[..], b"[]", b"{}", b"{\"meta\": 1}", b"{\"meta\": {}}"] {
            assert!(
                matches!(run(json!({}), bytes), Err(InboundError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let no_id = body("v2_change_deal_stage.json", |v| v["meta"]["id"] = Value::Null);
        assert!(matches!(run(json!({}), &no_id), Err(InboundError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn no_bytes_or_header_make_verify_or_normalize_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            header in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = axum::http::HeaderValue::from_bytes(&header) {
                headers.insert("authorization", value);
            }
            let tenant = tenant("pd-hook-pass-42", json!({"webhook_user": "scorehook", "company_id": "8087566"}));
            let _ = super::super::auth::verify(&tenant, &request(&headers, &bytes));
            let _ = normalize(&tenant, &request(&headers, &bytes));
        }

        #[test]
        fn no_edit_of_a_real_body_makes_normalize_panic(
            file in proptest::sample::select(vec![
                "v1_updated_deal_stage.json", "v2_change_deal_stage.json", "v2_change_person_docs.json",
                "v2_create_activity_call_done.json", "v2_create_activity_meeting_docs.json",
            ]),
            at in any::<prop::sample::Index>(),
            cut in 0usize..16,
            insert in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut bytes = sample(file);
            let start = at.index(bytes.len());
            let end = (start + cut).min(bytes.len());
            bytes.splice(start..end, insert);
            let _ = run(json!({}), &bytes);
        }

        #[test]
        fn any_json_in_the_known_fields_is_handled(
            field in proptest::sample::select(vec!["id", "person_id", "deal_id", "stage_id", "type", "done", "participants", "emails", "custom_fields"]),
            value in prop_oneof![
                Just(Value::Null), any::<bool>().prop_map(Value::from), any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| json!(f)), ".{0,8}".prop_map(Value::from),
                Just(json!([{"person_id": -1, "primary": 1}])), Just(json!({"value": {"value": []}})),
            ],
            file in proptest::sample::select(vec!["v1_updated_deal_stage.json", "v2_change_deal_stage.json",
                "v2_change_person_docs.json", "v2_create_activity_call_done.json"]),
        ) {
            let part = if file.starts_with("v1") { "current" } else { "data" };
            let bytes = body(file, |v| { v[part][field] = value.clone(); v["previous"][field] = value; });
            let _ = run(json!({}), &bytes);
        }
    }
}
