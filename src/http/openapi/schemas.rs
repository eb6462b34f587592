//! Schemas of the request types the engine owns (profiles, triggers,
//! adjustments), for the document only.
//!
//! The engine stays free of HTTP and documentation concerns, so its types do
//! not derive `ToSchema`; these structs describe their JSON instead and are
//! never built. Conditions (`when`) are recursive and open-ended, so they are
//! described in words, not spelled out. The tests at the foot keep these in
//! step with the engine: every value a doc enum lists parses, and every key
//! the engine writes back is one the schema names.

#![allow(dead_code)]

use serde_json::Value;
use utoipa::ToSchema;

/// A score, or points: a decimal with at most two places, without bounds.
#[derive(ToSchema)]
pub struct Points(f64);

/// A duration: a whole number and a unit, `30s`, `15m`, `12h`, `30d` or `8w`.
#[derive(ToSchema)]
pub struct Span(String);

/// What a profile scores.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Subject {
    Contact,
    Deal,
}

/// A profile's lifecycle.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ProfileStatus {
    Draft,
    Published,
    Archived,
}

/// One band of a simulated score distribution: `count` scores in `[from, to)`.
#[derive(ToSchema)]
pub struct Band {
    from: Points,
    to: Points,
    count: u64,
}

/// One of the top simulated scores: `contact_id`, or `deal_id` for a deal profile.
#[derive(ToSchema)]
pub struct TopScore {
    contact_id: Option<String>,
    deal_id: Option<String>,
    score: Points,
}

/// A manual or trigger-made score change.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AdjustOp {
    Add,
    Subtract,
    Set,
    Reset,
}

/// Points lose `percent` every `every`.
#[derive(ToSchema)]
pub struct Decay {
    /// Whole percent, 1-100.
    percent: u8,
    every: Span,
}

/// At most `max` hits per rolling `per` window.
#[derive(ToSchema)]
pub struct Cap {
    max: u32,
    per: Span,
}

/// A scoring profile as saved (a draft) and as shown back.
#[derive(ToSchema)]
#[schema(example = json!({"name": "Engagement", "description": "How warm a contact is", "rules": [
    {"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "30d"},
    {"id": "clicks", "when": {"type": "email.clicked"}, "points": 2, "cap": {"max": 5, "per": "7d"}}]}))]
pub struct ProfileSpec {
    name: String,
    description: Option<String>,
    subject: Option<Subject>,
    /// The decay of every rule that names none.
    decay: Option<Decay>,
    /// At most 1,000.
    rules: Vec<RuleSpec>,
}

#[derive(ToSchema)]
pub struct RuleSpec {
    /// 1-64 characters of `A-Z a-z 0-9 _ -`.
    id: String,
    /// A condition: `type`, `attributes` (field -> test), `contact` (contact field -> test), `all`, `any`, `not`;
    /// a test holds operators `equals`, `not_equals`, `contains`, `starts_with`, `matches`, `in`, `gt`, `gte`,
    /// `lt`, `lte`, `exists`, `all`, `any`, `not`. Empty matches every interaction.
    #[schema(value_type = Object)]
    when: Option<Value>,
    /// Negative subtracts.
    points: Points,
    once: Option<bool>,
    cap: Option<Cap>,
    /// A duration, or `never` (the default).
    #[schema(value_type = Option<String>, example = "30d")]
    expires_in: Option<String>,
    decay: Option<Decay>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ScoreOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Empty,
    NotEmpty,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Runs {
    OnEnter,
    EveryTime,
    Once,
}

/// `value` is required by every `op` but `empty` and `not_empty`.
#[derive(ToSchema)]
pub struct ScoreFilter {
    profile: String,
    op: ScoreOp,
    value: Option<Points>,
}

/// A timer: `start` starts it, `awaits` stops it in time, else the trigger fires after `within_s`.
#[derive(ToSchema)]
pub struct DeadlineSpec {
    #[schema(value_type = Object)]
    start: Value,
    #[schema(value_type = Object)]
    awaits: Value,
    /// 1 s to 365 days.
    within_s: u64,
}

/// Exactly one of the three keys.
#[derive(ToSchema)]
pub struct TriggerWhen {
    score: Option<ScoreFilter>,
    /// A condition on the interaction, as a rule's `when`.
    #[schema(value_type = Option<Object>)]
    event: Option<Value>,
    deadline: Option<DeadlineSpec>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ActionType {
    MoveStage,
    AddTag,
    RemoveTag,
    CreateTask,
    Notify,
    AddNote,
    SetField,
    Webhook,
    AdjustScore,
}

/// One action, `type` and the keys of that type: `add_note {text}`, `create_task {title, body?, due_in?,
/// assignee?}`, `notify {message, user?, url?}` (with `url`: a signed POST of `{"text": message}`; without: a task
/// due at once, assigned to `user`, or the envelope to a generic tenant's `actions_url`),
/// `add_tag {tag}`, `remove_tag {tag}`, `move_stage {pipeline, stage, allow_backwards?, as_user?}`,
/// `set_field {field?, profile?}`, `webhook {url, body?}` (`body`: JSON whose strings are templates, POSTed
/// instead of the action envelope), `adjust_score {profile, op, points?, expires_in?}`.
#[derive(ToSchema)]
pub struct ActionSpec {
    r#type: ActionType,
}

/// A trigger as saved and as shown back.
#[derive(ToSchema)]
#[schema(example = json!({"name": "Hot lead", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}},
    "runs": "on_enter", "actions": [{"type": "add_tag", "tag": "Caliente"}]}))]
pub struct TriggerSpec {
    name: String,
    when: TriggerWhen,
    /// Defaults to `on_enter` for score triggers, `every_time` for the others.
    runs: Option<Runs>,
    actions: Vec<ActionSpec>,
    /// `true` by default.
    enabled: Option<bool>,
    /// A score trigger also fires once for every subject already matching it.
    apply_to_existing: Option<bool>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use utoipa::PartialSchema;

    use super::*;
    use crate::engine::profile::ProfileSpec as EngineProfile;
    use crate::engine::trigger::TriggerSpec as EngineTrigger;

    fn enum_values<T: PartialSchema>() -> Vec<String> {
        let json = serde_json::to_value(T::schema()).unwrap();
        json["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    fn property_names<T: PartialSchema>() -> Vec<String> {
        let json = serde_json::to_value(T::schema()).unwrap();
        json["properties"].as_object().expect("an object schema").keys().cloned().collect()
    }

    #[test]
    fn every_value_a_doc_enum_lists_is_one_the_engine_accepts() {
        for op in enum_values::<AdjustOp>() {
            serde_json::from_value::<crate::engine::AdjustOp>(json!(op)).unwrap();
        }
        for status in enum_values::<ProfileStatus>() {
            serde_json::from_value::<crate::engine::profile::ProfileStatus>(json!(status)).unwrap();
        }
        for subject in enum_values::<Subject>() {
            serde_json::from_value::<crate::engine::profile::SubjectKind>(json!(subject)).unwrap();
        }
        for op in enum_values::<ScoreOp>() {
            serde_json::from_value::<crate::engine::trigger::ScoreOp>(json!(op)).unwrap();
        }
        for runs in enum_values::<Runs>() {
            serde_json::from_value::<crate::engine::trigger::Runs>(json!(runs)).unwrap();
        }
        assert_eq!(enum_values::<ActionType>().len(), 9, "one per action type the engine takes");
    }

    #[test]
    fn every_key_the_engine_writes_back_is_named_by_the_schema() {
        // Every optional key set, so the engine writes each one back.
        let profile: EngineProfile = serde_json::from_value(json!({
            "name": "E", "description": "d", "subject": "contact", "decay": {"percent": 10, "every": "30d"},
            "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1, "once": false,
                       "cap": {"max": 2, "per": "7d"}, "expires_in": "30d", "decay": {"percent": 5, "every": "1d"}}]
        }))
        .unwrap();
        let written = serde_json::to_value(&profile).unwrap();
        let named = property_names::<ProfileSpec>();
        assert!(written.as_object().unwrap().keys().all(|k| named.contains(k)), "{written}");
        let rule_names = property_names::<RuleSpec>();
        assert!(written["rules"][0].as_object().unwrap().keys().all(|k| rule_names.contains(k)), "{written}");

        let trigger: EngineTrigger = serde_json::from_value(json!({
            "name": "T", "when": {"score": {"profile": "e", "op": "gte", "value": 5}}, "runs": "once",
            "actions": [{"type": "add_tag", "tag": "x"}], "enabled": false, "apply_to_existing": true
        }))
        .unwrap();
        let written = serde_json::to_value(&trigger).unwrap();
        let named = property_names::<TriggerSpec>();
        assert!(written.as_object().unwrap().keys().all(|k| named.contains(k)), "{written}");
        let when_names = property_names::<TriggerWhen>();
        assert!(written["when"].as_object().unwrap().keys().all(|k| when_names.contains(k)), "{written}");
    }
}
