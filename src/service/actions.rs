//! The delivery log and replay of fired actions.

use super::{Service, ServiceError};
use crate::ids::{ActionId, TenantId};
use crate::outbox::{ActionStatus, OutboxItem};
use crate::store::StoreError;

impl Service {
    pub async fn actions(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, ServiceError> {
        Ok(self.store.actions(tenant, status, limit).await?)
    }

    /// Re-queues a failed or dead action under the same id (receivers dedupe on it).
    pub async fn replay(&self, tenant: &TenantId, id: &ActionId) -> Result<OutboxItem, ServiceError> {
        for _ in 0..5 {
            let mut item =
                self.store.action(tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("action {id}")))?;
            if !item.replay(self.clock.now()) {
                return Err(ServiceError::Conflict(format!(
                    "action {id} is {:?}; only failed or dead actions can be replayed",
                    item.status
                )));
            }
            match self.store.save_action(&item).await {
                // A delivery attempt was recorded meanwhile: look again.
                Err(StoreError::Conflict) => continue,
                other => other?,
            }
            self.outbox_bell.notify_one();
            tracing::info!(tenant = %tenant, action_id = %id, "action replayed");
            item.revision += 1;
            return Ok(item);
        }
        Err(ServiceError::Busy)
    }
}
