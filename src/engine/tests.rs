//! Engine behaviour, one rule or trigger feature per test, plus properties.

use chrono::TimeDelta;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::ids::{ContactId, DealId, TriggerId};
use ledger::score_from_ledger;
use profile::ProfileSpec;
use trigger::TriggerSpec;

fn t0() -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

fn catalog(profile: Value, triggers: &[(&str, Value)]) -> Catalog {
    let spec: ProfileSpec = serde_json::from_value(profile).unwrap();
    Catalog {
        profiles: vec![spec.compile(&ProfileId::parse("engagement").unwrap(), 1).unwrap()],
        triggers: triggers
            .iter()
            .map(|(id, t)| {
                serde_json::from_value::<TriggerSpec>(t.clone())
                    .unwrap()
                    .compile(&TriggerId::parse(*id).unwrap())
                    .unwrap()
            })
            .collect(),
        score_field: "lead_score".into(),
        pipelines: stages::Pipelines::from_settings(Some(&json!({"sales": ["new", "demo", "negotiation", "won"]}))),
    }
}

fn seeds_catalog() -> Catalog {
    catalog(
        json!({"name": "Engagement", "rules": [
            {"id": "opened", "when": {"type": "email.opened"}, "points": 1},
            {"id": "demo", "when": {"type": "deal.stage_changed", "attributes": {"stage": {"equals": "demo"}}}, "points": 3}]}),
        &[(
            "hot",
            json!({"name": "Hot lead", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}}, "runs": "on_enter",
            "actions": [
              {"type": "add_note", "text": "High engagement: prioritise {{contact.id}}"},
              {"type": "create_task", "title": "Follow up", "due_in": "1d"},
              {"type": "add_tag", "tag": "Caliente"}]}),
        )],
    )
}

fn event(id: &str, kind: &str, attributes: Value, at: DateTime<Utc>) -> Interaction {
    serde_json::from_value(json!({"id": id, "type": kind, "contact_id": "jhon", "occurred_at": at,
        "attributes": attributes}))
    .unwrap()
}

fn new_state() -> ContactState {
    ContactState::new(ContactId::parse("jhon").unwrap())
}

fn engagement() -> ProfileId {
    ProfileId::parse("engagement").unwrap()
}

fn score(state: &ContactState, now: DateTime<Utc>) -> Option<Points> {
    state.scores.get(&engagement()).map(|s| s.live_total(now))
}

/// Applies interactions in order, returning the final state and everything fired.
fn run(catalog: &Catalog, events: &[Interaction]) -> (ContactState, Vec<LedgerEntry>, Vec<FiredAction>) {
    let mut state = new_state();
    let (mut entries, mut fired) = (Vec::new(), Vec::new());
    for e in events {
        let outcome = evaluate(catalog, &state, e, e.occurred_at);
        state = outcome.state;
        entries.extend(outcome.ledger);
        fired.extend(outcome.actions);
    }
    (state, entries, fired)
}

#[test]
fn the_seeds_example_fires_each_action_once_on_entering() {
    let catalog = seeds_catalog();
    let mut events: Vec<_> =
        (0..4).map(|i| event(&format!("o{i}"), "email.opened", json!({}), t0() + TimeDelta::minutes(i))).collect();
    let (state, _, fired) = run(&catalog, &events);
    assert_eq!(score(&state, t0() + TimeDelta::hours(1)), Some(Points::whole(4)));
    assert!(fired.is_empty(), "nothing fires below 5");

    events.push(event("d1", "deal.stage_changed", json!({"stage": "demo"}), t0() + TimeDelta::minutes(10)));
    let (state, _, fired) = run(&catalog, &events);
    assert_eq!(score(&state, t0() + TimeDelta::hours(1)), Some(Points::whole(7)));
    let kinds: Vec<_> = fired.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["add_note", "create_task", "add_tag"]);
    assert_eq!(fired[0].params["text"], "High engagement: prioritise jhon");
    assert_eq!(fired[1].params["due_at"], json!(t0() + TimeDelta::minutes(10) + TimeDelta::days(1)));
    assert_eq!(fired[2].params["tag"], "Caliente");

    events.push(event("o5", "email.opened", json!({}), t0() + TimeDelta::minutes(20)));
    let (state, _, fired_after) = run(&catalog, &events);
    assert_eq!(score(&state, t0() + TimeDelta::hours(1)), Some(Points::whole(8)));
    assert_eq!(fired_after.len(), 3, "on_enter does not fire again at 8");
}

#[test]
fn non_matching_attributes_do_not_score() {
    let (state, entries, _) = run(&seeds_catalog(), &[event("d", "deal.stage_changed", json!({"stage": "won"}), t0())]);
    assert_eq!(score(&state, t0()), None, "no score at all: still empty");
    assert!(entries.is_empty());
}

#[test]
fn negative_points_take_scores_below_zero() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "unsub", "when": {"type": "list.unsubscribed"}, "points": -20}]}),
        &[],
    );
    let (state, _, _) = run(&catalog, &[event("u", "list.unsubscribed", json!({}), t0())]);
    assert_eq!(score(&state, t0()), Some(Points::whole(-20)));
}

#[test]
fn once_rules_score_once_per_contact() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "pricing", "when": {"type": "page.visited"}, "points": 10, "once": true}]}),
        &[],
    );
    let events: Vec<_> =
        (0..3).map(|i| event(&format!("v{i}"), "page.visited", json!({}), t0() + TimeDelta::hours(i))).collect();
    let (state, entries, _) = run(&catalog, &events);
    assert_eq!(score(&state, t0() + TimeDelta::days(1)), Some(Points::whole(10)));
    assert_eq!(entries.len(), 1);
}

#[test]
fn caps_limit_hits_per_rolling_window() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "clicks", "when": {"type": "email.clicked"}, "points": 2, "cap": {"max": 2, "per": "1d"}}]}),
        &[],
    );
    let mut events: Vec<_> =
        (0..4).map(|i| event(&format!("c{i}"), "email.clicked", json!({}), t0() + TimeDelta::hours(i))).collect();
    let (state, _, _) = run(&catalog, &events);
    assert_eq!(score(&state, t0() + TimeDelta::hours(5)), Some(Points::whole(4)), "two of four clicks count");
    events.push(event("late", "email.clicked", json!({}), t0() + TimeDelta::hours(25)));
    let (state, _, _) = run(&catalog, &events);
    assert_eq!(score(&state, t0() + TimeDelta::hours(26)), Some(Points::whole(6)), "the window rolled on");
}

#[test]
fn expired_points_stop_counting_at_their_instant() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "30d"}]}),
        &[],
    );
    let (state, entries, _) = run(&catalog, &[event("o", "email.opened", json!({}), t0())]);
    let expiry = t0() + TimeDelta::days(30);
    assert_eq!(entries[0].expires_at, Some(expiry));
    assert_eq!(score(&state, expiry - TimeDelta::seconds(1)), Some(Points::whole(1)));
    assert_eq!(score(&state, expiry), Some(Points::ZERO), "gone at the instant, but the score is not empty");
}

#[test]
fn settling_an_expiry_fires_a_drop_below_a_threshold() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 5, "expires_in": "1h"}]}),
        &[(
            "cold",
            json!({"name": "Cold", "when": {"score": {"profile": "engagement", "op": "lt", "value": 5}},
            "actions": [{"type": "add_tag", "tag": "cooling"}]}),
        )],
    );
    let (state, _, fired) = run(&catalog, &[event("o", "email.opened", json!({}), t0())]);
    assert!(fired.is_empty());
    assert_eq!(state.next_change(), Some(t0() + TimeDelta::hours(1)));
    let early = settle(&catalog, &state, "sweep", t0() + TimeDelta::minutes(59));
    assert!(early.actions.is_empty(), "nothing expired yet");
    let outcome = settle(&catalog, &state, "sweep", t0() + TimeDelta::hours(1));
    assert_eq!(outcome.state.scores[&engagement()].total, Points::ZERO, "the cached total is settled");
    assert_eq!(outcome.state.next_change(), None);
    assert_eq!(outcome.actions.len(), 1, "5 -> 0 enters lt 5");
    assert!(outcome.ledger.is_empty(), "an expiry is not a new ledger entry");
}

#[test]
fn decay_steps_apply_at_their_instants_and_the_ledger_keeps_the_original() {
    let catalog = catalog(
        json!({"name": "E", "decay": {"percent": 25, "every": "30d"}, "rules": [
            {"id": "demo", "when": {"type": "form.submitted"}, "points": 10},
            {"id": "opened", "when": {"type": "email.opened"}, "points": 4, "decay": {"percent": 50, "every": "1d"}, "expires_in": "3d"}]}),
        &[(
            "cooling",
            json!({"name": "Cooling", "when": {"score": {"profile": "engagement", "op": "lt", "value": 8}},
            "actions": [{"type": "add_tag", "tag": "cooling"}]}),
        )],
    );
    let (state, entries, _) = run(&catalog, &[event("f", "form.submitted", json!({}), t0())]);
    assert_eq!(entries[0].points, Points::whole(10), "the ledger keeps the original points");
    let step = t0() + TimeDelta::days(30);
    assert_eq!(state.next_change(), Some(step));
    assert_eq!(score(&state, step - TimeDelta::seconds(1)), Some(Points::whole(10)));
    let outcome = settle(&catalog, &state, "sweep", step);
    assert_eq!(outcome.state.scores[&engagement()].total, Points::from_cents(750), "10 × 0.75");
    assert_eq!(outcome.actions.len(), 1, "a decay step below the threshold fires lt");
    assert_eq!(outcome.state.next_change(), Some(t0() + TimeDelta::days(60)));
    assert_eq!(entries[0].value_at(t0() + TimeDelta::days(60)), Points::from_cents(562), "5.625 rounds half-even");

    let (state, entries, _) = run(&catalog, &[event("o", "email.opened", json!({}), t0())]);
    assert_eq!(entries[0].decay.map(|d| d.percent), Some(50), "a rule's own decay wins over the profile's");
    assert_eq!(score(&state, t0() + TimeDelta::days(2)), Some(Points::whole(1)), "4 → 2 → 1");
    assert_eq!(score(&state, t0() + TimeDelta::days(3)), Some(Points::ZERO), "and the expiry still ends it");
}

#[test]
fn fit_rules_score_once_per_contact_on_any_interaction_carrying_the_fields() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "ceo", "when": {"contact": {"title": {"equals": "CEO"}}}, "points": 15}]}),
        &[],
    );
    let mut updated = event("u", "contact.updated", json!({}), t0());
    updated.contact = json!({"title": "CEO"}).as_object().unwrap().clone();
    let mut opened = event("o", "email.opened", json!({}), t0() + TimeDelta::hours(1));
    opened.contact = json!({"title": "CEO"}).as_object().unwrap().clone();
    let (state, entries, _) = run(&catalog, &[updated, opened]);
    assert_eq!(entries.len(), 1, "a fit rule is once per contact without saying so");
    assert_eq!(score(&state, t0() + TimeDelta::hours(2)), Some(Points::whole(15)));
    let capped: ProfileSpec = serde_json::from_value(json!({"name": "E", "rules": [
        {"id": "ceo", "when": {"contact": {"title": {"equals": "CEO"}}}, "points": 15, "cap": {"max": 2, "per": "1d"}}]}))
    .unwrap();
    assert_eq!(capped.compile(&engagement(), 1).unwrap_err().path, "rules[0].cap");
}

#[test]
fn contact_field_rules_use_fields_gathered_from_earlier_events() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "metro", "when": {"contact": {"city": {"in": ["Bogotá", "Medellín"]}}}, "points": 10, "once": true}]}),
        &[],
    );
    let mut first = event("a", "email.opened", json!({}), t0());
    first.contact = json!({"city": "Medellín"}).as_object().unwrap().clone();
    let second = event("b", "email.opened", json!({}), t0() + TimeDelta::hours(1));
    let (state, entries, _) = run(&catalog, &[first, second]);
    assert_eq!(score(&state, t0() + TimeDelta::hours(2)), Some(Points::whole(10)));
    assert_eq!(entries.len(), 1);
    assert_eq!(state.fields["city"], "Medellín");
}

#[test]
fn runs_modes_for_score_triggers() {
    let profile = json!({"name": "E", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1}]});
    let trigger = |runs: &str| {
        json!({"name": "T", "when": {"score": {"profile": "engagement", "op": "gte", "value": 2}}, "runs": runs,
        "actions": [{"type": "add_tag", "tag": "warm"}]})
    };
    let events: Vec<_> =
        (0..4).map(|i| event(&format!("o{i}"), "email.opened", json!({}), t0() + TimeDelta::minutes(i))).collect();
    let fired = |runs| run(&catalog(profile.clone(), &[("t", trigger(runs))]), &events).2.len();
    assert_eq!(fired("on_enter"), 1, "crossing 2 once");
    assert_eq!(fired("every_time"), 3, "at 2, 3 and 4");
    assert_eq!(fired("once"), 1);
}

#[test]
fn on_enter_fires_again_after_leaving_and_reentering() {
    let catalog = catalog(
        json!({"name": "E", "rules": [
            {"id": "up", "when": {"type": "email.opened"}, "points": 5},
            {"id": "down", "when": {"type": "list.unsubscribed"}, "points": -5}]}),
        &[(
            "t",
            json!({"name": "T", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}}, "actions": [{"type": "add_tag", "tag": "hot"}]}),
        )],
    );
    let kinds = ["email.opened", "list.unsubscribed", "email.opened"];
    let events: Vec<_> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| event(&format!("e{i}"), k, json!({}), t0() + TimeDelta::minutes(i as i64)))
        .collect();
    assert_eq!(run(&catalog, &events).2.len(), 2);
}

#[test]
fn once_triggers_remember_who_fired() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1}]}),
        &[(
            "t",
            json!({"name": "T", "when": {"score": {"profile": "engagement", "op": "not_empty"}}, "runs": "once", "actions": [{"type": "add_tag", "tag": "known"}]}),
        )],
    );
    let events: Vec<_> =
        (0..3).map(|i| event(&format!("o{i}"), "email.opened", json!({}), t0() + TimeDelta::minutes(i))).collect();
    let (state, _, fired) = run(&catalog, &events);
    assert_eq!(fired.len(), 1);
    assert!(state.fired_once.contains(&TriggerId::parse("t").unwrap()));
}

#[test]
fn empty_and_lt_triggers_see_resets_and_negative_scores() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "r", "when": {"type": "list.unsubscribed"}, "points": -3}]}),
        &[
            (
                "cold",
                json!({"name": "Cold", "when": {"score": {"profile": "engagement", "op": "lt", "value": 0}}, "actions": [{"type": "add_tag", "tag": "cold"}]}),
            ),
            (
                "gone",
                json!({"name": "Gone", "when": {"score": {"profile": "engagement", "op": "empty"}}, "actions": [{"type": "add_note", "text": "reset {{contact.id}}"}]}),
            ),
        ],
    );
    let (state, _, fired) = run(&catalog, &[event("u", "list.unsubscribed", json!({}), t0())]);
    assert_eq!(fired.iter().map(|a| a.trigger.as_str()).collect::<Vec<_>>(), ["cold"]);
    let reset = Adjustment { op: AdjustOp::Reset, points: Points::ZERO, expires_at: None };
    let outcome = adjust(&catalog, &state, &engagement(), reset, &EventId::parse("adj_1").unwrap(), t0());
    assert_eq!(score(&outcome.state, t0()), None);
    assert_eq!(outcome.actions.iter().map(|a| a.trigger.as_str()).collect::<Vec<_>>(), ["gone"]);
}

#[test]
fn interaction_triggers_match_type_and_attributes() {
    let catalog = catalog(
        json!({"name": "E", "rules": []}),
        &[(
            "line",
            json!({"name": "Missed on sales line", "when": {"event": {"type": "call.missed", "attributes": {"line": {"equals": "sales"}}}},
            "actions": [{"type": "create_task", "title": "Call back {{contact.id}}"}]}),
        )],
    );
    let events = [
        event("a", "call.missed", json!({"line": "support"}), t0()),
        event("b", "call.missed", json!({"line": "sales"}), t0()),
        event("c", "call.missed", json!({"line": "sales"}), t0()),
    ];
    let fired = run(&catalog, &events).2;
    assert_eq!(fired.len(), 2, "every_time by default");
    assert_eq!(fired[0].params["title"], "Call back jhon");
}

#[test]
fn manual_adjustments_add_subtract_set_with_expiry() {
    let catalog = seeds_catalog();
    let cause = EventId::parse("adj").unwrap();
    let mut state = new_state();
    let steps = [
        (AdjustOp::Add, 10, None, 10),
        (AdjustOp::Subtract, 3, None, 7),
        (AdjustOp::Set, 2, None, 2),
        (AdjustOp::Add, 5, Some(t0() + TimeDelta::hours(1)), 7),
    ];
    for (op, points, expires_at, expected) in steps {
        let change = Adjustment { op, points: Points::whole(points), expires_at };
        state = adjust(&catalog, &state, &engagement(), change, &cause, t0()).state;
        assert_eq!(score(&state, t0()), Some(Points::whole(expected)), "after {op:?}");
    }
    assert_eq!(score(&state, t0() + TimeDelta::hours(1)), Some(Points::whole(2)), "the expiring add lapsed");
}

fn two_profiles(triggers: &[(&str, Value)]) -> Catalog {
    let mut catalog = catalog(
        json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 5}]}),
        triggers,
    );
    let intent: ProfileSpec = serde_json::from_value(json!({"name": "Intent", "rules": []})).unwrap();
    catalog.profiles.push(intent.compile(&ProfileId::parse("intent").unwrap(), 1).unwrap());
    catalog
}

#[test]
fn adjust_score_moves_another_profile_inside_the_same_change() {
    let catalog = two_profiles(&[
        (
            "boost",
            json!({"name": "Boost", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}},
            "actions": [{"type": "adjust_score", "profile": "intent", "op": "add", "points": 2, "expires_in": "1d"},
                        {"type": "add_tag", "tag": "warm"}]}),
        ),
        (
            "intent-hot",
            json!({"name": "Intent hot", "when": {"score": {"profile": "intent", "op": "gte", "value": 2}},
            "actions": [{"type": "add_note", "text": "intent"}]}),
        ),
    ]);
    let (state, entries, fired) = run(&catalog, &[event("o", "email.opened", json!({}), t0())]);
    let intent = ProfileId::parse("intent").unwrap();
    assert_eq!(state.scores[&intent].live_total(t0()), Points::whole(2));
    assert_eq!(entries.iter().map(|e| e.rule.as_str()).collect::<Vec<_>>(), ["opened", "trigger.boost.add"]);
    assert_eq!(entries[1].expires_at, Some(t0() + TimeDelta::days(1)));
    let kinds: Vec<&str> = fired.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["add_tag", "add_note"], "adjust_score is applied, not delivered; the cascade fires intent-hot");
}

#[test]
fn adjust_score_loops_stop_each_trigger_fires_once_per_change() {
    // a raises intent, which raises engagement, which would raise intent again…
    let catalog = two_profiles(&[
        (
            "a",
            json!({"name": "A", "when": {"score": {"profile": "engagement", "op": "gte", "value": 1}}, "runs": "every_time",
            "actions": [{"type": "adjust_score", "profile": "intent", "op": "add", "points": 1}]}),
        ),
        (
            "b",
            json!({"name": "B", "when": {"score": {"profile": "intent", "op": "gte", "value": 1}}, "runs": "every_time",
            "actions": [{"type": "adjust_score", "profile": "engagement", "op": "add", "points": 1}]}),
        ),
    ]);
    let (state, entries, _) = run(&catalog, &[event("o", "email.opened", json!({}), t0())]);
    assert_eq!(entries.len(), 3, "the event, then a, then b; a does not fire twice");
    assert_eq!(score(&state, t0()), Some(Points::whole(6)));
    let spec: TriggerSpec = serde_json::from_value(json!({"name": "x", "when": {"event": {"type": "email.opened"}},
        "actions": [{"type": "adjust_score", "profile": "intent", "op": "add", "points": -1}]}))
    .unwrap();
    assert_eq!(spec.compile(&TriggerId::parse("x").unwrap()).unwrap_err().path, "actions[0].points");
}

#[test]
fn set_field_writes_the_live_score_to_the_tenant_field() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "r", "when": {"type": "email.opened"}, "points": 1}]}),
        &[(
            "sync",
            json!({"name": "Sync", "when": {"score": {"profile": "engagement", "op": "not_empty"}}, "runs": "every_time", "actions": [{"type": "set_field"}]}),
        )],
    );
    let fired =
        run(&catalog, &[event("a", "email.opened", json!({}), t0()), event("b", "email.opened", json!({}), t0())]).2;
    assert_eq!(fired.iter().map(|a| a.params["value"].clone()).collect::<Vec<_>>(), [json!(1), json!(2)]);
    assert_eq!(fired[0].params["field"], "lead_score");
}

fn recorded(events: &[Interaction]) -> Vec<interaction::Recorded> {
    events.iter().map(|e| interaction::Recorded { interaction: e.clone(), received_at: e.occurred_at }).collect()
}

#[test]
fn a_recompute_rebuilds_from_history_keeps_manual_points_and_respects_resets() {
    let v1 =
        catalog(json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1}]}), &[]);
    let v2 = catalog(
        json!({"name": "E", "rules": [
            {"id": "opened", "when": {"type": "email.opened"}, "points": 2},
            {"id": "clicked", "when": {"type": "email.clicked"}, "points": 5, "once": true}]}),
        &[(
            "hot",
            json!({"name": "Hot", "when": {"score": {"profile": "engagement", "op": "gte", "value": 10}},
            "actions": [{"type": "add_tag", "tag": "hot"}]}),
        )],
    );
    let events: Vec<_> = (0..4)
        .map(|i| {
            event(
                &format!("e{i}"),
                ["email.opened", "email.clicked"][i % 2],
                json!({}),
                t0() + TimeDelta::hours(i as i64),
            )
        })
        .collect();
    let (live, _, _) = run(&v1, &events);
    let now = t0() + TimeDelta::days(1);
    let added = adjust(
        &v1,
        &live,
        &engagement(),
        Adjustment { op: AdjustOp::Add, points: Points::whole(3), expires_at: None },
        &EventId::parse("adj").unwrap(),
        now,
    );
    let before = added.state;
    assert_eq!(score(&before, now), Some(Points::whole(5)), "two opens and the manual 3");

    let outcome =
        replay::recompute(&v2, &before, &v2.profiles[0], &recorded(&events), &added.ledger, "publish", now).unwrap();
    assert_eq!(score(&outcome.state, now), Some(Points::whole(12)), "2 × 2 + one click 5 (once) + manual 3");
    assert_eq!(outcome.ledger[0].rule, ledger::RECOMPUTE);
    assert_eq!(
        outcome.ledger.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (before.next_seq..before.next_seq + 4).collect::<Vec<_>>()
    );
    let opened = outcome.ledger.iter().find(|e| e.rule == "opened").unwrap();
    assert_eq!((opened.points, opened.merged), (Points::whole(4), Some(2)), "fixed points merge per rule");
    let clicked = outcome.ledger.iter().find(|e| e.rule == "clicked").unwrap();
    assert_eq!(
        (clicked.merged, clicked.event_id.as_ref().map(|e| e.as_str())),
        (None, Some("e1")),
        "a single entry stays itself"
    );
    assert_eq!(outcome.actions.len(), 1, "5 → 12 crosses gte 10");
    assert_eq!(score_from_ledger(&outcome.ledger, now), Some(Points::whole(12)), "the ledger explains the new score");

    assert!(
        replay::recompute(&v2, &outcome.state, &v2.profiles[0], &recorded(&events), &outcome.ledger, "again", now)
            .is_none(),
        "recomputing the same history changes nothing"
    );

    let reset = adjust(
        &v1,
        &before,
        &engagement(),
        Adjustment { op: AdjustOp::Reset, points: Points::ZERO, expires_at: None },
        &EventId::parse("r").unwrap(),
        now,
    );
    assert!(
        replay::recompute(&v2, &reset.state, &v2.profiles[0], &recorded(&events), &reset.ledger, "publish", now)
            .is_none(),
        "history from before a manual reset does not come back"
    );
}

#[test]
fn a_simulation_reports_bands_top_contacts_and_trigger_counts() {
    let catalog = seeds_catalog();
    let results: Vec<(ContactId, replay::Replay)> = (0..5)
        .map(|n| {
            let contact = ContactId::parse(format!("c{n}")).unwrap();
            let events: Vec<_> = (0..n * 2)
                .map(|i| event(&format!("e{i}"), "email.opened", json!({}), t0() + TimeDelta::minutes(i as i64)))
                .collect();
            (
                contact.clone(),
                replay::replay(
                    &catalog.profiles[0],
                    &catalog.triggers,
                    &contact,
                    &recorded(&events),
                    t0() + TimeDelta::days(1),
                ),
            )
        })
        .collect();
    let report = replay::Simulation::report(&results, Points::whole(5), 2);
    assert_eq!((report.contacts, report.scored), (5, 4), "c0 had no history");
    let bands: Vec<(Points, usize)> = report.bands.iter().map(|b| (b.from, b.count)).collect();
    assert_eq!(bands, vec![(Points::ZERO, 2), (Points::whole(5), 2)], "scores 2, 4 | 6, 8");
    assert_eq!(report.top.iter().map(|t| t.contact_id.as_str()).collect::<Vec<_>>(), ["c4", "c3"]);
    assert_eq!(report.triggers.get(&TriggerId::parse("hot").unwrap()), Some(&2), "c3 and c4 crossed 5, once each");
}

#[derive(Debug, Clone)]
enum Step {
    Event { kind: usize, minutes: i64 },
    Adjust { op: AdjustOp, points: Points, expires_minutes: Option<i64>, minutes: i64 },
    Sweep { minutes: i64 },
}

/// Step `i` of a property run, at the minute it names (never before `now`, which it moves).
fn apply_step(catalog: &Catalog, state: &ContactState, i: usize, step: &Step, now: &mut DateTime<Utc>) -> Outcome {
    let minutes = match step {
        Step::Event { minutes, .. } | Step::Adjust { minutes, .. } | Step::Sweep { minutes } => *minutes,
    };
    *now = (*now).max(t0() + TimeDelta::minutes(minutes));
    let now = *now;
    match step {
        Step::Event { kind, .. } => {
            evaluate(catalog, state, &event(&format!("e{i}"), KINDS[*kind], json!({}), now), now)
        }
        Step::Adjust { op, points, expires_minutes, .. } => {
            let expires_at = expires_minutes.map(|m| now + TimeDelta::minutes(m));
            let change = Adjustment { op: *op, points: *points, expires_at };
            adjust(catalog, state, &engagement(), change, &EventId::parse(format!("a{i}")).unwrap(), now)
        }
        Step::Sweep { .. } => settle(catalog, state, "sweep", now),
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..4usize, 0..600i64).prop_map(|(kind, minutes)| Step::Event { kind, minutes }),
        1 => (prop_oneof![Just(AdjustOp::Add), Just(AdjustOp::Subtract), Just(AdjustOp::Set), Just(AdjustOp::Reset)],
              -50..50i64, proptest::option::of(1..300i64), 0..600i64)
            .prop_map(|(op, points, expires_minutes, minutes)| Step::Adjust { op, points: Points::whole(points), expires_minutes, minutes }),
        1 => (0..600i64).prop_map(|minutes| Step::Sweep { minutes }),
    ]
}

fn property_catalog() -> Catalog {
    catalog(
        json!({"name": "E", "decay": {"percent": 30, "every": "20m"}, "rules": [
            {"id": "opened", "when": {"type": "email.opened"}, "points": 1, "expires_in": "1h", "decay": {"percent": 50, "every": "7m"}},
            {"id": "clicked", "when": {"type": "email.clicked"}, "points": 2.5, "cap": {"max": 3, "per": "2h"}},
            {"id": "pricing", "when": {"type": "page.visited"}, "points": 10, "once": true, "expires_in": "3h"},
            {"id": "unsub", "when": {"type": "list.unsubscribed"}, "points": -20}]}),
        &[(
            "hot",
            json!({"name": "H", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}}, "actions": [{"type": "add_tag", "tag": "hot"}]}),
        )],
    )
}

const KINDS: [&str; 4] = ["email.opened", "email.clicked", "page.visited", "list.unsubscribed"];

proptest! {
    /// Whatever happens, in whatever order, the cached score equals the sum of
    /// the ledger entries' current (decayed, unexpired) values since the last
    /// reset, at every instant; after a sweep the cached total itself does.
    #[test]
    fn total_always_equals_the_unexpired_ledger_sum(steps in proptest::collection::vec(step(), 1..40), probe in 0..900i64) {
        let catalog = property_catalog();
        let mut state = new_state();
        let mut entries: Vec<LedgerEntry> = Vec::new();
        let mut now = t0();
        for (i, s) in steps.iter().enumerate() {
            let outcome = apply_step(&catalog, &state, i, s, &mut now);
            if let Step::Sweep { .. } = s {
                let cached = outcome.state.scores.get(&engagement()).map(|s| s.total);
                prop_assert_eq!(cached, score_from_ledger(&entries, now), "settled cache equals the ledger");
                prop_assert!(outcome.state.next_change().is_none_or(|t| t > now), "nothing due is left behind");
            }
            state = outcome.state;
            entries.extend(outcome.ledger);
            prop_assert_eq!(score(&state, now), score_from_ledger(&entries, now));
        }
        let later = now + TimeDelta::minutes(probe);
        prop_assert_eq!(score(&state, later), score_from_ledger(&entries, later));
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        prop_assert_eq!(seqs, (0..entries.len() as u64).collect::<Vec<_>>(), "ledger seqs are dense and ordered");
    }

    /// A capped rule never books more than `max` hits in any window of
    /// `per` ending at a hit, and refuses a hit only when the window is full.
    #[test]
    fn caps_hold_over_every_sliding_window(minutes in proptest::collection::vec(0..600i64, 1..60)) {
        let catalog = catalog(
            json!({"name": "E", "rules": [{"id": "c", "when": {"type": "email.clicked"}, "points": 1, "cap": {"max": 3, "per": "1h"}}]}),
            &[],
        );
        let mut sorted = minutes.clone();
        sorted.sort_unstable();
        let events: Vec<_> = sorted.iter().enumerate()
            .map(|(i, m)| event(&format!("e{i}"), "email.clicked", json!({}), t0() + TimeDelta::minutes(*m)))
            .collect();
        let (_, entries, _) = run(&catalog, &events);
        let booked: Vec<DateTime<Utc>> = entries.iter().map(|e| e.at).collect();
        for &at in &booked {
            let in_window = booked.iter().filter(|&&t| t > at - TimeDelta::hours(1) && t <= at).count();
            prop_assert!(in_window <= 3, "{} hits in the hour up to {}", in_window, at);
        }
        for e in &events {
            if !booked.contains(&e.occurred_at) {
                let window = booked.iter().filter(|&&t| t > e.occurred_at - TimeDelta::hours(1) && t <= e.occurred_at).count();
                prop_assert_eq!(window, 3, "a hit was refused with room in its window");
            }
        }
    }

    /// Replaying a contact's history books what live scoring booked: once,
    /// caps, expiry and decay relative to each interaction's own time.
    #[test]
    fn replay_equals_live_scoring(steps in proptest::collection::vec((0..4usize, 0..600i64), 1..30), probe in 0..900i64) {
        let catalog = property_catalog();
        let mut events: Vec<_> = steps.iter().enumerate()
            .map(|(i, (kind, minutes))| event(&format!("e{i}"), KINDS[*kind], json!({}), t0() + TimeDelta::minutes(*minutes)))
            .collect();
        events.sort_by_key(|e| e.occurred_at);
        let (live, entries, _) = run(&catalog, &events);
        let now = t0() + TimeDelta::minutes(600 + probe);
        let replayed = replay::replay(&catalog.profiles[0], &[], &live.contact_id, &recorded(&events), now);
        prop_assert_eq!(replayed.score.map(|s| s.total), score(&live, now));
        prop_assert_eq!(replayed.entries, entries);
    }

    /// The engine is a function: the same inputs give the same outcome, so a
    /// commit retried after a conflict books the same entries and action ids.
    #[test]
    fn evaluation_is_deterministic(steps in proptest::collection::vec((0..4usize, 0..600i64), 1..20)) {
        let catalog = property_catalog();
        let events: Vec<_> = steps.iter().enumerate()
            .map(|(i, (kind, minutes))| event(&format!("e{i}"), KINDS[*kind], json!({}), t0() + TimeDelta::minutes(*minutes)))
            .collect();
        prop_assert_eq!(run(&catalog, &events), run(&catalog, &events));
    }
}

#[test]
fn a_deal_state_scores_and_fires_on_the_deal_for_its_latest_contact() {
    let catalog = catalog(
        json!({"name": "Deal heat", "subject": "deal", "rules": [
            {"id": "call", "when": {"type": "call.outgoing"}, "points": 3}]}),
        &[(
            "hot_deal",
            json!({"name": "Hot deal", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}},
            "runs": "on_enter", "actions": [
              {"type": "move_stage", "pipeline": "sales", "stage": "negotiation"},
              {"type": "add_note", "text": "{{deal.id}} heats up after {{contact.id}}"}]}),
        )],
    );
    let deal = DealId::parse("d-9").unwrap();
    let mut state = ContactState::new(ContactId::for_deal(&deal));
    let mut fired = Vec::new();
    for (n, contact) in ["ana", "ben"].iter().enumerate() {
        let interaction: Interaction = serde_json::from_value(json!({"id": format!("c{n}"), "type": "call.outgoing",
            "contact_id": contact, "deal_id": "d-9", "occurred_at": t0()}))
        .unwrap();
        let outcome = evaluate(&catalog, &state, &interaction, t0());
        state = outcome.state;
        fired.extend(outcome.actions);
    }
    assert_eq!(score(&state, t0()), Some(Points::whole(6)));
    assert_eq!(state.last_contact, Some(ContactId::parse("ben").unwrap()));
    assert_eq!(fired.len(), 2, "on entering gte 5, on the second call");
    for action in &fired {
        assert_eq!(action.deal_id.as_ref(), Some(&deal));
        assert_eq!(action.contact_id.as_str(), "ben");
    }
    assert_eq!(fired[1].params["text"], "d-9 heats up after ben");
}

fn chat_deadline(runs: &str) -> Catalog {
    catalog(
        json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1}]}),
        &[(
            "unanswered",
            json!({"name": "Chat not accepted", "runs": runs, "when": {"deadline": {
                "start": {"type": "chat.first_message"}, "awaits": {"type": "chat.accepted"}, "within_s": 600}},
                "actions": [{"type": "create_task", "title": "Call {{contact.id}} back"}]}),
        )],
    )
}

#[test]
fn a_deadline_fires_when_the_awaited_interaction_does_not_come_in_time() {
    let catalog = chat_deadline("every_time");
    let start = evaluate(&catalog, &new_state(), &event("m1", "chat.first_message", json!({}), t0()), t0());
    assert!(start.actions.is_empty());
    assert_eq!(start.state.next_change(), Some(t0() + TimeDelta::seconds(600)), "the sweeper is due then");

    let early = settle(&catalog, &start.state, "sweep", t0() + TimeDelta::seconds(599));
    assert!(early.actions.is_empty(), "not yet");
    let due = settle(&catalog, &start.state, "sweep", t0() + TimeDelta::seconds(600));
    assert_eq!(due.actions.len(), 1);
    assert_eq!(due.actions[0].params["title"], "Call jhon back");
    assert!(due.state.timers.is_empty() && due.state.next_change().is_none(), "a timer fires once");
    let again = settle(&catalog, &start.state, "retry", t0() + TimeDelta::seconds(700));
    assert_eq!(again.actions[0].id, due.actions[0].id, "a retried sweep fires the same action id");

    // Awaited in time: cancelled, nothing fires ever.
    let accepted =
        evaluate(&catalog, &start.state, &event("a1", "chat.accepted", json!({}), t0()), t0() + TimeDelta::seconds(30));
    assert!(accepted.state.timers.is_empty());
    assert!(settle(&catalog, &accepted.state, "sweep", t0() + TimeDelta::hours(1)).actions.is_empty());

    // A second first message while the timer runs does not push the deadline back.
    let second = evaluate(
        &catalog,
        &start.state,
        &event("m2", "chat.first_message", json!({}), t0()),
        t0() + TimeDelta::seconds(300),
    );
    assert_eq!(second.state.next_change(), Some(t0() + TimeDelta::seconds(600)));
}

#[test]
fn deadline_timers_are_per_deal_and_once_fires_once_per_contact() {
    let catalog = chat_deadline("once");
    let with_deal = |id: &str, kind: &str, deal: &str, at| {
        let mut e = event(id, kind, json!({}), at);
        e.deal_id = Some(DealId::parse(deal).unwrap());
        e
    };
    let mut state = new_state();
    for e in [with_deal("m1", "chat.first_message", "d1", t0()), with_deal("m2", "chat.first_message", "d2", t0())] {
        state = evaluate(&catalog, &state, &e, t0()).state;
    }
    let cancel = with_deal("a1", "chat.accepted", "d1", t0());
    state = evaluate(&catalog, &state, &cancel, t0() + TimeDelta::seconds(10)).state;
    assert_eq!(state.timers.len(), 1, "the acceptance on d1 leaves d2's timer running");
    let fired = settle(&catalog, &state, "sweep", t0() + TimeDelta::hours(1));
    assert_eq!(fired.actions.len(), 1);
    assert_eq!(fired.actions[0].deal_id, Some(DealId::parse("d2").unwrap()));

    let restarted = evaluate(
        &catalog,
        &fired.state,
        &event("m3", "chat.first_message", json!({}), t0()),
        t0() + TimeDelta::hours(2),
    );
    let later = settle(&catalog, &restarted.state, "sweep", t0() + TimeDelta::hours(3));
    assert!(later.actions.is_empty(), "runs once: never again for this contact");
}

#[test]
fn an_interaction_trigger_on_enter_fires_on_a_match_after_a_non_match() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1}]}),
        &[(
            "pricing",
            json!({"name": "Pricing", "runs": "on_enter", "when": {"event": {"type": "page.visited",
                "attributes": {"url": {"contains": "/pricing"}}}}, "actions": [{"type": "add_tag", "tag": "pricing"}]}),
        )],
    );
    let visit = |id: &str, url: &str| event(id, "page.visited", json!({"url": url}), t0());
    let events = [visit("v1", "/pricing"), visit("v2", "/pricing?x"), visit("v3", "/blog"), visit("v4", "/pricing")];
    let (_, _, fired) = run(&catalog, &events);
    assert_eq!(fired.len(), 2, "v1 enters, v2 stays, v3 leaves, v4 enters again");
}

#[test]
fn a_stage_move_backwards_without_permission_is_skipped_with_the_reason() {
    let move_to = |stage: &str, allow: bool| json!({"type": "move_stage", "pipeline": "sales", "stage": stage, "allow_backwards": allow, "as_user": "u-7"});
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1}]}),
        &[(
            "opened",
            json!({"name": "Opened", "when": {"event": {"type": "email.opened"}},
                "actions": [move_to("demo", false), move_to("demo", true), move_to("won", false)]}),
        )],
    );
    let on_deal = |id: &str, kind: &str, attributes: Value| {
        let mut e = event(id, kind, attributes, t0());
        e.deal_id = Some(DealId::parse("d1").unwrap());
        e
    };
    let (_, _, fired) = run(
        &catalog,
        &[
            on_deal("s1", "deal.stage_changed", json!({"pipeline": "sales", "stage": "negotiation"})),
            on_deal("o1", "email.opened", json!({})),
        ],
    );
    let skipped: Vec<Option<&str>> = fired.iter().map(|a| a.skipped.as_deref()).collect();
    assert_eq!(
        skipped,
        [
            Some("moving deal d1 back from \"negotiation\" to \"demo\" in pipeline \"sales\" needs allow_backwards"),
            None,
            None
        ]
    );
    assert_eq!(fired[1].params["as_user"], "u-7");

    let (_, _, unknown) = run(&catalog, &[on_deal("o1", "email.opened", json!({}))]);
    assert!(unknown.iter().all(|a| a.skipped.is_none()), "no known stage: nothing is backwards");
    let (_, _, no_deal) = run(&catalog, &[event("o1", "email.opened", json!({}), t0())]);
    assert!(no_deal.iter().all(|a| a.skipped.as_deref().is_some_and(|r| r.starts_with("no deal"))));
}

/// Rules, adjustments and an `adjust_score` trigger all worth up to the
/// bound, so sums run into it from both sides.
fn bound_catalog() -> Catalog {
    catalog(
        json!({"name": "E", "rules": [
            {"id": "huge", "when": {"type": "email.opened"}, "points": 1_000_000_000_000i64},
            {"id": "fading", "when": {"type": "email.clicked"}, "points": 999_999_999_999.99, "decay": {"percent": 10, "every": "7m"}},
            {"id": "brief", "when": {"type": "page.visited"}, "points": -1_000_000_000_000i64, "expires_in": "1h"},
            {"id": "unsub", "when": {"type": "list.unsubscribed"}, "points": -1_000_000_000_000i64}]}),
        &[(
            "boost",
            json!({"name": "B", "when": {"event": {"type": "email.opened"}}, "runs": "every_time",
                   "actions": [{"type": "adjust_score", "profile": "engagement", "op": "add", "points": 1_000_000_000_000i64}]}),
        )],
    )
}

/// Every state and ledger entry reads back as written.
fn reads_back(state: &ContactState, entries: &[LedgerEntry]) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(state).unwrap();
    let read: ContactState = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    prop_assert_eq!(&read, state);
    for entry in entries {
        let text = serde_json::to_string(entry).unwrap();
        let read: LedgerEntry = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(&read, entry);
    }
    Ok(())
}

proptest! {
    /// However points pile up (rules, manual changes, triggered
    /// adjustments, decay, expiry), every score stays within ±1e12 and every
    /// state and ledger entry written reads back: no stored contact can
    /// become one that cannot be read. While nothing has expired, the
    /// ledger explains the score exactly (saturated entries say so).
    #[test]
    fn every_stored_state_reads_back_whatever_the_sums(steps in proptest::collection::vec(bound_step(), 1..30)) {
        let catalog = bound_catalog();
        let mut state = new_state();
        let mut entries: Vec<LedgerEntry> = Vec::new();
        let mut now = t0();
        for (i, s) in steps.iter().enumerate() {
            let outcome = apply_step(&catalog, &state, i, s, &mut now);
            state = outcome.state;
            reads_back(&state, &outcome.ledger)?;
            entries.extend(outcome.ledger);
            if let Some(score) = score(&state, now) {
                prop_assert!(Points::MIN <= score && score <= Points::MAX);
            }
        }
        let nothing_changed_by_itself = entries.iter().all(|e| e.expires_at.is_none() && e.decay.is_none());
        if nothing_changed_by_itself {
            prop_assert_eq!(score(&state, now), score_from_ledger(&entries, now));
        }
    }
}

fn bound_step() -> impl Strategy<Value = Step> {
    let cents = prop_oneof![Just(100_000_000_000_000i64), 0..100_000_000_000_000i64, Just(1i64)];
    prop_oneof![
        3 => (0..4usize, 0..600i64).prop_map(|(kind, minutes)| Step::Event { kind, minutes }),
        2 => (prop_oneof![Just(AdjustOp::Add), Just(AdjustOp::Subtract), Just(AdjustOp::Set), Just(AdjustOp::Reset)],
              cents, proptest::option::of(1..300i64), 0..600i64)
            .prop_map(|(op, cents, expires_minutes, minutes)| Step::Adjust { op, points: Points::from_cents(cents), expires_minutes, minutes }),
        1 => (0..600i64).prop_map(|minutes| Step::Sweep { minutes }),
    ]
}

#[test]
fn a_rule_that_would_pass_the_bound_books_what_fits_and_says_so() {
    let catalog = bound_catalog();
    let at_max = adjust(
        &catalog,
        &new_state(),
        &engagement(),
        Adjustment { op: AdjustOp::Set, points: Points::MAX, expires_at: None },
        &EventId::parse("a0").unwrap(),
        t0(),
    );
    let outcome = evaluate(&catalog, &at_max.state, &event("e1", "email.opened", json!({}), t0()), t0());
    assert_eq!(score(&outcome.state, t0()), Some(Points::MAX));
    let huge = outcome.ledger.iter().find(|e| e.rule == "huge").unwrap();
    assert_eq!(
        (huge.points, huge.saturated),
        (Points::ZERO, Some(Points::MAX)),
        "no room: nothing booked, all of it asked"
    );
    let boost = outcome.ledger.iter().find(|e| e.rule.starts_with("trigger.boost")).unwrap();
    assert_eq!(
        (boost.points, boost.saturated),
        (Points::ZERO, Some(Points::MAX)),
        "a triggered adjustment saturates too"
    );
    assert!(fits(
        &at_max.state,
        &engagement(),
        &Adjustment { op: AdjustOp::Subtract, points: Points::MAX, expires_at: None },
        t0()
    ));
    assert!(!fits(
        &at_max.state,
        &engagement(),
        &Adjustment { op: AdjustOp::Add, points: Points::from_cents(1), expires_at: None },
        t0()
    ));
}

#[test]
fn a_move_to_where_the_deal_is_or_was_last_moved_is_skipped_until_the_crm_reports_a_change() {
    let catalog = catalog(
        json!({"name": "E", "rules": [{"id": "opened", "when": {"type": "email.opened"}, "points": 1}]}),
        &[(
            "advance",
            json!({"name": "A", "when": {"event": {"type": "email.opened"}}, "runs": "every_time",
                   "actions": [{"type": "move_stage", "pipeline": "sales", "stage": "demo"}]}),
        )],
    );
    let on_deal = |id: &str, kind: &str, attributes: Value| -> Interaction {
        serde_json::from_value(json!({"id": id, "type": kind, "contact_id": "jhon", "deal_id": "d_7",
            "occurred_at": t0(), "attributes": attributes}))
        .unwrap()
    };
    let open = |id: &str| on_deal(id, "email.opened", json!({}));
    let stage = |id: &str, to: &str| on_deal(id, "deal.stage_changed", json!({"pipeline": "sales", "stage": to}));
    let events = [open("o1"), open("o2"), stage("s1", "new"), open("o3"), stage("s2", "demo"), open("o4")];
    let (_, _, fired) = run(&catalog, &events);
    let skips: Vec<Option<&str>> = fired.iter().map(|a| a.skipped.as_deref()).collect();
    assert_eq!(skips.len(), 4, "{fired:?}");
    assert_eq!(skips[0], None, "the first move is sent");
    assert!(skips[1].is_some_and(|why| why.contains("already moved")), "{skips:?}");
    assert_eq!(skips[2], None, "the CRM reported the deal back at new: the move is sent again");
    assert!(skips[3].is_some_and(|why| why.contains("already in stage")), "{skips:?}");
}

#[test]
fn fit_points_follow_the_field_withdrawn_when_it_stops_matching_and_granted_when_it_matches_again() {
    let catalog = catalog(
        json!({"name": "E", "rules": [
            {"id": "opened", "when": {"type": "email.opened"}, "points": 1},
            {"id": "metro", "when": {"contact": {"country": {"equals": "CO"}}}, "points": 10}]}),
        &[],
    );
    let from = |id: &str, country: &str, minutes: i64| -> Interaction {
        serde_json::from_value(json!({"id": id, "type": "email.opened", "contact_id": "jhon",
            "occurred_at": t0() + TimeDelta::minutes(minutes), "contact": {"country": country}}))
        .unwrap()
    };
    let (state, _, _) = run(&catalog, &[from("e1", "CO", 0)]);
    assert_eq!(score(&state, t0()), Some(Points::whole(11)));
    let (state, entries, _) = run(&catalog, &[from("e1", "CO", 0), from("e2", "US", 1), from("e3", "US", 2)]);
    let later = t0() + TimeDelta::minutes(2);
    assert_eq!(score(&state, later), Some(Points::whole(3)), "the 10 fit points left with the country");
    let withdrawn: Vec<(&str, Points)> = entries
        .iter()
        .filter(|e| e.rule == "metro")
        .map(|e| (e.event_id.as_ref().unwrap().as_str(), e.points))
        .collect();
    assert_eq!(withdrawn, [("e1", Points::whole(10)), ("e2", Points::whole(-10))], "granted once, withdrawn once");

    let back = from("e4", "CO", 3);
    let outcome = evaluate(&catalog, &state, &back, back.occurred_at);
    assert_eq!(score(&outcome.state, back.occurred_at), Some(Points::whole(14)), "granted again with the field");
    let mut all = entries;
    all.extend(outcome.ledger);
    assert_eq!(score_from_ledger(&all, back.occurred_at), Some(Points::whole(14)), "the ledger explains it");
}
