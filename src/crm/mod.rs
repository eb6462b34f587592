//! CRM connectors: webhooks in, API calls out.
//!
//! One module per provider, each with the same four entry points:
//! `verify` (the CRM's authenticity scheme), `normalize` (its body into
//! `Inbound` items), `resolve` (an id-only event into interactions, through
//! the CRM's API) and `deliver` (a fired action into API calls). `generic` is
//! scorehook's own format both ways. This module dispatches on the tenant's
//! provider; `inbound` and `outbound` hold what the providers share.

pub mod activecampaign;
pub mod bitrix24;
pub mod form;
pub mod generic;
pub mod highlevel;
pub mod hubspot;
pub mod inbound;
pub mod limiter;
pub mod outbound;
pub mod pipedrive;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::engine::interaction::Interaction;
use crate::ids::TenantId;
use crate::outbox::retry::RetryPolicy;
use crate::outbox::OutboxItem;
use crate::tenant::{Provider, TenantRecord};
use inbound::{Inbound, InboundError, Request, Unresolved};
use limiter::Limiter;
use outbound::Reach;

/// The outbox kind of a stored id-only event awaiting resolution.
pub const RESOLVE_KIND: &str = "resolve_event";

/// Where interactions resolved from id-only events go to be scored.
#[async_trait]
pub trait Intake: Send + Sync {
    /// Scores them (deduplicated by their ids); a failure is retried later.
    async fn score(&self, tenant: &TenantId, interactions: &[Interaction]) -> Result<(), DeliveryError>;
}

/// Checks a webhook request's authenticity by the tenant's provider's scheme.
pub fn verify(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), InboundError> {
    match tenant.provider {
        Provider::Generic => signature::verify(
            tenant.webhook_secret.expose(),
            request.header(signature::TIMESTAMP_HEADER),
            request.header(signature::SIGNATURE_HEADER),
            request.body,
            request.now,
        )
        .map_err(|e| InboundError::Refused(e.to_string())),
        Provider::Hubspot => hubspot::verify(tenant, request),
        Provider::Highlevel => highlevel::verify(tenant, request),
        Provider::Activecampaign => activecampaign::verify(tenant, request),
        Provider::Bitrix24 => bitrix24::verify(tenant, request),
        Provider::Pipedrive => pipedrive::verify(tenant, request),
    }
}

/// Turns a verified provider body into inbound items (not for `generic`,
/// whose body is interactions already).
pub fn normalize(tenant: &TenantRecord, request: &Request<'_>) -> Result<Vec<Inbound>, InboundError> {
    let items = match tenant.provider {
        Provider::Generic => return Err(InboundError::Malformed("generic bodies are interactions".into())),
        Provider::Hubspot => hubspot::normalize(tenant, request),
        Provider::Highlevel => highlevel::normalize(tenant, request),
        Provider::Activecampaign => activecampaign::normalize(tenant, request),
        Provider::Bitrix24 => bitrix24::normalize(tenant, request),
        Provider::Pipedrive => pipedrive::normalize(tenant, request),
    }?;
    if items.len() > inbound::MAX_EVENTS {
        return Err(InboundError::Malformed(format!(
            "a body carries at most {} events, this one {}",
            inbound::MAX_EVENTS,
            items.len()
        )));
    }
    Ok(items)
}

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
    /// Per-tenant token buckets for the CRMs' APIs, shared by every clone.
    limiter: Arc<Limiter>,
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
        Ok(Self { http, limiter: Arc::default(), retry: RetryPolicy::default() })
    }

    pub fn with_retry(self, retry: RetryPolicy) -> Self {
        Self { retry, ..self }
    }

    /// Delivers one action, or resolves and scores one stored id-only
    /// event; `Ok` carries the HTTP status of the last call.
    pub async fn deliver(
        &self,
        tenant: &TenantRecord,
        item: &OutboxItem,
        now: DateTime<Utc>,
        intake: &dyn Intake,
    ) -> Result<u16, DeliveryError> {
        let reach = Reach { http: &self.http, limiter: &self.limiter, now };
        if item.action.kind == RESOLVE_KIND {
            let event: Unresolved = serde_json::from_value(item.action.params.clone())
                .map_err(|e| outbound::permanent(format!("the stored event cannot be read: {e}")))?;
            let interactions = match tenant.provider {
                Provider::Generic => Err(outbound::permanent("generic events need no resolving")),
                Provider::Hubspot => hubspot::resolve(reach, tenant, &event).await,
                Provider::Highlevel => highlevel::resolve(reach, tenant, &event).await,
                Provider::Activecampaign => activecampaign::resolve(reach, tenant, &event).await,
                Provider::Bitrix24 => bitrix24::resolve(reach, tenant, &event).await,
                Provider::Pipedrive => pipedrive::resolve(reach, tenant, &event).await,
            }?;
            intake.score(&tenant.id, &interactions).await?;
            return Ok(200);
        }
        // A `webhook` action goes to its own URL, signed, whatever the CRM.
        if item.action.kind == "webhook" {
            return generic::deliver(&self.http, tenant, item, now).await;
        }
        match tenant.provider {
            Provider::Generic => generic::deliver(&self.http, tenant, item, now).await,
            Provider::Hubspot => hubspot::deliver(reach, tenant, item).await,
            Provider::Highlevel => highlevel::deliver(reach, tenant, item).await,
            Provider::Activecampaign => activecampaign::deliver(reach, tenant, item).await,
            Provider::Bitrix24 => bitrix24::deliver(reach, tenant, item).await,
            Provider::Pipedrive => pipedrive::deliver(reach, tenant, item).await,
        }
    }
}
