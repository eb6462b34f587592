//! Pipedrive's only authenticity check: the HTTP Basic user name and
//! password the admin typed into the webhook form, sent on every delivery.
//!
//! There is no signature and no timestamp, so there is nothing to be stale;
//! replays are absorbed by the idempotency keys. The user name is the
//! tenant's `webhook_user` setting, the password its `webhook_secret`; both
//! are compared in constant time, and both are always compared.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::keys;
use crate::crm::inbound::{secret_matches, InboundError, Request};
use crate::tenant::TenantRecord;

/// The same answer for every failure, so a caller learns nothing about which half was wrong.
const REFUSED: &str = "the webhook's HTTP Basic credentials are missing or wrong";

/// Checks the webhook's HTTP Basic credentials.
pub fn verify(tenant: &TenantRecord, request: &Request<'_>) -> Result<(), InboundError> {
    let expected_user = tenant.crm.get(keys::WEBHOOK_USER).and_then(|v| v.as_str()).unwrap_or_default();
    if expected_user.is_empty() {
        return Err(InboundError::Refused(format!(
            "the tenant has no crm.{} setting: set the webhook's HTTP Basic user name there",
            keys::WEBHOOK_USER
        )));
    }
    let (user, password) =
        request.header("authorization").and_then(credentials).ok_or_else(|| InboundError::Refused(REFUSED.into()))?;
    // `&`, not `&&`: both halves are compared whatever the first one says.
    let user_ok = secret_matches(&user, expected_user);
    let password_ok = secret_matches(&password, tenant.webhook_secret.expose());
    if user_ok & password_ok {
        Ok(())
    } else {
        Err(InboundError::Refused(REFUSED.into()))
    }
}

/// User name and password of an `Authorization: Basic …` value; the
/// password is everything after the first colon (it may contain colons).
fn credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::pipedrive::inbound::tests::{request, tenant};
    use axum::http::HeaderMap;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", value.parse().unwrap());
        headers
    }

    /// pipedrive.md §1.5: user `scorehook`, password `pd-hook-pass-42`.
    const WORKED_EXAMPLE: &str = "Basic c2NvcmVob29rOnBkLWhvb2stcGFzcy00Mg==";

    #[test]
    fn the_worked_example_verifies() {
        let tenant = tenant("pd-hook-pass-42", serde_json::json!({"webhook_user": "scorehook"}));
        let headers = with_auth(WORKED_EXAMPLE);
        assert_eq!(verify(&tenant, &request(&headers, b"{}")), Ok(()));
        // The scheme name is case-insensitive (RFC 7617).
        let headers = with_auth("basic c2NvcmVob29rOnBkLWhvb2stcGFzcy00Mg==");
        assert_eq!(verify(&tenant, &request(&headers, b"{}")), Ok(()));
    }

    #[test]
    fn a_password_with_colons_splits_on_the_first_one() {
        let tenant = tenant("a:b:c", serde_json::json!({"webhook_user": "scorehook"}));
        let headers = with_auth(&format!("Basic {}", STANDARD.encode("scorehook:a:b:c")));
        assert_eq!(verify(&tenant, &request(&headers, b"{}")), Ok(()));
    }

    #[test]
    fn wrong_missing_or_malformed_credentials_are_refused() {
        let tenant = tenant("pd-hook-pass-42", serde_json::json!({"webhook_user": "scorehook"}));
        let cases: &[(&str, Option<String>)] = &[
            ("wrong password", Some(format!("Basic {}", STANDARD.encode("scorehook:pd-hook-pass-43")))),
            ("wrong user", Some(format!("Basic {}", STANDARD.encode("scorehooks:pd-hook-pass-42")))),
            ("no colon", Some(format!("Basic {}", STANDARD.encode("scorehookpd-hook-pass-42")))),
            ("empty credentials", Some(format!("Basic {}", STANDARD.encode(":")))),
            ("bearer, not basic", Some("Bearer c2NvcmVob29rOnBkLWhvb2stcGFzcy00Mg==".into())),
            ("not base64", Some("Basic !!!".into())),
            ("no header", None),
        ];
        for (why, value) in cases {
            let headers = value.as_deref().map(with_auth).unwrap_or_default();
            assert!(
                matches!(verify(&tenant, &request(&headers, b"{}")), Err(InboundError::Refused(_))),
                "{why} must be refused"
            );
        }
    }

    #[test]
    fn a_tenant_without_a_webhook_user_refuses_everything() {
        let tenant = tenant("pd-hook-pass-42", serde_json::json!({}));
        let headers = with_auth(WORKED_EXAMPLE);
        let refused = verify(&tenant, &request(&headers, b"{}"));
        assert!(matches!(&refused, Err(InboundError::Refused(m)) if m.contains("webhook_user")), "{refused:?}");
    }
}
