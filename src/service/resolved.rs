//! Scoring interactions that the background worker resolved from id-only
//! events: the `Intake` the deliverer hands them to.

use async_trait::async_trait;

use super::{Service, ServiceError};
use crate::crm::{DeliveryError, Intake};
use crate::engine::interaction::Interaction;
use crate::ids::TenantId;

#[async_trait]
impl Intake for Service {
    async fn score(&self, tenant: &TenantId, interactions: &[Interaction]) -> Result<(), DeliveryError> {
        if interactions.is_empty() {
            return Ok(());
        }
        let retry = |e: ServiceError| DeliveryError::Retryable {
            http_status: None,
            message: format!("cannot score the resolved event: {e}"),
            retry_after: None,
        };
        let view = self.tenant_view(tenant).await.map_err(retry)?.ok_or_else(|| DeliveryError::Permanent {
            http_status: None,
            message: "the tenant no longer exists".into(),
        })?;
        self.ingest(&view, interactions).await.map_err(retry)?;
        Ok(())
    }
}
