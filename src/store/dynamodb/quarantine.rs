//! The DynamoDB adapter's side of fault isolation: quarantine entries (one
//! partition, few items), taking a set-aside record out of the `due` index
//! by removing its index attributes (no need to read what cannot be
//! decoded), and dropping a contact's leaderboard items before a repair.

use chrono::{DateTime, Utc};

use super::capacity::Item;
use super::items::{
    action_pk, contact_pk, decode, doc_item, get_s, key, s, DUE_PK, DUE_SK, PK, SK, SK_ACTION, SK_SCORE_PREFIX,
    SK_STATE,
};
use super::{unavailable, DynamoStore};
use crate::ids::{ActionId, ContactId, TenantId};
use crate::store::keys::sortable_millis;
use crate::store::{QuarantineKind, Quarantined, StoreError};

/// The partition holding every quarantine entry.
const QUARANTINE_PK: &str = "QUARANTINE";

fn entry_sk(tenant: &TenantId, kind: QuarantineKind, id: &str) -> String {
    format!("{tenant}#{}#{id}", kind.as_str())
}

/// The base item whose index attributes put the record in the `due` index.
fn subject_key(entry: &Quarantined) -> Result<Item, StoreError> {
    let corrupt = |e: crate::ids::InvalidId| StoreError::Corrupt(e.to_string());
    Ok(match entry.kind {
        QuarantineKind::Contact => {
            key(contact_pk(&entry.tenant, &ContactId::parse_subject(&entry.key).map_err(corrupt)?), SK_STATE)
        }
        QuarantineKind::Action => {
            key(action_pk(&entry.tenant, &ActionId::parse(&entry.key).map_err(corrupt)?), SK_ACTION)
        }
    })
}

impl DynamoStore {
    pub(super) async fn put_quarantined(&self, entry: &Quarantined) -> Result<(), StoreError> {
        let sk = entry_sk(&entry.tenant, entry.kind, &entry.key);
        let earlier: Option<Quarantined> = self.get_doc(key(QUARANTINE_PK.to_owned(), sk.clone())).await?;
        self.put(doc_item(QUARANTINE_PK.to_owned(), sk, &entry.clone().again(earlier))?).await?;
        self.remove_due(subject_key(entry)?, Some(entry.last_at)).await
    }

    /// Removes the item's `due` index attributes, when due by `by` (any time: `None`).
    async fn remove_due(&self, item: Item, by: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.metrics.call();
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item))
            .update_expression("REMOVE #dp, #ds")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#dp", DUE_PK)
            .expression_attribute_names("#ds", DUE_SK);
        let request = match by {
            // '#' < '$': every "<millis>#…" of that millisecond sorts below "<millis>$".
            Some(by) => request
                .condition_expression("attribute_exists(#pk) AND #ds < :end")
                .expression_attribute_values(":end", s(format!("{}$", sortable_millis(by)))),
            None => request.condition_expression("attribute_exists(#pk)"),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            // Gone, or not due by then: nothing to take out.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    pub(super) async fn list_quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, StoreError> {
        let build = || {
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(QUARANTINE_PK))
                .consistent_read(true)
        };
        self.query(build, Some(limit), true).await?.iter().map(decode).collect()
    }

    pub(super) async fn remove_quarantined(
        &self,
        tenant: &TenantId,
        kind: QuarantineKind,
        id: &str,
    ) -> Result<(), StoreError> {
        self.delete(key(QUARANTINE_PK.to_owned(), entry_sk(tenant, kind, id))).await
    }

    pub(super) async fn remove_contact_indexes(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<(), StoreError> {
        for row in self.query_prefix(contact_pk(tenant, contact), SK_SCORE_PREFIX).await? {
            let sk = get_s(&row, SK)?.to_owned();
            self.delete(key(contact_pk(tenant, contact), sk)).await?;
        }
        self.remove_due(key(contact_pk(tenant, contact), SK_STATE), None).await
    }

    async fn delete(&self, item: Item) -> Result<(), StoreError> {
        self.metrics.call();
        self.client.delete_item().table_name(&self.table).set_key(Some(item)).send().await.map_err(unavailable)?;
        Ok(())
    }

    /// Sets aside an outbox item (`row`, as read) that does not decode.
    pub(super) async fn quarantine_unreadable_action(
        &self,
        row: &Item,
        error: &StoreError,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let pk = get_s(row, PK)?;
        let parsed = pk.strip_prefix("T#").and_then(|rest| rest.split_once("#A#"));
        let Some((tenant, id)) = parsed else { return Ok(()) };
        let Ok(tenant) = TenantId::parse(tenant) else { return Ok(()) };
        tracing::error!(tenant = %tenant, action_id = id, error = %error, "an outbox item cannot be read; quarantined");
        self.put_quarantined(&Quarantined::new(&tenant, QuarantineKind::Action, id, error, "executor", now)).await
    }

    /// The contact's `doc` as plain JSON.
    pub(super) async fn contact_json(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.get_doc(key(contact_pk(tenant, contact), SK_STATE)).await
    }
}
