//! Profile and trigger JSON as admins send it: parsed, validated and
//! compiled as `PUT …/profiles/{id}` and `PUT …/triggers/{id}` do, and a
//! spec that is accepted still compiles after it is stored and loaded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scorehook::engine::profile::ProfileSpec;
use scorehook::engine::trigger::TriggerSpec;
use scorehook::http::extract::parse_json;
use scorehook::ids::{ProfileId, TriggerId};

fuzz_target!(|data: &[u8]| {
    let (Ok(profile_id), Ok(trigger_id)) = (ProfileId::parse("p"), TriggerId::parse("t")) else {
        panic!("the fuzz ids are valid")
    };
    if let Ok(spec) = parse_json::<ProfileSpec>(data) {
        if spec.compile(&profile_id, 1).is_ok() {
            let stored = serde_json::to_vec(&spec).unwrap_or_else(|e| panic!("cannot encode {spec:?}: {e}"));
            let loaded: ProfileSpec =
                parse_json(&stored).unwrap_or_else(|e| panic!("a saved profile does not load: {e:?}"));
            assert!(loaded.compile(&profile_id, 1).is_ok(), "a saved profile no longer compiles: {loaded:?}");
        }
    }
    if let Ok(spec) = parse_json::<TriggerSpec>(data) {
        if spec.compile(&trigger_id).is_ok() {
            let stored = serde_json::to_vec(&spec).unwrap_or_else(|e| panic!("cannot encode {spec:?}: {e}"));
            let loaded: TriggerSpec =
                parse_json(&stored).unwrap_or_else(|e| panic!("a saved trigger does not load: {e:?}"));
            assert!(loaded.compile(&trigger_id).is_ok(), "a saved trigger no longer compiles: {loaded:?}");
        }
    }
});
