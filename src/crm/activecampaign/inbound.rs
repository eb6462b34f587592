//! ActiveCampaign webhooks in: the secret in the URL, the form body, and
//! the mapping from ActiveCampaign's event types to canonical interactions.
//!
//! ActiveCampaign never retries, so anything it may send is acknowledged:
//! types scorehook does not map become `Unmapped`, never an error. Only a
//! body that cannot be an ActiveCampaign event (empty, or one with neither a
//! type nor a contact) is `Malformed`. It sends no event id, so keys are
//! derived (`ac:<type>:<contact>:<date_time>:<object id>`), and the
//! automation "Webhook" action, which has neither type nor time, is keyed
//! by a hash of its body within a short window.
//!
//! Pure: no I/O; the clock comes in with the request. Never panics.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::crm::form;
use crate::crm::inbound::{derived_key, hashed_key, interaction, secret_matches, Inbound, InboundError, Request};
use crate::engine::interaction::InteractionType;
use crate::ids::{ContactId, DealId, EventId};
use crate::tenant::TenantRecord;

/// The prefix of every ActiveCampaign idempotency key.
const KEY_PREFIX: &str = "ac";

/// The URL query parameter that carries the tenant's webhook secret.
pub const KEY_PARAM: &str = "key";

/// The URL query parameter naming the interaction type of automation bodies.
pub const TYPE_PARAM: &str = "type";

/// Automation bodies repeated within this many seconds (same window) count
/// once; a later run of the automation counts again.
pub const AUTOMATION_WINDOW_SECONDS: i64 = 15 * 60;

/// The contact block's keys copied into the interaction's `contact`.
const CONTACT_KEYS: &[&str] = &["email", "first_name", "last_name", "phone", "orgname", "tags"];

/// The tenant's `webhook_secret` must come back as the URL's `key` query parameter.
pub fn verify(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), InboundError> {
    let presented = request
        .query_param(KEY_PARAM)
        .ok_or_else(|| InboundError::Refused("the webhook URL has no key parameter".into()))?;
    if secret_matches(&presented, tenant.webhook_secret.expose()) {
        Ok(())
    } else {
        Err(InboundError::Refused("the webhook URL's key does not match".into()))
    }
}

pub fn normalize(request: &Request<'_>) -> Result<Inbound, InboundError> {
    let body = form::parse(request.body);
    if body.as_object().is_none_or(Map::is_empty) {
        return Err(InboundError::Malformed("the body is empty: ActiveCampaign sends a form".into()));
    }
    match field(&body, &["type"]) {
        Some(kind) => event(kind, &body, request),
        None => automation(&body, request),
    }
}

/// A non-empty string at a path of nested keys.
fn field<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(value, |node, key| node.get(key))?.as_str().filter(|s| !s.is_empty())
}

/// What a mapped ActiveCampaign event type becomes.
struct Mapped<'v> {
    kind: &'static str,
    /// The id of what the event is about (campaign, link, list, deal, sms),
    /// the last part of the derived key.
    object: Option<&'v str>,
    attributes: Vec<(&'static str, Option<&'v str>)>,
}

/// The mapping table of `docs/connectors/activecampaign.md`; `None` for unmapped types.
fn mapping<'v>(kind: &'v str, body: &'v Value) -> Option<Mapped<'v>> {
    let at = |path: &[&str]| field(body, path);
    let campaign = at(&["campaign", "id"]);
    let mapped = |kind, object, attributes| Some(Mapped { kind, object, attributes });
    match kind {
        "open" => mapped(
            "email.opened",
            campaign,
            vec![("campaign_id", campaign), ("subject", at(&["campaign", "message", "subject"]))],
        ),
        "click" => mapped(
            "email.clicked",
            at(&["link", "id"]),
            vec![("url", at(&["link", "url"])), ("link_id", at(&["link", "id"])), ("campaign_id", campaign)],
        ),
        "forward" => mapped("email.forwarded", campaign, vec![("campaign_id", campaign)]),
        "bounce" => mapped(
            "email.bounced",
            campaign,
            vec![
                ("campaign_id", campaign),
                ("bounce_type", at(&["bounce", "type"])),
                ("bounce_code", at(&["bounce", "code"])),
            ],
        ),
        "reply" => mapped("email.received", campaign, vec![("campaign_id", campaign)]),
        "subscribe" => mapped("list.subscribed", at(&["list"]), vec![("list_id", at(&["list"]))]),
        "unsubscribe" => mapped(
            "list.unsubscribed",
            at(&["list"]),
            vec![("list_id", at(&["list"])), ("campaign_id", campaign), ("reason", at(&["unsubscribe", "reason"]))],
        ),
        "sms_unsub" => mapped("list.unsubscribed", at(&["sms", "id"]), vec![("list_id", Some("sms"))]),
        "sms_reply" => mapped(
            "chat.message",
            at(&["sms", "id"]),
            vec![("channel", Some("sms")), ("text", at(&["sms", "reply"])), ("sms_id", at(&["sms", "id"]))],
        ),
        "deal_add" => mapped("deal.stage_changed", at(&["deal", "id"]), deal_attributes(body)),
        "deal_update" if stage_moved(body) => mapped("deal.stage_changed", at(&["deal", "id"]), deal_attributes(body)),
        "update" => mapped("contact.updated", None, vec![("change", Some("update"))]),
        "contact_tag_added" | "contact_tag_removed" => {
            // The tag's key is not documented: `tag` and `contact[tag]` are both read.
            let tag = at(&["tag"]).or_else(|| at(&["contact", "tag"]));
            mapped("contact.updated", tag, vec![("change", Some(kind)), ("tag", tag)])
        }
        _ => None,
    }
}

/// A `deal_update` is a stage move when `updated_fields[*]` lists `stage`.
fn stage_moved(body: &Value) -> bool {
    body.get("updated_fields").is_some_and(|fields| form::indexed(fields).iter().any(|f| f.as_str() == Some("stage")))
}

fn deal_attributes(body: &Value) -> Vec<(&'static str, Option<&str>)> {
    let deal = |key: &str| field(body, &["deal", key]);
    vec![
        ("deal_id", deal("id")),
        ("pipeline", deal("pipelineid")),
        ("pipeline_title", deal("pipeline_title")),
        ("stage", deal("stageid")),
        ("stage_title", deal("stage_title")),
        ("status", deal("status")),
    ]
}

/// An event with a `type`: mapped into one interaction, or acknowledged as unmapped.
fn event<'v>(kind: &'v str, body: &'v Value, request: &Request<'_>) -> Result<Inbound, InboundError> {
    let Some(mapped) = mapping(kind, body) else {
        return Ok(Inbound::Unmapped(kind.to_owned()));
    };
    let contact_id = contact_id(body, kind)?;
    let deal_id = match mapped.kind {
        "deal.stage_changed" => field(body, &["deal", "id"]).and_then(|id| DealId::parse(id).ok()),
        _ => None,
    };
    let date_time = field(body, &["date_time"]);
    let id = match date_time {
        Some(time) => derived_key(KEY_PREFIX, &[kind, contact_id.as_str(), time, mapped.object.unwrap_or_default()]),
        // Not seen from ActiveCampaign, but without a time a redelivery can
        // only be recognised by its content, within a window.
        None => windowed_key(&[kind, contact_id.as_str()], request),
    };
    let occurred_at = date_time.and_then(parse_time).unwrap_or(request.now);
    interaction(id, mapped.kind, contact_id, deal_id, occurred_at, attributes(mapped.attributes), contact(body))
        .map(Inbound::Ready)
}

/// The contact the event is about: `contact[id]`, or a deal's `deal[contactid]`.
fn contact_id(body: &Value, kind: &str) -> Result<ContactId, InboundError> {
    let id = field(body, &["contact", "id"])
        .or_else(|| field(body, &["deal", "contactid"]))
        .ok_or_else(|| InboundError::Malformed(format!("the {kind:?} event names no contact[id]")))?;
    ContactId::parse(id).map_err(|e| InboundError::Malformed(e.to_string()))
}

/// The automation "Webhook" action: no type and no time in the body; the
/// type comes from the tenant's URL (`&type=page.visited`), else it is
/// acknowledged and counted as `automation`.
fn automation(body: &Value, request: &Request<'_>) -> Result<Inbound, InboundError> {
    if field(body, &["contact", "id"]).is_none() {
        return Err(InboundError::Malformed("the body has neither a type nor a contact[id]".into()));
    }
    let contact_id = contact_id(body, "automation")?;
    let Some(named) = request.query_param(TYPE_PARAM).filter(|t| !t.is_empty()) else {
        return Ok(Inbound::Unmapped("automation".into()));
    };
    if InteractionType::parse(&named).is_err() {
        return Ok(Inbound::Unmapped(format!("automation:{named}")));
    }
    let series = field(body, &["seriesid"]);
    let id = windowed_key(&["automation", &named, series.unwrap_or_default()], request);
    let attributes = attributes(vec![("series_id", series)]);
    interaction(id, &named, contact_id, None, request.now, attributes, contact(body)).map(Inbound::Ready)
}

/// A key for an event with nothing stable but its content: a hash of the
/// parts, the body and the window `now` falls in.
fn windowed_key(parts: &[&str], request: &Request<'_>) -> EventId {
    let window = request.now.timestamp().div_euclid(AUTOMATION_WINDOW_SECONDS).to_string();
    let mut content = Vec::with_capacity(request.body.len() + 64);
    for part in parts.iter().chain([&window.as_str()]) {
        content.extend_from_slice(part.as_bytes());
        content.push(0x1f);
    }
    content.extend_from_slice(request.body);
    hashed_key(KEY_PREFIX, &content)
}

/// ActiveCampaign's `date_time`, ISO-8601 with an offset.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

fn attributes(pairs: Vec<(&'static str, Option<&str>)>) -> Map<String, Value> {
    pairs.into_iter().filter_map(|(k, v)| Some((k.to_owned(), Value::String(v?.to_owned())))).collect()
}

/// What the body says about the contact: email, names, phone,
/// organisation, tags, its IP address (`ip`, from `contact[ip]` or the
/// automation webhook's `contact[ip4]`), and every custom field
/// (`contact[fields][<id or personalisation tag>]`) under its id or tag, so
/// fit rules such as `{"contact": {"city": {"in": […]}}}` can use them. A
/// custom field named like a standard key does not replace it.
fn contact(body: &Value) -> Map<String, Value> {
    let mut fields = attributes(CONTACT_KEYS.iter().map(|k| (*k, field(body, &["contact", k]))).collect());
    if let Some(ip) = field(body, &["contact", "ip"]).or_else(|| field(body, &["contact", "ip4"])) {
        fields.insert("ip".to_owned(), Value::String(ip.to_owned()));
    }
    let custom = body.get("contact").and_then(|c| c.get("fields")).and_then(Value::as_object);
    for (name, value) in custom.into_iter().flatten() {
        let Some(text) = value.as_str().filter(|t| !t.is_empty()) else { continue };
        if !fields.contains_key(name) {
            fields.insert(name.clone(), Value::String(text.to_owned()));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::interaction::Interaction;
    use crate::ids::TenantId;
    use crate::tenant::{hash_token, Provider, Secret};
    use axum::http::{HeaderMap, HeaderValue};
    use chrono::TimeDelta;
    use proptest::prelude::*;
    use serde_json::json;

    const SECRET: &str = "ac-secret-0123456789";
    const URL: &str = "https://h.test/v1/webhooks/activecampaign/acme?key=ac-secret-0123456789";

    fn tenant() -> TenantRecord {
        TenantRecord {
            id: TenantId::parse("acme").unwrap(),
            provider: Provider::Activecampaign,
            webhook_secret: Secret::new(SECRET),
            actions_url: None,
            crm: Map::new(),
            token_hash: hash_token("t"),
            previous_token: None,
            token_rotated_at: None,
            signing_secret: None,
            previous_signing: None,
            revision: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn sample(file: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/crm/activecampaign/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }

    fn normalize_at(url: &str, body: &[u8], now: DateTime<Utc>) -> Result<Inbound, InboundError> {
        let headers = HeaderMap::new();
        normalize(&Request { method: "POST", url, headers: &headers, body, now })
    }

    fn ready(url: &str, body: &[u8]) -> Interaction {
        match normalize_at(url, body, now()) {
            Ok(Inbound::Ready(interaction)) => interaction,
            other => panic!("expected an interaction, got {other:?}"),
        }
    }

    fn verify_url(url: &str) -> Result<(), InboundError> {
        let headers = HeaderMap::new();
        verify(&tenant(), &Request { method: "POST", url, headers: &headers, body: b"type=open", now: now() })
    }

    /// Asserts type, contact, deal, key and attributes of a sample's interaction.
    fn expect(file: &str, kind: &str, contact: &str, deal: Option<&str>, key: &str, attributes: Value) -> Interaction {
        let got = ready(URL, &sample(file));
        assert_eq!(got.kind.as_str(), kind, "{file}");
        assert_eq!(got.contact_id.as_str(), contact, "{file}");
        assert_eq!(got.deal_id.as_ref().map(DealId::as_str), deal, "{file}");
        assert_eq!(got.id.as_str(), key, "{file}");
        for (name, value) in attributes.as_object().unwrap() {
            assert_eq!(got.attributes.get(name), Some(value), "{file}: attribute {name}");
        }
        got
    }

    #[test]
    fn the_open_sample_is_an_email_opened_with_its_campaign_and_subject() {
        let got = expect(
            "open_constructed.txt",
            "email.opened",
            "42",
            None,
            "ac:open:42:2026-11-22T10:00:00-06:00:57",
            json!({"campaign_id": "57", "subject": "Spring is here"}),
        );
        assert_eq!(got.occurred_at, "2026-11-22T16:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(got.contact.get("email"), Some(&json!("jhon@x.test")));
        assert_eq!(got.contact.get("tags"), Some(&json!("webinar, lead")));
        assert_eq!(got.contact.get("phone"), None, "empty values are left out");
    }

    #[test]
    fn the_click_sample_is_an_email_clicked_with_its_url() {
        expect(
            "click_link_constructed.txt",
            "email.clicked",
            "42",
            None,
            "ac:click:42:2026-11-22T10:03:17-06:00:311",
            json!({"url": "https://x.test/pricing?utm_source=ac", "link_id": "311", "campaign_id": "57"}),
        );
    }

    #[test]
    fn the_unsubscribe_capture_is_a_list_unsubscribed() {
        expect(
            "unsubscribe_capture_anonymised.txt",
            "list.unsubscribed",
            "10",
            None,
            "ac:unsubscribe:10:2017-11-24T09:33:27-06:00:1",
            json!({"list_id": "1"}),
        );
    }

    #[test]
    fn the_deal_update_capture_with_a_stage_is_a_deal_stage_change() {
        expect(
            "deal_update_stage_capture_anonymised.txt",
            "deal.stage_changed",
            "27",
            Some("2"),
            "ac:deal_update:27:2017-11-28T09:03:08-06:00:2",
            json!({"deal_id": "2", "pipeline": "1", "pipeline_title": "my_pipeline", "stage": "1", "stage_title": "To Contact"}),
        );
    }

    #[test]
    fn the_sms_reply_sample_is_a_chat_message() {
        expect(
            "sms_reply_constructed.txt",
            "chat.message",
            "42",
            None,
            "ac:sms_reply:42:2026-11-22T11:15:02-06:00:8812",
            json!({"channel": "sms", "text": "Yes, call me tomorrow"}),
        );
    }

    #[test]
    fn the_automation_capture_takes_its_type_from_the_url_and_a_windowed_body_key() {
        let body = sample("automation_webhook_action_capture_anonymised.txt");
        let url = format!("{URL}&type=page.visited");
        let got = ready(&url, &body);
        assert_eq!(got.kind.as_str(), "page.visited");
        assert_eq!(got.contact_id.as_str(), "42");
        assert_eq!(got.attributes.get("series_id"), Some(&json!("929")));
        assert_eq!(got.occurred_at, now(), "the body has no time");
        assert!(got.id.as_str().starts_with("ac:h:"), "{}", got.id);

        let key_at = |url: &str, body: &[u8], at| match normalize_at(url, body, at) {
            Ok(Inbound::Ready(i)) => i.id,
            other => panic!("{other:?}"),
        };
        assert_eq!(key_at(&url, &body, now() + TimeDelta::seconds(30)), got.id, "a redelivery counts once");
        assert_ne!(key_at(&url, &body, now() + TimeDelta::minutes(20)), got.id, "a later run counts again");
        let other_series = String::from_utf8(body.clone()).unwrap().replace("seriesid=929", "seriesid=930");
        assert_ne!(key_at(&url, other_series.as_bytes(), now()), got.id);
        assert_ne!(key_at(&format!("{URL}&type=form.submitted"), &body, now()), got.id);
    }

    #[test]
    fn an_automation_body_without_a_usable_type_is_unmapped() {
        let body = sample("automation_webhook_action_capture_anonymised.txt");
        assert_eq!(normalize_at(URL, &body, now()), Ok(Inbound::Unmapped("automation".into())));
        assert_eq!(
            normalize_at(&format!("{URL}&type=page.exploded"), &body, now()),
            Ok(Inbound::Unmapped("automation:page.exploded".into()))
        );
        let custom = ready(&format!("{URL}&type=custom.webinar"), &body);
        assert_eq!(custom.kind.as_str(), "custom.webinar");
    }

    #[test]
    fn types_scorehook_does_not_map_are_acknowledged_as_unmapped() {
        let cases: &[(&[u8], &str, &str)] = &[
            (b"type=sent&campaign%5Bid%5D=57&date_time=2026-11-22T10%3A00%3A00-06%3A00", "sent", "campaign-level"),
            (b"type=deal_note_add&contact%5Bid%5D=42&deal%5Bid%5D=2", "deal_note_add", "not in the table"),
            (b"type=something_new&x=1", "something_new", "a type ActiveCampaign adds later"),
            (
                b"type=deal_update&contact%5Bid%5D=27&deal%5Bid%5D=2&updated_fields%5B0%5D=title",
                "deal_update",
                "no stage",
            ),
        ];
        for (body, kind, why) in cases {
            assert_eq!(normalize_at(URL, body, now()), Ok(Inbound::Unmapped((*kind).into())), "{why}");
        }
    }

    #[test]
    fn other_mapped_types_carry_their_attributes() {
        let time = "date_time=2026-11-22T10%3A00%3A00-06%3A00&contact%5Bid%5D=42";
        let cases: &[(&str, &str, Value)] = &[
            ("type=forward&campaign%5Bid%5D=5", "email.forwarded", json!({"campaign_id": "5"})),
            (
                "type=bounce&campaign%5Bid%5D=5&bounce%5Btype%5D=hard&bounce%5Bcode%5D=5.1.1",
                "email.bounced",
                json!({"campaign_id": "5", "bounce_type": "hard", "bounce_code": "5.1.1"}),
            ),
            ("type=reply&campaign%5Bid%5D=5", "email.received", json!({"campaign_id": "5"})),
            ("type=subscribe&list=3", "list.subscribed", json!({"list_id": "3"})),
            ("type=sms_unsub&sms%5Bid%5D=9", "list.unsubscribed", json!({"list_id": "sms"})),
            ("type=update", "contact.updated", json!({"change": "update"})),
            ("type=contact_tag_added&tag=vip", "contact.updated", json!({"change": "contact_tag_added", "tag": "vip"})),
            (
                "type=deal_add&deal%5Bid%5D=7&deal%5Bstageid%5D=4&deal%5Bpipelineid%5D=2",
                "deal.stage_changed",
                json!({"deal_id": "7", "stage": "4", "pipeline": "2"}),
            ),
        ];
        for (body, kind, attributes) in cases {
            let got = ready(URL, format!("{body}&{time}").as_bytes());
            assert_eq!(got.kind.as_str(), *kind, "{body}");
            assert_eq!(Value::Object(got.attributes), *attributes, "{body}");
        }
    }

    #[test]
    fn a_deal_event_without_a_contact_block_uses_the_deals_contact() {
        let got = ready(URL, b"type=deal_add&deal%5Bid%5D=7&deal%5Bcontactid%5D=27&deal%5Bstageid%5D=4");
        assert_eq!(got.contact_id.as_str(), "27");
        assert_eq!(got.deal_id.as_ref().map(DealId::as_str), Some("7"));
    }

    #[test]
    fn bodies_that_cannot_be_activecampaign_events_are_malformed() {
        for (body, why) in [
            (&b""[..], "empty"),
            (b"{\"type\": \"open\"}", "JSON, neither a type nor a contact"),
            (b"type=open&campaign%5Bid%5D=57", "a mapped type with no contact"),
            (b"type=open&contact%5Bid%5D=a+b", "a contact id that is not an id"),
        ] {
            assert!(matches!(normalize_at(URL, body, now()), Err(InboundError::Malformed(_))), "{why}");
        }
    }

    #[test]
    fn a_redelivered_event_gets_the_same_key_and_another_event_another() {
        let open = sample("open_constructed.txt");
        assert_eq!(ready(URL, &open).id, ready(URL, &open).id);
        let later = String::from_utf8(open).unwrap().replace("10%3A00%3A00", "10%3A00%3A01");
        assert_ne!(ready(URL, later.as_bytes()).id, ready(URL, &sample("open_constructed.txt")).id);
    }

    #[test]
    fn the_secret_in_the_url_key_verifies_and_anything_else_is_refused() {
        assert_eq!(verify_url(URL), Ok(()));
        assert_eq!(verify_url(&format!("{URL}&type=page.visited")), Ok(()));
        assert_eq!(verify_url("https://h.test/x?type=open&key=ac-secret-0123456789"), Ok(()));
        for (url, why) in [
            ("https://h.test/v1/webhooks/activecampaign/acme", "no query"),
            ("https://h.test/x?type=page.visited", "no key"),
            ("https://h.test/x?key=", "empty key"),
            ("https://h.test/x?key=ac-secret-012345678", "a prefix of the secret"),
            ("https://h.test/x?key=AC-SECRET-0123456789", "another case"),
            ("https://h.test/x?Key=ac-secret-0123456789", "another parameter"),
        ] {
            assert!(matches!(verify_url(url), Err(InboundError::Refused(_))), "{why}");
        }
        // There is no time window to be stale in: ActiveCampaign sends no timestamp.
    }

    #[test]
    fn a_tenant_without_a_secret_refuses_everything() {
        let mut no_secret = tenant();
        no_secret.webhook_secret = Secret::new("");
        let headers = HeaderMap::new();
        let request =
            Request { method: "POST", url: "https://h.test/x?key=", headers: &headers, body: b"", now: now() };
        assert!(matches!(verify(&no_secret, &request), Err(InboundError::Refused(_))));
    }

    proptest! {
        #[test]
        fn no_body_query_or_header_makes_verify_or_normalize_panic(
            body in proptest::collection::vec(any::<u8>(), 0..400),
            query in "\\PC{0,80}",
            header in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&header) {
                headers.insert("content-type", value);
            }
            let url = format!("https://h.test/v1/webhooks/activecampaign/acme?{query}");
            let request = Request { method: "POST", url: &url, headers: &headers, body: &body, now: now() };
            let _ = verify(&tenant(), &request);
            let _ = normalize(&request);
        }

        #[test]
        fn no_form_soup_makes_normalize_panic(
            text in "(type=(open|click|deal_update|sms_reply|)&)?[a-z\\[\\]=&%+0-9_]{0,200}",
            query in "(type=[a-z._]{0,20})?",
        ) {
            let url = format!("https://h.test/x?key={SECRET}&{query}");
            let result = normalize_at(&url, text.as_bytes(), now());
            prop_assert!(result.is_ok() || matches!(result, Err(InboundError::Malformed(_))));
        }
    }
}
