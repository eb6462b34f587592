//! A store whose writes of webhook data can be made to fail on demand, as
//! an unreachable DynamoDB would: it wraps a real embedded store and
//! answers `Unavailable` from `commit`, `queue_action` and `count_unmapped`
//! while `failing` is set. It also counts `tenant_config` reads, and a test
//! holding `config_gate` keeps them waiting (so it can line up concurrent
//! ones without sleeping). Everything else passes through. It stands in for
//! our own storage port, not for the AWS SDK.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use scorehook::engine::interaction::Recorded;
use scorehook::engine::ledger::{ContactState, LedgerEntry};
use scorehook::engine::profile::ProfileRecord;
use scorehook::ids::{ActionId, ContactId, ProfileId, TenantId, TriggerId};
use scorehook::outbox::{ActionStatus, OutboxItem};
use scorehook::store::{
    Commit, LeaderboardPage, LeaderboardQuery, QuarantineKind, Quarantined, RecomputeJob, Store, StoreError,
    TenantConfig, TriggerRecord,
};
use scorehook::tenant::TenantRecord;

pub struct FailingStore {
    pub inner: Arc<dyn Store>,
    pub failing: AtomicBool,
    config_reads: AtomicUsize,
    /// Write-locked by a test to hold every `tenant_config` read (after it is counted).
    pub config_gate: tokio::sync::RwLock<()>,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
            config_reads: AtomicUsize::new(0),
            config_gate: Default::default(),
        }
    }

    /// How many times `tenant_config` was called.
    pub fn config_reads(&self) -> usize {
        self.config_reads.load(Ordering::SeqCst)
    }

    pub fn fail_writes(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the test made the store unreachable".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FailingStore {
    async fn tenant_config(&self, id: &TenantId) -> Result<Option<TenantConfig>, StoreError> {
        self.config_reads.fetch_add(1, Ordering::SeqCst);
        let _open = self.config_gate.read().await;
        self.inner.tenant_config(id).await
    }
    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        self.inner.put_tenant(tenant).await
    }
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.inner.tenant(id).await
    }
    async fn put_profile(&self, tenant: &TenantId, profile: &ProfileRecord) -> Result<(), StoreError> {
        self.inner.put_profile(tenant, profile).await
    }
    async fn profile(&self, tenant: &TenantId, id: &ProfileId) -> Result<Option<ProfileRecord>, StoreError> {
        self.inner.profile(tenant, id).await
    }
    async fn profiles(&self, tenant: &TenantId) -> Result<Vec<ProfileRecord>, StoreError> {
        self.inner.profiles(tenant).await
    }
    async fn put_trigger(&self, tenant: &TenantId, trigger: &TriggerRecord) -> Result<(), StoreError> {
        self.inner.put_trigger(tenant, trigger).await
    }
    async fn trigger(&self, tenant: &TenantId, id: &TriggerId) -> Result<Option<TriggerRecord>, StoreError> {
        self.inner.trigger(tenant, id).await
    }
    async fn triggers(&self, tenant: &TenantId) -> Result<Vec<TriggerRecord>, StoreError> {
        self.inner.triggers(tenant).await
    }
    async fn contact(&self, tenant: &TenantId, contact: &ContactId) -> Result<Option<ContactState>, StoreError> {
        self.inner.contact(tenant, contact).await
    }
    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.commit(commit).await
    }
    async fn ledger(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.inner.ledger(tenant, contact, limit).await
    }
    async fn leaderboard(&self, tenant: &TenantId, query: &LeaderboardQuery) -> Result<LeaderboardPage, StoreError> {
        self.inner.leaderboard(tenant, query).await
    }
    async fn history(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<Recorded>, StoreError> {
        self.inner.history(tenant, contact).await
    }
    async fn contacts(
        &self,
        tenant: &TenantId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<ContactId>, StoreError> {
        self.inner.contacts(tenant, after, limit).await
    }
    async fn save_job(&self, job: &RecomputeJob) -> Result<(), StoreError> {
        self.inner.save_job(job).await
    }
    async fn job(&self, tenant: &TenantId, key: &str) -> Result<Option<RecomputeJob>, StoreError> {
        self.inner.job(tenant, key).await
    }
    async fn running_jobs(&self, limit: usize) -> Result<Vec<RecomputeJob>, StoreError> {
        self.inner.running_jobs(limit).await
    }
    async fn due_contacts(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, ContactId)>, StoreError> {
        self.inner.due_contacts(now, limit).await
    }
    async fn due_actions(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.inner.due_actions(now, limit).await
    }
    async fn save_action(&self, item: &OutboxItem) -> Result<(), StoreError> {
        self.inner.save_action(item).await
    }
    async fn action(&self, tenant: &TenantId, id: &ActionId) -> Result<Option<OutboxItem>, StoreError> {
        self.inner.action(tenant, id).await
    }
    async fn queue_action(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.queue_action(item).await
    }
    async fn actions(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        self.inner.actions(tenant, status, limit).await
    }
    async fn count_unmapped(&self, tenant: &TenantId, kind: &str, count: u64) -> Result<(), StoreError> {
        self.check()?;
        self.inner.count_unmapped(tenant, kind, count).await
    }
    async fn unmapped(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        self.inner.unmapped(tenant).await
    }
    async fn claim(&self, key: &str, until: chrono::DateTime<chrono::Utc>) -> Result<bool, StoreError> {
        self.inner.claim(key, until).await
    }
    async fn quarantine(&self, entry: &Quarantined) -> Result<(), StoreError> {
        self.inner.quarantine(entry).await
    }
    async fn quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, StoreError> {
        self.inner.quarantined(limit).await
    }
    async fn release(&self, tenant: &TenantId, kind: QuarantineKind, key: &str) -> Result<(), StoreError> {
        self.inner.release(tenant, kind, key).await
    }
    async fn contact_document(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.inner.contact_document(tenant, contact).await
    }
    async fn drop_contact_indexes(&self, tenant: &TenantId, contact: &ContactId) -> Result<(), StoreError> {
        self.inner.drop_contact_indexes(tenant, contact).await
    }
}
