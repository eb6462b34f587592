//! Score triggers saved with `apply_to_existing`: the subjects (contacts,
//! or deals for a deal profile) already matching fire once, in bounded
//! batches driven by the sweeper like a recompute, each through the
//! subject's versioned commit. Without the flag only changes from now on
//! count.

use super::ingest::Committed;
use super::recompute::RECOMPUTE_BATCH;
use super::{Service, ServiceError};
use crate::engine;
use crate::engine::profile::SubjectKind;
use crate::ids::{ProfileId, TenantId, TriggerId};
use crate::metrics::{self, JobContact};
use crate::store::{trigger_job_key, JobStatus, RecomputeJob};

impl Service {
    /// Starts applying a saved score trigger to the subjects already matching it.
    pub(crate) async fn start_applying(
        &self,
        tenant: &TenantId,
        trigger: &TriggerId,
        profile: &ProfileId,
    ) -> Result<RecomputeJob, ServiceError> {
        self.start_job(tenant, profile, 0, Some(trigger.clone())).await
    }

    /// The apply-to-existing job of a trigger, if it ever had one.
    pub async fn existing_job(
        &self,
        tenant: &TenantId,
        trigger: &TriggerId,
    ) -> Result<Option<RecomputeJob>, ServiceError> {
        Ok(self.store.job(tenant, &trigger_job_key(trigger)).await?)
    }

    /// One batch of an apply-to-existing job.
    pub(crate) async fn advance_existing(&self, mut job: RecomputeJob) -> Result<JobStatus, ServiceError> {
        let Some(trigger_id) = job.trigger.clone() else { return self.finish(job, JobStatus::Cancelled).await };
        let Some(view) = self.tenant_view(&job.tenant).await? else {
            return self.finish(job, JobStatus::Cancelled).await;
        };
        // The trigger as stored, not as this process's cached catalog has it:
        // another instance may have saved it a moment ago.
        let stored = self.store.trigger(&job.tenant, &trigger_id).await?;
        let wanted = stored
            .filter(|r| r.spec.enabled && r.spec.apply_to_existing && r.spec.score_profile() == Some(&job.profile));
        let Some(record) = wanted else {
            // Deleted, disabled, or saved since without the flag or on another profile.
            return self.finish(job, JobStatus::Cancelled).await;
        };
        let kind = self.profile(&job.tenant, &job.profile).await.map(|p| p.subject()).unwrap_or_default();
        let mut catalog = view.catalog_of(kind).clone();
        catalog.triggers.retain(|t| t.id != trigger_id);
        catalog.triggers.push(record.spec.compile(&trigger_id)?);
        let catalog = &catalog;
        let subjects = self.store.contacts(&job.tenant, job.after.as_ref(), RECOMPUTE_BATCH).await?;
        for subject in subjects.iter().filter(|s| SubjectKind::of(s) == kind) {
            let started = job.started_at;
            let committed = self
                .commit_when(view.record.provider, &job.tenant, subject, |state, now| {
                    engine::fire_existing(catalog, state, &trigger_id, started, now)
                })
                .await;
            let outcome = match committed {
                Ok(Some(Committed::Done(outcome))) => {
                    job.contacts_changed += 1;
                    tracing::info!(tenant = %job.tenant, trigger = %trigger_id, subject = %subject,
                        actions = outcome.actions.len(), "trigger applied to an existing subject");
                    JobContact::Changed
                }
                Ok(_) => JobContact::Unchanged,
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
        job.after = subjects.last().cloned().or(job.after);
        if subjects.len() < RECOMPUTE_BATCH {
            return self.finish(job, JobStatus::Done).await;
        }
        self.save_progress(job).await
    }
}
