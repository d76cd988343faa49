//! End-to-end tests: the real binary against real files in temporary directories, real SQLite
//! and PostgreSQL state, and the fake tldw admin API over loopback HTTP.

#[path = "../support/mod.rs"]
mod support;

mod api_apply;
mod api_provider;
mod apply;
mod backup_cli;
mod backups;
mod ci;
mod color;
mod common;
mod drift;
mod envdiff;
mod environments;
mod help;
mod import;
mod paths;
mod plan;
mod postgres_state;
mod preflight;
mod promotion;
mod saved_plans;
mod secrets;
mod support_contract;
mod validate;
mod writable;
