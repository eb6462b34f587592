//! The engine benchmark's scenario, shared by `benches/engine.rs` (criterion)
//! and `examples/engine_profile.rs` (a fixed number of evaluations, for
//! callgrind): a tenant's catalog of one published profile of `n` rules and
//! 10 triggers, a warm contact with 30 earlier interactions, and the
//! `email.opened` interaction to score. Included by path (`#[path]`), so
//! both measure exactly the same work.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use scorehook::engine::interaction::Interaction;
use scorehook::engine::ledger::ContactState;
use scorehook::engine::profile::ProfileSpec;
use scorehook::engine::stages::Pipelines;
use scorehook::engine::trigger::TriggerSpec;
use scorehook::engine::{evaluate, Catalog};
use scorehook::ids::{ContactId, ProfileId, TriggerId};

/// Everything one benchmarked evaluation reads.
pub struct Scenario {
    pub catalog: Catalog,
    pub state: ContactState,
    pub event: Interaction,
    pub now: DateTime<Utc>,
}

/// The scenario for a profile of `rule_count` rules; checks that the
/// interaction scores and fires nothing (the common case).
pub fn scenario(rule_count: usize) -> Scenario {
    let now = t0();
    let catalog = catalog(rule_count);
    let state = warm_contact(&catalog, now);
    let event = interaction("e1", "email.opened", json!({"campaign_id": "spring"}), now);
    let outcome = evaluate(&catalog, &state, &event, now);
    assert!(!outcome.ledger.is_empty(), "the benchmarked interaction scores");
    assert!(outcome.actions.is_empty(), "the common case fires nothing");
    Scenario { catalog, state, event, now }
}

const TYPES: [&str; 8] = [
    "email.opened",
    "email.clicked",
    "page.visited",
    "form.submitted",
    "call.incoming",
    "chat.message",
    "invoice.paid",
    "deal.stage_changed",
];

pub fn t0() -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

/// `n` rules mixing every kind of condition a real profile uses: plain
/// types (with expiry), attribute tests (contains, starts_with, gt, in),
/// caps, `once` fit rules on contact fields, and a regex.
fn rules(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let id = format!("r{i}");
            match i % 6 {
                0 => json!({"id": id, "when": {"type": TYPES[(i / 6) % TYPES.len()]}, "points": 1,
                    "expires_in": "30d"}),
                1 => json!({"id": id, "when": {"type": "page.visited",
                    "attributes": {"url": {"contains": format!("/page-{i}")}}}, "points": 2}),
                2 => json!({"id": id, "when": {"type": "email.clicked",
                    "attributes": {"url": {"starts_with": format!("https://x.test/{i}")}}}, "points": 2,
                    "cap": {"max": 5, "per": "7d"}}),
                3 => json!({"id": id, "when": {"contact": {"country": {"in": ["CO", "MX", "PE"]}}},
                    "points": 5, "once": true}),
                4 => json!({"id": id, "when": {"type": "invoice.paid",
                    "attributes": {"amount": {"gt": i}}}, "points": 3}),
                _ => json!({"id": id, "when": {"any": [
                    {"type": "email.opened", "attributes": {"campaign_id": {"equals": format!("c{i}")}}},
                    {"type": "form.submitted", "attributes": {"form_id": {"matches": format!("^demo-{i}$")}}}]},
                    "points": 4}),
            }
        })
        .collect()
}

/// Ten triggers: score thresholds the warm contact is below (so the common
/// case fires nothing, but every filter is checked) and interaction triggers
/// on other types.
fn triggers() -> Vec<(String, Value)> {
    (0..10)
        .map(|i| {
            let spec = if i % 2 == 0 {
                json!({"name": format!("Hot {i}"), "runs": "on_enter",
                    "when": {"score": {"profile": "engagement", "op": "gte", "value": 10_000 + i}},
                    "actions": [{"type": "add_tag", "tag": "Caliente"},
                                {"type": "create_task", "title": "Follow up", "due_in": "1d"}]})
            } else {
                json!({"name": format!("Event {i}"), "runs": "every_time",
                    "when": {"event": {"type": "call.missed", "attributes": {"line": {"equals": format!("l{i}")}}}},
                    "actions": [{"type": "add_note", "text": "Missed call from {{contact.id}}"}]})
            };
            (format!("t{i}"), spec)
        })
        .collect()
}

pub fn catalog(rule_count: usize) -> Catalog {
    let spec: ProfileSpec = serde_json::from_value(json!({"name": "Engagement", "rules": rules(rule_count)})).unwrap();
    Catalog {
        profiles: vec![spec.compile(&ProfileId::parse("engagement").unwrap(), 1).unwrap()],
        triggers: triggers()
            .into_iter()
            .map(|(id, t)| {
                serde_json::from_value::<TriggerSpec>(t).unwrap().compile(&TriggerId::parse(&id).unwrap()).unwrap()
            })
            .collect(),
        score_field: "lead_score".into(),
        pipelines: Pipelines::from_settings(None),
    }
}

pub fn interaction(id: &str, kind: &str, attributes: Value, at: DateTime<Utc>) -> Interaction {
    serde_json::from_value(json!({"id": id, "type": kind, "contact_id": "c_42", "occurred_at": at,
        "attributes": attributes, "contact": {"country": "CO", "email": "jhon@x.test"}}))
    .unwrap()
}

/// A contact with some history: opens, clicks, visits over the past days.
fn warm_contact(catalog: &Catalog, now: DateTime<Utc>) -> ContactState {
    let mut state = ContactState::new(ContactId::parse("c_42").unwrap());
    for i in 0..30i64 {
        let at = now - TimeDelta::hours(30 - i);
        let (kind, attributes) = match i % 3 {
            0 => ("email.opened", json!({"campaign_id": "spring"})),
            1 => ("email.clicked", json!({"url": "https://x.test/7/pricing"})),
            _ => ("page.visited", json!({"url": "https://x.test/page-1"})),
        };
        state = evaluate(catalog, &state, &interaction(&format!("h{i}"), kind, attributes, at), at).state;
    }
    state
}
