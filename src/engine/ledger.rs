//! A contact's scoring state and the ledger entries that explain it.
//!
//! The ledger is the append-only truth: a score is the sum of its unexpired
//! entries since the last reset. `ScoreState::total` is a cache of that sum;
//! `expiring` holds what will leave it and when, so the cache can be settled
//! exactly at any instant without reading the ledger.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::points::Points;
use crate::ids::{ContactId, EventId, ProfileId, RuleId, TriggerId};

/// The `rule` of a ledger entry written by a manual adjustment (rule ids cannot contain a dot).
pub const MANUAL_ADD: &str = "manual.add";
pub const MANUAL_SUBTRACT: &str = "manual.subtract";
pub const MANUAL_SET: &str = "manual.set";
pub const MANUAL_RESET: &str = "manual.reset";

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
    pub at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl LedgerEntry {
    pub fn counts_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }

    pub fn is_reset(&self) -> bool {
        self.rule == MANUAL_RESET
    }
}

/// Points that stop counting at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring {
    pub at: DateTime<Utc>,
    pub points: Points,
}

/// One contact's score in one profile. Present means "has a score" (the
/// `not_empty` filter); a reset removes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreState {
    /// Sum of the entries since the last reset, minus those already settled as expired.
    pub total: Points,
    /// Entries with an expiry that are still counted in `total`, soonest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expiring: Vec<Expiring>,
    /// `once` rules that have already scored for this contact.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub once_rules: BTreeSet<RuleId>,
    /// Recent hits of capped rules, pruned to the cap's window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cap_hits: BTreeMap<RuleId, Vec<DateTime<Utc>>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl ScoreState {
    /// The exact score at `now`, whether or not expiries were settled yet.
    pub fn live_total(&self, now: DateTime<Utc>) -> Points {
        self.total - self.expiring.iter().filter(|e| e.at <= now).map(|e| e.points).sum()
    }

    /// Moves expired points out of `total`; returns whether anything expired.
    pub fn settle(&mut self, now: DateTime<Utc>) -> bool {
        let due = self.expiring.partition_point(|e| e.at <= now);
        if due == 0 {
            return false;
        }
        let gone: Points = self.expiring.drain(..due).map(|e| e.points).sum();
        self.total = self.total - gone;
        true
    }

    /// Books points, keeping `expiring` sorted.
    pub fn book(&mut self, points: Points, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        self.total += points;
        if let Some(at) = expires_at {
            let index = self.expiring.partition_point(|e| e.at <= at);
            self.expiring.insert(index, Expiring { at, points });
        }
        self.updated_at = Some(now);
    }

    /// The instant the score next changes by itself, for the due-work index.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.expiring.first().map(|e| e.at)
    }
}

/// Everything scoring needs to know about one contact, read and written as
/// one unit under `version` (optimistic concurrency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactState {
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
}

impl ContactState {
    /// The instant any of the contact's scores next changes by itself.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.scores.values().filter_map(ScoreState::next_expiry).min()
    }

    pub fn new(contact_id: ContactId) -> Self {
        Self {
            contact_id,
            version: 0,
            fields: Map::new(),
            scores: BTreeMap::new(),
            fired_once: BTreeSet::new(),
            next_seq: 0,
        }
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
        Some(_) => Some(current.iter().filter(|e| e.counts_at(now)).map(|e| e.points).sum()),
    }
}
