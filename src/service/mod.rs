//! Use cases shared by the HTTP router, the CLI and the tests.
//!
//! A `Service` owns the store, the clock and the executor's wake-up bell.
//! Each use case validates its input into domain types, does its work
//! through the store port, and returns a typed `ServiceError` that only the
//! HTTP layer turns into a status code.

pub mod actions;
pub mod admin;
pub mod apply;
pub mod catalog;
pub mod existing;
pub mod inbound;
pub mod ingest;
pub mod quarantine;
pub mod quotas;
pub mod recompute;
pub mod repair;
pub mod resolved;
pub mod rotation;
pub mod scores;
pub mod simulate;
pub mod sweep;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::crm::egress::Egress;
use crate::engine::ConfigError;
use crate::http::inbound_limit::InboundLimit;
use crate::ids::{ContactId, TenantId};
use crate::store::{Store, StoreError};
use crate::tenant::{hash_token, Secret, TenantRecord, TokenMatch};
use catalog::{CatalogCache, TenantView};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Well-formed input that breaks a rule; `path` names the field.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The request conflicts with the current state (e.g. adjusting a draft profile).
    #[error("{0}")]
    Conflict(String),
    /// Too many concurrent writers on one contact; the caller should retry.
    #[error("the contact is too busy right now; retry shortly")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(ConfigError::new(path, message))
    }
}

/// Who is calling the admin API.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The operator token: every tenant.
    Operator,
    /// A tenant's own token: that tenant only. `token` says which of its
    /// tokens it is: a rotated-out one (within its grace) may do everything
    /// but rotate again.
    Tenant { record: Box<TenantRecord>, token: TokenMatch },
}

/// A readiness probe's answer (`Err`: why the store cannot be read) and when it was found.
pub type Readiness = (std::time::Instant, Result<(), String>);

#[derive(Clone)]
pub struct Service {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Rung after every commit that queued actions, so the executor runs at once.
    pub outbox_bell: Arc<Notify>,
    /// The last readiness probe's answer and when it was found (`/readyz`).
    pub readiness: Arc<std::sync::Mutex<Option<Readiness>>>,
    admin_token: Option<Secret>,
    /// Writers to one contact queue here within a process instead of racing
    /// and retrying; across processes the store's version check decides.
    contact_locks: Arc<[tokio::sync::Mutex<()>; CONTACT_LOCK_STRIPES]>,
    catalogs: Arc<CatalogCache>,
    /// Webhook requests per tenant and process (`http::inbound_limit`).
    pub inbound: Arc<InboundLimit>,
    /// How long the router waits for a request's body (`http::extract::BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
    /// The base URL CRMs call (`SCOREHOOK_PUBLIC_URL`), without a trailing
    /// `/`; `None`: rebuilt from each request's forwarded headers.
    pub public_url: Option<String>,
    /// The outbound policy URLs are checked against when they are saved.
    pub egress: Egress,
}

/// How long a process trusts its cached copy of a tenant's configuration.
pub const DEFAULT_CONFIG_REFRESH: Duration = Duration::from_secs(5);

/// Enough stripes that unrelated contacts rarely share one.
const CONTACT_LOCK_STRIPES: usize = 256;

impl Service {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, admin_token: Option<Secret>) -> Self {
        Self {
            store,
            clock,
            outbox_bell: Arc::new(Notify::new()),
            readiness: Arc::default(),
            admin_token,
            contact_locks: Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))),
            catalogs: Arc::new(CatalogCache::new(DEFAULT_CONFIG_REFRESH)),
            inbound: Arc::default(),
            body_read_timeout: crate::http::extract::BODY_READ_TIMEOUT,
            public_url: None,
            egress: Egress::PUBLIC_ONLY,
        }
    }

    /// Sets the outbound policy saved URLs must pass (the deliverer's own).
    pub fn with_egress(mut self, egress: Egress) -> Self {
        self.egress = egress;
        self
    }

    /// Sets the per-tenant webhook rate limit.
    pub fn with_inbound_limit(mut self, limit: InboundLimit) -> Self {
        self.inbound = Arc::new(limit);
        self
    }

    /// Sets how long reading one request's body may take.
    pub fn with_body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// The base URL CRMs call, when a custom domain or proxy fronts scorehook.
    pub fn with_public_url(mut self, base: Option<String>) -> Self {
        self.public_url = base;
        self
    }

    /// Sets how long tenant configuration is cached (0 disables the cache).
    pub fn with_config_refresh(mut self, refresh: Duration) -> Self {
        self.catalogs = Arc::new(CatalogCache::new(refresh));
        self
    }

    /// The tenant and its compiled catalog, cached for the refresh interval.
    pub async fn tenant_view(&self, tenant: &TenantId) -> Result<Option<Arc<TenantView>>, ServiceError> {
        Ok(self.catalogs.get(self.store.as_ref(), tenant).await?)
    }

    pub(crate) fn config_changed(&self, tenant: &TenantId) {
        self.catalogs.invalidate(tenant);
    }

    /// The lock stripe of one contact.
    pub(crate) fn contact_lock(&self, tenant: &TenantId, contact: &ContactId) -> &tokio::sync::Mutex<()> {
        let mut hasher = std::hash::DefaultHasher::new();
        (tenant, contact).hash(&mut hasher);
        &self.contact_locks[(hasher.finish() % CONTACT_LOCK_STRIPES as u64) as usize]
    }

    /// Checks a bearer token against the operator token, then the tenant's own.
    /// Any failure is the same `Unauthorized`, so tokens reveal no tenant.
    pub async fn authorize(&self, token: Option<&str>, tenant: &TenantId) -> Result<Caller, ServiceError> {
        let token = token.ok_or(ServiceError::Unauthorized)?;
        if self.is_operator(token) {
            return Ok(Caller::Operator);
        }
        let record = self.store.tenant(tenant).await?.ok_or(ServiceError::Unauthorized)?;
        match record.token_match(token, self.clock.now()) {
            Some(matched) => Ok(Caller::Tenant { record: Box::new(record), token: matched }),
            None => Err(ServiceError::Unauthorized),
        }
    }

    /// Compares fixed-length hashes in constant time, so neither the
    /// token's content nor its length shows in the timing.
    pub fn is_operator(&self, token: &str) -> bool {
        self.admin_token.as_ref().is_some_and(|admin| {
            let (expected, given) = (hash_token(admin.expose()), hash_token(token));
            expected.as_bytes().ct_eq(given.as_bytes()).into()
        })
    }

    pub(crate) async fn require_tenant(&self, tenant: &TenantId) -> Result<TenantRecord, ServiceError> {
        self.store.tenant(tenant).await?.ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant}")))
    }
}

/// The shortest operator token a process starts with: it opens every
/// tenant, so it must be as hard to guess as a generated one.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 32;

/// The operator token as configured (`SCOREHOOK_ADMIN_TOKEN`, or the SSM
/// parameter on Lambda); a shorter one is refused with a message naming
/// `source`, and the process does not start.
pub fn operator_token(value: &str, source: &str) -> Result<Secret, String> {
    let length = value.chars().count();
    if length < MIN_OPERATOR_TOKEN_LEN {
        return Err(format!(
            "{source} is {length} characters long; the operator token needs at least {MIN_OPERATOR_TOKEN_LEN} \
             (for example: openssl rand -hex 32)"
        ));
    }
    Ok(Secret::new(value))
}

/// `prefix_` + 64 random hex digits, from the OS's CSPRNG.
pub(crate) fn random_token(prefix: &str) -> Result<String, ServiceError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Unavailable(format!("no randomness available: {e}")))?;
    Ok(format!("{prefix}_{}", hex::encode(bytes)))
}
