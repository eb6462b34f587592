//! Due work, one bounded step at a time: contacts whose points expire or
//! decay, actions whose delivery is due, and a batch of each running
//! recompute. The local server runs the step in a loop
//! (woken by commits, and every second); on Lambda the scheduled sweeper
//! runs it until drained or near its deadline. Tests call it directly.

use std::sync::Arc;
use std::time::Duration;

use crate::crm::Deliverer;
use crate::outbox::{deliver_due, Step};
use crate::service::{Service, ServiceError};

/// Runs one step of each kind of due work; `More` if any has more. Each
/// kind runs whatever another did: one failing (the store unreachable for
/// it) is logged and holds the others back not at all. The step is an
/// error only when every kind failed.
pub async fn sweep_due(service: &Service, deliverer: &Deliverer, limit: usize) -> Result<Step, ServiceError> {
    let expiries = service.sweep_expiries(limit).await;
    let deliveries = deliver_due(service.store.as_ref(), deliverer, service.clock.as_ref(), service, limit)
        .await
        .map_err(ServiceError::from);
    let recomputes = service.advance_recomputes().await;
    let (mut more, mut failures) = (false, Vec::new());
    for (work, result) in [("expiries", expiries), ("deliveries", deliveries), ("recomputes", recomputes)] {
        match result {
            Ok(step) => more |= step == Step::More,
            Err(e) => {
                tracing::error!(work, error = %e, "sweep step failed for this kind of work; the others went on");
                failures.push(e);
            }
        }
    }
    match failures.pop() {
        Some(e) if failures.len() == 2 => Err(e),
        _ => Ok(if more { Step::More } else { Step::Drained }),
    }
}

/// The local loop: a step whenever a commit rings the bell, and at least every `every`.
pub async fn run(service: Service, deliverer: Deliverer, every: Duration) {
    let bell = Arc::clone(&service.outbox_bell);
    loop {
        match sweep_due(&service, &deliverer, 100).await {
            Ok(Step::More) => continue,
            Ok(Step::Drained) => {}
            Err(e) => tracing::error!(error = %e, "sweep step failed; retrying on the next tick"),
        }
        tokio::select! {
            _ = bell.notified() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}
