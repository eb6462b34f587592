//! Actions a trigger fires, from their saved spec to the params delivered.
//!
//! The engine renders an action into a `FiredAction` with a deterministic id
//! (hash of cause, trigger and position), so a redelivered interaction or a
//! retried commit can never create a second, different action.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::duration::Span;
use super::error::ConfigError;
use super::points::Points;
use super::template::{Context, JsonTemplate, Template};
use super::AdjustOp;
use crate::ids::{ActionId, ContactId, DealId, ProfileId, TriggerId};

/// Where `set_field` writes when neither the action nor the tenant names a field.
pub const DEFAULT_SCORE_FIELD: &str = "scorehook_score";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    MoveStage {
        pipeline: String,
        stage: String,
        #[serde(default)]
        allow_backwards: bool,
        /// The CRM user the move is for: Bitrix24 makes it as that user (their
        /// own webhook); Pipedrive and HighLevel, whose APIs record the
        /// token's user, assign the deal to them; the others ignore it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_user: Option<String>,
    },
    AddTag {
        tag: String,
    },
    RemoveTag {
        tag: String,
    },
    CreateTask {
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due_in: Option<Span>,
        /// The CRM user the task is assigned to (else the connector's default owner).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<String>,
    },
    /// Tells the team: a Slack- or e-mail-service-compatible POST of
    /// `{"text": message}` to `url`, or without one a task due at once,
    /// assigned to `user`, which the CRM notifies its assignee of.
    Notify {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    AddNote {
        text: String,
    },
    SetField {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<ProfileId>,
    },
    Webhook {
        url: String,
        /// The body to POST instead of the action envelope, every string a
        /// template (`{"text": "{{contact.id}} is hot ({{score}})"}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
    },
    /// Moves a score of the same contact (in any published profile) inside
    /// the commit; applied by the engine, never delivered to the CRM.
    AdjustScore {
        profile: ProfileId,
        op: AdjustOp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        points: Option<Points>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in: Option<Span>,
    },
}

/// A compiled action: templates parsed, defaults resolved.
#[derive(Debug, Clone)]
pub enum Action {
    MoveStage { pipeline: String, stage: String, allow_backwards: bool, as_user: Option<String> },
    AddTag(Template),
    RemoveTag(Template),
    CreateTask { title: Template, body: Option<Template>, due_in: Option<Span>, assignee: Option<String> },
    Notify { message: Template, user: Option<String>, url: Option<String> },
    AddNote(Template),
    SetField { field: Option<String>, profile: ProfileId },
    Webhook { url: String, body: Option<JsonTemplate> },
    AdjustScore { profile: ProfileId, op: AdjustOp, points: Points, expires_in: Option<Span> },
}

/// An action the engine decided to fire; the outbox delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredAction {
    pub id: ActionId,
    pub trigger: TriggerId,
    #[serde(rename = "type")]
    pub kind: String,
    pub params: Value,
    /// The contact acted for; a stored id-only event awaiting resolution
    /// holds what it names instead (`deal#759`, an email address).
    #[serde(with = "crate::ids::subject")]
    pub contact_id: ContactId,
    pub deal_id: Option<DealId>,
    pub fired_at: DateTime<Utc>,
    /// Why the engine decided not to send it (a stage move backwards
    /// without permission, a move with no deal): it is recorded `skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

fn non_empty(text: &str, path: &str) -> Result<(), ConfigError> {
    if text.trim().is_empty() || text.len() > 4000 {
        return Err(ConfigError::new(path, "must hold 1-4000 characters"));
    }
    Ok(())
}

fn http_url(url: &str, path: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000 {
        return Err(ConfigError::new(path, "must be an http:// or https:// URL"));
    }
    Ok(())
}

/// A CRM user id as given, if any: 1-200 characters.
fn user_id(user: Option<&str>, path: &str) -> Result<Option<String>, ConfigError> {
    match user {
        Some(user) if user.trim().is_empty() || user.len() > 200 => {
            Err(ConfigError::new(path, "a CRM user id of 1-200 characters"))
        }
        user => Ok(user.map(str::to_owned)),
    }
}

impl ActionSpec {
    /// `score_profile` is the profile of a score trigger, the default for `set_field`.
    pub fn compile(&self, path: &str, score_profile: Option<&ProfileId>) -> Result<Action, ConfigError> {
        let template = |text: &str, field: &str| {
            let path = format!("{path}.{field}");
            non_empty(text, &path)?;
            Template::parse(text, &path, score_profile)
        };
        Ok(match self {
            ActionSpec::MoveStage { pipeline, stage, allow_backwards, as_user } => {
                non_empty(pipeline, &format!("{path}.pipeline"))?;
                non_empty(stage, &format!("{path}.stage"))?;
                if let Some(user) = as_user {
                    non_empty(user, &format!("{path}.as_user"))?;
                }
                Action::MoveStage {
                    pipeline: pipeline.clone(),
                    stage: stage.clone(),
                    allow_backwards: *allow_backwards,
                    as_user: as_user.clone(),
                }
            }
            ActionSpec::AddTag { tag } => Action::AddTag(template(tag, "tag")?),
            ActionSpec::RemoveTag { tag } => Action::RemoveTag(template(tag, "tag")?),
            ActionSpec::CreateTask { title, body, due_in, assignee } => Action::CreateTask {
                title: template(title, "title")?,
                body: body.as_deref().map(|b| template(b, "body")).transpose()?,
                due_in: *due_in,
                assignee: user_id(assignee.as_deref(), &format!("{path}.assignee"))?,
            },
            ActionSpec::Notify { message, user, url } => {
                if let Some(url) = url {
                    http_url(url, &format!("{path}.url"))?;
                }
                Action::Notify {
                    message: template(message, "message")?,
                    user: user_id(user.as_deref(), &format!("{path}.user"))?,
                    url: url.clone(),
                }
            }
            ActionSpec::AddNote { text } => Action::AddNote(template(text, "text")?),
            ActionSpec::SetField { field, profile } => {
                if let Some(field) = field {
                    non_empty(field, &format!("{path}.field"))?;
                }
                let profile = profile.as_ref().or(score_profile).ok_or_else(|| {
                    ConfigError::new(format!("{path}.profile"), "name the profile whose score to write")
                })?;
                Action::SetField { field: field.clone(), profile: profile.clone() }
            }
            ActionSpec::Webhook { url, body } => {
                http_url(url, &format!("{path}.url"))?;
                let body = body.as_ref().map(|b| JsonTemplate::parse(b, &format!("{path}.body"), score_profile));
                Action::Webhook { url: url.clone(), body: body.transpose()? }
            }
            ActionSpec::AdjustScore { profile, op, points, expires_in } => {
                let points = match (op, points) {
                    (AdjustOp::Reset, None) => Points::ZERO,
                    (AdjustOp::Reset, Some(_)) => {
                        return Err(ConfigError::new(format!("{path}.points"), "a reset takes no points"))
                    }
                    (_, None) => {
                        return Err(ConfigError::new(format!("{path}.points"), "required for add, subtract and set"))
                    }
                    (AdjustOp::Add | AdjustOp::Subtract, Some(p)) if *p <= Points::ZERO => {
                        return Err(ConfigError::new(
                            format!("{path}.points"),
                            "give a positive number; the op says the direction",
                        ))
                    }
                    (_, Some(p)) => *p,
                };
                Action::AdjustScore { profile: profile.clone(), op: *op, points, expires_in: *expires_in }
            }
        })
    }
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::MoveStage { .. } => "move_stage",
            Action::AddTag(_) => "add_tag",
            Action::RemoveTag(_) => "remove_tag",
            Action::CreateTask { .. } => "create_task",
            Action::Notify { .. } => "notify",
            Action::AddNote(_) => "add_note",
            Action::SetField { .. } => "set_field",
            Action::Webhook { .. } => "webhook",
            Action::AdjustScore { .. } => "adjust_score",
        }
    }

    /// The params delivered with the action, rendered for this contact.
    pub fn params(&self, cx: &Context<'_>, score_field: &str) -> Value {
        match self {
            Action::MoveStage { pipeline, stage, allow_backwards, as_user } => {
                json!({"pipeline": pipeline, "stage": stage, "allow_backwards": allow_backwards, "as_user": as_user})
            }
            Action::AddTag(tag) | Action::RemoveTag(tag) => json!({"tag": tag.render(cx)}),
            Action::CreateTask { title, body, due_in, assignee } => json!({
                "title": title.render(cx),
                "body": body.as_ref().map(|b| b.render(cx)),
                "due_at": due_in.map(|d| cx.now + d.as_delta()),
                "assignee": assignee,
            }),
            Action::Notify { message, user, url } => json!({"message": message.render(cx), "user": user, "url": url}),
            Action::AddNote(text) => json!({"text": text.render(cx)}),
            Action::SetField { field, profile } => json!({
                "field": field.as_deref().unwrap_or(score_field),
                "profile": profile,
                "value": cx.scores.get(profile).map(|s| s.live_total(cx.now)),
            }),
            Action::Webhook { url, body: None } => json!({"url": url}),
            Action::Webhook { url, body: Some(body) } => json!({"url": url, "body": body.render(cx)}),
            Action::AdjustScore { profile, op, points, expires_in } => {
                json!({"profile": profile, "op": op, "points": points, "expires_in": expires_in})
            }
        }
    }
}

/// `act_` + 28 hex digits of SHA-256(cause, trigger, position): stable across
/// retries of the same change, distinct across changes.
pub fn action_id(cause: &str, trigger: &TriggerId, position: usize) -> ActionId {
    let mut hash = Sha256::new();
    for part in [cause.as_bytes(), b"\x1f", trigger.as_str().as_bytes(), b"\x1f", position.to_string().as_bytes()] {
        hash.update(part);
    }
    ActionId::from_digest(&hash.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_are_stable_and_distinct() {
        let hot = TriggerId::parse("hot").unwrap();
        assert_eq!(action_id("evt_1", &hot, 0), action_id("evt_1", &hot, 0));
        assert_ne!(action_id("evt_1", &hot, 0), action_id("evt_1", &hot, 1));
        assert_ne!(action_id("evt_1", &hot, 0), action_id("evt_2", &hot, 0));
        assert!(action_id("evt_1", &hot, 0).as_str().starts_with("act_"));
    }

    #[test]
    fn a_notice_needs_a_message_and_takes_a_user_and_a_url() {
        let spec = |v: Value| serde_json::from_value::<ActionSpec>(v).unwrap().compile("a", None);
        let notice = spec(json!({"type": "notify", "message": "{{contact.id}} is hot", "user": "u-7"})).unwrap();
        assert_eq!(notice.kind(), "notify");
        let with_url = json!({"type": "notify", "message": "m", "url": "https://hooks.slack.com/services/T/B/x"});
        assert!(spec(with_url).is_ok());
        assert_eq!(spec(json!({"type": "notify", "message": " "})).unwrap_err().path, "a.message");
        assert_eq!(spec(json!({"type": "notify", "message": "m", "user": ""})).unwrap_err().path, "a.user");
        assert_eq!(spec(json!({"type": "notify", "message": "m", "url": "mailto:x"})).unwrap_err().path, "a.url");
        let task = json!({"type": "create_task", "title": "t", "assignee": "x".repeat(201)});
        assert_eq!(spec(task).unwrap_err().path, "a.assignee");
    }

    #[test]
    fn set_field_needs_a_profile_and_urls_need_a_scheme() {
        let spec: ActionSpec = serde_json::from_value(serde_json::json!({"type": "set_field"})).unwrap();
        assert_eq!(spec.compile("actions[0]", None).unwrap_err().path, "actions[0].profile");
        assert!(spec.compile("actions[0]", Some(&ProfileId::parse("p").unwrap())).is_ok());
        let hook: ActionSpec =
            serde_json::from_value(serde_json::json!({"type": "webhook", "url": "ftp://x"})).unwrap();
        assert!(hook.compile("a", None).is_err());
        assert!(serde_json::from_value::<ActionSpec>(serde_json::json!({"type": "launch_rocket"})).is_err());
        assert!(serde_json::from_value::<ActionSpec>(serde_json::json!({"type": "add_tag", "tag": "x", "color": 1}))
            .is_err());
    }
}
