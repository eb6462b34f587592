//! AWS Lambda entry points, thin: each turns its event into a call of the
//! same service, store and outbox code that `scorehook serve` runs.
//!
//! - `http`: Function URL / HttpApi requests, through the one router.
//! - `executor`: DynamoDB Stream batches; delivers newly queued actions.
//! - `sweeper`: the EventBridge schedule; delivers what is due (retries,
//!   anything the stream missed) until drained or the time is nearly up.
//!
//! Init does only what every invocation needs: the AWS configuration and
//! SDK clients. Anything that costs a call (the operator token) is fetched
//! on first use.
//!
//! Each invocation ends by writing what it measured to stdout as CloudWatch
//! EMF lines (`measured`), which CloudWatch Logs turns into metrics.

pub mod executor;
pub mod http;
pub mod sweeper;

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use crate::settings::Settings;
use crate::store::dynamodb::{data_key, DynamoStore};

pub type Error = lambda_http::Error;

/// Makes every function's metrics CloudWatch EMF lines (`crate::metrics::emf`).
pub fn init_metrics() {
    if !crate::metrics::install_emf() {
        tracing::warn!("another metrics exporter is installed: this function writes no EMF lines");
    }
}

/// Runs one invocation's work, then writes what it measured to `out` (the
/// function's stdout, so its log) as EMF lines: each invocation reports its
/// own, and a frozen or ended instance has nothing unreported.
pub async fn measured<T>(out: &mut (impl Write + Send), work: impl Future<Output = T>) -> T {
    let value = work.await;
    crate::metrics::emf::flush(out, SystemTime::now());
    value
}

/// What the delivering functions (executor, sweeper) start from: their
/// settings read and checked (an invalid one stops the cold start), logs
/// and metrics on, the clients, and the deliverer with its retry schedule
/// and operator alerts.
pub async fn delivering() -> Result<(Clients, crate::crm::Deliverer), Error> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(&settings);
    init_metrics();
    let clients = clients(&settings).await?;
    let egress = settings.egress()?;
    let alerts = alerts(&settings, &clients.aws, egress).await?;
    let deliverer = crate::crm::Deliverer::new(egress)?.with_retry(settings.retry()?).with_alerts(alerts);
    Ok((clients, deliverer))
}

/// The operator alerts of a delivering function: the alert secret read from
/// SSM when the settings name a parameter for it (once, at the cold start).
async fn alerts(
    settings: &Settings,
    aws: &aws_config::SdkConfig,
    egress: crate::crm::egress::Egress,
) -> Result<Option<crate::outbox::alerts::Alerts>, Error> {
    let Some(name) = settings.alert_secret_parameter() else { return Ok(settings.alerts(egress)?) };
    let ssm = aws_sdk_ssm::Client::new(aws);
    let out = ssm.get_parameter().name(&name).with_decryption(true).send().await?;
    let secret = out.parameter().and_then(|p| p.value()).map(str::to_owned);
    let resolved = Settings { alert_secret: secret, ..settings.clone() };
    Ok(resolved.alerts(egress).map_err(|e| format!("{e} (the SSM parameter {name})"))?)
}

/// The clients every function builds at init.
pub struct Clients {
    pub aws: aws_config::SdkConfig,
    pub store: Arc<DynamoStore>,
}

/// Reads `SCOREHOOK_TABLE`, `SCOREHOOK_HISTORY_DAYS`, `SCOREHOOK_KMS_KEY_ID`
/// (or `SCOREHOOK_SECRETS_KEY_FILE`) and the AWS environment Lambda provides.
/// With `DYNAMODB_ENDPOINT` set (`sam local invoke` with `env.json`,
/// `cargo lambda watch`), the store talks to that local DynamoDB instead and
/// creates the table there if it is missing, as `scorehook serve` does;
/// deployed, the template leaves it empty.
pub async fn clients(settings: &Settings) -> Result<Clients, Error> {
    let table = settings.table().ok_or("SCOREHOOK_TABLE is not set")?;
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let endpoint = settings.dynamodb_endpoint();
    let store = match &endpoint {
        Some(endpoint) => {
            let store = DynamoStore::connect(table.clone(), Some(endpoint)).await;
            if store.ensure_table().await? {
                tracing::info!(%table, %endpoint, "created the DynamoDB table on the local endpoint");
            }
            store
        }
        None => DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table),
    };
    // Tenant secrets are sealed with KMS's data key (or a local key file).
    let sealer = data_key::configured_sealer(&store, &aws, settings, None).await?;
    let store = Arc::new(store.with_history_retention_if(settings.history_retention()?).with_sealer(sealer));
    Ok(Clients { aws, store })
}
