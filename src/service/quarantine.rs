//! Fault isolation: a stored record that cannot be read or committed is
//! set aside (quarantined) instead of failing the work around it.
//!
//! Background work goes record by record: a contact whose state no longer
//! decodes, or an outbox item that does not, is recorded in the store's
//! quarantine (counted, logged with its key, listed by
//! `GET /v1/quarantine`), taken out of the due-work index, and skipped, so
//! the sweeper, the executor and every other tenant's work carry on. A
//! store that cannot be reached is not a record's fault: that work is tried
//! again on the next tick, as before. `repair` puts a contact back.

use super::{Service, ServiceError};
use crate::engine::ledger::ContactState;
use crate::ids::{ContactId, TenantId};
use crate::store::{QuarantineKind, Quarantined, StoreError};

/// How many entries `GET /v1/quarantine` lists at most.
pub const QUARANTINE_VIEW_LIMIT: usize = 1000;

impl ServiceError {
    /// The stored record itself is at fault (it does not decode, or cannot
    /// be written whole): trying again cannot help, so it is set aside.
    pub fn is_record_fault(&self) -> bool {
        matches!(self, ServiceError::Store(StoreError::Corrupt(_) | StoreError::TooLarge(_)))
    }
}

impl Service {
    /// Records `key` as set aside because of `error`, found by `found_by`;
    /// a failure to record it is logged, never added to the caller's.
    pub(crate) async fn set_aside(
        &self,
        tenant: &TenantId,
        kind: QuarantineKind,
        key: &str,
        error: &ServiceError,
        found_by: &str,
    ) {
        let ServiceError::Store(store_error) = error else { return };
        tracing::error!(tenant = %tenant, kind = kind.as_str(), key, found_by, error = %store_error,
            "a stored record cannot be read or committed; quarantined");
        let entry = Quarantined::new(tenant, kind, key, store_error, found_by, self.clock.now());
        if let Err(e) = self.store.quarantine(&entry).await {
            tracing::error!(tenant = %tenant, key, error = %e, "the quarantine entry could not be saved");
        }
    }

    /// The contact's state, or a fresh one if it has none; a state that
    /// cannot be read is quarantined (found by `found_by`) and answered as
    /// the error it is.
    pub(crate) async fn read_contact(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        found_by: &str,
    ) -> Result<Option<ContactState>, ServiceError> {
        match self.store.contact(tenant, contact).await {
            Ok(state) => Ok(state),
            Err(e) => {
                let error = ServiceError::Store(e);
                if error.is_record_fault() {
                    self.set_aside(tenant, QuarantineKind::Contact, contact.as_str(), &error, found_by).await;
                }
                Err(error)
            }
        }
    }

    /// Every record set aside, for the operator.
    pub async fn quarantined(&self) -> Result<Vec<Quarantined>, ServiceError> {
        Ok(self.store.quarantined(QUARANTINE_VIEW_LIMIT).await?)
    }
}
