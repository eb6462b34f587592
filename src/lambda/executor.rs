//! The executor function: DynamoDB Stream batches from the table. Each
//! inserted or replayed action (an `ACTION` item whose new image is
//! `pending`) is delivered at once; everything else in the stream is
//! ignored. A record whose delivery could not even be recorded (the store
//! failed) is reported in `batchItemFailures`, so only it is retried, and
//! after the last retry the event source sends it to the dead-letter queue.

use serde_json::{json, Value};

use super::{clients, Error};
use crate::clock::{Clock, SystemClock};
use crate::crm::Deliverer;
use crate::ids::{ActionId, TenantId};
use crate::outbox::deliver_action;
use crate::outbox::retry::RetryPolicy;
use crate::store::Store;

pub async fn run() -> Result<(), Error> {
    crate::telemetry::init();
    let clients = clients().await?;
    let deliverer = Deliverer::new()?.with_retry(RetryPolicy::from_env()?);
    let handler = lambda_http::service_fn(|event: lambda_http::LambdaEvent<Value>| {
        let (store, deliverer) = (clients.store.clone(), deliverer.clone());
        async move { Ok::<_, Error>(handle(store.as_ref(), &deliverer, &SystemClock, &event.payload).await) }
    });
    lambda_http::lambda_runtime::run(handler).await
}

/// The action a stream record announces, if it is one to deliver now.
fn queued_action(record: &Value) -> Option<(TenantId, ActionId)> {
    if !matches!(record["eventName"].as_str(), Some("INSERT" | "MODIFY")) {
        return None;
    }
    let image = &record["dynamodb"]["NewImage"];
    if image["sk"]["S"].as_str() != Some("ACTION") || image["status"]["S"].as_str() != Some("pending") {
        return None;
    }
    let (tenant, action) = image["pk"]["S"].as_str()?.strip_prefix("T#")?.split_once("#A#")?;
    Some((TenantId::parse(tenant).ok()?, ActionId::parse(action).ok()?))
}

/// Handles one stream batch; returns the partial-batch response.
pub async fn handle(store: &dyn Store, deliverer: &Deliverer, clock: &dyn Clock, event: &Value) -> Value {
    let mut failures = Vec::new();
    for record in event["Records"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some((tenant, action)) = queued_action(record) else { continue };
        if let Err(e) = deliver_action(store, deliverer, clock, &tenant, &action).await {
            tracing::error!(tenant = %tenant, action_id = %action, error = %e, "stream delivery failed; the record is retried");
            let sequence = record["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default();
            failures.push(json!({ "itemIdentifier": sequence }));
        }
    }
    json!({ "batchItemFailures": failures })
}
