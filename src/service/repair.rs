//! The operator's repair of a contact whose stored state no longer reads
//! (`POST /v1/tenants/{t}/contacts/{c}/repair`): its scores are rebuilt
//! from what explains them, its ledger and its history.
//!
//! Everything of the stored state that still decodes is kept (fields,
//! fired `once` triggers, resets, timers, deal stages); its scores are
//! dropped and each published profile's score is rebuilt the way a
//! recompute does: the profile replayed over the contact's history, plus
//! the manual and trigger adjustments since the last reset, within the
//! score bound. The rebuilt state is committed over the stored version
//! (read from the raw record), with its index rows written afresh, and the
//! quarantine entry is released. A repair restores; it fires nothing.

use std::collections::BTreeMap;

use serde_json::Value;

use super::scores::LEDGER_VIEW_LIMIT;
use super::{Service, ServiceError};
use crate::engine::ledger::{since_last_reset, ContactState, LedgerEntry};
use crate::engine::points::Points;
use crate::engine::replay::recompute;
use crate::ids::{ContactId, ProfileId, TenantId};
use crate::store::{Commit, QuarantineKind, StoreError};

/// What a repair wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Repaired {
    /// The state's version after the repair.
    pub version: u64,
    /// Each published profile's rebuilt score.
    pub scores: BTreeMap<ProfileId, Points>,
    /// Whether the stored state read back as it was (a repair of a healthy
    /// contact rebuilds it all the same).
    pub was_readable: bool,
}

impl Service {
    /// Rebuilds the contact's state from its ledger and history (see the module).
    pub async fn repair_contact(&self, tenant: &TenantId, contact: &ContactId) -> Result<Repaired, ServiceError> {
        let view = self.tenant_view(tenant).await?.ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant}")))?;
        let catalog = view.catalog_for(contact);
        let _queued = self.contact_lock(tenant, contact).lock().await;
        let document = self.store.contact_document(tenant, contact).await?;
        let document = document.ok_or_else(|| ServiceError::NotFound(format!("contact {contact}")))?;
        let was_readable = serde_json::from_value::<ContactState>(document.clone()).is_ok();
        let ledger = self.store.ledger(tenant, contact, LEDGER_VIEW_LIMIT).await?;
        let mut state = salvage(contact, &document, &ledger)?;
        let version = state.version;
        let history = self.store.history(tenant, contact).await?;

        let now = self.clock.now();
        let mut entries: Vec<LedgerEntry> = Vec::new();
        for profile in &catalog.profiles {
            let mine: Vec<LedgerEntry> = ledger.iter().filter(|e| e.profile == profile.id).cloned().collect();
            let cause = format!("repair:{}:{contact}:{}", profile.id, now.timestamp_millis());
            let manual = since_last_reset(&mine);
            if let Some(outcome) = recompute(catalog, &state, profile, &history, manual, &cause, now) {
                // What the rebuilt scores would fire already fired when they were first reached.
                entries.extend(outcome.ledger);
                state = outcome.state;
            }
        }
        let scores = state.scores.iter().map(|(p, s)| (p.clone(), s.live_total(now))).collect();

        self.store.drop_contact_indexes(tenant, contact).await?;
        let commit = Commit {
            tenant,
            expected_version: version,
            // The index rows were just dropped: the rebuilt state indexes afresh.
            before: None,
            state: &state,
            interaction: None,
            received_at: now,
            ledger: &entries,
            actions: &[],
        };
        match self.store.commit(commit).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(ServiceError::Conflict("the contact changed during the repair; run it again".into()))
            }
            Err(e) => return Err(e.into()),
        }
        self.store.release(tenant, QuarantineKind::Contact, contact.as_str()).await?;
        tracing::warn!(tenant = %tenant, contact_id = %contact, version = version + 1, was_readable, "contact repaired");
        Ok(Repaired { version: version + 1, scores, was_readable })
    }
}

/// The stored state without its scores, keeping whatever else decodes; its
/// `version` as stored, and a `next_seq` past every ledger entry.
fn salvage(contact: &ContactId, document: &Value, ledger: &[LedgerEntry]) -> Result<ContactState, ServiceError> {
    let corrupt = |what: &str| ServiceError::Store(StoreError::Corrupt(format!("cannot repair {contact}: {what}")));
    let version = document.get("version").and_then(Value::as_u64).ok_or_else(|| corrupt("no version"))?;
    let mut rest = document.clone();
    if let Some(object) = rest.as_object_mut() {
        object.remove("scores");
    }
    let mut state = serde_json::from_value::<ContactState>(rest).unwrap_or_else(|_| {
        // Not even the rest reads: keep each part that does on its own.
        let mut fresh = ContactState::new(contact.clone());
        let part = |name: &str| document.get(name).cloned().unwrap_or(Value::Null);
        fresh.fields = serde_json::from_value(part("fields")).unwrap_or_default();
        fresh.fired_once = serde_json::from_value(part("fired_once")).unwrap_or_default();
        fresh.reset_at = serde_json::from_value(part("reset_at")).unwrap_or_default();
        fresh.matched = serde_json::from_value(part("matched")).unwrap_or_default();
        fresh.deal_stages = serde_json::from_value(part("deal_stages")).unwrap_or_default();
        fresh
    });
    state.contact_id = contact.clone();
    state.version = version;
    let past_ledger = ledger.iter().map(|e| e.seq.saturating_add(1)).max().unwrap_or(0);
    state.next_seq = state.next_seq.max(past_ledger);
    Ok(state)
}
