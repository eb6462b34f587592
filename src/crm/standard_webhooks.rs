//! The Standard Webhooks signature scheme (<https://www.standardwebhooks.com>),
//! which signs every action scorehook sends and which the `generic`
//! provider accepts inbound beside its own `X-Scorehook-*` headers.
//!
//! `webhook-id: <message id>`, `webhook-timestamp: <unix seconds>` and
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`,
//! several signatures separated by spaces while a key changes. A secret is
//! written `whsec_<base64 key>`, the form the standardwebhooks and svix
//! libraries take, so a receiver verifies with them as they are.
//!
//! Outbound, the key is the tenant's own `signing_secret`, never its
//! inbound `webhook_secret`: a request scorehook sent cannot be replayed
//! into scorehook as a webhook.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::Mac;

use super::signature::{any_matches, fresh, SignatureError};
use crate::keyed_hash::{keyed, HmacSha256};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The key lengths the specification allows, in bytes.
pub const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// The length of the keys scorehook makes.
const NEW_KEY_BYTES: usize = 32;

/// The key of a `whsec_<base64>` secret, if it is one of an allowed length.
pub fn key_of(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    KEY_BYTES.contains(&key.len()).then_some(key)
}

/// The key an inbound webhook is checked with: a `whsec_` secret's decoded
/// key, so senders can use the libraries with it; any other secret's bytes.
pub fn inbound_key(secret: &str) -> Vec<u8> {
    key_of(secret).unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// A new `whsec_` secret from the OS's CSPRNG.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut key = [0u8; NEW_KEY_BYTES];
    getrandom::fill(&mut key)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    keyed(key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body])
}

/// The three header values for message `id` with `body`, signed at `now`
/// with each of `keys` (the first the one in force).
pub fn sign(keys: &[Vec<u8>], id: &str, now: DateTime<Utc>, body: &[u8]) -> [(&'static str, String); 3] {
    let timestamp = now.timestamp().to_string();
    let signatures: Vec<String> = keys
        .iter()
        .map(|key| format!("v1,{}", STANDARD.encode(mac(key, id, &timestamp, body).finalize().into_bytes())))
        .collect();
    [(ID_HEADER, id.to_owned()), (TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signatures.join(" "))]
}

/// Checks a request signed with `key`: any one of the `v1,` signatures
/// must match, and the timestamp be within five minutes of `now`.
pub fn verify(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(id), Some(timestamp), Some(signature)) = (id, timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let timestamp = fresh(timestamp, now)?;
    let candidates =
        signature.split(' ').filter_map(|part| part.strip_prefix("v1,")).filter_map(|s| STANDARD.decode(s).ok());
    any_matches(&mac(key, id, timestamp, body), candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn header<'a>(headers: &'a [(&'static str, String); 3], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn check(
        key: &[u8],
        headers: &[(&'static str, String); 3],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let [id, timestamp, signature] = [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER].map(|n| header(headers, n));
        verify(key, id, timestamp, signature, body, now)
    }

    #[test]
    fn matches_the_specifications_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let at = DateTime::from_timestamp(1614265330, 0).unwrap();
        let headers = sign(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", at, br#"{"test": 2432232314}"#);
        assert_eq!(header(&headers, SIGNATURE_HEADER), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }

    #[test]
    fn verifies_what_it_signs_and_nothing_else() {
        let now = Utc::now();
        let key = key_of(&new_secret().unwrap()).unwrap();
        let headers = sign(std::slice::from_ref(&key), "act_1", now, b"{}");
        assert_eq!(check(&key, &headers, b"{}", now), Ok(()));
        assert_eq!(check(&key, &headers, b"{ }", now), Err(SignatureError::Mismatch));
        assert_eq!(check(b"another key of 24 bytes!", &headers, b"{}", now), Err(SignatureError::Mismatch));
        assert_eq!(check(&key, &headers, b"{}", now + TimeDelta::seconds(301)), Err(SignatureError::Stale));
        assert_eq!(verify(&key, None, Some("1"), Some("v1,x"), b"{}", now), Err(SignatureError::Missing));
        assert_eq!(verify(&key, Some("a"), Some("soon"), Some("v1,x"), b"{}", now), Err(SignatureError::BadTimestamp));
    }

    #[test]
    fn any_of_several_keys_verifies_while_a_key_changes() {
        let now = Utc::now();
        let (old, new) = (vec![1u8; 24], vec![2u8; 32]);
        let headers = sign(&[new.clone(), old.clone()], "act_1", now, b"x");
        assert_eq!(header(&headers, SIGNATURE_HEADER).unwrap().split(' ').count(), 2);
        assert_eq!(check(&old, &headers, b"x", now), Ok(()));
        assert_eq!(check(&new, &headers, b"x", now), Ok(()));
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes() {
        let made = new_secret().unwrap();
        assert_eq!(key_of(&made).map(|k| k.len()), Some(NEW_KEY_BYTES));
        assert_ne!(made, new_secret().unwrap());
        assert_eq!(key_of(&format!("whsec_{}", STANDARD.encode([7u8; 23]))), None, "too short");
        assert_eq!(key_of(&format!("whsec_{}", STANDARD.encode([7u8; 65]))), None, "too long");
        assert_eq!(key_of("whsec_not base64!"), None);
        assert_eq!(key_of(&STANDARD.encode([7u8; 32])), None, "the prefix is required");
        assert_eq!(inbound_key("plain-secret-0123456789"), b"plain-secret-0123456789");
        assert_eq!(inbound_key(&made), key_of(&made).unwrap());
    }
}
