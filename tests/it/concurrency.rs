//! Concurrent and repeated deliveries: no lost update, no double scoring.

use scorehook::clock::Clock;
use std::sync::Arc;

use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use scorehook::clock::ManualClock;
use scorehook::engine::interaction::{parse_body, Interaction};
use scorehook::service::Service;
use scorehook::store::embedded::EmbeddedStore;
use scorehook::store::Store;

use crate::support::{interaction, seeds_profile, TestApp};

#[tokio::test]
async fn concurrent_webhooks_for_one_contact_lose_no_update() {
    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let app = Arc::new(app);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let app = Arc::clone(&app);
        tasks.spawn(
            async move { app.post_webhook("acme", &interaction(&format!("e{i}"), "email.opened", "jhon")).await.0 },
        );
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::ACCEPTED);
    }
    assert_eq!(app.score("acme", "jhon").await, Some(json!(40)));
    let (_, view) = app.admin(reqwest::Method::GET, "/v1/tenants/acme/contacts/jhon/scores", None).await;
    assert_eq!(view["scores"]["engagement"]["ledger"].as_array().unwrap().len(), 40);
}

/// Two services over one store stand for two Lambda instances: their
/// writes to one contact race on the version check and must all land.
#[tokio::test]
async fn two_processes_writing_one_contact_lose_no_update() {
    two_processes_on(TestApp::spawn().await).await;
}

#[tokio::test]
async fn two_processes_writing_one_contact_on_dynamodb_lose_no_update() {
    let Some(store) = crate::support::dynamo::fresh_store().await else { return };
    two_processes_on(TestApp::spawn_on(Arc::new(store)).await).await;
}

async fn two_processes_on(app: TestApp) {
    app.seeds_tenant("acme", None).await;
    let store: Arc<dyn Store> = Arc::clone(&app.local.service.store);
    let tenant_id = scorehook::ids::TenantId::parse("acme").unwrap();
    let instances: Vec<Service> =
        (0..2).map(|_| Service::new(Arc::clone(&store), Arc::new(ManualClock::new(app.clock.now())), None)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let service = instances[i % 2].clone();
        let tenant_id = tenant_id.clone();
        let event = one(interaction(&format!("e{i}"), "email.opened", "jhon"));
        tasks.spawn(async move {
            let view = service.tenant_view(&tenant_id).await.unwrap().unwrap();
            service.ingest(&view, &[event]).await.map(|r| r.accepted)
        });
    }
    while let Some(accepted) = tasks.join_next().await {
        assert_eq!(accepted.unwrap().unwrap(), 1);
    }
    assert_eq!(app.score("acme", "jhon").await, Some(json!(30)));
}

fn one(value: serde_json::Value) -> Interaction {
    parse_body(value).unwrap().remove(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Whatever is delivered again, in whatever order, every contact ends
    /// with the score and ledger of delivering each event once.
    #[test]
    fn redelivering_any_interaction_changes_nothing(
        events in proptest::collection::vec((0..3usize, 0..2usize), 1..12),
        redeliveries in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let kinds = ["email.opened", "deal.stage_changed", "page.visited"];
            let contacts = ["jhon", "ana"];
            let originals: Vec<Interaction> = events.iter().enumerate().map(|(i, (kind, contact))| {
                let mut value = interaction(&format!("e{i}"), kinds[*kind], contacts[*contact]);
                value["attributes"] = json!({"stage": "demo"});
                one(value)
            }).collect();
            let mut with_repeats = originals.clone();
            for index in &redeliveries {
                let repeat = index.get(&originals).clone();
                // A redelivery always comes after the first delivery of its event.
                let first = with_repeats.iter().position(|e| e.id == repeat.id).unwrap();
                let at = first + 1 + index.index(with_repeats.len() - first);
                with_repeats.insert(at, repeat);
            }
            let once = scores_after(&originals).await;
            let repeated = scores_after(&with_repeats).await;
            assert_eq!(once, repeated);
        });
    }
}

/// Each contact's scores and ledger after ingesting `events` one request at a time.
async fn scores_after(events: &[Interaction]) -> Vec<serde_json::Value> {
    let dir = tempfile::TempDir::new().unwrap();
    let clock = Arc::new(ManualClock::new("2026-11-23T00:00:00Z".parse().unwrap()));
    let service = Service::new(Arc::new(EmbeddedStore::open(dir.path()).unwrap()), clock, None);
    let tenant_id = scorehook::ids::TenantId::parse("acme").unwrap();
    let input = scorehook::service::admin::TenantInput {
        provider: scorehook::tenant::Provider::Generic,
        webhook_secret: Some(scorehook::tenant::Secret::new("whsec-0123456789abcdef")),
        actions_url: None,
        crm: Default::default(),
        signing_secret: None,
    };
    service.put_tenant(&scorehook::service::Caller::Operator, &tenant_id, input).await.unwrap();
    let profile = scorehook::ids::ProfileId::parse("engagement").unwrap();
    service.put_profile(&tenant_id, &profile, serde_json::from_value(seeds_profile()).unwrap()).await.unwrap();
    service.profile_step(&tenant_id, &profile, scorehook::engine::profile::ProfileRecord::publish).await.unwrap();
    let view = service.tenant_view(&tenant_id).await.unwrap().unwrap();
    for event in events {
        service.ingest(&view, std::slice::from_ref(event)).await.unwrap();
    }
    let mut views = Vec::new();
    for contact in ["jhon", "ana"] {
        let contact = scorehook::ids::ContactId::parse(contact).unwrap();
        let view = match service.contact_scores(&tenant_id, &contact).await {
            Ok(scores) => scores
                .into_iter()
                .map(|(p, v)| json!({"profile": p, "score": v.score, "ledger": v.ledger.iter().map(|e| json!([e.rule, e.points, e.event_id])).collect::<Vec<_>>()}))
                .collect(),
            Err(scorehook::service::ServiceError::NotFound(_)) => vec![],
            Err(other) => panic!("reading scores failed: {other}"),
        };
        views.push(json!(view));
    }
    views
}

/// Polls `future` once with this task's waker: whether it finished at once.
async fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *future).poll(cx))).await
}

/// Issue #19: after a cache expiry every concurrent webhook read and
/// compiled the tenant's config itself. Eight misses at once, lined up
/// while the store read is held, make one read; another tenant's miss is
/// not held up behind it.
#[tokio::test]
async fn concurrent_config_misses_for_one_tenant_share_one_store_read() {
    use scorehook::ids::TenantId;
    use scorehook::service::catalog::CatalogCache;

    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    app.seeds_tenant("beta", None).await;
    let store = crate::support::failing_store::FailingStore::new(app.local.service.store.clone());
    let cache = CatalogCache::new(std::time::Duration::from_secs(3600));
    let (acme, beta) = (TenantId::parse("acme").unwrap(), TenantId::parse("beta").unwrap());

    let held = store.config_gate.write().await;
    let mut gets: Vec<_> = (0..8).map(|_| Box::pin(cache.get(&store, &acme))).collect();
    for get in &mut gets {
        assert!(poll_once(get).await.is_pending(), "every get waits on the held read");
    }
    assert_eq!(store.config_reads(), 1, "one read for eight concurrent misses");
    let mut other = Box::pin(cache.get(&store, &beta));
    assert!(poll_once(&mut other).await.is_pending());
    assert_eq!(store.config_reads(), 2, "another tenant's miss reads at once, in parallel");
    drop(held);

    let mut views = Vec::new();
    for get in gets {
        views.push(get.await.unwrap().expect("acme exists"));
    }
    assert!(views.iter().all(|view| Arc::ptr_eq(view, &views[0])), "all eight share one compiled view");
    assert_eq!(other.await.unwrap().expect("beta exists").record.id, beta);
    assert!(cache.get(&store, &acme).await.unwrap().is_some());
    assert_eq!(store.config_reads(), 2, "and it was cached");
}

/// A load that began before a write is neither cached nor joined by a
/// miss after the write; an unknown tenant is remembered like a known one.
#[tokio::test]
async fn a_config_load_that_raced_an_invalidation_is_not_cached_or_shared() {
    use scorehook::ids::TenantId;
    use scorehook::service::catalog::CatalogCache;

    let app = TestApp::spawn().await;
    app.seeds_tenant("acme", None).await;
    let store = crate::support::failing_store::FailingStore::new(app.local.service.store.clone());
    let cache = CatalogCache::new(std::time::Duration::from_secs(3600));
    let acme = TenantId::parse("acme").unwrap();

    let held = store.config_gate.write().await;
    let mut before = Box::pin(cache.get(&store, &acme));
    assert!(poll_once(&mut before).await.is_pending());
    cache.invalidate(&acme);
    let mut after = Box::pin(cache.get(&store, &acme));
    assert!(poll_once(&mut after).await.is_pending());
    assert_eq!(store.config_reads(), 2, "the miss after the write read afresh");
    drop(held);
    assert!(before.await.unwrap().is_some() && after.await.unwrap().is_some());
    assert!(cache.get(&store, &acme).await.unwrap().is_some());
    assert_eq!(store.config_reads(), 2, "the later load was cached");

    let ghost = TenantId::parse("ghost").unwrap();
    for _ in 0..3 {
        assert!(cache.get(&store, &ghost).await.unwrap().is_none());
    }
    assert_eq!(store.config_reads(), 3, "an unknown tenant costs one read per refresh");
}
