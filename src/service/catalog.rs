//! A tenant's compiled configuration, and the per-process cache of it.
//!
//! Every webhook needs the tenant (its secret) and its catalog (published
//! profiles, enabled triggers). Reading and compiling those per request
//! would cost round trips on DynamoDB, so each process keeps them for a
//! short refresh interval. Writes through this process invalidate at once;
//! other processes (other Lambda instances) see a change within the refresh.
//! Concurrent misses for one tenant share one read and compile
//! (single-flight), so a burst of webhooks after an expiry costs one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::engine::profile::SubjectKind;
use crate::engine::stages::Pipelines;
use crate::engine::trigger::When;
use crate::engine::Catalog;
use crate::ids::{ContactId, TenantId};
use crate::store::{Store, StoreError, TenantConfig};
use crate::tenant::TenantRecord;

/// A tenant and its compiled catalogs, as of one read of the store.
#[derive(Debug)]
pub struct TenantView {
    pub record: TenantRecord,
    /// What scores contacts: the contact profiles, and every trigger but
    /// the score triggers of deal profiles.
    pub catalog: Catalog,
    /// What scores deals: the deal profiles and their score triggers.
    pub deals: Catalog,
    /// Whether any profile, even a draft, scores deals: interactions with a
    /// deal id then also record the deal's history, for simulation and
    /// retroactive publish.
    pub records_deals: bool,
}

impl TenantView {
    /// The catalog that scores this subject (a contact, or a deal's key).
    pub fn catalog_for(&self, subject: &ContactId) -> &Catalog {
        self.catalog_of(SubjectKind::of(subject))
    }

    pub fn catalog_of(&self, kind: SubjectKind) -> &Catalog {
        match kind {
            SubjectKind::Contact => &self.catalog,
            SubjectKind::Deal => &self.deals,
        }
    }
}

/// Specs were validated when saved; one that no longer compiles (a limit
/// tightened in a newer release) is logged and left out rather than
/// stopping every other rule from scoring.
pub fn compile(config: TenantConfig) -> TenantView {
    let TenantConfig { tenant, profiles, triggers } = config;
    let empty = Catalog {
        score_field: tenant.score_field().to_owned(),
        pipelines: Pipelines::from_settings(tenant.crm.get("pipelines")),
        ..Catalog::default()
    };
    let (mut catalog, mut deals) = (empty.clone(), empty);
    let records_deals = profiles
        .iter()
        .any(|record| [&record.live, &record.draft].into_iter().flatten().any(|v| v.spec.subject == SubjectKind::Deal));
    for record in profiles {
        let Some(live) = record.scoring() else { continue };
        match live.spec.compile(&record.id, live.version) {
            Ok(profile) if profile.subject == SubjectKind::Deal => deals.profiles.push(profile),
            Ok(profile) => catalog.profiles.push(profile),
            Err(e) => {
                tracing::error!(tenant = %tenant.id, profile = %record.id, error = %e, "stored profile no longer compiles")
            }
        }
    }
    for record in triggers.into_iter().filter(|t| t.spec.enabled) {
        match record.spec.compile(&record.id) {
            Ok(trigger) => {
                let on_deals =
                    matches!(&trigger.when, When::Score(f) if deals.profiles.iter().any(|p| p.id == f.profile));
                if on_deals { &mut deals } else { &mut catalog }.triggers.push(trigger)
            }
            Err(e) => {
                tracing::error!(tenant = %tenant.id, trigger = %record.id, error = %e, "stored trigger no longer compiles")
            }
        }
    }
    for catalog in [&mut catalog, &mut deals] {
        catalog.profiles.sort_by(|a, b| a.id.cmp(&b.id));
        catalog.triggers.sort_by(|a, b| a.id.cmp(&b.id));
    }
    TenantView { record: tenant, catalog, deals, records_deals }
}

/// A cached view, or `None` for a tenant the store does not have.
type Entry = (Instant, Option<Arc<TenantView>>);

/// What one load of a tenant's configuration came to.
type Loaded = Result<Option<Arc<TenantView>>, StoreError>;

/// One load in progress, shared by every `get` that misses while it runs:
/// the first to arrive reads and compiles, the others await its result
/// (and take over the load if that caller goes away mid-way).
type Flight = Arc<OnceCell<Loaded>>;

#[derive(Default)]
struct Views {
    // Unknown tenants are remembered too, so a stream of webhooks to made-up
    // tenant ids costs one store read per id per refresh, not one each; a
    // tenant created through this process is known at once (`invalidate`).
    entries: HashMap<TenantId, Entry>,
    /// Loads in progress, one per tenant; a tenant's entry is gone once its
    /// load ends, so a later miss starts a load of its own.
    loading: HashMap<TenantId, Flight>,
}

pub struct CatalogCache {
    refresh: Duration,
    // std Mutex: held only to look up or swap an entry, never across an await.
    views: Mutex<Views>,
    /// Bumped by every invalidation, so a load that raced with a write is not cached.
    generation: AtomicU64,
}

/// The most tenants (known or not) one process keeps views of.
const MAX_CACHED_TENANTS: usize = 10_000;

impl CatalogCache {
    pub fn new(refresh: Duration) -> Self {
        Self { refresh, views: Mutex::new(Views::default()), generation: AtomicU64::new(0) }
    }

    fn views(&self) -> std::sync::MutexGuard<'_, Views> {
        self.views.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tenant's view, from the cache while fresh; `None` for an unknown
    /// tenant. Concurrent misses for one tenant share one store read and
    /// compile (issue #19: each compiled its own copy, at once); misses for
    /// different tenants load in parallel.
    pub async fn get(&self, store: &dyn Store, tenant: &TenantId) -> Loaded {
        let flight = {
            let mut views = self.views();
            if let Some((loaded, view)) = views.entries.get(tenant) {
                if loaded.elapsed() < self.refresh {
                    return Ok(view.clone());
                }
            }
            views.loading.entry(tenant.clone()).or_default().clone()
        };
        flight.get_or_init(|| self.load(store, tenant, &flight)).await.clone()
    }

    async fn load(&self, store: &dyn Store, tenant: &TenantId, flight: &Flight) -> Loaded {
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = store.tenant_config(tenant).await.map(|config| config.map(|config| Arc::new(compile(config))));
        let mut views = self.views();
        // Unless an invalidation already replaced it, this flight ends here.
        if views.loading.get(tenant).is_some_and(|current| Arc::ptr_eq(current, flight)) {
            views.loading.remove(tenant);
        }
        if let Ok(view) = &loaded {
            let fresh = self.generation.load(Ordering::Acquire) == generation && !self.refresh.is_zero();
            // Made-up ids must not grow the map without bound: past the cap, misses are not kept.
            if fresh && (view.is_some() || views.entries.len() < MAX_CACHED_TENANTS) {
                views.entries.insert(tenant.clone(), (Instant::now(), view.clone()));
            }
        }
        loaded
    }

    /// Forgets the tenant's view; a load already under way is neither
    /// cached nor joined by later misses, which read the store afresh.
    pub fn invalidate(&self, tenant: &TenantId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut views = self.views();
        views.entries.remove(tenant);
        views.loading.remove(tenant);
    }
}
