//! Metrics: every name scorehook records, declared once here with its kind,
//! unit, labels and meaning; the small typed helpers the call sites use; and
//! the one exporter a process installs.
//!
//! Call sites never spell a metric name: they call `webhook_refused`,
//! `action`, `crm_answer`… (the `metrics` facade underneath is a no-op until
//! a recorder is installed, as in most tests). The exporter is chosen by the
//! entry point, once per process:
//! - `scorehook serve` installs `prometheus`: `GET /metrics` renders it.
//! - the Lambda functions install `emf`: each invocation ends with CloudWatch
//!   Embedded Metric Format lines on stdout, which CloudWatch Logs turns into
//!   metrics in the `scorehook` namespace (no API call).
//!
//! Labels are bounded sets: the provider (six, or `unknown`), an outcome or
//! reason from the enums below, and a CRM's HTTP status. No metric is labelled
//! by tenant: that would make a series (and on CloudWatch a billed custom
//! metric) per tenant; per-tenant questions are the admin API's.

pub mod emf;
pub mod prometheus;

pub use emf::install_emf;
pub use prometheus::install_prometheus;

use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

use crate::outbox::ActionStatus;
use crate::service::ingest::IngestReport;
use crate::store::{JobStatus, RecomputeJob};
use crate::tenant::Provider;

/// What a metric is, as the facade and the exporters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric's declaration.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    /// The label keys it carries, in the order the call site gives them.
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

pub const WEBHOOK_EVENTS: Metric = Metric {
    name: "scorehook_webhook_events_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["provider", "outcome"],
    help: "Events in webhook requests answered 2xx, by outcome: accepted (scored, or stored for resolution through \
           the CRM's API), duplicate (seen before, not scored again), unmapped (a kind scorehook does not map)",
};

pub const WEBHOOK_REFUSED: Metric = Metric {
    name: "scorehook_webhook_refused_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["provider", "reason"],
    help: "Webhook requests answered with an error, by reason: unknown_provider, unknown_tenant, signature, \
           too_large, malformed, invalid, unavailable (the store failed: the CRM redelivers), internal",
};

pub const WEBHOOK_RATE_LIMITED: Metric = Metric {
    name: "scorehook_webhook_rate_limited_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["provider"],
    help: "Authentic webhook requests answered 429 by the per-tenant rate limit",
};

pub const SCORING: Metric = Metric {
    name: "scorehook_scoring_seconds",
    kind: Kind::Histogram,
    unit: Unit::Seconds,
    labels: &[],
    help: "Time to score one webhook interaction: read the contact, evaluate, commit, with any conflict retries",
};

pub const COMMITS: Metric = Metric {
    name: "scorehook_commits_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &[],
    help: "Contact (or deal) commits: score changes with their ledger entries and fired actions, from webhooks, \
           expiries, adjustments, recomputes and triggers applied to existing subjects",
};

pub const COMMIT_CONFLICTS: Metric = Metric {
    name: "scorehook_commit_conflicts_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &[],
    help: "Commits refused because another writer changed the contact first; each is re-read and retried",
};

pub const ACTIONS: Metric = Metric {
    name: "scorehook_actions_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["provider", "outcome"],
    help: "Outbox actions (and id-only events stored for resolution) by the tenant's provider: fired (queued by a \
           commit), then each attempt's outcome: delivered, failed (retried later), dead (out of attempts or \
           refused for good), skipped (deliberately not sent, at firing or delivery)",
};

pub const OUTBOX_LAG: Metric = Metric {
    name: "scorehook_outbox_lag_seconds",
    kind: Kind::Gauge,
    unit: Unit::Seconds,
    labels: &[],
    help: "Age of the oldest due action when the sweeper last read the due index (0 when none was due)",
};

pub const OUTBOX_WAIT: Metric = Metric {
    name: "scorehook_outbox_wait_seconds",
    kind: Kind::Histogram,
    unit: Unit::Seconds,
    labels: &[],
    help: "The same age, one value per read of the due index: its Maximum over a period sees a backlog that a \
           later read found drained (the gauge keeps only the last)",
};

pub const JOBS: Metric = Metric {
    name: "scorehook_jobs_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["kind", "status"],
    help: "Background jobs (kind: recompute after a publish, apply_existing for a trigger saved with \
           apply_to_existing) by status: started, done, cancelled (including replaced by a newer one); running = \
           started - done - cancelled",
};

pub const JOB_CONTACTS: Metric = Metric {
    name: "scorehook_job_contacts_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["kind", "outcome"],
    help: "Contacts (or deals) a job went through, by outcome: changed, unchanged, skipped (its record is set aside)",
};

pub const CRM_CALL: Metric = Metric {
    name: "scorehook_crm_call_seconds",
    kind: Kind::Histogram,
    unit: Unit::Seconds,
    labels: &["provider"],
    help: "Time from sending a call to a CRM's API (or a signed POST to a receiver: provider generic) to its \
           answer read",
};

pub const CRM_ANSWERS: Metric = Metric {
    name: "scorehook_crm_answers_total",
    kind: Kind::Counter,
    unit: Unit::Count,
    labels: &["provider", "status"],
    help: "CRM API (and receiver) answers by HTTP status; unreachable when no answer came (connection, timeout)",
};

/// Every metric, in the order the README lists them.
pub const ALL: &[Metric] = &[
    WEBHOOK_EVENTS,
    WEBHOOK_REFUSED,
    WEBHOOK_RATE_LIMITED,
    SCORING,
    COMMITS,
    COMMIT_CONFLICTS,
    ACTIONS,
    OUTBOX_LAG,
    OUTBOX_WAIT,
    JOBS,
    JOB_CONTACTS,
    CRM_CALL,
    CRM_ANSWERS,
];

/// The declaration of `name`, if scorehook records it.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

/// Hands every name's unit and meaning to the installed recorder (the
/// Prometheus `# HELP` lines).
fn describe() {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => describe_counter!(metric.name, metric.unit, metric.help),
            Kind::Gauge => describe_gauge!(metric.name, metric.unit, metric.help),
            Kind::Histogram => describe_histogram!(metric.name, metric.unit, metric.help),
        }
    }
}

/// The exporter this process installed, once.
enum Exporter {
    Prometheus(::metrics_exporter_prometheus::PrometheusHandle),
    Emf(emf::EmfRecorder),
    /// Another recorder was set first (an embedder's): ours stays out of its way.
    Foreign,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Installs `make`'s recorder as the process's, unless one is already set.
fn install(make: impl FnOnce() -> (Exporter, Box<dyn ::metrics::Recorder + Send + Sync>)) -> &'static Exporter {
    EXPORTER.get_or_init(|| {
        let (exporter, recorder) = make();
        match ::metrics::set_global_recorder(recorder) {
            Ok(()) => {
                describe();
                exporter
            }
            Err(_) => {
                tracing::warn!("a metrics recorder was installed before scorehook's; scorehook exports no metrics");
                Exporter::Foreign
            }
        }
    })
}

/// The reasons a webhook request is answered with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownProvider,
    /// An unknown tenant, or one of another provider (answered like a bad signature).
    UnknownTenant,
    /// The provider's authenticity check failed.
    Signature,
    TooLarge,
    Malformed,
    Invalid,
    /// The store failed or the contact was too busy: 503 (429 for HighLevel), and the CRM redelivers.
    Unavailable,
    Internal,
    /// The tenant's webhook rate limit (counted apart: `scorehook_webhook_rate_limited_total`).
    RateLimited,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownProvider => "unknown_provider",
            Refusal::UnknownTenant => "unknown_tenant",
            Refusal::Signature => "signature",
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::Invalid => "invalid",
            Refusal::Unavailable => "unavailable",
            Refusal::Internal => "internal",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

/// `provider`'s label: its name, or `unknown` for a path that names none.
fn provider_label(provider: Option<Provider>) -> &'static str {
    provider.map_or("unknown", Provider::as_str)
}

/// A webhook request answered 2xx: its events by outcome.
pub fn webhook_answered(provider: Provider, report: &IngestReport) {
    let provider = provider.as_str();
    for (outcome, count) in
        [("accepted", report.accepted), ("duplicate", report.duplicates), ("unmapped", report.unmapped)]
    {
        if count > 0 {
            counter!(WEBHOOK_EVENTS.name, "provider" => provider, "outcome" => outcome).increment(count as u64);
        }
    }
}

/// A webhook request answered with an error (a 429 of the rate limit is counted apart).
pub fn webhook_refused(provider: Option<Provider>, reason: Refusal) {
    let provider = provider_label(provider);
    match reason {
        Refusal::RateLimited => counter!(WEBHOOK_RATE_LIMITED.name, "provider" => provider).increment(1),
        _ => counter!(WEBHOOK_REFUSED.name, "provider" => provider, "reason" => reason.as_str()).increment(1),
    }
}

/// One webhook interaction scored (or found a duplicate) in `elapsed`.
pub fn scored(elapsed: Duration) {
    histogram!(SCORING.name).record(elapsed.as_secs_f64());
}

pub fn committed() {
    counter!(COMMITS.name).increment(1);
}

pub fn commit_conflict() {
    counter!(COMMIT_CONFLICTS.name).increment(1);
}

/// What happened to an outbox action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    Fired,
    Delivered,
    Failed,
    Dead,
    Skipped,
}

impl ActionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Fired => "fired",
            ActionOutcome::Delivered => "delivered",
            ActionOutcome::Failed => "failed",
            ActionOutcome::Dead => "dead",
            ActionOutcome::Skipped => "skipped",
        }
    }

    /// The outcome an attempt recorded as `status`; `None` for `pending`, which no attempt records.
    pub fn of_attempt(status: ActionStatus) -> Option<Self> {
        match status {
            ActionStatus::Pending => None,
            ActionStatus::Done => Some(ActionOutcome::Delivered),
            ActionStatus::Failed => Some(ActionOutcome::Failed),
            ActionStatus::Dead => Some(ActionOutcome::Dead),
            ActionStatus::Skipped => Some(ActionOutcome::Skipped),
        }
    }
}

/// `count` actions of a tenant of `provider` (`None`: the tenant is gone or unreadable) came to `outcome`.
pub fn actions(provider: Option<Provider>, outcome: ActionOutcome, count: usize) {
    if count > 0 {
        counter!(ACTIONS.name, "provider" => provider_label(provider), "outcome" => outcome.as_str())
            .increment(count as u64);
    }
}

/// The age of the oldest due action (zero when none is due).
pub fn outbox_lag(lag: Duration) {
    gauge!(OUTBOX_LAG.name).set(lag.as_secs_f64());
    histogram!(OUTBOX_WAIT.name).record(lag.as_secs_f64());
}

/// A job's kind label: a recompute, or a trigger applied to existing subjects.
fn job_kind(job: &RecomputeJob) -> &'static str {
    match job.trigger {
        None => "recompute",
        Some(_) => "apply_existing",
    }
}

/// A job saved as running.
pub fn job_started(job: &RecomputeJob) {
    counter!(JOBS.name, "kind" => job_kind(job), "status" => "started").increment(1);
}

/// A job saved as done or cancelled, or (`Running`) replaced while running by a newer one.
pub fn job_ended(job: &RecomputeJob, status: JobStatus) {
    let status = match status {
        JobStatus::Done => "done",
        JobStatus::Cancelled | JobStatus::Running => "cancelled",
    };
    counter!(JOBS.name, "kind" => job_kind(job), "status" => status).increment(1);
}

/// What a job did with one contact (or deal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobContact {
    Changed,
    Unchanged,
    /// Its stored record could not be read or committed, and is set aside.
    Skipped,
}

pub fn job_contact(job: &RecomputeJob, outcome: JobContact) {
    let outcome = match outcome {
        JobContact::Changed => "changed",
        JobContact::Unchanged => "unchanged",
        JobContact::Skipped => "skipped",
    };
    counter!(JOB_CONTACTS.name, "kind" => job_kind(job), "outcome" => outcome).increment(1);
}

/// A call to `provider`'s API took `elapsed` and was answered `status` (`None`: no answer came).
pub fn crm_answer(provider: &'static str, status: Option<u16>, elapsed: Duration) {
    histogram!(CRM_CALL.name, "provider" => provider).record(elapsed.as_secs_f64());
    let status = status.map_or_else(|| "unreachable".to_owned(), |s| s.to_string());
    counter!(CRM_ANSWERS.name, "provider" => provider, "status" => status).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_declared_once_and_named_by_the_prometheus_conventions() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a name is declared twice");
        // EMF: at most 100 metric definitions per directive; one line never holds more than every name.
        assert!(ALL.len() <= 100);
        for metric in ALL {
            assert!(metric.name.starts_with("scorehook_"), "{}", metric.name);
            let suffix = match (metric.kind, metric.unit) {
                (Kind::Counter, _) => "_total",
                (_, Unit::Seconds) => "_seconds",
                (kind, unit) => panic!("{}: give a {kind:?} of {unit:?} its unit suffix", metric.name),
            };
            assert!(metric.name.ends_with(suffix), "{} should end with {suffix}", metric.name);
            assert!(metric.labels.len() <= 30, "EMF takes at most 30 dimensions");
            assert!(!metric.help.is_empty());
        }
    }
}
