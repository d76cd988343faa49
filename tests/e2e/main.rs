//! End-to-end tests: the real binary against real files in temporary directories, real SQLite
//! and PostgreSQL state, and the fake tldw admin API over loopback HTTP.

#[path = "../support/mod.rs"]
mod support;

mod backups;
mod support_contract;
