//! The Lambda functions' exporter: a recorder that keeps what an invocation
//! measured (metrics-util's atomic registry), and a flush that writes it at
//! the invocation's end as CloudWatch Embedded Metric Format lines on stdout.
//! CloudWatch Logs extracts them into metrics in the `scorehook` namespace:
//! no API call, nothing for the invocation to wait for.
//!
//! One line per label set, because EMF reads each dimension's value from the
//! line's root: two providers' counts cannot share a line. On each line:
//! - a counter is its increase since the last flush (absent when zero),
//!   so CloudWatch's Sum over a period is the count in that period;
//! - a gauge is its level;
//! - a histogram is the list of values recorded since the last flush, at
//!   most 100 on a line (the format's limit); more values take more lines.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ::metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use serde_json::{json, Map, Value};

use super::{install, Exporter, EXPORTER};

/// The CloudWatch namespace every metric goes to.
pub const NAMESPACE: &str = "scorehook";

/// The most values one metric may carry on one line (the EMF specification's limit).
pub const MAX_VALUES: usize = 100;

/// What the process measured since its last flush. Cheap to clone: clones
/// share the registry, one of them installed as the global recorder.
#[derive(Clone)]
pub struct EmfRecorder {
    registry: Arc<Registry<Key, AtomicStorage>>,
}

impl Default for EmfRecorder {
    fn default() -> Self {
        Self { registry: Arc::new(Registry::atomic()) }
    }
}

impl Recorder for EmfRecorder {
    // Units and descriptions come from `super::ALL` at flush time.
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry.get_or_create_counter(key, |counter| Counter::from_arc(Arc::clone(counter)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry.get_or_create_gauge(key, |gauge| Gauge::from_arc(Arc::clone(gauge)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry.get_or_create_histogram(key, |histogram| Histogram::from_arc(Arc::clone(histogram)))
    }
}

/// A label set's values as they go on a line: one number, or a list.
#[derive(Default)]
struct LabelSet {
    scalars: Vec<(String, Value)>,
    lists: Vec<(String, Vec<f64>)>,
}

type Labels = Vec<(String, String)>;

impl EmfRecorder {
    /// The EMF documents of everything measured since the last call, which
    /// it takes: counters restart from zero and histograms are emptied.
    /// `timestamp_ms` is the instant the metrics are for.
    pub fn drain(&self, timestamp_ms: u64) -> Vec<Value> {
        let mut sets: BTreeMap<Labels, LabelSet> = BTreeMap::new();
        let labels = |key: &Key| -> Labels {
            key.labels().map(|label| (label.key().to_owned(), label.value().to_owned())).collect()
        };
        self.registry.visit_counters(|key, counter| {
            let delta = counter.swap(0, Ordering::Relaxed);
            if delta > 0 {
                sets.entry(labels(key)).or_default().scalars.push((key.name().to_owned(), json!(delta)));
            }
        });
        self.registry.visit_gauges(|key, gauge| {
            let level = f64::from_bits(gauge.load(Ordering::Relaxed));
            // JSON has no NaN or infinity; such a level is not a measurement.
            if level.is_finite() {
                sets.entry(labels(key)).or_default().scalars.push((key.name().to_owned(), json!(level)));
            }
        });
        self.registry.visit_histograms(|key, histogram| {
            let mut values = Vec::new();
            histogram.clear_with(|chunk| values.extend(chunk.iter().copied().filter(|v| v.is_finite())));
            if !values.is_empty() {
                sets.entry(labels(key)).or_default().lists.push((key.name().to_owned(), values));
            }
        });
        let mut documents = Vec::new();
        for (labels, set) in sets {
            let lines = set.lists.iter().map(|(_, values)| values.len().div_ceil(MAX_VALUES)).max().unwrap_or(1).max(1);
            for line in 0..lines {
                let scalars = if line == 0 { set.scalars.as_slice() } else { &[] };
                let lists = set.lists.iter().filter_map(|(name, values)| {
                    let chunk = values.chunks(MAX_VALUES).nth(line)?;
                    Some((name.clone(), json!(chunk)))
                });
                let metrics: Vec<(String, Value)> = scalars.iter().cloned().chain(lists).collect();
                if !metrics.is_empty() {
                    documents.push(document(timestamp_ms, &labels, metrics));
                }
            }
        }
        documents
    }
}

/// One EMF document: the directive naming the metrics and dimensions, then
/// each dimension's and each metric's value at the root.
fn document(timestamp_ms: u64, labels: &Labels, metrics: Vec<(String, Value)>) -> Value {
    let definitions: Vec<Value> =
        metrics.iter().map(|(name, _)| json!({"Name": name, "Unit": unit_of(name)})).collect();
    let dimensions: Vec<&str> = labels.iter().map(|(key, _)| key.as_str()).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": definitions}],
        }),
    );
    for (key, value) in labels {
        root.insert(key.clone(), Value::String(value.clone()));
    }
    for (name, value) in metrics {
        root.insert(name, value);
    }
    Value::Object(root)
}

/// The CloudWatch unit of a declared metric; `None` for anything else.
fn unit_of(name: &str) -> &'static str {
    match super::find(name).map(|m| m.unit) {
        Some(Unit::Count) => "Count",
        Some(Unit::Seconds) => "Seconds",
        Some(Unit::Milliseconds) => "Milliseconds",
        Some(Unit::Microseconds) => "Microseconds",
        Some(Unit::Bytes) => "Bytes",
        Some(Unit::Percent) => "Percent",
        Some(Unit::CountPerSecond) => "Count/Second",
        _ => "None",
    }
}

/// Makes EMF this process's exporter (once; later calls change nothing).
/// False when another exporter was installed first.
pub fn install_emf() -> bool {
    let exporter = install(|| {
        let recorder = EmfRecorder::default();
        (Exporter::Emf(recorder.clone()), Box::new(recorder))
    });
    matches!(exporter, Exporter::Emf(_))
}

/// Writes what was measured since the last flush to `out`, one EMF document
/// per line; nothing when this process does not export EMF. A write that
/// fails is logged: losing metrics must not fail the invocation.
pub fn flush(out: &mut impl Write, at: SystemTime) {
    let Some(Exporter::Emf(recorder)) = EXPORTER.get() else { return };
    let timestamp_ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut text = String::new();
    for document in recorder.drain(timestamp_ms) {
        text.push_str(&document.to_string());
        text.push('\n');
    }
    if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        tracing::warn!(%error, "the invocation's metrics could not be written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ActionOutcome, Refusal};
    use crate::tenant::Provider;

    /// Runs `record` against a recorder of its own (not the global one) and drains it.
    fn drained(record: impl FnOnce()) -> Vec<Value> {
        let recorder = EmfRecorder::default();
        ::metrics::with_local_recorder(&recorder, record);
        recorder.drain(1_700_000_000_000)
    }

    /// Checks `doc` against the EMF specification's rules; answers its metric names.
    fn names_of_valid(doc: &Value) -> Vec<String> {
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_u64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(doc[dimension.as_str().unwrap()].is_string(), "{dimension} has no value in {doc}");
        }
        let mut names = Vec::new();
        for definition in directive["Metrics"].as_array().unwrap() {
            let name = definition["Name"].as_str().unwrap();
            let value = &doc[name];
            let numbers = value.as_array().map_or(vec![value.clone()], Clone::clone);
            assert!(numbers.len() <= MAX_VALUES && numbers.iter().all(Value::is_number), "{name}: {value}");
            names.push(name.to_owned());
        }
        names
    }

    #[test]
    fn counters_are_written_once_as_their_increase_one_line_per_label_set() {
        let docs = drained(|| {
            crate::metrics::webhook_refused(Some(Provider::Hubspot), Refusal::Signature);
            crate::metrics::webhook_refused(Some(Provider::Hubspot), Refusal::Signature);
            crate::metrics::webhook_refused(None, Refusal::UnknownProvider);
            crate::metrics::committed();
        });
        assert_eq!(docs.len(), 3, "{docs:?}");
        let hubspot = docs.iter().find(|d| d["provider"] == "hubspot").unwrap();
        assert_eq!(names_of_valid(hubspot), ["scorehook_webhook_refused_total"]);
        assert_eq!(hubspot["scorehook_webhook_refused_total"], 2);
        assert_eq!(hubspot["reason"], "signature");
        assert_eq!(hubspot["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["provider", "reason"]]));
        assert_eq!(hubspot["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Count");
        let bare = docs.iter().find(|d| d.get("provider").is_none()).unwrap();
        assert_eq!(names_of_valid(bare), ["scorehook_commits_total"]);
        assert_eq!(bare["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]), "an empty dimension set");
    }

    #[test]
    fn a_second_flush_writes_only_what_changed_since_the_first() {
        let recorder = EmfRecorder::default();
        ::metrics::with_local_recorder(&recorder, || crate::metrics::actions(None, ActionOutcome::Dead, 2));
        assert_eq!(recorder.drain(1_700_000_000_000)[0]["scorehook_actions_total"], 2);
        assert!(recorder.drain(1_700_000_000_000).is_empty(), "a counter that did not move is not written");
        ::metrics::with_local_recorder(&recorder, || crate::metrics::actions(None, ActionOutcome::Dead, 1));
        let docs = recorder.drain(1_700_000_000_000);
        assert_eq!(docs[0]["scorehook_actions_total"], 1, "the increase, not the running total");
        assert_eq!(docs[0]["provider"], "unknown");
    }

    #[test]
    fn histogram_values_are_listed_at_most_a_hundred_to_a_line() {
        let docs = drained(|| {
            for ms in 0..250 {
                crate::metrics::scored(std::time::Duration::from_millis(ms));
            }
            crate::metrics::outbox_lag(std::time::Duration::from_secs(3));
        });
        assert_eq!(docs.len(), 3, "250 values: 100, 100 and 50");
        let mut total = 0;
        for doc in &docs {
            names_of_valid(doc);
            total += doc["scorehook_scoring_seconds"].as_array().unwrap().len();
            assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Seconds");
        }
        assert_eq!(total, 250);
        let with_gauge: Vec<&Value> = docs.iter().filter(|d| d.get("scorehook_outbox_lag_seconds").is_some()).collect();
        assert_eq!(with_gauge.len(), 1, "a gauge goes on the first line of its label set only");
        assert_eq!(with_gauge[0]["scorehook_outbox_lag_seconds"], 3.0);
    }
}
