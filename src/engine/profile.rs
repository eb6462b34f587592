//! Scoring profiles and their rules: wire shapes, validation, lifecycle.
//!
//! A profile is saved as a `ProfileSpec` (what the admin wrote) inside a
//! `ProfileRecord` (draft, live version, status). Only the live spec of a
//! published profile is compiled into a `Profile` the engine scores with.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::budget::RegexBudget;
use super::condition::{Condition, MatchSpec};
use super::decay::Decay;
use super::duration::Span;
use super::error::ConfigError;
use super::interaction::InteractionType;
use super::points::Points;
use super::rule_index::RuleIndex;
use crate::ids::{ContactId, ProfileId, RuleId};

/// The most rules one profile may hold; bounds evaluation cost per interaction.
pub const MAX_RULES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub subject: SubjectKind,
    /// The decay of every rule that names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<Decay>,
    pub rules: Vec<RuleSpec>,
}

/// What a profile scores: contacts, or deals (keyed by the interaction's
/// `deal_id`; interactions without one are ignored by a deal profile).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    #[default]
    Contact,
    Deal,
}

impl SubjectKind {
    /// The kind of a stored subject key.
    pub fn of(subject: &ContactId) -> Self {
        if subject.deal().is_some() {
            Self::Deal
        } else {
            Self::Contact
        }
    }

    /// The plural the API lists this kind under.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Contact => "contacts",
            Self::Deal => "deals",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    #[serde(default)]
    pub when: MatchSpec,
    pub points: Points,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
    #[serde(default, skip_serializing_if = "Expiry::is_never")]
    pub expires_in: Expiry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<Decay>,
}

/// At most `max` hits per rolling `per` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    pub max: u32,
    pub per: Span,
}

/// `"never"` (the default) or a duration after which the points stop counting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Expiry(pub Option<Span>);

impl Expiry {
    pub fn is_never(&self) -> bool {
        self.0.is_none()
    }
}

impl TryFrom<String> for Expiry {
    type Error = super::duration::InvalidSpan;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value == "never" {
            return Ok(Self(None));
        }
        Span::parse(&value).map(|span| Self(Some(span)))
    }
}

impl From<Expiry> for String {
    fn from(expiry: Expiry) -> String {
        expiry.0.map_or_else(|| "never".to_owned(), |span| span.to_string())
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: RuleId,
    pub when: Condition,
    pub points: Points,
    pub once: bool,
    /// A condition on contact fields only: its points follow the fields
    /// (withdrawn when they stop matching, granted again when they match).
    pub fit: bool,
    pub cap: Option<Cap>,
    pub expires_in: Option<Span>,
    pub decay: Option<Decay>,
}

/// A compiled, published profile: what the engine scores with.
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: ProfileId,
    pub version: u32,
    pub subject: SubjectKind,
    pub rules: Vec<Rule>,
    /// What its regexes hold in memory, as charged to its budget (`engine::budget`).
    pub regex_bytes: usize,
    /// Which rules each interaction type can match, built with `rules`.
    index: RuleIndex,
}

impl Profile {
    /// The rules an interaction of type `kind` may match, in rule order:
    /// the others' conditions cannot hold for it.
    pub fn candidates<'a>(&'a self, kind: &InteractionType) -> impl Iterator<Item = &'a Rule> {
        self.index.candidates(kind).filter_map(|position| self.rules.get(position))
    }

    /// Whether this profile scores the subject (a contact, or a deal's key).
    pub fn scores(&self, subject: &ContactId) -> bool {
        self.subject == SubjectKind::of(subject)
    }
}

impl ProfileSpec {
    /// Every `matches` pattern of its rules.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().flat_map(|rule| rule.when.patterns())
    }

    /// Checks everything that can be checked without the store, within the
    /// budgets of `engine::budget`: it stops at the first regex past the
    /// profile's budget and the first condition past the test budget.
    pub fn compile(&self, id: &ProfileId, version: u32) -> Result<Profile, ConfigError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(ConfigError::new("name", "give the profile a name of 1-200 characters"));
        }
        if self.description.len() > 2000 {
            return Err(ConfigError::new("description", "at most 2000 characters"));
        }
        if self.rules.len() > MAX_RULES {
            return Err(ConfigError::new("rules", format!("at most {MAX_RULES} rules per profile")));
        }
        if let Some(decay) = &self.decay {
            decay.validate("decay")?;
        }
        let mut seen = BTreeSet::new();
        let mut regexes = RegexBudget::spec("a profile");
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let path = format!("rules[{i}]");
                let rule_id = RuleId::parse(spec.id.as_str())
                    .map_err(|e| ConfigError::new(format!("{path}.id"), e.to_string()))?;
                if !seen.insert(rule_id.clone()) {
                    return Err(ConfigError::new(format!("{path}.id"), format!("rule id {rule_id} is used twice")));
                }
                // A fit rule (contact fields only) describes who the contact is, not
                // what they did: it scores once per contact, whether or not it says so.
                let once = spec.once || spec.when.is_fit();
                if once && spec.cap.is_some() {
                    return Err(ConfigError::new(
                        format!("{path}.cap"),
                        "a once rule (and a fit rule, on contact fields only) scores at most once; drop the cap",
                    ));
                }
                if spec.cap.is_some_and(|cap| cap.max == 0) {
                    return Err(ConfigError::new(format!("{path}.cap.max"), "must be at least 1"));
                }
                if let Some(decay) = &spec.decay {
                    decay.validate(&format!("{path}.decay"))?;
                }
                Ok(Rule {
                    id: rule_id,
                    when: spec.when.compile(&format!("{path}.when"), &mut regexes)?,
                    points: spec.points,
                    once,
                    fit: spec.when.is_fit(),
                    cap: spec.cap,
                    expires_in: spec.expires_in.0,
                    decay: spec.decay.or(self.decay),
                })
            })
            .collect::<Result<Vec<Rule>, _>>()?;
        let index = RuleIndex::new(rules.iter().map(|rule| &rule.when));
        Ok(Profile { id: id.clone(), version, subject: self.subject, rules, regex_bytes: regexes.spent(), index })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileStatus {
    Draft,
    Published,
    Archived,
}

/// A profile as stored: the live (published) spec and a pending draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileRecord {
    pub id: ProfileId,
    pub status: ProfileStatus,
    /// The published spec and its version; kept after archiving, for history.
    pub live: Option<Versioned>,
    /// An edit not yet published.
    pub draft: Option<Versioned>,
    pub updated_at: DateTime<Utc>,
}

impl ProfileRecord {
    /// What the profile scores, as its latest spec (the draft, if any) says.
    pub fn subject(&self) -> SubjectKind {
        self.draft.as_ref().or(self.live.as_ref()).map_or_else(SubjectKind::default, |v| v.spec.subject)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned {
    pub version: u32,
    pub spec: ProfileSpec,
}

/// What a lifecycle step did, so the API can answer 201, 200 or "no change".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

impl ProfileRecord {
    pub fn new_draft(id: ProfileId, spec: ProfileSpec, now: DateTime<Utc>) -> Self {
        Self {
            id,
            status: ProfileStatus::Draft,
            live: None,
            draft: Some(Versioned { version: 1, spec }),
            updated_at: now,
        }
    }

    fn latest_version(&self) -> u32 {
        let live = self.live.as_ref().map_or(0, |v| v.version);
        let draft = self.draft.as_ref().map_or(0, |v| v.version);
        live.max(draft)
    }

    /// Saves an edit as a draft. Saving what is already live or drafted changes nothing.
    pub fn save_draft(&mut self, spec: ProfileSpec, now: DateTime<Utc>) -> Change {
        let same_as = |v: &Option<Versioned>| v.as_ref().is_some_and(|v| v.spec == spec);
        if same_as(&self.draft) || (self.draft.is_none() && same_as(&self.live)) {
            return Change::Unchanged;
        }
        let version = match &self.draft {
            Some(draft) => draft.version,
            None => self.latest_version() + 1,
        };
        self.draft = Some(Versioned { version, spec });
        self.updated_at = now;
        Change::Updated
    }

    /// Makes the draft live (or re-publishes an archived profile).
    pub fn publish(&mut self, now: DateTime<Utc>) -> Change {
        match self.draft.take() {
            Some(draft) => self.live = Some(draft),
            None if self.status == ProfileStatus::Published => return Change::Unchanged,
            None if self.live.is_none() => return Change::Unchanged,
            None => {}
        }
        self.status = ProfileStatus::Published;
        self.updated_at = now;
        Change::Updated
    }

    pub fn archive(&mut self, now: DateTime<Utc>) -> Change {
        if self.status == ProfileStatus::Archived {
            return Change::Unchanged;
        }
        self.status = ProfileStatus::Archived;
        self.updated_at = now;
        Change::Updated
    }

    /// The spec that scores, if the profile is published.
    pub fn scoring(&self) -> Option<&Versioned> {
        match self.status {
            ProfileStatus::Published => self.live.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(points: i64) -> ProfileSpec {
        serde_json::from_value(json!({"name": "Engagement", "rules": [
            {"id": "opened", "when": {"type": "email.opened"}, "points": points, "expires_in": "30d"}]}))
        .unwrap()
    }

    #[test]
    fn compiles_the_contract_example() {
        let spec: ProfileSpec = serde_json::from_value(json!({
            "name": "Engagement", "description": "How warm a contact is",
            "rules": [
              {"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "30d"},
              {"id": "demo", "when": {"type": "deal.stage_changed", "attributes": {"stage": {"equals": "demo"}}}, "points": 3},
              {"id": "pricing", "when": {"type": "page.visited", "attributes": {"url": {"contains": "/pricing"}}}, "points": 10, "once": true},
              {"id": "clicks", "when": {"type": "email.clicked"}, "points": 2, "cap": {"max": 5, "per": "7d"}},
              {"id": "metro", "when": {"contact": {"city": {"in": ["Bogotá", "Medellín"]}}}, "points": 10, "once": true},
              {"id": "unsub", "when": {"type": "list.unsubscribed"}, "points": -20}]}))
        .unwrap();
        let profile = spec.compile(&ProfileId::parse("engagement").unwrap(), 1).unwrap();
        assert_eq!(profile.rules.len(), 6);
        assert_eq!(profile.rules[0].expires_in.map(Span::seconds), Some(30 * 86_400));
        assert_eq!(profile.rules[5].points, Points::whole(-20));
    }

    #[test]
    fn refusals_name_the_field() {
        let id = ProfileId::parse("p").unwrap();
        let compile =
            |v: serde_json::Value| serde_json::from_value::<ProfileSpec>(v).unwrap().compile(&id, 1).unwrap_err().path;
        assert_eq!(compile(json!({"name": "", "rules": []})), "name");
        assert_eq!(compile(json!({"name": "x", "rules": [{"id": "a b", "points": 1}]})), "rules[0].id");
        assert_eq!(
            compile(json!({"name": "x", "rules": [{"id": "a", "points": 1}, {"id": "a", "points": 1}]})),
            "rules[1].id"
        );
        assert_eq!(
            compile(
                json!({"name": "x", "rules": [{"id": "a", "points": 1, "once": true, "cap": {"max": 1, "per": "1d"}}]})
            ),
            "rules[0].cap"
        );
        assert_eq!(
            compile(json!({"name": "x", "rules": [{"id": "a", "points": 1, "when": {"type": "nope"}}]})),
            "rules[0].when.type"
        );
        assert!(serde_json::from_value::<ProfileSpec>(
            json!({"name": "x", "rules": [{"id": "a", "points": 1, "expires_in": "soon"}]})
        )
        .is_err());
    }

    /// A profile whose rule `i` tests `url` against `pattern(i)`.
    fn regex_rules(rules: usize, pattern: impl Fn(usize) -> String) -> ProfileSpec {
        let rules: Vec<serde_json::Value> = (0..rules)
            .map(|i| {
                json!({"id": format!("r{i}"), "points": 1,
                "when": {"type": "page.visited", "attributes": {"url": {"matches": pattern(i)}}}})
            })
            .collect();
        serde_json::from_value(json!({"name": "Regexes", "rules": rules})).unwrap()
    }

    #[test]
    fn a_profile_over_its_regex_budget_stops_at_the_first_regex_past_it() {
        let id = ProfileId::parse("p").unwrap();
        let fits = regex_rules(20, |i| format!("^/pricing/{i}$")).compile(&id, 1).unwrap();
        assert!(fits.regex_bytes > 20 * 4 * 1024 && fits.regex_bytes < 1024 * 1024, "{}", fits.regex_bytes);
        // The issue's attack: thousands of regexes of ~180 KiB each.
        let err = regex_rules(MAX_RULES, |i| format!(r"\w{{3}}x{i}")).compile(&id, 1).unwrap_err();
        let at: usize = err.path.trim_start_matches("rules[").split(']').next().unwrap().parse().unwrap();
        assert!(at < 20, "stopped after a handful of regexes, not {MAX_RULES}: {}", err.path);
        assert_eq!(err.path, format!("rules[{at}].when.attributes.url.matches"));
        assert!(err.message.contains("a profile's regexes may hold at most 2 MiB"), "{}", err.message);
    }

    #[test]
    fn a_rule_over_the_test_budget_is_refused_at_its_condition() {
        let id = ProfileId::parse("p").unwrap();
        let within: Vec<serde_json::Value> = (0..63).map(|i| json!({"equals": i})).collect();
        let over: Vec<serde_json::Value> = (0..64).map(|i| json!({"equals": i})).collect();
        let spec = |any: &[serde_json::Value]| -> ProfileSpec {
            serde_json::from_value(json!({"name": "x", "rules": [
                {"id": "ok", "points": 1, "when": {"type": "email.opened", "attributes": {"n": {"any": within}}}},
                {"id": "big", "points": 1, "when": {"type": "email.opened", "attributes": {"n": {"any": any}}}}]}))
            .unwrap()
        };
        assert!(spec(&within).compile(&id, 1).is_ok(), "64 tests: the type and 63 comparisons");
        let err = spec(&over).compile(&id, 1).unwrap_err();
        assert_eq!(err.path, "rules[1].when");
        assert!(err.message.contains("at most 64 tests"), "{}", err.message);
    }

    #[test]
    fn lifecycle_draft_publish_edit_archive() {
        let now = Utc::now();
        let mut record = ProfileRecord::new_draft(ProfileId::parse("p").unwrap(), spec(1), now);
        assert!(record.scoring().is_none(), "a draft never scores");
        assert_eq!(record.publish(now), Change::Updated);
        assert_eq!(record.scoring().map(|v| v.version), Some(1));
        assert_eq!(record.save_draft(spec(1), now), Change::Unchanged, "saving the live spec again is a no-op");
        assert_eq!(record.save_draft(spec(2), now), Change::Updated);
        assert_eq!(record.scoring().map(|v| v.spec.rules[0].points), Some(Points::whole(1)), "edits wait for publish");
        assert_eq!(record.draft.as_ref().map(|v| v.version), Some(2));
        record.publish(now);
        assert_eq!(record.scoring().map(|v| v.version), Some(2));
        assert_eq!(record.archive(now), Change::Updated);
        assert!(record.scoring().is_none(), "archived profiles stop scoring");
        assert_eq!(record.publish(now), Change::Updated, "an archived profile can be published again");
        assert!(record.scoring().is_some());
    }
}
