//! `POST /v1/webhooks/{provider}/{tenant}`: interactions in.
//!
//! Order matters: size limit, tenant, the provider's authenticity check,
//! the tenant's rate limit, then parsing of the whole body, and only then storage, so a rejected
//! request stores nothing. 202 is answered once everything is stored:
//! interactions committed, id-only events queued, unmapped kinds counted.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{body_bytes, parse_json, PathParams};
use super::openapi::errors::WebhookErrors;
use crate::crm;
use crate::crm::inbound::{InboundError, Request};
use crate::engine::interaction::parse_body;
use crate::ids::TenantId;
use crate::metrics::{self, Refusal};
use crate::service::ingest::IngestReport;
use crate::service::Service;
use crate::tenant::Provider;

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(receive))
}

/// One message for unknown tenants and bad signatures alike, so the
/// endpoint does not reveal which tenants exist.
const REFUSED: &str = "unknown tenant or bad signature (the server log says which)";

/// Interactions in, from the tenant's CRM.
///
/// `generic` takes one interaction or an array of up to 500 (JSON); each CRM connector takes its CRM's own body
/// (JSON, or form-urlencoded for ActiveCampaign and Bitrix24). Each provider proves itself its own way (the
/// security schemes; Bitrix24's `auth[application_token]` travels in the body). Unknown tenant, wrong provider
/// and bad signature all answer the same 401. 202 once everything is stored.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{provider}/{tenant}",
    tag = "webhooks",
    params(
        ("provider" = inline(Provider), Path, description = "The tenant's provider"),
        ("tenant" = String, Path, description = "The tenant id"),
    ),
    request_body(
        description = "The CRM's webhook body",
        content(
            (serde_json::Value = "application/json"),
            (serde_json::Value = "application/x-www-form-urlencoded"),
        )
    ),
    security(
        ("generic_signature" = []),
        ("hubspot_signature" = []),
        ("highlevel_signature" = []),
        ("webhook_key" = []),
        ("pipedrive_basic" = []),
        ()
    ),
    responses((status = 202, description = "Stored", body = IngestReport), WebhookErrors)
)]
async fn receive(
    State(service): State<Service>,
    PathParams((provider, tenant)): PathParams<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestReport>), ApiError> {
    let known: Option<Provider> = serde_json::from_value(serde_json::Value::String(provider.clone())).ok();
    let request = Incoming { provider, known, tenant, method, uri, headers };
    match take(&service, request, body).await {
        Ok(report) => Ok((StatusCode::ACCEPTED, Json(report))),
        Err(Refused { reason, error }) => {
            metrics::webhook_refused(known, reason);
            Err(error)
        }
    }
}

/// A webhook request's head, as routed.
struct Incoming {
    /// The provider as the path names it, and as parsed (`None`: no such provider).
    provider: String,
    known: Option<Provider>,
    tenant: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// An error answer, and why for the metrics.
struct Refused {
    reason: Refusal,
    error: ApiError,
}

impl Refused {
    fn because(reason: Refusal) -> impl FnOnce(ApiError) -> Self {
        move |error| Self { reason, error }
    }

    /// An error whose status says why (all but 401 and 404, which `because` names).
    fn by_status(provider: Option<Provider>, error: ApiError) -> Self {
        let reason = match error.status {
            StatusCode::BAD_REQUEST => Refusal::Malformed,
            StatusCode::UNAUTHORIZED => Refusal::Signature,
            StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge,
            StatusCode::UNPROCESSABLE_ENTITY => Refusal::Invalid,
            StatusCode::SERVICE_UNAVAILABLE => Refusal::Unavailable,
            // HighLevel's way of asking for a redelivery (`ask_to_retry`).
            StatusCode::TOO_MANY_REQUESTS if provider == Some(Provider::Highlevel) => Refusal::Unavailable,
            _ => Refusal::Internal,
        };
        Self { reason, error }
    }
}

async fn take(
    service: &Service,
    incoming: Incoming,
    body: Result<Bytes, BytesRejection>,
) -> Result<IngestReport, Refused> {
    let Incoming { provider, known, tenant, method, uri, headers } = incoming;
    let failed = |error| Refused::by_status(known, error);
    let body = body_bytes(body).map_err(failed)?;
    let not_found = || ApiError::not_found(format!("unknown provider {provider:?}"));
    let provider = known.ok_or_else(not_found).map_err(Refused::because(Refusal::UnknownProvider))?;
    let unknown = || Refused::because(Refusal::UnknownTenant)(ApiError::unauthorized(REFUSED));
    let tenant_id = TenantId::parse(tenant).map_err(|_| unknown())?;
    let view = service.tenant_view(&tenant_id).await.map_err(|e| failed(e.into()))?;
    let view = view.filter(|v| v.record.provider == provider).ok_or_else(unknown)?;
    let url = public_url(service.public_url.as_deref(), &headers, &uri);
    let request =
        Request { method: method.as_str(), url: &url, headers: &headers, body: &body, now: service.clock.now() };
    // The detail goes to the log only: the answer must not tell a stranger
    // that the tenant exists.
    crm::verify(&view.record, &request).map_err(|e| {
        tracing::warn!(tenant = %tenant_id, error = %e, "webhook refused");
        Refused::because(Refusal::Signature)(ApiError::unauthorized(REFUSED))
    })?;
    // Counted only once authentic: forged requests cannot use up the CRM's
    // budget, and a 429 tells no stranger that the tenant exists.
    if let Err(seconds) = service.inbound.admit(provider, &tenant_id) {
        tracing::warn!(tenant = %tenant_id, "webhook rate limit reached");
        return Err(Refused { reason: Refusal::RateLimited, error: ApiError::rate_limited(seconds) });
    }
    let report = if provider == Provider::Generic {
        let value: serde_json::Value = parse_json(&body).map_err(failed)?;
        let interactions =
            parse_body(value).map_err(|e| failed(ApiError::invalid(Some(format!("[{}]", e.at)), e.to_string())))?;
        service.ingest(&view, &interactions).await
    } else {
        let items = crm::normalize(&view.record, &request).map_err(|e| failed(inbound_error(e)))?;
        service.receive(&view, items).await
    };
    match report {
        Ok(report) => {
            metrics::webhook_answered(provider, &report);
            Ok(report)
        }
        Err(e) => Err(failed(ask_to_retry(provider, ApiError::from(e)))),
    }
}

fn inbound_error(error: InboundError) -> ApiError {
    match error {
        InboundError::Refused(_) => ApiError::unauthorized(REFUSED),
        InboundError::Malformed(message) => ApiError::malformed(message),
    }
}

/// HighLevel redelivers only after a 429, so a transient failure to store
/// answers it that way; the other CRMs retry a 503.
fn ask_to_retry(provider: Provider, error: ApiError) -> ApiError {
    if provider == Provider::Highlevel && error.status == StatusCode::SERVICE_UNAVAILABLE {
        return ApiError { status: StatusCode::TOO_MANY_REQUESTS, retry_after: Some(60), ..error };
    }
    error
}

/// The URL the CRM called, as it signed it (HubSpot): the deployment's
/// public base (`SCOREHOOK_PUBLIC_URL`, e.g. the Function URL) when set,
/// else the forwarded scheme and the Host header, then path and query.
fn public_url(configured: Option<&str>, headers: &HeaderMap, uri: &Uri) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    if let Some(base) = configured {
        return format!("{base}{path}");
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = header("x-forwarded-proto").and_then(|p| p.split(',').next()).unwrap_or("http").trim();
    let host = header("x-forwarded-host").or_else(|| header("host")).unwrap_or("localhost");
    format!("{scheme}://{host}{path}")
}

pub const PUBLIC_URL_VAR: &str = "SCOREHOOK_PUBLIC_URL";
