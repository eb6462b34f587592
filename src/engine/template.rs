//! `{{…}}` placeholders in action texts, parsed when a trigger is saved.
//!
//! Known placeholders: `contact.id`, `contact.<field>`, `deal.id`, `event.id`,
//! `event.type`, `event.<attribute>`, `trigger.id`, `trigger.name`,
//! `score.<profile>`, and in a score trigger's actions `score` and `profile`
//! (its own profile's). Anything else is refused at save time, so rendering
//! cannot fail.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::condition::lookup;
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
    EventAttribute(String),
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
    /// `score_profile` is the profile of a score trigger: what `{{score}}`
    /// and `{{profile}}` name (refused in other triggers).
    pub fn parse(text: &str, path: &str, score_profile: Option<&ProfileId>) -> Result<Self, ConfigError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| ConfigError::new(path, "a '{{' is never closed with '}}'"))?;
            parts.push(Self::placeholder(after[..end].trim(), path, score_profile)?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    fn placeholder(name: &str, path: &str, score_profile: Option<&ProfileId>) -> Result<Part, ConfigError> {
        let unknown = || {
            ConfigError::new(
                path,
                format!(
                    "unknown placeholder {{{{{name}}}}}: use contact.id, contact.<field>, deal.id, event.id, event.type, event.<attribute>, trigger.id, trigger.name, score.<profile>, or in a score trigger score and profile"
                ),
            )
        };
        Ok(match (name, score_profile) {
            ("contact.id", _) => Part::ContactId,
            ("deal.id", _) => Part::DealId,
            ("event.id", _) => Part::EventId,
            ("event.type", _) => Part::EventType,
            ("trigger.id", _) => Part::TriggerId,
            ("trigger.name", _) => Part::TriggerName,
            ("score", Some(profile)) => Part::Score(profile.clone()),
            ("profile", Some(profile)) => Part::Text(profile.to_string()),
            _ => match name.split_once('.') {
                Some(("contact", field)) if !field.is_empty() => Part::ContactField(field.to_owned()),
                Some(("event", field)) if !field.is_empty() => Part::EventAttribute(field.to_owned()),
                Some(("score", profile)) => Part::Score(ProfileId::parse(profile).map_err(|_| unknown())?),
                _ => return Err(unknown()),
            },
        })
    }

    /// Absent values render as the empty string. Each placeholder's value
    /// is cut to `MAX_VALUE_BYTES`, and all of them together to
    /// `MAX_RENDERED_BYTES`, so a template full of placeholders over a huge
    /// contact field cannot make an action huge.
    pub fn render(&self, cx: &Context<'_>) -> String {
        let mut budget = MAX_RENDERED_BYTES;
        self.render_within(cx, &mut budget)
    }

    /// `render`, drawing placeholder bytes from a shared `budget`.
    fn render_within(&self, cx: &Context<'_>, budget: &mut usize) -> String {
        let mut out = String::new();
        for part in &self.parts {
            let mut value = String::new();
            match part {
                Part::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Part::ContactId => value.push_str(cx.contact_id.as_str()),
                Part::ContactField(field) => push_value(&mut value, cx.fields.get(field)),
                Part::EventAttribute(field) => {
                    push_value(&mut value, cx.event.and_then(|e| lookup(&e.attributes, field)))
                }
                Part::DealId => value.push_str(cx.deal_id.map(DealId::as_str).unwrap_or_default()),
                Part::EventId => value.push_str(cx.event.map(|e| e.id.as_str()).unwrap_or_default()),
                Part::EventType => value.push_str(cx.event.map(|e| e.kind.as_str()).unwrap_or_default()),
                Part::TriggerId => value.push_str(cx.trigger_id.as_str()),
                Part::TriggerName => value.push_str(cx.trigger_name),
                Part::Score(profile) => {
                    if let Some(score) = cx.scores.get(profile) {
                        value.push_str(&score.live_total(cx.now).to_string());
                    }
                }
            }
            let kept = cut(&value, MAX_VALUE_BYTES.min(*budget));
            *budget -= kept.len();
            out.push_str(kept);
        }
        out
    }
}

/// The most bytes one placeholder's value adds to a rendered text.
pub const MAX_VALUE_BYTES: usize = 1024;
/// The most bytes all placeholders of one text (or one webhook body) add.
pub const MAX_RENDERED_BYTES: usize = 8 * 1024;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The most bytes a `webhook` action's body template may hold, as JSON.
pub const MAX_BODY_TEMPLATE_BYTES: usize = 8 * 1024;

/// A JSON document whose every string is a `Template`: a `webhook`
/// action's own body (a Slack or e-mail service payload, say). Keys are
/// kept as written; numbers, booleans and nulls as they are.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    Text(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
    Literal(Value),
}

impl JsonTemplate {
    /// Parses every string of `value`; `path` names the field for errors.
    pub fn parse(value: &Value, path: &str, score_profile: Option<&ProfileId>) -> Result<Self, ConfigError> {
        if serde_json::to_vec(value).map_or(true, |bytes| bytes.len() > MAX_BODY_TEMPLATE_BYTES) {
            return Err(ConfigError::new(path, format!("must be at most {MAX_BODY_TEMPLATE_BYTES} bytes of JSON")));
        }
        Self::parse_node(value, path, score_profile)
    }

    fn parse_node(value: &Value, path: &str, score_profile: Option<&ProfileId>) -> Result<Self, ConfigError> {
        Ok(match value {
            Value::String(text) => JsonTemplate::Text(Template::parse(text, path, score_profile)?),
            Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Self::parse_node(item, &format!("{path}[{i}]"), score_profile))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(key, item)| {
                        Ok((key.clone(), Self::parse_node(item, &format!("{path}.{key}"), score_profile)?))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            ),
            other => JsonTemplate::Literal(other.clone()),
        })
    }

    /// Every string rendered, their placeholders sharing one budget of
    /// `MAX_RENDERED_BYTES`.
    pub fn render(&self, cx: &Context<'_>) -> Value {
        let mut budget = MAX_RENDERED_BYTES;
        self.render_within(cx, &mut budget)
    }

    fn render_within(&self, cx: &Context<'_>, budget: &mut usize) -> Value {
        match self {
            JsonTemplate::Text(template) => Value::String(template.render_within(cx, budget)),
            JsonTemplate::Array(items) => {
                Value::Array(items.iter().map(|item| item.render_within(cx, budget)).collect())
            }
            JsonTemplate::Object(entries) => {
                Value::Object(entries.iter().map(|(key, item)| (key.clone(), item.render_within(cx, budget))).collect())
            }
            JsonTemplate::Literal(value) => value.clone(),
        }
    }
}

/// A string as itself, other values as JSON, absent or null as nothing.
fn push_value(out: &mut String, value: Option<&Value>) {
    match value {
        Some(Value::String(s)) => out.push_str(s),
        Some(Value::Null) | None => {}
        Some(other) => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::points::Points;

    #[test]
    fn placeholders_cannot_blow_an_action_up() {
        let (contact, trigger) = (ContactId::parse("c_42").unwrap(), TriggerId::parse("hot").unwrap());
        let mut fields = Map::new();
        fields.insert("big".into(), Value::String("é".repeat(40_000)));
        let scores = BTreeMap::new();
        let cx = Context {
            contact_id: &contact,
            fields: &fields,
            deal_id: None,
            event: None,
            trigger_id: &trigger,
            trigger_name: "Hot",
            scores: &scores,
            now: Utc::now(),
        };
        let one = Template::parse("<{{contact.big}}>", "t", None).unwrap().render(&cx);
        assert!(one.len() <= MAX_VALUE_BYTES + 2 && one.ends_with('>'), "{}", one.len());
        let many = Template::parse(&"{{contact.big}}".repeat(260), "t", None).unwrap().render(&cx);
        assert!(many.len() <= MAX_RENDERED_BYTES, "{}", many.len());
        assert!(many.len() > MAX_RENDERED_BYTES - 4, "the budget is used, not wasted: {}", many.len());
        let list = vec![Value::String("{{contact.big}}".into()); 50];
        let body = JsonTemplate::parse(&serde_json::json!({"a": "{{contact.big}}".repeat(100), "b": list}), "b", None);
        let rendered = serde_json::to_string(&body.unwrap().render(&cx)).unwrap();
        assert!(rendered.len() < MAX_RENDERED_BYTES + 1024, "one body shares one budget: {}", rendered.len());
    }

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
            None,
        )
        .unwrap();
        assert_eq!(t.render(&cx), "Hot lead: prioritise c_42 <jhon@x.test> (41) at 7");
        let engagement = ProfileId::parse("engagement").unwrap();
        let own = Template::parse("{{profile}} is {{score}}", "t", Some(&engagement)).unwrap();
        assert_eq!(own.render(&cx), "engagement is 7");

        let event: Interaction = serde_json::from_value(serde_json::json!({"id": "e1", "type": "email.clicked",
            "contact_id": "c_42", "occurred_at": "2026-11-22T10:00:00Z",
            "attributes": {"url": "https://x.test/p", "utm": {"source": "ads"}}}))
        .unwrap();
        let cx = Context { event: Some(&event), ..cx };
        let t = Template::parse("{{event.type}} {{event.url}} via {{event.utm.source}}{{event.missing}}", "t", None);
        assert_eq!(t.unwrap().render(&cx), "email.clicked https://x.test/p via ads");
    }

    #[test]
    fn refuses_unknown_and_unclosed_placeholders() {
        assert!(Template::parse("{{contact.id", "t", None).is_err());
        assert!(Template::parse("{{secret.token}}", "t", None).is_err());
        assert!(Template::parse("{{score.bad name}}", "t", None).is_err());
        assert!(Template::parse("{{score}}", "t", None).is_err(), "only a score trigger has its own score");
        assert!(Template::parse("{{profile}}", "t", None).is_err());
        assert!(Template::parse("{{event.}}", "t", None).is_err());
        assert!(Template::parse("no placeholders }} here", "t", None).is_ok());
    }
}
