//! CRM connectors: inbound signature checks and outbound action delivery.
//!
//! One module per provider behind `Deliverer`. Only `generic` exists so far:
//! actions are signed POSTs to the tenant's `actions_url`. The provider
//! connectors (HubSpot, HighLevel, ActiveCampaign, Bitrix24, Pipedrive) plug
//! in here, each with its own `base_url` so tests can point it at 127.0.0.1.

pub mod generic;
pub mod signature;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::outbox::retry::RetryPolicy;
use crate::outbox::OutboxItem;
use crate::tenant::{Provider, TenantRecord};

/// How a delivery failed, split by what the outbox should do next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another attempt: network trouble, a timeout, 408, 429 or 5xx.
    #[error("{message}")]
    Retryable { http_status: Option<u16>, message: String, retry_after: Option<TimeDelta> },
    /// Another attempt would fail the same way (a 4xx, or nowhere to send it).
    #[error("{message}")]
    Permanent { http_status: Option<u16>, message: String },
}

/// Sends fired actions to the CRM. Cheap to clone (the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct Deliverer {
    http: reqwest::Client,
    /// When failed deliveries are tried again, and how often.
    pub retry: RetryPolicy,
}

/// A receiver that takes longer than this is treated as down, and retried.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

impl Deliverer {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("scorehook/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, retry: RetryPolicy::default() })
    }

    pub fn with_retry(self, retry: RetryPolicy) -> Self {
        Self { retry, ..self }
    }

    /// Delivers one action; `Ok` carries the receiver's HTTP status.
    pub async fn deliver(
        &self,
        tenant: &TenantRecord,
        item: &OutboxItem,
        now: DateTime<Utc>,
    ) -> Result<u16, DeliveryError> {
        match tenant.provider {
            Provider::Generic => generic::deliver(&self.http, tenant, item, now).await,
            other => Err(DeliveryError::Permanent {
                http_status: None,
                message: format!("delivery through the {} API is not available yet", other.as_str()),
            }),
        }
    }
}
