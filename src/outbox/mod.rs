//! The transactional outbox: fired actions, their delivery attempts, and the
//! step that delivers what is due (run by `sweeper`).
//!
//! Actions are written in the same commit as the score change that fired
//! them. `deliver_due` is one bounded step (tests call it until `Drained`). Nothing is ever dropped: an
//! action ends `done`, `skipped` with a reason, or `dead` and replayable.

pub mod alerts;
pub mod retry;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::clock::Clock;
use crate::crm::{Delivered, Deliverer, DeliveryError, Intake};
use crate::engine::action::FiredAction;
use crate::ids::TenantId;
use crate::metrics::{self, ActionOutcome};
use crate::store::{QuarantineKind, Quarantined, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Not yet tried.
    Pending,
    /// The last attempt failed; another is scheduled at `next_attempt_at`.
    Failed,
    /// Out of attempts (or refused for good); replayable.
    Dead,
    Done,
    /// Deliberately not sent; `reason` says why.
    Skipped,
}

impl ActionStatus {
    pub fn is_due_kind(self) -> bool {
        matches!(self, ActionStatus::Pending | ActionStatus::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// `done`, `failed` or `dead`: what this attempt made of the action.
    pub status: ActionStatus,
    /// The HTTP status the receiver answered, if it answered.
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub tenant: TenantId,
    #[serde(flatten)]
    pub action: FiredAction,
    pub status: ActionStatus,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many attempts preceded the last replay: a replay starts a fresh retry schedule.
    #[serde(default)]
    pub attempts_before_replay: u32,
    /// Bumped by every save; a save based on an older revision is refused,
    /// so a replay and an in-flight delivery cannot overwrite each other.
    #[serde(default)]
    pub revision: u64,
}

impl OutboxItem {
    /// A fired action, queued for delivery, or recorded `skipped` when the
    /// engine decided not to send it.
    pub fn new(tenant: TenantId, action: FiredAction) -> Self {
        let (status, next_attempt_at, reason) = match &action.skipped {
            Some(reason) => (ActionStatus::Skipped, None, Some(reason.clone())),
            None => (ActionStatus::Pending, Some(action.fired_at), None),
        };
        Self {
            tenant,
            action,
            status,
            attempts: Vec::new(),
            next_attempt_at,
            reason,
            attempts_before_replay: 0,
            revision: 0,
        }
    }

    /// Puts a failed or dead action back in the queue under the same id.
    pub fn replay(&mut self, now: DateTime<Utc>) -> bool {
        if !matches!(self.status, ActionStatus::Failed | ActionStatus::Dead) {
            return false;
        }
        self.status = ActionStatus::Pending;
        self.attempts_before_replay = self.attempts.len() as u32;
        self.next_attempt_at = Some(now);
        self.reason = None;
        true
    }
}

/// Whether a step left work behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Drained,
    More,
}

/// Delivers up to `limit` due actions once each and records every attempt.
/// One action's failure to be recorded stops no other: a record at fault is
/// set aside (`Store::quarantine`); only an unreachable store ends the step.
pub async fn deliver_due(
    store: &dyn Store,
    deliverer: &Deliverer,
    clock: &dyn Clock,
    intake: &dyn Intake,
    limit: usize,
) -> Result<Step, StoreError> {
    let now = clock.now();
    let due = store.due_actions(now, limit).await?;
    // Soonest first: the first is the one that has waited longest.
    let oldest = due.first().and_then(|item| item.next_attempt_at);
    metrics::outbox_lag(oldest.and_then(|at| (now - at).to_std().ok()).unwrap_or_default());
    let step = if due.len() == limit { Step::More } else { Step::Drained };
    for item in due {
        let span = tracing::info_span!("deliver", tenant = %item.tenant, action_id = %item.action.id,
            contact_id = %item.action.contact_id, kind = %item.action.kind);
        let (tenant, id) = (item.tenant.clone(), item.action.id.clone());
        match deliver_one(store, deliverer, clock, intake, item).instrument(span).await {
            Ok(()) => {}
            Err(error @ (StoreError::Corrupt(_) | StoreError::TooLarge(_))) => {
                tracing::error!(tenant = %tenant, action_id = %id, error = %error,
                    "a delivery record cannot be saved; quarantined");
                let entry =
                    Quarantined::new(&tenant, QuarantineKind::Action, id.as_str(), &error, "executor", clock.now());
                store.quarantine(&entry).await?;
            }
            // Changed by another executor each time it was saved: that one has it.
            Err(StoreError::Conflict) => {
                tracing::warn!(tenant = %tenant, action_id = %id, "delivery record kept changing")
            }
            Err(error) => return Err(error),
        }
    }
    Ok(step)
}

/// Delivers one action if it is still due: the stream executor's step. The
/// item is re-read (a stream image may be stale), so a record seen twice
/// or after the sweeper got there first sends nothing twice.
pub async fn deliver_action(
    store: &dyn Store,
    deliverer: &Deliverer,
    clock: &dyn Clock,
    intake: &dyn Intake,
    tenant: &TenantId,
    id: &crate::ids::ActionId,
) -> Result<bool, StoreError> {
    let Some(item) = store.action(tenant, id).await? else { return Ok(false) };
    let due = item.status.is_due_kind() && item.next_attempt_at.is_some_and(|at| at <= clock.now());
    if !due {
        return Ok(false);
    }
    let span = tracing::info_span!("deliver", tenant = %item.tenant, action_id = %item.action.id,
        contact_id = %item.action.contact_id, kind = %item.action.kind);
    deliver_one(store, deliverer, clock, intake, item).instrument(span).await?;
    Ok(true)
}

async fn deliver_one(
    store: &dyn Store,
    deliverer: &Deliverer,
    clock: &dyn Clock,
    intake: &dyn Intake,
    mut item: OutboxItem,
) -> Result<(), StoreError> {
    let tenant = match store.tenant(&item.tenant).await {
        Err(StoreError::Corrupt(e)) => Err(format!("the tenant's record cannot be read: {e}")),
        other => Ok(other?),
    };
    let result = match &tenant {
        Ok(Some(tenant)) => deliverer.deliver(tenant, &item, clock.now(), intake).await,
        Ok(None) => Err(DeliveryError::Permanent { http_status: None, message: "the tenant no longer exists".into() }),
        // Dead, and replayable once the tenant is saved again.
        Err(message) => Err(DeliveryError::Permanent { http_status: None, message: message.clone() }),
    };
    let now = clock.now();
    let provider = match &tenant {
        Ok(Some(tenant)) => Some(tenant.provider),
        _ => None,
    };
    let number = item.attempts.len() as u32 + 1;
    let in_schedule = number.saturating_sub(item.attempts_before_replay);
    let mut skipped = None;
    let (status, http_status, error) = match result {
        Ok(Delivered::Sent(http_status)) => (ActionStatus::Done, Some(http_status), None),
        Ok(Delivered::Skipped(reason)) => {
            skipped = Some(reason);
            (ActionStatus::Skipped, None, None)
        }
        Err(DeliveryError::Retryable { http_status, message, retry_after }) => {
            match deliverer.retry.next_attempt(&item.action.id, in_schedule, retry_after, now) {
                Some(at) => {
                    item.next_attempt_at = Some(at);
                    (ActionStatus::Failed, http_status, Some(message))
                }
                None => (ActionStatus::Dead, http_status, Some(message)),
            }
        }
        Err(DeliveryError::Permanent { http_status, message }) => (ActionStatus::Dead, http_status, Some(message)),
    };
    if status != ActionStatus::Failed {
        item.next_attempt_at = None;
    }
    if let Some(outcome) = ActionOutcome::of_attempt(status) {
        metrics::actions(provider, outcome, 1);
    }
    match (&error, &skipped) {
        (Some(e), _) => tracing::warn!(attempt = number, ?status, http_status, error = %e, "action delivery failed"),
        (None, Some(why)) => tracing::info!(attempt = number, reason = %why, "action skipped"),
        (None, None) => tracing::info!(attempt = number, http_status, "action delivered"),
    }
    // A dead or skipped item says why at a glance; the attempts keep every error.
    let reason = skipped.or_else(|| error.clone().filter(|_| status == ActionStatus::Dead));
    let attempt = Attempt { at: now, status, http_status, error };
    item.status = status;
    item.reason = reason;
    item.attempts.push(attempt.clone());
    for _ in 0..SAVE_RETRIES {
        match store.save_action(&item).await {
            Err(StoreError::Conflict) => {}
            Ok(()) => {
                deliverer.alert(store, &item, &attempt).await;
                return Ok(());
            }
            other => return other,
        }
        // Changed meanwhile (replayed, say): record this attempt on the fresh copy.
        let Some(mut fresh) = store.action(&item.tenant, &item.action.id).await? else { return Ok(()) };
        fresh.attempts.push(attempt.clone());
        if matches!(status, ActionStatus::Done | ActionStatus::Skipped) {
            fresh.status = status;
            fresh.reason = item.reason.clone();
            fresh.next_attempt_at = None;
        }
        item = fresh;
    }
    Err(StoreError::Conflict)
}

/// How often a delivery record is re-read and re-saved after a concurrent change.
const SAVE_RETRIES: usize = 5;
