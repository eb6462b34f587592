//! The storage port: everything scorehook keeps, in domain terms.
//!
//! Two adapters implement it and pass one contract suite: `embedded` (redb,
//! the local default) and DynamoDB (production). The trait is shaped
//! for DynamoDB's strengths: one conditional, atomic `commit` per
//! interaction that checks the dedupe marker and the contact's version,
//! writes the state, ledger entries and outbox items together, and fails as
//! a whole.

pub mod dynamodb;
pub mod embedded;
pub mod keys;
pub mod sealing;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::interaction::{Interaction, Recorded};
use crate::engine::ledger::{ContactState, LedgerEntry};
use crate::engine::points::Points;
use crate::engine::profile::{ProfileRecord, SubjectKind};
use crate::engine::trigger::TriggerSpec;
use crate::ids::{ActionId, ContactId, ProfileId, TenantId, TriggerId};
use crate::outbox::{ActionStatus, OutboxItem};
use crate::tenant::TenantRecord;

/// `Clone`, so one failed read can answer every caller that shared it (`service::catalog`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The interaction id was already committed: the event scored before.
    #[error("the interaction was already recorded")]
    Duplicate,
    /// Someone else changed the contact since it was read; re-read and retry.
    #[error("the contact changed concurrently")]
    Conflict,
    /// The store could not be reached or could not write; the caller may retry.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A stored item could not be decoded: a bug or a corrupted file, never retried.
    #[error("a stored item is corrupt: {0}")]
    Corrupt(String),
    /// A commit would exceed what the store can write atomically; the
    /// service's configuration limits are meant to make this unreachable.
    #[error("the commit is too large: {0}")]
    TooLarge(String),
}

/// What a deal's dedupe marker adds to the event id (after a separator no id may contain).
pub const DEAL_MARKER: &str = "deal";

/// One atomic write: all of it lands, or none of it does.
#[derive(Debug)]
pub struct Commit<'a> {
    pub tenant: &'a TenantId,
    /// The version read; the commit fails with `Conflict` if it moved.
    pub expected_version: u64,
    /// The state as read at `expected_version` (`None` for a new contact),
    /// so adapters can update their indexes without reading it again.
    pub before: Option<&'a ContactState>,
    /// The new state; stored with `version = expected_version + 1`.
    pub state: &'a ContactState,
    /// The interaction, recorded as the dedupe marker (fails with
    /// `Duplicate` if its id is known) and in the contact's history under
    /// the new state version. `None` for manual adjustments. A deal's
    /// state has a marker of its own (the id suffixed with `DEAL_MARKER`),
    /// so the contact's commit and the deal's dedupe separately.
    pub interaction: Option<&'a Interaction>,
    pub received_at: DateTime<Utc>,
    pub ledger: &'a [LedgerEntry],
    pub actions: &'a [OutboxItem],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRecord {
    pub id: TriggerId,
    pub spec: TriggerSpec,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

/// Contacts of one profile ordered by score, within `[min, max]`, after a cursor position.
#[derive(Debug, Clone)]
pub struct LeaderboardQuery {
    pub profile: ProfileId,
    pub order: Order,
    pub min: Option<Points>,
    pub max: Option<Points>,
    pub limit: usize,
    /// The last row of the previous page.
    pub after: Option<(Points, ContactId)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaderboardRow {
    pub contact_id: ContactId,
    pub score: Points,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaderboardPage {
    pub rows: Vec<LeaderboardRow>,
    /// Set when more rows may follow: pass it back as `after`.
    pub next: Option<(Points, ContactId)>,
}

/// Applying a newly published profile version to stored history, one batch
/// of contacts at a time; saved after each batch, so it survives restarts
/// and continues across Lambda invocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecomputeJob {
    pub tenant: TenantId,
    pub profile: ProfileId,
    pub version: u32,
    pub status: JobStatus,
    /// The last subject (contact or deal key) done; the next batch starts after it.
    #[serde(default, with = "crate::ids::subject::option")]
    pub after: Option<ContactId>,
    pub contacts_done: u64,
    pub contacts_changed: u64,
    /// Of `contacts_done`, those whose record could not be read or
    /// committed: quarantined and passed over (`GET /v1/quarantine`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contacts_skipped: u64,
    /// How many subjects of the profile's kind the tenant had when the job
    /// counted them (its first step): what `contacts_done` goes up to,
    /// give or take subjects created meanwhile. `None` until counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts_total: Option<u64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Save counter: `save_job` writes `revision + 1` only over `revision`.
    #[serde(default)]
    pub revision: u64,
    /// Set on a job that applies a score trigger saved with
    /// `apply_to_existing` to the subjects already matching it (of
    /// `profile`'s kind), instead of recomputing `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerId>,
}

impl RecomputeJob {
    /// The job's key within its tenant: the profile a recompute rebuilds, or
    /// `trigger.<id>` (a profile id cannot hold a dot).
    pub fn key(&self) -> String {
        match &self.trigger {
            Some(trigger) => trigger_job_key(trigger),
            None => self.profile.to_string(),
        }
    }
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// The key of the job applying a trigger to existing subjects.
pub fn trigger_job_key(trigger: &TriggerId) -> String {
    format!("trigger.{trigger}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Done,
    /// The profile was archived or a newer version published before it finished.
    Cancelled,
}

/// What kind of record a quarantine entry sets aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineKind {
    /// A contact's (or deal's) state; `key` is its id (a deal's subject key).
    Contact,
    /// A fired action's delivery record; `key` is the action id.
    Action,
}

impl QuarantineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Action => "action",
        }
    }
}

/// A stored record the background work could not read or commit, set
/// aside so that it stops nothing else (the sweeper, the executor, another
/// tenant's work) and listed for the operator until a repair releases it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    pub tenant: TenantId,
    pub kind: QuarantineKind,
    pub key: String,
    /// What went wrong the last time (a store error; never a secret).
    pub error: String,
    /// Where it was found: `sweeper`, `recompute`, `webhook`, …
    pub found_by: String,
    #[serde(with = "crate::timestamp")]
    pub first_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp")]
    pub last_at: DateTime<Utc>,
    /// How many times it was found unreadable.
    pub count: u64,
}

impl Quarantined {
    /// A first finding at `at`.
    pub fn new(
        tenant: &TenantId,
        kind: QuarantineKind,
        key: &str,
        error: &StoreError,
        found_by: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant: tenant.clone(),
            kind,
            key: key.to_owned(),
            error: error.to_string(),
            found_by: found_by.to_owned(),
            first_at: at,
            last_at: at,
            count: 1,
        }
    }

    /// This finding added to an earlier one of the same record.
    pub fn again(self, earlier: Option<Quarantined>) -> Self {
        match earlier {
            Some(earlier) => Self { first_at: earlier.first_at, count: earlier.count.saturating_add(1), ..self },
            None => self,
        }
    }
}

/// Everything scoring needs to know about a tenant's configuration.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub tenant: TenantRecord,
    pub profiles: Vec<ProfileRecord>,
    pub triggers: Vec<TriggerRecord>,
}

impl LeaderboardPage {
    /// A page from up to `limit + 1` rows read: the extra row only says more follow.
    pub fn cut(mut rows: Vec<LeaderboardRow>, limit: usize) -> Self {
        if rows.len() <= limit {
            return Self { rows, next: None };
        }
        rows.truncate(limit);
        let next = rows.last().map(|row| (row.score, row.contact_id.clone()));
        Self { rows, next }
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// The tenant with its profiles and triggers; adapters that can read them
    /// in one call (DynamoDB: one Query) override this.
    async fn tenant_config(&self, id: &TenantId) -> Result<Option<TenantConfig>, StoreError> {
        let Some(tenant) = self.tenant(id).await? else {
            return Ok(None);
        };
        Ok(Some(TenantConfig { profiles: self.profiles(id).await?, triggers: self.triggers(id).await?, tenant }))
    }

    /// Saves a tenant record as revision `tenant.revision + 1`, only if the
    /// stored one is at `tenant.revision` (0: none stored, or one stored
    /// before records had revisions); else `Conflict` and nothing is
    /// written. One write, whole: a token rotation lands entirely or not.
    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError>;
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError>;

    async fn put_profile(&self, tenant: &TenantId, profile: &ProfileRecord) -> Result<(), StoreError>;
    async fn profile(&self, tenant: &TenantId, id: &ProfileId) -> Result<Option<ProfileRecord>, StoreError>;
    async fn profiles(&self, tenant: &TenantId) -> Result<Vec<ProfileRecord>, StoreError>;

    async fn put_trigger(&self, tenant: &TenantId, trigger: &TriggerRecord) -> Result<(), StoreError>;
    async fn trigger(&self, tenant: &TenantId, id: &TriggerId) -> Result<Option<TriggerRecord>, StoreError>;
    async fn triggers(&self, tenant: &TenantId) -> Result<Vec<TriggerRecord>, StoreError>;

    async fn contact(&self, tenant: &TenantId, contact: &ContactId) -> Result<Option<ContactState>, StoreError>;
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError>;
    /// The contact's most recent `limit` ledger entries, oldest first.
    async fn ledger(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError>;
    async fn leaderboard(&self, tenant: &TenantId, query: &LeaderboardQuery) -> Result<LeaderboardPage, StoreError>;

    /// The contact's recorded interactions (within retention), in the order they were scored.
    async fn history(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<Recorded>, StoreError>;
    /// A tenant's contacts in id order, starting after `after`.
    async fn contacts(
        &self,
        tenant: &TenantId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<ContactId>, StoreError>;

    /// How many of the tenant's subjects are of `kind`: a recompute's total.
    /// Pages through `contacts` (ids only); an adapter that can count
    /// without reading each id may override it.
    async fn count_subjects(&self, tenant: &TenantId, kind: SubjectKind) -> Result<u64, StoreError> {
        const PAGE: usize = 1000;
        let (mut after, mut count) = (None, 0u64);
        loop {
            let page = self.contacts(tenant, after.as_ref(), PAGE).await?;
            count += page.iter().filter(|subject| SubjectKind::of(subject) == kind).count() as u64;
            if page.len() < PAGE {
                return Ok(count);
            }
            after = page.last().cloned();
        }
    }

    /// Saves a recompute job as revision `job.revision + 1`, only if the
    /// stored one is at `job.revision` (0: none stored); else `Conflict`.
    async fn save_job(&self, job: &RecomputeJob) -> Result<(), StoreError>;
    /// The job under `key` (`RecomputeJob::key`).
    async fn job(&self, tenant: &TenantId, key: &str) -> Result<Option<RecomputeJob>, StoreError>;
    /// Jobs still running, oldest first.
    async fn running_jobs(&self, limit: usize) -> Result<Vec<RecomputeJob>, StoreError>;

    /// Contacts with points that expire at or before `now` (by their
    /// state's next expiry), soonest first: the sweeper settles them.
    async fn due_contacts(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, ContactId)>, StoreError>;

    /// Pending or failed actions whose next attempt is due at `now`, soonest first.
    async fn due_actions(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;
    /// Saves an action's delivery record (status, attempts, schedule) as
    /// revision `item.revision + 1`, only if the stored one is still at
    /// `item.revision`; otherwise `Conflict` and nothing is written.
    async fn save_action(&self, item: &OutboxItem) -> Result<(), StoreError>;
    async fn action(&self, tenant: &TenantId, id: &ActionId) -> Result<Option<OutboxItem>, StoreError>;
    /// Queues an item no contact commit carries (a stored id-only webhook
    /// event), only if no action has its id: `Ok(false)` when one does,
    /// so a redelivered event is queued once.
    async fn queue_action(&self, item: &OutboxItem) -> Result<bool, StoreError>;
    /// A tenant's actions, newest first, optionally of one status.
    async fn actions(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// Sets a record aside: saves its quarantine entry (`Quarantined::again`
    /// over an earlier one) and takes the record out of the due-work index
    /// up to `entry.last_at` (a contact's expiry row, an action's delivery
    /// row), so the sweeper stops picking it. The record itself is left as
    /// it is, for a repair.
    async fn quarantine(&self, entry: &Quarantined) -> Result<(), StoreError>;
    /// Every record set aside, of every tenant, up to `limit`.
    async fn quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, StoreError>;
    /// Forgets a quarantine entry (a repair released the record).
    async fn release(&self, tenant: &TenantId, kind: QuarantineKind, key: &str) -> Result<(), StoreError>;
    /// The contact's stored state as plain JSON, whether or not it still
    /// reads as a `ContactState`: what a repair salvages from.
    async fn contact_document(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<Option<serde_json::Value>, StoreError>;
    /// Drops every index row of the contact (its leaderboard rows and its
    /// expiry row, whatever scores they were written under), so that a
    /// state committed next with no `before` indexes it afresh.
    async fn drop_contact_indexes(&self, tenant: &TenantId, contact: &ContactId) -> Result<(), StoreError>;

    /// Adds `count` to the tenant's tally of webhook events of a kind
    /// scorehook does not map (`<provider>:<kind>`).
    async fn count_unmapped(&self, tenant: &TenantId, kind: &str, count: u64) -> Result<(), StoreError>;
    /// The tenant's tallies of unmapped webhook events, by kind.
    async fn unmapped(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError>;

    /// Takes `key` if no one has: `Ok(true)` for the first caller only,
    /// across every process on the store. A key names its own period (an
    /// operator alert's tenant, cause and hour); after `until` the store
    /// may forget it (DynamoDB's TTL).
    async fn claim(&self, key: &str, until: DateTime<Utc>) -> Result<bool, StoreError>;
}
