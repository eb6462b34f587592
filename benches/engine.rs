//! The pure engine's speed: one interaction evaluated against a tenant's
//! catalog (one published profile of 10, 100 or 1,000 rules, and 10
//! triggers) for a warm contact. Reported per interaction (ns) and as
//! interactions per second on one core (criterion's throughput).
//!
//! Run by `scripts/bench.sh` (`cargo bench --bench engine`); `cargo test
//! --all-targets` only runs each case once, as a smoke test.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use scorehook::engine::evaluate;

#[path = "support/engine_scenario.rs"]
mod engine_scenario;

fn bench_evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    for rule_count in [10, 100, 1000] {
        let engine_scenario::Scenario { catalog, state, event, now } = engine_scenario::scenario(rule_count);
        group.bench_with_input(BenchmarkId::new("rules", rule_count), &rule_count, |b, _| {
            b.iter(|| evaluate(black_box(&catalog), black_box(&state), black_box(&event), now))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_evaluate);
criterion_main!(benches);
