//! End-to-end tests: the real binary against real files in temporary directories, real SQLite
//! and PostgreSQL state, and the fake tldw admin API over loopback HTTP.

#[path = "../support/mod.rs"]
mod support;

mod api_apply;
mod api_provider;
mod apply;
mod backups;
mod common;
mod drift;
mod import;
mod plan;
mod secrets;
mod support_contract;
mod validate;
