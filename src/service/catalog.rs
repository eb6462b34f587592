//! Builds a tenant's compiled `Catalog` (published profiles, enabled
//! triggers) from the store for each scoring request.

use crate::engine::trigger::Trigger;
use crate::engine::Catalog;
use crate::store::{Store, StoreError};
use crate::tenant::TenantRecord;

/// Specs were validated when saved; one that no longer compiles (a limit
/// tightened in a newer release) is logged and left out rather than
/// stopping every other rule from scoring.
pub async fn load(store: &dyn Store, tenant: &TenantRecord) -> Result<Catalog, StoreError> {
    let mut catalog = Catalog {
        score_field: tenant.score_field().to_owned(),
        ..Catalog::default()
    };
    for record in store.profiles(&tenant.id).await? {
        let Some(live) = record.scoring() else { continue };
        match live.spec.compile(&record.id, live.version) {
            Ok(profile) => catalog.profiles.push(profile),
            Err(e) => {
                tracing::error!(tenant = %tenant.id, profile = %record.id, error = %e, "stored profile no longer compiles")
            }
        }
    }
    for record in store.triggers(&tenant.id).await? {
        if !record.spec.enabled {
            continue;
        }
        match record.spec.compile(&record.id) {
            Ok(trigger) => catalog.triggers.push(trigger),
            Err(e) => {
                tracing::error!(tenant = %tenant.id, trigger = %record.id, error = %e, "stored trigger no longer compiles")
            }
        }
    }
    catalog.triggers.sort_by(|a: &Trigger, b: &Trigger| a.id.cmp(&b.id));
    Ok(catalog)
}
