//! The store contract: behaviour every `Store` adapter must share. Each test
//! is a function over `&dyn Store`; `contract_suite!` instantiates all of
//! them for one adapter (the DynamoDB adapter will get the same suite).

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use scorehook::engine::action::FiredAction;
use scorehook::engine::decay::Decay;
use scorehook::engine::duration::Span;
use scorehook::engine::interaction::Interaction;
use scorehook::engine::ledger::{ContactState, LedgerEntry, ScoreState};
use scorehook::engine::points::Points;
use scorehook::ids::{ActionId, ContactId, ProfileId, TenantId, TriggerId};
use scorehook::outbox::{ActionStatus, OutboxItem};
use scorehook::store::{Commit, LeaderboardQuery, Order, QuarantineKind, Quarantined, Store, StoreError};
use scorehook::tenant::{hash_token, TenantRecord, TokenMatch};

fn t0() -> DateTime<Utc> {
    "2026-11-22T10:00:00Z".parse().unwrap()
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn profile() -> ProfileId {
    ProfileId::parse("engagement").unwrap()
}

fn event(id: &str, contact: &str) -> Interaction {
    serde_json::from_value(json!({"id": id, "type": "email.opened", "contact_id": contact, "occurred_at": t0()}))
        .unwrap()
}

fn state_with(contact: &str, version: u64, score: Option<i64>) -> ContactState {
    let mut state = ContactState::new(ContactId::parse(contact).unwrap());
    state.version = version;
    if let Some(score) = score {
        state.scores.insert(
            profile(),
            ScoreState { total: Points::whole(score), updated_at: Some(t0()), ..ScoreState::default() },
        );
    }
    state
}

fn entry(seq: u64, points: i64) -> LedgerEntry {
    LedgerEntry {
        seq,
        profile: profile(),
        version: 1,
        rule: "r".into(),
        points: Points::whole(points),
        event_id: None,
        at: t0(),
        expires_at: None,
        decay: None,
        merged: None,
        saturated: None,
    }
}

fn action(id: &str, contact: &str, fired_at: DateTime<Utc>) -> OutboxItem {
    OutboxItem::new(
        tenant(),
        FiredAction {
            id: ActionId::parse(id).unwrap(),
            trigger: TriggerId::parse("hot").unwrap(),
            kind: "add_tag".into(),
            params: json!({"tag": "x"}),
            contact_id: ContactId::parse(contact).unwrap(),
            deal_id: None,
            fired_at,
            skipped: None,
        },
    )
}

/// Commits `state` (as the successor of `expected`) with an event, entries and actions.
async fn commit(
    store: &dyn Store,
    expected: u64,
    state: &ContactState,
    event: Option<&Interaction>,
    ledger: &[LedgerEntry],
    actions: &[OutboxItem],
) -> Result<(), StoreError> {
    let tenant = tenant();
    // What the service would have read before computing `state`.
    let before = store.contact(&tenant, &state.contact_id).await?;
    store
        .commit(Commit {
            tenant: &tenant,
            expected_version: expected,
            before: before.as_ref(),
            state,
            interaction: event,
            received_at: t0(),
            ledger,
            actions,
        })
        .await
}

pub async fn a_commit_lands_whole(store: &dyn Store) {
    let state = state_with("jhon", 0, Some(3));
    commit(store, 0, &state, Some(&event("e1", "jhon")), &[entry(0, 3)], &[action("act_1", "jhon", t0())])
        .await
        .unwrap();
    let stored = store.contact(&tenant(), &state.contact_id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1, "the store writes version + 1");
    assert_eq!(stored.scores, state.scores);
    assert_eq!(store.ledger(&tenant(), &state.contact_id, 10).await.unwrap(), vec![entry(0, 3)]);
    let due = store.due_actions(t0(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].action.id.as_str(), "act_1");
}

pub async fn a_known_interaction_id_is_a_duplicate_and_writes_nothing(store: &dyn Store) {
    let first = state_with("jhon", 0, Some(1));
    commit(store, 0, &first, Some(&event("e1", "jhon")), &[entry(0, 1)], &[]).await.unwrap();
    let second = state_with("jhon", 1, Some(2));
    let result =
        commit(store, 1, &second, Some(&event("e1", "jhon")), &[entry(1, 1)], &[action("act_2", "jhon", t0())]).await;
    assert!(matches!(result, Err(StoreError::Duplicate)), "{result:?}");
    let stored = store.contact(&tenant(), &first.contact_id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.scores[&profile()].total), (1, Points::whole(1)));
    assert_eq!(store.ledger(&tenant(), &first.contact_id, 10).await.unwrap().len(), 1);
    assert!(store.due_actions(t0(), 10).await.unwrap().is_empty());
}

pub async fn a_stale_version_conflicts_and_writes_nothing(store: &dyn Store) {
    let first = state_with("jhon", 0, Some(1));
    commit(store, 0, &first, Some(&event("e1", "jhon")), &[entry(0, 1)], &[]).await.unwrap();
    let stale = state_with("jhon", 0, Some(9));
    let result =
        commit(store, 0, &stale, Some(&event("e2", "jhon")), &[entry(1, 8)], &[action("act_2", "jhon", t0())]).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    assert_eq!(store.ledger(&tenant(), &first.contact_id, 10).await.unwrap().len(), 1);
    assert!(store.due_actions(t0(), 10).await.unwrap().is_empty());
    // The conflicting commit left no dedupe marker: the event can still score.
    let retried = state_with("jhon", 1, Some(2));
    commit(store, 1, &retried, Some(&event("e2", "jhon")), &[entry(1, 1)], &[]).await.unwrap();
}

pub async fn the_leaderboard_follows_commits_and_filters(store: &dyn Store) {
    for (contact, score) in [("a", 5), ("b", -2), ("c", 10), ("d", 5)] {
        commit(store, 0, &state_with(contact, 0, Some(score)), None, &[], &[]).await.unwrap();
    }
    // c drops from 10 to 1: its old index row must go.
    commit(store, 1, &state_with("c", 1, Some(1)), None, &[], &[]).await.unwrap();
    let query = |order, min: Option<i64>, max: Option<i64>, limit, after| LeaderboardQuery {
        profile: profile(),
        order,
        min: min.map(Points::whole),
        max: max.map(Points::whole),
        limit,
        after,
    };
    let ids = |rows: Vec<scorehook::store::LeaderboardRow>| {
        rows.into_iter().map(|r| r.contact_id.to_string()).collect::<Vec<_>>()
    };
    let all = store.leaderboard(&tenant(), &query(Order::Desc, None, None, 10, None)).await.unwrap();
    assert_eq!(ids(all.rows), ["d", "a", "c", "b"]);
    assert_eq!(all.next, None);
    let filtered = store.leaderboard(&tenant(), &query(Order::Asc, Some(0), Some(5), 10, None)).await.unwrap();
    assert_eq!(ids(filtered.rows), ["c", "a", "d"]);
    let first = store.leaderboard(&tenant(), &query(Order::Asc, None, None, 2, None)).await.unwrap();
    assert_eq!(ids(first.rows), ["b", "c"]);
    let rest = store.leaderboard(&tenant(), &query(Order::Asc, None, None, 2, first.next)).await.unwrap();
    assert_eq!(ids(rest.rows), ["a", "d"]);
    let other = TenantId::parse("other").unwrap();
    assert!(store.leaderboard(&other, &query(Order::Desc, None, None, 10, None)).await.unwrap().rows.is_empty());
}

pub async fn actions_move_through_their_lifecycle(store: &dyn Store) {
    let (early, late) = (action("act_early", "jhon", t0()), action("act_late", "jhon", t0() + TimeDelta::minutes(5)));
    commit(store, 0, &state_with("jhon", 0, None), None, &[], &[late.clone(), early.clone()]).await.unwrap();
    let due: Vec<String> = store.due_actions(t0(), 10).await.unwrap().iter().map(|i| i.action.id.to_string()).collect();
    assert_eq!(due, ["act_early"], "only what is due, soonest first");

    let mut failed = early.clone();
    failed.status = ActionStatus::Failed;
    failed.next_attempt_at = Some(t0() + TimeDelta::minutes(10));
    store.save_action(&failed).await.unwrap();
    let at_six: Vec<String> = store
        .due_actions(t0() + TimeDelta::minutes(6), 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.action.id.to_string())
        .collect();
    assert_eq!(at_six, ["act_late"], "a rescheduled action leaves its old due slot");

    let stale = store.save_action(&failed).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "a save from an old revision is refused: {stale:?}");
    let mut done = failed.clone();
    done.revision = 1;
    done.status = ActionStatus::Done;
    done.next_attempt_at = None;
    store.save_action(&done).await.unwrap();
    assert_eq!(store.due_actions(t0() + TimeDelta::days(1), 10).await.unwrap().len(), 1);
    let listed = store.actions(&tenant(), Some(ActionStatus::Done), 10).await.unwrap();
    assert_eq!(listed, vec![OutboxItem { revision: 2, ..done.clone() }]);
    assert_eq!(store.actions(&tenant(), None, 10).await.unwrap().len(), 2);
    let stored = store.action(&tenant(), &done.action.id).await.unwrap().unwrap();
    assert_eq!(stored.revision, 2);
    assert_eq!(stored, OutboxItem { revision: 2, ..done });
    assert!(store.actions(&TenantId::parse("other").unwrap(), None, 10).await.unwrap().is_empty());
}

pub async fn ledgers_read_the_latest_entries_in_order(store: &dyn Store) {
    let entries: Vec<LedgerEntry> = (0..15).map(|i| entry(i, 1)).collect();
    commit(store, 0, &state_with("jhon", 0, Some(15)), None, &entries, &[]).await.unwrap();
    let latest = store.ledger(&tenant(), &ContactId::parse("jhon").unwrap(), 5).await.unwrap();
    assert_eq!(latest.iter().map(|e| e.seq).collect::<Vec<_>>(), [10, 11, 12, 13, 14]);
    assert!(
        store.ledger(&tenant(), &ContactId::parse("jhon2").unwrap(), 5).await.unwrap().is_empty(),
        "prefixes do not bleed"
    );
}

pub async fn contacts_with_expiring_points_come_due_at_their_instant(store: &dyn Store) {
    let mut state = state_with("jhon", 0, Some(1));
    let expiry = t0() + TimeDelta::hours(1);
    if let Some(score) = state.scores.get_mut(&profile()) {
        score.book(&LedgerEntry { expires_at: Some(expiry), ..entry(0, 2) }, t0());
    }
    commit(store, 0, &state, None, &[], &[]).await.unwrap();
    commit(store, 0, &state_with("ana", 0, Some(1)), None, &[], &[]).await.unwrap();
    assert!(store.due_contacts(expiry - TimeDelta::seconds(1), 10).await.unwrap().is_empty());
    let due = store.due_contacts(expiry, 10).await.unwrap();
    assert_eq!(due, vec![(tenant(), ContactId::parse("jhon").unwrap())], "only the contact with expiring points");

    // Settled: the expiry is gone, and so is the contact's due entry.
    let mut settled = state.clone();
    settled.version = 1;
    if let Some(score) = settled.scores.get_mut(&profile()) {
        score.settle(expiry);
    }
    commit(store, 1, &settled, None, &[], &[]).await.unwrap();
    assert!(store.due_contacts(expiry + TimeDelta::days(1), 10).await.unwrap().is_empty());
}

pub async fn contacts_with_decaying_points_come_due_at_each_step(store: &dyn Store) {
    let mut state = state_with("jhon", 0, Some(0));
    let decay = Decay { percent: 50, every: Span::parse("1h").unwrap() };
    if let Some(score) = state.scores.get_mut(&profile()) {
        score.book(&LedgerEntry { decay: Some(decay), ..entry(0, 8) }, t0());
    }
    commit(store, 0, &state, None, &[], &[]).await.unwrap();
    let step = t0() + TimeDelta::hours(1);
    assert!(store.due_contacts(step - TimeDelta::seconds(1), 10).await.unwrap().is_empty());
    assert_eq!(store.due_contacts(step, 10).await.unwrap().len(), 1, "due at the first step");

    let mut settled = state.clone();
    settled.version = 1;
    if let Some(score) = settled.scores.get_mut(&profile()) {
        score.settle(step);
        assert_eq!(score.total, Points::whole(4));
    }
    commit(store, 1, &settled, None, &[], &[]).await.unwrap();
    assert!(store.due_contacts(step, 10).await.unwrap().is_empty(), "the first step is settled");
    assert_eq!(store.due_contacts(step + TimeDelta::hours(1), 10).await.unwrap().len(), 1, "due again at the next");
    let query =
        LeaderboardQuery { profile: profile(), order: Order::Desc, min: None, max: None, limit: 10, after: None };
    let board = store.leaderboard(&tenant(), &query).await.unwrap();
    assert_eq!(board.rows[0].score, Points::whole(4), "the leaderboard holds the decayed total");
}

pub async fn queued_actions_are_written_once_and_come_due(store: &dyn Store) {
    let mut item = action("rs_1", "c", t0());
    item.action.contact_id = ContactId::parse_subject("deal#759").unwrap();
    assert!(store.queue_action(&item).await.unwrap(), "the first queueing writes");
    let mut changed = item.clone();
    changed.action.params = json!({"tag": "other"});
    assert!(!store.queue_action(&changed).await.unwrap(), "the same id again is refused");
    let stored = store.action(&tenant(), &item.action.id).await.unwrap().unwrap();
    assert_eq!(stored.action.params, json!({"tag": "x"}), "the first one stays");
    assert_eq!(stored.action.contact_id.as_str(), "deal#759");
    let due = store.due_actions(t0(), 10).await.unwrap();
    assert_eq!(due.iter().map(|i| i.action.id.as_str()).collect::<Vec<_>>(), ["rs_1"]);
    let log = store.actions(&tenant(), Some(ActionStatus::Pending), 10).await.unwrap();
    assert_eq!(log.len(), 1, "the delivery log shows it");
}

pub async fn a_quarantined_record_leaves_the_due_index_and_is_listed_until_released(store: &dyn Store) {
    let mut state = state_with("jhon", 0, Some(1));
    let expiry = t0() + TimeDelta::hours(1);
    if let Some(score) = state.scores.get_mut(&profile()) {
        score.book(&LedgerEntry { expires_at: Some(expiry), ..entry(0, 2) }, t0());
    }
    commit(store, 0, &state, None, &[], &[]).await.unwrap();
    let item = action("stuck", "c", t0());
    assert!(store.queue_action(&item).await.unwrap());
    let (jhon, corrupt) = (ContactId::parse("jhon").unwrap(), StoreError::Corrupt("test".into()));

    let contact = Quarantined::new(&tenant(), QuarantineKind::Contact, "jhon", &corrupt, "sweeper", expiry);
    store.quarantine(&contact).await.unwrap();
    let stuck = Quarantined::new(&tenant(), QuarantineKind::Action, "stuck", &corrupt, "executor", t0());
    store.quarantine(&stuck).await.unwrap();
    assert!(store.due_contacts(expiry, 10).await.unwrap().is_empty(), "the sweeper no longer picks the contact");
    assert!(store.due_actions(t0(), 10).await.unwrap().is_empty(), "nor the action");
    assert!(store.contact(&tenant(), &jhon).await.unwrap().is_some(), "the record itself stays, for a repair");

    let later = Quarantined { last_at: expiry + TimeDelta::minutes(1), ..contact.clone() };
    store.quarantine(&later).await.unwrap();
    let mut listed = store.quarantined(10).await.unwrap();
    listed.sort_by_key(|q| q.kind);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!((listed[0].key.as_str(), listed[0].count, listed[0].first_at), ("jhon", 2, expiry), "counted again");
    assert_eq!((listed[1].key.as_str(), listed[1].found_by.as_str()), ("stuck", "executor"));

    store.release(&tenant(), QuarantineKind::Contact, "jhon").await.unwrap();
    let left: Vec<String> = store.quarantined(10).await.unwrap().into_iter().map(|q| q.key).collect();
    assert_eq!(left, ["stuck"]);
}

pub async fn a_contact_reads_as_plain_json_and_its_indexes_can_be_dropped(store: &dyn Store) {
    let mut state = state_with("jhon", 0, Some(7));
    if let Some(score) = state.scores.get_mut(&profile()) {
        score.book(&LedgerEntry { expires_at: Some(t0() + TimeDelta::hours(1)), ..entry(0, 2) }, t0());
    }
    commit(store, 0, &state, None, &[], &[]).await.unwrap();
    commit(store, 0, &state_with("ana", 0, Some(3)), None, &[], &[]).await.unwrap();
    let jhon = ContactId::parse("jhon").unwrap();
    let document = store.contact_document(&tenant(), &jhon).await.unwrap().unwrap();
    assert_eq!(document["version"], 1);
    assert_eq!(document["scores"]["engagement"]["total"], 9);
    assert!(store.contact_document(&tenant(), &ContactId::parse("nobody").unwrap()).await.unwrap().is_none());

    store.drop_contact_indexes(&tenant(), &jhon).await.unwrap();
    let query =
        LeaderboardQuery { profile: profile(), order: Order::Desc, min: None, max: None, limit: 10, after: None };
    let board = store.leaderboard(&tenant(), &query).await.unwrap();
    let listed: Vec<&str> = board.rows.iter().map(|r| r.contact_id.as_str()).collect();
    assert_eq!(listed, ["ana"], "jhon's row is gone, ana's stays");
    assert!(store.due_contacts(t0() + TimeDelta::days(1), 10).await.unwrap().is_empty(), "and jhon's expiry row");
    // A state committed with no `before` indexes the contact afresh.
    let rebuilt = state_with("jhon", 1, Some(5));
    let commit = Commit {
        tenant: &tenant(),
        expected_version: 1,
        before: None,
        state: &rebuilt,
        interaction: None,
        received_at: t0(),
        ledger: &[],
        actions: &[],
    };
    store.commit(commit).await.unwrap();
    let board = store.leaderboard(&tenant(), &query).await.unwrap();
    let rows: Vec<(&str, Points)> = board.rows.iter().map(|r| (r.contact_id.as_str(), r.score)).collect();
    assert_eq!(rows, [("jhon", Points::whole(5)), ("ana", Points::whole(3))]);
}

pub async fn unmapped_tallies_add_up_per_kind(store: &dyn Store) {
    assert!(store.unmapped(&tenant()).await.unwrap().is_empty());
    store.count_unmapped(&tenant(), "hubspot:contact.deletion", 2).await.unwrap();
    store.count_unmapped(&tenant(), "hubspot:contact.deletion", 1).await.unwrap();
    store.count_unmapped(&tenant(), "hubspot:ticket.creation", 1).await.unwrap();
    let other = TenantId::parse("other").unwrap();
    store.count_unmapped(&other, "hubspot:contact.deletion", 5).await.unwrap();
    let tallies = store.unmapped(&tenant()).await.unwrap();
    assert_eq!(tallies.get("hubspot:contact.deletion"), Some(&3));
    assert_eq!(tallies.get("hubspot:ticket.creation"), Some(&1));
    assert_eq!(tallies.len(), 2, "another tenant's tallies stay apart");
}

pub async fn tenant_saves_are_conditional_on_the_revision_read(store: &dyn Store) {
    let stored = json!({"id": "acme", "provider": "generic", "webhook_secret": "whsec-0123456789abcdef",
                        "actions_url": null, "token_hash": hash_token("first"), "created_at": t0(), "updated_at": t0()});
    let record: TenantRecord = serde_json::from_value(stored).unwrap();
    assert_eq!(record.revision, 0, "a record without a revision reads as 0");
    store.put_tenant(&record).await.unwrap();
    let created = store.tenant(&tenant()).await.unwrap().unwrap();
    assert_eq!(created.revision, 1);
    assert!(matches!(store.put_tenant(&record).await, Err(StoreError::Conflict)), "a second creation is refused");

    // Two writers read revision 1: a rotation and an update. The first lands whole; the second changes nothing.
    let mut rotation = created.clone();
    rotation.rotate_token(hash_token("second"), TimeDelta::hours(1), t0());
    let mut update = created.clone();
    update.actions_url = Some("http://127.0.0.1:9/a".into());
    store.put_tenant(&rotation).await.unwrap();
    assert!(matches!(store.put_tenant(&update).await, Err(StoreError::Conflict)));
    let read = store.tenant(&tenant()).await.unwrap().unwrap();
    assert_eq!(read, TenantRecord { revision: 2, ..rotation.clone() }, "the rotation, whole, and nothing else");
    assert_eq!(read.token_match("second", t0()), Some(TokenMatch::Current));
    assert_eq!(read.token_match("first", t0()), Some(TokenMatch::Previous));

    // Re-read and redone, the update lands over the rotation and keeps it.
    let mut update = read.clone();
    update.actions_url = Some("http://127.0.0.1:9/a".into());
    store.put_tenant(&update).await.unwrap();
    let read = store.tenant(&tenant()).await.unwrap().unwrap();
    assert_eq!((read.revision, read.previous_token.is_some()), (3, true));
    let config = store.tenant_config(&tenant()).await.unwrap().unwrap();
    assert_eq!(config.tenant, read, "the configuration read sees the same record");
}

pub async fn a_claim_is_taken_once(store: &dyn Store) {
    let until = chrono::Utc::now() + chrono::TimeDelta::hours(2);
    assert!(store.claim("alert\u{1f}acme\u{1f}dead_action\u{1f}493000", until).await.unwrap());
    assert!(!store.claim("alert\u{1f}acme\u{1f}dead_action\u{1f}493000", until).await.unwrap(), "taken");
    assert!(store.claim("alert\u{1f}acme\u{1f}dead_action\u{1f}493001", until).await.unwrap(), "the next hour");
    assert!(store.claim("alert\u{1f}other\u{1f}dead_action\u{1f}493000", until).await.unwrap(), "another tenant");
}

macro_rules! contract_suite {
    ($adapter:ident, $open:expr) => {
        mod $adapter {
            contract_suite!(@tests $open;
                a_commit_lands_whole,
                a_known_interaction_id_is_a_duplicate_and_writes_nothing,
                a_stale_version_conflicts_and_writes_nothing,
                the_leaderboard_follows_commits_and_filters,
                actions_move_through_their_lifecycle,
                ledgers_read_the_latest_entries_in_order,
                contacts_with_expiring_points_come_due_at_their_instant,
                contacts_with_decaying_points_come_due_at_each_step,
                queued_actions_are_written_once_and_come_due,
                unmapped_tallies_add_up_per_kind,
                a_quarantined_record_leaves_the_due_index_and_is_listed_until_released,
                a_contact_reads_as_plain_json_and_its_indexes_can_be_dropped,
                tenant_saves_are_conditional_on_the_revision_read,
                a_claim_is_taken_once);
        }
    };
    (@tests $open:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _guard) = $open;
                super::$name(&store).await;
            }
        )*
    };
}

contract_suite!(embedded, {
    let dir = tempfile::TempDir::new().unwrap();
    (scorehook::store::embedded::EmbeddedStore::open(dir.path()).unwrap(), dir)
});

contract_suite!(dynamodb, {
    let Some(store) = crate::support::dynamo::fresh_store().await else { return };
    (store, ())
});
