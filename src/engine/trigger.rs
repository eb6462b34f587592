//! Triggers: a score filter, an interaction condition or a deadline, and
//! the actions it fires.
//!
//! The eight score filters are the CRM trigger screen's: equal, not equal,
//! greater, greater or equal, less, less or equal, is empty, is not empty.
//! A deadline is Bitrix24's "no reaction within": an interaction starts a
//! timer, and the trigger fires if the awaited one does not come in time.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use super::action::{Action, ActionSpec};
use super::budget::RegexBudget;
use super::condition::{Condition, MatchSpec};
use super::error::ConfigError;
use super::points::Points;
use crate::ids::{ProfileId, TriggerId};

/// The most actions one trigger may fire.
pub const MAX_ACTIONS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    pub name: String,
    pub when: WhenSpec,
    /// Defaults to `on_enter` for score triggers and `every_time` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<Runs>,
    pub actions: Vec<ActionSpec>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// A score trigger that, when saved, also fires once for every subject
    /// already matching it (in background batches); without it only
    /// changes from now on count.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apply_to_existing: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Exactly one of the three keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<ScoreFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<MatchSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DeadlineSpec>,
}

/// `{"start": when, "awaits": when, "within_s": 600}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineSpec {
    /// The interaction that starts the timer.
    pub start: MatchSpec,
    /// The interaction that stops it in time.
    pub awaits: MatchSpec,
    /// Seconds the awaited interaction has, 1 s to 365 days.
    pub within_s: u64,
}

/// The longest deadline: a year.
pub const MAX_DEADLINE_SECONDS: u64 = 365 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreFilter {
    pub profile: ProfileId,
    pub op: ScoreOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Points>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runs {
    /// When the filter goes from false to true: a score entering its range,
    /// an interaction matching when the contact's previous one did not, a
    /// deadline running out (each timer is its own entering).
    OnEnter,
    /// On every change (or matching interaction) while the filter holds.
    EveryTime,
    /// The first time it holds for a contact, never again.
    Once,
}

#[derive(Debug, Clone)]
pub enum When {
    Score(ScoreFilter),
    Event(Condition),
    Deadline(Deadline),
}

#[derive(Debug, Clone)]
pub struct Deadline {
    pub start: Condition,
    pub awaits: Condition,
    pub within: TimeDelta,
}

/// A compiled, enabled trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub id: TriggerId,
    pub name: String,
    pub when: When,
    pub runs: Runs,
    pub actions: Vec<Action>,
    /// What its conditions' regexes hold in memory (`engine::budget`).
    pub regex_bytes: usize,
}

impl ScoreFilter {
    /// `score` is `None` when the contact has no score in the profile;
    /// comparisons never hold on an empty score.
    pub fn holds(&self, score: Option<Points>) -> bool {
        let value = self.value.unwrap_or_default();
        match (self.op, score) {
            (ScoreOp::Empty, score) => score.is_none(),
            (ScoreOp::NotEmpty, score) => score.is_some(),
            (_, None) => false,
            (ScoreOp::Eq, Some(s)) => s == value,
            (ScoreOp::Ne, Some(s)) => s != value,
            (ScoreOp::Gt, Some(s)) => s > value,
            (ScoreOp::Gte, Some(s)) => s >= value,
            (ScoreOp::Lt, Some(s)) => s < value,
            (ScoreOp::Lte, Some(s)) => s <= value,
        }
    }
}

impl TriggerSpec {
    /// Every `matches` pattern of its conditions.
    pub fn patterns(&self) -> Vec<&str> {
        let deadline = self.when.deadline.iter().flat_map(|d| [&d.start, &d.awaits]);
        self.when.event.iter().chain(deadline).flat_map(MatchSpec::patterns).collect()
    }

    pub fn compile(&self, id: &TriggerId) -> Result<Trigger, ConfigError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(ConfigError::new("name", "give the trigger a name of 1-200 characters"));
        }
        let mut regexes = RegexBudget::spec("a trigger");
        let when = match (&self.when.score, &self.when.event, &self.when.deadline) {
            (Some(filter), None, None) => {
                let needs_value = !matches!(filter.op, ScoreOp::Empty | ScoreOp::NotEmpty);
                match (needs_value, filter.value) {
                    (true, None) => {
                        return Err(ConfigError::new("when.score.value", "this operator compares with a value"))
                    }
                    (false, Some(_)) => {
                        return Err(ConfigError::new("when.score.value", "empty and not_empty take no value"))
                    }
                    _ => When::Score(filter.clone()),
                }
            }
            (None, Some(spec), None) => When::Event(spec.compile("when.event", &mut regexes)?),
            (None, None, Some(spec)) => {
                if !(1..=MAX_DEADLINE_SECONDS).contains(&spec.within_s) {
                    return Err(ConfigError::new(
                        "when.deadline.within_s",
                        format!("give 1-{MAX_DEADLINE_SECONDS} seconds"),
                    ));
                }
                When::Deadline(Deadline {
                    start: spec.start.compile("when.deadline.start", &mut regexes)?,
                    awaits: spec.awaits.compile("when.deadline.awaits", &mut regexes)?,
                    within: TimeDelta::seconds(spec.within_s as i64),
                })
            }
            _ => return Err(ConfigError::new("when", "give exactly one of score, event or deadline")),
        };
        let runs = match (&when, self.runs) {
            (_, Some(runs)) => runs,
            (When::Score(_), None) => Runs::OnEnter,
            (When::Event(_) | When::Deadline(_), None) => Runs::EveryTime,
        };
        if self.apply_to_existing && !matches!(when, When::Score(_)) {
            return Err(ConfigError::new("apply_to_existing", "only a score trigger can apply to existing contacts"));
        }
        if self.actions.is_empty() || self.actions.len() > MAX_ACTIONS {
            return Err(ConfigError::new("actions", format!("give 1-{MAX_ACTIONS} actions")));
        }
        let score_profile = match &when {
            When::Score(filter) => Some(&filter.profile),
            When::Event(_) | When::Deadline(_) => None,
        };
        let actions = self
            .actions
            .iter()
            .enumerate()
            .map(|(i, spec)| spec.compile(&format!("actions[{i}]"), score_profile))
            .collect::<Result<_, _>>()?;
        Ok(Trigger { id: id.clone(), name: self.name.clone(), when, runs, actions, regex_bytes: regexes.spent() })
    }

    /// The profile a score trigger watches, for checks against the store.
    pub fn score_profile(&self) -> Option<&ProfileId> {
        self.when.score.as_ref().map(|f| &f.profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(op: &str, value: Option<i64>) -> ScoreFilter {
        serde_json::from_value(json!({"profile": "p", "op": op, "value": value})).unwrap()
    }

    #[test]
    fn the_eight_operators() {
        let some = |n| Some(Points::whole(n));
        let cases = [
            ("eq", Some(5), some(5), true),
            ("eq", Some(5), some(4), false),
            ("ne", Some(5), some(4), true),
            ("ne", Some(5), some(5), false),
            ("gt", Some(5), some(6), true),
            ("gt", Some(5), some(5), false),
            ("gte", Some(5), some(5), true),
            ("gte", Some(5), some(4), false),
            ("lt", Some(0), some(-3), true),
            ("lt", Some(0), some(0), false),
            ("lte", Some(-3), some(-3), true),
            ("lte", Some(-3), some(-2), false),
            ("empty", None, None, true),
            ("empty", None, some(0), false),
            ("not_empty", None, some(0), true),
            ("not_empty", None, None, false),
            ("lt", Some(5), None, false),
            ("ne", Some(5), None, false),
        ];
        for (op, value, score, expected) in cases {
            assert_eq!(filter(op, value).holds(score), expected, "{op} {value:?} on {score:?}");
        }
    }

    #[test]
    fn checks_shape_and_defaults() {
        let id = TriggerId::parse("t").unwrap();
        let compile = |v: serde_json::Value| serde_json::from_value::<TriggerSpec>(v).unwrap().compile(&id);
        let note = json!([{"type": "add_note", "text": "hi"}]);
        let score = compile(
            json!({"name": "x", "when": {"score": {"profile": "p", "op": "gte", "value": 5}}, "actions": note}),
        )
        .unwrap();
        assert_eq!(score.runs, Runs::OnEnter);
        let event = compile(json!({"name": "x", "when": {"event": {"type": "call.missed"}}, "actions": note})).unwrap();
        assert_eq!(event.runs, Runs::EveryTime);
        let path = |v| compile(v).unwrap_err().path;
        assert_eq!(
            path(json!({"name": "x", "when": {"score": {"profile": "p", "op": "gte"}}, "actions": note})),
            "when.score.value"
        );
        assert_eq!(
            path(json!({"name": "x", "when": {"score": {"profile": "p", "op": "empty", "value": 1}}, "actions": note})),
            "when.score.value"
        );
        assert_eq!(path(json!({"name": "x", "when": {}, "actions": note})), "when");
        assert_eq!(
            path(json!({"name": "x", "when": {"event": {}}, "apply_to_existing": true, "actions": note})),
            "apply_to_existing"
        );
        assert_eq!(path(json!({"name": "x", "when": {"event": {"type": "call.missed"}}, "actions": []})), "actions");
        let deadline = |within: u64| {
            json!({"name": "x", "when": {"deadline": {"start": {"type": "chat.first_message"},
                "awaits": {"type": "chat.accepted"}, "within_s": within}}, "actions": note})
        };
        assert!(
            matches!(compile(deadline(600)).unwrap().when, When::Deadline(d) if d.within == TimeDelta::minutes(10))
        );
        assert_eq!(path(deadline(0)), "when.deadline.within_s");
        assert_eq!(path(deadline(MAX_DEADLINE_SECONDS + 1)), "when.deadline.within_s");
        assert_eq!(
            path(json!({"name": "x", "when": {"event": {}}, "actions": [{"type": "add_note", "text": "{{nope}}"}]})),
            "actions[0].text"
        );
    }

    #[test]
    fn conditions_are_held_to_the_regex_and_test_budgets() {
        let id = TriggerId::parse("t").unwrap();
        let note = json!([{"type": "add_note", "text": "hi"}]);
        let matching = |pattern: &str| json!({"type": "chat.message", "attributes": {"text": {"matches": pattern}}});
        let deadline: TriggerSpec = serde_json::from_value(json!({"name": "x", "actions": note, "when": {"deadline": {
            "start": matching("^hi"), "awaits": matching("^bye"), "within_s": 60}}}))
        .unwrap();
        assert_eq!(deadline.patterns(), ["^hi", "^bye"]);
        assert!(deadline.compile(&id).unwrap().regex_bytes > 0, "both conditions are charged");

        let many: Vec<serde_json::Value> = (0..12).map(|i| json!({"matches": format!(r"\w{{3}}{i}")})).collect();
        let heavy: TriggerSpec = serde_json::from_value(
            json!({"name": "x", "actions": note, "when": {"event": {"attributes": {"text": {"any": many}}}}}),
        )
        .unwrap();
        let err = heavy.compile(&id).unwrap_err();
        assert!(err.path.starts_with("when.event.attributes.text.any["), "{}", err.path);
        assert!(err.message.contains("a trigger's regexes may hold at most 2 MiB"), "{}", err.message);

        let wide: Vec<serde_json::Value> = (0..65).map(|i| json!({"equals": i})).collect();
        let wide: TriggerSpec = serde_json::from_value(
            json!({"name": "x", "actions": note, "when": {"event": {"attributes": {"n": {"any": wide}}}}}),
        )
        .unwrap();
        assert_eq!(wide.compile(&id).unwrap_err().path, "when.event");
    }
}
