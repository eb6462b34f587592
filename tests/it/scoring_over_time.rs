//! Scores that change by themselves: random sequences of webhooks and clock
//! advances with expiring and decaying rules, swept as the sweeper does, on
//! both stores. After every sweep each contact's cached score (the
//! leaderboard's) equals the sum of its ledger entries' current values.

use std::sync::Arc;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::json;

use scorehook::clock::Clock;

use crate::support::dynamo::fresh_store;
use crate::support::{cents, interaction, listed_scores, TestApp};

const CONTACTS: [&str; 3] = ["ana", "jhon", "luz"];
const KINDS: [&str; 3] = ["email.opened", "email.clicked", "list.unsubscribed"];

/// A tiny deterministic generator, so every seed replays the same run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn setup(app: &TestApp) {
    app.create_tenant("acme", None).await;
    let profile = json!({"name": "E", "decay": {"percent": 20, "every": "1h"}, "rules": [
        {"id": "opened", "when": {"type": "email.opened"}, "points": 3, "expires_in": "5h"},
        {"id": "clicked", "when": {"type": "email.clicked"}, "points": 2.5, "decay": {"percent": 50, "every": "30m"}},
        {"id": "unsub", "when": {"type": "list.unsubscribed"}, "points": -4, "expires_in": "2h"}]});
    let (status, body) = app.admin(Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(profile)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.admin(Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None).await;
}

/// Each contact's score as listed, and as its ledger explains it.
async fn check_cache_equals_ledger(app: &TestApp) -> usize {
    let (_, board) = app.admin(Method::GET, "/v1/tenants/acme/contacts?profile=engagement&limit=100", None).await;
    let listed = listed_scores(&board);
    for (contact, score) in &listed {
        let (_, view) = app.admin(Method::GET, &format!("/v1/tenants/acme/contacts/{contact}/scores"), None).await;
        let engagement = &view["scores"]["engagement"];
        let from_ledger: i64 = engagement["ledger"].as_array().unwrap().iter().map(|e| cents(&e["current"])).sum();
        assert_eq!(*score, from_ledger, "{contact}: the swept cache equals its ledger at {}", app.clock.now());
        assert_eq!(cents(&engagement["score"]), from_ledger, "{contact}: the live score equals its ledger");
    }
    listed.len()
}

async fn random_runs(app: &TestApp, seeds: std::ops::Range<u64>) {
    setup(app).await;
    let mut posted = 0;
    for seed in seeds {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        for step in 0..25 {
            if rng.below(3) == 0 {
                app.advance(TimeDelta::minutes(1 + rng.below(90) as i64));
                app.sweep().await;
                check_cache_equals_ledger(app).await;
            } else {
                let contact = CONTACTS[rng.below(3) as usize];
                let mut event = interaction(&format!("s{seed}-{step}"), KINDS[rng.below(3) as usize], contact);
                event["occurred_at"] = json!(app.clock.now());
                let (status, body) = app.post_webhook("acme", &event).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                posted += 1;
            }
        }
    }
    app.advance(TimeDelta::hours(3));
    app.sweep().await;
    assert!(posted > 0 && check_cache_equals_ledger(app).await > 0, "the runs scored someone");
}

#[tokio::test]
async fn embedded_cached_scores_follow_expiry_and_decay() {
    let app = TestApp::spawn().await;
    random_runs(&app, 0..12).await;
}

#[tokio::test]
async fn dynamodb_cached_scores_follow_expiry_and_decay() {
    let Some(store) = fresh_store().await else { return };
    let app = TestApp::spawn_on(Arc::new(store)).await;
    random_runs(&app, 0..3).await;
}

#[tokio::test]
async fn the_ledger_shows_original_and_current_values() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let mut clicked = interaction("c1", "email.clicked", "jhon");
    clicked["occurred_at"] = json!(app.clock.now());
    app.post_webhook("acme", &clicked).await;
    app.advance(TimeDelta::minutes(60));
    app.sweep().await;
    let (_, view) = app.admin(Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    let entry = &view["scores"]["engagement"]["ledger"][0];
    assert_eq!(entry["points"], 2.5);
    assert_eq!(entry["current"], 0.62, "2.5 × 0.5² = 0.625, half-even");
    assert_eq!(entry["decay"], json!({"percent": 50, "every": "30m"}));
    assert_eq!(view["scores"]["engagement"]["score"], 0.62);
}
