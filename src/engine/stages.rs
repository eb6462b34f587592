//! Pipeline stage order, and the rule that a `move_stage` action never
//! moves a deal backwards unless it says `allow_backwards`.
//!
//! The tenant's CRM settings give each pipeline's stages in order
//! (`crm.pipelines`); a contact's state remembers the latest stage the CRM
//! reported for each of its deals (`deal.stage_changed`). A move is judged
//! when the trigger fires, so one that would go backwards is recorded as
//! `skipped` with the reason instead of being sent. So is a move to the
//! stage the deal is known to be in, or to the one scorehook last moved it
//! to (until the CRM reports its stage again): a trigger that fires on
//! every event does not send the same move over and over.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::interaction::Interaction;
use super::ledger::ContactState;
use crate::ids::DealId;

/// How many deals' stages one contact's state remembers.
pub const MAX_TRACKED_DEALS: usize = 100;

/// Each pipeline's stages, first to last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pipelines(BTreeMap<String, Vec<String>>);

/// The stage the CRM last reported for a deal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealStage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    pub stage: String,
}

impl Pipelines {
    /// From the tenant's `crm.pipelines`: `{"sales": ["new", "demo", "won"]}`.
    /// Anything else there is ignored (no order known: no move is judged backwards).
    pub fn from_settings(value: Option<&Value>) -> Self {
        let Some(Value::Object(map)) = value else { return Self::default() };
        let pipelines = map
            .iter()
            .filter_map(|(name, stages)| {
                let stages: Option<Vec<String>> =
                    stages.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect();
                Some((name.clone(), stages?))
            })
            .collect();
        Self(pipelines)
    }

    fn position(&self, pipeline: &str, stage: &str) -> Option<usize> {
        self.0.get(pipeline)?.iter().position(|s| s == stage)
    }

    /// Why a move of `deal` to `stage` of `pipeline` must not be sent, if
    /// it must not: there is no deal, or the move goes backwards and
    /// `allow_backwards` is off.
    pub fn refuse_move(
        &self,
        state: &ContactState,
        deal: Option<&DealId>,
        pipeline: &str,
        stage: &str,
        allow_backwards: bool,
    ) -> Option<String> {
        let Some(deal) = deal else {
            return Some("no deal to move: the firing interaction carried no deal_id".into());
        };
        let target =
            |known: &DealStage| known.stage == stage && known.pipeline.as_deref().is_none_or(|p| p == pipeline);
        if state.deal_stages.get(deal).is_some_and(target) {
            return Some(format!("deal {deal} is already in stage {stage:?} of pipeline {pipeline:?}"));
        }
        if state.moved.get(deal).is_some_and(target) {
            return Some(format!(
                "deal {deal} was already moved to stage {stage:?} of pipeline {pipeline:?}, and the CRM has reported no stage change since"
            ));
        }
        if allow_backwards {
            return None;
        }
        let current = state.deal_stages.get(deal)?;
        if current.pipeline.as_deref().is_some_and(|p| p != pipeline) {
            return None; // moving into another pipeline has no "backwards"
        }
        let (from, to) = (self.position(pipeline, &current.stage)?, self.position(pipeline, stage)?);
        (to < from).then(|| {
            format!(
                "moving deal {deal} back from {:?} to {stage:?} in pipeline {pipeline:?} needs allow_backwards",
                current.stage
            )
        })
    }
}

/// Remembers the stage a `deal.stage_changed` interaction reports.
pub fn record(state: &mut ContactState, interaction: &Interaction) {
    if interaction.kind.as_str() != "deal.stage_changed" {
        return;
    }
    let (Some(deal), Some(Value::String(stage))) = (&interaction.deal_id, interaction.attributes.get("stage")) else {
        return;
    };
    let pipeline = interaction.attributes.get("pipeline").and_then(Value::as_str).map(str::to_owned);
    state.deal_stages.insert(deal.clone(), DealStage { pipeline, stage: stage.clone() });
    // Where the deal is now is known again; what scorehook last sent no longer decides.
    state.moved.remove(deal);
    keep_tracked(&mut state.deal_stages, deal);
}

/// Forgets other deals until `MAX_TRACKED_DEALS` are left, never `kept`.
fn keep_tracked(deals: &mut BTreeMap<DealId, DealStage>, kept: &DealId) {
    while deals.len() > MAX_TRACKED_DEALS {
        let Some(other) = deals.keys().find(|d| *d != kept).cloned() else { break };
        deals.remove(&other);
    }
}

/// Remembers the stage each move about to be sent takes its deal to.
pub fn record_moves(state: &mut ContactState, fired: &[super::action::FiredAction]) {
    for action in fired.iter().filter(|a| a.kind == "move_stage" && a.skipped.is_none()) {
        let (Some(deal), Some(Value::String(stage))) = (&action.deal_id, action.params.get("stage")) else { continue };
        let pipeline = action.params.get("pipeline").and_then(Value::as_str).map(str::to_owned);
        state.moved.insert(deal.clone(), DealStage { pipeline, stage: stage.clone() });
        keep_tracked(&mut state.moved, deal);
    }
}
