//! scorehook: contact engagement scoring for CRMs.
//!
//! Layout, pure core first:
//! - `ids`: identifier newtypes, parsed at the boundary.
//! - `engine`: the pure scoring engine (no I/O, no clock).
//! - `store`: the storage port and its embedded (redb) adapter.
//! - `crm`: per-provider inbound verification and outbound delivery.
//! - `service`: use cases shared by HTTP, CLI and tests.
//! - `outbox`: the delivery executor for fired actions.
//! - `http`: the one axum router, served locally and (later) by `lambda_http`.
//! - `config`, `clock`, `telemetry`, `app`: process wiring.

pub mod app;
pub mod clock;
pub mod crm;
pub mod engine;
pub mod http;
pub mod ids;
pub mod outbox;
pub mod receiver;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tenant;
