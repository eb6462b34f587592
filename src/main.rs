//! The `scorehook` command: `serve` (the local server), `apply` (config as
//! code into the local store), `replay` (re-queue failed or dead actions)
//! and `receiver` (a local action endpoint).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;

use scorehook::app::Local;
use scorehook::clock::SystemClock;
use scorehook::config_client::{self, Remote};
use scorehook::engine::points::Points;
use scorehook::http::extract::MAX_PAGE;
use scorehook::ids::{ActionId, TenantId};
use scorehook::offline::{self, OfflineRun};
use scorehook::outbox::ActionStatus;
use scorehook::service::apply::read_tenant_files;
use scorehook::settings::Settings;
use scorehook::store::dynamodb::{data_key, DynamoStore};
use scorehook::store::embedded::CommitMode;
use scorehook::{receiver, telemetry};

/// See Cargo.toml: cheaper than glibc's malloc for a webhook's many small allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "scorehook", version, about = "Contact engagement scoring for CRMs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Every environment setting (docs/settings.md), shown under each command's `--help`.
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the action executor on the embedded store.
    Serve {
        #[arg(long, default_value = "127.0.0.1", env = "SCOREHOOK_HOST")]
        host: String,
        /// 0 picks a free port; the chosen address is printed on stdout.
        #[arg(long, default_value_t = 3000, env = "SCOREHOOK_PORT")]
        port: u16,
        #[arg(long, default_value = ".scorehook", env = "SCOREHOOK_DATA_DIR")]
        data_dir: PathBuf,
        /// Tenant files (a directory of *.json, or one file) to apply before serving.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where to keep everything: the embedded file store, or DynamoDB
        /// (table from SCOREHOOK_TABLE; DYNAMODB_ENDPOINT for a local server,
        /// where the table is created if missing).
        #[arg(long, value_enum, default_value_t = StoreKind::Embedded, env = "SCOREHOOK_STORE")]
        store: StoreKind,
        /// Seconds a tenant's configuration is cached per process (0: no cache).
        #[arg(long, default_value_t = 5, env = "SCOREHOOK_CONFIG_REFRESH_SECS")]
        config_refresh_secs: u64,
        /// How the embedded store commits: `group` (concurrent writes share
        /// one fsync) or `each` (one fsync per write). Both answer 2xx only
        /// after the write is on disk.
        #[arg(long, value_enum, default_value_t = Commit::Group, env = "SCOREHOOK_COMMIT")]
        commit: Commit,
    },
    /// Show what tenant files would change on a running instance; change it with --yes.
    Apply {
        /// Tenant files: a directory of *.json, or one file.
        #[arg(short = 'f', long = "file")]
        path: PathBuf,
        /// The instance's base URL (local `serve`, or a deployed Function URL).
        #[arg(long, default_value = "http://127.0.0.1:3000", env = "SCOREHOOK_URL")]
        url: String,
        /// Apply the plan; without it nothing is changed.
        #[arg(long)]
        yes: bool,
        /// Also send webhook secrets and CRM credentials of existing tenants (write-only, never compared).
        #[arg(long)]
        update_secrets: bool,
        /// With --yes: follow the recompute of each profile published, with done/total and an ETA, until it ends.
        #[arg(long, requires = "yes")]
        wait: bool,
    },
    /// Print a tenant's configuration as a tenant file (without secrets).
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "http://127.0.0.1:3000", env = "SCOREHOOK_URL")]
        url: String,
    },
    /// Re-queue failed or dead actions of a tenant, under their ids: through
    /// a running instance's admin API with `--url` (local or deployed), else
    /// in the embedded store's data directory (stop the server first).
    Replay {
        #[arg(long)]
        tenant: String,
        /// Action ids to replay (repeatable).
        #[arg(long = "action")]
        actions: Vec<String>,
        /// Replay every action of the tenant in this status: dead or failed (repeatable).
        #[arg(long = "status", conflicts_with = "actions")]
        statuses: Vec<String>,
        /// Replay every failed and dead action of the tenant.
        #[arg(long, conflicts_with_all = ["actions", "statuses"])]
        all: bool,
        /// The instance's base URL; the operator token comes from SCOREHOOK_ADMIN_TOKEN.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = ".scorehook", env = "SCOREHOOK_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Run a profile over interactions from a file and print the report; writes nothing.
    Simulate {
        /// A profile spec (JSON, as PUT …/profiles/{p} takes it); its file name is the profile id.
        #[arg(long)]
        profile: PathBuf,
        /// Interactions, one JSON object per line (`-`: read them from standard input).
        #[arg(long)]
        events: PathBuf,
        /// Triggers to count: a JSON object of trigger id → trigger spec.
        #[arg(long)]
        triggers: Option<PathBuf>,
        /// Width of each score band.
        #[arg(long, default_value = "10")]
        band: String,
        /// How many top contacts to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// The instant to report scores at, RFC 3339 (default: now); expiry and decay count up to it.
        #[arg(long)]
        at: Option<String>,
    },
    /// Listen for the generic provider's actions at POST /actions, verify and print them.
    Receiver {
        #[arg(long, default_value_t = 4000)]
        port: u16,
        /// The tenant's signing secret (`whsec_…`: Standard Webhooks), or, for a tenant stored before signing
        /// secrets, its webhook secret (the deprecated X-Scorehook-Signature).
        #[arg(long, env = "SCOREHOOK_RECEIVER_SECRET")]
        secret: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StoreKind {
    Embedded,
    Dynamodb,
}

#[derive(Clone, Copy, ValueEnum)]
enum Commit {
    Group,
    Each,
}

impl From<Commit> for CommitMode {
    fn from(commit: Commit) -> Self {
        match commit {
            Commit::Group => CommitMode::Group,
            Commit::Each => CommitMode::Each,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.settings);
    // Every setting parsed once, before anything starts: an invalid one stops here, named.
    if let Err(message) = cli.settings.check() {
        eprintln!("scorehook: {message}");
        return ExitCode::FAILURE;
    }
    match run(cli.command, &cli.settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("scorehook: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: &Settings) -> Result<(), String> {
    let admin_token = || settings.admin_token();
    match command {
        Command::Serve { host, port, data_dir, config, store, config_refresh_secs, commit } => {
            // What `GET /metrics` renders (README "Metrics").
            scorehook::metrics::install_prometheus();
            let token = admin_token()?;
            if token.is_none() {
                tracing::warn!("SCOREHOOK_ADMIN_TOKEN is not set: only tenant tokens can use the admin API");
            }
            // The port first: a taken one stops the server before it opens
            // the store or writes a tenant file's configuration into it.
            let addr: SocketAddr = format!("{host}:{port}").parse().map_err(|e| format!("bad --host/--port: {e}"))?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e} (is the port taken? choose another with --port)"))?;
            let mut local = match store {
                StoreKind::Embedded => {
                    Local::open_with(&data_dir, commit.into(), Arc::new(SystemClock), token, settings)
                }
                StoreKind::Dynamodb => {
                    Local::configured(dynamodb(&data_dir, settings).await?, Arc::new(SystemClock), token, settings)
                }
            }
            .map_err(|e| e.to_string())?;
            local.service = local.service.with_config_refresh(std::time::Duration::from_secs(config_refresh_secs));
            if let Some(config) = config {
                apply(&local, &config).await?;
            }
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            println!("scorehook listening on http://{bound}");
            match store {
                StoreKind::Embedded => tracing::info!(%bound, data_dir = %data_dir.display(), "serving"),
                StoreKind::Dynamodb => tracing::info!(%bound, "serving on DynamoDB"),
            }
            local.serve(listener, true, shutdown_signal()).await.map_err(|e| e.to_string())
        }
        Command::Apply { path, url, yes, update_secrets, wait } => {
            let remote = Remote::new(&url, admin_token()?.as_ref().map_or("", |t| t.expose()));
            let files = read_tenant_files(&path).map_err(|e| e.to_string())?;
            let mut changes = 0;
            for (file, doc) in &files {
                let plan = config_client::plan(&remote, doc, update_secrets)
                    .await
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                print!("{plan}");
                changes += plan.steps.len();
                if yes && !plan.steps.is_empty() {
                    let created = config_client::execute(&remote, doc, &plan, update_secrets)
                        .await
                        .map_err(|e| format!("{}: {e}", file.display()))?;
                    if let Some(created) = created {
                        print_created(&doc.tenant, &created.token, created.signing_secret.as_deref());
                    }
                    if wait {
                        let published: Vec<_> = plan.published().cloned().collect();
                        let every = std::time::Duration::from_secs(1);
                        config_client::follow_recomputes(&remote, &doc.tenant, &published, every, |p| println!("{p}"))
                            .await
                            .map_err(|e| format!("{}: {e}", file.display()))?;
                    }
                }
            }
            match (changes, yes) {
                (0, _) => println!("No changes."),
                (n, true) => println!("Applied {n} change(s)."),
                (n, false) => println!("{n} change(s) planned; nothing changed. Run again with --yes to apply."),
            }
            Ok(())
        }
        Command::Export { tenant, url } => {
            let remote = Remote::new(&url, admin_token()?.as_ref().map_or("", |t| t.expose()));
            let tenant = TenantId::parse(tenant).map_err(|e| e.to_string())?;
            let (file, notes) = config_client::export(&remote, &tenant).await.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?);
            for note in notes {
                eprintln!("note: {note}");
            }
            Ok(())
        }
        Command::Replay { tenant, actions, statuses, all, url, data_dir } => {
            let tenant = TenantId::parse(tenant).map_err(|e| e.to_string())?;
            let mut ids =
                actions.into_iter().map(ActionId::parse).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
            let statuses = match all {
                true => vec![ActionStatus::Failed, ActionStatus::Dead],
                false => statuses.iter().map(|s| replayable_status(s)).collect::<Result<_, _>>()?,
            };
            if ids.is_empty() && statuses.is_empty() {
                return Err("nothing to replay: name --action ID (repeatable), --status dead|failed or --all".into());
            }
            if let Some(url) = url {
                let remote = Remote::new(&url, admin_token()?.as_ref().map_or("", |t| t.expose()));
                let replayed =
                    config_client::replay(&remote, &tenant, &ids, &statuses).await.map_err(|e| e.to_string())?;
                replayed.iter().for_each(|id| println!("replayed {id}"));
                return Ok(());
            }
            let local = Local::open(&data_dir, Arc::new(SystemClock), None).map_err(|e| e.to_string())?;
            let service = &local.service;
            for status in statuses {
                let listed = service.actions(&tenant, Some(status), MAX_PAGE).await.map_err(|e| e.to_string())?;
                ids.extend(listed.into_iter().map(|item| item.action.id));
            }
            for id in ids {
                service.replay(&tenant, &id).await.map_err(|e| format!("{id}: {e}"))?;
                println!("replayed {id}");
            }
            Ok(())
        }
        Command::Simulate { profile, events, triggers, band, top, at } => {
            let band = serde_json::from_str::<Points>(&band).map_err(|_| format!("--band {band:?} is not a number"))?;
            let now = match at {
                Some(at) => chrono::DateTime::parse_from_rfc3339(&at)
                    .map_err(|e| format!("--at {at:?} is not an RFC 3339 instant: {e}"))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            // Progress on stderr (stdout is the report), every 100,000 events read and contacts replayed.
            let progress = |line: &str| eprintln!("simulate: {line}");
            let run = OfflineRun {
                profile: &profile,
                events: &events,
                triggers: triggers.as_deref(),
                band,
                top,
                now,
                progress: Some(&progress),
                progress_every: 100_000,
            };
            let report = offline::simulate(&run).map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::Receiver { port, secret } => {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e} (is the port taken? choose another with --port)"))?;
            println!("receiving actions on http://{addr}/actions");
            receiver::run(listener, secret).await.map_err(|e| e.to_string())
        }
    }
}

/// The DynamoDB store from `SCOREHOOK_TABLE` and `DYNAMODB_ENDPOINT`.
/// Tenant secrets are sealed with KMS (`SCOREHOOK_KMS_KEY_ID`), a key file
/// (`SCOREHOOK_SECRETS_KEY_FILE`), or `secrets.key` in `data_dir`.
async fn dynamodb(data_dir: &std::path::Path, settings: &Settings) -> Result<Arc<dyn scorehook::store::Store>, String> {
    let table = settings.table().ok_or("--store dynamodb needs SCOREHOOK_TABLE (the table name)")?;
    let endpoint = settings.dynamodb_endpoint();
    let store = DynamoStore::connect(table.clone(), endpoint.as_deref())
        .await
        .with_history_retention_if(settings.history_retention()?);
    if endpoint.is_some() && store.ensure_table().await.map_err(|e| e.to_string())? {
        tracing::info!(%table, "created the DynamoDB table");
    }
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let key_file = data_dir.join("secrets.key");
    let sealer =
        data_key::configured_sealer(&store, &aws, settings, Some(&key_file)).await.map_err(|e| e.to_string())?;
    Ok(Arc::new(store.with_sealer(sealer)))
}

async fn apply(local: &Local, path: &std::path::Path) -> Result<(), String> {
    for applied in local.service.apply(path).await.map_err(|e| e.to_string())? {
        tracing::info!(tenant = %applied.tenant, profiles = applied.profiles, triggers = applied.triggers, "applied");
        if let Some(token) = applied.token {
            print_created(&applied.tenant, &token, applied.signing_secret.as_deref());
        }
    }
    Ok(())
}

/// What a tenant's creation shows once: its admin token (only its hash is
/// stored) and the signing secret made for it, if its file named none.
fn print_created(tenant: &TenantId, token: &str, signing_secret: Option<&str>) {
    println!("tenant {tenant} created; its admin token (shown once): {token}");
    if let Some(secret) = signing_secret {
        println!("tenant {tenant}: its actions are signed with (Standard Webhooks, shown once): {secret}");
    }
}

/// `--status`: only failed and dead actions can be replayed.
fn replayable_status(name: &str) -> Result<ActionStatus, String> {
    match name {
        "dead" => Ok(ActionStatus::Dead),
        "failed" => Ok(ActionStatus::Failed),
        other => Err(format!("--status {other:?}: only dead and failed actions are replayed")),
    }
}

/// Ctrl-C or SIGTERM: stop accepting, finish in-flight requests, exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
