//! Reading and changing scores: one contact's scores with their ledger,
//! manual adjustments, and the leaderboard.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use super::ingest::Committed;
use super::{random_token, Service, ServiceError};
use crate::engine::duration::Span;
use crate::engine::ledger::{since_last_reset, LedgerEntry};
use crate::engine::points::Points;
use crate::engine::profile::{ProfileRecord, ProfileStatus, SubjectKind};
use crate::engine::{self, AdjustOp, Adjustment};
use crate::ids::{ContactId, EventId, ProfileId, TenantId};
use crate::store::{LeaderboardPage, LeaderboardQuery};

/// How many ledger entries a contact's score view reads at most.
pub const LEDGER_VIEW_LIMIT: usize = 1000;

/// One profile's score for a contact, with the entries that explain it.
#[derive(Debug, Clone)]
pub struct ScoreView {
    pub score: Points,
    pub updated_at: Option<DateTime<Utc>>,
    /// The instant `score` and the entries' current values are computed at.
    pub as_of: DateTime<Utc>,
    pub ledger: Vec<LedgerEntry>,
}

/// `POST …/scores/{p}` after parsing.
#[derive(Debug, Clone, Copy)]
pub struct AdjustInput {
    pub op: AdjustOp,
    pub points: Option<Points>,
    pub expires_in: Option<Span>,
}

impl Service {
    /// Every score the contact has, as of now, with the entries since the last reset.
    pub async fn contact_scores(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<BTreeMap<ProfileId, ScoreView>, ServiceError> {
        let Some(state) = self.read_contact(tenant, contact, "read").await? else {
            return Err(not_found(contact));
        };
        // Only published profiles are shown: an archived one's scores leave listings (history stays).
        let view = self.tenant_view(tenant).await?.ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant}")))?;
        let catalog = view.catalog_for(contact);
        let published = |profile: &ProfileId| catalog.profiles.iter().any(|p| &p.id == profile);
        let entries = self.store.ledger(tenant, contact, LEDGER_VIEW_LIMIT).await?;
        let now = self.clock.now();
        Ok(state
            .scores
            .iter()
            .filter(|(profile, _)| published(profile))
            .map(|(profile, score)| {
                let mine: Vec<LedgerEntry> = entries.iter().filter(|e| &e.profile == profile).cloned().collect();
                let view = ScoreView {
                    score: score.live_total(now),
                    updated_at: score.updated_at,
                    as_of: now,
                    ledger: since_last_reset(&mine).to_vec(),
                };
                (profile.clone(), view)
            })
            .collect())
    }

    /// Adds, subtracts, sets or resets a contact's score in a published profile.
    pub async fn adjust(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        profile: &ProfileId,
        input: AdjustInput,
    ) -> Result<Option<Points>, ServiceError> {
        let view = self.tenant_view(tenant).await?.ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant}")))?;
        let stored = self.profile(tenant, profile).await?;
        if stored.scoring().is_none() {
            return Err(ServiceError::Conflict(format!("profile {profile} is not published; publish it first")));
        }
        same_kind(&stored, SubjectKind::of(contact))?;
        if contact.deal().is_some() && self.read_contact(tenant, contact, "adjust").await?.is_none() {
            // A deal's actions need a contact: the one of its latest interaction.
            return Err(not_found(contact));
        }
        let points = match (input.op, input.points) {
            (AdjustOp::Reset, _) => Points::ZERO,
            (_, None) => return Err(ServiceError::invalid("points", "required for add, subtract and set")),
            (AdjustOp::Add | AdjustOp::Subtract, Some(p)) if p < Points::ZERO => {
                return Err(ServiceError::invalid("points", "give a positive number; the op says the direction"))
            }
            (_, Some(p)) => p,
        };
        let catalog = view.catalog_for(contact);
        let cause = EventId::parse(random_token("adj")?).map_err(|e| ServiceError::invalid("cause", e.to_string()))?;
        // Set when the change would take the score past the bound: nothing is committed.
        let out_of_bound = AtomicBool::new(false);
        let committed = self
            .commit_when(view.record.provider, tenant, contact, |state, now| {
                let change =
                    Adjustment { op: input.op, points, expires_at: input.expires_in.map(|s| now + s.as_delta()) };
                let fits = engine::fits(state, profile, &change, now);
                out_of_bound.store(!fits, Ordering::Relaxed);
                fits.then(|| engine::adjust(catalog, state, profile, change, &cause, now))
            })
            .await?;
        let now = self.clock.now();
        match committed {
            None if out_of_bound.load(Ordering::Relaxed) => Err(ServiceError::invalid(
                "points",
                format!("the score would leave its bound: scores stay between {} and {}", Points::MIN, Points::MAX),
            )),
            None => Err(ServiceError::Busy),
            Some(Committed::Done(outcome)) => {
                tracing::info!(tenant = %tenant, contact_id = %contact, profile = %profile, op = ?input.op, "score adjusted");
                Ok(outcome.state.scores.get(profile).map(|s| s.live_total(now)))
            }
            Some(Committed::Duplicate) => Err(ServiceError::Conflict("the adjustment was already applied".into())),
        }
    }

    /// Contacts (or deals) by score; an archived profile lists no one (its
    /// rows stay for a re-publish).
    pub async fn leaderboard(
        &self,
        tenant: &TenantId,
        kind: SubjectKind,
        query: &LeaderboardQuery,
    ) -> Result<LeaderboardPage, ServiceError> {
        let profile = self.profile(tenant, &query.profile).await?;
        same_kind(&profile, kind)?;
        if profile.status == ProfileStatus::Archived {
            return Ok(LeaderboardPage { rows: Vec::new(), next: None });
        }
        Ok(self.store.leaderboard(tenant, query).await?)
    }
}

/// A contact's score is read and moved through `/contacts`, a deal's through `/deals`.
fn same_kind(profile: &ProfileRecord, kind: SubjectKind) -> Result<(), ServiceError> {
    let scores = profile.subject();
    if scores == kind {
        return Ok(());
    }
    Err(ServiceError::invalid(
        "profile",
        format!("profile {} scores {}; use /v1/tenants/{{tenant}}/{}", profile.id, scores.plural(), scores.plural()),
    ))
}

fn not_found(subject: &ContactId) -> ServiceError {
    match subject.deal() {
        Some(deal) => ServiceError::NotFound(format!("deal {deal}")),
        None => ServiceError::NotFound(format!("contact {subject}")),
    }
}
