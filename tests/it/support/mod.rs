//! Test harness: a real server on 127.0.0.1:0 over a fresh data directory,
//! a recording CRM, and request signing. No mocks of our own code.

pub mod dynamo;
pub mod failing_store;
pub mod fake_crm;
pub mod process;
pub mod recording_crm;
pub mod spawn_app;

pub use fake_crm::FakeCrm;
pub use recording_crm::RecordingCrm;
pub use spawn_app::{TestApp, ADMIN_TOKEN};

use serde_json::{json, Value};

/// The exact bytes of a CRM's webhook sample under `tests/fixtures/crm/`
/// (copied verbatim from the research notes; their READMEs list what each must produce).
pub fn crm_sample(provider: &str, file: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/crm/{provider}/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A fired action for `contact` (and `deal`), built as the engine queues
/// one; its id is `act_<kind without underscores>`.
pub fn fired_action(
    tenant: &str,
    kind: &str,
    params: Value,
    contact: &str,
    deal: Option<&str>,
    fired_at: chrono::DateTime<chrono::Utc>,
) -> scorehook::outbox::OutboxItem {
    use scorehook::ids::{ActionId, ContactId, DealId, TenantId, TriggerId};
    scorehook::outbox::OutboxItem::new(
        TenantId::parse(tenant).unwrap(),
        scorehook::engine::action::FiredAction {
            id: ActionId::parse(format!("act_{}", kind.replace('_', ""))).unwrap(),
            trigger: TriggerId::parse("hot").unwrap(),
            kind: kind.into(),
            params,
            contact_id: ContactId::parse(contact).unwrap(),
            deal_id: deal.map(|d| DealId::parse(d).unwrap()),
            fired_at,
            skipped: None,
        },
    )
}

/// Points as whole hundredths, so sums compare exactly.
pub fn cents(points: &Value) -> i64 {
    (points.as_f64().unwrap() * 100.0).round() as i64
}

/// A leaderboard page (`GET …/contacts`) as contact → score in hundredths.
pub fn listed_scores(board: &Value) -> std::collections::BTreeMap<String, i64> {
    board["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["contact_id"].as_str().unwrap().to_owned(), cents(&row["score"])))
        .collect()
}

/// One canonical interaction for contact `contact`.
pub fn interaction(id: &str, kind: &str, contact: &str) -> Value {
    json!({"id": id, "type": kind, "contact_id": contact, "occurred_at": "2026-11-22T10:00:00Z"})
}

/// The seeds' profile: +1 per open, +3 when a deal reaches `demo`.
pub fn seeds_profile() -> Value {
    json!({"name": "Engagement", "description": "How warm a contact is", "rules": [
        {"id": "opened", "when": {"type": "email.opened"}, "points": 1},
        {"id": "demo", "when": {"type": "deal.stage_changed", "attributes": {"stage": {"equals": "demo"}}}, "points": 3}]})
}

/// The seeds' trigger: score >= 5, on entering, three actions.
pub fn seeds_trigger() -> Value {
    json!({"name": "Hot lead", "when": {"score": {"profile": "engagement", "op": "gte", "value": 5}}, "runs": "on_enter",
        "actions": [
            {"type": "add_note", "text": "High engagement: prioritise {{contact.id}}"},
            {"type": "create_task", "title": "Follow up", "due_in": "1d"},
            {"type": "add_tag", "tag": "Caliente"}]})
}

/// The HTTP status of a delivery that sent something; a skip fails the test.
pub fn sent(
    delivered: Result<scorehook::crm::Delivered, scorehook::crm::DeliveryError>,
) -> Result<u16, scorehook::crm::DeliveryError> {
    delivered.map(|outcome| match outcome {
        scorehook::crm::Delivered::Sent(status) => status,
        scorehook::crm::Delivered::Skipped(why) => panic!("expected a delivery, it was skipped: {why}"),
    })
}
