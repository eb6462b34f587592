//! Simulation: a profile (its draft, if it has one) run over stored history
//! without writing anything, reported as a score distribution, the top
//! contacts and how often the profile's score triggers would have fired.
//! Admins tune rules with it before publishing.

use std::sync::Arc;

use serde::Deserialize;

use super::{Service, ServiceError};
use crate::engine::points::Points;
use crate::engine::replay::{replay, score_triggers_on, Simulation};
use crate::ids::{ProfileId, TenantId};

/// The most contacts one simulation reads: it answers within one request.
pub const MAX_SIMULATED_CONTACTS: usize = 10_000;
const CONTACTS_PAGE: usize = 500;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SimulateInput {
    /// How many contacts to read (in id order), 1-10,000.
    pub contacts: usize,
    /// Width of each score band of the distribution.
    #[schema(value_type = f64)]
    pub band: Points,
    /// How many top contacts to list, 0-100.
    pub top: usize,
}

impl Default for SimulateInput {
    fn default() -> Self {
        Self { contacts: 1000, band: Points::whole(10), top: 10 }
    }
}

impl SimulateInput {
    pub fn validate(&self) -> Result<(), ServiceError> {
        if !(1..=MAX_SIMULATED_CONTACTS).contains(&self.contacts) {
            return Err(ServiceError::invalid("contacts", format!("1-{MAX_SIMULATED_CONTACTS}")));
        }
        if self.band <= Points::ZERO {
            return Err(ServiceError::invalid("band", "a positive number"));
        }
        if self.top > 100 {
            return Err(ServiceError::invalid("top", "at most 100"));
        }
        Ok(())
    }
}

/// A simulation with what it ran: the version simulated, and whether every
/// contact of the tenant was read.
#[derive(Debug, Clone)]
pub struct SimulationRun {
    pub version: u32,
    pub complete: bool,
    pub report: Simulation,
}

impl Service {
    pub async fn simulate(
        &self,
        tenant: &TenantId,
        id: &ProfileId,
        input: &SimulateInput,
    ) -> Result<SimulationRun, ServiceError> {
        input.validate()?;
        let record = self.profile(tenant, id).await?;
        let Some(spec) = record.draft.as_ref().or(record.live.as_ref()) else {
            return Err(ServiceError::NotFound(format!("profile {id}")));
        };
        let profile = spec.spec.compile(id, spec.version)?;
        let view: Arc<_> =
            self.tenant_view(tenant).await?.ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant}")))?;
        // A draft deal profile's triggers sit in the contact catalog until it is published.
        let triggers = score_triggers_on(view.catalog.triggers.iter().chain(&view.deals.triggers), id);
        let now = self.clock.now();
        let mut results = Vec::new();
        let mut after = None;
        let complete = loop {
            let page = CONTACTS_PAGE.min(input.contacts - results.len());
            let contacts = self.store.contacts(tenant, after.as_ref(), page).await?;
            for contact in contacts.iter().filter(|c| profile.scores(c)) {
                let history = self.store.history(tenant, contact).await?;
                results.push((contact.clone(), replay(&profile, &triggers, contact, &history, now)));
            }
            if contacts.len() < page {
                break true;
            }
            if results.len() >= input.contacts {
                // Full, and maybe more: one more id says whether any contact was left out.
                break self.store.contacts(tenant, contacts.last(), 1).await?.is_empty();
            }
            after = contacts.last().cloned();
        };
        Ok(SimulationRun {
            version: spec.version,
            complete,
            report: Simulation::report(&results, input.band, input.top),
        })
    }
}
