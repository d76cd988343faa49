//! Rebuilds the crate when a migration is added or edited: `sqlx::migrate!` embeds the files of
//! `migrations/` at compile time, but cargo does not know it reads that directory (on stable
//! Rust the macro cannot tell it), so a new migration would be missed until some source file
//! changed.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
