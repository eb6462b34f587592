//! Tenants, profiles and triggers: the configuration side of the admin API.

use chrono::Utc;
use serde_json::{Map, Value};

use super::{quotas, random_token, Caller, Service, ServiceError};
use crate::crm::egress::Egress;
use crate::crm::standard_webhooks;
use crate::engine::action::ActionSpec;
use crate::engine::profile::{Change, ProfileRecord, ProfileSpec, ProfileStatus, SubjectKind};
use crate::engine::trigger::TriggerSpec;
use crate::ids::{ProfileId, TenantId, TriggerId};
use crate::store::{StoreError, TriggerRecord};
use crate::tenant::{hash_token, Provider, Secret, TenantRecord};

/// `PUT /v1/tenants/{t}` after parsing.
#[derive(Debug, Clone)]
pub struct TenantInput {
    pub provider: Provider,
    /// Required when creating; kept when omitted on update.
    pub webhook_secret: Option<Secret>,
    pub actions_url: Option<String>,
    pub crm: Map<String, Value>,
    /// The outbound signing secret (`whsec_…`); made on creation when
    /// omitted, kept when omitted on update.
    pub signing_secret: Option<Secret>,
}

/// What a tenant write did; `token` is set only on creation (shown once),
/// `signing_secret` only when the creation made one (shown once too).
#[derive(Debug, Clone)]
pub struct TenantWritten {
    pub record: TenantRecord,
    pub token: Option<String>,
    pub signing_secret: Option<String>,
}

/// Published profiles per tenant. With `MAX_ENABLED_ACTIONS`, this bounds
/// one commit to 1 marker + 1 state + 1 history item + 25 leaderboard rows +
/// 1 ledger item + 60 actions = 89 items, inside DynamoDB's 100 per transaction.
pub const MAX_PUBLISHED_PROFILES: usize = 25;
/// Actions across all enabled triggers of a tenant: the most one interaction can fire.
pub const MAX_ENABLED_ACTIONS: usize = 60;

/// Tries of a tenant write that keeps meeting concurrent writes.
pub(crate) const TENANT_WRITE_ATTEMPTS: usize = 5;

/// A webhook secret must be long enough that guessing it is hopeless.
const MIN_SECRET_LEN: usize = 16;

/// The `crm` settings that name a URL scorehook calls.
const CRM_URL_KEYS: [&str; 3] = ["base_url", "api_url", "webhook_url"];

impl TenantInput {
    fn validate(&self, egress: Egress) -> Result<(), ServiceError> {
        if let Some(secret) = &self.webhook_secret {
            if secret.expose().len() < MIN_SECRET_LEN || secret.expose().len() > 512 {
                return Err(ServiceError::invalid("webhook_secret", format!("use {MIN_SECRET_LEN}-512 characters")));
            }
        }
        if let Some(secret) = &self.signing_secret {
            if standard_webhooks::key_of(secret.expose()).is_none() {
                let message = "a Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes";
                return Err(ServiceError::invalid("signing_secret", message));
            }
            // Actions signed with what webhooks are checked with could be replayed into scorehook.
            if self.webhook_secret.as_ref() == Some(secret) {
                return Err(ServiceError::invalid("signing_secret", "must differ from webhook_secret"));
            }
        }
        if let Some(url) = &self.actions_url {
            check_target(egress, "actions_url", url)?;
        }
        for key in CRM_URL_KEYS {
            match self.crm.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(url)) if url.is_empty() => {}
                Some(Value::String(url)) => check_crm_target(egress, self.provider, &format!("crm.{key}"), url)?,
                Some(_) => return Err(ServiceError::invalid(format!("crm.{key}"), "must be a URL string")),
            }
        }
        // Bitrix24's per-user incoming webhooks (`as_user`): each a URL of the portal's own, like `webhook_url`.
        match self.crm.get(crate::crm::bitrix24::USER_WEBHOOKS) {
            None | Some(Value::Null) => {}
            Some(Value::Object(webhooks)) => {
                for (user, url) in webhooks {
                    let path = format!("crm.user_webhooks.{user}");
                    let url = url.as_str().ok_or_else(|| ServiceError::invalid(&path, "must be a URL string"))?;
                    check_crm_target(egress, self.provider, &path, url)?;
                }
            }
            Some(_) => {
                return Err(ServiceError::invalid("crm.user_webhooks", "an object of user id to incoming-webhook URL"))
            }
        }
        if let Some(field) = self.crm.get("score_field") {
            if field.as_str().is_none_or(|f| f.trim().is_empty()) {
                return Err(ServiceError::invalid("crm.score_field", "must be a non-empty string"));
            }
        }
        Ok(())
    }
}

/// A URL scorehook will call, refused now (422 on `path`) when the
/// outbound policy would refuse it at send time.
pub(crate) fn check_target(egress: Egress, path: &str, url: &str) -> Result<(), ServiceError> {
    if url.len() > 2000 {
        return Err(ServiceError::invalid(path, "at most 2000 characters"));
    }
    egress.check(url).map(drop).map_err(|refused| ServiceError::invalid(path, refused.to_string()))
}

/// A URL of the tenant's CRM API: [`check_target`], no query or fragment,
/// and a host of the provider's own (`generic` has no API of its own, so
/// any public host).
fn check_crm_target(egress: Egress, provider: Provider, path: &str, url: &str) -> Result<(), ServiceError> {
    check_target(egress, path, url)?;
    // The connector appends its paths: a query or fragment would swallow them.
    if url.contains(['?', '#']) {
        return Err(ServiceError::invalid(path, "must not carry a query or fragment"));
    }
    let Some(api) = crate::crm::api_config(provider) else { return Ok(()) };
    egress
        .check_api(url, provider.as_str(), api.hosts)
        .map(drop)
        .map_err(|refused| ServiceError::invalid(path, refused.to_string()))
}

impl Service {
    /// Creates (operator only) or updates a tenant. The write is conditional
    /// on the record read, and retried on a fresh read if another write
    /// landed in between, so an update never undoes a concurrent token
    /// rotation (it changes none of the token fields) and two concurrent
    /// creations do not both hand out a token.
    pub async fn put_tenant(
        &self,
        caller: &Caller,
        id: &TenantId,
        input: TenantInput,
    ) -> Result<TenantWritten, ServiceError> {
        input.validate(self.egress)?;
        for _ in 0..TENANT_WRITE_ATTEMPTS {
            match self.try_put_tenant(caller, id, input.clone()).await {
                Err(ServiceError::Store(StoreError::Conflict)) => continue,
                done => return done,
            }
        }
        Err(ServiceError::Conflict(format!("tenant {id} is being changed concurrently; retry")))
    }

    async fn try_put_tenant(
        &self,
        caller: &Caller,
        id: &TenantId,
        input: TenantInput,
    ) -> Result<TenantWritten, ServiceError> {
        let now = self.clock.now();
        match self.store.tenant(id).await? {
            Some(mut record) => {
                record.provider = input.provider;
                if let Some(secret) = input.webhook_secret {
                    record.webhook_secret = secret;
                }
                record.actions_url = input.actions_url;
                record.crm = input.crm;
                if let Some(secret) = input.signing_secret {
                    record.set_signing_secret(secret, now);
                }
                if record.signing_secret.as_ref() == Some(&record.webhook_secret) {
                    return Err(ServiceError::invalid("signing_secret", "must differ from webhook_secret"));
                }
                record.updated_at = now;
                self.save_tenant(&mut record).await?;
                Ok(TenantWritten { record, token: None, signing_secret: None })
            }
            None => {
                if !matches!(caller, Caller::Operator) {
                    return Err(ServiceError::Unauthorized);
                }
                let secret = input
                    .webhook_secret
                    .ok_or_else(|| ServiceError::invalid("webhook_secret", "required when creating a tenant"))?;
                let token = random_token("sht")?;
                let made = match input.signing_secret {
                    Some(_) => None,
                    None => Some(
                        standard_webhooks::new_secret()
                            .map_err(|e| StoreError::Unavailable(format!("no randomness available: {e}")))?,
                    ),
                };
                let signing_secret = input.signing_secret.or_else(|| made.clone().map(Secret::new));
                let mut record = TenantRecord {
                    id: id.clone(),
                    provider: input.provider,
                    webhook_secret: secret,
                    actions_url: input.actions_url,
                    crm: input.crm,
                    token_hash: hash_token(&token),
                    previous_token: None,
                    token_rotated_at: None,
                    signing_secret,
                    previous_signing: None,
                    created_at: now,
                    updated_at: now,
                    revision: 0,
                };
                self.save_tenant(&mut record).await?;
                tracing::info!(tenant = %id, "tenant created");
                Ok(TenantWritten { record, token: Some(token), signing_secret: made })
            }
        }
    }

    /// Saves a profile as a draft (creating it if new).
    pub async fn put_profile(
        &self,
        tenant: &TenantId,
        id: &ProfileId,
        spec: ProfileSpec,
    ) -> Result<(ProfileRecord, Change), ServiceError> {
        self.require_tenant(tenant).await?;
        let compiled = spec.compile(id, 0)?;
        let now = self.clock.now();
        let stored = self.store.profile(tenant, id).await?;
        let had_draft = stored.as_ref().is_some_and(|record| record.draft.is_some());
        let (record, change) = match stored {
            Some(record) if record.live.as_ref().is_some_and(|v| v.spec.subject != spec.subject) => {
                // Its scores, ledger and leaderboard rows belong to the other kind of subject.
                let scored = if spec.subject == SubjectKind::Deal { SubjectKind::Contact } else { SubjectKind::Deal };
                let message = format!("profile {id} has scored {}; create a new profile instead", scored.plural());
                return Err(ServiceError::invalid("subject", message));
            }
            Some(mut record) => {
                let change = record.save_draft(spec, now);
                (record, change)
            }
            None => (ProfileRecord::new_draft(id.clone(), spec, now), Change::Created),
        };
        if change != Change::Unchanged {
            let (profiles, triggers) = (self.store.profiles(tenant).await?, self.store.triggers(tenant).await?);
            quotas::check_profile(&record, compiled.regex_bytes, had_draft, &profiles, &triggers)?;
            self.store.put_profile(tenant, &record).await?;
            self.config_changed(tenant);
        }
        Ok((record, change))
    }

    pub async fn profile(&self, tenant: &TenantId, id: &ProfileId) -> Result<ProfileRecord, ServiceError> {
        self.store.profile(tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("profile {id}")))
    }

    pub async fn profiles(&self, tenant: &TenantId) -> Result<Vec<ProfileRecord>, ServiceError> {
        Ok(self.store.profiles(tenant).await?)
    }

    /// Publishes a profile, within the tenant's limit of published profiles.
    pub async fn publish_profile(&self, tenant: &TenantId, id: &ProfileId) -> Result<ProfileRecord, ServiceError> {
        let profiles = self.store.profiles(tenant).await?;
        let others = profiles.iter().filter(|p| &p.id != id && p.status == ProfileStatus::Published).count();
        if others >= MAX_PUBLISHED_PROFILES {
            return Err(ServiceError::Conflict(format!(
                "a tenant can have at most {MAX_PUBLISHED_PROFILES} published profiles (one interaction's changes must \
                 commit atomically); archive one first"
            )));
        }
        let before = profiles.iter().find(|p| &p.id == id).and_then(|p| p.scoring()).map(|v| v.version);
        let record = self.profile_step(tenant, id, ProfileRecord::publish).await?;
        if let Some(live) = record.scoring().filter(|live| before != Some(live.version)) {
            // A new version (or a re-publish after archiving) applies to the stored history.
            self.start_recompute(tenant, id, live.version).await?;
        }
        Ok(record)
    }

    /// `publish` or `archive`: a lifecycle step on a stored profile.
    pub async fn profile_step(
        &self,
        tenant: &TenantId,
        id: &ProfileId,
        step: fn(&mut ProfileRecord, chrono::DateTime<Utc>) -> Change,
    ) -> Result<ProfileRecord, ServiceError> {
        let mut record = self.profile(tenant, id).await?;
        if step(&mut record, self.clock.now()) != Change::Unchanged {
            self.store.put_profile(tenant, &record).await?;
            self.config_changed(tenant);
            tracing::info!(tenant = %tenant, profile = %id, status = ?record.status, "profile lifecycle changed");
        }
        Ok(record)
    }

    /// Saves a trigger. Its `once` memory is keyed by id and kept across edits.
    pub async fn put_trigger(
        &self,
        tenant: &TenantId,
        id: &TriggerId,
        spec: TriggerSpec,
    ) -> Result<(TriggerRecord, bool), ServiceError> {
        self.require_tenant(tenant).await?;
        let compiled = spec.compile(id)?;
        for (i, action) in spec.actions.iter().enumerate() {
            if let ActionSpec::Webhook { url, .. } | ActionSpec::Notify { url: Some(url), .. } = action {
                check_target(self.egress, &format!("actions[{i}].url"), url)?;
            }
        }
        let named = spec.score_profile().map(|p| ("when.score.profile".to_owned(), p)).into_iter().chain(
            spec.actions.iter().enumerate().filter_map(|(i, action)| match action {
                ActionSpec::SetField { profile: Some(p), .. } | ActionSpec::AdjustScore { profile: p, .. } => {
                    Some((format!("actions[{i}].profile"), p))
                }
                _ => None,
            }),
        );
        // A trigger acts on one kind of subject: a deal profile's score
        // triggers on deals, every other trigger on contacts; the scores its
        // actions read or move must be of that kind.
        let mut acts_on = None;
        for (path, profile) in named {
            let Some(record) = self.store.profile(tenant, profile).await? else {
                return Err(ServiceError::invalid(path, format!("there is no profile {profile}; create it first")));
            };
            let kind = *acts_on.get_or_insert(if spec.score_profile().is_some() {
                record.subject()
            } else {
                SubjectKind::Contact
            });
            if record.subject() != kind {
                let message = format!(
                    "profile {profile} scores {}; this trigger acts on {}",
                    record.subject().plural(),
                    kind.plural()
                );
                return Err(ServiceError::invalid(path, message));
            }
        }
        let triggers = self.store.triggers(tenant).await?;
        quotas::check_trigger(id, compiled.regex_bytes, &self.store.profiles(tenant).await?, &triggers)?;
        if spec.enabled {
            let others: usize =
                triggers.iter().filter(|t| &t.id != id && t.spec.enabled).map(|t| t.spec.actions.len()).sum();
            if others + spec.actions.len() > MAX_ENABLED_ACTIONS {
                return Err(ServiceError::invalid(
                    "actions",
                    format!(
                        "enabled triggers may hold at most {MAX_ENABLED_ACTIONS} actions in all (the others hold {others}), \
                         so everything one interaction fires commits atomically"
                    ),
                ));
            }
        }
        let before = self.store.trigger(tenant, id).await?;
        let created = before.is_none();
        let changed = before.is_none_or(|b| b.spec != spec);
        let record = TriggerRecord { id: id.clone(), spec, updated_at: self.clock.now() };
        self.store.put_trigger(tenant, &record).await?;
        self.config_changed(tenant);
        if let (true, true, true, Some(profile)) =
            (changed, record.spec.enabled, record.spec.apply_to_existing, record.spec.score_profile())
        {
            self.start_applying(tenant, id, profile).await?;
        }
        Ok((record, created))
    }

    pub async fn trigger(&self, tenant: &TenantId, id: &TriggerId) -> Result<TriggerRecord, ServiceError> {
        self.store.trigger(tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("trigger {id}")))
    }

    pub async fn triggers(&self, tenant: &TenantId) -> Result<Vec<TriggerRecord>, ServiceError> {
        Ok(self.store.triggers(tenant).await?)
    }
}
