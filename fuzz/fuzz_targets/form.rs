//! Form-urlencoded bodies with PHP-style bracketed keys (ActiveCampaign,
//! Bitrix24): any bytes parse to an object no deeper than the bracket limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scorehook::crm::form;
use serde_json::Value;

/// Object levels below `value` (a string is 0).
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(object) => 1 + object.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let value = form::parse(data);
    assert!(value.is_object(), "a form body is always an object");
    // The top-level name plus at most MAX_DEPTH bracket levels.
    assert!(depth(&value) <= form::MAX_DEPTH + 1, "nested {} levels deep", depth(&value));
    if let Some(object) = value.as_object() {
        for child in object.values() {
            let _ = form::indexed(child);
        }
    }
});
