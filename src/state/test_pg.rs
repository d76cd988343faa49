//! A throwaway PostgreSQL cluster for the state store's unit tests (test builds only): the
//! shared integration-test harness in `tests/support/` is out of reach of unit tests.
//!
//! One cluster serves the tests that run at the same time (`initdb` takes seconds); each test
//! gets its own database in it. The cluster lives in a temporary directory, listens on
//! 127.0.0.1 on a free port with its socket in that directory, trusts every connection and
//! does not fsync. It is stopped, and its directory removed, when the last test using it drops
//! its [`PgDatabase`]. `initdb` refuses to run as root, so as root the cluster runs as the
//! `postgres` user. Without the binaries the PostgreSQL half of a test is skipped with a loud
//! note, unless `TLDW_OPS_REQUIRE_PG=1`, which makes it a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A fresh database in the shared cluster. Keeps the cluster alive.
pub(super) struct PgDatabase {
    pub(super) url: String,
    /// The same URL with a password (which trust authentication ignores).
    pub(super) url_with_password: String,
    _cluster: Arc<Cluster>,
}

struct Cluster {
    directory: tempfile::TempDir,
    port: u16,
    binaries: PathBuf,
    as_postgres: bool,
}

static SHARED: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// A new, empty database, or `None` when PostgreSQL is not installed and not required.
pub(super) async fn database(test: &str) -> Option<PgDatabase> {
    let cluster = shared_cluster(test)?;
    let name = format!(
        "state_{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    let admin_url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|error| panic!("connecting to the test cluster at {admin_url}: {error}"));
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("creating database {name}: {error}"));
    admin.close().await.ok();
    Some(PgDatabase {
        url: format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port),
        url_with_password: format!(
            "postgres://postgres:hunter2@127.0.0.1:{}/{name}",
            cluster.port
        ),
        _cluster: cluster,
    })
}

fn shared_cluster(test: &str) -> Option<Arc<Cluster>> {
    // A panic while starting poisons the lock; the next test starts afresh.
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(cluster) = shared.upgrade() {
        return Some(cluster);
    }
    let Some(binaries) = find_binaries() else {
        if pg_required() {
            panic!(
                "TLDW_OPS_REQUIRE_PG=1 but initdb and pg_ctl were not found (PATH, /usr/local/bin, \
                 /usr/lib/postgresql/*/bin)"
            );
        }
        eprintln!(
            "\n*** NOTE: PostgreSQL (initdb, pg_ctl) is not installed: `{test}` ran against \
             SQLite only. Set TLDW_OPS_REQUIRE_PG=1 to make this a failure. ***\n"
        );
        return None;
    };
    let cluster = Arc::new(Cluster::start(binaries));
    *shared = Arc::downgrade(&cluster);
    Some(cluster)
}

#[allow(clippy::disallowed_methods)]
fn pg_required() -> bool {
    std::env::var("TLDW_OPS_REQUIRE_PG").is_ok_and(|value| value == "1")
}

/// The directory holding both `initdb` and `pg_ctl`.
#[allow(clippy::disallowed_methods)]
fn find_binaries() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/local/bin"));
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    versions.sort();
    candidates.extend(versions.into_iter().rev());
    candidates
        .into_iter()
        .find(|directory| directory.join("initdb").is_file() && directory.join("pg_ctl").is_file())
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free local port")
}

impl Cluster {
    fn start(binaries: PathBuf) -> Cluster {
        let directory = tempfile::Builder::new()
            .prefix("tldw-ops-state-pg-")
            .tempdir()
            .expect("a temporary directory for the test cluster");
        let as_postgres = running_as_root();
        if as_postgres {
            let (uid, gid) = (postgres_id("-u"), postgres_id("-g"));
            std::os::unix::fs::chown(directory.path(), Some(uid), Some(gid))
                .expect("chown of the test cluster directory to postgres");
        }
        let mut cluster = Cluster {
            directory,
            port: 0,
            binaries,
            as_postgres,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        // Another process may take the port between our probe and the server's bind: retry.
        for attempt in 1..=3 {
            cluster.port = free_port();
            let server_options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
                cluster.port,
                cluster.directory.path().display()
            );
            let log = cluster.directory.path().join("server.log");
            let started = cluster.try_run(
                "pg_ctl",
                &[
                    "-D",
                    &data,
                    "-l",
                    &log.display().to_string(),
                    "-o",
                    &server_options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            );
            match started {
                Ok(()) => return cluster,
                Err(error) if attempt < 3 => {
                    eprintln!("test cluster did not start, retrying: {error}")
                }
                Err(error) => {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("the test cluster did not start: {error}\n{log}");
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn data(&self) -> String {
        self.directory.path().join("data").display().to_string()
    }

    fn command(&self, program: &str) -> Command {
        let program = self.binaries.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn try_run(&self, program: &str, arguments: &[&str]) -> Result<(), String> {
        let output = self
            .command(program)
            .args(arguments)
            .current_dir(self.directory.path())
            .output()
            .map_err(|error| format!("{program}: {error}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {}: {}\n{}{}",
                arguments.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn run(&self, program: &str, arguments: &[&str]) {
        if let Err(error) = self.try_run(program, arguments) {
            panic!("{error}");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.port == 0 || !Path::new(&self.data()).join("postmaster.pid").exists() {
            return;
        }
        let data = self.data();
        if let Err(error) = self.try_run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
        {
            eprintln!("stopping the test cluster: {error}");
        }
    }
}

fn postgres_id(flag: &str) -> u32 {
    let output = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("running id");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the postgres user exists when running as root")
}
