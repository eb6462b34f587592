//! Operator alerts, pushed rather than polled: when an action goes dead, or
//! a CRM answers 401/403 (the tenant's credentials were revoked), a signed
//! notice is POSTed to the operator's alert URL. At most one per tenant,
//! cause and hour, across every process: the notice is sent only by the
//! process that claims that hour in the store (`Store::claim`).
//!
//! The notice is signed by Standard Webhooks with the operator's own alert
//! secret (`SCOREHOOK_ALERT_SECRET`), and goes through the same outbound
//! policy as every call. Sending it never fails the delivery it reports on:
//! a notice that cannot be sent is logged.

use chrono::TimeDelta;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use super::{ActionStatus, Attempt, OutboxItem};
use crate::crm::egress::Egress;
use crate::crm::standard_webhooks;
use crate::store::Store;

pub const URL_VAR: &str = "SCOREHOOK_ALERT_URL";
pub const SECRET_VAR: &str = "SCOREHOOK_ALERT_SECRET";

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// An action is out of attempts (or refused for good): it needs a replay.
    DeadAction,
    /// The CRM answered 401 or 403: the tenant's credentials no longer work.
    CredentialsRefused,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::DeadAction => "action.dead",
            Cause::CredentialsRefused => "crm.credentials_refused",
        }
    }

    /// What an attempt is an alert of, if anything (a refusal of the
    /// credentials first: it is the cause to fix).
    pub fn of(attempt: &Attempt) -> Option<Self> {
        match (attempt.http_status, attempt.status) {
            (Some(401 | 403), _) => Some(Cause::CredentialsRefused),
            (_, ActionStatus::Dead) => Some(Cause::DeadAction),
            _ => None,
        }
    }
}

/// Where alerts go and what signs them.
#[derive(Clone)]
pub struct Alerts {
    url: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").field("url", &crate::crm::egress::redact_query(&self.url)).finish_non_exhaustive()
    }
}

impl Alerts {
    /// Alerts to `url` signed with `secret` (`whsec_…`); the URL must pass
    /// the outbound policy. A message naming the variable when not.
    pub fn new(url: &str, secret: &str, egress: Egress) -> Result<Self, String> {
        egress.check(url).map_err(|refused| format!("{URL_VAR} is refused by the outbound policy: {refused}"))?;
        let key = standard_webhooks::key_of(secret).ok_or_else(|| {
            format!("{SECRET_VAR} must be a Standard Webhooks secret: whsec_ and the base64 of 24 to 64 random bytes")
        })?;
        Ok(Self { url: url.to_owned(), key })
    }

    /// From `SCOREHOOK_ALERT_URL` and `SCOREHOOK_ALERT_SECRET`: none without a
    /// URL; a URL without a valid secret stops the process.
    pub fn configure(url: Option<String>, secret: Option<String>, egress: Egress) -> Result<Option<Self>, String> {
        let Some(url) = url else { return Ok(None) };
        let secret = secret.ok_or_else(|| format!("{URL_VAR} is set, so {SECRET_VAR} must be too"))?;
        Self::new(url.trim(), secret.trim(), egress).map(Some)
    }

    /// Sends the notice `attempt` calls for, unless this tenant's notice of
    /// that cause was already sent this hour (by any process). The hour is
    /// claimed before the notice is sent, so there is never a second one;
    /// a notice that then fails is logged, and not sent again that hour.
    /// `item` is the action as saved: an attempt recorded onto a copy
    /// changed meanwhile (a replay) does not report it dead.
    pub async fn after(&self, store: &dyn Store, http: &reqwest::Client, item: &OutboxItem, attempt: &Attempt) {
        let Some(cause) = Cause::of(attempt) else { return };
        if cause == Cause::DeadAction && item.status != ActionStatus::Dead {
            return;
        }
        let hour = attempt.at.timestamp().div_euclid(3600);
        let claim = format!("alert\u{1f}{}\u{1f}{}\u{1f}{hour}", item.tenant, cause.as_str());
        let until = attempt.at + TimeDelta::hours(2);
        match store.claim(&claim, until).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(tenant = %item.tenant, cause = cause.as_str(), %error, "cannot claim the alert's hour");
                return;
            }
        }
        let id = format!("alert_{}_{}_{hour}", item.tenant, cause.as_str().replace('.', "_"));
        if let Err(error) = self.send(http, &id, cause, item, attempt).await {
            tracing::warn!(tenant = %item.tenant, cause = cause.as_str(), %error, "the operator alert was not sent");
        } else {
            tracing::info!(tenant = %item.tenant, cause = cause.as_str(), "operator alerted");
        }
    }

    async fn send(
        &self,
        http: &reqwest::Client,
        id: &str,
        cause: Cause,
        item: &OutboxItem,
        attempt: &Attempt,
    ) -> Result<(), String> {
        let notice = json!({
            "type": cause.as_str(),
            "tenant": item.tenant,
            "action_id": item.action.id,
            "action_type": item.action.kind,
            "status": attempt.status,
            "http_status": attempt.http_status,
            "error": attempt.error,
            "at": attempt.at,
            "note": "at most one notice per tenant, cause and hour; GET /v1/tenants/{tenant}/actions?status=dead lists them all",
        });
        let body = serde_json::to_vec(&notice).map_err(|e| e.to_string())?;
        let mut request = http.post(&self.url).header(CONTENT_TYPE, "application/json");
        for (name, value) in standard_webhooks::sign(std::slice::from_ref(&self.key), id, attempt.at, &body) {
            request = request.header(name, value);
        }
        let answer = request.body(body).send().await.map_err(|e| e.without_url().to_string())?;
        match answer.status().is_success() {
            true => Ok(()),
            false => Err(format!("the alert URL answered {}", answer.status())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn attempt(status: ActionStatus, http_status: Option<u16>) -> Attempt {
        Attempt { at: Utc::now(), status, http_status, error: None }
    }

    #[test]
    fn dead_actions_and_refused_credentials_are_alerts_and_nothing_else_is() {
        assert_eq!(Cause::of(&attempt(ActionStatus::Dead, Some(400))), Some(Cause::DeadAction));
        assert_eq!(Cause::of(&attempt(ActionStatus::Dead, None)), Some(Cause::DeadAction));
        assert_eq!(Cause::of(&attempt(ActionStatus::Failed, Some(401))), Some(Cause::CredentialsRefused));
        assert_eq!(Cause::of(&attempt(ActionStatus::Dead, Some(403))), Some(Cause::CredentialsRefused));
        assert_eq!(Cause::of(&attempt(ActionStatus::Failed, Some(503))), None);
        assert_eq!(Cause::of(&attempt(ActionStatus::Done, Some(200))), None);
    }

    #[test]
    fn a_url_without_a_valid_secret_or_past_the_policy_is_refused() {
        let secret = standard_webhooks::new_secret().unwrap();
        assert!(Alerts::new("https://alerts.example.com/hook", &secret, Egress::PUBLIC_ONLY).is_ok());
        let refused = Alerts::new("https://alerts.example.com/hook", "short", Egress::PUBLIC_ONLY).unwrap_err();
        assert!(refused.contains(SECRET_VAR), "{refused}");
        let private = Alerts::new("http://127.0.0.1:9/hook", &secret, Egress::PUBLIC_ONLY).unwrap_err();
        assert!(private.contains(URL_VAR), "{private}");
        assert!(Alerts::new("http://127.0.0.1:9/hook", &secret, Egress::ALLOW_PRIVATE).is_ok());
    }
}
