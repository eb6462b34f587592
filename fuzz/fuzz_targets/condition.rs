//! Rule and trigger conditions as admins send them (JSON), compiled and
//! evaluated. Input: the condition's JSON, then optionally a line feed and a
//! JSON object used as the interaction's attributes and the contact's fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scorehook::engine::condition::{MatchSpec, Subject};
use scorehook::http::extract::parse_json;

fuzz_target!(|data: &[u8]| {
    let (text, fields) = scorehook_fuzz::text_then_fields(data);
    let Ok(spec) = parse_json::<MatchSpec>(text) else { return };
    let compiled = spec.compile("when");
    // A saved condition is stored as JSON and compiled again on load.
    let stored = serde_json::to_vec(&spec).unwrap_or_else(|e| panic!("cannot encode {spec:?}: {e}"));
    let loaded: MatchSpec = parse_json(&stored).unwrap_or_else(|e| panic!("a saved condition does not load: {e:?}"));
    assert_eq!(loaded.compile("when").is_ok(), compiled.is_ok(), "a condition compiles differently after loading");
    let Ok(condition) = compiled else { return };
    let interaction = scorehook_fuzz::interaction(spec.kind.as_deref(), fields.clone());
    let _ = condition.holds(Subject { interaction: Some(&interaction), fields: &fields });
    let _ = condition.holds(Subject { interaction: None, fields: &fields });
});
