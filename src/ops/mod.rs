//! The commands as library operations, one file per command (as cargo's `ops` beside its
//! `commands`): each takes what the command line parsed and returns what happened, as values.
//! `cli/` parses, calls one of these, prints the result and picks the exit status. Nothing here
//! imports `cli`, prints, picks an exit status, or reads the process environment except through
//! `Settings` (the architecture test in lib.rs checks the first three).

pub mod apply;
pub mod backup;
pub mod drift;
pub mod envdiff;
pub mod gate;
pub mod history;
pub mod import;
pub mod plan;
pub mod promote;
pub mod rollback;
pub mod secrets;
pub mod show;
pub mod state;
pub mod validate;
