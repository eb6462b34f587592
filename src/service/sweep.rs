//! Exact expiry: contacts whose points expire are settled at their instant,
//! so the leaderboard and stored totals stop counting expired points and a
//! drop below a threshold fires `lt`/`lte` triggers without any interaction.

use super::ingest::Committed;
use super::{Service, ServiceError};
use crate::engine;
use crate::outbox::Step;

impl Service {
    /// Settles up to `limit` contacts whose next expiry has come.
    pub async fn sweep_expiries(&self, limit: usize) -> Result<Step, ServiceError> {
        let now = self.clock.now();
        let due = self.store.due_contacts(now, limit).await?;
        let step = if due.len() == limit { Step::More } else { Step::Drained };
        for (tenant, contact) in due {
            let Some(view) = self.tenant_view(&tenant).await? else { continue };
            let committed = self
                .commit_contact(&tenant, &contact, None, |state, now| {
                    // Seeded by the instant settled, so a retried sweep fires the same action ids.
                    let instant = state.next_change().map_or(0, |at| at.timestamp_millis());
                    engine::settle(view.catalog_for(&contact), state, &format!("expiry:{contact}:{instant}"), now)
                })
                .await?;
            if let Committed::Done(outcome) = committed {
                tracing::info!(tenant = %tenant, contact_id = %contact, actions = outcome.actions.len(), "expired points settled");
            }
        }
        Ok(step)
    }
}
