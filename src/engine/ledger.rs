//! A contact's scoring state and the ledger entries that explain it.
//!
//! The ledger is the append-only truth: a score is the sum of its entries'
//! current values (expired entries count zero, decayed ones their decayed
//! value) since the last reset. `ScoreState::total` is a cache of that sum;
//! `pending` holds the entries whose value will still change and when, so the
//! cache can be settled exactly at any instant without reading the ledger.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::deadline::Timer;
use super::decay::Decay;
use super::points::Points;
use super::stages::DealStage;
use crate::ids::{ContactId, DealId, EventId, ProfileId, RuleId, TriggerId};

/// The `rule` of a ledger entry written by a manual adjustment (rule ids cannot contain a dot).
pub const MANUAL_ADD: &str = "manual.add";
pub const MANUAL_SUBTRACT: &str = "manual.subtract";
pub const MANUAL_SET: &str = "manual.set";
pub const MANUAL_RESET: &str = "manual.reset";
/// The marker a recompute books before the entries it rebuilt from history.
pub const RECOMPUTE: &str = "profile.recompute";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position in the contact's ledger; orders entries and keys them in the store.
    pub seq: u64,
    pub profile: ProfileId,
    /// The profile version whose rule booked this entry.
    pub version: u32,
    /// A rule id, or `manual.*`.
    pub rule: String,
    pub points: Points,
    pub event_id: Option<EventId>,
    #[serde(with = "crate::timestamp")]
    pub at: DateTime<Utc>,
    #[serde(default, with = "crate::timestamp::option")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<Decay>,
    /// Set on an entry a recompute merged from this many interactions'
    /// points that never change (no expiry, no decay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<u32>,
    /// Set when booking all the points asked for (this value) would have
    /// taken the score past its bound (±`Points::MAX`): `points` is the
    /// part that was booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturated: Option<Points>,
}

impl LedgerEntry {
    /// What the entry counts at `now`: its points, decayed, or zero once expired.
    pub fn value_at(&self, now: DateTime<Utc>) -> Points {
        value_at(self.points, self.at, self.expires_at, self.decay, now)
    }

    /// A reset (by hand or by a trigger) or a recompute: entries before it
    /// no longer explain the score. Rule ids cannot hold a dot, so no rule's
    /// entry ends in `.reset`.
    pub fn is_reset(&self) -> bool {
        self.rule.ends_with(".reset") || self.rule == RECOMPUTE
    }

    /// An adjustment by hand (`manual.*`) or by a trigger's `adjust_score`
    /// (`trigger.<id>.*`): not rebuilt from history, so a recompute keeps it.
    pub fn is_manual(&self) -> bool {
        self.rule.starts_with("manual.") || self.rule.starts_with("trigger.")
    }
}

fn value_at(
    points: Points,
    at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    decay: Option<Decay>,
    now: DateTime<Utc>,
) -> Points {
    if expires_at.is_some_and(|t| t <= now) {
        return Points::ZERO;
    }
    match decay {
        Some(decay) => decay.apply(points, decay.steps(at, now)),
        None => points,
    }
}

/// A counted entry whose value will still change by itself: it expires,
/// decays, or both. `counted` is the part of `total` it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// When the value next changes; `pending` is sorted by it.
    #[serde(with = "crate::timestamp")]
    pub next_at: DateTime<Utc>,
    pub points: Points,
    #[serde(with = "crate::timestamp")]
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::timestamp::option")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<Decay>,
    pub counted: Points,
}

impl Pending {
    fn value_at(&self, now: DateTime<Utc>) -> Points {
        value_at(self.points, self.at, self.expires_at, self.decay, now)
    }

    /// The next instant after `now` the value (`value` at `now`) changes;
    /// `None` once it is final (expired, or decayed to zero).
    fn next_change_after(&self, now: DateTime<Utc>, value: Points) -> Option<DateTime<Utc>> {
        if self.expires_at.is_some_and(|t| t <= now) {
            return None;
        }
        let step = match self.decay {
            Some(decay) if value != Points::ZERO => decay.step_at(self.at, decay.steps(self.at, now)),
            _ => None,
        };
        match (self.expires_at, step) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// One contact's score in one profile. Present means "has a score" (the
/// `not_empty` filter); a reset removes it.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreState {
    /// Sum of the entries' values since the last reset, as of the last settle.
    pub total: Points,
    /// Entries that expire or decay, soonest change first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Pending>,
    /// `once` rules that have already scored for this contact.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub once_rules: BTreeSet<RuleId>,
    /// Recent hits of capped rules, pruned to the cap's window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cap_hits: BTreeMap<RuleId, Vec<DateTime<Utc>>>,
    /// The points each fit rule (contact fields only, points that never
    /// expire or decay) holds in `total`: what is withdrawn when the
    /// contact's fields stop matching it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fit_points: BTreeMap<RuleId, Points>,
    #[serde(default, with = "crate::timestamp::option")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl Clone for ScoreState {
    /// Scoring clones the state it changes and then books into it: the
    /// clone's `pending` has room for one more entry, so that booking does
    /// not copy it all again.
    fn clone(&self) -> Self {
        let mut pending = Vec::with_capacity(self.pending.len() + 1);
        pending.extend_from_slice(&self.pending);
        Self {
            total: self.total,
            pending,
            once_rules: self.once_rules.clone(),
            cap_hits: self.cap_hits.clone(),
            fit_points: self.fit_points.clone(),
            updated_at: self.updated_at,
        }
    }
}

impl ScoreState {
    /// The same score, ignoring when it was last touched.
    pub fn same_as(&self, other: &ScoreState) -> bool {
        self.total == other.total
            && self.pending == other.pending
            && self.once_rules == other.once_rules
            && self.cap_hits == other.cap_hits
            && self.fit_points == other.fit_points
    }

    /// The exact score at `now`, whether or not due changes were settled yet.
    pub fn live_total(&self, now: DateTime<Utc>) -> Points {
        let due = self.pending.iter().take_while(|p| p.next_at <= now);
        self.total + due.map(|p| p.value_at(now) - p.counted).sum()
    }

    /// Applies every expiry and decay step due at `now` to `total`; returns
    /// whether anything was due.
    pub fn settle(&mut self, now: DateTime<Utc>) -> bool {
        let due = self.pending.partition_point(|p| p.next_at <= now);
        if due == 0 {
            return false;
        }
        let settled: Vec<Pending> = self.pending.drain(..due).collect();
        for mut entry in settled {
            let value = entry.value_at(now);
            self.total += value - entry.counted;
            entry.counted = value;
            if let Some(next_at) = entry.next_change_after(now, value) {
                self.track(Pending { next_at, ..entry });
            }
        }
        true
    }

    /// Cuts `entry`'s points to the room the score (settled at `now`) has
    /// left within ±`Points::MAX`, and records what was asked in
    /// `saturated`: the ledger then still explains the score exactly.
    pub fn fit(&self, entry: &mut LedgerEntry, now: DateTime<Utc>) {
        let value = entry.value_at(now);
        let room = if value > Points::ZERO { Points::MAX - self.total } else { Points::MIN - self.total };
        let over = if value > Points::ZERO { value > room } else { value < room };
        if over {
            entry.saturated = Some(entry.points);
            entry.points = room;
        }
    }

    /// Books an entry (made at its `at`), counting its value as of `now`.
    pub fn book(&mut self, entry: &LedgerEntry, now: DateTime<Utc>) {
        let value = entry.value_at(now);
        self.total += value;
        let pending = Pending {
            next_at: now,
            points: entry.points,
            at: entry.at,
            expires_at: entry.expires_at,
            decay: entry.decay,
            counted: value,
        };
        if let Some(next_at) = pending.next_change_after(now, value) {
            self.track(Pending { next_at, ..pending });
        }
        self.updated_at = Some(now);
    }

    fn track(&mut self, pending: Pending) {
        let index = self.pending.partition_point(|p| p.next_at <= pending.next_at);
        self.pending.insert(index, pending);
    }

    /// The instant the score next changes by itself, for the due-work index.
    pub fn next_change(&self) -> Option<DateTime<Utc>> {
        self.pending.first().map(|p| p.next_at)
    }
}

/// Everything scoring needs to know about one contact, read and written as
/// one unit under `version` (optimistic concurrency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactState {
    /// The contact, or for a deal's state its subject key (`ContactId::for_deal`).
    #[serde(with = "crate::ids::subject")]
    pub contact_id: ContactId,
    /// 0 for a contact never stored; each commit writes `version + 1`.
    pub version: u64,
    /// Contact fields gathered from interactions (`contact` objects), latest wins.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub scores: BTreeMap<ProfileId, ScoreState>,
    /// `once` triggers that already fired for this contact; survives edits of the trigger.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub fired_once: BTreeSet<TriggerId>,
    /// The `seq` of the next ledger entry.
    #[serde(default)]
    pub next_seq: u64,
    /// When each profile's score was last reset by hand: a recompute does
    /// not bring back history from before it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reset_at: BTreeMap<ProfileId, DateTime<Utc>>,
    /// For a deal's state: the contact of its latest interaction, whom the
    /// actions its triggers fire concern along with the deal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<ContactId>,
    /// Running deadline timers, soonest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timers: Vec<Timer>,
    /// `on_enter` interaction triggers whose condition held on the
    /// contact's latest interaction: the next match is no entering.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub matched: BTreeSet<TriggerId>,
    /// The stage the CRM last reported for each of the contact's deals, so
    /// a `move_stage` can tell backwards from forwards.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deal_stages: BTreeMap<DealId, DealStage>,
    /// The stage scorehook last moved each deal to, until the CRM reports
    /// the deal's stage again: a repeated move there is skipped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moved: BTreeMap<DealId, DealStage>,
    /// For each trigger saved with `apply_to_existing`, the start of the
    /// last such job that evaluated this subject: a retried batch does not
    /// fire twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied: BTreeMap<TriggerId, DateTime<Utc>>,
}

impl ContactState {
    /// The instant any of the contact's scores next changes by itself, or a
    /// deadline runs out: when the sweeper must settle it.
    pub fn next_change(&self) -> Option<DateTime<Utc>> {
        let timer = self.timers.first().map(|t| t.due_at);
        self.scores.values().filter_map(ScoreState::next_change).chain(timer).min()
    }

    pub fn new(contact_id: ContactId) -> Self {
        Self {
            contact_id,
            version: 0,
            fields: Map::new(),
            scores: BTreeMap::new(),
            fired_once: BTreeSet::new(),
            next_seq: 0,
            reset_at: BTreeMap::new(),
            last_contact: None,
            timers: Vec::new(),
            matched: BTreeSet::new(),
            deal_stages: BTreeMap::new(),
            moved: BTreeMap::new(),
            applied: BTreeMap::new(),
        }
    }

    /// The deal this state scores; `None` for a contact's state.
    pub fn deal(&self) -> Option<DealId> {
        self.contact_id.deal()
    }

    /// The contact fired actions concern: the contact itself, or for a
    /// deal the contact of its latest interaction.
    pub fn acting_contact(&self) -> &ContactId {
        self.last_contact.as_ref().unwrap_or(&self.contact_id)
    }
}

/// Entries since (and including) the last reset: the ones that explain the current score.
pub fn since_last_reset(entries: &[LedgerEntry]) -> &[LedgerEntry] {
    match entries.iter().rposition(LedgerEntry::is_reset) {
        Some(reset) => &entries[reset..],
        None => entries,
    }
}

/// The score a ledger implies at `now`; `None` when it is empty or was reset.
pub fn score_from_ledger(entries: &[LedgerEntry], now: DateTime<Utc>) -> Option<Points> {
    let current = since_last_reset(entries);
    match current.last() {
        None => None,
        Some(last) if last.is_reset() => None,
        Some(_) => Some(current.iter().map(|e| e.value_at(now)).sum()),
    }
}
