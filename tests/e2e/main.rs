//! End-to-end tests: the real binary against real files in temporary directories, real SQLite
//! and PostgreSQL state, and the fake tldw admin API over loopback HTTP.

#[path = "../support/mod.rs"]
mod support;

mod api_provider;
mod apply;
mod backup_cli;
mod backups;
mod common;
mod plan;
mod support_contract;
mod validate;
