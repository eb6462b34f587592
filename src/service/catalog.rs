//! A tenant's compiled configuration, and the per-process cache of it.
//!
//! Every webhook needs the tenant (its secret) and its catalog (published
//! profiles, enabled triggers). Reading and compiling those per request
//! would cost round trips on DynamoDB, so each process keeps them for a
//! short refresh interval. Writes through this process invalidate at once;
//! other processes (other Lambda instances) see a change within the refresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::Catalog;
use crate::ids::TenantId;
use crate::store::{Store, StoreError, TenantConfig};
use crate::tenant::TenantRecord;

/// A tenant and its compiled catalog, as of one read of the store.
#[derive(Debug)]
pub struct TenantView {
    pub record: TenantRecord,
    pub catalog: Catalog,
}

/// Specs were validated when saved; one that no longer compiles (a limit
/// tightened in a newer release) is logged and left out rather than
/// stopping every other rule from scoring.
pub fn compile(config: TenantConfig) -> TenantView {
    let TenantConfig { tenant, profiles, triggers } = config;
    let mut catalog = Catalog { score_field: tenant.score_field().to_owned(), ..Catalog::default() };
    for record in profiles {
        let Some(live) = record.scoring() else { continue };
        match live.spec.compile(&record.id, live.version) {
            Ok(profile) => catalog.profiles.push(profile),
            Err(e) => {
                tracing::error!(tenant = %tenant.id, profile = %record.id, error = %e, "stored profile no longer compiles")
            }
        }
    }
    for record in triggers.into_iter().filter(|t| t.spec.enabled) {
        match record.spec.compile(&record.id) {
            Ok(trigger) => catalog.triggers.push(trigger),
            Err(e) => {
                tracing::error!(tenant = %tenant.id, trigger = %record.id, error = %e, "stored trigger no longer compiles")
            }
        }
    }
    catalog.profiles.sort_by(|a, b| a.id.cmp(&b.id));
    catalog.triggers.sort_by(|a, b| a.id.cmp(&b.id));
    TenantView { record: tenant, catalog }
}

pub struct CatalogCache {
    refresh: Duration,
    // std Mutex: held only to copy an Arc in or out, never across an await.
    entries: Mutex<HashMap<TenantId, (Instant, Arc<TenantView>)>>,
    /// Bumped by every invalidation, so a load that raced with a write is not cached.
    generation: AtomicU64,
}

impl CatalogCache {
    pub fn new(refresh: Duration) -> Self {
        Self { refresh, entries: Mutex::new(HashMap::new()), generation: AtomicU64::new(0) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, (Instant, Arc<TenantView>)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tenant's view, from the cache while fresh; `None` for an unknown tenant.
    pub async fn get(&self, store: &dyn Store, tenant: &TenantId) -> Result<Option<Arc<TenantView>>, StoreError> {
        if let Some((loaded, view)) = self.entries().get(tenant) {
            if loaded.elapsed() < self.refresh {
                return Ok(Some(Arc::clone(view)));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(config) = store.tenant_config(tenant).await? else {
            return Ok(None);
        };
        let view = Arc::new(compile(config));
        if self.generation.load(Ordering::Acquire) == generation && !self.refresh.is_zero() {
            self.entries().insert(tenant.clone(), (Instant::now(), Arc::clone(&view)));
        }
        Ok(Some(view))
    }

    pub fn invalidate(&self, tenant: &TenantId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries().remove(tenant);
    }
}
