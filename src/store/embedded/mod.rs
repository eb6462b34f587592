//! The embedded store: one redb file under the data directory.
//!
//! redb is a pure-Rust, single-file, ACID key-value store: every write
//! transaction is atomic and, committed with `Durability::Immediate`, on disk
//! before `commit` returns, so a process killed with SIGKILL loses nothing it
//! acknowledged. Tables map composite string keys (parts joined by U+001F,
//! which no id may contain) to JSON values. redb is synchronous: point reads
//! run in place (they hit redb's page cache), scans on tokio's blocking
//! pool, and writes on one writer thread that commits concurrent writes
//! together (`writer`: group commit).
//!
//! The data directory is created 0700 and the file kept 0600; tenant
//! secrets are sealed with the key in `secrets.key` beside it (0600, made
//! on first open: back it up with the file, which is unreadable without it).

mod quarantine;
mod writer;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::keys::{parse_sortable_score, sortable_millis, sortable_score};
use super::sealing::{private_dir, Sealer};
use super::{
    Commit, JobStatus, LeaderboardPage, LeaderboardQuery, LeaderboardRow, Order, QuarantineKind, Quarantined,
    RecomputeJob, Store, StoreError, TriggerRecord, DEAL_MARKER,
};
use crate::engine::interaction::Recorded;
use crate::engine::ledger::{ContactState, LedgerEntry, ScoreState};
use crate::engine::points::Points;
use crate::engine::profile::ProfileRecord;
use crate::ids::{ActionId, ContactId, ProfileId, TenantId, TriggerId};
use crate::outbox::{ActionStatus, OutboxItem};
use crate::tenant::TenantRecord;
pub use writer::CommitMode;
use writer::{Table, Tables, Writer};

/// tenant → TenantRecord
const TENANTS: Table = TableDefinition::new("tenants");
/// tenant·profile → ProfileRecord
const PROFILES: Table = TableDefinition::new("profiles");
/// tenant·trigger → TriggerRecord
const TRIGGERS: Table = TableDefinition::new("triggers");
/// tenant·contact → ContactState
const CONTACTS: Table = TableDefinition::new("contacts");
/// tenant·event → received_at: the dedupe marker.
const EVENTS: Table = TableDefinition::new("events");
/// tenant·contact·state version → Recorded: each contact's scoring history.
const HISTORY: Table = TableDefinition::new("history");
/// tenant·profile → RecomputeJob
const JOBS: Table = TableDefinition::new("jobs");
/// tenant·contact·seq → LedgerEntry
const LEDGER: Table = TableDefinition::new("ledger");
/// tenant·profile·sortable score·contact → updated_at: the leaderboard index.
const SCORES: Table = TableDefinition::new("scores");
/// tenant·action → OutboxItem
const OUTBOX: Table = TableDefinition::new("outbox");
/// due millis·tenant·action → (): what the executor should try next.
const OUTBOX_DUE: Table = TableDefinition::new("outbox_due");
/// tenant·fired millis·action → (): a tenant's delivery log, in firing order.
const OUTBOX_LOG: Table = TableDefinition::new("outbox_log");
/// next expiry millis·tenant·contact → (): contacts the sweeper must settle.
const EXPIRY_DUE: Table = TableDefinition::new("expiry_due");
/// tenant·kind → count: webhook events of kinds scorehook does not map.
const UNMAPPED: Table = TableDefinition::new("unmapped");
/// tenant·record kind·id → Quarantined: records set aside (`quarantine`).
const QUARANTINE: Table = TableDefinition::new("quarantine");
/// key → until: claims taken once (`Store::claim`: operator alerts' hours).
const CLAIMS: Table = TableDefinition::new("claims");
/// How many claims one new claim looks at for expired ones to forget.
const CLAIMS_SCANNED: usize = 64;

const ALL_TABLES: [Table; 16] = [
    TENANTS, PROFILES, TRIGGERS, CONTACTS, EVENTS, HISTORY, JOBS, LEDGER, SCORES, OUTBOX, OUTBOX_DUE, OUTBOX_LOG,
    EXPIRY_DUE, UNMAPPED, QUARANTINE, CLAIMS,
];

const SEP: &str = "\u{1f}";
/// The character after `SEP`: the exclusive end of a prefix range.
const AFTER_SEP: &str = "\u{20}";

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
    sealer: Arc<Sealer>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn unavailable(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Unavailable(e.into().to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The one field a commit's check needs, read without building the rest.
#[derive(serde::Deserialize)]
struct StoredVersion {
    version: u64,
}

/// An instant as the leaderboard rows keep it, and the event markers in the
/// same text (their value is only ever tested for presence).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct StoredInstant(#[serde(with = "crate::timestamp::option")] Option<DateTime<Utc>>);

/// The save counter of a record written with `put_at_revision` (tenants, jobs).
#[derive(serde::Deserialize)]
struct StoredRevision {
    #[serde(default)]
    revision: u64,
}

/// Whether any stored tenant record has sealed secrets.
fn holds_sealed_tenants(db: &Database) -> Result<bool, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let table = txn.open_table(TENANTS).map_err(unavailable)?;
    for row in table.iter().map_err(unavailable)? {
        let (_, value) = row.map_err(unavailable)?;
        let doc: serde_json::Value = decode(value.value())?;
        if Sealer::is_sealed(&doc) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The store's file readable and writable by its owner only.
fn owner_only(file: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn key(parts: &[&str]) -> String {
    parts.join(SEP)
}

/// `[parts·, parts·\u{20})`: every key that extends `parts`.
fn prefix(parts: &[&str]) -> (String, String) {
    let base = key(parts);
    (format!("{base}{SEP}"), format!("{base}{AFTER_SEP}"))
}

fn score_key(tenant: &str, profile: &str, score: Points, contact: &str) -> String {
    key(&[tenant, profile, &sortable_score(score), contact])
}

fn due_key(item: &OutboxItem) -> Option<String> {
    let at = item.next_attempt_at.filter(|_| item.status.is_due_kind())?;
    Some(key(&[&sortable_millis(at), item.tenant.as_str(), item.action.id.as_str()]))
}

impl EmbeddedStore {
    /// Opens (or creates) `scorehook.redb` under `dir`, with group commit.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, CommitMode::Group)
    }

    /// Opens (or creates) `scorehook.redb` under `dir`, committing as `mode` says.
    pub fn open_with(dir: &Path, mode: CommitMode) -> Result<Self, StoreError> {
        private_dir(dir).map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let file = dir.join("scorehook.redb");
        let db = Database::create(&file).map_err(unavailable)?;
        owner_only(&file).map_err(|e| StoreError::Unavailable(format!("cannot restrict {}: {e}", file.display())))?;
        let txn = db.begin_write().map_err(unavailable)?;
        for table in ALL_TABLES {
            txn.open_table(table).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        let key_file = dir.join("secrets.key");
        // A new key would open none of the secrets already sealed: refuse
        // rather than start with every such tenant unreadable.
        if !key_file.exists() && holds_sealed_tenants(&db)? {
            return Err(StoreError::Unavailable(format!(
                "{} holds sealed tenant secrets but {} is missing: restore it from the backup of this data directory",
                file.display(),
                key_file.display()
            )));
        }
        let sealer = Arc::new(Sealer::from_key_file(&key_file)?);
        let db = Arc::new(db);
        Ok(Self { writer: Arc::new(Writer::start(Arc::clone(&db), mode)?), db, sealer })
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Write transactions committed or tried so far: with group commit,
    /// fewer than the writes (benchmarks and diagnostics read it).
    pub fn transactions(&self) -> u64 {
        self.writer.transactions()
    }

    /// Runs `work` in the writer's next transaction; answers once it is on disk.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(Box::new(work)).await
    }

    /// Writes `value` under `row` only if the stored value's `revision` is
    /// `expected` (0: nothing stored); else `Conflict`, and nothing is written.
    async fn put_at_revision(
        &self,
        table: Table,
        row: String,
        expected: u64,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.write(move |tables| {
            let rows = tables.open(table)?;
            let stored = rows.get(row.as_str()).map_err(unavailable)?;
            if stored.map(|v| decode::<StoredRevision>(v.value())).transpose()?.map_or(0, |s| s.revision) != expected {
                return Err(StoreError::Conflict);
            }
            rows.insert(row.as_str(), value.as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn put(&self, table: Table, key: String, value: Vec<u8>) -> Result<(), StoreError> {
        self.write(move |tables| {
            tables.open(table)?.insert(key.as_str(), value.as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// One key's value, read on the calling thread: a point read is a few
    /// page lookups, nearly always in redb's cache (a miss is one `pread`),
    /// cheaper than the thread switches of a hop to the blocking pool. Under
    /// load those switches were the largest single cost of a webhook in a
    /// profile; reading in place took them from 4.5 to 1.9 per webhook.
    /// Scans, which may read many pages, still hop.
    async fn get<T: DeserializeOwned>(&self, table: Table, key: String) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let table = txn.open_table(table).map_err(unavailable)?;
        let value = table.get(key.as_str()).map_err(unavailable)?;
        value.map(|v| decode(v.value())).transpose()
    }

    async fn scan<T: DeserializeOwned + Send + 'static>(
        &self,
        table: Table,
        parts: &[&str],
    ) -> Result<Vec<T>, StoreError> {
        let (start, end) = prefix(parts);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(table).map_err(unavailable)?;
            let range = table.range::<&str>(start.as_str()..end.as_str()).map_err(unavailable)?;
            range.map(|row| decode(row.map_err(unavailable)?.1.value())).collect()
        })
        .await
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn put_tenant(&self, tenant: &TenantRecord) -> Result<(), StoreError> {
        let (row, expected) = (tenant.id.to_string(), tenant.revision);
        let bytes = encode(&self.sealer.seal(&TenantRecord { revision: expected + 1, ..tenant.clone() })?)?;
        self.put_at_revision(TENANTS, row, expected, bytes).await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let stored: Option<serde_json::Value> = self.get(TENANTS, id.to_string()).await?;
        stored.map(|doc| self.sealer.open(id, doc)).transpose()
    }

    async fn put_profile(&self, tenant: &TenantId, profile: &ProfileRecord) -> Result<(), StoreError> {
        self.put(PROFILES, key(&[tenant.as_str(), profile.id.as_str()]), encode(profile)?).await
    }

    async fn profile(&self, tenant: &TenantId, id: &ProfileId) -> Result<Option<ProfileRecord>, StoreError> {
        self.get(PROFILES, key(&[tenant.as_str(), id.as_str()])).await
    }

    async fn profiles(&self, tenant: &TenantId) -> Result<Vec<ProfileRecord>, StoreError> {
        self.scan(PROFILES, &[tenant.as_str()]).await
    }

    async fn put_trigger(&self, tenant: &TenantId, trigger: &TriggerRecord) -> Result<(), StoreError> {
        self.put(TRIGGERS, key(&[tenant.as_str(), trigger.id.as_str()]), encode(trigger)?).await
    }

    async fn trigger(&self, tenant: &TenantId, id: &TriggerId) -> Result<Option<TriggerRecord>, StoreError> {
        self.get(TRIGGERS, key(&[tenant.as_str(), id.as_str()])).await
    }

    async fn triggers(&self, tenant: &TenantId) -> Result<Vec<TriggerRecord>, StoreError> {
        self.scan(TRIGGERS, &[tenant.as_str()]).await
    }

    async fn contact(&self, tenant: &TenantId, contact: &ContactId) -> Result<Option<ContactState>, StoreError> {
        self.get(CONTACTS, key(&[tenant.as_str(), contact.as_str()])).await
    }

    async fn commit(&self, commit: Commit<'_>) -> Result<(), StoreError> {
        let tenant = commit.tenant.to_string();
        let contact = commit.state.contact_id.to_string();
        let mut state = commit.state.clone();
        state.version = commit.expected_version + 1;
        let state_bytes = encode(&state)?;
        let expected = commit.expected_version;
        let event = commit
            .interaction
            .map(|i| {
                let recorded = Recorded { interaction: i.clone(), received_at: commit.received_at };
                let history_key = key(&[&tenant, &contact, &format!("{:020}", state.version)]);
                let marker = match commit.state.deal() {
                    Some(_) => key(&[&tenant, i.id.as_str(), DEAL_MARKER]),
                    None => key(&[&tenant, i.id.as_str()]),
                };
                Ok::<_, StoreError>((
                    marker,
                    encode(&StoredInstant(Some(commit.received_at)))?,
                    history_key,
                    encode(&recorded)?,
                ))
            })
            .transpose()?;
        let ledger = commit
            .ledger
            .iter()
            .map(|e| Ok((key(&[&tenant, &contact, &format!("{:020}", e.seq)]), encode(e)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let actions = commit
            .actions
            .iter()
            .map(|item| {
                let id = item.action.id.as_str();
                let log = key(&[&tenant, &sortable_millis(item.action.fired_at), id]);
                Ok((key(&[&tenant, id]), encode(item)?, due_key(item), log))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // The index rows of the state as read (`before`): the version check
        // below proves it is the stored one, so the writer need not decode it.
        // A row whose score and time did not change is left as it is.
        let before_scores = commit.before.map(|before| &before.scores);
        let unchanged = |profile: &ProfileId, score: &ScoreState| {
            before_scores
                .and_then(|scores| scores.get(profile))
                .is_some_and(|old| old.total == score.total && old.updated_at == score.updated_at)
        };
        let score_rows = state
            .scores
            .iter()
            .filter(|(profile, score)| !unchanged(profile, score))
            .map(|(profile, score)| {
                Ok((
                    score_key(&tenant, profile.as_str(), score.total, &contact),
                    encode(&StoredInstant(score.updated_at))?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let stale_scores: Vec<String> = before_scores
            .into_iter()
            .flatten()
            .filter(|(profile, old)| state.scores.get(*profile).is_none_or(|new| new.total != old.total))
            .map(|(profile, old)| score_key(&tenant, profile.as_str(), old.total, &contact))
            .collect();
        let expiry_key = |at| key(&[&sortable_millis(at), &tenant, &contact]);
        let old_expiry = commit.before.and_then(ContactState::next_change).map(expiry_key);
        let new_expiry = state.next_change().map(expiry_key);

        self.write(move |tables| {
            // Every check comes before the first write: a refused commit
            // leaves the shared transaction untouched (see `writer`).
            if let Some((event_key, ..)) = &event {
                if tables.open(EVENTS)?.get(event_key.as_str()).map_err(unavailable)?.is_some() {
                    return Err(StoreError::Duplicate);
                }
            }
            let contact_key = key(&[&tenant, &contact]);
            let contacts = tables.open(CONTACTS)?;
            let stored = contacts.get(contact_key.as_str()).map_err(unavailable)?;
            let version = stored.map(|v| decode::<StoredVersion>(v.value())).transpose()?.map_or(0, |s| s.version);
            if version != expected {
                return Err(StoreError::Conflict);
            }

            // Only redb's own failures (`Unavailable`) may stop what follows.
            contacts.insert(contact_key.as_str(), state_bytes.as_slice()).map_err(unavailable)?;
            if let Some((event_key, marker, history_key, recorded)) = &event {
                tables.open(EVENTS)?.insert(event_key.as_str(), marker.as_slice()).map_err(unavailable)?;
                tables.open(HISTORY)?.insert(history_key.as_str(), recorded.as_slice()).map_err(unavailable)?;
            }

            if old_expiry != new_expiry {
                let expiries = tables.open(EXPIRY_DUE)?;
                if let Some(old) = &old_expiry {
                    expiries.remove(old.as_str()).map_err(unavailable)?;
                }
                if let Some(new) = &new_expiry {
                    expiries.insert(new.as_str(), [].as_slice()).map_err(unavailable)?;
                }
            }

            if !stale_scores.is_empty() || !score_rows.is_empty() {
                let scores = tables.open(SCORES)?;
                for row in &stale_scores {
                    scores.remove(row.as_str()).map_err(unavailable)?;
                }
                for (row, updated) in &score_rows {
                    scores.insert(row.as_str(), updated.as_slice()).map_err(unavailable)?;
                }
            }

            if !ledger.is_empty() {
                let entries = tables.open(LEDGER)?;
                for (entry_key, bytes) in &ledger {
                    entries.insert(entry_key.as_str(), bytes.as_slice()).map_err(unavailable)?;
                }
            }

            if !actions.is_empty() {
                let outbox = tables.open(OUTBOX)?;
                for (item_key, bytes, ..) in &actions {
                    outbox.insert(item_key.as_str(), bytes.as_slice()).map_err(unavailable)?;
                }
                let due = tables.open(OUTBOX_DUE)?;
                for due_at in actions.iter().filter_map(|(_, _, due_at, _)| due_at.as_ref()) {
                    due.insert(due_at.as_str(), [].as_slice()).map_err(unavailable)?;
                }
                let log = tables.open(OUTBOX_LOG)?;
                for (.., log_key) in &actions {
                    log.insert(log_key.as_str(), [].as_slice()).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn ledger(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let (start, end) = prefix(&[tenant.as_str(), contact.as_str()]);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(LEDGER).map_err(unavailable)?;
            let range = table.range::<&str>(start.as_str()..end.as_str()).map_err(unavailable)?;
            let mut entries = range
                .rev()
                .take(limit)
                .map(|row| decode::<LedgerEntry>(row.map_err(unavailable)?.1.value()))
                .collect::<Result<Vec<_>, _>>()?;
            entries.reverse();
            Ok(entries)
        })
        .await
    }

    async fn history(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<Recorded>, StoreError> {
        self.scan(HISTORY, &[tenant.as_str(), contact.as_str()]).await
    }

    async fn contacts(
        &self,
        tenant: &TenantId,
        after: Option<&ContactId>,
        limit: usize,
    ) -> Result<Vec<ContactId>, StoreError> {
        let (start, end) = prefix(&[tenant.as_str()]);
        let lower = match after {
            Some(after) => Bound::Excluded(key(&[tenant.as_str(), after.as_str()])),
            None => Bound::Included(start),
        };
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(CONTACTS).map_err(unavailable)?;
            let bounds = (lower.as_ref().map(String::as_str), Bound::Excluded(end.as_str()));
            let mut contacts = Vec::new();
            for row in table.range::<&str>(bounds).map_err(unavailable)?.take(limit) {
                let (k, _) = row.map_err(unavailable)?;
                let contact = k.value().rsplit(SEP).next().unwrap_or_default();
                contacts.push(ContactId::parse_subject(contact).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            }
            Ok(contacts)
        })
        .await
    }

    async fn save_job(&self, job: &RecomputeJob) -> Result<(), StoreError> {
        let job_key = key(&[job.tenant.as_str(), &job.key()]);
        let expected = job.revision;
        let bytes = encode(&RecomputeJob { revision: expected + 1, ..job.clone() })?;
        self.put_at_revision(JOBS, job_key, expected, bytes).await
    }

    async fn job(&self, tenant: &TenantId, job_key: &str) -> Result<Option<RecomputeJob>, StoreError> {
        self.get(JOBS, key(&[tenant.as_str(), job_key])).await
    }

    async fn running_jobs(&self, limit: usize) -> Result<Vec<RecomputeJob>, StoreError> {
        // Jobs are few (one per published profile at most), so a scan is cheap.
        let mut running: Vec<RecomputeJob> = self
            .blocking(|db| {
                let txn = db.begin_read().map_err(unavailable)?;
                let table = txn.open_table(JOBS).map_err(unavailable)?;
                let mut jobs = Vec::new();
                for row in table.iter().map_err(unavailable)? {
                    let job: RecomputeJob = decode(row.map_err(unavailable)?.1.value())?;
                    if job.status == JobStatus::Running {
                        jobs.push(job);
                    }
                }
                Ok(jobs)
            })
            .await?;
        running.sort_by_key(|job| job.started_at);
        running.truncate(limit);
        Ok(running)
    }

    async fn leaderboard(&self, tenant: &TenantId, query: &LeaderboardQuery) -> Result<LeaderboardPage, StoreError> {
        let base = key(&[tenant.as_str(), query.profile.as_str()]);
        let lower = match (&query.after, query.order, query.min) {
            (Some((score, contact)), Order::Asc, _) => {
                Bound::Excluded(key(&[&base, &sortable_score(*score), contact.as_str()]))
            }
            (_, _, Some(min)) => Bound::Included(format!("{base}{SEP}{}", sortable_score(min))),
            _ => Bound::Included(format!("{base}{SEP}")),
        };
        let upper = match (&query.after, query.order, query.max) {
            (Some((score, contact)), Order::Desc, _) => {
                Bound::Excluded(key(&[&base, &sortable_score(*score), contact.as_str()]))
            }
            (_, _, Some(max)) => Bound::Excluded(format!("{base}{SEP}{}{AFTER_SEP}", sortable_score(max))),
            _ => Bound::Excluded(format!("{base}{AFTER_SEP}")),
        };
        // A cursor can lie outside [min, max] only if the caller changed the filter; clamp with both.
        let (min, max, order, limit) = (query.min, query.max, query.order, query.limit);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(SCORES).map_err(unavailable)?;
            let bounds = (lower.as_ref().map(String::as_str), upper.as_ref().map(String::as_str));
            let range = table.range::<&str>(bounds).map_err(unavailable)?;
            let rows: Box<dyn Iterator<Item = _>> = match order {
                Order::Asc => Box::new(range),
                Order::Desc => Box::new(range.rev()),
            };
            let mut page = Vec::with_capacity(limit + 1);
            for row in rows {
                let (k, v) = row.map_err(unavailable)?;
                let mut parts = k.value().rsplitn(3, SEP);
                let (Some(contact), Some(score), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(StoreError::Corrupt(format!("leaderboard key {:?}", k.value())));
                };
                let score = parse_sortable_score(score)?;
                if min.is_some_and(|m| score < m) || max.is_some_and(|m| score > m) {
                    continue;
                }
                let contact_id = ContactId::parse_subject(contact).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                page.push(LeaderboardRow { contact_id, score, updated_at: decode::<StoredInstant>(v.value())?.0 });
                if page.len() > limit {
                    break;
                }
            }
            Ok(LeaderboardPage::cut(page, limit))
        })
        .await
    }

    async fn due_contacts(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, ContactId)>, StoreError> {
        let end = format!("{}{AFTER_SEP}", sortable_millis(now));
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let due = txn.open_table(EXPIRY_DUE).map_err(unavailable)?;
            let mut contacts = Vec::new();
            for row in due.range::<&str>(..end.as_str()).map_err(unavailable)?.take(limit) {
                let (k, _) = row.map_err(unavailable)?;
                let mut parts = k.value().splitn(3, SEP).skip(1);
                let (Some(tenant), Some(contact)) = (parts.next(), parts.next()) else {
                    return Err(StoreError::Corrupt(format!("expiry key {:?}", k.value())));
                };
                let corrupt = |e: crate::ids::InvalidId| StoreError::Corrupt(e.to_string());
                contacts.push((
                    TenantId::parse(tenant).map_err(corrupt)?,
                    ContactId::parse_subject(contact).map_err(corrupt)?,
                ));
            }
            Ok(contacts)
        })
        .await
    }

    async fn due_actions(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let end = format!("{}{AFTER_SEP}", sortable_millis(now));
        let (items, unreadable) = self
            .blocking(move |db| {
                let txn = db.begin_read().map_err(unavailable)?;
                let due = txn.open_table(OUTBOX_DUE).map_err(unavailable)?;
                let outbox = txn.open_table(OUTBOX).map_err(unavailable)?;
                let (mut items, mut unreadable) = (Vec::new(), Vec::new());
                for row in due.range::<&str>(..end.as_str()).map_err(unavailable)?.take(limit) {
                    let (k, _) = row.map_err(unavailable)?;
                    let Some((_, item_key)) = k.value().split_once(SEP) else {
                        return Err(StoreError::Corrupt(format!("due key {:?}", k.value())));
                    };
                    if let Some(item) = outbox.get(item_key).map_err(unavailable)? {
                        match decode(item.value()) {
                            Ok(item) => items.push(item),
                            Err(e) => unreadable.push((item_key.to_owned(), e)),
                        }
                    }
                }
                Ok((items, unreadable))
            })
            .await?;
        // An item that cannot be read is set aside, so the rest are delivered.
        for (item_key, error) in unreadable {
            let Some((tenant, id)) = item_key.split_once(SEP) else { continue };
            let Ok(tenant) = TenantId::parse(tenant) else { continue };
            tracing::error!(tenant = %tenant, action_id = id, error = %error, "an outbox item cannot be read; quarantined");
            let entry = Quarantined::new(&tenant, QuarantineKind::Action, id, &error, "executor", now);
            self.put_quarantined(&entry).await?;
        }
        Ok(items)
    }

    async fn save_action(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let item_key = key(&[item.tenant.as_str(), item.action.id.as_str()]);
        let expected = item.revision;
        let bytes = encode(&OutboxItem { revision: expected + 1, ..item.clone() })?;
        let new_due = due_key(item);
        self.write(move |tables| {
            let old: Option<OutboxItem> = tables
                .open(OUTBOX)?
                .get(item_key.as_str())
                .map_err(unavailable)?
                .map(|v| decode(v.value()))
                .transpose()?;
            if old.as_ref().map(|o| o.revision) != Some(expected) {
                return Err(StoreError::Conflict);
            }
            let due = tables.open(OUTBOX_DUE)?;
            if let Some(old_due) = old.as_ref().and_then(due_key) {
                due.remove(old_due.as_str()).map_err(unavailable)?;
            }
            if let Some(new_due) = &new_due {
                due.insert(new_due.as_str(), [].as_slice()).map_err(unavailable)?;
            }
            tables.open(OUTBOX)?.insert(item_key.as_str(), bytes.as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn action(&self, tenant: &TenantId, id: &ActionId) -> Result<Option<OutboxItem>, StoreError> {
        self.get(OUTBOX, key(&[tenant.as_str(), id.as_str()])).await
    }

    async fn queue_action(&self, item: &OutboxItem) -> Result<bool, StoreError> {
        let (tenant, id) = (item.tenant.as_str(), item.action.id.as_str());
        let item_key = key(&[tenant, id]);
        let log_key = key(&[tenant, &sortable_millis(item.action.fired_at), id]);
        let (bytes, due_at) = (encode(item)?, due_key(item));
        self.write(move |tables| {
            let outbox = tables.open(OUTBOX)?;
            if outbox.get(item_key.as_str()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            outbox.insert(item_key.as_str(), bytes.as_slice()).map_err(unavailable)?;
            if let Some(due_at) = &due_at {
                tables.open(OUTBOX_DUE)?.insert(due_at.as_str(), [].as_slice()).map_err(unavailable)?;
            }
            tables.open(OUTBOX_LOG)?.insert(log_key.as_str(), [].as_slice()).map_err(unavailable)?;
            Ok(true)
        })
        .await
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
        self.get(CONTACTS, key(&[tenant.as_str(), contact.as_str()])).await
    }

    async fn drop_contact_indexes(&self, tenant: &TenantId, contact: &ContactId) -> Result<(), StoreError> {
        self.remove_contact_indexes(tenant, contact).await
    }

    async fn count_unmapped(&self, tenant: &TenantId, kind: &str, count: u64) -> Result<(), StoreError> {
        let row = key(&[tenant.as_str(), kind]);
        self.write(move |tables| {
            let table = tables.open(UNMAPPED)?;
            let before: u64 =
                table.get(row.as_str()).map_err(unavailable)?.map(|v| decode(v.value())).transpose()?.unwrap_or(0);
            let after = encode(&before.saturating_add(count))?;
            table.insert(row.as_str(), after.as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn claim(&self, key: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let (row, until_bytes) = (key.to_owned(), encode(&StoredInstant(Some(until)))?);
        // Claims past their `until` are forgotten as new ones are taken
        // (a few at a time), so the table holds about one period's worth.
        let cutoff = until - chrono::TimeDelta::days(1);
        self.write(move |tables| {
            let table = tables.open(CLAIMS)?;
            if table.get(row.as_str()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            let mut expired = Vec::new();
            for entry in table.iter().map_err(unavailable)?.take(CLAIMS_SCANNED) {
                let (k, v) = entry.map_err(unavailable)?;
                if decode::<StoredInstant>(v.value())?.0.is_some_and(|at| at < cutoff) {
                    expired.push(k.value().to_owned());
                }
            }
            for old in &expired {
                table.remove(old.as_str()).map_err(unavailable)?;
            }
            table.insert(row.as_str(), until_bytes.as_slice()).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn unmapped(&self, tenant: &TenantId) -> Result<BTreeMap<String, u64>, StoreError> {
        let (start, end) = prefix(&[tenant.as_str()]);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(UNMAPPED).map_err(unavailable)?;
            let mut found = BTreeMap::new();
            for row in table.range(start.as_str()..end.as_str()).map_err(unavailable)? {
                let (k, v) = row.map_err(unavailable)?;
                let kind = k.value().strip_prefix(start.as_str()).unwrap_or_default().to_owned();
                found.insert(kind, decode(v.value())?);
            }
            Ok(found)
        })
        .await
    }

    async fn actions(
        &self,
        tenant: &TenantId,
        status: Option<ActionStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let (start, end) = prefix(&[tenant.as_str()]);
        let tenant = tenant.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let log = txn.open_table(OUTBOX_LOG).map_err(unavailable)?;
            let outbox = txn.open_table(OUTBOX).map_err(unavailable)?;
            let mut items = Vec::new();
            for row in log.range::<&str>(start.as_str()..end.as_str()).map_err(unavailable)?.rev() {
                let (k, _) = row.map_err(unavailable)?;
                let Some(action) = k.value().rsplit(SEP).next() else {
                    continue;
                };
                let Some(bytes) = outbox.get(key(&[&tenant, action]).as_str()).map_err(unavailable)? else {
                    continue;
                };
                let item: OutboxItem = decode(bytes.value())?;
                if status.is_none_or(|s| s == item.status) {
                    items.push(item);
                    if items.len() >= limit {
                        break;
                    }
                }
            }
            Ok(items)
        })
        .await
    }
}
