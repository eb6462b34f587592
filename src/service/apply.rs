//! Configuration as code: tenants, profiles and triggers from JSON files.
//!
//! `scorehook serve --config examples/` and `scorehook apply -f dir/` read
//! every `*.json` file in a directory (or one file). Each describes one
//! tenant with its profiles and triggers; profiles are published as they are
//! applied. Applying the same files twice changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::admin::TenantInput;
use super::{Caller, Service, ServiceError};
use crate::engine::profile::ProfileSpec;
use crate::engine::trigger::TriggerSpec;
use crate::ids::{ProfileId, TenantId, TriggerId};
use crate::tenant::{Provider, Secret};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    pub tenant: TenantId,
    pub provider: Provider,
    /// Required to create the tenant; an existing tenant keeps its secret when omitted.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub actions_url: Option<String>,
    /// The outbound signing secret (`whsec_…`); made on creation when
    /// omitted (and shown once), kept when omitted on update.
    #[serde(default)]
    pub signing_secret: Option<String>,
    #[serde(default)]
    pub crm: Map<String, Value>,
    #[serde(default)]
    pub profiles: BTreeMap<ProfileId, ProfileSpec>,
    #[serde(default)]
    pub triggers: BTreeMap<TriggerId, TriggerSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid tenant file: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {source}")]
    Rejected { path: PathBuf, source: ServiceError },
}

/// What applying one file did; `token` is the new tenant's admin token and
/// `signing_secret` the signing secret made for it (each shown once).
#[derive(Debug)]
pub struct Applied {
    pub tenant: TenantId,
    pub token: Option<String>,
    pub signing_secret: Option<String>,
    pub profiles: usize,
    pub triggers: usize,
}

fn files(path: &Path) -> Result<Vec<PathBuf>, ApplyError> {
    let read_error = |source| ApplyError::Read { path: path.to_owned(), source };
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every tenant file under `path` (a directory's `*.json` in name order, or one file), parsed.
pub fn read_tenant_files(path: &Path) -> Result<Vec<(PathBuf, TenantFile)>, ApplyError> {
    files(path)?
        .into_iter()
        .map(|file| {
            let text =
                std::fs::read_to_string(&file).map_err(|source| ApplyError::Read { path: file.clone(), source })?;
            let doc = serde_json::from_str(&text).map_err(|source| ApplyError::Parse { path: file.clone(), source })?;
            Ok((file, doc))
        })
        .collect()
}

impl Service {
    /// Applies every tenant file under `path` (a directory or one file).
    pub async fn apply(&self, path: &Path) -> Result<Vec<Applied>, ApplyError> {
        let mut applied = Vec::new();
        for (file, doc) in read_tenant_files(path)? {
            let result =
                self.apply_tenant(doc).await.map_err(|source| ApplyError::Rejected { path: file.clone(), source })?;
            applied.push(result);
        }
        Ok(applied)
    }

    async fn apply_tenant(&self, doc: TenantFile) -> Result<Applied, ServiceError> {
        let input = TenantInput {
            provider: doc.provider,
            webhook_secret: doc.webhook_secret.map(Secret::new),
            actions_url: doc.actions_url,
            crm: doc.crm,
            signing_secret: doc.signing_secret.map(Secret::new),
        };
        let written = self.put_tenant(&Caller::Operator, &doc.tenant, input).await?;
        let tenant = &doc.tenant;
        for (id, spec) in &doc.profiles {
            self.put_profile(tenant, id, spec.clone()).await.map_err(|e| in_section(e, "profiles", id.as_str()))?;
            self.publish_profile(tenant, id).await?;
        }
        for (id, spec) in &doc.triggers {
            self.put_trigger(tenant, id, spec.clone()).await.map_err(|e| in_section(e, "triggers", id.as_str()))?;
        }
        Ok(Applied {
            tenant: tenant.clone(),
            token: written.token,
            signing_secret: written.signing_secret,
            profiles: doc.profiles.len(),
            triggers: doc.triggers.len(),
        })
    }
}

/// Prefixes a field path with where it sits in the file, e.g. `profiles.engagement.rules[0]`.
fn in_section(error: ServiceError, section: &str, id: &str) -> ServiceError {
    match error {
        ServiceError::Invalid(mut e) => {
            e.path = format!("{section}.{id}.{}", e.path);
            ServiceError::Invalid(e)
        }
        other => other,
    }
}
