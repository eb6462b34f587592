//! The embedded store's side of fault isolation: quarantine entries, and
//! taking a set-aside record out of the due-work indexes so the sweeper
//! stops picking it, and out of the leaderboard so a repair re-indexes it.
//!
//! The due and leaderboard keys start with an instant or a score that only
//! the unreadable record knows, so rows are found by their trailing
//! `tenant·id` instead: a scan of the rows due by then (normally a handful)
//! or of the tenant's leaderboards (a repair, which an operator runs).

use std::ops::RangeBounds;

use chrono::{DateTime, Utc};
use redb::ReadableTable;

use super::writer::{Table, Tables};
use super::{
    decode, encode, key, prefix, unavailable, EmbeddedStore, AFTER_SEP, EXPIRY_DUE, OUTBOX_DUE, QUARANTINE, SCORES, SEP,
};
use crate::ids::{ContactId, TenantId};
use crate::store::keys::sortable_millis;
use crate::store::{QuarantineKind, Quarantined, StoreError};

fn entry_key(tenant: &TenantId, kind: QuarantineKind, id: &str) -> String {
    key(&[tenant.as_str(), kind.as_str(), id])
}

/// Removes the rows of `table` within `range` whose key ends in `suffix`.
fn remove_rows_ending<'r>(
    tables: &mut Tables<'_>,
    table: Table,
    range: impl RangeBounds<&'r str> + 'r,
    suffix: &str,
) -> Result<(), StoreError> {
    let rows = tables.open(table)?;
    let mut found = Vec::new();
    for row in rows.range::<&str>(range).map_err(unavailable)? {
        let (k, _) = row.map_err(unavailable)?;
        if k.value().ends_with(suffix) {
            found.push(k.value().to_owned());
        }
    }
    for row in found {
        rows.remove(row.as_str()).map_err(unavailable)?;
    }
    Ok(())
}

/// The exclusive end of the due rows at or before `at`.
fn due_by(at: DateTime<Utc>) -> String {
    format!("{}{AFTER_SEP}", sortable_millis(at))
}

impl EmbeddedStore {
    pub(super) async fn put_quarantined(&self, entry: &Quarantined) -> Result<(), StoreError> {
        let row = entry_key(&entry.tenant, entry.kind, &entry.key);
        let (entry, suffix) = (entry.clone(), format!("{SEP}{}{SEP}{}", entry.tenant, entry.key));
        self.write(move |tables| {
            let earlier = tables.open(QUARANTINE)?.get(row.as_str()).map_err(unavailable)?;
            let earlier: Option<Quarantined> = earlier.map(|v| decode(v.value())).transpose()?;
            let end = due_by(entry.last_at);
            let index = match entry.kind {
                QuarantineKind::Contact => EXPIRY_DUE,
                QuarantineKind::Action => OUTBOX_DUE,
            };
            let bytes = encode(&entry.again(earlier))?;
            remove_rows_ending(tables, index, ..end.as_str(), &suffix)?;
            tables.open(QUARANTINE)?.insert(row.as_str(), bytes.as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn list_quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(QUARANTINE).map_err(unavailable)?;
            let rows = table.iter().map_err(unavailable)?.take(limit);
            rows.map(|row| decode(row.map_err(unavailable)?.1.value())).collect()
        })
        .await
    }

    pub(super) async fn remove_quarantined(
        &self,
        tenant: &TenantId,
        kind: QuarantineKind,
        id: &str,
    ) -> Result<(), StoreError> {
        let row = entry_key(tenant, kind, id);
        self.write(move |tables| {
            tables.open(QUARANTINE)?.remove(row.as_str()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    pub(super) async fn remove_contact_indexes(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<(), StoreError> {
        let (start, end) = prefix(&[tenant.as_str()]);
        let (due_suffix, score_suffix) = (format!("{SEP}{tenant}{SEP}{contact}"), format!("{SEP}{contact}"));
        self.write(move |tables| {
            remove_rows_ending(tables, EXPIRY_DUE, .., &due_suffix)?;
            // Only the tenant's leaderboards: `tenant·profile·score·contact`.
            remove_rows_ending(tables, SCORES, start.as_str()..end.as_str(), &score_suffix)
        })
        .await
    }
}
