//! Tenant admin token rotation: a new token, shown once; the one it replaces
//! keeps working for a bounded grace, so a running integration can switch
//! over without a gap.

use chrono::TimeDelta;

use super::admin::TENANT_WRITE_ATTEMPTS;
use super::{random_token, Caller, Service, ServiceError};
use crate::ids::TenantId;
use crate::store::StoreError;
use crate::tenant::{hash_token, TenantRecord, TokenMatch};

/// How long the replaced token keeps working unless the request says otherwise.
pub const DEFAULT_TOKEN_GRACE_SECONDS: u64 = 24 * 60 * 60;
/// The longest grace a rotation may give the replaced token: a week.
pub const MAX_TOKEN_GRACE_SECONDS: u64 = 7 * 24 * 60 * 60;

/// A rotation done: the new token (shown this once) and the record as stored.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub token: String,
    pub record: TenantRecord,
}

impl Service {
    /// Replaces the tenant's admin token. The operator or the tenant's
    /// current token may rotate it; the previous token, within its grace,
    /// may not (a leaked old token must not lock the owner out). The token
    /// replaced keeps working for `grace_seconds` (default a day, at most a
    /// week, 0 revokes it at once); one rotated out before it stops at once.
    ///
    /// The write is conditional on the record read. If another write lands
    /// first, the rotation is tried again on a fresh read, unless that write
    /// was itself a rotation: then this one is refused (409) rather than
    /// silently dropping the token the other rotation just handed out.
    pub async fn rotate_token(
        &self,
        caller: &Caller,
        id: &TenantId,
        grace_seconds: Option<u64>,
    ) -> Result<Rotated, ServiceError> {
        if matches!(caller, Caller::Tenant { token: TokenMatch::Previous, .. }) {
            return Err(ServiceError::Unauthorized);
        }
        let grace = grace(grace_seconds)?;
        let mut record = self.require_tenant(id).await?;
        // The token the caller means to replace: the one it authenticated
        // against, or for the operator the one in force now.
        let replacing = match caller {
            Caller::Tenant { record: seen, .. } => seen.token_hash.clone(),
            Caller::Operator => record.token_hash.clone(),
        };
        let token = random_token("sht")?;
        for _ in 0..TENANT_WRITE_ATTEMPTS {
            if record.token_hash != replacing {
                return Err(rotated_concurrently(id));
            }
            record.rotate_token(hash_token(&token), grace, self.clock.now());
            match self.save_tenant(&mut record).await {
                Ok(()) => {
                    let by = if matches!(caller, Caller::Operator) { "operator" } else { "tenant" };
                    let grace_seconds = grace.num_seconds();
                    tracing::info!(tenant = %id, by, grace_seconds, "tenant admin token rotated");
                    return Ok(Rotated { token, record });
                }
                Err(ServiceError::Store(StoreError::Conflict)) => record = self.require_tenant(id).await?,
                Err(e) => return Err(e),
            }
        }
        Err(ServiceError::Conflict(format!("tenant {id} is being changed concurrently; retry")))
    }

    /// Writes a tenant record over the revision it was read at, and moves
    /// `record.revision` on; `StoreError::Conflict` if another write landed.
    pub(crate) async fn save_tenant(&self, record: &mut TenantRecord) -> Result<(), ServiceError> {
        self.store.put_tenant(record).await?;
        record.revision += 1;
        self.config_changed(&record.id);
        Ok(())
    }
}

fn grace(seconds: Option<u64>) -> Result<TimeDelta, ServiceError> {
    let seconds = seconds.unwrap_or(DEFAULT_TOKEN_GRACE_SECONDS);
    if seconds > MAX_TOKEN_GRACE_SECONDS {
        let message = format!("at most {MAX_TOKEN_GRACE_SECONDS} (a week); 0 revokes the replaced token at once");
        return Err(ServiceError::invalid("grace_seconds", message));
    }
    // Bounded above, so it fits.
    Ok(TimeDelta::seconds(i64::try_from(seconds).unwrap_or(0)))
}

fn rotated_concurrently(id: &TenantId) -> ServiceError {
    ServiceError::Conflict(format!(
        "the admin token of tenant {id} was rotated concurrently; this rotation changed nothing (the other one's \
         token is in force)"
    ))
}
