//! The Bitrix24 connector: outgoing-webhook events in, REST calls out.
//!
//! Bitrix24 posts one form-urlencoded event per request, authenticated by
//! the `auth[application_token]` shown when the outgoing webhook was made,
//! and most CRM events carry only an object id. So:
//! - `inbound` checks the token and turns each event into an interaction
//!   (`ONCRMCONTACTADD`), an id-only event to resolve later (deal and lead
//!   moves, new leads, activities, calls, open-line messages and sessions)
//!   or an unmapped kind;
//! - `resolve` reads the objects back through the portal's REST API
//!   (`crm.stagehistory.list`, `crm.deal.get`, `crm.lead.get`,
//!   `crm.activity.get`), and `openlines` ties a chat to its CRM contact
//!   (`imopenlines.dialog.get`);
//! - `outbound` performs fired actions through the tenant's incoming-webhook
//!   URL, and recognises Bitrix24's own "slow down" answers; `stages` is its
//!   `move_stage`: deal pipelines, lead statuses and `as_user`.
//!
//! Facts and sources: `shared/crm/bitrix24.md`; set-up: `docs/connectors/bitrix24.md`.

mod inbound;
mod openlines;
mod outbound;
mod resolve;
mod stages;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::limiter::Rate;
use super::outbound::ApiConfig;
use crate::tenant::Provider;

pub use inbound::{normalize, verify};
pub use outbound::deliver;
pub use resolve::resolve;

/// Bitrix24's published limit: a leaky bucket of 50 that drains 2 per second.
pub const API: ApiConfig = ApiConfig {
    provider: Provider::Bitrix24,
    // Each portal has its own host: every call goes to the tenant's
    // `webhook_url` (see `outbound::portal`).
    default_base: "",
    // Cloud portals: `<portal>.bitrix24.<zone>` (com, de, eu, com.br, …).
    hosts: &["bitrix24.*"],
    rate: Rate { burst: 50.0, per_second: 2.0 },
    slow_down: outbound::slow_down,
};

/// Tenant `crm` setting: the outgoing webhook's application token (secret).
pub const APPLICATION_TOKEN: &str = "application_token";
/// Tenant `crm` setting: the portal's `member_id`; when set, events from other portals are refused.
pub const MEMBER_ID: &str = "member_id";
/// Tenant `crm` setting: the incoming-webhook URL `https://<portal>/rest/<user>/<code>/` (secret).
pub const WEBHOOK_URL: &str = "webhook_url";
/// Tenant `crm` setting: the Bitrix24 user id tasks are assigned to (default: the webhook's user).
pub const RESPONSIBLE_ID: &str = "responsible_id";
/// Tenant `crm` setting: other users' incoming-webhook URLs by user id
/// (secret), so a `move_stage` with `as_user` is made as that user.
pub const USER_WEBHOOKS: &str = "user_webhooks";

/// The prefix of every Bitrix24 idempotency key.
const KEY_PREFIX: &str = "b24";

/// The pipeline name of leads: a lead moves through statuses, not a deal category.
const LEAD_PIPELINE: &str = "lead";
/// A lead's deal id is `L_<lead id>` (Bitrix24's own prefix for leads, as in `UF_CRM_TASK`).
const LEAD_PREFIX: &str = "L_";

/// What an id-only event needs to be resolved, stored as the `event` of
/// an `Unresolved` (so it survives in the outbox until the worker gets to it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resolve", rename_all = "snake_case")]
enum Pending {
    /// `ONCRMDEALUPDATE` / `ONCRMDEALMOVETOCATEGORY`: did the deal move stage?
    DealMove { member: String, deal_id: String, sent_at: DateTime<Utc> },
    /// `ONCRMACTIVITYADD`: a call or an e-mail, once the activity is read.
    Activity { activity_id: String, sent_at: DateTime<Utc> },
    /// `ONVOXIMPLANTCALLEND`: the type is known; the contact is the call activity's owner.
    Call { kind: String, activity_id: Option<String>, occurred_at: DateTime<Utc>, attributes: Map<String, Value> },
    /// `ONOPENLINEMESSAGEADD`: a chat message whose chat is not yet tied to a contact.
    OpenLineMessage { chat_id: Option<String>, occurred_at: DateTime<Utc>, attributes: Map<String, Value> },
    /// `ONSESSIONSTART`: the first message of a session, for the chat's contact.
    SessionStart { chat_id: Option<String>, occurred_at: DateTime<Utc>, attributes: Map<String, Value> },
    /// `ONCRMLEADUPDATE`: did the lead move status?
    LeadMove { member: String, lead_id: String, sent_at: DateTime<Utc> },
    /// `ONCRMLEADADD`: a lead a form made is its contact's form submission.
    LeadAdded { lead_id: String, sent_at: DateTime<Utc> },
}

impl Pending {
    fn to_value(&self) -> Value {
        // A derived Serialize of strings, maps and dates cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// What the submodules' tests share: a tenant, the samples, and a sample
/// taken through `verify` and `normalize` as the route would.
#[cfg(test)]
mod testing {
    use axum::http::HeaderMap;
    use chrono::{DateTime, Utc};
    use serde_json::Value;

    use crate::crm::inbound::{Inbound, Request, Unresolved};
    use crate::ids::TenantId;
    use crate::tenant::{Provider, Secret, TenantRecord};

    pub fn tenant(crm: Value) -> TenantRecord {
        TenantRecord {
            id: TenantId::parse("t").unwrap(),
            provider: Provider::Bitrix24,
            webhook_secret: Secret::new("s"),
            actions_url: None,
            crm: crm.as_object().unwrap().clone(),
            token_hash: String::new(),
            previous_token: None,
            token_rotated_at: None,
            signing_secret: None,
            previous_signing: None,
            revision: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// The exact bytes of `tests/fixtures/crm/bitrix24/<file>`.
    pub fn sample(file: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/crm/bitrix24/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }

    pub fn now() -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    pub fn request<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Request<'a> {
        Request { method: "POST", url: "https://h.test/v1/webhooks/bitrix24/t", headers, body, now: now() }
    }

    /// A sample verified with `token`, then normalized.
    pub fn run(token: &str, file: &str) -> Vec<Inbound> {
        let headers = HeaderMap::new();
        let body = sample(file);
        let tenant = tenant(serde_json::json!({"application_token": token}));
        super::verify(&tenant, &request(&headers, &body)).unwrap();
        super::normalize(&tenant, &request(&headers, &body)).unwrap()
    }

    pub fn only_unresolved(items: Vec<Inbound>) -> Unresolved {
        match items.as_slice() {
            [Inbound::Resolve(event)] => event.clone(),
            other => panic!("expected one id-only event, got {other:?}"),
        }
    }
}
