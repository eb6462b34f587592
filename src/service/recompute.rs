//! Retroactive publish: a newly published profile version is applied to the
//! stored history of every contact of the tenant, in bounded batches.
//!
//! Publishing saves a `RecomputeJob`; the sweeper (a background loop
//! locally, the scheduled function on Lambda) advances running jobs one
//! batch of contacts at a time and saves the cursor after each, so a job
//! survives restarts and continues across invocations. Each contact is
//! rebuilt through the same versioned commit as a webhook, under the same
//! per-contact queue, so ingestion goes on meanwhile and loses nothing. The
//! contacts of one batch are rebuilt concurrently.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::ingest::{conflict_backoff, MAX_CONFLICT_RETRIES};
use super::scores::LEDGER_VIEW_LIMIT;
use super::{Service, ServiceError};
use crate::engine::ledger::since_last_reset;
use crate::engine::profile::Profile;
use crate::engine::replay::recompute;
use crate::engine::Catalog;
use crate::ids::{ContactId, ProfileId, TenantId, TriggerId};
use crate::metrics::{self, JobContact};
use crate::outbox::Step;
use crate::store::{JobStatus, RecomputeJob, StoreError};
use crate::tenant::Provider;

/// Contacts one job advances by per sweep step.
pub const RECOMPUTE_BATCH: usize = 50;
/// Jobs advanced per sweep step.
const JOBS_PER_STEP: usize = 4;

impl Service {
    /// Starts (or restarts, for a newer version) the recompute of a profile.
    pub(crate) async fn start_recompute(
        &self,
        tenant: &TenantId,
        profile: &ProfileId,
        version: u32,
    ) -> Result<RecomputeJob, ServiceError> {
        self.start_job(tenant, profile, version, None).await
    }

    /// Saves a running job (a recompute, or with `trigger` an
    /// apply-to-existing) over any earlier one under the same key.
    pub(crate) async fn start_job(
        &self,
        tenant: &TenantId,
        profile: &ProfileId,
        version: u32,
        trigger: Option<TriggerId>,
    ) -> Result<RecomputeJob, ServiceError> {
        let fresh = RecomputeJob {
            tenant: tenant.clone(),
            profile: profile.clone(),
            version,
            status: JobStatus::Running,
            after: None,
            contacts_done: 0,
            contacts_changed: 0,
            contacts_skipped: 0,
            contacts_total: None,
            started_at: self.clock.now(),
            finished_at: None,
            revision: 0,
            trigger,
        };
        let key = fresh.key();
        for _ in 0..3 {
            let before = self.store.job(tenant, &key).await?;
            let revision = before.as_ref().map_or(0, |job| job.revision);
            let job = RecomputeJob { revision, ..fresh.clone() };
            match self.store.save_job(&job).await {
                Ok(()) => {
                    metrics::job_started(&job);
                    if let Some(replaced) = before.filter(|b| b.status == JobStatus::Running) {
                        metrics::job_ended(&replaced, JobStatus::Running);
                    }
                    self.outbox_bell.notify_one();
                    tracing::info!(tenant = %tenant, job = %key, version, "job started");
                    return Ok(RecomputeJob { revision: revision + 1, ..job });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Busy)
    }

    pub async fn recompute_job(
        &self,
        tenant: &TenantId,
        profile: &ProfileId,
    ) -> Result<Option<RecomputeJob>, ServiceError> {
        Ok(self.store.job(tenant, profile.as_str()).await?)
    }

    /// Advances each running job by one batch; `More` while any still runs.
    /// A job that fails this step is tried again on the next; the others go on.
    pub async fn advance_recomputes(&self) -> Result<Step, ServiceError> {
        let jobs = self.store.running_jobs(JOBS_PER_STEP).await?;
        let mut more = jobs.len() == JOBS_PER_STEP;
        let mut failed = None;
        for job in jobs {
            let (tenant, key) = (job.tenant.clone(), job.key());
            match self.advance(job).await {
                Ok(status) => more |= status == JobStatus::Running,
                Err(e) => {
                    tracing::warn!(tenant = %tenant, job = %key, error = %e, "job step failed; retried on the next step");
                    failed = Some(e);
                }
            }
        }
        match failed {
            // Every job failed this step: say so, so the caller backs off.
            Some(e) if !more => Err(e),
            _ => Ok(if more { Step::More } else { Step::Drained }),
        }
    }

    async fn advance(&self, mut job: RecomputeJob) -> Result<JobStatus, ServiceError> {
        if job.trigger.is_some() {
            return self.advance_existing(job).await;
        }
        let record = self.store.profile(&job.tenant, &job.profile).await?;
        let live = record.as_ref().and_then(|r| r.scoring()).filter(|v| v.version == job.version);
        let Some(live) = live else {
            // Archived, deleted or superseded: a newer publish starts its own job.
            return self.finish(job, JobStatus::Cancelled).await;
        };
        let profile = match live.spec.compile(&job.profile, live.version) {
            Ok(profile) => profile,
            Err(e) => {
                // It cannot score, so there is nothing to apply: the job ends instead of blocking a slot.
                tracing::error!(tenant = %job.tenant, profile = %job.profile, error = %e, "the published profile does not compile; recompute cancelled");
                return self.finish(job, JobStatus::Cancelled).await;
            }
        };
        let Some(view) = self.tenant_view(&job.tenant).await? else {
            return self.finish(job, JobStatus::Cancelled).await;
        };
        let mut catalog = view.catalog_of(profile.subject).clone();
        catalog.profiles.retain(|p| p.id != profile.id);
        catalog.profiles.push(profile.clone());

        if job.contacts_total.is_none() {
            job.contacts_total = Some(self.store.count_subjects(&job.tenant, profile.subject).await?);
        }
        let contacts = self.store.contacts(&job.tenant, job.after.as_ref(), RECOMPUTE_BATCH).await?;
        // The batch's contacts at once, each under its own queue: their
        // commits then share the store's transactions (the embedded store's
        // group commit: one `fsync` for many) instead of waiting one by one.
        let (catalog, profile) = (Arc::new(catalog), Arc::new(profile));
        let mut batch = JoinSet::new();
        let provider = view.record.provider;
        for contact in contacts.iter().filter(|c| profile.scores(c)) {
            let (service, catalog, profile) = (self.clone(), Arc::clone(&catalog), Arc::clone(&profile));
            let (tenant, contact) = (job.tenant.clone(), contact.clone());
            batch
                .spawn(async move { service.recompute_contact(&catalog, &profile, provider, &tenant, &contact).await });
        }
        while let Some(done) = batch.join_next().await {
            let failed = |e: tokio::task::JoinError| StoreError::Unavailable(format!("a recompute task failed: {e}"));
            let outcome = match done.map_err(failed)? {
                Ok(true) => {
                    job.contacts_changed += 1;
                    JobContact::Changed
                }
                Ok(false) => JobContact::Unchanged,
                // Set aside where it was read or committed; the job goes past it.
                Err(e) if e.is_record_fault() => {
                    job.contacts_skipped += 1;
                    JobContact::Skipped
                }
                Err(e) => return Err(e),
            };
            metrics::job_contact(&job, outcome);
            job.contacts_done += 1;
        }
        job.after = contacts.last().cloned().or(job.after);
        if contacts.len() < RECOMPUTE_BATCH {
            tracing::info!(tenant = %job.tenant, profile = %job.profile, version = job.version,
                contacts = job.contacts_done, changed = job.contacts_changed, "recompute done");
            return self.finish(job, JobStatus::Done).await;
        }
        self.save_progress(job).await
    }

    pub(crate) async fn finish(&self, job: RecomputeJob, status: JobStatus) -> Result<JobStatus, ServiceError> {
        self.save_progress(RecomputeJob { status, finished_at: Some(self.clock.now()), ..job }).await
    }

    /// Saves a job's progress; a job replaced meanwhile (a newer publish) is
    /// left alone (and was counted as cancelled when it was replaced).
    pub(crate) async fn save_progress(&self, job: RecomputeJob) -> Result<JobStatus, ServiceError> {
        match self.store.save_job(&job).await {
            Ok(()) => {
                if job.status != JobStatus::Running {
                    metrics::job_ended(&job, job.status);
                }
                Ok(job.status)
            }
            Err(StoreError::Conflict) => Ok(JobStatus::Cancelled),
            Err(e) => Err(e.into()),
        }
    }

    /// Rebuilds one contact's score in `profile` from its history; whether it changed.
    async fn recompute_contact(
        &self,
        catalog: &Catalog,
        profile: &Profile,
        provider: Provider,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<bool, ServiceError> {
        let _queued = self.contact_lock(tenant, contact).lock().await;
        let cause = format!("recompute:{}:{}:{contact}", profile.id, profile.version);
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            let Some(state) = self.read_contact(tenant, contact, "recompute").await? else { return Ok(false) };
            let history = self.store.history(tenant, contact).await?;
            let ledger = self.store.ledger(tenant, contact, LEDGER_VIEW_LIMIT).await?;
            let mine: Vec<_> = ledger.into_iter().filter(|e| e.profile == profile.id).collect();
            let now = self.clock.now();
            let Some(outcome) = recompute(catalog, &state, profile, &history, since_last_reset(&mine), &cause, now)
            else {
                return Ok(false);
            };
            match self.try_commit(provider, tenant, &state, None, now, outcome).await? {
                Some(_) => return Ok(true),
                None => tokio::time::sleep(conflict_backoff(attempt)).await,
            }
        }
        Err(ServiceError::Busy)
    }
}
