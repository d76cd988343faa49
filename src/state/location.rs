//! What a state location names, without opening it: commands that must not create a store
//! (`state migrate --from`, `envdiff`, `promote`) ask before they open.

use std::path::PathBuf;

/// Whether `location` is a PostgreSQL URL.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The SQLite file a location names (`sqlite://path`, `sqlite:path` or a plain path), or `None`
/// for PostgreSQL and other URLs. Mirrors [`super::open`].
pub fn sqlite_path(location: &str) -> Option<PathBuf> {
    if is_postgres(location) {
        return None;
    }
    let path = location
        .strip_prefix("sqlite://")
        .or_else(|| location.strip_prefix("sqlite:"))
        .unwrap_or(location);
    if path.is_empty() || (path == location && location.contains("://")) {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Whether a store already exists there: always assumed for PostgreSQL (the database is the
/// operator's), and only when the file is there for SQLite (opening would create it).
pub fn exists(location: &str) -> bool {
    match sqlite_path(location) {
        Some(path) => path.is_file(),
        None => is_postgres(location),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_told_apart_without_opening_them() {
        assert!(is_postgres("postgres://u@h/db"));
        assert!(is_postgres("postgresql://u@h/db"));
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
        assert_eq!(sqlite_path("a/state.db"), Some(PathBuf::from("a/state.db")));
        assert_eq!(
            sqlite_path("sqlite:///tmp/state.db"),
            Some(PathBuf::from("/tmp/state.db"))
        );
        assert_eq!(sqlite_path("sqlite:x.db"), Some(PathBuf::from("x.db")));
        assert_eq!(sqlite_path("mysql://h/db"), None);
        assert!(!exists("/nonexistent/state.db"));
    }
}
