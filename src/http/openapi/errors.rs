//! The error answers each kind of operation can give, for the document.
//!
//! Every error is the one `ErrorBody` shape (`http::error`); what differs per
//! operation is which statuses it can answer. The sets are named for what the
//! operation reads: the request head only, a query string, a JSON body, or a
//! webhook's body. 429 and 503 carry `Retry-After`.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response};
use utoipa::IntoResponses;

/// Each status an error can have, with what it means.
fn describe(status: u16) -> &'static str {
    match status {
        400 => {
            "`malformed_json` or `malformed_request`: the body is not JSON, could not be read in time, or the \
                query string or cursor does not parse"
        }
        401 => "`unauthorized`: missing or bad token or signature (also for a tenant that does not exist)",
        404 => "`not_found`: unknown tenant, profile, trigger, contact, deal or action, or an id that cannot exist",
        409 => "`conflict`: the current state forbids it (e.g. a draft profile, a done action)",
        413 => "`payload_too_large`: the body is over 256 KiB",
        422 => "`invalid_request`: well-formed but invalid; `path` names the field",
        429 => {
            "`rate_limited`: too many webhook requests (or, for HighLevel, a transient failure to store); retry \
                after `Retry-After` seconds"
        }
        503 => "`store_unavailable` or `busy`: retry after `Retry-After` seconds",
        _ => "`internal`: our fault; the detail is logged, not returned",
    }
}

fn error_responses(statuses: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|&status| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            let mut response =
                ResponseBuilder::new().description(describe(status)).content("application/json", content);
            if matches!(status, 429 | 503) {
                let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
                let header =
                    HeaderBuilder::new().schema(seconds).description(Some("Seconds to wait before retrying")).build();
                response = response.header("Retry-After", header);
            }
            (status.to_string(), RefOr::T(response.build()))
        })
        .collect()
}

/// An operation that reads only the request head: token, tenant, ids in the path.
pub struct ReadErrors;

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[401, 404, 500, 503])
    }
}

/// An operation with a query string (bad syntax is 400, bad values 422).
pub struct QueryErrors;

impl IntoResponses for QueryErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[400, 401, 404, 422, 500, 503])
    }
}

/// A state change without a body (publish, archive, replay).
pub struct StepErrors;

impl IntoResponses for StepErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[401, 404, 409, 422, 500, 503])
    }
}

/// An operation with a JSON body.
pub struct BodyErrors;

impl IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[400, 401, 404, 409, 413, 422, 500, 503])
    }
}

/// A readiness probe: ready, or the store cannot be read.
pub struct ProbeErrors;

impl IntoResponses for ProbeErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[503])
    }
}

/// A webhook: the body as the CRM sends it, the tenant's rate limit.
pub struct WebhookErrors;

impl IntoResponses for WebhookErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[400, 401, 404, 413, 422, 429, 500, 503])
    }
}
