//! Items of the single table: keys, index attributes and the codec between
//! domain types and `AttributeValue` maps. See `docs/data-model.md`.
//!
//! Each domain record travels as JSON in `doc` (one codec shared with the
//! embedded store); everything a key, index, condition or TTL needs is a
//! top-level attribute of its own.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::capacity::Item;
use crate::engine::ledger::{LedgerEntry, ScoreState};
use crate::ids::{ActionId, ContactId, EventId, ProfileId, TenantId, TriggerId};
use crate::outbox::{ActionStatus, OutboxItem};
use crate::store::keys::{sortable_millis, sortable_score};
use crate::store::sealing::Sealer;
use crate::store::{JobStatus, RecomputeJob, StoreError};
use crate::tenant::TenantRecord;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const DOC: &str = "doc";
pub const VERSION: &str = "version";
pub const TTL: &str = "ttl";
pub const STATUS: &str = "status";
/// A record's save counter (actions, jobs, tenants), the condition of every save after the first.
pub const REVISION: &str = "revision";
/// GSI `by_score`: a tenant's contacts in one profile, by score.
pub const BY_SCORE: &str = "by_score";
pub const LB_PK: &str = "lb_pk";
pub const LB_SK: &str = "lb_sk";
/// GSI `action_log`: a tenant's actions in firing order.
pub const ACTION_LOG: &str = "action_log";
pub const LOG_PK: &str = "log_pk";
pub const LOG_SK: &str = "log_sk";
/// GSI `due`: work due at an instant (action deliveries now; expiries and deadlines later).
pub const DUE: &str = "due";
pub const DUE_PK: &str = "due_pk";
pub const DUE_SK: &str = "due_sk";
/// GSI `contacts`: a tenant's contacts by id (a recompute walks them).
pub const CONTACTS: &str = "contacts";
pub const CT_PK: &str = "ct_pk";
pub const CT_SK: &str = "ct_sk";
/// The `due` index partition of running recompute jobs.
pub const JOB_PARTITION: &str = "DUE#JOB";
/// The `due` index partition of action deliveries (sharding it is a later scale step).
pub const DUE_PARTITION: &str = "DUE";
/// The `due` index partition of contacts whose points expire.
pub const EXPIRY_PARTITION: &str = "DUE#EXPIRY";

pub const SK_TENANT: &str = "TENANT";
pub const SK_STATE: &str = "STATE";
pub const SK_EVENT: &str = "EVENT";
pub const SK_ACTION: &str = "ACTION";
pub const SK_PROFILE_PREFIX: &str = "PROFILE#";
pub const SK_TRIGGER_PREFIX: &str = "TRIGGER#";
pub const SK_SCORE_PREFIX: &str = "SCORE#";
pub const SK_LEDGER_PREFIX: &str = "LEDGER#";
pub const SK_HISTORY_PREFIX: &str = "HIST#";
pub const SK_JOB_PREFIX: &str = "JOB#";
pub const SK_UNMAPPED_PREFIX: &str = "KIND#";

pub fn tenant_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}")
}

pub fn contact_pk(tenant: &TenantId, contact: &ContactId) -> String {
    format!("T#{tenant}#C#{contact}")
}

pub fn event_pk(tenant: &TenantId, event: &EventId) -> String {
    format!("T#{tenant}#E#{event}")
}

/// The partition of a tenant's unmapped-event tallies (apart from the
/// tenant's own, which every configuration read queries whole).
pub fn unmapped_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#U")
}

pub fn action_pk(tenant: &TenantId, action: &ActionId) -> String {
    format!("T#{tenant}#A#{action}")
}

pub fn leaderboard_pk(tenant: &TenantId, profile: &ProfileId) -> String {
    format!("T#{tenant}#P#{profile}")
}

/// `<sortable score>#<contact>`: the leaderboard's order, ties by contact id.
pub fn leaderboard_sk(score: crate::engine::points::Points, contact: &ContactId) -> String {
    format!("{}#{contact}", sortable_score(score))
}

pub fn contacts_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#CONTACTS")
}

pub fn job_sk(job_key: &str) -> String {
    format!("{SK_JOB_PREFIX}{job_key}")
}

pub fn action_log_pk(tenant: &TenantId) -> String {
    format!("T#{tenant}#ACTIONS")
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn key(pk: String, sk: impl Into<String>) -> Item {
    Item::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

pub fn profile_sk(profile: &ProfileId) -> String {
    format!("{SK_PROFILE_PREFIX}{profile}")
}

pub fn trigger_sk(trigger: &TriggerId) -> String {
    format!("{SK_TRIGGER_PREFIX}{trigger}")
}

pub fn score_sk(profile: &ProfileId) -> String {
    format!("{SK_SCORE_PREFIX}{profile}")
}

/// A record stored as JSON under `doc`, with its key.
pub fn doc_item<T: Serialize>(pk: String, sk: impl Into<String>, record: &T) -> Result<Item, StoreError> {
    let mut item = key(pk, sk);
    let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))?;
    item.insert(DOC.to_owned(), s(json));
    Ok(item)
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(StoreError::Corrupt(format!("item without string attribute {name}"))),
    }
}

pub fn decode<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, DOC)?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// TTL attribute value: whole epoch seconds.
pub fn ttl(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp().max(0))
}

/// The leaderboard row of one contact's score in one profile.
pub fn score_item(tenant: &TenantId, contact: &ContactId, profile: &ProfileId, score: &ScoreState) -> Item {
    let mut item = key(contact_pk(tenant, contact), score_sk(profile));
    item.insert(LB_PK.to_owned(), s(leaderboard_pk(tenant, profile)));
    item.insert(LB_SK.to_owned(), s(leaderboard_sk(score.total, contact)));
    item.insert("score".to_owned(), s(score.total.to_string()));
    if let Some(at) = score.updated_at {
        item.insert("updated_at".to_owned(), s(at.to_rfc3339()));
    }
    item
}

/// One commit's ledger entries in one item, keyed by the first entry's seq.
/// Its TTL is the latest expiry, and only when every entry expires.
pub fn ledger_item(
    tenant: &TenantId,
    contact: &ContactId,
    entries: &[LedgerEntry],
) -> Result<Option<Item>, StoreError> {
    let Some(first) = entries.first() else { return Ok(None) };
    let sk = format!("{SK_LEDGER_PREFIX}{:020}", first.seq);
    let mut item = doc_item(contact_pk(tenant, contact), sk, &entries)?;
    let expiries: Option<Vec<DateTime<Utc>>> = entries.iter().map(|e| e.expires_at).collect();
    if let Some(latest) = expiries.and_then(|all| all.into_iter().max()) {
        item.insert(TTL.to_owned(), ttl(latest));
    }
    Ok(Some(item))
}

/// A tenant record (its secrets sealed), with its revision as the condition of the next save.
pub fn tenant_item(sealer: &Sealer, tenant: &TenantRecord) -> Result<Item, StoreError> {
    let mut item = doc_item(tenant_pk(&tenant.id), SK_TENANT, &sealer.seal(tenant)?)?;
    item.insert(REVISION.to_owned(), n(tenant.revision));
    Ok(item)
}

/// A recompute (or apply-to-existing) job, with due-index attributes while it runs.
pub fn job_item(job: &RecomputeJob) -> Result<Item, StoreError> {
    let mut item = doc_item(tenant_pk(&job.tenant), job_sk(&job.key()), job)?;
    item.insert(REVISION.to_owned(), n(job.revision));
    if job.status == JobStatus::Running {
        item.insert(DUE_PK.to_owned(), s(JOB_PARTITION));
        item.insert(
            DUE_SK.to_owned(),
            s(format!("{}#{}#{}", sortable_millis(job.started_at), tenant_pk(&job.tenant), job.key())),
        );
    }
    Ok(item)
}

/// How long a finished (`done` or `skipped`) action stays listed before
/// DynamoDB's TTL reclaims it. Dead and failed actions stay until replayed:
/// they need someone. Its event's dedupe marker outlives it (history
/// retention, 90 days by default), so an expired action is never fired again.
pub const FINISHED_ACTION_DAYS: i64 = 30;

/// An action with its log, (while due) due-index attributes, and once
/// finished a `ttl` [`FINISHED_ACTION_DAYS`] after its last attempt.
pub fn action_item(item: &OutboxItem) -> Result<Item, StoreError> {
    let tenant = &item.tenant;
    let id = &item.action.id;
    let mut row = doc_item(action_pk(tenant, id), SK_ACTION, item)?;
    let status = serde_json::to_value(item.status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    row.insert(STATUS.to_owned(), s(status));
    row.insert(REVISION.to_owned(), n(item.revision));
    row.insert(LOG_PK.to_owned(), s(action_log_pk(tenant)));
    row.insert(LOG_SK.to_owned(), s(format!("{}#{id}", sortable_millis(item.action.fired_at))));
    if let Some(at) = item.next_attempt_at.filter(|_| item.status.is_due_kind()) {
        row.insert(DUE_PK.to_owned(), s(DUE_PARTITION));
        row.insert(DUE_SK.to_owned(), s(format!("{}#{tenant}#{id}", sortable_millis(at))));
    }
    if matches!(item.status, ActionStatus::Done | ActionStatus::Skipped) {
        let finished = item.attempts.last().map_or(item.action.fired_at, |a| a.at);
        let keep = chrono::TimeDelta::days(FINISHED_ACTION_DAYS);
        row.insert(TTL.to_owned(), ttl(finished.checked_add_signed(keep).unwrap_or(DateTime::<Utc>::MAX_UTC)));
    }
    Ok(row)
}
