//! scorehook: contact engagement scoring for CRMs.
//!
//! Layout, pure core first:
//! - `ids`: identifier newtypes, parsed at the boundary.
//! - `engine`: the pure scoring engine (no I/O, no clock).
//! - `tenant`: a connected CRM account, its secrets and settings.
//! - `store`: the storage port and its embedded (redb) and DynamoDB adapters.
//! - `crm`: per-provider signatures and outbound delivery.
//! - `service`: use cases shared by HTTP, CLI and tests.
//! - `outbox`: fired actions and the delivery step.
//! - `sweeper`: due work (expiries, deliveries, recomputes) as one step plus a local loop.
//! - `http`: the one axum router, served locally and by `lambda_http`.
//! - `lambda`: the Lambda entry points (HTTP, stream executor, scheduled sweeper).
//! - `metrics`: every metric's name and meaning, and its exporters (Prometheus locally, EMF on Lambda).
//! - `config_client`: `scorehook apply|export` against a running instance's admin API.
//! - `offline`: `scorehook simulate`, a profile over interactions from files.
//! - `keyed_hash`: HMAC-SHA256 for signatures and cursor tags.
//! - `timestamp`: chrono's RFC 3339 text for stored instants, written and read without `core::fmt`.
//! - `clock`, `telemetry`, `app`, `receiver`: process wiring and the local action receiver.

pub mod app;
pub mod clock;
pub mod config_client;
pub mod crm;
pub mod engine;
pub mod http;
pub mod ids;
pub mod keyed_hash;
pub mod lambda;
pub mod metrics;
pub mod offline;
pub mod outbox;
pub mod receiver;
pub mod service;
pub mod settings;
pub mod store;
pub mod sweeper;
pub mod telemetry;
pub mod tenant;
pub mod timestamp;
