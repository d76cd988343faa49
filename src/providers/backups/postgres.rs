//! PostgreSQL through its client tools: `pg_dump -Fc` to back up, `pg_restore --list` (and a
//! full read into `/dev/null`) to verify a dump, `pg_restore -c --if-exists` to restore.
//!
//! The password is the one thing here that must never leak. It reaches the tool only through
//! `PGPASSWORD` in the child's environment: never argv (visible in `ps`), never the manifest,
//! never an error, log line or `Debug` string. A URL that carries a password anyway has it moved
//! out before the URL is used or shown, and tool output is scrubbed of it.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::BackupError;

/// A database to dump to or restore into: a URL without password, and the password apart.
#[derive(Clone)]
pub(super) struct PgDatabase {
    url: String,
    password: Option<String>,
}

impl fmt::Debug for PgDatabase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PgDatabase")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "(redacted)"))
            .finish()
    }
}

impl PgDatabase {
    /// Splits any password out of `url`; an explicit `password` wins over one in the URL.
    pub fn new(url: &str, password: Option<&str>) -> Result<PgDatabase, BackupError> {
        let (url, url_password) = split_password(url)?;
        Ok(PgDatabase {
            url,
            password: password.map(str::to_string).or(url_password),
        })
    }

    /// The URL as it may be shown and recorded.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Removes the password from a `postgres://` URL (userinfo or `password=` query parameter) and
/// returns it percent-decoded.
fn split_password(url: &str) -> Result<(String, Option<String>), BackupError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(BackupError::NotAPostgresUrl);
    };
    if !matches!(scheme, "postgres" | "postgresql") {
        return Err(BackupError::NotAPostgresUrl);
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut password = None;
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, secret)) => {
                password = Some(percent_decode(secret));
                format!("{user}@{host}")
            }
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let mut kept = Vec::new();
            for pair in query.split('&') {
                match pair.split_once('=') {
                    Some(("password", value)) => {
                        password = password.or(Some(percent_decode(value)));
                    }
                    _ => kept.push(pair),
                }
            }
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    Ok((format!("{scheme}://{authority}{tail}"), password))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let decoded = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The client tool `program`, from `bin_dir` when given, else found on `PATH` by the OS.
fn tool(bin_dir: Option<&Path>, program: &str) -> PathBuf {
    match bin_dir {
        Some(directory) => directory.join(program),
        None => PathBuf::from(program),
    }
}

/// Runs a client tool with the password (if any) in its environment and returns its stdout. On
/// failure the error carries the tool's stderr with the password scrubbed.
async fn run(
    bin_dir: Option<&Path>,
    program: &str,
    arguments: Vec<OsString>,
    database: Option<&PgDatabase>,
    shown_target: &str,
) -> Result<Vec<u8>, BackupError> {
    let mut command = tokio::process::Command::new(tool(bin_dir, program));
    command
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(password) = database.and_then(|database| database.password.as_deref()) {
        command.env("PGPASSWORD", password);
    }
    let output = command
        .output()
        .await
        .map_err(|source| BackupError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if let Some(password) = database
        .and_then(|database| database.password.as_deref())
        .filter(|password| !password.is_empty())
    {
        text = text.replace(password, "(redacted)");
    }
    if text.is_empty() {
        text = "no output".to_string();
    }
    Err(BackupError::Tool {
        program: program.to_string(),
        target: shown_target.to_string(),
        status: output.status.to_string(),
        output: text,
    })
}

/// `pg_dump -Fc` of `database` into the new file `target`.
pub(super) async fn dump(
    bin_dir: Option<&Path>,
    database: &PgDatabase,
    target: &Path,
) -> Result<(), BackupError> {
    let arguments = vec![
        OsString::from("--format=custom"),
        OsString::from("--no-password"),
        OsString::from("--file"),
        target.as_os_str().to_os_string(),
        OsString::from("--dbname"),
        OsString::from(&database.url),
    ];
    run(bin_dir, "pg_dump", arguments, Some(database), &database.url).await?;
    Ok(())
}

/// Checks a dump without a server: `pg_restore --list` reads its table of contents, then
/// `pg_restore --file=/dev/null` reads every data block. The second run is needed because the
/// table of contents sits at the start of the file: a dump cut short after it still lists fine.
pub(super) async fn check_dump(bin_dir: Option<&Path>, dump: &Path) -> Result<(), BackupError> {
    let shown = dump.display().to_string();
    let list = vec![OsString::from("--list"), dump.as_os_str().to_os_string()];
    run(bin_dir, "pg_restore", list, None, &shown).await?;
    let read_all = vec![
        OsString::from("--file=/dev/null"),
        dump.as_os_str().to_os_string(),
    ];
    run(bin_dir, "pg_restore", read_all, None, &shown).await?;
    Ok(())
}

/// `pg_restore --clean --if-exists` of `dump` into `database`, in one transaction so a failure
/// leaves the database as it was.
pub(super) async fn restore(
    bin_dir: Option<&Path>,
    database: &PgDatabase,
    dump: &Path,
) -> Result<(), BackupError> {
    let arguments = vec![
        OsString::from("--clean"),
        OsString::from("--if-exists"),
        OsString::from("--single-transaction"),
        OsString::from("--no-password"),
        OsString::from("--dbname"),
        OsString::from(&database.url),
        dump.as_os_str().to_os_string(),
    ];
    run(
        bin_dir,
        "pg_restore",
        arguments,
        Some(database),
        &database.url,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_moved_out_and_decoded() {
        let database = PgDatabase::new(
            "postgres://tldw:p%40ss:w0rd@db:5432/authnz?sslmode=require",
            None,
        )
        .unwrap();
        assert_eq!(
            database.url(),
            "postgres://tldw@db:5432/authnz?sslmode=require"
        );
        assert_eq!(database.password.as_deref(), Some("p@ss:w0rd"));
    }

    #[test]
    fn a_password_query_parameter_is_moved_out_too() {
        let database = PgDatabase::new(
            "postgresql://tldw@db/authnz?password=hunter2&sslmode=disable",
            None,
        )
        .unwrap();
        assert_eq!(
            database.url(),
            "postgresql://tldw@db/authnz?sslmode=disable"
        );
        assert_eq!(database.password.as_deref(), Some("hunter2"));
    }

    #[test]
    fn an_explicit_password_wins_and_never_shows_in_debug() {
        let database = PgDatabase::new("postgres://tldw:old@db/authnz", Some("s3cret")).unwrap();
        assert_eq!(database.password.as_deref(), Some("s3cret"));
        let shown = format!("{database:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("old"),
            "{shown}"
        );
    }

    #[test]
    fn only_postgres_urls_are_accepted() {
        for url in [
            "sqlite:///./Databases/users.db",
            "host=db password=x",
            "mysql://a@b/c",
        ] {
            assert!(matches!(
                PgDatabase::new(url, None),
                Err(BackupError::NotAPostgresUrl)
            ));
        }
    }

    #[tokio::test]
    async fn a_failing_tool_reports_its_output_without_the_password() {
        let database = PgDatabase::new(
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
            Some("s3cret-pw"),
        )
        .unwrap();
        let directory = tempfile::tempdir().unwrap();
        let error = dump(None, &database, &directory.path().join("x.pgdump"))
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("pg_dump"), "{shown}");
    }
}
