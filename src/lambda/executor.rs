//! The executor function: DynamoDB Stream batches from the table. Each
//! inserted or replayed action (an `ACTION` item whose new image is
//! `pending`) is delivered at once; everything else in the stream is
//! ignored. A record whose delivery could not even be recorded (the store
//! failed) is reported in `batchItemFailures`, so only it is retried, and
//! after the last retry the event source sends it to the dead-letter queue.

use serde_json::{json, Value};

use std::sync::Arc;

use super::Error;
use crate::clock::SystemClock;
use crate::crm::Deliverer;
use crate::ids::{ActionId, TenantId};
use crate::outbox::deliver_action;
use crate::service::Service;

pub async fn run() -> Result<(), Error> {
    let (clients, deliverer) = super::delivering().await?;
    // Resolved id-only events are scored here, so the executor needs the service too.
    let service = Service::new(clients.store.clone(), Arc::new(SystemClock), None);
    let handler = lambda_http::service_fn(|event: lambda_http::LambdaEvent<Value>| {
        let (service, deliverer) = (service.clone(), deliverer.clone());
        async move {
            let work = handle(&service, &deliverer, &event.payload);
            Ok::<_, Error>(super::measured(&mut std::io::stdout(), work).await)
        }
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
pub async fn handle(service: &Service, deliverer: &Deliverer, event: &Value) -> Value {
    let (store, clock) = (service.store.as_ref(), service.clock.as_ref());
    let mut failures = Vec::new();
    for record in event["Records"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some((tenant, action)) = queued_action(record) else { continue };
        if let Err(e) = deliver_action(store, deliverer, clock, service, &tenant, &action).await {
            tracing::error!(tenant = %tenant, action_id = %action, error = %e, "stream delivery failed; the record is retried");
            let sequence = record["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default();
            failures.push(json!({ "itemIdentifier": sequence }));
        }
    }
    json!({ "batchItemFailures": failures })
}
