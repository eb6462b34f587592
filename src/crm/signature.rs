//! scorehook's own signature scheme, which `generic` webhooks are signed
//! with (beside Standard Webhooks, `standard_webhooks`), and, deprecated,
//! the actions of tenants stored before signing secrets existed.
//!
//! `X-Scorehook-Timestamp: <unix seconds>` and
//! `X-Scorehook-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
//! A timestamp more than five minutes from our clock is refused, so a captured
//! request cannot be replayed later. Comparison is constant-time.

use chrono::{DateTime, Utc};
use hmac::Mac;

use crate::keyed_hash::{keyed, HmacSha256};

pub const TIMESTAMP_HEADER: &str = "x-scorehook-timestamp";
pub const SIGNATURE_HEADER: &str = "x-scorehook-signature";
/// How far a signed timestamp may be from our clock, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "a signature header is missing (X-Scorehook-Timestamp and X-Scorehook-Signature, or webhook-id, \
         webhook-timestamp and webhook-signature)"
    )]
    Missing,
    #[error("the signature timestamp must be whole unix seconds")]
    BadTimestamp,
    #[error("the signature timestamp is more than five minutes away from the server's clock")]
    Stale,
    #[error("the signature does not match the body")]
    Mismatch,
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    keyed(secret.as_bytes(), &[timestamp.as_bytes(), b".", body])
}

/// The two header values for `body`, signed at `now`.
pub fn sign(secret: &str, now: DateTime<Utc>, body: &[u8]) -> (String, String) {
    let timestamp = now.timestamp().to_string();
    let signature = format!("v1={}", hex::encode(mac(secret, &timestamp, body).finalize().into_bytes()));
    (timestamp, signature)
}

pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let timestamp = fresh(timestamp, now)?;
    // Several comma-separated signatures may be sent during a secret rotation.
    let candidates =
        signature.split(',').filter_map(|part| part.trim().strip_prefix("v1=")).filter_map(|h| hex::decode(h).ok());
    any_matches(&mac(secret, timestamp, body), candidates)
}

/// A signed timestamp (whole unix seconds), trimmed, if it is within the
/// tolerance of `now`.
pub(crate) fn fresh(timestamp: &str, now: DateTime<Utc>) -> Result<&str, SignatureError> {
    let timestamp = timestamp.trim();
    let seconds: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if now.timestamp().abs_diff(seconds) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(timestamp)
}

/// Whether any of the signatures sent is `expected`, each compared in constant time.
pub(crate) fn any_matches(
    expected: &HmacSha256,
    mut candidates: impl Iterator<Item = Vec<u8>>,
) -> Result<(), SignatureError> {
    match candidates.any(|bytes| expected.clone().verify_slice(&bytes).is_ok()) {
        true => Ok(()),
        false => Err(SignatureError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn verifies_what_it_signs_and_nothing_else() {
        let now = Utc::now();
        let (ts, sig) = sign("s3cret", now, b"{}");
        assert_eq!(verify("s3cret", Some(&ts), Some(&sig), b"{}", now), Ok(()));
        assert_eq!(verify("other", Some(&ts), Some(&sig), b"{}", now), Err(SignatureError::Mismatch));
        assert_eq!(verify("s3cret", Some(&ts), Some(&sig), b"{ }", now), Err(SignatureError::Mismatch));
        assert_eq!(verify("s3cret", None, Some(&sig), b"{}", now), Err(SignatureError::Missing));
        assert_eq!(verify("s3cret", Some("soon"), Some(&sig), b"{}", now), Err(SignatureError::BadTimestamp));
        assert_eq!(verify("s3cret", Some(&ts), Some("v1=zz"), b"{}", now), Err(SignatureError::Mismatch));
        for extreme in ["-9223372036854775808", "9223372036854775807"] {
            assert_eq!(verify("s3cret", Some(extreme), Some(&sig), b"{}", now), Err(SignatureError::Stale));
        }
    }

    #[test]
    fn refuses_timestamps_more_than_five_minutes_off() {
        let now = Utc::now();
        let (ts, sig) = sign("s", now, b"x");
        assert!(verify("s", Some(&ts), Some(&sig), b"x", now + TimeDelta::seconds(299)).is_ok());
        assert_eq!(verify("s", Some(&ts), Some(&sig), b"x", now + TimeDelta::seconds(301)), Err(SignatureError::Stale));
        assert_eq!(verify("s", Some(&ts), Some(&sig), b"x", now - TimeDelta::seconds(301)), Err(SignatureError::Stale));
    }

    #[test]
    fn accepts_any_of_several_signatures() {
        let now = Utc::now();
        let (ts, sig) = sign("new", now, b"x");
        let both = format!("v1=00ff, {sig}");
        assert!(verify("new", Some(&ts), Some(&both), b"x", now).is_ok());
    }
}
