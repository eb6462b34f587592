//! HubSpot's v3 request signature, the only scheme accepted.
//!
//! `X-HubSpot-Signature-v3` is base64(HMAC-SHA256(client secret, method +
//! URL + raw body + timestamp)), where the URL is the full one HubSpot
//! called with a fixed set of percent-escapes decoded, and
//! `X-HubSpot-Request-Timestamp` is epoch milliseconds. A timestamp more
//! than five minutes away from our clock, either way, is refused, so a
//! captured request cannot be replayed. The v1/v2 schemes have no replay
//! protection and are not accepted. Pure: the clock comes with the request.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::Mac;

use crate::crm::inbound::Request;
use crate::keyed_hash::{keyed, HmacSha256};

pub const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
/// How far the signed timestamp may be from our clock, either way.
const WINDOW_MILLIS: i64 = 300_000;

/// The escapes HubSpot decodes before signing; every other one stays as sent.
const DECODED: &[(&str, char)] = &[
    ("%3A", ':'),
    ("%2F", '/'),
    ("%3F", '?'),
    ("%40", '@'),
    ("%21", '!'),
    ("%24", '$'),
    ("%27", '\''),
    ("%28", '('),
    ("%29", ')'),
    ("%2A", '*'),
    ("%2C", ','),
    ("%3B", ';'),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp header is missing")]
    Missing,
    #[error("X-HubSpot-Request-Timestamp must be epoch milliseconds")]
    BadTimestamp,
    #[error("the HubSpot request timestamp is more than five minutes away from the server's clock")]
    Stale,
    #[error("the HubSpot signature does not match the request")]
    Mismatch,
}

/// The URL as HubSpot signs it: the listed escapes decoded, in one pass
/// (so a decoded `%` never starts a new escape).
fn signed_uri(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(at) = rest.find('%') {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        match DECODED.iter().find(|(escape, _)| from.starts_with(escape)) {
            Some((escape, plain)) => {
                out.push(*plain);
                rest = from.get(escape.len()..).unwrap_or_default();
            }
            None => {
                out.push('%');
                rest = from.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

fn mac(secret: &str, method: &str, url: &str, body: &[u8], timestamp: &str) -> HmacSha256 {
    let uri = signed_uri(url);
    keyed(secret.as_bytes(), &[method.as_bytes(), uri.as_bytes(), body, timestamp.as_bytes()])
}

/// The `X-HubSpot-Signature-v3` value HubSpot sends for this request.
pub fn sign(secret: &str, method: &str, url: &str, body: &[u8], timestamp: &str) -> String {
    STANDARD.encode(mac(secret, method, url, body, timestamp).finalize().into_bytes())
}

pub fn verify(secret: &str, request: &Request<'_>) -> Result<(), SignatureError> {
    let (Some(signature), Some(timestamp)) = (request.header(SIGNATURE_HEADER), request.header(TIMESTAMP_HEADER))
    else {
        return Err(SignatureError::Missing);
    };
    let timestamp = timestamp.trim();
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    let millis: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if request.now.timestamp_millis().abs_diff(millis) > WINDOW_MILLIS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let presented = STANDARD.decode(signature.trim()).map_err(|_| SignatureError::Mismatch)?;
    mac(secret, &request.method.to_ascii_uppercase(), request.url, request.body, timestamp)
        .verify_slice(&presented)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};
    use chrono::{DateTime, TimeDelta, Utc};
    use proptest::prelude::*;

    const SECRET: &str = "scorehook-demo-client-secret";
    const URL: &str = "https://scorehook.example.com/v1/webhooks/hubspot/t_acme";
    const BODY: &[u8] = include_bytes!("../../../tests/fixtures/crm/hubspot/contact_creation_docs.json");
    const SIGNED_AT: i64 = 1_764_079_200_000;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(millis).unwrap()
    }

    fn headers(signature: Option<&str>, timestamp: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(s) = signature {
            headers.insert("X-HubSpot-Signature-v3", HeaderValue::from_str(s).unwrap());
        }
        if let Some(t) = timestamp {
            headers.insert("X-HubSpot-Request-Timestamp", HeaderValue::from_str(t).unwrap());
        }
        headers
    }

    fn check(url: &str, headers: &HeaderMap, now: DateTime<Utc>) -> Result<(), SignatureError> {
        verify(SECRET, &Request { method: "POST", url, headers, body: BODY, now })
    }

    #[test]
    fn the_worked_examples_of_the_research_notes_are_reproduced() {
        assert_eq!(BODY.len(), 207);
        assert_eq!(sign(SECRET, "POST", URL, BODY, "1764079200000"), "gQ1h1cII/tWaIhWAdR99v/BvlTMhCI4gNdtjsCjECCw=");
        assert_eq!(sign(SECRET, "POST", URL, BODY, "1764079200001"), "640PkP3+UoO0Qt9S+nWcJUkUWnHbcag6k+C+DVjjSgU=");
        let escaped = format!("{URL}?src=hub%3Aspot%40eu");
        assert_eq!(
            sign(SECRET, "POST", &escaped, BODY, "1764079200000"),
            "s3xcZXlG6+Oy36etXsJZrBNWjzUoZsnzbOrL/lYWAXE="
        );
    }

    #[test]
    fn a_correct_signature_verifies_within_the_window() {
        let good = headers(Some("gQ1h1cII/tWaIhWAdR99v/BvlTMhCI4gNdtjsCjECCw="), Some("1764079200000"));
        assert_eq!(check(URL, &good, at(SIGNED_AT)), Ok(()));
        assert_eq!(check(URL, &good, at(SIGNED_AT + 299_000)), Ok(()));
        assert_eq!(check(URL, &good, at(SIGNED_AT - 299_000)), Ok(()), "a slightly fast HubSpot clock is fine");
    }

    #[test]
    fn the_url_is_verified_with_the_listed_escapes_decoded() {
        let escaped = format!("{URL}?src=hub%3Aspot%40eu");
        let decoded = headers(Some("s3xcZXlG6+Oy36etXsJZrBNWjzUoZsnzbOrL/lYWAXE="), Some("1764079200000"));
        assert_eq!(check(&escaped, &decoded, at(SIGNED_AT)), Ok(()));
        let undecoded = headers(Some("Xdx3pKWlpKsbljm+9lwngm4zsCE4beIa16s5vwW2XqA="), Some("1764079200000"));
        assert_eq!(check(&escaped, &undecoded, at(SIGNED_AT)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn only_the_listed_escapes_are_decoded_and_only_once() {
        assert_eq!(signed_uri("/a%3A%2f%25%3A%20?x=%2C%3b"), "/a:%2f%25:%20?x=,%3b");
        assert_eq!(signed_uri("%253A"), "%253A");
        assert_eq!(signed_uri("trailing%"), "trailing%");
        assert_eq!(signed_uri("%3"), "%3");
    }

    #[test]
    fn wrong_stale_future_and_missing_signatures_are_refused() {
        let now = at(SIGNED_AT);
        let other_timestamp = headers(Some("640PkP3+UoO0Qt9S+nWcJUkUWnHbcag6k+C+DVjjSgU="), Some("1764079200000"));
        assert_eq!(check(URL, &other_timestamp, now), Err(SignatureError::Mismatch));
        let good = headers(Some("gQ1h1cII/tWaIhWAdR99v/BvlTMhCI4gNdtjsCjECCw="), Some("1764079200000"));
        assert_eq!(check(&format!("{URL}x"), &good, now), Err(SignatureError::Mismatch), "another URL");
        let request = Request { method: "POST", url: URL, headers: &good, body: b"[]", now };
        assert_eq!(verify(SECRET, &request), Err(SignatureError::Mismatch), "another body");
        let request = Request { method: "POST", url: URL, headers: &good, body: BODY, now };
        assert_eq!(verify("other-secret", &request), Err(SignatureError::Mismatch), "another secret");
        let stale = now + TimeDelta::milliseconds(300_001);
        assert_eq!(check(URL, &good, stale), Err(SignatureError::Stale));
        let early = now - TimeDelta::milliseconds(300_001);
        assert_eq!(check(URL, &good, early), Err(SignatureError::Stale), "far-future timestamps too");
        assert_eq!(check(URL, &headers(None, Some("1764079200000")), now), Err(SignatureError::Missing));
        assert_eq!(check(URL, &headers(Some("gQ1h"), None), now), Err(SignatureError::Missing));
        let seconds = headers(Some("gQ1h1cII/tWaIhWAdR99v/BvlTMhCI4gNdtjsCjECCw="), Some("1764079200.0"));
        assert_eq!(check(URL, &seconds, now), Err(SignatureError::BadTimestamp));
        let not_base64 = headers(Some("not base64!"), Some("1764079200000"));
        assert_eq!(check(URL, &not_base64, now), Err(SignatureError::Mismatch));
    }

    proptest! {
        #[test]
        fn no_header_value_or_url_makes_verify_panic(
            signature in proptest::collection::vec(any::<u8>(), 0..80),
            timestamp in proptest::collection::vec(any::<u8>(), 0..30),
            url in ".{0,80}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(&signature) {
                headers.insert(SIGNATURE_HEADER, value);
            }
            if let Ok(value) = HeaderValue::from_bytes(&timestamp) {
                headers.insert(TIMESTAMP_HEADER, value);
            }
            let request = Request { method: "POST", url: &url, headers: &headers, body: &body, now: at(SIGNED_AT) };
            let _ = verify(SECRET, &request);
        }
    }
}
