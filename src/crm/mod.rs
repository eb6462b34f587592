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
pub mod egress;
pub mod form;
pub mod generic;
pub mod highlevel;
pub mod hubspot;
pub mod inbound;
pub mod limiter;
pub mod outbound;
pub mod pipedrive;
pub mod signature;
pub mod standard_webhooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use crate::engine::interaction::Interaction;
use crate::ids::TenantId;
use crate::outbox::alerts::Alerts;
use crate::outbox::retry::RetryPolicy;
use crate::outbox::OutboxItem;
use crate::tenant::{Provider, TenantRecord};
use egress::Egress;
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
        Provider::Generic => generic::verify(tenant, request).map_err(|e| InboundError::Refused(e.to_string())),
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

/// The provider's API settings (hosts, rate, default base); `None` for
/// `generic`, which calls only the URLs the tenant names.
pub fn api_config(provider: Provider) -> Option<&'static outbound::ApiConfig> {
    match provider {
        Provider::Generic => None,
        Provider::Hubspot => Some(&hubspot::API),
        Provider::Highlevel => Some(&highlevel::API),
        Provider::Activecampaign => Some(&activecampaign::API),
        Provider::Bitrix24 => Some(&bitrix24::API),
        Provider::Pipedrive => Some(&pipedrive::API),
    }
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

/// What a delivery that did not fail did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Sent: the HTTP status of the last call.
    Sent(u16),
    /// Nothing to do, and why: a stored id-only event whose CRM data holds
    /// nothing to score (a Bitrix24 deal update without a stage move, an
    /// open-line chat tied to no contact).
    Skipped(String),
}

/// What resolving a stored id-only event through the CRM's API found.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Interactions to score (none: nothing to score, for no stated reason).
    Score(Vec<Interaction>),
    /// Nothing to score, and why (an open-line chat tied to no contact).
    Skip(String),
}

impl From<Vec<Interaction>> for Resolved {
    fn from(interactions: Vec<Interaction>) -> Self {
        Resolved::Score(interactions)
    }
}

/// Sends fired actions to the CRM. Cheap to clone (the HTTP client is shared).
#[derive(Debug, Clone)]
pub struct Deliverer {
    http: reqwest::Client,
    /// What the client may reach (`egress`): checked again on every call.
    egress: Egress,
    /// Per-tenant token buckets for the CRMs' APIs, shared by every clone.
    limiter: Arc<Limiter>,
    /// When failed deliveries are tried again, and how often.
    pub retry: RetryPolicy,
    /// Where dead actions and refused credentials are reported, if anywhere.
    alerts: Option<Arc<Alerts>>,
}

/// A receiver that takes longer than this is treated as down, and retried.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

impl Deliverer {
    /// A deliverer whose calls reach what `egress` allows (`Egress::from_env`
    /// in the entry points; tests against loopback fakes say `ALLOW_PRIVATE`).
    pub fn new(egress: Egress) -> Result<Self, reqwest::Error> {
        let http = egress.client(DELIVERY_TIMEOUT, Duration::from_secs(5))?;
        Ok(Self { http, egress, limiter: Arc::default(), retry: RetryPolicy::default(), alerts: None })
    }

    pub fn with_retry(self, retry: RetryPolicy) -> Self {
        Self { retry, ..self }
    }

    /// Reports dead actions and refused credentials to the operator.
    pub fn with_alerts(self, alerts: Option<Alerts>) -> Self {
        Self { alerts: alerts.map(Arc::new), ..self }
    }

    /// The operator alert a recorded attempt calls for, if alerts are on.
    pub async fn alert(&self, store: &dyn crate::store::Store, item: &OutboxItem, attempt: &crate::outbox::Attempt) {
        if let Some(alerts) = &self.alerts {
            alerts.after(store, &self.http, item, attempt).await;
        }
    }

    /// Delivers one action, or resolves and scores one stored id-only event.
    pub async fn deliver(
        &self,
        tenant: &TenantRecord,
        item: &OutboxItem,
        now: DateTime<Utc>,
        intake: &dyn Intake,
    ) -> Result<Delivered, DeliveryError> {
        let reach = Reach { http: &self.http, egress: self.egress, limiter: &self.limiter, now };
        if item.action.kind == RESOLVE_KIND {
            let event: Unresolved = serde_json::from_value(item.action.params.clone())
                .map_err(|e| outbound::permanent(format!("the stored event cannot be read: {e}")))?;
            let resolved = match tenant.provider {
                Provider::Generic => Err(outbound::permanent("generic events need no resolving")),
                Provider::Hubspot => hubspot::resolve(reach, tenant, &event).await.map(Resolved::from),
                Provider::Highlevel => highlevel::resolve(reach, tenant, &event).await.map(Resolved::from),
                Provider::Activecampaign => activecampaign::resolve(reach, tenant, &event).await.map(Resolved::from),
                Provider::Bitrix24 => bitrix24::resolve(reach, tenant, &event).await,
                Provider::Pipedrive => pipedrive::resolve(reach, tenant, &event).await.map(Resolved::from),
            }?;
            let interactions = match resolved {
                Resolved::Score(interactions) => interactions,
                Resolved::Skip(reason) => return Ok(Delivered::Skipped(reason)),
            };
            if interactions.is_empty() {
                return Ok(Delivered::Skipped("resolved through the CRM's API to nothing to score".into()));
            }
            intake.score(&tenant.id, &interactions).await?;
            return Ok(Delivered::Sent(200));
        }
        // A `webhook` action, and a `notify` with a URL, go to their own URL, signed, whatever the CRM.
        if item.action.kind == "webhook" || outbound::posts_to_own_url(item) {
            return generic::deliver(reach, tenant, item).await.map(Delivered::Sent);
        }
        let sent = match tenant.provider {
            Provider::Generic => generic::deliver(reach, tenant, item).await,
            Provider::Hubspot => hubspot::deliver(reach, tenant, item).await,
            Provider::Highlevel => highlevel::deliver(reach, tenant, item).await,
            Provider::Activecampaign => activecampaign::deliver(reach, tenant, item).await,
            Provider::Bitrix24 => bitrix24::deliver(reach, tenant, item).await,
            Provider::Pipedrive => pipedrive::deliver(reach, tenant, item).await,
        };
        sent.map(Delivered::Sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;
    use serde_json::json;

    const PROVIDERS: [Provider; 6] = [
        Provider::Generic,
        Provider::Hubspot,
        Provider::Highlevel,
        Provider::Activecampaign,
        Provider::Bitrix24,
        Provider::Pipedrive,
    ];

    /// A tenant of `provider` whose every credential is `secret`, so a fuzzed
    /// request can get past `verify` when it happens to carry it.
    fn tenant(provider: Provider) -> TenantRecord {
        let crm = json!({"client_secret": "secret", "application_token": "secret", "webhook_user": "secret"});
        TenantRecord {
            id: TenantId::parse("t").unwrap_or_else(|e| panic!("{e}")),
            provider,
            webhook_secret: crate::tenant::Secret::new("secret"),
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

    /// Every provider sample under `tests/fixtures/crm/`, read once.
    fn samples() -> &'static [(Provider, Vec<u8>)] {
        static SAMPLES: std::sync::OnceLock<Vec<(Provider, Vec<u8>)>> = std::sync::OnceLock::new();
        SAMPLES.get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crm");
            let mut found = Vec::new();
            for provider in &PROVIDERS[1..] {
                let dir = std::fs::read_dir(root.join(provider.as_str())).into_iter().flatten().flatten();
                for entry in dir {
                    if let Ok(bytes) = std::fs::read(entry.path()) {
                        found.push((*provider, bytes));
                    }
                }
            }
            assert!(found.len() >= 25, "the samples are missing: {} found", found.len());
            found
        })
    }

    /// Headers every scheme looks at, with fuzzed values where they parse as header values.
    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let names = [
            "x-hubspot-signature-v3",
            "x-hubspot-request-timestamp",
            "x-ghl-signature",
            "x-wh-signature",
            "authorization",
            "content-type",
            signature::TIMESTAMP_HEADER,
            signature::SIGNATURE_HEADER,
        ];
        for name in names {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        headers
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No byte string, header value or query makes any inbound parser panic.
        #[test]
        fn no_input_makes_any_connector_panic(
            body in proptest::collection::vec(any::<u8>(), 0..600),
            header in "\\PC{0,80}",
            query in "[a-z=&%0-9\\[\\]+]{0,60}",
        ) {
            let headers = headers(&header);
            let url = format!("https://h.test/v1/webhooks/p/t?key=secret&{query}");
            for provider in PROVIDERS {
                let request = Request { method: "POST", url: &url, headers: &headers, body: &body, now: Utc::now() };
                let tenant = tenant(provider);
                let _ = verify(&tenant, &request);
                let _ = normalize(&tenant, &request);
            }
        }

        /// Every real sample, cut short and with bytes changed, reaches deep
        /// into each provider's mapping: none of it panics either.
        #[test]
        fn no_mangled_sample_makes_its_connector_panic(
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            for (provider, sample) in samples() {
                let mut body = sample.clone();
                body.truncate(cut.index(body.len() + 1));
                for (at, byte) in &flips {
                    if !body.is_empty() {
                        let i = at.index(body.len());
                        body[i] = *byte;
                    }
                }
                let headers = headers("secret");
                let request = Request {
                    method: "POST", url: "https://h.test/x?key=secret", headers: &headers, body: &body, now: Utc::now(),
                };
                let _ = normalize(&tenant(*provider), &request);
            }
        }

        /// The same for JSON-shaped and form-shaped bodies, which reach deeper.
        #[test]
        fn no_structured_body_makes_any_connector_panic(
            value in proptest::arbitrary::any::<Vec<(String, String)>>(),
            array in any::<bool>(),
        ) {
            let object: serde_json::Map<String, serde_json::Value> =
                value.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let json_body = if array { json!([object]) } else { json!(object) };
            let json_bytes = serde_json::to_vec(&json_body).unwrap_or_default();
            let form_bytes = form_urlencoded::Serializer::new(String::new()).extend_pairs(value.iter()).finish();
            let headers = headers("secret");
            for body in [json_bytes.as_slice(), form_bytes.as_bytes()] {
                for provider in PROVIDERS {
                    let request = Request {
                        method: "POST", url: "https://h.test/x?key=secret", headers: &headers, body, now: Utc::now(),
                    };
                    let _ = normalize(&tenant(provider), &request);
                }
            }
        }
    }
}
