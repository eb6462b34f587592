//! Exact expiry: contacts whose points expire are settled at their instant,
//! so the leaderboard and stored totals stop counting expired points and a
//! drop below a threshold fires `lt`/`lte` triggers without any interaction.

use super::ingest::Committed;
use super::{Service, ServiceError};
use crate::engine;
use crate::ids::{ContactId, TenantId};
use crate::outbox::Step;
use crate::store::QuarantineKind;

impl Service {
    /// Settles up to `limit` contacts whose next expiry has come. One
    /// contact's failure stops no other: a record at fault is set aside
    /// (`quarantine`), a busy contact waits for the next step, and only an
    /// unreachable store ends the step early.
    pub async fn sweep_expiries(&self, limit: usize) -> Result<Step, ServiceError> {
        let now = self.clock.now();
        let due = self.store.due_contacts(now, limit).await?;
        let step = if due.len() == limit { Step::More } else { Step::Drained };
        for (tenant, contact) in due {
            match self.settle_contact(&tenant, &contact).await {
                Ok(()) => {}
                // Already set aside where it was read or committed.
                Err(e) if e.is_record_fault() => {}
                Err(ServiceError::Busy) => {
                    tracing::warn!(tenant = %tenant, contact_id = %contact, "contact busy; settled on the next step");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(step)
    }

    async fn settle_contact(&self, tenant: &TenantId, contact: &ContactId) -> Result<(), ServiceError> {
        let view = match self.tenant_view(tenant).await {
            Ok(Some(view)) => view,
            Ok(None) => return Ok(()),
            Err(e) => {
                // The tenant's configuration is at fault: its contacts wait aside, not in everyone's way.
                if e.is_record_fault() {
                    self.set_aside(tenant, QuarantineKind::Contact, contact.as_str(), &e, "sweeper").await;
                }
                return Err(e);
            }
        };
        let committed = self
            .commit_contact(view.record.provider, tenant, contact, None, |state, now| {
                // Seeded by the instant settled, so a retried sweep fires the same action ids.
                let instant = state.next_change().map_or(0, |at| at.timestamp_millis());
                engine::settle(view.catalog_for(contact), state, &format!("expiry:{contact}:{instant}"), now)
            })
            .await?;
        if let Committed::Done(outcome) = committed {
            tracing::info!(tenant = %tenant, contact_id = %contact, actions = outcome.actions.len(), "expired points settled");
        }
        Ok(())
    }
}
