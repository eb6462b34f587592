//! `GET /metrics`: the process's metrics (`crate::metrics`) in the
//! Prometheus text format, for the operator's scraper. The operator token
//! only: counts across every tenant are not a tenant's to read, so a
//! tenant's token is 401, as for `/v1/quarantine`. Where the process
//! exports otherwise (the Lambda functions write EMF lines to their log
//! instead), it answers 404.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::bearer;
use super::openapi::errors::ReadErrors;
use crate::service::Service;

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// The Prometheus text exposition format's media type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counters, gauges and histograms of this process since it started (operator token only).
///
/// Webhooks by outcome and refusal reason, scoring latency, commits and conflicts, actions by provider and
/// outcome, outbox lag, job progress, CRM API latency and answers by status: the README's "Metrics" lists each.
/// 404 where this process exports no Prometheus metrics (on Lambda they are CloudWatch metrics, from EMF log lines).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4"),
        ReadErrors
    )
)]
async fn scrape(State(service): State<Service>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !bearer(&headers).is_some_and(|token| service.is_operator(token)) {
        return Err(ApiError::unauthorized("the operator token is needed"));
    }
    let text = crate::metrics::prometheus::render().ok_or_else(|| {
        ApiError::not_found("this process exports no Prometheus metrics (on Lambda: CloudWatch, from EMF log lines)")
    })?;
    Ok(([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response())
}
