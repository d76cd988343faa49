//! Providers: the only code that touches the deployment. Each owns a set of addresses and can
//! observe them, apply a step, capture a before-image and restore it.

pub mod backups;
pub mod checkpoint;
pub mod config_file;
pub mod env_file;
pub mod files;
pub mod service;
pub mod tldw_api;
