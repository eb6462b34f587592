//! `GET /openapi.json`: the API's OpenAPI 3.1 document, generated from the
//! handlers' own `#[utoipa::path]` annotations, so it cannot drift from them.
//!
//! Every route is registered through `utoipa_axum::routes!`, which adds the
//! route to the router and its operation to the document in one step: a
//! route cannot be served without being documented (`tests/it/openapi.rs`
//! checks that no module registers a route any other way). This module holds
//! what is common to every operation: the title, the security schemes as
//! they really are, and the error answers (`errors`); `schemas` describes the
//! request types the engine owns.

pub mod errors;
pub mod schemas;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::{actions, health, metrics, profiles, repair, scores, tenants, triggers, ui, webhooks};
use crate::service::Service;

/// The security scheme of the admin API (the operator's or a tenant's token).
pub const ADMIN_TOKEN: &str = "admin_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scorehook",
        description = "CRM webhooks in, engagement scores and CRM actions out. Admin calls carry \
                       `Authorization: Bearer <token>`: the operator token may do everything, a tenant's own token \
                       only its tenant. Webhooks authenticate per provider (see the webhook operation). Errors are \
                       `{\"error\": {\"code\", \"message\", \"path\"?}}`; a rejected request changes nothing."
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "webhooks", description = "Interactions in, signed by the CRM"),
        (name = "tenants", description = "Connected CRM accounts"),
        (name = "profiles", description = "Scoring profiles: draft, publish, archive, simulate"),
        (name = "triggers", description = "Score, interaction and deadline triggers"),
        (name = "scores", description = "Leaderboards, scores with their ledger, manual adjustments"),
        (name = "actions", description = "The delivery log of fired actions, and replay"),
        (name = "operations", description = "The operator's: records set aside, their repair, and metrics"),
        (name = "meta", description = "Health, this document, and the /ui page")
    )
)]
struct ApiDoc;

/// The security schemes: the admin bearer token, and each provider's webhook check that OpenAPI can name
/// (Bitrix24's `auth[application_token]` travels in the form body; the webhook operation says so).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The operator token (`SCOREHOOK_ADMIN_TOKEN`) for every tenant, or a tenant's own token (returned \
                 once at creation) for that tenant only. Any other token is 401, whether or not the tenant exists.",
            ))
            .build();
        components.add_security_scheme(ADMIN_TOKEN, SecurityScheme::Http(bearer));
        // The default of every operation; the public ones and the webhook say otherwise.
        openapi.security = Some(vec![SecurityRequirement::new(ADMIN_TOKEN, Vec::<String>::new())]);
        let header_key = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, description)))
        };
        components.add_security_scheme(
            "generic_signature",
            header_key(
                "X-Scorehook-Signature",
                "generic: `v1=<hex HMAC-SHA256(webhook_secret, timestamp + \".\" + body)>` with the Unix time in \
                 `X-Scorehook-Timestamp`, at most 5 minutes off; or, without `X-Scorehook-*` headers, Standard \
                 Webhooks' `webhook-id`, `webhook-timestamp` and `webhook-signature` keyed with the webhook secret \
                 (the key a `whsec_` secret encodes)",
            ),
        );
        components.add_security_scheme(
            "hubspot_signature",
            header_key(
                "X-HubSpot-Signature-v3",
                "hubspot: HMAC-SHA256 over method, URL, body and `X-HubSpot-Request-Timestamp`, with the app's client \
                 secret",
            ),
        );
        components.add_security_scheme(
            "highlevel_signature",
            header_key("x-ghl-signature", "highlevel: Ed25519 over the body, with HighLevel's published key"),
        );
        components.add_security_scheme(
            "webhook_key",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "key",
                "activecampaign, and highlevel workflow webhooks: the tenant's `webhook_secret` in the URL",
            ))),
        );
        let basic = HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some("pipedrive: the HTTP Basic credentials set on the webhook"))
            .build();
        components.add_security_scheme("pipedrive_basic", SecurityScheme::Http(basic));
    }
}

/// Every route of the API, each registered with its operation.
fn documented() -> OpenApiRouter<Service> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(serve))
        .merge(health::router())
        .merge(webhooks::router())
        .merge(tenants::router())
        .merge(profiles::router())
        .merge(triggers::router())
        .merge(scores::router())
        .merge(actions::router())
        .merge(repair::router())
        .merge(metrics::router())
        .merge(ui::router())
}

/// The routes, for the router to serve.
pub fn routes() -> Router<Service> {
    documented().split_for_parts().0
}

/// The document, built once per process.
pub fn document() -> &'static Result<String, String> {
    static DOCUMENT: OnceLock<Result<String, String>> = OnceLock::new();
    DOCUMENT.get_or_init(|| documented().into_openapi().to_json().map_err(|e| e.to_string()))
}

/// This document. It holds no secrets, so it needs no token.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
async fn serve() -> Response {
    match document() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.as_str()).into_response(),
        Err(error) => {
            tracing::error!(%error, "the OpenAPI document does not serialize");
            ApiError::internal().into_response()
        }
    }
}
