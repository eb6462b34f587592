//! `{{…}}` placeholders in action texts, parsed when a trigger is saved.
//!
//! Known placeholders: `contact.id`, `contact.<field>`, `deal.id`, `event.id`,
//! `event.type`, `trigger.id`, `trigger.name`, `score.<profile>`. Anything
//! else is refused at save time, so rendering cannot fail.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::error::ConfigError;
use super::interaction::Interaction;
use super::ledger::ScoreState;
use crate::ids::{ContactId, DealId, ProfileId, TriggerId};

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    ContactId,
    ContactField(String),
    DealId,
    EventId,
    EventType,
    TriggerId,
    TriggerName,
    Score(ProfileId),
}

/// Everything a placeholder may read when an action fires.
pub struct Context<'a> {
    pub contact_id: &'a ContactId,
    pub fields: &'a Map<String, Value>,
    pub deal_id: Option<&'a DealId>,
    pub event: Option<&'a Interaction>,
    pub trigger_id: &'a TriggerId,
    pub trigger_name: &'a str,
    pub scores: &'a BTreeMap<ProfileId, ScoreState>,
    pub now: DateTime<Utc>,
}

impl Template {
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| ConfigError::new(path, "a '{{' is never closed with '}}'"))?;
            parts.push(Self::placeholder(after[..end].trim(), path)?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    fn placeholder(name: &str, path: &str) -> Result<Part, ConfigError> {
        let unknown = || {
            ConfigError::new(
                path,
                format!(
                    "unknown placeholder {{{{{name}}}}}: use contact.id, contact.<field>, deal.id, event.id, event.type, trigger.id, trigger.name or score.<profile>"
                ),
            )
        };
        Ok(match name {
            "contact.id" => Part::ContactId,
            "deal.id" => Part::DealId,
            "event.id" => Part::EventId,
            "event.type" => Part::EventType,
            "trigger.id" => Part::TriggerId,
            "trigger.name" => Part::TriggerName,
            _ => match name.split_once('.') {
                Some(("contact", field)) if !field.is_empty() => Part::ContactField(field.to_owned()),
                Some(("score", profile)) => Part::Score(ProfileId::parse(profile).map_err(|_| unknown())?),
                _ => return Err(unknown()),
            },
        })
    }

    /// Absent values render as the empty string.
    pub fn render(&self, cx: &Context<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::ContactId => out.push_str(cx.contact_id.as_str()),
                Part::ContactField(field) => match cx.fields.get(field) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) | None => {}
                    Some(other) => out.push_str(&other.to_string()),
                },
                Part::DealId => out.push_str(cx.deal_id.map(DealId::as_str).unwrap_or_default()),
                Part::EventId => out.push_str(cx.event.map(|e| e.id.as_str()).unwrap_or_default()),
                Part::EventType => out.push_str(cx.event.map(|e| e.kind.as_str()).unwrap_or_default()),
                Part::TriggerId => out.push_str(cx.trigger_id.as_str()),
                Part::TriggerName => out.push_str(cx.trigger_name),
                Part::Score(profile) => {
                    if let Some(score) = cx.scores.get(profile) {
                        out.push_str(&score.live_total(cx.now).to_string());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::points::Points;

    #[test]
    fn renders_placeholders_and_leaves_text() {
        let contact = ContactId::parse("c_42").unwrap();
        let trigger = TriggerId::parse("hot").unwrap();
        let fields = serde_json::json!({"email": "jhon@x.test", "age": 41}).as_object().unwrap().clone();
        let mut scores = BTreeMap::new();
        let score = ScoreState { total: Points::whole(7), ..ScoreState::default() };
        scores.insert(ProfileId::parse("engagement").unwrap(), score);
        let cx = Context {
            contact_id: &contact,
            fields: &fields,
            deal_id: None,
            event: None,
            trigger_id: &trigger,
            trigger_name: "Hot lead",
            scores: &scores,
            now: Utc::now(),
        };
        let t = Template::parse(
            "{{trigger.name}}: prioritise {{ contact.id }} <{{contact.email}}> ({{contact.age}}) at {{score.engagement}}{{deal.id}}",
            "t",
        )
        .unwrap();
        assert_eq!(t.render(&cx), "Hot lead: prioritise c_42 <jhon@x.test> (41) at 7");
    }

    #[test]
    fn refuses_unknown_and_unclosed_placeholders() {
        assert!(Template::parse("{{contact.id", "t").is_err());
        assert!(Template::parse("{{secret.token}}", "t").is_err());
        assert!(Template::parse("{{score.bad name}}", "t").is_err());
        assert!(Template::parse("no placeholders }} here", "t").is_ok());
    }
}
