//! The HTTP function: Lambda Function URL (or HttpApi) requests into the
//! same router `scorehook serve` serves. The router is built on the first
//! request, once the operator token has been read from SSM Parameter Store
//! (`SCOREHOOK_ADMIN_TOKEN_PARAMETER`, a SecureString), so a cold start does
//! no call beyond building clients.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use lambda_http::tower::ServiceExt;
use lambda_http::{service_fn, Request};
use tokio::sync::OnceCell;

use super::{clients, Error};
use crate::clock::SystemClock;
use crate::service::{operator_token, Service};
use crate::settings::Settings;
use crate::store::Store;
use crate::tenant::Secret;

pub async fn run() -> Result<(), Error> {
    // Read once and checked: an invalid setting stops the function at its cold start.
    let settings = Settings::from_env()?;
    crate::telemetry::init(&settings);
    super::init_metrics();
    let clients = clients(&settings).await?;
    let ssm = aws_sdk_ssm::Client::new(&clients.aws);
    let store: Arc<dyn Store> = clients.store;
    let router: Arc<OnceCell<Router>> = Arc::default();
    let settings = Arc::new(settings);
    lambda_http::run(service_fn(move |request: Request| {
        let (router, ssm, store) = (Arc::clone(&router), ssm.clone(), Arc::clone(&store));
        let settings = Arc::clone(&settings);
        let work = async move {
            let router = router
                .get_or_try_init(|| async move {
                    let token = admin_token(&settings, &ssm).await?;
                    Ok::<_, Error>(build_router(store, token, &settings))
                })
                .await?;
            Ok::<_, Error>(handle(router, request).await)
        };
        async move { super::measured(&mut std::io::stdout(), work).await }
    }))
    .await
}

/// The operator token: `SCOREHOOK_ADMIN_TOKEN` if set, else the SSM parameter.
async fn admin_token(settings: &Settings, ssm: &aws_sdk_ssm::Client) -> Result<Option<Secret>, Error> {
    if let Some(token) = settings.admin_token()? {
        return Ok(Some(token));
    }
    let Some(name) = settings.admin_token_parameter() else {
        tracing::warn!("no operator token configured: only tenant tokens can use the admin API");
        return Ok(None);
    };
    let out = ssm.get_parameter().name(&name).with_decryption(true).send().await?;
    let value = out.parameter().and_then(|p| p.value());
    Ok(value.map(|token| operator_token(token, &format!("the SSM parameter {name}"))).transpose()?)
}

/// The router over `store` with the system clock, as the function serves it
/// (`settings` were checked at the cold start; a value that no longer
/// parses falls back to the safe side: the default limit, public targets only).
pub fn build_router(store: Arc<dyn Store>, admin_token: Option<Secret>, settings: &Settings) -> Router {
    let limit = settings.inbound_limit().unwrap_or_default();
    let egress = settings.egress().unwrap_or_default();
    let service = Service::new(store, Arc::new(SystemClock), admin_token)
        .with_inbound_limit(limit)
        .with_public_url(settings.public_url());
    crate::http::router(service.with_egress(egress))
}

/// One request through the router. Handler errors are already HTTP answers.
pub async fn handle(router: &Router, request: Request) -> axum::http::Response<Body> {
    let result: Result<_, Infallible> = router.clone().oneshot(request.map(Body::new)).await;
    match result {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
