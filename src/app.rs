//! Process wiring for the local server: the embedded store, the router on a
//! TCP listener, and the outbox executor as a background task, all in one
//! process. The caller owns the listener and the shutdown signal, so tests
//! can bind port 0 and stop the server when they choose.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::crm::egress::Egress;
use crate::crm::Deliverer;
use crate::service::Service;
use crate::settings::Settings;
use crate::store::embedded::{CommitMode, EmbeddedStore};
use crate::store::{Store, StoreError};
use crate::sweeper;
use crate::tenant::Secret;

/// How often the local sweeper looks for due work (retries, expiries) when no commit rings.
pub const OUTBOX_TICK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Retry(#[from] crate::outbox::retry::InvalidPolicy),
    #[error(transparent)]
    InboundRate(#[from] crate::http::inbound_limit::InvalidInboundRate),
    #[error(transparent)]
    BodyReadTimeout(#[from] crate::http::extract::InvalidBodyReadTimeout),
    #[error("{0}")]
    Egress(String),
    /// `SCOREHOOK_ALERT_URL`/`SCOREHOOK_ALERT_SECRET` are invalid.
    #[error("{0}")]
    Alerts(String),
}

/// A local scorehook: the service over the embedded store, and its deliverer.
#[derive(Clone)]
pub struct Local {
    pub service: Service,
    pub deliverer: Deliverer,
    /// What the process was configured with (defaults for embedders and tests).
    settings: Settings,
}

impl Local {
    /// A local scorehook over the embedded store under `data_dir`.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>, admin_token: Option<Secret>) -> Result<Self, AppError> {
        Self::open_with(data_dir, CommitMode::default(), clock, admin_token, &Settings::default())
    }

    /// The same, with the embedded store committing as `commit` says, as `settings` say.
    pub fn open_with(
        data_dir: &Path,
        commit: CommitMode,
        clock: Arc<dyn Clock>,
        admin_token: Option<Secret>,
        settings: &Settings,
    ) -> Result<Self, AppError> {
        Self::configured(Arc::new(EmbeddedStore::open_with(data_dir, commit)?), clock, admin_token, settings)
    }

    /// A local scorehook over any store with the default settings.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, admin_token: Option<Secret>) -> Result<Self, AppError> {
        Self::configured(store, clock, admin_token, &Settings::default())
    }

    /// A local scorehook over any store (DynamoDB with `--store dynamodb`),
    /// as `settings` say (the process's, read once at start).
    pub fn configured(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        admin_token: Option<Secret>,
        settings: &Settings,
    ) -> Result<Self, AppError> {
        let egress = settings.egress().map_err(AppError::Egress)?;
        Ok(Self {
            service: Service::new(store, clock, admin_token)
                .with_inbound_limit(settings.inbound_limit()?)
                .with_body_read_timeout(settings.body_read_timeout()?)
                .with_public_url(settings.public_url())
                .with_egress(egress),
            deliverer: Deliverer::new(egress)?
                .with_retry(settings.retry()?)
                .with_alerts(settings.alerts(egress).map_err(AppError::Alerts)?),
            settings: settings.clone(),
        })
    }

    /// The same scorehook with another outbound policy, for saved URLs and
    /// deliveries alike (tests against loopback fakes allow private targets).
    pub fn with_egress(self, egress: Egress) -> Result<Self, AppError> {
        let retry = self.deliverer.retry;
        let alerts = self.settings.alerts(egress).map_err(AppError::Alerts)?;
        let deliverer = Deliverer::new(egress)?.with_retry(retry).with_alerts(alerts);
        Ok(Self { service: self.service.with_egress(egress), deliverer, settings: self.settings })
    }

    /// Serves the router on `listener` until `shutdown` resolves. With
    /// `deliver` the outbox executor runs alongside (tests may instead drive
    /// `outbox::deliver_due` themselves).
    pub async fn serve(
        self,
        listener: TcpListener,
        deliver: bool,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let executor =
            deliver.then(|| tokio::spawn(sweeper::run(self.service.clone(), self.deliverer.clone(), OUTBOX_TICK)));
        let router = crate::http::router(self.service);
        let served = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
        if let Some(executor) = executor {
            executor.abort();
            // Wait for the task to drop its store handle, so the file can be reopened at once.
            let _ = executor.await;
        }
        Ok(served?)
    }
}
