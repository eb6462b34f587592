//! The DynamoDB adapter: the production store, one table (`docs/data-model.md`).
//!
//! Hot path per interaction: one consistent `GetItem` of the contact's
//! state, then one `TransactWriteItems` holding the dedupe marker (must not
//! exist), the state (must still be at the version read), the changed
//! leaderboard rows, one ledger item and the outbox items. Every call is
//! counted, and each commit's write units are computed from item sizes (see
//! `capacity`) besides what DynamoDB reports.

pub mod capacity;
pub mod data_key;
pub mod items;
mod quarantine;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnConsumedCapacity, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, TimeDelta, Utc};

use super::keys::{parse_sortable_score, sortable_millis, sortable_score};
use super::sealing::{read_plain, Sealer};
use super::{
    Commit, LeaderboardPage, LeaderboardQuery, LeaderboardRow, Order, QuarantineKind, Quarantined, RecomputeJob, Store,
    StoreError, TenantConfig, TriggerRecord, DEAL_MARKER,
};
use crate::engine::interaction::Recorded;
use crate::engine::ledger::{ContactState, LedgerEntry};
use crate::engine::profile::ProfileRecord;
use crate::ids::{ActionId, ContactId, ProfileId, TenantId, TriggerId};
use crate::outbox::{ActionStatus, OutboxItem};
use crate::tenant::TenantRecord;
use capacity::{item_size, read_half_units, transactional_write_units, Item};
use items::{
    action_item, action_log_pk, action_pk, contact_pk, decode, doc_item, event_pk, get_s, key, leaderboard_pk,
    leaderboard_sk, ledger_item, n, profile_sk, s, score_item, score_sk, tenant_pk, trigger_sk, ttl, ACTION_LOG,
    BY_SCORE, DUE, DUE_PARTITION, DUE_PK, DUE_SK, EXPIRY_PARTITION, LB_PK, LB_SK, LOG_PK, PK, REVISION, SK, SK_ACTION,
    SK_EVENT, SK_LEDGER_PREFIX, SK_PROFILE_PREFIX, SK_STATE, SK_TENANT, SK_TRIGGER_PREFIX, TTL, VERSION,
};
use items::{
    contacts_pk, job_item, job_sk, tenant_item, unmapped_pk, CONTACTS, CT_PK, CT_SK, JOB_PARTITION, SK_HISTORY_PREFIX,
    SK_UNMAPPED_PREFIX,
};

/// DynamoDB's limit on items per transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// How long a dedupe marker and the contact's history item are kept (TTL):
/// a CRM redelivering after this would score again, and a recompute no
/// longer sees the interaction.
pub const DEFAULT_EVENT_RETENTION: TimeDelta = TimeDelta::days(90);
/// The environment variable that sets the history retention, in days.
pub const HISTORY_DAYS_VAR: &str = "SCOREHOOK_HISTORY_DAYS";

/// `SCOREHOOK_HISTORY_DAYS`'s value: whole days from 1 to 3650.
pub fn history_retention(raw: &str) -> Result<TimeDelta, String> {
    match raw.trim().parse::<i64>() {
        Ok(days @ 1..=3650) => Ok(TimeDelta::days(days)),
        _ => Err(format!("{HISTORY_DAYS_VAR} must be a whole number of days from 1 to 3650, not {raw:?}")),
    }
}
/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;

/// Calls and capacity since the store was built.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: AtomicU64,
    read_half_units: AtomicU64,
    write_units: AtomicU64,
    reported_write_units: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub calls: u64,
    /// Read capacity units computed from item sizes, in halves (eventual reads cost half).
    pub read_half_units: u64,
    /// Write capacity units computed from item sizes.
    pub write_units: u64,
    /// Write capacity units DynamoDB reported (0 on servers that report none, like moto).
    pub reported_write_units: u64,
}

impl Metrics {
    fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self, bytes: usize, consistent: bool) {
        self.read_half_units.fetch_add(read_half_units(bytes, consistent), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            read_half_units: self.read_half_units.load(Ordering::Relaxed),
            write_units: self.write_units.load(Ordering::Relaxed),
            reported_write_units: self.reported_write_units.load(Ordering::Relaxed),
        }
    }
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    metrics: Arc<Metrics>,
    event_retention: TimeDelta,
    /// Seals tenant secrets; without one, tenant records stored before
    /// sealing still read, but no tenant can be saved.
    sealer: Option<Arc<Sealer>>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

/// The condition of a conditional put.
enum PutIf {
    /// No item has the key yet.
    Absent,
    /// The stored item is at this revision.
    Revision(u64),
    /// No item has the key yet, or the stored one has no revision (it was
    /// written before its kind of record had one).
    Unrevised,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self { client, table, metrics: Arc::default(), event_retention: DEFAULT_EVENT_RETENTION, sealer: None }
    }

    /// Seals tenant secrets with `sealer` (a data key from KMS, or a key file).
    pub fn with_sealer(mut self, sealer: Sealer) -> Self {
        self.sealer = Some(Arc::new(sealer));
        self
    }

    fn sealer(&self) -> Result<&Sealer, StoreError> {
        self.sealer.as_deref().ok_or_else(|| {
            StoreError::Unavailable("no key to seal tenant secrets with (SCOREHOOK_KMS_KEY_ID or a key file)".into())
        })
    }

    /// A stored tenant document as a record, its secrets opened.
    fn open_tenant(&self, id: &TenantId, item: &Item) -> Result<TenantRecord, StoreError> {
        let doc: serde_json::Value = decode(item)?;
        match &self.sealer {
            Some(sealer) => sealer.open(id, doc),
            None => read_plain(id, doc),
        }
    }

    /// A client from the environment's AWS configuration; `endpoint` points
    /// it at DynamoDB Local or moto (and then a missing region defaults to
    /// us-east-1, which local servers accept).
    pub async fn connect(table: impl Into<String>, endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = endpoint {
            let region = aws_config::meta::region::RegionProviderChain::default_provider().or_else("us-east-1");
            loader = loader.endpoint_url(endpoint).region(region);
        }
        Self::new(Client::new(&loader.load().await), table)
    }

    /// Keeps dedupe markers and history for `retention` instead of the default 90 days.
    pub fn with_history_retention(mut self, retention: TimeDelta) -> Self {
        self.event_retention = retention;
        self
    }

    /// Keeps them for `retention` when given, else the default.
    pub fn with_history_retention_if(self, retention: Option<TimeDelta>) -> Self {
        match retention {
            Some(retention) => self.with_history_retention(retention),
            None => self,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Creates the table with its indexes and TTL if it is missing (local endpoints only).
    pub async fn ensure_table(&self) -> Result<bool, StoreError> {
        schema::ensure_table(&self.client, &self.table).await
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        self.metrics.call();
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        self.metrics.read(out.item().map_or(0, item_size), true);
        Ok(out.item().cloned())
    }

    async fn get_doc<T: serde::de::DeserializeOwned>(&self, key: Item) -> Result<Option<T>, StoreError> {
        self.get(key).await?.map(|item| decode(&item)).transpose()
    }

    /// Writes `item` only if `when` holds for the stored one: `Ok(false)`
    /// when it does not, and nothing is written.
    async fn put_if(&self, item: Item, when: PutIf) -> Result<bool, StoreError> {
        self.metrics.call();
        self.metrics.write_units.fetch_add(item_size(&item).div_ceil(1024).max(1) as u64, Ordering::Relaxed);
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let request = match when {
            PutIf::Absent => {
                request.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", PK)
            }
            PutIf::Unrevised => {
                request.condition_expression("attribute_not_exists(#rev)").expression_attribute_names("#rev", REVISION)
            }
            PutIf::Revision(revision) => request
                .condition_expression("#rev = :rev")
                .expression_attribute_names("#rev", REVISION)
                .expression_attribute_values(":rev", n(revision)),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.metrics.call();
        self.metrics.write_units.fetch_add(item_size(&item).div_ceil(1024).max(1) as u64, Ordering::Relaxed);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(unavailable)?;
        Ok(())
    }

    /// Runs a query page by page until `limit` items (or the end).
    async fn query(
        &self,
        build: impl Fn() -> QueryFluentBuilder,
        limit: Option<usize>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.metrics.call();
            let mut request = build().set_exclusive_start_key(start.take());
            if let Some(limit) = limit {
                request = request.limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX));
            }
            let out = request.send().await.map_err(unavailable)?;
            self.metrics.read(out.items().iter().map(item_size).sum(), consistent);
            found.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(next) if limit.is_none_or(|l| found.len() < l) => start = Some(next.clone()),
                _ => return Ok(found),
            }
        }
    }

    /// Items of one partition whose sort key starts with `prefix`.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let build = || {
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
        };
        self.query(build, None, true).await
    }

    /// The keys in one partition of the `due` index that are due at `now`.
    fn due_query(&self, partition: &str, now: DateTime<Utc>) -> QueryFluentBuilder {
        // '#' < '$': every "<millis>#…" of that millisecond sorts below "<millis>$".
        self.client
            .query()
            .table_name(&self.table)
            .index_name(DUE)
            .key_condition_expression("#p = :p AND #s < :end")
            .expression_attribute_names("#p", DUE_PK)
            .expression_attribute_names("#s", DUE_SK)
            .expression_attribute_values(":p", s(partition))
            .expression_attribute_values(":end", s(format!("{}$", sortable_millis(now))))
    }

    /// Reads base items by key, consistently, in the order asked; missing ones are skipped.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found: Vec<Item> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending = chunk.to_vec();
            for attempt in 0..8u32 {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending.clone()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("cannot build a batch read: {e}")))?;
                self.metrics.call();
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(unavailable)?;
                let items = out.responses().and_then(|r| r.get(&self.table)).cloned().unwrap_or_default();
                self.metrics.read(items.iter().map(item_size).sum(), true);
                found.extend(items);
                pending = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable("batch read left keys unprocessed".into()));
            }
        }
        let position = |item: &Item| keys.iter().position(|k| k.get(PK) == item.get(PK) && k.get(SK) == item.get(SK));
        found.sort_by_key(|item| position(item));
        Ok(found)
    }

    /// The transaction's items, in an order the error mapping relies on:
    /// the dedupe marker first (if any), then the state.
    fn commit_items(&self, commit: &Commit<'_>) -> Result<(Vec<TransactWriteItem>, u64), StoreError> {
        let (tenant, before) = (commit.tenant, commit.before);
        let contact = &commit.state.contact_id;
        let mut writes: Vec<(Item, Option<Guard>)> = Vec::new();
        let mut state = commit.state.clone();
        state.version = commit.expected_version + 1;
        let mut history = None;
        if let Some(interaction) = commit.interaction {
            let expires = ttl(commit.received_at + self.event_retention);
            let marker = serde_json::json!({"received_at": commit.received_at, "contact_id": contact});
            let marker_pk = match commit.state.deal() {
                Some(_) => format!("{}#{DEAL_MARKER}", event_pk(tenant, &interaction.id)),
                None => event_pk(tenant, &interaction.id),
            };
            let mut item = doc_item(marker_pk, SK_EVENT, &marker)?;
            item.insert(TTL.to_owned(), expires.clone());
            writes.push((item, Some(Guard::MustNotExist)));
            let recorded = Recorded { interaction: interaction.clone(), received_at: commit.received_at };
            let sk = format!("{SK_HISTORY_PREFIX}{:020}", state.version);
            let mut item = doc_item(contact_pk(tenant, contact), sk, &recorded)?;
            item.insert(TTL.to_owned(), expires);
            history = Some(item);
        }
        let mut state_item = doc_item(contact_pk(tenant, contact), SK_STATE, &state)?;
        state_item.insert(VERSION.to_owned(), n(state.version));
        state_item.insert(CT_PK.to_owned(), s(contacts_pk(tenant)));
        state_item.insert(CT_SK.to_owned(), s(contact.as_str()));
        if let Some(at) = state.next_change() {
            state_item.insert(DUE_PK.to_owned(), s(EXPIRY_PARTITION));
            state_item.insert(DUE_SK.to_owned(), s(format!("{}#{}", sortable_millis(at), contact_pk(tenant, contact))));
        }
        let guard = match commit.expected_version {
            0 => Guard::MustNotExist,
            v => Guard::Version(v),
        };
        writes.push((state_item, Some(guard)));
        if let Some(item) = history {
            writes.push((item, None));
        }

        let mut deletes = Vec::new();
        let profiles: BTreeSet<&ProfileId> =
            before.into_iter().flat_map(|b| b.scores.keys()).chain(state.scores.keys()).collect();
        for profile in profiles {
            let old = before.and_then(|b| b.scores.get(profile));
            match state.scores.get(profile) {
                Some(new) if old.is_none_or(|o| o.total != new.total || o.updated_at != new.updated_at) => {
                    writes.push((score_item(tenant, contact, profile, new), None));
                }
                Some(_) => {}
                None => deletes.push(key(contact_pk(tenant, contact), score_sk(profile))),
            }
        }
        if let Some(item) = ledger_item(tenant, contact, commit.ledger)? {
            writes.push((item, None));
        }
        for action in commit.actions {
            writes.push((action_item(action)?, None));
        }
        if writes.len() + deletes.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::TooLarge(format!(
                "{} items, over DynamoDB's {MAX_TRANSACTION_ITEMS} per transaction",
                writes.len() + deletes.len()
            )));
        }

        let mut units = 0;
        let mut transaction = Vec::with_capacity(writes.len() + deletes.len());
        for (item, condition) in writes {
            units += transactional_write_units(&item);
            let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
            put = match condition {
                Some(Guard::Version(version)) => put
                    .condition_expression("#version = :version")
                    .expression_attribute_names("#version", VERSION)
                    .expression_attribute_values(":version", n(version)),
                Some(Guard::MustNotExist) => {
                    put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", PK)
                }
                None => put,
            };
            let put = put.build().map_err(|e| StoreError::Unavailable(format!("cannot build a put: {e}")))?;
            transaction.push(TransactWriteItem::builder().put(put).build());
        }
        for key in deletes {
            units += transactional_write_units(&key);
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .build()
                .map_err(|e| StoreError::Unavailable(format!("cannot build a delete: {e}")))?;
            transaction.push(TransactWriteItem::builder().delete(delete).build());
        }
        Ok((transaction, units))
    }
}

/// The condition on a put inside a commit.
enum Guard {
    /// The dedupe marker, or the state of a contact never stored.
    MustNotExist,
    /// The state, still at the version that was read.
    Version(u64),
}

/// Maps a cancelled transaction to what the service can act on.
fn cancelled(error: &TransactWriteItemsError, has_marker: bool) -> Option<StoreError> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = error else {
        return None;
    };
    let codes: Vec<Option<&str>> = cancelled.cancellation_reasons().iter().map(|r| r.code()).collect();
    let failed = |index: usize| codes.get(index).copied().flatten() == Some("ConditionalCheckFailed");
    let state_index = usize::from(has_marker);
    if has_marker && failed(0) {
        return Some(StoreError::Duplicate);
    }
    if failed(state_index) || codes.contains(&Some("TransactionConflict")) {
        return Some(StoreError::Conflict);
    }
    None
}

#[async_trait]
impl Store for DynamoStore {
    async fn tenant_config(&self, id: &TenantId) -> Result<Option<TenantConfig>, StoreError> {
        let build = || {
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(tenant_pk(id)))
                .consistent_read(true)
        };
        let mut tenant = None;
        let (mut profiles, mut triggers) = (Vec::new(), Vec::new());
        for item in self.query(build, None, true).await? {
            let sk = get_s(&item, SK)?;
            if sk == SK_TENANT {
                tenant = Some(self.open_tenant(id, &item)?);
            } else if sk.starts_with(SK_PROFILE_PREFIX) {
                profiles.push(decode(&item)?);
            } else if sk.starts_with(SK_TRIGGER_PREFIX) {
                triggers.push(decode(&item)?);
            }
        }
        Ok(tenant.map(|tenant| TenantConfig { tenant, profiles, triggers }))
    }

    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        let item = tenant_item(self.sealer()?, &TenantRecord { revision: tenant.revision + 1, ..tenant.clone() })?;
        let when = match tenant.revision {
            0 => PutIf::Unrevised,
            revision => PutIf::Revision(revision),
        };
        self.put_if(item, when).await?.then_some(()).ok_or(StoreError::Conflict)
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.get(key(tenant_pk(id), SK_TENANT)).await?.map(|item| self.open_tenant(id, &item)).transpose()
    }

    async fn put_profile(&self, tenant: &TenantId, profile: &ProfileRecord) -> Result<(), StoreError> {
        self.put(doc_item(tenant_pk(tenant), profile_sk(&profile.id), profile)?).await
    }

    async fn profile(&self, tenant: &TenantId, id: &ProfileId) -> Result<Option<ProfileRecord>, StoreError> {
        self.get_doc(key(tenant_pk(tenant), profile_sk(id))).await
    }

    async fn profiles(&self, tenant: &TenantId) -> Result<Vec<ProfileRecord>, StoreError> {
        self.query_prefix(tenant_pk(tenant), SK_PROFILE_PREFIX).await?.iter().map(decode).collect()
    }

    async fn put_trigger(&self, tenant: &TenantId, trigger: &TriggerRecord) -> Result<(), StoreError> {
        self.put(doc_item(tenant_pk(tenant), trigger_sk(&trigger.id), trigger)?).await
    }

    async fn trigger(&self, tenant: &TenantId, id: &TriggerId) -> Result<Option<TriggerRecord>, StoreError> {
        self.get_doc(key(tenant_pk(tenant), trigger_sk(id))).await
    }

    async fn triggers(&self, tenant: &TenantId) -> Result<Vec<TriggerRecord>, StoreError> {
        self.query_prefix(tenant_pk(tenant), SK_TRIGGER_PREFIX).await?.iter().map(decode).collect()
    }

    async fn contact(&self, tenant: &TenantId, contact: &ContactId) -> Result<Option<ContactState>, StoreError> {
        self.get_doc(key(contact_pk(tenant, contact), SK_STATE)).await
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let has_marker = commit.interaction.is_some();
        let (transaction, units) = self.commit_items(&commit)?;
        let count = transaction.len();
        self.metrics.call();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => {
                let reported: f64 = out.consumed_capacity().iter().filter_map(|c| c.capacity_units()).sum();
                self.metrics.write_units.fetch_add(units, Ordering::Relaxed);
                self.metrics.reported_write_units.fetch_add(reported.ceil() as u64, Ordering::Relaxed);
                tracing::debug!(items = count, wcu_computed = units, wcu_reported = reported, "dynamodb commit");
                Ok(())
            }
            Err(e) => match e.as_service_error().and_then(|s| cancelled(s, has_marker)) {
                Some(mapped) => Err(mapped),
                None => Err(unavailable(e)),
            },
        }
    }

    async fn ledger(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let pk = contact_pk(tenant, contact);
        let mut entries: Vec<LedgerEntry> = Vec::new();
        let mut start: Option<Item> = None;
        // Newest batches first, until enough entries are read.
        loop {
            self.metrics.call();
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(SK_LEDGER_PREFIX))
                .scan_index_forward(false)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            self.metrics.read(out.items().iter().map(item_size).sum(), true);
            for item in out.items() {
                let batch: Vec<LedgerEntry> = decode(item)?;
                entries.extend(batch.into_iter().rev());
                if entries.len() >= limit {
                    entries.truncate(limit);
                    entries.reverse();
                    return Ok(entries);
                }
            }
            match out.last_evaluated_key() {
                Some(next) => start = Some(next.clone()),
                None => {
                    entries.reverse();
                    return Ok(entries);
                }
            }
        }
    }

    async fn history(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<Recorded>, StoreError> {
        self.query_prefix(contact_pk(tenant, contact), SK_HISTORY_PREFIX).await?.iter().map(decode).collect()
    }

    async fn contacts(
        &self,
        tenant: &TenantId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<ContactId>, StoreError> {
        let build = || {
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(CONTACTS)
                .expression_attribute_names("#p", CT_PK)
                .expression_attribute_values(":p", s(contacts_pk(tenant)));
            match after {
                Some(after) => query
                    .key_condition_expression("#p = :p AND #s > :after")
                    .expression_attribute_names("#s", CT_SK)
                    .expression_attribute_values(":after", s(after.as_str())),
                None => query.key_condition_expression("#p = :p"),
            }
        };
        self.query(build, Some(limit), false)
            .await?
            .iter()
            .map(|item| ContactId::parse_subject(get_s(item, CT_SK)?).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    async fn save_job(&self, job: &RecomputeJob) -> Result<(), StoreError> {
        let item = job_item(&RecomputeJob { revision: job.revision + 1, ..job.clone() })?;
        let when = match job.revision {
            0 => PutIf::Absent,
            revision => PutIf::Revision(revision),
        };
        self.put_if(item, when).await?.then_some(()).ok_or(StoreError::Conflict)
    }

    async fn job(&self, tenant: &TenantId, job_key: &str) -> Result<Option<RecomputeJob>, StoreError> {
        self.get_doc(key(tenant_pk(tenant), job_sk(job_key))).await
    }

    async fn running_jobs(&self, limit: usize) -> Result<Vec<RecomputeJob>, StoreError> {
        let far = DateTime::<Utc>::MAX_UTC;
        let build = || self.due_query(JOB_PARTITION, far);
        let keys: Vec<Item> = self
            .query(build, Some(limit), false)
            .await?
            .into_iter()
            .map(|k| k.into_iter().filter(|(name, _)| name == PK || name == SK).collect())
            .collect();
        // The index lags: keep only what the base items still say is running.
        self.batch_get(keys)
            .await?
            .iter()
            .map(decode::<RecomputeJob>)
            .filter(|job| job.as_ref().map_or(true, |j| j.status == super::JobStatus::Running))
            .collect()
    }

    async fn leaderboard(&self, tenant: &TenantId, query: &LeaderboardQuery) -> Result<LeaderboardPage, StoreError> {
        // '#' < '$', so "<score>$" is above every "<score>#<contact>".
        let low = query.min.map_or_else(|| "0".repeat(16), sortable_score);
        let high = format!("{}$", query.max.map_or_else(|| "f".repeat(16), sortable_score));
        let start = query.after.as_ref().map(|(score, contact)| {
            let mut start = key(contact_pk(tenant, contact), score_sk(&query.profile));
            start.insert(LB_PK.to_owned(), s(leaderboard_pk(tenant, &query.profile)));
            start.insert(LB_SK.to_owned(), s(leaderboard_sk(*score, contact)));
            start
        });
        let mut rows = Vec::with_capacity(query.limit + 1);
        let mut next_start = start;
        while rows.len() <= query.limit {
            self.metrics.call();
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_SCORE)
                .key_condition_expression("#p = :p AND #s BETWEEN :low AND :high")
                .expression_attribute_names("#p", LB_PK)
                .expression_attribute_names("#s", LB_SK)
                .expression_attribute_values(":p", s(leaderboard_pk(tenant, &query.profile)))
                .expression_attribute_values(":low", s(low.clone()))
                .expression_attribute_values(":high", s(high.clone()))
                .scan_index_forward(query.order == Order::Asc)
                .limit(i32::try_from(query.limit + 1 - rows.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(next_start.take())
                .send()
                .await
                .map_err(unavailable)?;
            self.metrics.read(out.items().iter().map(item_size).sum(), false);
            for item in out.items() {
                let sort_key = get_s(item, LB_SK)?;
                let (score, contact) = sort_key
                    .split_once('#')
                    .ok_or_else(|| StoreError::Corrupt(format!("leaderboard key {sort_key:?}")))?;
                let updated_at = match item.get("updated_at") {
                    Some(AttributeValue::S(at)) => DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc)),
                    _ => None,
                };
                rows.push(LeaderboardRow {
                    contact_id: ContactId::parse_subject(contact).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    score: parse_sortable_score(score)?,
                    updated_at,
                });
            }
            match out.last_evaluated_key() {
                Some(key) => next_start = Some(key.clone()),
                None => break,
            }
        }
        Ok(LeaderboardPage::cut(rows, query.limit))
    }

    async fn due_contacts(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, ContactId)>, StoreError> {
        let build = || self.due_query(EXPIRY_PARTITION, now);
        let corrupt = |text: &str| StoreError::Corrupt(format!("expiry index key {text:?}"));
        self.query(build, Some(limit), false)
            .await?
            .iter()
            .map(|item| {
                let pk = get_s(item, PK)?;
                let (tenant, contact) =
                    pk.strip_prefix("T#").and_then(|r| r.split_once("#C#")).ok_or_else(|| corrupt(pk))?;
                Ok((
                    TenantId::parse(tenant).map_err(|_| corrupt(pk))?,
                    ContactId::parse_subject(contact).map_err(|_| corrupt(pk))?,
                ))
            })
            .collect()
    }

    async fn due_actions(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let build = || self.due_query(DUE_PARTITION, now);
        // Twice the page: index hits that turn out stale (already delivered)
        // are dropped below, and a full page must still mean "more may be due".
        let keys: Vec<Item> = self
            .query(build, Some(limit.saturating_mul(2)), false)
            .await?
            .into_iter()
            .map(|k| k.into_iter().filter(|(name, _)| name == PK || name == SK).collect())
            .collect();
        // The index is eventually consistent: re-read each item and keep what is still due.
        let mut due: Vec<OutboxItem> = Vec::new();
        for row in self.batch_get(keys).await? {
            match decode::<OutboxItem>(&row) {
                Ok(item) if item.status.is_due_kind() && item.next_attempt_at.is_some_and(|at| at <= now) => {
                    due.push(item)
                }
                Ok(_) => {}
                // An item that cannot be read is set aside, so the rest are delivered.
                Err(error) => self.quarantine_unreadable_action(&row, &error, now).await?,
            }
        }
        due.sort_by_key(|item| item.next_attempt_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn save_action(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let row = action_item(&OutboxItem { revision: item.revision + 1, ..item.clone() })?;
        self.put_if(row, PutIf::Revision(item.revision)).await?.then_some(()).ok_or(StoreError::Conflict)
    }

    async fn action(&self, tenant: &TenantId, id: &ActionId) -> Result<Option<OutboxItem>, StoreError> {
        self.get_doc(key(action_pk(tenant, id), SK_ACTION)).await
    }

    async fn queue_action(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        self.put_if(action_item(item)?, PutIf::Absent).await
    }

    async fn quarantine(&self, entry: &Quarantined) -> Result<(), StoreError> {
        self.put_quarantined(entry).await
    }

    async fn quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, StoreError> {
        self.list_quarantined(limit).await
    }

    async fn release(&self, tenant: &TenantId, kind: QuarantineKind, id: &str) -> Result<(), StoreError> {
        self.remove_quarantined(tenant, kind, id).await
    }

    async fn contact_document(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.contact_json(tenant, contact).await
    }

    async fn drop_contact_indexes(&self, tenant: &TenantId, contact: &ContactId) -> Result<(), StoreError> {
        self.remove_contact_indexes(tenant, contact).await
    }

    async fn count_unmapped(&self, tenant: &TenantId, kind: &str, count: u64) -> Result<(), StoreError> {
        self.metrics.call();
        self.metrics.write_units.fetch_add(1, Ordering::Relaxed);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(unmapped_pk(tenant), format!("{SK_UNMAPPED_PREFIX}{kind}"))))
            .update_expression("ADD #count :n")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":n", n(count))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn claim(&self, key: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut item = items::key(format!("CLAIM#{key}"), "CLAIM");
        item.insert(TTL.to_owned(), items::ttl(until));
        self.put_if(item, PutIf::Absent).await
    }

    async fn unmapped(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut found = BTreeMap::new();
        for item in self.query_prefix(unmapped_pk(tenant), SK_UNMAPPED_PREFIX).await? {
            let kind = get_s(&item, SK)?.strip_prefix(SK_UNMAPPED_PREFIX).unwrap_or_default().to_owned();
            let count = item.get("count").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
            found.insert(kind, count);
        }
        Ok(found)
    }

    async fn actions(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.metrics.call();
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(ACTION_LOG)
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", LOG_PK)
                .expression_attribute_values(":p", s(action_log_pk(tenant)))
                .scan_index_forward(false)
                .limit(i32::try_from(BATCH_GET_MAX).unwrap_or(100))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            self.metrics.read(out.items().iter().map(item_size).sum(), false);
            let keys: Vec<Item> = out
                .items()
                .iter()
                .map(|k| {
                    k.iter()
                        .filter(|(name, _)| *name == PK || *name == SK)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .collect();
            for item in self.batch_get(keys).await? {
                let item: OutboxItem = decode(&item)?;
                if status.is_none_or(|s| s == item.status) {
                    found.push(item);
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
            match out.last_evaluated_key() {
                Some(next) => start = Some(next.clone()),
                None => return Ok(found),
            }
        }
    }
}
