//! Deal stage changes that name no person, completed through the API.
//!
//! Pipedrive's deal events carry `person_id` when the deal has a contact
//! person; when it is `null` the stage change is stored as an id-only
//! event, and the worker asks `GET /api/v2/deals/{id}` for the deal's person
//! (one may have been linked since). A deal that still has none fails
//! permanently, so the event ends `dead`, visible and replayable, instead of
//! being dropped. Nothing else Pipedrive sends needs resolving.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::outbound::api;
use crate::crm::inbound::Unresolved;
use crate::crm::outbound::permanent;
use crate::crm::DeliveryError;
use crate::engine::interaction::{Interaction, InteractionType};
use crate::ids::{ContactId, DealId};
use crate::tenant::TenantRecord;

/// What a stored deal event keeps until its person is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDeal {
    pub deal_id: DealId,
    pub occurred_at: DateTime<Utc>,
    pub attributes: Map<String, Value>,
}

/// Completes a deal event that named no person, through `GET /api/v2/deals/{id}`.
pub async fn resolve(
    reach: crate::crm::outbound::Reach<'_>,
    tenant: &TenantRecord,
    event: &Unresolved,
) -> Result<Vec<Interaction>, DeliveryError> {
    let pending: PendingDeal = serde_json::from_value(event.event.clone())
        .map_err(|e| permanent(format!("the stored Pipedrive event cannot be read: {e}")))?;
    let api = api(reach, tenant)?;
    let answer = api.call(Method::GET, &format!("/api/v2/deals/{}", pending.deal_id), None).await?;
    let contact = person_of(&answer.body).ok_or_else(|| {
        permanent(format!(
            "Pipedrive deal {} has no person: link one to the deal, then replay this event",
            pending.deal_id
        ))
    })?;
    let kind = InteractionType::parse("deal.stage_changed").map_err(|e| permanent(e.to_string()))?;
    Ok(vec![Interaction {
        id: event.key.clone(),
        kind,
        contact_id: contact,
        deal_id: Some(pending.deal_id),
        occurred_at: pending.occurred_at,
        attributes: pending.attributes,
        contact: Map::new(),
    }])
}

/// `data.person_id` of a deal answer: a number (v2) or `{"value": id}` (v1).
fn person_of(body: &Value) -> Option<ContactId> {
    let person = body.get("data")?.get("person_id")?;
    let id = match person {
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Object(o) => o.get("value")?.as_u64()?.to_string(),
        _ => return None,
    };
    ContactId::parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_deals_person_in_either_shape() {
        assert_eq!(person_of(&json!({"data": {"person_id": 8}})).map(String::from).as_deref(), Some("8"));
        assert_eq!(person_of(&json!({"data": {"person_id": {"value": 6}}})).map(String::from).as_deref(), Some("6"));
        assert_eq!(person_of(&json!({"data": {"person_id": null}})), None);
        assert_eq!(person_of(&json!({"success": false})), None);
    }
}
