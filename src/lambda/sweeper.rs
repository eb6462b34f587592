//! The sweeper function: an EventBridge schedule (every minute) that runs
//! the due-work step until nothing is due, stopping early enough to finish
//! inside its timeout; whatever is left is picked up by the next run. Action
//! retries and anything the stream missed are due work today; expiries and
//! deadlines plug into the same step.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use std::sync::Arc;

use super::Error;
use crate::clock::SystemClock;
use crate::crm::Deliverer;
use crate::outbox::Step;
use crate::service::{Service, ServiceError};
use crate::sweeper::sweep_due;

/// Items per step; each step is short, so the deadline check runs often.
const STEP: usize = 25;
/// Time kept in hand: a step in progress must finish before the timeout.
const MARGIN: Duration = Duration::from_secs(15);

pub async fn run() -> Result<(), Error> {
    let (clients, deliverer) = super::delivering().await?;
    // The sweeper needs no operator token: it serves no admin call.
    let service = Service::new(clients.store, Arc::new(SystemClock), None);
    let handler = lambda_http::service_fn(|event: lambda_http::LambdaEvent<Value>| {
        let (service, deliverer) = (service.clone(), deliverer.clone());
        async move {
            let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let work = handle(&service, &deliverer, deadline);
            Ok::<_, Error>(super::measured(&mut std::io::stdout(), work).await?)
        }
    });
    lambda_http::lambda_runtime::run(handler).await
}

/// Sweeps until drained or until `deadline - MARGIN`; reports which.
pub async fn handle(service: &Service, deliverer: &Deliverer, deadline: SystemTime) -> Result<Value, ServiceError> {
    let mut steps = 0u32;
    loop {
        steps += 1;
        if sweep_due(service, deliverer, STEP).await? == Step::Drained {
            return Ok(json!({ "drained": true, "steps": steps }));
        }
        if SystemTime::now() + MARGIN >= deadline {
            tracing::info!(steps, "sweep stopped at its deadline; the next run continues");
            return Ok(json!({ "drained": false, "steps": steps }));
        }
    }
}
