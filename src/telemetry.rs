//! Structured logs with `tracing`: human-readable by default, JSON lines with
//! `SCOREHOOK_LOG_FORMAT=json` (what CloudWatch and log shippers want).
//! The level comes from `RUST_LOG` (default `info`). Logs go to stderr;
//! stdout is kept for what the CLI prints on purpose (the bound address).

use tracing_subscriber::EnvFilter;

pub fn init(settings: &crate::settings::Settings) {
    let filter = EnvFilter::try_new(settings.log_filter()).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = settings.log_json();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `try_init` so tests and embedders that installed a subscriber keep theirs.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
