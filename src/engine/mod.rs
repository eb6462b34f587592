//! The pure scoring engine: (catalog, contact state, interaction, now) → outcome.
//!
//! No I/O, no clock, no randomness: the same inputs always give the same
//! ledger entries, state and fired actions, which is what makes redelivery
//! and optimistic-concurrency retries safe. Adapters load the inputs and
//! commit the outcome atomically.

pub mod action;
pub mod condition;
pub mod decay;
pub mod duration;
pub mod error;
pub mod interaction;
pub mod ledger;
pub mod points;
pub mod profile;
pub mod replay;
pub mod template;
pub mod trigger;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{EventId, ProfileId};
use action::{action_id, FiredAction};
use condition::Subject;
use interaction::Interaction;
use ledger::{ContactState, LedgerEntry, ScoreState};
use points::Points;
use profile::{Profile, Rule};
use template::Context;
use trigger::{Runs, Trigger, When};

pub use error::ConfigError;

/// A tenant's compiled configuration: published profiles and enabled triggers.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub profiles: Vec<Profile>,
    pub triggers: Vec<Trigger>,
    /// The contact field `set_field` writes when the action names none.
    pub score_field: String,
}

/// What one interaction or adjustment changes; committed as one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: ContactState,
    pub ledger: Vec<LedgerEntry>,
    pub actions: Vec<FiredAction>,
}

/// A manual score change from the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustOp {
    Add,
    Subtract,
    Set,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adjustment {
    pub op: AdjustOp,
    pub points: Points,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Catalog {
    pub(crate) fn profile(&self, id: &ProfileId) -> Option<&Profile> {
        self.profiles.iter().find(|p| &p.id == id)
    }
}

/// Scores one interaction for the contact whose state is given.
pub fn evaluate(catalog: &Catalog, before: &ContactState, interaction: &Interaction, now: DateTime<Utc>) -> Outcome {
    let mut state = before.clone();
    for score in state.scores.values_mut() {
        score.settle(now);
    }
    for (key, value) in &interaction.contact {
        state.fields.insert(key.clone(), value.clone());
    }
    let at = interaction.effective_at(now);
    let mut ledger = Vec::new();
    for profile in &catalog.profiles {
        let subject = Subject { interaction: Some(interaction), fields: &state.fields };
        let matching: Vec<&Rule> = profile.rules.iter().filter(|rule| rule.when.holds(subject)).collect();
        if matching.is_empty() {
            continue;
        }
        let score = state.scores.entry(profile.id.clone()).or_default();
        let mut booked = false;
        for rule in matching {
            if !rule_allows(rule, score, at) {
                continue;
            }
            let entry = LedgerEntry {
                seq: state.next_seq,
                profile: profile.id.clone(),
                version: profile.version,
                rule: rule.id.to_string(),
                points: rule.points,
                event_id: Some(interaction.id.clone()),
                at,
                expires_at: rule.expires_in.map(|span| at + span.as_delta()),
                decay: rule.decay,
                merged: None,
            };
            score.book(&entry, now);
            record_hit(rule, score, at);
            ledger.push(entry);
            state.next_seq += 1;
            booked = true;
        }
        if !booked && !before.scores.contains_key(&profile.id) {
            // Only capped or spent rules matched: the contact still has no score here.
            state.scores.remove(&profile.id);
        }
    }
    let actions = fire_triggers(catalog, before, &mut state, Some(interaction), interaction.id.as_str(), now);
    Outcome { state, ledger, actions }
}

/// Applies a manual change to one profile's score and evaluates score triggers.
/// `cause` identifies the request (it seeds the fired actions' ids).
pub fn adjust(
    catalog: &Catalog,
    before: &ContactState,
    profile: &ProfileId,
    change: Adjustment,
    cause: &EventId,
    now: DateTime<Utc>,
) -> Outcome {
    let mut state = before.clone();
    let version = catalog.profile(profile).map_or(0, |p| p.version);
    let current = state.scores.get(profile).map(|s| s.live_total(now));
    let (rule, points) = match change.op {
        AdjustOp::Add => (ledger::MANUAL_ADD, change.points),
        AdjustOp::Subtract => (ledger::MANUAL_SUBTRACT, -change.points),
        AdjustOp::Set => (ledger::MANUAL_SET, change.points - current.unwrap_or_default()),
        AdjustOp::Reset => (ledger::MANUAL_RESET, Points::ZERO),
    };
    let expires_at = match change.op {
        AdjustOp::Reset => None,
        _ => change.expires_at,
    };
    let entry = LedgerEntry {
        seq: state.next_seq,
        profile: profile.clone(),
        version,
        rule: rule.to_owned(),
        points,
        event_id: None,
        at: now,
        expires_at,
        decay: None,
        merged: None,
    };
    if change.op == AdjustOp::Reset {
        state.scores.remove(profile);
        state.reset_at.insert(profile.clone(), now);
    } else {
        let score = state.scores.entry(profile.clone()).or_default();
        score.settle(now);
        score.book(&entry, now);
    }
    state.next_seq += 1;
    let actions = fire_triggers(catalog, before, &mut state, None, cause.as_str(), now);
    Outcome { state, ledger: vec![entry], actions }
}

/// Settles every score at `now` (expired points stop counting, decay steps
/// apply) and evaluates
/// score triggers on the result: how a drop below a threshold fires `lt`
/// without any interaction. `cause` seeds the fired actions' ids.
pub fn settle(catalog: &Catalog, before: &ContactState, cause: &str, now: DateTime<Utc>) -> Outcome {
    let mut state = before.clone();
    for score in state.scores.values_mut() {
        score.settle(now);
    }
    let actions = fire_triggers(catalog, before, &mut state, None, cause, now);
    Outcome { state, ledger: Vec::new(), actions }
}

/// Whether `once` and `cap` still let this rule score at `at`.
fn rule_allows(rule: &Rule, score: &ScoreState, at: DateTime<Utc>) -> bool {
    if rule.once && score.once_rules.contains(&rule.id) {
        return false;
    }
    match rule.cap {
        Some(cap) => {
            let window_start = at - cap.per.as_delta();
            let hits =
                score.cap_hits.get(&rule.id).map_or(0, |hits| hits.iter().filter(|&&t| t > window_start).count());
            hits < cap.max as usize
        }
        None => true,
    }
}

fn record_hit(rule: &Rule, score: &mut ScoreState, at: DateTime<Utc>) {
    if rule.once {
        score.once_rules.insert(rule.id.clone());
    }
    if let Some(cap) = rule.cap {
        let window_start = at - cap.per.as_delta();
        let hits = score.cap_hits.entry(rule.id.clone()).or_default();
        hits.retain(|&t| t > window_start);
        hits.push(at);
    }
}

/// The score a trigger compares: what was last stored before, the settled value after.
fn score_of(
    scores: &BTreeMap<ProfileId, ScoreState>,
    profile: &ProfileId,
    now: Option<DateTime<Utc>>,
) -> Option<Points> {
    scores.get(profile).map(|s| match now {
        Some(now) => s.live_total(now),
        None => s.total,
    })
}

pub(crate) fn fire_triggers(
    catalog: &Catalog,
    before: &ContactState,
    state: &mut ContactState,
    interaction: Option<&Interaction>,
    cause: &str,
    now: DateTime<Utc>,
) -> Vec<FiredAction> {
    let mut fired = Vec::new();
    for trigger in &catalog.triggers {
        let (holds_now, entered) = match &trigger.when {
            When::Score(filter) => {
                if catalog.profile(&filter.profile).is_none() {
                    continue;
                }
                let old = score_of(&before.scores, &filter.profile, None);
                let new = score_of(&state.scores, &filter.profile, Some(now));
                let holds = filter.holds(new);
                let changed = old != new;
                let entered = holds && !filter.holds(old);
                (holds && (changed || trigger.runs == Runs::Once), entered)
            }
            When::Event(condition) => {
                let holds = interaction
                    .is_some_and(|i| condition.holds(Subject { interaction: Some(i), fields: &state.fields }));
                (holds, holds)
            }
        };
        let fires = match trigger.runs {
            Runs::EveryTime => holds_now,
            Runs::OnEnter => entered,
            Runs::Once => holds_now && !state.fired_once.contains(&trigger.id),
        };
        if !fires {
            continue;
        }
        if trigger.runs == Runs::Once {
            state.fired_once.insert(trigger.id.clone());
        }
        let cx = Context {
            contact_id: &state.contact_id,
            fields: &state.fields,
            deal_id: interaction.and_then(|i| i.deal_id.as_ref()),
            event: interaction,
            trigger_id: &trigger.id,
            trigger_name: &trigger.name,
            scores: &state.scores,
            now,
        };
        for (position, action) in trigger.actions.iter().enumerate() {
            fired.push(FiredAction {
                id: action_id(cause, &trigger.id, position),
                trigger: trigger.id.clone(),
                kind: action.kind().to_owned(),
                params: action.params(&cx, &catalog.score_field),
                contact_id: state.contact_id.clone(),
                deal_id: cx.deal_id.cloned(),
                fired_at: now,
            });
        }
    }
    fired
}

#[cfg(test)]
mod tests;
