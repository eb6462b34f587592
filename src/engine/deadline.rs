//! Deadline timers: an interaction matching a deadline trigger's `start`
//! starts a timer in the contact's state (one per trigger and deal), one
//! matching its `awaits` cancels it, and a timer still running at its
//! instant fires the trigger. The timers' soonest instant is part of the
//! contact's `next_change`, so the stores' due-work index brings the
//! sweeper to it like to an expiry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::condition::Subject;
use super::interaction::Interaction;
use super::ledger::ContactState;
use super::trigger::{Trigger, When};
use crate::ids::{DealId, EventId, TriggerId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub trigger: TriggerId,
    /// The deal of the interaction that started it: the awaited interaction
    /// must name the same deal (or none, for a timer started without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal: Option<DealId>,
    /// Seeds the fired actions' ids, so a retried sweep fires the same ones.
    pub started_by: EventId,
    #[serde(with = "crate::timestamp")]
    pub due_at: DateTime<Utc>,
}

/// Cancels the timers `interaction` was awaited by, then starts the ones it
/// starts. A running timer is not restarted: the deadline counts from the
/// first start.
pub fn start_and_cancel(triggers: &[Trigger], state: &mut ContactState, interaction: &Interaction, now: DateTime<Utc>) {
    for trigger in triggers {
        let When::Deadline(deadline) = &trigger.when else { continue };
        let subject = Subject { interaction: Some(interaction), fields: &state.fields };
        let (awaited, starts) = (deadline.awaits.holds(subject), deadline.start.holds(subject));
        let same = |t: &Timer| t.trigger == trigger.id && t.deal == interaction.deal_id;
        if awaited {
            state.timers.retain(|t| !same(t));
        }
        if starts && !state.timers.iter().any(same) {
            let timer = Timer {
                trigger: trigger.id.clone(),
                deal: interaction.deal_id.clone(),
                started_by: interaction.id.clone(),
                due_at: interaction.effective_at(now) + deadline.within,
            };
            let index = state.timers.partition_point(|t| t.due_at <= timer.due_at);
            state.timers.insert(index, timer);
        }
    }
}

/// Removes and returns the timers run out at `now`, each with its trigger
/// (timers of triggers since deleted or disabled are dropped: nothing fired).
pub fn take_due<'a>(
    triggers: &'a [Trigger],
    state: &mut ContactState,
    now: DateTime<Utc>,
) -> Vec<(&'a Trigger, Timer)> {
    let due = state.timers.partition_point(|t| t.due_at <= now);
    state
        .timers
        .drain(..due)
        .filter_map(|timer| {
            let trigger = triggers.iter().find(|t| t.id == timer.trigger && matches!(t.when, When::Deadline(_)))?;
            Some((trigger, timer))
        })
        .collect()
}
