//! A HubSpot webhook body (a JSON array of up to 100 events) into
//! `Inbound` items, one per event.
//!
//! HubSpot's legacy subscriptions only say "object X was created" or
//! "property P of object X is now V"; engagement signals (opens, clicks,
//! forms, meetings) arrive as changes of HubSpot's read-only "last …"
//! contact properties. Contact events name their contact (`objectId`) and
//! are ready to score; deal and conversation events name a deal or a
//! thread, so they are stored for `resolve`. Pure: no I/O, no clock.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::PORTAL_ID;
use crate::crm::inbound::{derived_key, interaction, text, Inbound, InboundError, Unresolved};
use crate::ids::{ContactId, EventId};
use crate::tenant::TenantRecord;

/// The `channel` attribute of chat interactions.
pub const CHAT_CHANNEL: &str = "hubspot_conversations";

/// Contact properties whose every new value is one occurrence of a signal.
const SIGNALS: &[(&str, &str)] = &[
    ("hs_email_last_open_date", "email.opened"),
    ("hs_sales_email_last_opened", "email.opened"),
    ("hs_email_last_click_date", "email.clicked"),
    ("hs_sales_email_last_clicked", "email.clicked"),
    ("hs_sales_email_last_replied", "email.received"),
    ("hs_email_last_reply_date", "email.received"),
    ("hs_email_last_send_date", "email.sent"),
    ("hs_email_hard_bounce_reason_enum", "email.bounced"),
    ("hs_email_bounce", "email.bounced"),
    ("recent_conversion_date", "form.submitted"),
    ("hs_analytics_last_visit_timestamp", "page.visited"),
    ("hs_analytics_num_page_views", "page.visited"),
    ("engagements_last_meeting_booked", "appointment.booked"),
];

/// The fields every HubSpot event carries, read once.
struct Envelope<'v> {
    raw: &'v Value,
    kind: String,
    portal: String,
    object: String,
    key: EventId,
    occurred_at: DateTime<Utc>,
}

pub fn normalize(tenant: &TenantRecord, body: &[u8]) -> Result<Vec<Inbound>, InboundError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("a HubSpot body is a JSON array of events: {e}")))?;
    let Value::Array(events) = value else {
        return Err(InboundError::Malformed("a HubSpot body is a JSON array of events".into()));
    };
    let portal = match tenant.crm.get(PORTAL_ID) {
        Some(Value::String(p)) if !p.trim().is_empty() => Some(p.trim().to_owned()),
        Some(Value::Number(p)) => Some(p.to_string()),
        _ => None,
    };
    events.iter().enumerate().map(|(at, event)| one(event, at, portal.as_deref())).collect()
}

fn one(raw: &Value, at: usize, portal: Option<&str>) -> Result<Inbound, InboundError> {
    let envelope = envelope(raw).map_err(|field| {
        InboundError::Malformed(format!("HubSpot event [{at}] has no {field}, which every HubSpot event carries"))
    })?;
    if portal.is_some_and(|p| p != envelope.portal) {
        return Ok(Inbound::Unmapped("other_portal".into()));
    }
    Ok(map(&envelope))
}

fn envelope(raw: &Value) -> Result<Envelope<'_>, &'static str> {
    if !raw.is_object() {
        return Err("object");
    }
    // Older documentation prints the kind as `eventType`.
    let kind = text(raw, "subscriptionType").or_else(|| text(raw, "eventType")).ok_or("subscriptionType")?;
    let portal = text(raw, "portalId").ok_or("portalId")?;
    let subscription = text(raw, "subscriptionId").ok_or("subscriptionId")?;
    let event = text(raw, "eventId").ok_or("eventId")?;
    let object = text(raw, "objectId").ok_or("objectId")?;
    let key = derived_key("hubspot", &[&portal, &subscription, &event, &object]);
    let occurred_at = raw
        .get("occurredAt")
        .and_then(Value::as_i64)
        .and_then(DateTime::from_timestamp_millis)
        .ok_or("occurredAt (epoch milliseconds)")?;
    Ok(Envelope {
        raw,
        kind: kind.into_owned(),
        portal: portal.into_owned(),
        object: object.into_owned(),
        key,
        occurred_at,
    })
}

/// What one well-formed event becomes.
fn map(event: &Envelope<'_>) -> Inbound {
    let property = text(event.raw, "propertyName");
    let value = text(event.raw, "propertyValue");
    let unmapped = || Inbound::Unmapped(event.kind.clone());
    match (event.kind.as_str(), property.as_deref()) {
        ("contact.propertyChange", Some(property)) => {
            contact_change(event, property, value.as_deref().unwrap_or_default()).unwrap_or_else(unmapped)
        }
        ("contact.creation", _) => contact_updated(event, "creation").unwrap_or_else(unmapped),
        ("contact.merge", _) => contact_updated(event, "merge").unwrap_or_else(unmapped),
        ("contact.restore", _) => contact_updated(event, "restore").unwrap_or_else(unmapped),
        ("deal.propertyChange", Some("dealstage")) => match value {
            Some(stage) => {
                later(event, "deal.stage_changed", format!("deal#{}", event.object), json!({"stage": stage}))
            }
            None => unmapped(),
        },
        ("conversation.creation", _) => later(event, "chat.first_message", thread(event), json!({})),
        ("conversation.newMessage", _) if text(event.raw, "messageType").as_deref() != Some("COMMENT") => {
            let mut attributes = json!({});
            if let Some(message) = text(event.raw, "messageId") {
                attributes["message_id"] = json!(message);
            }
            later(event, "chat.message", thread(event), attributes)
        }
        ("conversation.propertyChange", Some("assignedTo")) => {
            let mut attributes = json!({});
            if let Some(agent) = value {
                attributes["assigned_to"] = json!(agent);
            }
            later(event, "chat.accepted", thread(event), attributes)
        }
        _ => unmapped(),
    }
}

fn thread(event: &Envelope<'_>) -> String {
    format!("thread:{}", event.object)
}

/// A contact property change: a signal, an unsubscribe, or any other field.
fn contact_change(event: &Envelope<'_>, property: &str, value: &str) -> Option<Inbound> {
    let signal = SIGNALS.iter().find(|(name, _)| *name == property).map(|(_, kind)| *kind);
    let (kind, attributes) = match signal {
        // An emptied "last …" property is not an occurrence: it is a field change.
        Some(kind) if !value.is_empty() => (kind, json!({"property": property})),
        _ if property == "hs_email_optout" && value == "true" => {
            ("list.unsubscribed", json!({"list_id": "all_email", "property": property}))
        }
        _ => ("field.changed", json!({"field": property, "new": value, "old": null})),
    };
    ready(event, &event.object, kind, attributes)
}

/// A contact created, merged or restored. A merge names the surviving contact.
fn contact_updated(event: &Envelope<'_>, change: &str) -> Option<Inbound> {
    let contact = text(event.raw, "primaryObjectId").map_or_else(|| event.object.clone(), |c| c.into_owned());
    ready(event, &contact, "contact.updated", json!({"change": change}))
}

fn ready(event: &Envelope<'_>, contact: &str, kind: &str, attributes: Value) -> Option<Inbound> {
    let contact_id = ContactId::parse(contact).ok()?;
    let attributes = attributes_of(attributes);
    interaction(event.key.clone(), kind, contact_id, None, event.occurred_at, attributes, Map::new())
        .ok()
        .map(Inbound::Ready)
}

/// An event stored for `resolve`: what it needs to build the interaction
/// once the contact is known.
fn later(event: &Envelope<'_>, kind: &str, subject: String, attributes: Value) -> Inbound {
    Inbound::Resolve(Unresolved {
        key: event.key.clone(),
        kind: event.kind.clone(),
        subject,
        event: json!({
            "type": kind,
            "object_id": event.object,
            "occurred_at": event.occurred_at,
            "attributes": attributes,
        }),
    })
}

fn attributes_of(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::interaction::Interaction;
    use crate::ids::{DealId, TenantId};
    use crate::tenant::{Provider, Secret};
    use proptest::prelude::*;

    fn tenant(crm: Value) -> TenantRecord {
        TenantRecord {
            id: TenantId::parse("t_acme").unwrap(),
            provider: Provider::Hubspot,
            webhook_secret: Secret::new("s"),
            actions_url: None,
            crm: crm.as_object().cloned().unwrap_or_default(),
            token_hash: String::new(),
            previous_token: None,
            token_rotated_at: None,
            signing_secret: None,
            previous_signing: None,
            revision: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn sample(file: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/crm/hubspot/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap()
    }

    fn ready_of(item: &Inbound) -> &Interaction {
        match item {
            Inbound::Ready(interaction) => interaction,
            other => panic!("expected a ready interaction, got {other:?}"),
        }
    }

    fn resolve_of(item: &Inbound) -> &Unresolved {
        match item {
            Inbound::Resolve(event) => event,
            other => panic!("expected an id-only event, got {other:?}"),
        }
    }

    fn check(item: &Inbound, kind: &str, contact: &str, key: &str) -> Map<String, Value> {
        let interaction = ready_of(item);
        assert_eq!(interaction.kind.as_str(), kind);
        assert_eq!(interaction.contact_id.as_str(), contact);
        assert_eq!(interaction.id.as_str(), key);
        assert_eq!(interaction.deal_id, None);
        interaction.attributes.clone()
    }

    #[test]
    fn the_docs_contact_creation_is_a_contact_update() {
        let items = normalize(&tenant(json!({})), &sample("contact_creation_docs.json")).unwrap();
        assert_eq!(items.len(), 1);
        check(&items[0], "contact.updated", "123", "hubspot:62515:12345:1:123");
        let occurred: DateTime<Utc> = "2019-07-26T04:00:00Z".parse().unwrap();
        assert_eq!(ready_of(&items[0]).occurred_at, occurred);
    }

    #[test]
    fn the_docs_batch_is_a_field_change_and_a_contact_update() {
        let items = normalize(&tenant(json!({})), &sample("batch_propertychange_and_creation_docs.json")).unwrap();
        assert_eq!(items.len(), 2);
        let attributes = check(&items[0], "field.changed", "1246965", "hubspot:33:25:3816279340:1246965");
        assert_eq!(Value::Object(attributes), json!({"field": "lifecyclestage", "new": "subscriber", "old": null}));
        check(&items[1], "contact.updated", "1246978", "hubspot:33:22:3816279480:1246978");
    }

    #[test]
    fn a_deal_stage_change_waits_for_its_contact() {
        let items = normalize(&tenant(json!({})), &sample("deal_dealstage_change_real.json")).unwrap();
        assert_eq!(items.len(), 1);
        let event = resolve_of(&items[0]);
        assert_eq!(event.key.as_str(), "hubspot:5799819:92894:802835955:697680835");
        assert_eq!(event.kind, "deal.propertyChange");
        assert_eq!(
            ContactId::parse_subject(event.subject.clone()).unwrap().deal(),
            Some(DealId::parse("697680835").unwrap())
        );
        assert_eq!(event.event["type"], "deal.stage_changed");
        assert_eq!(event.event["object_id"], "697680835");
        assert_eq!(event.event["attributes"], json!({"stage": "1f4f1ec1-8174-49f3-a112-4eaa4748e38e"}));
    }

    #[test]
    fn the_engagement_batch_maps_every_signal() {
        let crm = json!({"portal_id": "48975575"});
        let items = normalize(&tenant(crm), &sample("batch_engagement_signals_constructed.json")).unwrap();
        assert_eq!(items.len(), 8);
        let contact = "508369434347";
        check(&items[0], "email.opened", contact, "hubspot:48975575:900101:5001:508369434347");
        check(&items[1], "email.clicked", contact, "hubspot:48975575:900102:5002:508369434347");
        check(&items[2], "form.submitted", contact, "hubspot:48975575:900103:5003:508369434347");
        check(&items[3], "appointment.booked", contact, "hubspot:48975575:900104:5004:508369434347");
        let unsubscribed =
            check(&items[4], "list.unsubscribed", "508369434399", "hubspot:48975575:900105:5005:508369434399");
        assert_eq!(unsubscribed["list_id"], "all_email");
        let deal = resolve_of(&items[5]);
        assert_eq!(deal.key.as_str(), "hubspot:48975575:900201:5006:332507367156");
        assert_eq!(deal.subject, "deal#332507367156");
        assert_eq!(deal.event["attributes"], json!({"stage": "closedwon"}));
        let chat = resolve_of(&items[6]);
        assert_eq!(chat.key.as_str(), "hubspot:48975575:900301:5007:7012345678");
        assert_eq!(chat.subject, "thread:7012345678");
        assert_eq!(chat.event["type"], "chat.message");
        assert_eq!(chat.event["attributes"], json!({"message_id": "a3f1c2d4e5b6478899aabbccddeeff00"}));
        assert_eq!(items[7], Inbound::Unmapped("contact.deletion".into()));
    }

    #[test]
    fn events_of_another_portal_are_only_counted() {
        let items = normalize(&tenant(json!({"portal_id": 62515})), &sample("contact_creation_docs.json")).unwrap();
        assert!(matches!(items[0], Inbound::Ready(_)), "a numeric portal_id matches too");
        let items = normalize(&tenant(json!({"portal_id": "1"})), &sample("contact_creation_docs.json")).unwrap();
        assert_eq!(items, vec![Inbound::Unmapped("other_portal".into())]);
    }

    #[test]
    fn emptied_signals_comments_and_other_deal_changes_are_not_occurrences() {
        let base = json!({"eventId": 1, "subscriptionId": 2, "portalId": 3, "objectId": 4, "occurredAt": 0});
        let with = |extra: Value| {
            let mut event = base.clone();
            event.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            normalize(&tenant(json!({})), &serde_json::to_vec(&json!([event])).unwrap()).unwrap().remove(0)
        };
        let emptied = with(json!({"subscriptionType": "contact.propertyChange",
            "propertyName": "hs_email_last_open_date", "propertyValue": ""}));
        assert_eq!(ready_of(&emptied).kind.as_str(), "field.changed");
        let opted_in = with(json!({"subscriptionType": "contact.propertyChange",
            "propertyName": "hs_email_optout", "propertyValue": "false"}));
        assert_eq!(ready_of(&opted_in).kind.as_str(), "field.changed");
        let comment = with(json!({"subscriptionType": "conversation.newMessage", "messageType": "COMMENT"}));
        assert_eq!(comment, Inbound::Unmapped("conversation.newMessage".into()));
        let amount = with(json!({"subscriptionType": "deal.propertyChange", "propertyName": "amount",
            "propertyValue": "10"}));
        assert_eq!(amount, Inbound::Unmapped("deal.propertyChange".into()));
        let assigned = with(json!({"subscriptionType": "conversation.propertyChange",
            "propertyName": "assignedTo", "propertyValue": "77"}));
        assert_eq!(resolve_of(&assigned).event["type"], "chat.accepted");
        let older = with(json!({"eventType": "contact.creation"}));
        assert_eq!(ready_of(&older).kind.as_str(), "contact.updated");
    }

    #[test]
    fn bodies_hubspot_does_not_send_are_malformed() {
        let t = tenant(json!({}));
        for body in [&b"{}"[..], b"not json", b"[1]", b"[{\"subscriptionType\":\"contact.creation\"}]"] {
            assert!(
                matches!(normalize(&t, body), Err(InboundError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    proptest! {
        #[test]
        fn no_byte_string_makes_normalize_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = normalize(&tenant(json!({"portal_id": "1"})), &body);
        }

        #[test]
        fn no_event_shape_makes_normalize_panic(
            kind in "(contact|deal|conversation)\\.[a-zA-Z]{0,16}",
            property in proptest::option::of(".{0,20}"),
            value in proptest::option::of(".{0,20}"),
            object in ".{0,20}",
            occurred in any::<i64>(),
        ) {
            let event = json!([{"subscriptionType": kind, "propertyName": property, "propertyValue": value,
                "objectId": object, "eventId": 1, "subscriptionId": 2, "portalId": 3, "occurredAt": occurred}]);
            let _ = normalize(&tenant(json!({})), &serde_json::to_vec(&event).unwrap());
        }
    }
}
