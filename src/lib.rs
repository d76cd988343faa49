//! tldw-ops: a declarative plan/apply reconciler for tldw_server deployments.
//!
//! The pipeline runs one way: `spec` (load, validate) → `model` (compile to resources) →
//! `providers` (observe) → `plan` (pure diff) → `apply` (journal, checkpoints, rollback).
//! `cli` is the thin shell around it. See docs/ and the README for the design.

pub mod apply;
pub mod backups;
pub mod cli;
pub mod deployment;
pub mod drift;
pub mod effective;
pub mod envdiff;
pub mod environments;
pub mod import;
pub mod model;
pub mod observe_api;
pub mod pipeline;
pub mod plan;
pub mod preview;
pub mod promotion;
pub mod providers;
pub mod secrets;
pub mod settings;
pub mod spec;
pub mod state;
