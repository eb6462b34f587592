//! scorehook's integration tests: one binary (one link step), modules named
//! by what they prove. Every test gets a fresh data directory.

mod admin_api;
mod alerts;
mod budgets;
mod concurrency;
mod config_as_code;
mod connectors;
mod crash_storm;
mod deal_scores;
mod delivery;
mod dynamodb;
mod egress;
mod health;
mod isolation;
mod lambda_events;
mod logs;
mod metrics;
mod notify;
mod openapi;
mod poisoned;
mod recompute;
mod restart;
mod scoring_over_time;
mod secrets_at_rest;
mod seeds;
mod settings;
mod standard_webhooks;
mod store_contract;
mod support;
mod template;
mod token_rotation;
mod triggers;
mod ui_page;
mod webhooks;
