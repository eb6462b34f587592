//! Scoring interactions: load, evaluate, commit atomically, retry on conflict.
//!
//! Each interaction is its own atomic commit: the dedupe marker, the new
//! contact state, its ledger entries and its outbox items land together or
//! not at all. A conflict (another event for the same contact committed in
//! between) re-reads and re-evaluates; the engine being a pure function makes
//! that retry safe.

use std::time::{Duration, Instant};

use tracing::Instrument;

use super::catalog::TenantView;
use super::{Service, ServiceError};
use crate::engine::interaction::Interaction;
use crate::engine::ledger::ContactState;
use crate::engine::{self, Outcome};
use crate::ids::{ContactId, TenantId};
use crate::metrics::{self, ActionOutcome};
use crate::outbox::{ActionStatus, OutboxItem};
use crate::store::{Commit, QuarantineKind, StoreError};
use crate::tenant::Provider;

/// How many times one interaction is re-evaluated after losing a race.
pub(crate) const MAX_CONFLICT_RETRIES: u32 = 10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Interactions committed now (and, of CRM connectors, id-only events queued).
    pub accepted: usize,
    /// Interactions whose id was seen before: not scored again.
    pub duplicates: usize,
    /// Of `accepted`: id-only events stored for resolution through the CRM's API (absent when zero).
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(required = false)]
    pub queued: usize,
    /// Events of kinds scorehook does not map: acknowledged and counted (absent when zero).
    #[serde(skip_serializing_if = "is_zero")]
    #[schema(required = false)]
    pub unmapped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What one commit attempt sequence ended in.
pub(crate) enum Committed {
    Done(Box<Outcome>),
    Duplicate,
}

impl Service {
    /// Scores interactions in order. Stops at the first store failure: what
    /// was committed before it stays (each interaction is atomic, and a
    /// redelivery of the whole body deduplicates it).
    pub async fn ingest(&self, view: &TenantView, interactions: &[Interaction]) -> Result<IngestReport, ServiceError> {
        let (tenant, catalog) = (&view.record, &view.catalog);
        let mut report = IngestReport::default();
        for interaction in interactions {
            let span = tracing::info_span!("interaction", tenant = %tenant.id, event_id = %interaction.id,
                contact_id = %interaction.contact_id, kind = %interaction.kind);
            let started = Instant::now();
            let committed = self
                .commit_contact(
                    tenant.provider,
                    &tenant.id,
                    &interaction.contact_id,
                    Some(interaction),
                    |state, now| engine::evaluate(catalog, state, interaction, now),
                )
                .instrument(span.clone())
                .await?;
            metrics::scored(started.elapsed());
            // The deal's own commit, deduplicated by its own marker: a
            // redelivery after a failure here completes it, and a store
            // failure answers 503 so the CRM redelivers.
            let deal = self.score_deal(view, interaction).instrument(span.clone()).await?;
            let committed = match (committed, deal) {
                (Committed::Duplicate, Some(Committed::Done(outcome))) => Committed::Done(outcome),
                (committed, _) => committed,
            };
            match committed {
                Committed::Done(outcome) => {
                    report.accepted += 1;
                    span.in_scope(|| {
                        tracing::info!(
                            entries = outcome.ledger.len(),
                            actions = outcome.actions.len(),
                            "interaction scored"
                        )
                    });
                }
                Committed::Duplicate => {
                    report.duplicates += 1;
                    span.in_scope(|| tracing::info!("duplicate interaction ignored"));
                }
            }
        }
        Ok(report)
    }

    /// Scores the interaction's deal, when it names one and the tenant has deal profiles.
    async fn score_deal(
        &self,
        view: &TenantView,
        interaction: &Interaction,
    ) -> Result<Option<Committed>, ServiceError> {
        let Some(deal) = interaction.deal_id.as_ref().filter(|_| view.records_deals) else {
            return Ok(None);
        };
        let subject = ContactId::for_deal(deal);
        let committed = self
            .commit_contact(view.record.provider, &view.record.id, &subject, Some(interaction), |state, now| {
                engine::evaluate(&view.deals, state, interaction, now)
            })
            .await?;
        if let Committed::Done(outcome) = &committed {
            tracing::info!(deal_id = %deal, entries = outcome.ledger.len(), actions = outcome.actions.len(), "deal scored");
        }
        Ok(Some(committed))
    }

    /// Reads the contact, applies `change`, and commits with a version check,
    /// retrying with jittered backoff when another writer got there first.
    pub(crate) async fn commit_contact(
        &self,
        provider: Provider,
        tenant: &TenantId,
        contact: &ContactId,
        interaction: Option<&Interaction>,
        change: impl Fn(&ContactState, chrono::DateTime<chrono::Utc>) -> Outcome,
    ) -> Result<Committed, ServiceError> {
        let committed =
            self.commit_if(provider, tenant, contact, interaction, |state, now| Some(change(state, now))).await?;
        // The change always has an outcome, so there is always a commit.
        committed.ok_or(ServiceError::Busy)
    }

    /// `commit_contact` for a change that may find nothing to do (`None`):
    /// then nothing is written.
    pub(crate) async fn commit_when(
        &self,
        provider: Provider,
        tenant: &TenantId,
        contact: &ContactId,
        change: impl Fn(&ContactState, chrono::DateTime<chrono::Utc>) -> Option<Outcome>,
    ) -> Result<Option<Committed>, ServiceError> {
        self.commit_if(provider, tenant, contact, None, change).await
    }

    async fn commit_if(
        &self,
        provider: Provider,
        tenant: &TenantId,
        contact: &ContactId,
        interaction: Option<&Interaction>,
        change: impl Fn(&ContactState, chrono::DateTime<chrono::Utc>) -> Option<Outcome>,
    ) -> Result<Option<Committed>, ServiceError> {
        let _queued = self.contact_lock(tenant, contact).lock().await;
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            let state = self.load_contact(tenant, contact).await?;
            let now = self.clock.now();
            let Some(outcome) = change(&state, now) else { return Ok(None) };
            match self.try_commit(provider, tenant, &state, interaction, now, outcome).await? {
                Some(committed) => return Ok(Some(committed)),
                None => {
                    tracing::debug!(attempt, "version conflict; re-reading the contact");
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                }
            }
        }
        Err(ServiceError::Busy)
    }

    pub(crate) async fn load_contact(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<ContactState, ServiceError> {
        let state = self.read_contact(tenant, contact, "scoring").await?;
        Ok(state.unwrap_or_else(|| ContactState::new(contact.clone())))
    }

    /// Commits an outcome computed from `state`; `None` when another writer
    /// moved the contact first (re-read and try again). `provider` is the
    /// tenant's, for the fired actions' metrics.
    pub(crate) async fn try_commit(
        &self,
        provider: Provider,
        tenant: &TenantId,
        state: &ContactState,
        interaction: Option<&Interaction>,
        now: chrono::DateTime<chrono::Utc>,
        outcome: Outcome,
    ) -> Result<Option<Committed>, ServiceError> {
        let actions: Vec<OutboxItem> =
            outcome.actions.iter().map(|a| OutboxItem::new(tenant.clone(), a.clone())).collect();
        let commit = Commit {
            tenant,
            expected_version: state.version,
            before: (state.version > 0).then_some(state),
            state: &outcome.state,
            interaction,
            received_at: now,
            ledger: &outcome.ledger,
            actions: &actions,
        };
        match self.store.commit(commit).await {
            Ok(()) => {
                metrics::committed();
                if !actions.is_empty() {
                    let skipped = actions.iter().filter(|a| a.status == ActionStatus::Skipped).count();
                    metrics::actions(Some(provider), ActionOutcome::Fired, actions.len());
                    metrics::actions(Some(provider), ActionOutcome::Skipped, skipped);
                    self.outbox_bell.notify_one();
                }
                Ok(Some(Committed::Done(Box::new(outcome))))
            }
            Err(StoreError::Duplicate) => Ok(Some(Committed::Duplicate)),
            Err(StoreError::Conflict) => {
                metrics::commit_conflict();
                Ok(None)
            }
            Err(other) => {
                let error = ServiceError::from(other);
                if error.is_record_fault() {
                    let contact = state.contact_id.as_str();
                    self.set_aside(tenant, QuarantineKind::Contact, contact, &error, "commit").await;
                }
                Err(error)
            }
        }
    }
}

/// 1, 2, 4 … ms, capped at 50 ms, plus up to as much again of jitter.
pub(crate) fn conflict_backoff(attempt: u32) -> Duration {
    let base = (1u64 << attempt.min(6)).min(50);
    let mut byte = [0u8; 1];
    let jitter = match getrandom::fill(&mut byte) {
        Ok(()) => u64::from(byte[0]) * base / 255,
        Err(_) => 0,
    };
    Duration::from_millis(base + jitter)
}
