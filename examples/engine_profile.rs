//! Runs the engine benchmark's scenario a fixed number of times, for a
//! profiler: `valgrind --tool=callgrind` counts instructions repeatably
//! where wall-clock timings on a shared machine do not. Two runs that
//! differ only in the count give the instructions of one evaluation
//! (scripts/bench.sh does that); the scenario is the criterion bench's own.
//! It also prints the wall-clock time per evaluation, a quick (noisy)
//! check without criterion.
//!
//!   cargo build --release --example engine_profile
//!   valgrind --tool=callgrind target/release/examples/engine_profile 10 1000

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use scorehook::engine::evaluate;

#[path = "../benches/support/engine_scenario.rs"]
mod engine_scenario;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(rules), Some(iterations)) =
        (args.first().and_then(|a| a.parse().ok()), args.get(1).and_then(|a| a.parse::<u64>().ok()))
    else {
        eprintln!("usage: engine_profile RULES ITERATIONS");
        return ExitCode::FAILURE;
    };
    let engine_scenario::Scenario { catalog, state, event, now } = engine_scenario::scenario(rules);
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(evaluate(black_box(&catalog), black_box(&state), black_box(&event), now));
    }
    let elapsed = started.elapsed();
    if iterations > 0 {
        println!("{rules} rules: {:.0} ns per interaction", elapsed.as_nanos() as f64 / iterations as f64);
    }
    ExitCode::SUCCESS
}
