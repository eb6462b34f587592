//! Taking in what a CRM connector made of a webhook: interactions scored
//! now, id-only events stored for the background worker to resolve, and
//! unmapped kinds counted. All of it is stored before the CRM gets its 2xx.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::catalog::TenantView;
use super::ingest::IngestReport;
use super::{Service, ServiceError};
use crate::crm::inbound::{Inbound, Unresolved};
use crate::crm::RESOLVE_KIND;
use crate::engine::action::FiredAction;
use crate::ids::{ActionId, ContactId, TriggerId};
use crate::metrics::{self, ActionOutcome};
use crate::outbox::OutboxItem;

/// The trigger name id-only events carry in the actions log.
pub const INBOUND_TRIGGER: &str = "inbound";

/// The longest unmapped kind kept (a hostile body cannot grow the tallies' keys).
const MAX_KIND: usize = 100;

impl Service {
    /// Stores a connector's items. Stops at the first store failure (the
    /// CRM's redelivery then completes the rest, deduplicated).
    pub async fn receive(&self, view: &TenantView, items: Vec<Inbound>) -> Result<IngestReport, ServiceError> {
        let tenant = &view.record;
        let mut ready = Vec::new();
        let mut report = IngestReport::default();
        let mut unmapped = std::collections::BTreeMap::<String, u64>::new();
        for item in items {
            match item {
                Inbound::Ready(interaction) => ready.push(interaction),
                Inbound::Resolve(event) => {
                    let queued = self.store.queue_action(&resolve_item(view, event, self.clock.now())?).await?;
                    if queued {
                        report.queued += 1;
                        metrics::actions(Some(tenant.provider), ActionOutcome::Fired, 1);
                        self.outbox_bell.notify_one();
                    } else {
                        report.duplicates += 1;
                    }
                }
                Inbound::Unmapped(kind) => {
                    let kind: String = kind.chars().filter(|c| !c.is_control()).take(MAX_KIND).collect();
                    *unmapped.entry(format!("{}:{kind}", tenant.provider.as_str())).or_default() += 1;
                }
            }
        }
        for (kind, count) in &unmapped {
            tracing::info!(tenant = %tenant.id, kind, count, "unmapped webhook events acknowledged");
            self.store.count_unmapped(&tenant.id, kind, *count).await?;
            report.unmapped += *count as usize;
        }
        let scored = self.ingest(view, &ready).await?;
        report.accepted += scored.accepted + report.queued;
        report.duplicates += scored.duplicates;
        Ok(report)
    }
}

/// The outbox item holding one id-only event until it is resolved. Its id
/// derives from the event's key, so a redelivered event finds it queued.
fn resolve_item(view: &TenantView, event: Unresolved, now: DateTime<Utc>) -> Result<OutboxItem, ServiceError> {
    let tenant = &view.record;
    let digest = hex::encode(Sha256::digest(format!("resolve\u{1f}{}", event.key).as_bytes()));
    let id =
        ActionId::parse(format!("rs_{}", &digest[..40])).map_err(|e| ServiceError::invalid("id", e.to_string()))?;
    let subject = ContactId::parse_subject(event.subject.clone())
        .or_else(|_| ContactId::parse(event.key.as_str()))
        .map_err(|e| ServiceError::invalid("subject", e.to_string()))?;
    let trigger = TriggerId::parse(INBOUND_TRIGGER).map_err(|e| ServiceError::invalid("trigger", e.to_string()))?;
    let params = serde_json::to_value(&event).map_err(|e| ServiceError::invalid("event", e.to_string()))?;
    let action = FiredAction {
        id,
        trigger,
        kind: RESOLVE_KIND.to_owned(),
        params,
        contact_id: subject,
        deal_id: None,
        fired_at: now,
        skipped: None,
    };
    Ok(OutboxItem::new(tenant.id.clone(), action))
}
