//! The one router: every route of the HTTP surface, with no assumption about
//! where it runs. `scorehook serve` hands it to a TCP listener; the Lambda
//! entry point hands the very same `Router` to `lambda_http`.

pub mod actions;
pub mod auth;
pub mod cursor;
pub mod error;
pub mod extract;
pub mod health;
pub mod inbound_limit;
pub mod metrics;
pub mod openapi;
pub mod profiles;
pub mod repair;
pub mod scores;
pub mod tenants;
pub mod triggers;
pub mod ui;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::Router;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::service::Service;
use error::ApiError;
use extract::BODY_LIMIT;

pub fn router(service: Service) -> Router {
    // Every route, each with its operation in `/openapi.json` (see `openapi`).
    openapi::routes()
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // A trickled upload cannot hold a connection for ever: reading the
        // body stops after `body_read_timeout` (15 s unless configured), and
        // the request is refused (400) before anything is stored. Processing is not cut short: a long
        // queue of events for one contact finishes (Lambda bounds it anyway).
        .layer(RequestBodyTimeoutLayer::new(service.body_read_timeout))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            // The route template, never the raw URI: query strings may carry secrets.
            let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("http", method = %request.method(), route)
        }))
        .with_state(service)
}
