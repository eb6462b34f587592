//! `scorehook simulate`: a profile run over interactions from files, with
//! no server and no store. The same replay and report as the simulate
//! endpoint, for tuning rules against an export of past events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::engine::interaction::{Interaction, Recorded};
use crate::engine::points::Points;
use crate::engine::profile::ProfileSpec;
use crate::engine::replay::{replay, score_triggers_on, Simulation};
use crate::engine::trigger::TriggerSpec;
use crate::engine::ConfigError;
use crate::ids::{ContactId, ProfileId, TriggerId};

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Config { path: PathBuf, source: ConfigError },
}

/// What to simulate: a profile file (a profile spec as the API takes it),
/// a JSON Lines file of interactions, and optionally a file of triggers
/// (`{"<id>": {trigger spec}, …}`).
#[derive(Debug, Clone)]
pub struct OfflineRun<'a> {
    pub profile: &'a Path,
    pub events: &'a Path,
    pub triggers: Option<&'a Path>,
    pub band: Points,
    pub top: usize,
    /// The instant scores are reported at (expiry and decay count up to it).
    pub now: DateTime<Utc>,
}

fn read(path: &Path) -> Result<String, OfflineError> {
    std::fs::read_to_string(path).map_err(|source| OfflineError::Read { path: path.to_owned(), source })
}

fn invalid(path: &Path, message: impl Into<String>) -> OfflineError {
    OfflineError::Invalid { path: path.to_owned(), message: message.into() }
}

pub fn simulate(run: &OfflineRun<'_>) -> Result<Simulation, OfflineError> {
    if run.band <= Points::ZERO {
        return Err(invalid(run.profile, "--band must be positive"));
    }
    // The profile's id is its file name, so score triggers can name it.
    let stem = run.profile.file_stem().and_then(|s| s.to_str()).unwrap_or("profile");
    let id = ProfileId::parse(stem).map_err(|e| invalid(run.profile, format!("file name as profile id: {e}")))?;
    let spec: ProfileSpec =
        serde_json::from_str(&read(run.profile)?).map_err(|e| invalid(run.profile, e.to_string()))?;
    let profile =
        spec.compile(&id, 1).map_err(|source| OfflineError::Config { path: run.profile.to_owned(), source })?;

    let mut triggers = Vec::new();
    if let Some(path) = run.triggers {
        let specs: BTreeMap<TriggerId, TriggerSpec> =
            serde_json::from_str(&read(path)?).map_err(|e| invalid(path, e.to_string()))?;
        for (id, spec) in specs {
            let trigger = spec.compile(&id).map_err(|source| OfflineError::Config { path: path.to_owned(), source })?;
            triggers.push(trigger);
        }
    }
    let triggers = score_triggers_on(&triggers, &id);

    let mut by_contact: BTreeMap<ContactId, Vec<Recorded>> = BTreeMap::new();
    for (number, line) in read(run.events)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let interaction: Interaction =
            serde_json::from_str(line).map_err(|e| invalid(run.events, format!("line {}: {e}", number + 1)))?;
        let recorded = Recorded { received_at: interaction.occurred_at, interaction };
        by_contact.entry(recorded.interaction.contact_id.clone()).or_default().push(recorded);
    }
    let results: Vec<_> = by_contact
        .into_iter()
        .map(|(contact, mut history)| {
            // A file is history in the order things happened.
            history.sort_by_key(|r| r.received_at);
            let replayed = replay(&profile, &triggers, &contact, &history, run.now);
            (contact, replayed)
        })
        .collect();
    Ok(Simulation::report(&results, run.band, run.top))
}
