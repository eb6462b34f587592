//! The pure engine's speed: one interaction evaluated against a tenant's
//! catalog (one published profile of 10, 100 or 1,000 rules, and 10
//! triggers) for a warm contact. Reported per interaction (ns) and as
//! interactions per second on one core (criterion's throughput).
//!
//! Run by `scripts/bench.sh` (`cargo bench --bench engine`); `cargo test
//! --all-targets` only runs each case once, as a smoke test.

use std::hint::black_box;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};

use scorehook::engine::interaction::Interaction;
use scorehook::engine::ledger::ContactState;
use scorehook::engine::profile::ProfileSpec;
use scorehook::engine::stages::Pipelines;
use scorehook::engine::trigger::TriggerSpec;
use scorehook::engine::{evaluate, Catalog};
use scorehook::ids::{ContactId, ProfileId, TriggerId};

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

fn t0() -> DateTime<Utc> {
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

fn catalog(rule_count: usize) -> Catalog {
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

fn interaction(id: &str, kind: &str, attributes: Value, at: DateTime<Utc>) -> Interaction {
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

fn bench_evaluate(c: &mut Criterion) {
    let now = t0();
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    for rule_count in [10, 100, 1000] {
        let catalog = catalog(rule_count);
        let state = warm_contact(&catalog, now);
        let event = interaction("e1", "email.opened", json!({"campaign_id": "spring"}), now);
        let outcome = evaluate(&catalog, &state, &event, now);
        assert!(!outcome.ledger.is_empty(), "the benchmarked interaction scores");
        assert!(outcome.actions.is_empty(), "the common case fires nothing");
        group.bench_with_input(BenchmarkId::new("rules", rule_count), &rule_count, |b, _| {
            b.iter(|| evaluate(black_box(&catalog), black_box(&state), black_box(&event), now))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_evaluate);
criterion_main!(benches);
