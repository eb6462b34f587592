//! The sample events under `events/` stay true to the code: each webhook
//! sample's body is accepted by the interaction parser and carries a
//! signature that verifies at its own timestamp.

use chrono::{DateTime, Utc};
use serde_json::Value;

use scorehook::crm::signature;
use scorehook::engine::interaction::parse_body;

fn event(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn webhook_samples_are_signed_interactions() {
    for (name, count) in [("function-url-webhook-generic.json", 1), ("function-url-webhook-generic-batch.json", 2)] {
        let sample = event(name);
        assert_eq!(sample["version"], "2.0", "{name} has the Function URL (API Gateway v2) shape");
        let body = sample["body"].as_str().unwrap();
        let interactions = parse_body(serde_json::from_str(body).unwrap()).unwrap();
        assert_eq!(interactions.len(), count, "{name}");
        let headers = &sample["headers"];
        let timestamp = headers["x-scorehook-timestamp"].as_str().unwrap();
        let at = DateTime::<Utc>::from_timestamp(timestamp.parse().unwrap(), 0).unwrap();
        let verified = signature::verify(
            "demo-secret-change-me",
            Some(timestamp),
            headers["x-scorehook-signature"].as_str(),
            body.as_bytes(),
            at,
        );
        assert_eq!(verified, Ok(()), "{name}");
    }
}

#[test]
fn the_admin_sample_is_a_bearer_call_to_a_real_route() {
    let sample = event("function-url-admin-leaderboard.json");
    assert_eq!(sample["rawPath"], "/v1/tenants/demo/contacts");
    assert!(sample["headers"]["authorization"].as_str().unwrap().starts_with("Bearer "));
}
