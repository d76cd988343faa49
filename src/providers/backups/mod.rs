//! The backups provider: owns `backup.set.*`. It creates backup sets (an online copy of every
//! SQLite database, `pg_dump -Fc` for a PostgreSQL AuthNZ database, the `.env` and config.txt),
//! records them in a checksummed manifest written last, verifies them, restores them, and deletes
//! the sets that the keep policy releases.
//!
//! What to create and what to prune is decided by the pure functions in [`policy`], which take
//! the clock as an input; everything else here does I/O.

pub mod policy;

pub use policy::{Decision, SetInfo, due, parse_set_id, prune, set_id};
