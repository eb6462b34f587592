//! Who may post to a HighLevel tenant's webhook URL, and how it is checked.
//!
//! - `x-ghl-signature`: base64 Ed25519 over the exact body bytes, with
//!   HighLevel's published key (or the tenant's `ed25519_public_key`).
//!   When present it is the only scheme tried: no fallback.
//! - else `x-wh-signature`: the legacy base64 RSA PKCS#1 v1.5 SHA-256
//!   signature, with HighLevel's 4096-bit key (or `rsa_public_key`).
//! - else a workflow "Webhook" action, which HighLevel does not sign: the
//!   URL query `key` must equal the tenant's webhook secret.
//!
//! A signed body's `timestamp`, when present, must be at most two hours
//! old and at most five minutes ahead of `now`: HighLevel redelivers after
//! a 429 about ten minutes apart, six times, and a redelivery keeps the
//! event (so a tight window would refuse the very retry scorehook asked
//! for); a replay of a stored event is a duplicate by its `webhookId`
//! anyway. An event for another location than the tenant's
//! `location_id` is refused. Pure, and total: no input panics.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use ring::signature::{UnparsedPublicKey, ED25519, RSA_PKCS1_2048_8192_SHA256};
use serde_json::Value;

use super::events::{instant, location_of};
use crate::crm::inbound::{secret_matches, InboundError, Request};
use crate::tenant::TenantRecord;

pub const ED25519_HEADER: &str = "x-ghl-signature";
pub const RSA_HEADER: &str = "x-wh-signature";
/// The URL query parameter that carries the tenant's secret for workflow webhooks.
pub const KEY_PARAM: &str = "key";

/// HighLevel's Ed25519 webhook key (SPKI, base64), from its Webhook Integration Guide.
const HIGHLEVEL_ED25519: &str = "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=";

/// HighLevel's legacy RSA webhook key (SPKI, base64), from docs/oauth/WebhookAuthentication.md.
const HIGHLEVEL_RSA: &str = concat!(
    "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC",
    "Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6",
    "dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB",
    "csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv",
    "uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF",
    "3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU",
    "J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp",
    "IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN",
    "h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC",
    "HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ",
    "PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk",
    "T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==",
);

/// How old a signed event's `timestamp` may be: HighLevel's six retries
/// after a 429, about ten minutes apart with jitter, end within ~70 minutes.
const MAX_AGE: TimeDelta = TimeDelta::hours(2);
/// How far ahead of our clock a signed `timestamp` may be (clock skew).
const MAX_AHEAD: TimeDelta = TimeDelta::minutes(5);

/// The tenant settings that replace HighLevel's keys (sandboxes, tests, rotations).
pub const ED25519_SETTING: &str = "ed25519_public_key";
pub const RSA_SETTING: &str = "rsa_public_key";

/// Checks the request by the scheme it carries.
pub fn verify(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), InboundError> {
    let headers = request.headers;
    if let Some(signature) = headers.get(ED25519_HEADER) {
        let key = public_key(tenant, ED25519_SETTING, HIGHLEVEL_ED25519)?;
        check(&ED25519, &key, signature.as_bytes(), request.body, ED25519_HEADER)?;
        return signed_event_checks(tenant, request);
    }
    if let Some(signature) = headers.get(RSA_HEADER) {
        let key = public_key(tenant, RSA_SETTING, HIGHLEVEL_RSA)?;
        check(&RSA_PKCS1_2048_8192_SHA256, &key, signature.as_bytes(), request.body, RSA_HEADER)?;
        return signed_event_checks(tenant, request);
    }
    match request.query_param(KEY_PARAM) {
        Some(key) if secret_matches(&key, tenant.webhook_secret.expose()) => same_location(tenant, request.body),
        Some(_) => Err(refused("the URL key is not the tenant's webhook secret")),
        None => Err(refused("no x-ghl-signature, x-wh-signature or URL key")),
    }
}

fn refused(message: &str) -> InboundError {
    InboundError::Refused(message.to_owned())
}

/// Verifies a base64 signature header over the body with a raw public key.
fn check(
    algorithm: &'static dyn ring::signature::VerificationAlgorithm,
    key: &[u8],
    header: &[u8],
    body: &[u8],
    name: &str,
) -> Result<(), InboundError> {
    let signature =
        STANDARD.decode(header.trim_ascii()).map_err(|_| refused(&format!("the {name} header is not base64")))?;
    UnparsedPublicKey::new(algorithm, key)
        .verify(body, &signature)
        .map_err(|_| refused(&format!("the {name} signature does not match the body")))
}

/// The raw key ring verifies with: the tenant's override if set, else HighLevel's.
fn public_key(tenant: &TenantRecord, setting: &str, default: &str) -> Result<Vec<u8>, InboundError> {
    let configured = tenant.crm.get(setting).and_then(Value::as_str).filter(|k| !k.trim().is_empty());
    let text = configured.unwrap_or(default);
    let der = decode_key(text).ok_or_else(|| refused(&format!("the {setting} setting is not a base64 public key")))?;
    // A bare Ed25519 key is 32 bytes; anything else must be an SPKI.
    if setting == ED25519_SETTING && der.len() == 32 {
        return Ok(der);
    }
    spki_key(&der)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| refused(&format!("the {setting} setting is not a SubjectPublicKeyInfo")))
}

/// Base64 of DER, with or without PEM armour and line breaks.
fn decode_key(text: &str) -> Option<Vec<u8>> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

/// The key inside a DER SubjectPublicKeyInfo: `SEQUENCE { algorithm, BIT
/// STRING }`, the bit string's content after its unused-bits byte. For RSA
/// that is the PKCS#1 RSAPublicKey ring wants; for Ed25519 the 32 raw bytes.
fn spki_key(der: &[u8]) -> Option<&[u8]> {
    let (spki, rest) = tlv(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (_algorithm, rest) = tlv(spki, 0x30)?;
    let (bits, rest) = tlv(rest, 0x03)?;
    match (bits.split_first(), rest.is_empty()) {
        (Some((0, key)), true) if !key.is_empty() => Some(key),
        _ => None,
    }
}

/// One DER element of the expected tag: its content and what follows it.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let count = usize::from(first - 0x80);
            let bytes = rest.get(..count)?;
            (bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)), rest.get(count..)?)
        }
        _ => return None,
    };
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// After a valid signature: the replay window and the location.
fn signed_event_checks(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), InboundError> {
    fresh(request.body, request.now)?;
    same_location(tenant, request.body)
}

/// A present `timestamp` must be readable, at most `MAX_AGE` old and `MAX_AHEAD` ahead.
fn fresh(body: &[u8], now: DateTime<Utc>) -> Result<(), InboundError> {
    let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(body) else { return Ok(()) };
    let Some(stamp) = event.get("timestamp") else { return Ok(()) };
    let at = instant(stamp).ok_or_else(|| refused("the event's timestamp cannot be read"))?;
    if now - at > MAX_AGE {
        return Err(refused("the event's timestamp is more than 2 hours old"));
    }
    if at - now > MAX_AHEAD {
        return Err(refused("the event's timestamp is more than 5 minutes ahead"));
    }
    Ok(())
}

/// When the tenant names its location, events for another one are refused
/// (a marketplace app's URL may be shared by mistake across sub-accounts).
fn same_location(tenant: &TenantRecord, body: &[u8]) -> Result<(), InboundError> {
    let Some(expected) = tenant.crm.get("location_id").and_then(Value::as_str).filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let Ok(event) = serde_json::from_slice::<Value>(body) else { return Ok(()) };
    match location_of(&event) {
        Some(location) if location != expected => Err(refused("the event is for another HighLevel location")),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::TenantId;
    use crate::tenant::{Provider, Secret};
    use axum::http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;
    use serde_json::json;

    /// RFC 8032 test key 1 (public), the key of the worked examples in highlevel.md §2.
    pub const TEST_ED25519: &str = "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    const STAGE_SIGNATURE: &str =
        "HZixm1XPdqP3T5A4G1soOIJU13FgHEfyhmOU3WXtS/z1/i/K2SZ9J/VMD81WLRf2AtWtEE/SHbDrv2ktywNXBw==";
    const SMS_SIGNATURE: &str =
        "7QM/jXcsQCaAOuhQqgWZFgH5eHujwC8NP49d8j8qYtUyA8OV1WlnxWqLz4I287g9yPcg6K4Cu9crkKdjbWVPCA==";
    /// A throwaway 2048-bit RSA key (made with python `cryptography` for this
    /// test) and its PKCS#1 v1.5 SHA-256 signature over contact_tag_update_docs.json.
    const TEST_RSA: &str = concat!(
        "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2LNGhi77V1eD8SwARvaQvSOKuARjTK5C8PQpLTNDd3eReG3X8j1aPycEIKRiFZ",
        "imN9Z2Hac0powBNDt1Q+7THsyOkzr6e/CaZh+aWZ/Kb9NbfY9xosEMWiM/8JezfAAwCue68TNt/TU56l71R/BMKAMAwbkIT8ylYf5SBQiW",
        "u7Vl+AF9+mdy8Bp/0chzhhCpz2L+j+G3HQ5wZ05PXI55suH4ATJxq16GJXkjb7gYmSsllpM85roeMK5zC07TOi3ehDedVoFYIREKLqyUo1",
        "MA/MVCp/6Q/ZfRUlfubF26btP6ZRytfSXfeCHnNK2V3KmV4YAdBhwlMQ5zrE6cU94InQIDAQAB",
    );
    const TAG_RSA_SIGNATURE: &str = concat!(
        "wKkKWLtzkSbi5Cs/KvrVBMoe42hu05xn6FJJt66K8UrxESobNrzQyboomIdw7cEB8KYrTbt2BcdRIawBJj7qkOXZRddP3aZszDBQDENakP",
        "kqVLjB+Empgt6YgVOd2jln3StbS58vjZvkmQzmske3HRHAh8rmTG/peZ9qibFFo4shUqabxwq8Xp/ZYnMIRPRKf14U8a+9BhZC2FAVUPrs",
        "crz54XeAiy54nxjR39GSLCGBXRcC367eDp1S7pJvjfLX+L3eqVWHQbxf45YtZtFrd1oA2HAYpSqLKELL0pwEv8yOaf/upncYt/yublKOrr",
        "hEL4dpO+SaJlCdR2FaDBXsTg==",
    );

    pub fn sample(file: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/crm/highlevel/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }

    pub fn tenant(crm: Value) -> TenantRecord {
        TenantRecord {
            id: TenantId::parse("hl").unwrap(),
            provider: Provider::Highlevel,
            webhook_secret: Secret::new("wf-secret"),
            actions_url: None,
            crm: crm.as_object().cloned().unwrap_or_default(),
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

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn run(tenant: &TenantRecord, url: &str, headers: &HeaderMap, body: &[u8], now: &str) -> Result<(), InboundError> {
        verify(tenant, &Request { method: "POST", url, headers, body, now: at(now) })
    }

    const URL: &str = "https://h.test/v1/webhooks/highlevel/hl";

    #[test]
    fn the_worked_ed25519_examples_verify_with_the_test_key() {
        let tenant = tenant(json!({ "ed25519_public_key": TEST_ED25519 }));
        let stage = sample("opportunity_stage_update_docs.json");
        assert_eq!(stage.len(), 467);
        let signed = headers(&[(ED25519_HEADER, STAGE_SIGNATURE)]);
        assert_eq!(run(&tenant, URL, &signed, &stage, "2021-11-26T12:47:00Z"), Ok(()));
        let sms = sample("inbound_message_sms_docs.json");
        assert_eq!(sms.len(), 452);
        let signed = headers(&[(ED25519_HEADER, SMS_SIGNATURE)]);
        assert_eq!(run(&tenant, URL, &signed, &sms, "2021-04-21T11:33:00Z"), Ok(()));
    }

    #[test]
    fn wrong_stale_or_missing_signatures_are_refused() {
        let tenant = tenant(json!({ "ed25519_public_key": TEST_ED25519 }));
        let stage = sample("opportunity_stage_update_docs.json");
        let now = "2021-11-26T12:47:00Z";
        let refused = |r: Result<(), InboundError>| matches!(r, Err(InboundError::Refused(_)));
        // Another body's signature.
        assert!(refused(run(&tenant, URL, &headers(&[(ED25519_HEADER, SMS_SIGNATURE)]), &stage, now)));
        // One byte changed.
        let mut tampered = stage.clone();
        tampered[10] ^= 1;
        assert!(refused(run(&tenant, URL, &headers(&[(ED25519_HEADER, STAGE_SIGNATURE)]), &tampered, now)));
        // Not base64.
        assert!(refused(run(&tenant, URL, &headers(&[(ED25519_HEADER, "not base64!")]), &stage, now)));
        // HighLevel's own key does not verify the test key's signature.
        let production = super::tests::tenant(json!({}));
        assert!(refused(run(&production, URL, &headers(&[(ED25519_HEADER, STAGE_SIGNATURE)]), &stage, now)));
        // Stale: the body says 12:45:10; 2 h 1 s later is too late, 2 h
        // (a redelivery after HighLevel's last retry) is not.
        let good = headers(&[(ED25519_HEADER, STAGE_SIGNATURE)]);
        assert_eq!(run(&tenant, URL, &good, &stage, "2021-11-26T14:45:10Z"), Ok(()));
        assert!(refused(run(&tenant, URL, &good, &stage, "2021-11-26T14:45:11Z")));
        assert!(refused(run(&tenant, URL, &good, &stage, "2021-11-26T12:40:09Z")), "too far ahead");
        // Missing: no header and no key.
        assert!(refused(run(&tenant, URL, &HeaderMap::new(), &stage, now)));
        // A present x-ghl-signature never falls back to the URL key.
        let keyed = format!("{URL}?key=wf-secret");
        assert!(refused(run(&tenant, &keyed, &headers(&[(ED25519_HEADER, SMS_SIGNATURE)]), &stage, now)));
    }

    #[test]
    fn the_legacy_rsa_signature_verifies_only_without_an_ed25519_header() {
        let tenant = tenant(json!({ "rsa_public_key": TEST_RSA }));
        let body = sample("contact_tag_update_docs.json");
        let now = "2021-11-26T12:51:00Z";
        assert_eq!(run(&tenant, URL, &headers(&[(RSA_HEADER, TAG_RSA_SIGNATURE)]), &body, now), Ok(()));
        let both = headers(&[(RSA_HEADER, TAG_RSA_SIGNATURE), (ED25519_HEADER, STAGE_SIGNATURE)]);
        assert!(matches!(run(&tenant, URL, &both, &body, now), Err(InboundError::Refused(_))), "no fallback");
        let mut tampered = body.clone();
        tampered[5] ^= 1;
        let rsa = headers(&[(RSA_HEADER, TAG_RSA_SIGNATURE)]);
        assert!(matches!(run(&tenant, URL, &rsa, &tampered, now), Err(InboundError::Refused(_))));
        let stale = run(&tenant, URL, &rsa, &body, "2021-11-26T15:00:00Z");
        assert!(matches!(stale, Err(InboundError::Refused(_))), "more than 2 hours old");
    }

    #[test]
    fn highlevels_published_keys_parse() {
        let production = tenant(json!({}));
        assert_eq!(
            hex::encode(public_key(&production, ED25519_SETTING, HIGHLEVEL_ED25519).unwrap()),
            "8b61d1d6cacbe28d7c3bc0516bb815258ec6edbba96cddc7f40c09ac708388e8"
        );
        let rsa = public_key(&production, RSA_SETTING, HIGHLEVEL_RSA).unwrap();
        // PKCS#1 RSAPublicKey: SEQUENCE of a 4096-bit modulus and 65537.
        assert_eq!(rsa.len(), 526);
        assert!(rsa.ends_with(&[0x02, 0x03, 0x01, 0x00, 0x01]));
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{TEST_ED25519}\n-----END PUBLIC KEY-----\n");
        assert!(public_key(&tenant(json!({ "ed25519_public_key": pem })), ED25519_SETTING, "").is_ok());
        assert!(public_key(&tenant(json!({ "ed25519_public_key": "AAAA" })), ED25519_SETTING, "").is_err());
    }

    #[test]
    fn workflow_webhooks_need_the_tenants_secret_in_the_url() {
        let tenant = tenant(json!({}));
        let body = sample("workflow_webhook_form_submitted_constructed.json");
        let now = "2026-11-20T15:02:30Z";
        let none = HeaderMap::new();
        assert_eq!(run(&tenant, &format!("{URL}?key=wf-secret"), &none, &body, now), Ok(()));
        assert!(matches!(
            run(&tenant, &format!("{URL}?key=wf-secreT"), &none, &body, now),
            Err(InboundError::Refused(_))
        ));
        assert!(matches!(run(&tenant, &format!("{URL}?key="), &none, &body, now), Err(InboundError::Refused(_))));
    }

    #[test]
    fn events_for_another_location_are_refused_when_the_tenant_names_its_own() {
        let body = sample("workflow_webhook_form_submitted_constructed.json");
        let url = format!("{URL}?key=wf-secret");
        let now = "2026-11-20T15:02:30Z";
        let ours = tenant(json!({"location_id": "loc_ABC123"}));
        assert_eq!(run(&ours, &url, &HeaderMap::new(), &body, now), Ok(()));
        let other = tenant(json!({"location_id": "loc_OTHER"}));
        assert!(matches!(run(&other, &url, &HeaderMap::new(), &body, now), Err(InboundError::Refused(_))));
    }

    #[test]
    fn reads_only_well_formed_der() {
        assert_eq!(tlv(&[0x30, 0x01, 0xaa, 0xbb], 0x30), Some((&[0xaa][..], &[0xbb][..])));
        assert_eq!(tlv(&[0x30, 0x05, 0xaa], 0x30), None, "length past the end");
        assert_eq!(tlv(&[0x30, 0x82, 0x00], 0x30), None, "truncated long length");
        assert_eq!(tlv(&[0x30, 0x80], 0x30), None, "indefinite length");
        assert_eq!(spki_key(&[0x30, 0x04, 0x30, 0x00, 0x03, 0x00]), None, "empty bit string");
    }

    proptest! {
        #[test]
        fn no_bytes_or_header_values_make_verify_or_normalize_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            ghl in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..120)),
            wh in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..120)),
            query in "[ -~]{0,40}",
            key in proptest::option::of("[ -~]{0,60}"),
        ) {
            let tenant = match key {
                Some(k) => tenant(json!({ "ed25519_public_key": k, "rsa_public_key": k, "location_id": "x" })),
                None => tenant(json!({})),
            };
            let mut map = HeaderMap::new();
            if let Some(value) = ghl.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
                map.insert(ED25519_HEADER, value);
            }
            if let Some(value) = wh.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
                map.insert(RSA_HEADER, value);
            }
            let url = format!("{URL}?{query}");
            let request = Request { method: "POST", url: &url, headers: &map, body: &body, now: Utc::now() };
            let _ = verify(&tenant, &request);
            let _ = super::super::events::normalize(&tenant, &request);
        }
    }
}
