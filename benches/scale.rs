//! Scale of the embedded store (issue #9): a million contacts with one
//! interaction each, scored through the `Service` by many concurrent tasks
//! (group commit); the leaderboard's page latency at that size; and a
//! retroactive publish that rebuilds every contact's score from its stored
//! history, driven step by step as the sweeper drives it.
//!
//! With `--bench` (`scripts/bench.sh` runs the built binary with it) it reads
//! `SCALE_CONTACTS` (default 1,000,000), `SCALE_TASKS` (concurrent ingest
//! tasks, default 128) and `SCALE_QUERIES` (per leaderboard case, default
//! 200), and prints one `SCALE <key> <value>` line per figure. Without it
//! (`cargo test --all-targets`) it runs the same path over 1,000 contacts and
//! checks the results, so the code stays exercised without timing anything.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use chrono::{SubsecRound, TimeDelta, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use scorehook::clock::ManualClock;
use scorehook::engine::interaction::{Interaction, InteractionType};
use scorehook::engine::points::Points;
use scorehook::engine::profile::{ProfileSpec, SubjectKind};
use scorehook::ids::{ContactId, EventId, ProfileId, TenantId};
use scorehook::outbox::Step;
use scorehook::service::admin::TenantInput;
use scorehook::service::{Caller, Service};
use scorehook::store::embedded::{CommitMode, EmbeddedStore};
use scorehook::store::{JobStatus, LeaderboardQuery, Order};
use scorehook::tenant::{Provider, Secret};

const ADMIN: &str = "bench-operator-token";
const PAGE: usize = 50;

struct Sizes {
    contacts: usize,
    tasks: usize,
    queries: usize,
    timed: bool,
}

impl Sizes {
    fn from_env() -> Self {
        let timed = std::env::args().any(|a| a == "--bench");
        let env = |name: &str, default: usize| {
            std::env::var(name).ok().map_or(default, |v| v.replace(['_', ','], "").parse().expect(name))
        };
        if timed {
            Self {
                contacts: env("SCALE_CONTACTS", 1_000_000),
                tasks: env("SCALE_TASKS", 128),
                queries: env("SCALE_QUERIES", 200),
                timed,
            }
        } else {
            Self { contacts: 1_000, tasks: 16, queries: 5, timed }
        }
    }
}

fn report(key: &str, value: impl std::fmt::Display) {
    println!("SCALE {key} {value}");
}

/// A rule per interaction type, and seven "weight" rules worth 1, 2, 4 … 64
/// points matched by the interaction's attributes (`b0` … `b6`), so one
/// interaction each still spreads contacts over about 160 distinct scores.
fn profile(b0_points: i64) -> ProfileSpec {
    let mut rules = vec![
        json!({"id": "opened", "when": {"type": "email.opened"}, "points": 1}),
        json!({"id": "clicked", "when": {"type": "email.clicked"}, "points": 2}),
        json!({"id": "pricing", "when": {"type": "page.visited", "attributes": {"url": {"contains": "/pricing"}}},
            "points": 10, "once": true}),
        json!({"id": "form", "when": {"type": "form.submitted"}, "points": 15}),
        json!({"id": "unsub", "when": {"type": "list.unsubscribed"}, "points": -20}),
    ];
    for bit in 0..7 {
        let points = if bit == 0 { b0_points } else { 1 << bit };
        rules.push(json!({"id": format!("w{bit}"), "when": {"attributes": {format!("b{bit}"): {"exists": true}}},
            "points": points}));
    }
    serde_json::from_value(json!({"name": "Engagement", "rules": rules})).unwrap()
}

/// splitmix64: a fixed, well-spread pseudo-random number per contact.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Contact `i`'s one interaction: mostly opens and clicks, weights skewed low.
fn interaction(i: usize, at: chrono::DateTime<Utc>) -> Interaction {
    let r = mix(i as u64);
    let kind = match r % 100 {
        0..40 => "email.opened",
        40..65 => "email.clicked",
        65..80 => "page.visited",
        80..95 => "form.submitted",
        _ => "list.unsubscribed",
    };
    let mut attributes = Map::new();
    if kind == "page.visited" {
        let url = if (r >> 7).is_multiple_of(2) { "https://x.test/pricing" } else { "https://x.test/blog" };
        attributes.insert("url".into(), json!(url));
    }
    let x = (r >> 8) % 128;
    let weight = x * x / 128;
    for bit in 0..7 {
        if weight & (1 << bit) != 0 {
            attributes.insert(format!("b{bit}"), json!(true));
        }
    }
    Interaction {
        id: EventId::parse(format!("e{i:07}")).unwrap(),
        kind: InteractionType::parse(kind).unwrap(),
        contact_id: ContactId::parse(format!("c{i:07}")).unwrap(),
        deal_id: None,
        occurred_at: at,
        attributes,
        contact: Map::new(),
    }
}

/// Peak and current resident set of this process, in KiB (`/proc/self/status`).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Median and p99 (ms) of `queries` timed runs of `query`, after a tenth as many untimed ones.
async fn latency<F, Fut>(queries: usize, mut query: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..queries.div_ceil(10) {
        query().await;
    }
    let mut times = Vec::with_capacity(queries);
    for _ in 0..queries {
        let start = Instant::now();
        query().await;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[(queries - 1) / 2], times[(queries * 99).div_ceil(100) - 1])
}

fn board(
    order: Order,
    min: Option<Points>,
    max: Option<Points>,
    after: Option<(Points, ContactId)>,
) -> LeaderboardQuery {
    LeaderboardQuery { profile: ProfileId::parse("engagement").unwrap(), order, min, max, limit: PAGE, after }
}

#[tokio::main]
async fn main() {
    let sizes = Sizes::from_env();
    let dir = tempfile::TempDir::new().unwrap();
    let store = Arc::new(EmbeddedStore::open_with(dir.path(), CommitMode::Group).unwrap());
    let clock = Arc::new(ManualClock::new(Utc::now().trunc_subsecs(0)));
    let service = Service::new(store.clone(), clock.clone(), Some(Secret::new(ADMIN)));
    let tenant = TenantId::parse("bench").unwrap();
    let engagement = ProfileId::parse("engagement").unwrap();

    let input = TenantInput {
        provider: Provider::Generic,
        webhook_secret: Some(Secret::new("bench-webhook-secret-0123456789")),
        actions_url: None,
        crm: Map::new(),
        signing_secret: None,
    };
    service.put_tenant(&Caller::Operator, &tenant, input).await.unwrap();
    service.put_profile(&tenant, &engagement, profile(1)).await.unwrap();
    service.publish_profile(&tenant, &engagement).await.unwrap();
    // The first version's recompute finds no contacts yet.
    while service.advance_recomputes().await.unwrap() == Step::More {}
    report("contacts", sizes.contacts);
    report("tasks", sizes.tasks);
    report("queries", sizes.queries);

    // ---- fill: every contact's one interaction, from many tasks at once.
    let view = service.tenant_view(&tenant).await.unwrap().unwrap();
    let at = Utc::now().trunc_subsecs(0) - TimeDelta::hours(1);
    let next = Arc::new(AtomicUsize::new(0));
    let transactions = store.transactions();
    let start = Instant::now();
    let workers: Vec<_> = (0..sizes.tasks)
        .map(|_| {
            let (service, view, next, contacts) = (service.clone(), view.clone(), next.clone(), sizes.contacts);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= contacts {
                        break;
                    }
                    let done = service.ingest(&view, &[interaction(i, at)]).await.unwrap();
                    assert_eq!(done.accepted, 1);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let fill = start.elapsed().as_secs_f64();
    let transactions = store.transactions() - transactions;
    let file = dir.path().join("scorehook.redb");
    let (peak, now) = rss_kib();
    report("fill_seconds", format!("{fill:.1}"));
    report("fill_per_second", format!("{:.0}", sizes.contacts as f64 / fill));
    report("fill_writes_per_transaction", format!("{:.1}", sizes.contacts as f64 / transactions.max(1) as f64));
    report("store_bytes", std::fs::metadata(&file).unwrap().len());
    report("rss_peak_kib", peak);
    report("rss_kib", now);

    // ---- leaderboard: the service's call, as the HTTP handler makes it.
    let page = |query: LeaderboardQuery| {
        let (service, tenant) = (&service, &tenant);
        async move { service.leaderboard(tenant, SubjectKind::Contact, &query).await.unwrap() }
    };
    let top = page(board(Order::Desc, None, None, None)).await;
    let bottom = page(board(Order::Asc, None, None, None)).await;
    assert_eq!(top.rows.len(), PAGE);
    assert!(top.rows.windows(2).all(|w| w[0].score >= w[1].score));
    let (high, low) = (top.rows[0].score.cents(), bottom.rows[0].score.cents());
    let middle = (high + low) / 2;
    let (min, max) = (Points::from_cents(middle - 1000), Points::from_cents(middle + 1000));
    // Half the board down: the cursor a client holds after paging that far.
    let store_query = LeaderboardQuery { limit: sizes.contacts / 2, ..board(Order::Desc, None, None, None) };
    let deep = scorehook::store::Store::leaderboard(store.as_ref(), &tenant, &store_query).await.unwrap().next.unwrap();
    report("score_range", format!("{}..{}", Points::from_cents(low).to_json(), Points::from_cents(high).to_json()));
    report("filter_range", format!("{}..{}", min.to_json(), max.to_json()));
    report("deep_rank", sizes.contacts / 2);

    let cases = [
        ("top", board(Order::Desc, None, None, None)),
        ("filtered", board(Order::Desc, Some(min), Some(max), None)),
        ("deep", board(Order::Desc, None, None, Some(deep.clone()))),
    ];
    for (name, query) in cases {
        let rows = page(query.clone()).await.rows;
        assert_eq!(rows.len(), PAGE, "{name}");
        let (median, p99) = latency(sizes.queries, || async { drop(page(query.clone()).await) }).await;
        report(&format!("leaderboard_{name}_median_ms"), format!("{median:.3}"));
        report(&format!("leaderboard_{name}_p99_ms"), format!("{p99:.3}"));
    }
    // The same pages over the router (auth, cursor, JSON), without a socket.
    let router = scorehook::http::router(service.clone());
    let cursor =
        scorehook::http::cursor::encode(view.record.token_hash.as_bytes(), &tenant, &engagement, Order::Desc, &deep);
    for (name, query) in [("top", String::new()), ("deep", format!("&cursor={cursor}"))] {
        let uri = format!("/v1/tenants/bench/contacts?profile=engagement&limit={PAGE}{query}");
        let get = || async {
            let request =
                axum::http::Request::get(&uri).header("authorization", format!("Bearer {ADMIN}")).body(Body::empty());
            let response = router.clone().oneshot(request.unwrap()).await.unwrap();
            assert!(response.status().is_success(), "{uri}: {}", response.status());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let page: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(page["contacts"].as_array().map(Vec::len), Some(PAGE));
        };
        let (median, p99) = latency(sizes.queries, get).await;
        report(&format!("http_{name}_median_ms"), format!("{median:.3}"));
        report(&format!("http_{name}_p99_ms"), format!("{p99:.3}"));
    }

    // ---- retroactive publish: one rule's points change; every contact is rebuilt.
    clock.advance(TimeDelta::minutes(1));
    service.put_profile(&tenant, &engagement, profile(3)).await.unwrap();
    let transactions = store.transactions();
    let start = Instant::now();
    service.publish_profile(&tenant, &engagement).await.unwrap();
    let mut steps = 0;
    while service.advance_recomputes().await.unwrap() == Step::More {
        steps += 1;
    }
    let recompute = start.elapsed().as_secs_f64();
    let transactions = store.transactions() - transactions;
    let job = service.recompute_job(&tenant, &engagement).await.unwrap().unwrap();
    assert_eq!((job.status, job.version), (JobStatus::Done, 2));
    assert_eq!(job.contacts_done, sizes.contacts as u64);
    let (peak, now) = rss_kib();
    report("recompute_seconds", format!("{recompute:.1}"));
    report("recompute_steps", steps + 1);
    report("recompute_transactions", transactions);
    // One stored interaction per contact: both rates are the same number.
    report("recompute_interactions_per_second", format!("{:.0}", sizes.contacts as f64 / recompute));
    report("recompute_contacts_per_second", format!("{:.0}", job.contacts_done as f64 / recompute));
    report("recompute_contacts_changed", job.contacts_changed);
    report("store_bytes_after_recompute", std::fs::metadata(&file).unwrap().len());
    report("rss_peak_kib_after_recompute", peak);
    report("rss_kib_after_recompute", now);
    if !sizes.timed {
        assert!(job.contacts_changed > 0 && job.contacts_changed < job.contacts_done);
    }
}
