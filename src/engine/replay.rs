//! Scoring history again: what a profile would have booked for a contact
//! over the interactions already stored.
//!
//! `replay` runs one profile over one contact's history exactly as live
//! scoring did (same order, each interaction scored at the instant it was
//! received), so once, caps, expiry and decay count from each interaction's
//! own time. `recompute` turns a replay into an outcome for the contact's
//! current state: it is how publishing a profile applies it to the past.
//! `Simulation` aggregates replays into a report. All pure, like the rest
//! of the engine.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::interaction::Recorded;
use super::ledger::{ContactState, LedgerEntry, ScoreState, RECOMPUTE};
use super::points::Points;
use super::profile::Profile;
use super::trigger::{Trigger, When};
use super::{evaluate, react, Catalog, Outcome};
use crate::ids::{ContactId, ProfileId, TriggerId};

/// What a profile books over one contact's history.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// `None` when nothing scored.
    pub score: Option<ScoreState>,
    pub entries: Vec<LedgerEntry>,
    /// How often each trigger fired over the history.
    pub fired: BTreeMap<TriggerId, u32>,
}

/// The score triggers on `profile`: the ones a simulation of it counts.
pub fn score_triggers_on<'a>(triggers: impl IntoIterator<Item = &'a Trigger>, profile: &ProfileId) -> Vec<Trigger> {
    triggers.into_iter().filter(|t| matches!(&t.when, When::Score(f) if &f.profile == profile)).cloned().collect()
}

/// Runs `profile` (and `triggers`, only to count them) over `history`, in
/// the order given, then settles at `now`.
pub fn replay(
    profile: &Profile,
    triggers: &[Trigger],
    contact: &ContactId,
    history: &[Recorded],
    now: DateTime<Utc>,
) -> Replay {
    let catalog = Catalog { profiles: vec![profile.clone()], triggers: triggers.to_vec(), ..Catalog::default() };
    let mut state = ContactState::new(contact.clone());
    let mut replay = Replay::default();
    for recorded in history {
        let at = recorded.received_at.min(now);
        let outcome = evaluate(&catalog, &state, &recorded.interaction, at);
        for trigger in &catalog.triggers {
            // A firing queues its actions, or books its adjust_score entries.
            let adjusted = format!("trigger.{}.", trigger.id);
            if outcome.actions.iter().any(|a| a.trigger == trigger.id)
                || outcome.ledger.iter().any(|e| e.rule.starts_with(&adjusted))
            {
                *replay.fired.entry(trigger.id.clone()).or_default() += 1;
            }
        }
        replay.entries.extend(outcome.ledger);
        state = outcome.state;
    }
    replay.score = state.scores.remove(&profile.id).map(|mut score| {
        score.settle(now);
        score
    });
    replay
}

/// Rebuilds `profile`'s score for the contact in `before` from its history:
/// the points it would have earned, plus the manual adjustments made since
/// the last reset (`manual`, in order). Score triggers see the change as
/// any other. `None` when the score would not change.
pub fn recompute(
    catalog: &Catalog,
    before: &ContactState,
    profile: &Profile,
    history: &[Recorded],
    manual: &[LedgerEntry],
    cause: &str,
    now: DateTime<Utc>,
) -> Option<Outcome> {
    let since = before.reset_at.get(&profile.id);
    let relevant: Vec<Recorded> =
        history.iter().filter(|r| since.is_none_or(|reset| r.received_at > *reset)).cloned().collect();
    let replayed = replay(profile, &[], &before.contact_id, &relevant, now);
    let mut score = replayed.score.unwrap_or_default();
    let mut entries = compact(replayed.entries, now);
    for entry in manual.iter().filter(|e| e.is_manual() && !e.is_reset()) {
        let mut entry = entry.clone();
        score.fit(&mut entry, now);
        score.book(&entry, now);
        entries.push(entry);
    }
    let old = before.scores.get(&profile.id);
    let rebuilt = (!entries.is_empty()).then_some(score);
    let unchanged = match (old, &rebuilt) {
        (None, None) => true,
        (Some(old), Some(new)) => {
            let mut old = old.clone();
            old.settle(now);
            old.same_as(new)
        }
        _ => false,
    };
    if unchanged {
        return None;
    }

    let mut state = before.clone();
    for score in state.scores.values_mut() {
        score.settle(now);
    }
    let marker = LedgerEntry {
        seq: 0,
        profile: profile.id.clone(),
        version: profile.version,
        rule: RECOMPUTE.to_owned(),
        points: Points::ZERO,
        event_id: None,
        at: now,
        expires_at: None,
        decay: None,
        merged: None,
        saturated: None,
    };
    let mut ledger = Vec::with_capacity(entries.len() + 1);
    for entry in std::iter::once(marker).chain(entries) {
        ledger.push(LedgerEntry { seq: state.next_seq, ..entry });
        state.next_seq += 1;
    }
    match rebuilt {
        Some(mut score) => {
            score.updated_at = Some(now);
            state.scores.insert(profile.id.clone(), score);
        }
        None => {
            state.scores.remove(&profile.id);
        }
    }
    let (actions, adjusted) = react(catalog, before, &mut state, None, cause, now);
    ledger.extend(adjusted);
    Some(Outcome { state, ledger, actions })
}

/// Keeps every entry whose value may still change, drops those worth
/// nothing for good, and merges the rest (points that never change) into
/// one entry per rule, so a long history books a bounded ledger.
fn compact(entries: Vec<LedgerEntry>, now: DateTime<Utc>) -> Vec<LedgerEntry> {
    let mut all = Vec::new();
    let mut fixed: BTreeMap<String, Vec<LedgerEntry>> = BTreeMap::new();
    for entry in entries {
        if entry.expires_at.is_none() && entry.decay.is_none() {
            fixed.entry(entry.rule.clone()).or_default().push(entry);
        } else if entry.value_at(now) != Points::ZERO {
            all.push(entry);
        }
    }
    for (_, group) in fixed {
        match group.as_slice() {
            [single] => all.push(single.clone()),
            [.., last] => all.push(LedgerEntry {
                points: group.iter().map(|e| e.points).sum(),
                event_id: None,
                at: last.at,
                merged: u32::try_from(group.len()).ok(),
                saturated: group
                    .iter()
                    .any(|e| e.saturated.is_some())
                    .then(|| group.iter().map(|e| e.saturated.unwrap_or(e.points)).sum()),
                ..last.clone()
            }),
            [] => {}
        }
    }
    all.sort_by_key(|e| e.at);
    all
}

/// Score distribution, top contacts and trigger counts over many replays.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    pub contacts: usize,
    pub scored: usize,
    pub bands: Vec<Band>,
    pub top: Vec<TopContact>,
    pub triggers: BTreeMap<TriggerId, u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Band {
    /// Inclusive lower bound.
    pub from: Points,
    /// Exclusive upper bound.
    pub to: Points,
    pub count: usize,
}

/// One of the top scores: a contact's, or a deal's (serialized as `deal_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct TopContact {
    pub contact_id: ContactId,
    pub score: Points,
}

impl Serialize for TopContact {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("TopContact", 2)?;
        match self.contact_id.deal() {
            Some(deal) => out.serialize_field("deal_id", &deal)?,
            None => out.serialize_field("contact_id", &self.contact_id)?,
        }
        out.serialize_field("score", &self.score)?;
        out.end()
    }
}

impl Simulation {
    /// `band` is the width of each score band (positive); `top` how many contacts to list.
    pub fn report(results: &[(ContactId, Replay)], band: Points, top: usize) -> Self {
        let mut scores: Vec<(ContactId, Points)> = results
            .iter()
            .filter_map(|(contact, replay)| replay.score.as_ref().map(|s| (contact.clone(), s.total)))
            .collect();
        let mut bands: BTreeMap<i64, usize> = BTreeMap::new();
        let width = band.cents().max(1);
        for (_, score) in &scores {
            *bands.entry(score.cents().div_euclid(width)).or_default() += 1;
        }
        let mut triggers = BTreeMap::new();
        for (_, replay) in results {
            for (trigger, count) in &replay.fired {
                *triggers.entry(trigger.clone()).or_default() += count;
            }
        }
        scores.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Simulation {
            contacts: results.len(),
            scored: scores.len(),
            bands: bands
                .into_iter()
                .map(|(index, count)| Band {
                    from: Points::from_cents(index.saturating_mul(width)),
                    to: Points::from_cents(index.saturating_add(1).saturating_mul(width)),
                    count,
                })
                .collect(),
            top: scores.into_iter().take(top).map(|(contact_id, score)| TopContact { contact_id, score }).collect(),
            triggers,
        }
    }
}
