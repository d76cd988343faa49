//! End-to-end tests: the real binary against real files in temporary directories, real SQLite
//! and PostgreSQL state, and the fake tldw admin API over loopback HTTP.
//!
//! They drive the clock and inject faults through the test hooks, which only a build with the
//! `test-hooks` feature honours: run them with `cargo test --locked --features test-hooks`.
//! (Clippy lints this target without the feature too, hence `not(clippy)`.)

#[cfg(all(not(feature = "test-hooks"), not(clippy)))]
compile_error!(
    "the end-to-end tests need the test hooks: run `cargo test --locked --features test-hooks` \
     (see docs/testing.md)"
);

#[path = "../support/mod.rs"]
mod support;

mod api_apply;
mod api_provider;
mod apply;
mod backup_cli;
mod backups;
mod bare_release;
mod ci;
mod color;
mod common;
mod drift;
mod drill_policy;
mod envdiff;
mod environments;
mod help;
mod hostile;
mod import;
mod paths;
mod plan;
mod postgres_state;
mod preflight;
mod promotion;
mod release;
mod saved_plans;
mod secrets;
mod smoke;
mod support_contract;
mod validate;
mod writable;
