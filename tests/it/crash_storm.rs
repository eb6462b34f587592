//! A real `scorehook serve` process is killed with SIGKILL in the middle of a
//! webhook storm (many concurrent senders, shared contacts, batches and
//! redeliveries) and restarted on the same data directory. What it answered
//! 2xx for is scored exactly once, nothing is scored twice, no score drifts
//! from its ledger, and every fired action is delivered under its id.
//!
//! The kill comes when a tenth, half or nine tenths of the requests have been
//! answered, wherever the other senders are then. The invariants hold
//! whatever that point is, and for any store design that keeps the
//! durability promise: both of the embedded store's commit modes are
//! stormed, `group` (concurrent writes share one fsync) and `each` (an fsync
//! per write).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::support::process::{post_webhook, Server};
use crate::support::spawn_app::SECRET;
use crate::support::{cents, interaction, listed_scores, RecordingCrm};

const CONTACTS: usize = 40;
const EVENTS: usize = 800;
const SENDERS: usize = 24;
/// Batch sizes, in turn: single events and arrays of up to five.
const BATCH_SIZES: [usize; 6] = [1, 3, 1, 2, 5, 1];
/// Every sixth body is followed by a redelivery of the body ten places back.
const REDELIVER_EVERY: usize = 6;
/// The limit would only turn some of the storm into 429s; this test is about the store.
const NO_RATE_LIMIT: (&str, &str) = ("SCOREHOOK_INBOUND_PER_SECOND", "100000");

/// The points each event is worth under `profile()`.
fn points(kind: &str) -> i64 {
    if kind == "form.submitted" {
        2
    } else {
        1
    }
}

/// Opens +1, forms +2; a score trigger fires two actions once per contact
/// at 5, and every form fires one more.
async fn configure(server: &Server, actions_url: &str) {
    let tenant = json!({"provider": "generic", "webhook_secret": SECRET, "actions_url": actions_url});
    assert_eq!(server.admin(Method::PUT, "/v1/tenants/acme", Some(tenant)).await.0, StatusCode::CREATED);
    let profile = json!({"name": "Engagement", "rules": [
        {"id": "opened", "when": {"type": "email.opened"}, "points": points("email.opened")},
        {"id": "form", "when": {"type": "form.submitted"}, "points": points("form.submitted")}]});
    let hot = json!({"name": "Hot", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}},
        "runs": "on_enter", "actions": [{"type": "add_tag", "tag": "hot"}, {"type": "add_note", "text": "hot"}]});
    let form = json!({"name": "Form", "when": {"event": {"type": "form.submitted"}}, "runs": "every_time",
        "actions": [{"type": "create_task", "title": "Call back", "due_in": "1d"}]});
    for (method, path, body) in [
        (Method::PUT, "/v1/tenants/acme/profiles/engagement", Some(profile)),
        (Method::POST, "/v1/tenants/acme/profiles/engagement/publish", None),
        (Method::PUT, "/v1/tenants/acme/triggers/hot", Some(hot)),
        (Method::PUT, "/v1/tenants/acme/triggers/form", Some(form)),
    ] {
        let (status, answer) = server.admin(method, path, body).await;
        assert!(status.is_success(), "{path}: {answer}");
    }
}

/// The storm: events spread over the contacts, so every contact gets events
/// from many senders at once, sent as bodies of the event indexes in `bodies`.
struct Storm {
    events: Vec<Value>,
    bodies: Vec<Vec<usize>>,
}

impl Storm {
    fn new() -> Self {
        let events: Vec<Value> = (0..EVENTS)
            .map(|i| {
                let kind = if i % 10 == 3 { "form.submitted" } else { "email.opened" };
                interaction(&format!("evt-{i:04}"), kind, &format!("c{:02}", i % CONTACTS))
            })
            .collect();
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut next = 0;
        while next < EVENTS {
            let size = BATCH_SIZES[batches.len() % BATCH_SIZES.len()].min(EVENTS - next);
            batches.push((next..next + size).collect());
            next += size;
        }
        let mut bodies = Vec::new();
        for (k, batch) in batches.iter().enumerate() {
            bodies.push(batch.clone());
            if k >= 10 && k % REDELIVER_EVERY == 0 {
                bodies.push(batches[k - 10].clone());
            }
        }
        Self { events, bodies }
    }

    fn body(&self, indexes: &[usize]) -> Vec<u8> {
        let events: Vec<&Value> = indexes.iter().map(|&i| &self.events[i]).collect();
        if let [one] = events.as_slice() {
            serde_json::to_vec(one).unwrap()
        } else {
            serde_json::to_vec(&events).unwrap()
        }
    }

    fn id(&self, event: usize) -> &str {
        self.events[event]["id"].as_str().unwrap()
    }

    fn contact(&self, event: usize) -> &str {
        self.events[event]["contact_id"].as_str().unwrap()
    }

    fn kind(&self, event: usize) -> &str {
        self.events[event]["type"].as_str().unwrap()
    }
}

/// What one request got: an answer (status and body), or none at all.
#[derive(Debug)]
enum Outcome {
    Answered(StatusCode, Value),
    NoAnswer,
}

impl Outcome {
    fn accepted(&self) -> bool {
        matches!(self, Outcome::Answered(status, _) if status.is_success())
    }
}

/// Sends every body from `senders` concurrent tasks, each taking the next
/// unsent body. With `kill_at`, the sender whose 2xx answer is the
/// `count`-th rings the bell (the others keep sending).
async fn fire(
    (http, base): (&reqwest::Client, &str),
    bodies: Vec<Vec<u8>>,
    senders: usize,
    kill_at: Option<(usize, Arc<Notify>)>,
) -> Vec<Outcome> {
    let bodies = Arc::new(bodies);
    let taken = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..senders {
        let (bodies, taken, answered, kill_at) =
            (Arc::clone(&bodies), Arc::clone(&taken), Arc::clone(&answered), kill_at.clone());
        let (http, base) = (http.clone(), base.to_owned());
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let k = taken.fetch_add(1, Ordering::SeqCst);
                let Some(body) = bodies.get(k) else { break };
                let outcome = match post_webhook(&http, &base, body.clone()).await {
                    Ok(response) => {
                        let status = response.status();
                        match response.json::<Value>().await {
                            Ok(answer) => Outcome::Answered(status, answer),
                            Err(_) => Outcome::NoAnswer,
                        }
                    }
                    Err(_) => Outcome::NoAnswer,
                };
                if outcome.accepted() {
                    let count = answered.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Some((at, bell)) = &kill_at {
                        if count == *at {
                            bell.notify_one();
                        }
                    }
                }
                outcomes.push((k, outcome));
            }
            outcomes
        });
    }
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        outcomes.extend(done.unwrap());
    }
    outcomes.sort_by_key(|(k, _)| *k);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

/// Every contact's score and the event ids of its ledger, as the admin API
/// reports them; each score is checked against the sum of its ledger.
async fn scores_and_ledgers(server: &Server) -> (BTreeMap<String, i64>, HashMap<String, usize>) {
    let mut scores = BTreeMap::new();
    let mut scored = HashMap::new();
    for c in 0..CONTACTS {
        let contact = format!("c{c:02}");
        let (status, view) =
            server.admin(Method::GET, &format!("/v1/tenants/acme/contacts/{contact}/scores"), None).await;
        if status == StatusCode::NOT_FOUND {
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{view}");
        let engagement = &view["scores"]["engagement"];
        let ledger = engagement["ledger"].as_array().unwrap();
        let sum: i64 = ledger.iter().map(|entry| cents(&entry["current"])).sum();
        let score = cents(&engagement["score"]);
        assert_eq!(score, sum, "{contact}'s score drifted from its ledger: {engagement}");
        for entry in ledger {
            *scored.entry(entry["event_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        scores.insert(contact, score);
    }
    let (status, board) =
        server.admin(Method::GET, "/v1/tenants/acme/contacts?profile=engagement&order=desc&limit=500", None).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(board["next_cursor"], Value::Null, "one page holds every contact");
    assert_eq!(listed_scores(&board), scores, "the leaderboard agrees with every contact's own score");
    (scores, scored)
}

/// Every fired action, by id.
async fn actions(server: &Server) -> BTreeMap<String, Value> {
    let (status, list) = server.admin(Method::GET, "/v1/tenants/acme/actions?limit=500", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let actions = list["actions"].as_array().unwrap();
    assert!(actions.len() < 500, "the list is whole");
    actions.iter().map(|a| (a["id"].as_str().unwrap().to_owned(), a.clone())).collect()
}

#[tokio::test]
async fn a_server_killed_early_in_a_storm_scores_every_answered_event_once_and_delivers_every_action() {
    storm_killed_after(|requests| requests / 10, "group").await;
}

#[tokio::test]
async fn a_server_killed_mid_storm_scores_every_answered_event_once_and_delivers_every_action() {
    storm_killed_after(|requests| requests / 2, "group").await;
}

#[tokio::test]
async fn a_server_killed_late_in_a_storm_scores_every_answered_event_once_and_delivers_every_action() {
    storm_killed_after(|requests| requests * 9 / 10, "group").await;
}

#[tokio::test]
async fn a_server_committing_each_write_alone_keeps_the_same_promises_when_killed_mid_storm() {
    storm_killed_after(|requests| requests / 2, "each").await;
}

/// Storms a fresh server in commit mode `commit` (`SCOREHOOK_COMMIT`), kills
/// it once `kill_at(requests)` requests have been answered 2xx, restarts it,
/// and checks everything it can see.
async fn storm_killed_after(kill_at: fn(usize) -> usize, commit: &str) {
    let dir = tempfile::TempDir::new().unwrap();
    let crm = RecordingCrm::start().await;
    let storm = Storm::new();
    let settings = [NO_RATE_LIMIT, ("SCOREHOOK_COMMIT", commit)];
    let server = Server::start_with_env(dir.path(), &settings).await;
    configure(&server, &crm.url).await;

    // The storm, killed once half its requests have been answered 2xx.
    let bell = Arc::new(Notify::new());
    let bodies: Vec<Vec<u8>> = storm.bodies.iter().map(|b| storm.body(b)).collect();
    let kill_at = kill_at(storm.bodies.len());
    let target = (server.http.clone(), server.base.clone());
    let sending = fire((&target.0, &target.1), bodies, SENDERS, Some((kill_at, Arc::clone(&bell))));
    let killing = async {
        tokio::time::timeout(Duration::from_secs(120), bell.notified()).await.expect("the storm stalled");
        server.kill().await;
    };
    let (outcomes, ()) = tokio::join!(sending, killing);
    let delivered_before_kill = crm.received().await;

    let mut answered = vec![false; EVENTS];
    let mut unanswered_requests = 0;
    for (body, outcome) in storm.bodies.iter().zip(&outcomes) {
        match outcome {
            Outcome::Answered(status, answer) => {
                assert_eq!(*status, StatusCode::ACCEPTED, "the storm is all valid and within limits: {answer}");
                let counted = answer["accepted"].as_u64().unwrap() + answer["duplicates"].as_u64().unwrap();
                assert_eq!(counted, body.len() as u64, "{answer}");
                body.iter().for_each(|&e| answered[e] = true);
            }
            Outcome::NoAnswer => unanswered_requests += 1,
        }
    }
    assert!(unanswered_requests > 0, "the kill came while requests were still being sent");
    eprintln!(
        "storm ({commit}): {EVENTS} events in {} requests from {SENDERS} senders; killed after {kill_at} answers; \
         {} requests unanswered, {} events answered 2xx",
        storm.bodies.len(),
        unanswered_requests,
        answered.iter().filter(|a| **a).count()
    );

    let server = Server::start_with_env(dir.path(), &settings).await;

    // What survived: every answered event exactly once, no event twice.
    let (scores, scored) = scores_and_ledgers(&server).await;
    let storm_ids: BTreeSet<&str> = (0..EVENTS).map(|e| storm.id(e)).collect();
    assert!(scored.keys().all(|id| storm_ids.contains(id.as_str())), "only the storm's events are in ledgers");
    for (e, was_answered) in answered.iter().enumerate() {
        let times = scored.get(storm.id(e)).copied().unwrap_or(0);
        if *was_answered {
            assert_eq!(times, 1, "{} was answered 2xx, so it is scored exactly once", storm.id(e));
        } else {
            assert!(times <= 1, "{} is scored at most once", storm.id(e));
        }
    }
    eprintln!(
        "after the restart: {} events scored, {} of them never answered",
        scored.len(),
        (0..EVENTS).filter(|&e| !answered[e] && scored.contains_key(storm.id(e))).count()
    );

    // The actions were committed with the scores that fired them: a hot pair
    // for every contact at 5 or more, a task for every scored form.
    let committed = actions(&server).await;
    let mut fired: BTreeMap<(String, String), usize> = BTreeMap::new();
    for action in committed.values() {
        let key = (action["contact_id"].as_str().unwrap().to_owned(), action["trigger"].as_str().unwrap().to_owned());
        *fired.entry(key).or_default() += 1;
    }
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (contact, score) in &scores {
        if *score >= 500 {
            expected.insert((contact.clone(), "hot".into()), 2);
        }
    }
    for e in (0..EVENTS).filter(|&e| storm.kind(e) == "form.submitted" && scored.contains_key(storm.id(e))) {
        *expected.entry((storm.contact(e).to_owned(), "form".into())).or_default() += 1;
    }
    assert_eq!(fired, expected, "the actions committed are exactly those the committed scores fired");
    for request in &delivered_before_kill {
        let id = request.body["id"].as_str().unwrap();
        assert!(committed.contains_key(id), "{id} was delivered before the kill, so it was committed");
    }

    // Every event sent again: exactly those in a ledger are duplicates.
    let singles: Vec<Vec<u8>> = (0..EVENTS).map(|e| storm.body(&[e])).collect();
    let again = fire((&server.http, &server.base), singles, SENDERS, None).await;
    for (e, outcome) in again.iter().enumerate() {
        let Outcome::Answered(status, answer) = outcome else { panic!("{} got no answer", storm.id(e)) };
        assert_eq!(*status, StatusCode::ACCEPTED, "{answer}");
        let seen = scored.contains_key(storm.id(e));
        let want = if seen { json!({"accepted": 0, "duplicates": 1}) } else { json!({"accepted": 1, "duplicates": 0}) };
        assert_eq!(*answer, want, "{} (answered before the kill: {})", storm.id(e), answered[e]);
    }

    // Now every event is scored exactly once, and every score is what its events are worth.
    let (scores, scored) = scores_and_ledgers(&server).await;
    assert!((0..EVENTS).all(|e| scored.get(storm.id(e)) == Some(&1)), "every event scored exactly once");
    let mut worth: BTreeMap<String, i64> = BTreeMap::new();
    for e in 0..EVENTS {
        *worth.entry(storm.contact(e).to_owned()).or_default() += points(storm.kind(e)) * 100;
    }
    assert_eq!(scores, worth);

    // Every fired action reaches the CRM at least once, always under the same id and body.
    let committed = actions(&server).await;
    let forms = (0..EVENTS).filter(|&e| storm.kind(e) == "form.submitted").count();
    assert_eq!(committed.len(), CONTACTS * 2 + forms, "two hot actions per contact, a task per form");
    let mut delivered: HashMap<String, Vec<Value>> = HashMap::new();
    for request in delivered_before_kill {
        delivered.entry(request.body["id"].as_str().unwrap().to_owned()).or_default().push(request.body);
    }
    while !committed.keys().all(|id| delivered.contains_key(id)) {
        let request = crm.next(Duration::from_secs(30)).await;
        delivered.entry(request.body["id"].as_str().unwrap().to_owned()).or_default().push(request.body);
    }
    let mut redelivered = 0;
    for (id, bodies) in &delivered {
        let action = committed.get(id).unwrap_or_else(|| panic!("{id} was delivered but never fired"));
        for body in bodies {
            for field in ["type", "contact_id", "trigger", "params", "fired_at"] {
                assert_eq!(body[field], action[field], "{id}: {field}");
            }
        }
        redelivered += bodies.len() - 1;
    }
    eprintln!("{} actions, all delivered; {redelivered} delivered more than once", committed.len());
    server.kill().await;
}
