//! The local server's exporter: the Prometheus recorder, rendered by
//! `GET /metrics` (`http::metrics`) in the text exposition format. The
//! router serves it, so the exporter's own HTTP listener and push gateway
//! are not built.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

use super::{install, Exporter, EXPORTER};

/// Histogram buckets, in seconds: both histograms are latencies, from a
/// sub-millisecond score to a CRM call at its 10 s timeout.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often recorded histogram samples are folded into their buckets
/// between scrapes, so memory stays bounded when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Makes Prometheus this process's exporter (once; later calls change
/// nothing). False when another exporter was installed first. Inside a
/// tokio runtime it also starts the upkeep task.
pub fn install_prometheus() -> bool {
    let exporter = install(|| {
        let builder = PrometheusBuilder::new();
        let builder = builder.set_buckets(LATENCY_BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let handle = handle.clone();
            runtime.spawn(async move {
                let mut every = tokio::time::interval(UPKEEP);
                loop {
                    every.tick().await;
                    handle.run_upkeep();
                }
            });
        }
        (Exporter::Prometheus(handle), Box::new(recorder))
    });
    matches!(exporter, Exporter::Prometheus(_))
}

/// Everything recorded so far in the Prometheus text format; `None` when
/// this process exports otherwise (Lambda) or not at all (tests).
pub fn render() -> Option<String> {
    match EXPORTER.get()? {
        Exporter::Prometheus(handle) => Some(handle.render()),
        Exporter::Emf(_) | Exporter::Foreign => None,
    }
}
