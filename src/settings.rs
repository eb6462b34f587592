//! Every setting scorehook takes from its environment, in one place: read
//! once when a process starts (`scorehook` through its command line, which
//! shows each one in `--help`; the Lambda functions through
//! [`Settings::from_env`]), and checked at once, so an invalid value stops
//! the process with a message naming the variable. Nothing else in the
//! crate reads the environment (`tests/it/settings.rs` scans for it).
//!
//! Values are kept as given; the typed accessors parse them with the rules
//! (ranges, defaults) of the module each belongs to. docs/settings.md is the
//! table of them all.

use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use clap::Parser;

use crate::crm::egress::Egress;
use crate::http::extract::{body_read_timeout, InvalidBodyReadTimeout};
use crate::http::inbound_limit::{InboundLimit, InvalidInboundRate};
use crate::outbox::alerts::Alerts;
use crate::outbox::retry::{InvalidPolicy, RetryPolicy, FIRST_DELAY_VAR, MAX_ATTEMPTS_VAR};
use crate::store::dynamodb::history_retention;
use crate::tenant::Secret;

/// The settings of every process. Each is a flag of `scorehook` too
/// (`--admin-token`, …), but is meant to be set in the environment.
#[derive(Clone, Default, clap::Args)]
pub struct Settings {
    /// The operator token: every route of every tenant; at least 32 characters. Unset: tenant tokens only.
    #[arg(long, global = true, env = "SCOREHOOK_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Lambda: the SSM SecureString holding the operator token, when SCOREHOOK_ADMIN_TOKEN is unset.
    #[arg(long, global = true, env = "SCOREHOOK_ADMIN_TOKEN_PARAMETER", value_name = "NAME", hide = true)]
    pub admin_token_parameter: Option<String>,
    /// `1`/`true`: outbound calls may reach plain http and private addresses (local development and tests only).
    #[arg(long, global = true, env = "SCOREHOOK_ALLOW_PRIVATE_TARGETS", value_name = "BOOL")]
    pub allow_private_targets: Option<String>,
    /// Authentic webhook requests per tenant and second, per process (1-100000; burst ten seconds' worth) [default: 100].
    #[arg(long, global = true, env = "SCOREHOOK_INBOUND_PER_SECOND", value_name = "N")]
    pub inbound_per_second: Option<String>,
    /// How long reading one request's body may take, in seconds (1-300) [default: 15].
    #[arg(long, global = true, env = "SCOREHOOK_BODY_READ_TIMEOUT_SECS", value_name = "SECS")]
    pub body_read_timeout_secs: Option<String>,
    /// The first retry delay of a failed action, in milliseconds (100-3600000) [default: 1000].
    #[arg(long, global = true, env = "SCOREHOOK_RETRY_FIRST_MS", value_name = "MS")]
    pub retry_first_ms: Option<String>,
    /// Attempts an action gets before it is dead (1-50) [default: 15].
    #[arg(long, global = true, env = "SCOREHOOK_MAX_ATTEMPTS", value_name = "N")]
    pub max_attempts: Option<String>,
    /// The base URL CRMs call (HubSpot signs the full URL): set it behind a custom domain or proxy.
    #[arg(long, global = true, env = "SCOREHOOK_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Where dead actions and refused CRM credentials are reported (a signed notice, once per tenant, cause, hour).
    #[arg(long, global = true, env = "SCOREHOOK_ALERT_URL", value_name = "URL")]
    pub alert_url: Option<String>,
    /// The whsec_ secret that signs the alert notices (required with SCOREHOOK_ALERT_URL).
    #[arg(long, global = true, env = "SCOREHOOK_ALERT_SECRET", hide_env_values = true, value_name = "SECRET")]
    pub alert_secret: Option<String>,
    /// Lambda: the SSM SecureString holding the alert secret, when SCOREHOOK_ALERT_SECRET is unset.
    #[arg(long, global = true, env = "SCOREHOOK_ALERT_SECRET_PARAMETER", value_name = "NAME", hide = true)]
    pub alert_secret_parameter: Option<String>,
    /// `json`: log lines as JSON (stderr) [default: text].
    #[arg(long, global = true, env = "SCOREHOOK_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// The log filter, e.g. `info` or `scorehook=debug` [default: info].
    #[arg(long, global = true, env = "RUST_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// DynamoDB: the table's name (required with --store dynamodb and on Lambda).
    #[arg(long, global = true, env = "SCOREHOOK_TABLE", value_name = "NAME")]
    pub table: Option<String>,
    /// DynamoDB: a local endpoint (moto, DynamoDB Local); the table is created there if missing.
    #[arg(long, global = true, env = "DYNAMODB_ENDPOINT", value_name = "URL")]
    pub dynamodb_endpoint: Option<String>,
    /// DynamoDB: days dedupe markers and history are kept (1-3650) [default: 90].
    #[arg(long, global = true, env = "SCOREHOOK_HISTORY_DAYS", value_name = "DAYS")]
    pub history_days: Option<String>,
    /// DynamoDB: the KMS key tenant secrets are sealed under (its data key is kept wrapped in the table).
    #[arg(long, global = true, env = "SCOREHOOK_KMS_KEY_ID", value_name = "KEY")]
    pub kms_key_id: Option<String>,
    /// DynamoDB without KMS: a 32-byte key file that seals tenant secrets (made 0600 if missing).
    #[arg(long, global = true, env = "SCOREHOOK_SECRETS_KEY_FILE", value_name = "PATH")]
    pub secrets_key_file: Option<PathBuf>,
}

/// Everything but the secrets, which print as `***`.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |value: &Option<String>| value.as_ref().map(|_| "***");
        f.debug_struct("Settings")
            .field("admin_token", &secret(&self.admin_token))
            .field("alert_secret", &secret(&self.alert_secret))
            .field("admin_token_parameter", &self.admin_token_parameter)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("public_url", &self.public_url)
            .field("alert_url", &self.alert_url.as_deref().map(crate::crm::egress::redact_query))
            .field("table", &self.table)
            .field("dynamodb_endpoint", &self.dynamodb_endpoint)
            .finish_non_exhaustive()
    }
}

/// The settings alone, for processes without a command line (Lambda).
#[derive(Parser)]
struct Environment {
    #[command(flatten)]
    settings: Settings,
}

/// A set value: empty counts as unset.
fn given(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

impl Settings {
    /// The settings from the environment alone, checked.
    pub fn from_env() -> Result<Self, String> {
        let settings = Environment::try_parse_from(["scorehook"]).map_err(|e| e.to_string())?.settings;
        settings.check()?;
        Ok(settings)
    }

    /// Parses every value once, so an invalid one stops the process at start, named.
    pub fn check(&self) -> Result<(), String> {
        self.egress()?;
        self.inbound_limit().map_err(|e| e.to_string())?;
        self.body_read_timeout().map_err(|e| e.to_string())?;
        self.retry().map_err(|e| e.to_string())?;
        // A secret still to be read from SSM (Lambda) is checked once it is.
        if given(&self.alert_secret).is_some() || self.alert_secret_parameter().is_none() {
            self.alerts(Egress::ALLOW_PRIVATE)?;
        }
        self.history_retention()?;
        self.admin_token()?;
        match given(&self.log_format).as_deref() {
            None | Some("json" | "JSON" | "text") => Ok(()),
            Some(other) => Err(format!("SCOREHOOK_LOG_FORMAT must be json or text, not {other:?}")),
        }
    }

    /// What outbound calls may reach (`SCOREHOOK_ALLOW_PRIVATE_TARGETS`).
    pub fn egress(&self) -> Result<Egress, String> {
        Egress::parse(given(&self.allow_private_targets).as_deref())
    }

    pub fn inbound_limit(&self) -> Result<InboundLimit, InvalidInboundRate> {
        InboundLimit::parse(given(&self.inbound_per_second))
    }

    pub fn body_read_timeout(&self) -> Result<Duration, InvalidBodyReadTimeout> {
        body_read_timeout(given(&self.body_read_timeout_secs))
    }

    pub fn retry(&self) -> Result<RetryPolicy, InvalidPolicy> {
        RetryPolicy::from_vars(|var| match var {
            FIRST_DELAY_VAR => given(&self.retry_first_ms),
            MAX_ATTEMPTS_VAR => given(&self.max_attempts),
            _ => None,
        })
    }

    /// Operator alerts, if `SCOREHOOK_ALERT_URL` is set (its URL held to `egress`).
    pub fn alerts(&self, egress: Egress) -> Result<Option<Alerts>, String> {
        Alerts::configure(given(&self.alert_url), given(&self.alert_secret), egress)
    }

    /// `SCOREHOOK_HISTORY_DAYS`, when set.
    pub fn history_retention(&self) -> Result<Option<TimeDelta>, String> {
        given(&self.history_days).map(|days| history_retention(&days)).transpose()
    }

    /// The operator token, if set: at least 32 characters, or an error naming the variable.
    pub fn admin_token(&self) -> Result<Option<Secret>, String> {
        given(&self.admin_token).map(|t| crate::service::operator_token(&t, "SCOREHOOK_ADMIN_TOKEN")).transpose()
    }

    pub fn admin_token_parameter(&self) -> Option<String> {
        given(&self.admin_token_parameter)
    }

    /// The SSM parameter holding the alert secret, if the secret itself is not set.
    pub fn alert_secret_parameter(&self) -> Option<String> {
        given(&self.alert_secret_parameter).filter(|_| given(&self.alert_secret).is_none())
    }

    /// The public base URL, without a trailing `/`.
    pub fn public_url(&self) -> Option<String> {
        given(&self.public_url).map(|url| url.trim_end_matches('/').to_owned())
    }

    pub fn log_json(&self) -> bool {
        given(&self.log_format).is_some_and(|f| f.eq_ignore_ascii_case("json"))
    }

    pub fn log_filter(&self) -> String {
        given(&self.log).unwrap_or_else(|| "info".to_owned())
    }

    pub fn table(&self) -> Option<String> {
        given(&self.table)
    }

    pub fn dynamodb_endpoint(&self) -> Option<String> {
        given(&self.dynamodb_endpoint)
    }

    pub fn kms_key_id(&self) -> Option<String> {
        given(&self.kms_key_id)
    }

    pub fn secrets_key_file(&self) -> Option<PathBuf> {
        self.secrets_key_file.clone().filter(|p| !p.as_os_str().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_bad_value_is_named() {
        assert_eq!(Settings::default().check(), Ok(()));
        type Set = fn(&mut Settings, String);
        let cases: [(Set, &str); 7] = [
            (|s, v| s.allow_private_targets = Some(v), "SCOREHOOK_ALLOW_PRIVATE_TARGETS"),
            (|s, v| s.inbound_per_second = Some(v), "SCOREHOOK_INBOUND_PER_SECOND"),
            (|s, v| s.body_read_timeout_secs = Some(v), "SCOREHOOK_BODY_READ_TIMEOUT_SECS"),
            (|s, v| s.retry_first_ms = Some(v), "SCOREHOOK_RETRY_FIRST_MS"),
            (|s, v| s.max_attempts = Some(v), "SCOREHOOK_MAX_ATTEMPTS"),
            (|s, v| s.history_days = Some(v), "SCOREHOOK_HISTORY_DAYS"),
            (|s, v| s.admin_token = Some(v), "SCOREHOOK_ADMIN_TOKEN"),
        ];
        for (set, name) in cases {
            let mut settings = Settings::default();
            set(&mut settings, "0x".to_owned());
            let refused = settings.check().unwrap_err();
            assert!(refused.contains(name), "{name}: {refused}");
        }
        let alert = Settings { alert_url: Some("https://alerts.example.com".into()), ..Settings::default() };
        assert!(alert.check().unwrap_err().contains("SCOREHOOK_ALERT_SECRET"));
        let format = Settings { log_format: Some("xml".into()), ..Settings::default() };
        assert!(format.check().unwrap_err().contains("SCOREHOOK_LOG_FORMAT"));
    }

    #[test]
    fn an_alert_secret_in_ssm_is_checked_once_read() {
        let pending = Settings {
            alert_url: Some("https://alerts.example.com".into()),
            alert_secret_parameter: Some("/scorehook/alert-secret".into()),
            ..Settings::default()
        };
        assert_eq!(pending.check(), Ok(()), "the secret is read from SSM later");
        assert_eq!(pending.alert_secret_parameter().as_deref(), Some("/scorehook/alert-secret"));
        let given = Settings { alert_secret: Some("short".into()), ..pending };
        assert_eq!(given.alert_secret_parameter(), None, "a secret given outright wins");
        assert!(given.check().unwrap_err().contains("SCOREHOOK_ALERT_SECRET"));
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let settings = Settings {
            admin_token: Some("operator-token-0123456789abcdef0123".into()),
            alert_secret: Some("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0".into()),
            ..Settings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("operator-token") && !printed.contains("whsec_"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let settings = Settings {
            public_url: Some("https://hooks.example.com/".into()),
            table: Some(" ".into()),
            ..Settings::default()
        };
        assert_eq!(settings.public_url().as_deref(), Some("https://hooks.example.com"));
        assert_eq!(settings.table(), None);
        assert_eq!(settings.log_filter(), "info");
    }
}
