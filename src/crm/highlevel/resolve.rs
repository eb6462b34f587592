//! Email-only events into interactions, in the background worker.
//!
//! `LCEmailStats` names its recipient's address, not a contact. The stored
//! event is looked up with `GET /contacts/search/duplicate?locationId=&email=`;
//! the contact found completes the interaction. No contact with that address
//! is a permanent failure: the item ends `dead`, visible and replayable,
//! rather than silently dropped.

use reqwest::Method;
use serde_json::{Map, Value};

use super::actions::api;
use super::events::{PendingEmail, EMAIL_STATS};
use crate::crm::inbound::Unresolved;
use crate::crm::outbound::{permanent, Reach};
use crate::crm::DeliveryError;
use crate::engine::interaction::{Interaction, InteractionType};
use crate::ids::ContactId;
use crate::tenant::TenantRecord;

/// Resolves a stored email-only event into its interaction.
pub async fn resolve(
    reach: Reach<'_>,
    tenant: &TenantRecord,
    event: &Unresolved,
) -> Result<Vec<Interaction>, DeliveryError> {
    if event.kind != EMAIL_STATS {
        return Err(permanent(format!("HighLevel events of kind {:?} are not resolved", event.kind)));
    }
    let pending: PendingEmail = serde_json::from_value(event.event.clone())
        .map_err(|e| permanent(format!("the stored email event cannot be read: {e}")))?;
    let location = match pending.location_id.as_str() {
        "" => crate::crm::outbound::setting(tenant, "location_id")?.to_owned(),
        from_event => from_event.to_owned(),
    };
    let api = api(reach, tenant)?;
    let path = format!("/contacts/search/duplicate?{}", query(&[("locationId", &location), ("email", &pending.email)]));
    let answer = api.call(Method::GET, &path, None).await?;
    let contact = contact_id(&answer.body).ok_or_else(|| {
        permanent(format!("no HighLevel contact in location {location} has the email address of event {}", event.key))
    })?;
    let mut fields = Map::new();
    fields.insert("email".into(), Value::String(pending.email.clone()));
    Ok(vec![Interaction {
        id: event.key.clone(),
        kind: InteractionType::parse(&pending.kind).map_err(|e| permanent(e.to_string()))?,
        contact_id: contact,
        deal_id: None,
        occurred_at: pending.occurred_at,
        attributes: pending.attributes,
        contact: fields,
    }])
}

fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// `{"contact": {"id": …}}` when found; `{"contact": null}` (or no contact) when not.
fn contact_id(body: &Value) -> Option<ContactId> {
    let id = body.get("contact")?.get("id")?.as_str()?;
    ContactId::parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_found_contact_or_none() {
        assert_eq!(contact_id(&json!({"contact": {"id": "c_9"}})).map(String::from).as_deref(), Some("c_9"));
        assert_eq!(contact_id(&json!({"contact": null})), None);
        assert_eq!(contact_id(&json!({"contact": {"id": "has space"}})), None);
        assert_eq!(contact_id(&Value::Null), None);
    }

    #[test]
    fn encodes_the_lookup_query() {
        assert_eq!(query(&[("locationId", "l1"), ("email", "a+b@x.test")]), "locationId=l1&email=a%2Bb%40x.test");
    }
}
