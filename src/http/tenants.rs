//! `PUT|GET /v1/tenants/{t}`: connect a CRM account. Reads never show secrets.
//! `POST /v1/tenants/{t}/token/rotate`: a new admin token, shown once; the
//! replaced one keeps working for a grace period.
//! `GET /v1/tenants/{t}/webhooks/unmapped`: the tallies of webhook events
//! acknowledged but not mapped, by `<provider>:<kind>`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Scoped;
use super::error::ApiError;
use super::extract::{optional_json, JsonBody};
use super::openapi::errors::{BodyErrors, ReadErrors};
use crate::crm::egress::redact_query;
use crate::ids::TenantId;
use crate::service::admin::TenantInput;
use crate::service::Service;
use crate::tenant::{Provider, Secret, TenantRecord};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(put_tenant, get_tenant)).routes(routes!(rotate_token)).routes(routes!(unmapped))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TenantIn {
    provider: Provider,
    /// 16-512 characters; required on creation, kept when omitted.
    #[serde(default)]
    webhook_secret: Option<String>,
    /// Where a `generic` tenant's actions are POSTed.
    #[serde(default)]
    actions_url: Option<String>,
    /// The key actions are signed with (Standard Webhooks): `whsec_` and the base64 of 24-64 random bytes. Made on
    /// creation when omitted (and shown once in the answer), kept when omitted on update; the key it replaces keeps
    /// signing beside it for 24 hours.
    #[serde(default)]
    signing_secret: Option<String>,
    /// The provider's settings and credentials; replaced whole.
    #[serde(default)]
    crm: Map<String, Value>,
}

/// A tenant as reads show it: no secret, only the non-secret `crm` keys.
#[derive(Serialize, ToSchema)]
struct TenantOut {
    #[schema(value_type = String)]
    tenant: TenantId,
    provider: Provider,
    actions_url: Option<String>,
    crm: Map<String, Value>,
    /// When the admin token was last rotated (`null`: never).
    token_rotated_at: Option<DateTime<Utc>>,
    /// Until when the token replaced by the last rotation still works (`null`: it does not).
    previous_token_expires_at: Option<DateTime<Utc>>,
    /// How actions are signed: `standard_webhooks` (the tenant's `signing_secret`), or `x_scorehook_legacy`
    /// (deprecated: the webhook secret, for tenants stored before signing secrets; set one to switch).
    outbound_signature: &'static str,
    /// Until when the signing key the last change replaced still signs beside it (`null`: it does not).
    previous_signing_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TenantOut {
    fn new(record: &TenantRecord, now: DateTime<Utc>) -> Self {
        Self {
            tenant: record.id.clone(),
            provider: record.provider,
            actions_url: record.actions_url.as_deref().map(redact_query),
            crm: shown_crm(record),
            token_rotated_at: record.token_rotated_at,
            previous_token_expires_at: record.previous_token_expires_at(now),
            outbound_signature: if record.signing_secret.is_some() {
                "standard_webhooks"
            } else {
                "x_scorehook_legacy"
            },
            previous_signing_expires_at: record.previous_signing_in_grace(now).map(|p| p.expires_at),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// The `crm` keys reads may show, with the query of each URL redacted.
fn shown_crm(record: &TenantRecord) -> Map<String, Value> {
    let mut crm = record.public_crm();
    for value in crm.values_mut() {
        if let Value::String(text) = value {
            if text.starts_with("http://") || text.starts_with("https://") {
                *text = redact_query(text);
            }
        }
    }
    crm
}

/// A new tenant and its own admin token, shown this once (only its hash is stored).
#[derive(Serialize, ToSchema)]
struct TenantCreated {
    #[schema(value_type = String)]
    tenant: TenantId,
    token: String,
    /// The signing secret made for the tenant when the request named none (shown this once): give it to the
    /// receiver of its actions, which checks their `webhook-signature` with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_secret: Option<String>,
}

/// `POST /v1/tenants/{t}/token/rotate`; the body is optional.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateIn {
    /// How long the replaced token keeps working, in seconds: 0 revokes it at
    /// once; at most 604800 (a week); 86400 (a day) when omitted.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800)]
    grace_seconds: Option<u64>,
}

/// The tenant's new admin token, shown this once (only its hash is stored).
#[derive(Serialize, ToSchema)]
struct TokenRotated {
    #[schema(value_type = String)]
    tenant: TenantId,
    token: String,
    /// Until when the replaced token still works (`null`: it was revoked at once).
    previous_token_expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
struct Unmapped {
    #[schema(value_type = String)]
    tenant: TenantId,
    /// Events acknowledged but not mapped, by `<provider>:<kind>`.
    unmapped: BTreeMap<String, u64>,
}

/// Creates (operator only) or updates a tenant.
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant}",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id: 1-64 of `A-Z a-z 0-9 _ -`")),
    request_body = TenantIn,
    responses(
        (status = 201, description = "Created, with the tenant's admin token (shown only here)", body = TenantCreated,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 200, description = "Updated", body = TenantOut),
        BodyErrors
    )
)]
async fn put_tenant(
    State(service): State<Service>,
    scope: Scoped,
    JsonBody(body): JsonBody<TenantIn>,
) -> Result<Response, ApiError> {
    // Only the operator can create: a tenant that does not exist has no token of its own.
    let Scoped { tenant, caller } = scope;
    let input = TenantInput {
        provider: body.provider,
        webhook_secret: body.webhook_secret.map(Secret::new),
        actions_url: body.actions_url,
        crm: body.crm,
        signing_secret: body.signing_secret.map(Secret::new),
    };
    let written = service.put_tenant(&caller, &tenant, input).await?;
    Ok(match written.token {
        // The token is shown once: no cache on the way may keep it.
        Some(token) => {
            let created = TenantCreated { tenant, token, signing_secret: written.signing_secret };
            (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(created)).into_response()
        }
        None => Json(TenantOut::new(&written.record, service.clock.now())).into_response(),
    })
}

/// Replaces the tenant's admin token (operator, or the tenant's current token). The new token is in the answer
/// only; the replaced one keeps working for `grace_seconds`. Only one replaced token is kept: rotating again ends
/// the grace of the one before at once. The operator token is not affected.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/token/rotate",
    operation_id = "rotate_tenant_token",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id")),
    request_body(content = Option<RotateIn>, description = "Optional: the replaced token's grace"),
    responses(
        (
            status = 200,
            description = "Rotated; the body holds the new token (not cacheable)",
            body = TokenRotated,
            headers(("Cache-Control" = String, description = "`no-store`"))
        ),
        BodyErrors
    )
)]
async fn rotate_token(
    State(service): State<Service>,
    scope: Scoped,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: RotateIn = optional_json(body)?;
    let rotated = service.rotate_token(&scope.caller, &scope.tenant, input.grace_seconds).await?;
    let previous_token_expires_at = rotated.record.previous_token_expires_at(service.clock.now());
    let body = TokenRotated { tenant: scope.tenant, token: rotated.token, previous_token_expires_at };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// The tenant, without secrets.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id")),
    responses((status = 200, body = TenantOut), ReadErrors)
)]
async fn get_tenant(State(service): State<Service>, scope: Scoped) -> Result<Json<TenantOut>, ApiError> {
    let tenant = scope.tenant;
    let record = service.store.tenant(&tenant).await.map_err(crate::service::ServiceError::from)?;
    let record = record.ok_or_else(|| ApiError::not_found(format!("tenant {tenant} not found")))?;
    Ok(Json(TenantOut::new(&record, service.clock.now())))
}

/// Webhook events acknowledged but not mapped, counted by `<provider>:<kind>`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/webhooks/unmapped",
    tag = "tenants",
    params(("tenant" = String, Path, description = "The tenant id")),
    responses((status = 200, body = Unmapped), ReadErrors)
)]
async fn unmapped(State(service): State<Service>, scope: Scoped) -> Result<Json<Unmapped>, ApiError> {
    let unmapped = service.store.unmapped(&scope.tenant).await.map_err(crate::service::ServiceError::from)?;
    Ok(Json(Unmapped { tenant: scope.tenant, unmapped }))
}
