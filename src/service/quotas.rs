//! A tenant's quotas (how many profiles, drafts and triggers it may keep)
//! and its regex budget, checked when a profile or trigger is saved.
//!
//! Every process reads all of a tenant's profiles and triggers on each
//! config refresh and compiles the live ones, so what one tenant may store
//! bounds what each webhook's cache miss costs. The checks read the lists
//! the store already keeps; a refusal is a 422 naming the limit, and
//! nothing is written. Two concurrent creations may both pass a quota, so
//! it can be exceeded by the number of concurrent writers, never more.

use super::ServiceError;
use crate::engine::budget;
use crate::engine::profile::ProfileRecord;
use crate::ids::TriggerId;
use crate::store::TriggerRecord;

/// Profiles per tenant, whatever their status. There is no delete yet: an
/// archived profile can be edited and published again instead.
pub const MAX_PROFILES: usize = 100;
/// Profiles per tenant holding an unpublished draft; publishing clears one.
/// Drafts are read on every refresh but never score, so they get half.
pub const MAX_DRAFTS: usize = 50;
/// Triggers per tenant, enabled or not.
pub const MAX_TRIGGERS: usize = 200;

/// A profile save: `record` as it would be stored (its draft the new
/// spec, holding `regex_bytes`), `had_draft` whether it held one before,
/// beside the tenant's stored `profiles` and `triggers`.
pub(crate) fn check_profile(
    record: &ProfileRecord,
    regex_bytes: usize,
    had_draft: bool,
    profiles: &[ProfileRecord],
    triggers: &[TriggerRecord],
) -> Result<(), ServiceError> {
    let others: Vec<&ProfileRecord> = profiles.iter().filter(|p| p.id != record.id).collect();
    if others.len() == profiles.len() && profiles.len() >= MAX_PROFILES {
        return Err(ServiceError::invalid(
            "id",
            format!(
                "a tenant may keep at most {MAX_PROFILES} profiles (drafts, published and archived); edit an archived \
                 one instead"
            ),
        ));
    }
    if !had_draft && others.iter().filter(|p| p.draft.is_some()).count() >= MAX_DRAFTS {
        return Err(ServiceError::invalid(
            "id",
            format!("a tenant may hold at most {MAX_DRAFTS} unpublished drafts; publish one first"),
        ));
    }
    if regex_bytes == 0 {
        return Ok(());
    }
    // This profile's live version stays stored beside the new draft.
    let versions = others.iter().flat_map(|p| [&p.live, &p.draft]).chain([&record.live]).flatten();
    let patterns = versions.flat_map(|v| v.spec.patterns()).chain(triggers.iter().flat_map(|t| t.spec.patterns()));
    Ok(budget::check_tenant(regex_bytes, patterns, "rules", "profile")?)
}

/// A trigger save: its compiled conditions hold `regex_bytes`.
pub(crate) fn check_trigger(
    id: &TriggerId,
    regex_bytes: usize,
    profiles: &[ProfileRecord],
    triggers: &[TriggerRecord],
) -> Result<(), ServiceError> {
    let others: Vec<&TriggerRecord> = triggers.iter().filter(|t| &t.id != id).collect();
    if others.len() == triggers.len() && triggers.len() >= MAX_TRIGGERS {
        return Err(ServiceError::invalid(
            "id",
            format!("a tenant may keep at most {MAX_TRIGGERS} triggers (enabled or not); edit one instead"),
        ));
    }
    if regex_bytes == 0 {
        return Ok(());
    }
    let versions = profiles.iter().flat_map(|p| [&p.live, &p.draft]).flatten();
    let patterns = versions.flat_map(|v| v.spec.patterns()).chain(others.iter().flat_map(|t| t.spec.patterns()));
    Ok(budget::check_tenant(regex_bytes, patterns, "when", "trigger")?)
}
