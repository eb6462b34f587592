//! The pure scoring engine: (catalog, contact state, interaction, now) → outcome.
//!
//! No I/O, no clock, no randomness: the same inputs always give the same
//! ledger entries, state and fired actions, which is what makes redelivery
//! and optimistic-concurrency retries safe. Adapters load the inputs and
//! commit the outcome atomically.

pub mod action;
pub mod budget;
pub mod condition;
pub mod deadline;
pub mod decay;
pub mod duration;
pub mod error;
pub mod interaction;
pub mod ledger;
pub mod points;
pub mod profile;
pub mod replay;
mod rule_index;
pub mod stages;
pub mod template;
pub mod trigger;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DealId, EventId, ProfileId, TriggerId};
use action::{action_id, Action, FiredAction};
use condition::Subject;
use interaction::Interaction;
use ledger::{ContactState, LedgerEntry, ScoreState};
use points::Points;
use profile::{Profile, Rule};
use stages::Pipelines;
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
    /// The tenant's pipelines' stage order, for `move_stage`'s `allow_backwards`.
    pub pipelines: Pipelines,
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
    fn profile(&self, id: &ProfileId) -> Option<&Profile> {
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
        // Most interactions repeat what is known: no copy for an unchanged field.
        if state.fields.get(key) != Some(value) {
            state.fields.insert(key.clone(), value.clone());
        }
    }
    if state.deal().is_some() {
        state.last_contact = Some(interaction.contact_id.clone());
    }
    let mut ledger = Vec::new();
    for profile in &catalog.profiles {
        if !interaction.contact.is_empty() {
            withdraw_fit(profile, &mut state, interaction, now, &mut ledger);
        }
        score_rules(profile, before, &mut state, interaction, now, &mut ledger);
    }
    stages::record(&mut state, interaction);
    deadline::start_and_cancel(&catalog.triggers, &mut state, interaction, now);
    let (actions, adjusted) = react(catalog, before, &mut state, Some(interaction), interaction.id.as_str(), now);
    ledger.extend(adjusted);
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
    let entry = apply_adjustment(catalog, &mut state, profile, change, "manual", now);
    let (actions, mut ledger) = react(catalog, before, &mut state, None, cause.as_str(), now);
    ledger.insert(0, entry);
    Outcome { state, ledger, actions }
}

/// Whether `change` keeps the score, and the ledger entry that explains
/// it, within ±`Points::MAX`: the admin API refuses one that does not,
/// where scoring saturates (`ScoreState::fit`).
pub fn fits(before: &ContactState, profile: &ProfileId, change: &Adjustment, now: DateTime<Utc>) -> bool {
    let current = before.scores.get(profile).map_or(Points::ZERO, |s| s.live_total(now));
    match change.op {
        AdjustOp::Add => current.checked_add(change.points).is_some(),
        AdjustOp::Subtract => current.checked_sub(change.points).is_some(),
        AdjustOp::Set => change.points.checked_sub(current).is_some(),
        AdjustOp::Reset => true,
    }
}

/// Books one adjustment of `profile`'s score; `source` names who made it
/// (`manual`, or `trigger.<id>`) in the entry's rule.
fn apply_adjustment(
    catalog: &Catalog,
    state: &mut ContactState,
    profile: &ProfileId,
    change: Adjustment,
    source: &str,
    now: DateTime<Utc>,
) -> LedgerEntry {
    let version = catalog.profile(profile).map_or(0, |p| p.version);
    let current = state.scores.get(profile).map(|s| s.live_total(now));
    let (op, points) = match change.op {
        AdjustOp::Add => ("add", change.points),
        AdjustOp::Subtract => ("subtract", -change.points),
        AdjustOp::Set => ("set", change.points - current.unwrap_or_default()),
        AdjustOp::Reset => ("reset", Points::ZERO),
    };
    let expires_at = match change.op {
        AdjustOp::Reset => None,
        _ => change.expires_at,
    };
    let mut entry = LedgerEntry {
        seq: state.next_seq,
        profile: profile.clone(),
        version,
        rule: format!("{source}.{op}"),
        points,
        event_id: None,
        at: now,
        expires_at,
        decay: None,
        merged: None,
        saturated: None,
    };
    if change.op == AdjustOp::Reset {
        state.scores.remove(profile);
        state.reset_at.insert(profile.clone(), now);
    } else {
        let score = state.scores.entry(profile.clone()).or_default();
        score.settle(now);
        score.fit(&mut entry, now);
        score.book(&entry, now);
    }
    state.next_seq += 1;
    entry
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
    let (actions, ledger) = react(catalog, before, &mut state, None, cause, now);
    Outcome { state, ledger, actions }
}

/// Fires `trigger` (a score trigger saved with `apply_to_existing`) for a
/// subject whose score already matches it: once per job (`job_started`),
/// and never again for a `once` trigger that already fired. `None` when
/// nothing fires.
pub fn fire_existing(
    catalog: &Catalog,
    before: &ContactState,
    trigger: &TriggerId,
    job_started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Outcome> {
    let trigger = catalog.triggers.iter().find(|t| &t.id == trigger)?;
    let When::Score(filter) = &trigger.when else { return None };
    catalog.profile(&filter.profile)?;
    let already = before.applied.get(&trigger.id) == Some(&job_started)
        || (trigger.runs == Runs::Once && before.fired_once.contains(&trigger.id));
    if already || !filter.holds(score_of(&before.scores, &filter.profile, Some(now))) {
        return None;
    }
    let mut state = before.clone();
    for score in state.scores.values_mut() {
        score.settle(now);
    }
    state.applied.insert(trigger.id.clone(), job_started);
    if trigger.runs == Runs::Once {
        state.fired_once.insert(trigger.id.clone());
    }
    let cause = format!("existing:{}:{}", job_started.timestamp_millis(), state.contact_id);
    let (mut actions, mut adjustments) = (Vec::new(), Vec::new());
    let deal_id = state.deal();
    let firing = Firing { trigger, interaction: None, deal_id: deal_id.as_ref(), cause: &cause, now };
    firing.render(catalog, &state, &mut actions, &mut adjustments);
    stages::record_moves(&mut state, &actions);
    let round_before = state.clone();
    let mut ledger = apply_triggered(catalog, &mut state, adjustments, now);
    let (more, adjusted) = react(catalog, &round_before, &mut state, None, &cause, now);
    actions.extend(more);
    ledger.extend(adjusted);
    Some(Outcome { state, ledger, actions })
}

/// Books, in rule order, the points of each of `profile`'s rules whose
/// condition `interaction` meets and whose `once` and `cap` allow it. Only
/// the rules the interaction's type can match are looked at.
fn score_rules(
    profile: &Profile,
    before: &ContactState,
    state: &mut ContactState,
    interaction: &Interaction,
    now: DateTime<Utc>,
    ledger: &mut Vec<LedgerEntry>,
) {
    let at = interaction.effective_at(now);
    let ContactState { fields, scores, next_seq, .. } = state;
    let subject = Subject { interaction: Some(interaction), fields };
    let had_score = before.scores.contains_key(&profile.id);
    let mut rules = profile.candidates(&interaction.kind);
    // A score is made only once a rule holds: find it first when there is none yet.
    let (score, first) = match scores.get_mut(&profile.id) {
        Some(score) => (score, None),
        None => {
            let Some(first) = rules.find(|rule| rule.when.holds(subject)) else { return };
            (scores.entry(profile.id.clone()).or_default(), Some(first))
        }
    };
    let (mut matched, mut booked) = (false, false);
    for (rule, known_to_hold) in first.map(|rule| (rule, true)).into_iter().chain(rules.map(|rule| (rule, false))) {
        // A spent `once` rule cannot score: skip its condition. (Without an
        // earlier score, `matched` below must stay exact, so it is evaluated.)
        if had_score && rule.once && score.once_rules.contains(&rule.id) {
            continue;
        }
        if !(known_to_hold || rule.when.holds(subject)) {
            continue;
        }
        matched = true;
        if !rule_allows(rule, score, at) {
            continue;
        }
        let mut entry = rule_entry(profile, rule, *next_seq, interaction, at);
        score.fit(&mut entry, now);
        score.book(&entry, now);
        if rule.fit && entry.expires_at.is_none() && entry.decay.is_none() {
            score.fit_points.insert(rule.id.clone(), entry.points);
        }
        record_hit(rule, score, at);
        ledger.push(entry);
        *next_seq += 1;
        booked = true;
    }
    if matched && !booked && !had_score {
        // Only capped or spent rules matched: the contact still has no score here.
        scores.remove(&profile.id);
    }
}

/// The entry `rule` books for `interaction` at `at`, as `seq`.
fn rule_entry(profile: &Profile, rule: &Rule, seq: u64, interaction: &Interaction, at: DateTime<Utc>) -> LedgerEntry {
    LedgerEntry {
        seq,
        profile: profile.id.clone(),
        version: profile.version,
        rule: rule.id.as_str().to_owned(),
        points: rule.points,
        event_id: Some(interaction.id.clone()),
        at,
        expires_at: rule.expires_in.map(|span| at + span.as_delta()),
        decay: rule.decay,
        merged: None,
        saturated: None,
    }
}

/// Withdraws the points of each fit rule that held for the contact and no
/// longer does now that `interaction` changed its fields (country CO became
/// US): one entry of the opposite points, under the rule's id, and the rule
/// may score again once the fields match it again. Points that expire or
/// decay are left to run out on their own.
fn withdraw_fit(
    profile: &Profile,
    state: &mut ContactState,
    interaction: &Interaction,
    now: DateTime<Utc>,
    ledger: &mut Vec<LedgerEntry>,
) {
    let at = interaction.effective_at(now);
    let ContactState { fields, scores, next_seq, .. } = state;
    let Some(score) = scores.get_mut(&profile.id) else { return };
    if score.fit_points.is_empty() {
        return;
    }
    let subject = Subject { interaction: None, fields };
    for rule in profile.rules.iter().filter(|r| r.fit) {
        let Some(&granted) = score.fit_points.get(&rule.id) else { continue };
        if rule.when.holds(subject) {
            continue;
        }
        // What `fit_points` holds never expires or decays, whatever the rule says now.
        let booked = rule_entry(profile, rule, *next_seq, interaction, at);
        let mut entry = LedgerEntry { points: -granted, expires_at: None, decay: None, ..booked };
        score.fit(&mut entry, now);
        score.book(&entry, now);
        score.fit_points.remove(&rule.id);
        score.once_rules.remove(&rule.id);
        ledger.push(entry);
        *next_seq += 1;
    }
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

/// How many rounds of `adjust_score` one change may cascade through.
const MAX_ADJUST_ROUNDS: usize = 3;

/// A score change made by a trigger's `adjust_score` action.
struct TriggeredAdjustment {
    trigger: TriggerId,
    profile: ProfileId,
    change: Adjustment,
}

/// Evaluates triggers on the change from `before` to `state`, applies the
/// `adjust_score` actions they fire (which may fire further score
/// triggers), and returns the actions to deliver and the adjustments'
/// ledger entries. Loop protection: a trigger fires at most once per
/// change, and cascades stop after `MAX_ADJUST_ROUNDS` rounds.
pub(crate) fn react(
    catalog: &Catalog,
    before: &ContactState,
    state: &mut ContactState,
    interaction: Option<&Interaction>,
    cause: &str,
    now: DateTime<Utc>,
) -> (Vec<FiredAction>, Vec<LedgerEntry>) {
    let mut fired_triggers = BTreeSet::new();
    let (mut actions, mut adjustments) = fire_deadlines(catalog, state, now);
    let (more, next) = fire_triggers(catalog, before, state, interaction, cause, now, &mut fired_triggers);
    actions.extend(more);
    adjustments.extend(next);
    let mut ledger = Vec::new();
    for _ in 0..MAX_ADJUST_ROUNDS {
        if adjustments.is_empty() {
            break;
        }
        let round_before = state.clone();
        ledger.extend(apply_triggered(catalog, state, std::mem::take(&mut adjustments), now));
        let (more, next) = fire_triggers(catalog, &round_before, state, None, cause, now, &mut fired_triggers);
        actions.extend(more);
        adjustments = next;
    }
    (actions, ledger)
}

/// Books the `adjust_score` actions triggers fired, skipping profiles that
/// are not published (any more); returns their ledger entries.
fn apply_triggered(
    catalog: &Catalog,
    state: &mut ContactState,
    adjustments: Vec<TriggeredAdjustment>,
    now: DateTime<Utc>,
) -> Vec<LedgerEntry> {
    adjustments
        .into_iter()
        .filter(|adjustment| catalog.profile(&adjustment.profile).is_some())
        .map(|adjustment| {
            let source = format!("trigger.{}", adjustment.trigger);
            apply_adjustment(catalog, state, &adjustment.profile, adjustment.change, &source, now)
        })
        .collect()
}

/// Fires the deadline triggers whose timers ran out by `now`.
fn fire_deadlines(
    catalog: &Catalog,
    state: &mut ContactState,
    now: DateTime<Utc>,
) -> (Vec<FiredAction>, Vec<TriggeredAdjustment>) {
    let (mut fired, mut adjustments) = (Vec::new(), Vec::new());
    for (trigger, timer) in deadline::take_due(&catalog.triggers, state, now) {
        if trigger.runs == Runs::Once && !state.fired_once.insert(trigger.id.clone()) {
            continue;
        }
        let cause = format!("deadline:{}:{}", timer.started_by, timer.due_at.timestamp_millis());
        let firing = Firing { trigger, interaction: None, deal_id: timer.deal.as_ref(), cause: &cause, now };
        let from = fired.len();
        firing.render(catalog, state, &mut fired, &mut adjustments);
        stages::record_moves(state, &fired[from..]);
    }
    (fired, adjustments)
}

/// A profile's score before and after a change, as score triggers compare them.
type OldAndNew = (Option<Points>, Option<Points>);

fn fire_triggers(
    catalog: &Catalog,
    before: &ContactState,
    state: &mut ContactState,
    interaction: Option<&Interaction>,
    cause: &str,
    now: DateTime<Utc>,
    fired_triggers: &mut BTreeSet<TriggerId>,
) -> (Vec<FiredAction>, Vec<TriggeredAdjustment>) {
    let mut fired = Vec::new();
    let mut adjustments = Vec::new();
    // The old and new score of the profile the previous score trigger read
    // (`None`: not published); firing changes no score, and score triggers
    // mostly share a profile, so each is read once.
    let mut last_read: Option<(&ProfileId, Option<OldAndNew>)> = None;
    for trigger in &catalog.triggers {
        if fired_triggers.contains(&trigger.id) {
            continue;
        }
        let (holds_now, entered) = match &trigger.when {
            When::Score(filter) => {
                let scores = match last_read {
                    Some((profile, scores)) if profile == &filter.profile => scores,
                    _ => {
                        let scores = catalog.profile(&filter.profile).map(|_| {
                            (
                                score_of(&before.scores, &filter.profile, None),
                                score_of(&state.scores, &filter.profile, Some(now)),
                            )
                        });
                        last_read = Some((&filter.profile, scores));
                        scores
                    }
                };
                let Some((old, new)) = scores else { continue };
                let holds = filter.holds(new);
                let changed = old != new;
                let entered = holds && !filter.holds(old);
                (holds && (changed || trigger.runs == Runs::Once), entered)
            }
            When::Event(condition) => {
                let Some(interaction) = interaction else { continue };
                let holds = condition.holds(Subject { interaction: Some(interaction), fields: &state.fields });
                // Entering: a match after the contact's previous interaction did not match.
                let entered = holds && !state.matched.contains(&trigger.id);
                if trigger.runs == Runs::OnEnter && !holds {
                    state.matched.remove(&trigger.id);
                } else if trigger.runs == Runs::OnEnter {
                    state.matched.insert(trigger.id.clone());
                }
                (holds, entered)
            }
            When::Deadline(_) => continue,
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
        fired_triggers.insert(trigger.id.clone());
        // A deal's triggers act on the deal, and on the contact who last acted on it.
        let deal_id = state.deal().or_else(|| interaction.and_then(|i| i.deal_id.clone()));
        let firing = Firing { trigger, interaction, deal_id: deal_id.as_ref(), cause, now };
        let from = fired.len();
        firing.render(catalog, state, &mut fired, &mut adjustments);
        stages::record_moves(state, &fired[from..]);
    }
    (fired, adjustments)
}

/// One trigger firing: what its actions are rendered from.
struct Firing<'a> {
    trigger: &'a Trigger,
    interaction: Option<&'a Interaction>,
    deal_id: Option<&'a DealId>,
    /// Seeds the actions' ids: the same cause always fires the same ids.
    cause: &'a str,
    now: DateTime<Utc>,
}

impl Firing<'_> {
    /// Renders the actions to deliver into `fired`, and the score
    /// adjustments the engine applies itself into `adjustments`.
    fn render(
        &self,
        catalog: &Catalog,
        state: &ContactState,
        fired: &mut Vec<FiredAction>,
        adjustments: &mut Vec<TriggeredAdjustment>,
    ) {
        let trigger = self.trigger;
        let cx = Context {
            contact_id: state.acting_contact(),
            fields: &state.fields,
            deal_id: self.deal_id,
            event: self.interaction,
            trigger_id: &trigger.id,
            trigger_name: &trigger.name,
            scores: &state.scores,
            now: self.now,
        };
        for (position, action) in trigger.actions.iter().enumerate() {
            if let Action::AdjustScore { profile, op, points, expires_in } = action {
                let expires_at = expires_in.map(|span| self.now + span.as_delta());
                let change = Adjustment { op: *op, points: *points, expires_at };
                adjustments.push(TriggeredAdjustment { trigger: trigger.id.clone(), profile: profile.clone(), change });
                continue;
            }
            let skipped = match action {
                Action::MoveStage { pipeline, stage, allow_backwards, .. } => {
                    catalog.pipelines.refuse_move(state, self.deal_id, pipeline, stage, *allow_backwards)
                }
                _ => None,
            };
            fired.push(FiredAction {
                id: action_id(self.cause, &trigger.id, position),
                trigger: trigger.id.clone(),
                kind: action.kind().to_owned(),
                params: action.params(&cx, &catalog.score_field),
                contact_id: state.acting_contact().clone(),
                deal_id: self.deal_id.cloned(),
                fired_at: self.now,
                skipped,
            });
        }
    }
}

#[cfg(test)]
mod tests;
