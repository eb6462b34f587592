//! `scorehook simulate`: a profile run over interactions from files (or
//! standard input), with no server and no store. The same replay and report
//! as the simulate endpoint, for tuning rules against an export of past
//! events; a long run reports its progress as it goes.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::engine::interaction::{Interaction, Recorded};
use crate::engine::points::Points;
use crate::engine::profile::{ProfileSpec, SubjectKind};
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
/// a JSON Lines file of interactions (`-`: standard input), and optionally
/// a file of triggers (`{"<id>": {trigger spec}, …}`).
#[derive(Clone)]
pub struct OfflineRun<'a> {
    pub profile: &'a Path,
    pub events: &'a Path,
    pub triggers: Option<&'a Path>,
    pub band: Points,
    pub top: usize,
    /// The instant scores are reported at (expiry and decay count up to it).
    pub now: DateTime<Utc>,
    /// Told how far the run has come every `progress_every` events read
    /// and contacts replayed (a line such as `120000 events read`).
    pub progress: Option<&'a dyn Fn(&str)>,
    pub progress_every: usize,
}

/// The events' lines: the file, or standard input for `-`.
fn event_lines(path: &Path) -> Result<Box<dyn BufRead>, OfflineError> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = std::fs::File::open(path).map_err(|source| OfflineError::Read { path: path.to_owned(), source })?;
    Ok(Box::new(std::io::BufReader::new(file)))
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

    let report = |done: usize, what: &str| {
        if let Some(progress) =
            run.progress.filter(|_| run.progress_every > 0 && done.is_multiple_of(run.progress_every))
        {
            progress(&format!("{done} {what}"));
        }
    };
    let mut by_contact: BTreeMap<ContactId, Vec<Recorded>> = BTreeMap::new();
    for (number, line) in event_lines(run.events)?.lines().enumerate() {
        let line = line.map_err(|source| OfflineError::Read { path: run.events.to_owned(), source })?;
        report(number + 1, "events read");
        if line.trim().is_empty() {
            continue;
        }
        let interaction: Interaction =
            serde_json::from_str(&line).map_err(|e| invalid(run.events, format!("line {}: {e}", number + 1)))?;
        // A deal profile scores each deal on the interactions naming it.
        let subject = match (profile.subject, &interaction.deal_id) {
            (SubjectKind::Contact, _) => interaction.contact_id.clone(),
            (SubjectKind::Deal, Some(deal)) => ContactId::for_deal(deal),
            (SubjectKind::Deal, None) => continue,
        };
        let recorded = Recorded { received_at: interaction.occurred_at, interaction };
        by_contact.entry(subject).or_default().push(recorded);
    }
    let contacts = by_contact.len();
    let results: Vec<_> = by_contact
        .into_iter()
        .enumerate()
        .map(|(done, (contact, mut history))| {
            // A file is history in the order things happened.
            history.sort_by_key(|r| r.received_at);
            let replayed = replay(&profile, &triggers, &contact, &history, run.now);
            report(done + 1, &format!("of {contacts} contacts replayed"));
            (contact, replayed)
        })
        .collect();
    Ok(Simulation::report(&results, run.band, run.top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deal_profile_scores_each_deal_on_the_interactions_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("heat.json");
        let events = dir.path().join("events.jsonl");
        std::fs::write(&profile, r#"{"name": "Heat", "subject": "deal", "rules": [{"id": "call", "when": {"type": "call.outgoing"}, "points": 2}]}"#).unwrap();
        let lines: Vec<String> = [("a", Some("d1")), ("b", Some("d1")), ("a", Some("d2")), ("a", None)]
            .iter()
            .enumerate()
            .map(|(n, (contact, deal))| {
                serde_json::json!({"id": format!("e{n}"), "type": "call.outgoing", "contact_id": contact,
                    "deal_id": deal, "occurred_at": "2026-11-22T10:00:00Z"})
                .to_string()
            })
            .collect();
        std::fs::write(&events, lines.join("\n")).unwrap();
        let now = "2026-11-23T00:00:00Z".parse().unwrap();
        let told = std::cell::RefCell::new(Vec::new());
        let progress = |line: &str| told.borrow_mut().push(line.to_owned());
        let run = OfflineRun {
            profile: &profile,
            events: &events,
            triggers: None,
            band: Points::whole(1),
            top: 5,
            now,
            progress: Some(&progress),
            progress_every: 2,
        };
        let report = serde_json::to_value(simulate(&run).unwrap()).unwrap();
        assert_eq!(report["contacts"], 2, "two deals; the interaction without a deal is ignored");
        assert_eq!(report["top"], serde_json::json!([{"deal_id": "d1", "score": 4}, {"deal_id": "d2", "score": 2}]));
        assert_eq!(*told.borrow(), ["2 events read", "4 events read", "2 of 2 contacts replayed"]);
    }
}
