//! Throwaway PostgreSQL clusters for tests.
//!
//! This file owns [`PgCluster`]: a private PostgreSQL server created with
//! `initdb` in a fresh temporary directory, listening only on `127.0.0.1` on a
//! free port (unix socket inside the temp dir), with `trust` authentication,
//! superuser `postgres` and durability switched off (`fsync`,
//! `synchronous_commit`, `full_page_writes`) for speed. Tests create one
//! database each and connect with the URL it returns.
//!
//! `initdb` and `pg_ctl` refuse to run as root, so when the effective uid is 0
//! they run as the `postgres` user through `runuser -u postgres --`, and the
//! temp dir is chowned to that user.
//!
//! Cleanup: dropping a [`PgCluster`] stops the server (`pg_ctl stop -m
//! immediate`) and removes the directory. The process-wide cluster from
//! [`shared`] lives in a static and is never dropped, so every cluster also
//! gets a watchdog: a small detached `sh` loop that ignores terminal signals,
//! polls the test process with `kill -0 <pid>` every 0.5 s, and once that
//! process is gone runs `pg_ctl stop -m immediate` and removes the directory.
//! The watchdog exits early when the directory disappears (normal drop). Only
//! a SIGKILL of the watchdog itself leaves a server behind.
//!
//! Availability: [`PgCluster::start`] returns `None` (with a loud note on
//! stderr) when the PostgreSQL server binaries, or `runuser`/the `postgres`
//! user when running as root, are missing, unless `TLDW_OPS_REQUIRE_PG=1`, in
//! which case it panics. Once the binaries are there, any failure to start
//! panics with the reason and the server log. `TLDW_OPS_PG_BIN` may name the
//! directory holding `initdb`, `pg_ctl` and `postgres`.
//!
//! The file is standalone (std and tempfile only).

#![allow(clippy::disallowed_methods)] // test code reads TLDW_OPS_REQUIRE_PG and its own markers directly
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running throwaway PostgreSQL server. Dropping it stops the server and
/// removes its files.
pub struct PgCluster {
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    bin_dir: PathBuf,
    run_as_postgres: bool,
    watchdog: Option<Child>,
}

static SHARED: OnceLock<Option<PgCluster>> = OnceLock::new();

/// One cluster per test process, started on first use; tests share it and
/// create distinct databases (see [`PgCluster::fresh_database`]). Stopped by
/// its watchdog when the process exits. `None` as for [`PgCluster::start`].
pub fn shared() -> Option<&'static PgCluster> {
    SHARED.get_or_init(PgCluster::start).as_ref()
}

fn pg_required() -> bool {
    std::env::var("TLDW_OPS_REQUIRE_PG").as_deref() == Ok("1")
}

fn unavailable(reason: &str) -> Option<PgCluster> {
    if pg_required() {
        panic!("PgCluster: PostgreSQL is required (TLDW_OPS_REQUIRE_PG=1) but {reason}");
    }
    // Written to the stderr handle, not with eprintln!, so that libtest's
    // output capture does not hide it; once per process.
    static NOTED: AtomicBool = AtomicBool::new(false);
    if !NOTED.swap(true, Ordering::SeqCst) {
        let note = format!(
            "\n\
             ****************************************************************\n\
             * NOTE: PostgreSQL tests SKIPPED: {reason}\n\
             * Install the PostgreSQL server (initdb, pg_ctl, postgres) or set\n\
             * TLDW_OPS_REQUIRE_PG=1 to make this a failure.\n\
             ****************************************************************\n"
        );
        let _ = std::io::stderr().write_all(note.as_bytes());
    }
    None
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// Finds a directory holding `initdb`, `pg_ctl` and `postgres`, resolving
/// symlinks so that the client tools next to them are found too.
fn find_bin_dir() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("TLDW_OPS_PG_BIN") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates.push(PathBuf::from("/usr/local/bin"));
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    candidates.extend(versioned.into_iter().map(|(_, p)| p));

    let dir = candidates
        .into_iter()
        .find(|d| has_server_binaries(d))
        .ok_or_else(|| {
            "no directory with initdb, pg_ctl and postgres was found \
             (looked in $TLDW_OPS_PG_BIN, $PATH, /usr/local/bin, /usr/lib/postgresql/*/bin)"
                .to_owned()
        })?;
    let real = std::fs::canonicalize(dir.join("initdb"))
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| has_server_binaries(p));
    Ok(real.unwrap_or(dir))
}

fn effective_uid_is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

fn find_runuser() -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join("runuser"))
        .find(|p| p.is_file())
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn describe(cmd: &str, out: &Output) -> String {
    format!(
        "{cmd} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

/// Runs server-side tools as `postgres` when we are root.
struct Runner {
    runuser: Option<PathBuf>,
    cwd: PathBuf,
}

impl Runner {
    fn command(&self, program: &Path) -> Command {
        let mut cmd = match &self.runuser {
            Some(runuser) => {
                let mut c = Command::new(runuser);
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        // A cwd the postgres user can read (initdb/postgres call getcwd).
        cmd.current_dir(&self.cwd)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST")
            .stdin(Stdio::null());
        cmd
    }
}

impl PgCluster {
    /// Starts a fresh cluster and waits (up to 30 s) until `pg_isready`
    /// accepts connections. `None` when PostgreSQL is unavailable and
    /// `TLDW_OPS_REQUIRE_PG` is not `1`; panics on any other failure.
    pub fn start() -> Option<PgCluster> {
        let bin_dir = match find_bin_dir() {
            Ok(dir) => dir,
            Err(reason) => return unavailable(&reason),
        };
        let runuser = if effective_uid_is_root() {
            let Some(runuser) = find_runuser() else {
                return unavailable("running as root and `runuser` was not found");
            };
            let user_ok = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !user_ok {
                return unavailable("running as root and there is no `postgres` user");
            }
            Some(runuser)
        } else {
            None
        };
        match Self::try_start(bin_dir, runuser) {
            Ok(cluster) => Some(cluster),
            Err(reason) => panic!("PgCluster: failed to start PostgreSQL: {reason}"),
        }
    }

    fn try_start(bin_dir: PathBuf, runuser: Option<PathBuf>) -> Result<PgCluster, String> {
        let base = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("tldw-ops-pg-")
            .tempdir_in(&base)
            .map_err(|e| format!("cannot create a temp dir in {}: {e}", base.display()))?;
        let root = dir.path().to_path_buf();
        let data_dir = root.join("data");
        let log_path = root.join("server.log");
        let run_as_postgres = runuser.is_some();
        if run_as_postgres {
            let out = Command::new("chown")
                .args(["postgres:", "--"])
                .arg(&root)
                .output()
                .map_err(|e| format!("chown: {e}"))?;
            if !out.status.success() {
                return Err(describe("chown postgres:", &out));
            }
        }
        let runner = Runner {
            runuser,
            cwd: root.clone(),
        };

        let out = runner
            .command(&bin_dir.join("initdb"))
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(describe("initdb", &out));
        }

        let conf = format!(
            "\n# tldw-ops test cluster\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n\
             logging_collector = off\n",
            root.display().to_string().replace('\'', "''")
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data_dir.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(|e| format!("cannot write postgresql.conf: {e}"))?;

        let mut cluster = PgCluster {
            dir: Some(dir),
            data_dir,
            log_path,
            port: 0,
            bin_dir,
            run_as_postgres,
            watchdog: None,
        };
        // The port was free when probed but may be taken before postgres
        // binds it: retry on "address in use".
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port().map_err(|e| format!("cannot find a free port: {e}"))?;
            let out = runner
                .command(&cluster.bin_dir.join("pg_ctl"))
                .arg("-D")
                .arg(&cluster.data_dir)
                .arg("-l")
                .arg(&cluster.log_path)
                .args(["-w", "-t", "30", "-o"])
                .arg(format!("-p {}", cluster.port))
                .arg("start")
                .output()
                .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
            if out.status.success() {
                last.clear();
                break;
            }
            let log = cluster.server_log();
            last = format!(
                "{}\n--- server log ---\n{log}",
                describe("pg_ctl start", &out)
            );
            cluster.stop_server();
            if !(log.contains("could not bind") || log.contains("already in use")) {
                return Err(last);
            }
        }
        if !last.is_empty() {
            return Err(last);
        }
        cluster.watchdog = cluster.spawn_watchdog(&runner);
        if let Err(e) = cluster.wait_ready() {
            return Err(format!("{e}\n--- server log ---\n{}", cluster.server_log()));
        }
        Ok(cluster)
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let program = self.client_tool("pg_isready");
        let mut last = String::new();
        while Instant::now() < deadline {
            match Command::new(&program)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "2"])
                .args(["-U", "postgres", "-d", "postgres"])
                .stdin(Stdio::null())
                .output()
            {
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => last = describe("pg_isready", &out),
                Err(e) => last = format!("cannot run {}: {e}", program.display()),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "PostgreSQL not ready after {READY_TIMEOUT:?}: {last}"
        ))
    }

    /// Stops the server and removes the dir once this process is gone, even
    /// if `Drop` never runs (static cluster, `process::exit`, abort).
    fn spawn_watchdog(&self, runner: &Runner) -> Option<Child> {
        const SCRIPT: &str = r#"
trap '' HUP INT QUIT TERM PIPE
while kill -0 "$1" 2>/dev/null && [ -d "$3" ]; do sleep 0.5; done
if [ -d "$3" ]; then
  if [ -n "$5" ]; then
    "$5" -u postgres -- "$4" -D "$3" -m immediate -w -t 20 stop
  else
    "$4" -D "$3" -m immediate -w -t 20 stop
  fi
  rm -rf "$2"
fi
"#;
        let root = self.dir.as_ref()?.path();
        let runuser = runner
            .runuser
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(root)
            .arg(&self.data_dir)
            .arg(self.bin_dir.join("pg_ctl"))
            .arg(runuser)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }

    fn runner(&self) -> Runner {
        Runner {
            runuser: if self.run_as_postgres {
                find_runuser()
            } else {
                None
            },
            cwd: self
                .dir
                .as_ref()
                .map(|d| d.path().to_path_buf())
                .unwrap_or_else(|| PathBuf::from("/")),
        }
    }

    /// `pg_ctl stop -m immediate`, ignoring failures.
    fn stop_server(&self) {
        let _ = self
            .runner()
            .command(&self.bin_dir.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "-t", "20", "stop"])
            .output();
    }

    /// A client tool (`psql`, `pg_isready`, ...) from the server's bin dir,
    /// else from `$PATH`.
    fn client_tool(&self, name: &str) -> PathBuf {
        let local = self.bin_dir.join(name);
        if local.is_file() {
            local
        } else {
            PathBuf::from(name)
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding `initdb`, `pg_ctl`, `postgres` (symlinks
    /// resolved, e.g. `/usr/lib/postgresql/15/bin`).
    pub fn bin_dir(&self) -> PathBuf {
        self.bin_dir.clone()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// The server log so far (empty if unreadable).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs SQL with `psql -X -A -t -v ON_ERROR_STOP=1` against `database`
    /// as `postgres` over TCP; returns stdout or the failure description.
    pub fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.client_tool("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", database, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGOPTIONS")
            .env_remove("PGSERVICE")
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(describe(&format!("psql -c {sql:?}"), &out))
        }
    }

    /// Like [`PgCluster::try_psql`], panicking on failure.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .unwrap_or_else(|e| panic!("PgCluster: {e}"))
    }

    /// Creates database `name` (letters, digits, `_`, `-`; at most 63 bytes)
    /// and returns its URL. Panics if it exists or cannot be created.
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "PgCluster: unsupported database name {name:?}"
        );
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Creates a database with a unique name `<prefix>_<pid>_<n>` and returns
    /// its URL; for tests sharing [`shared`].
    pub fn fresh_database(&self, prefix: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        self.create_database(&format!("{prefix}_{}_{n}", std::process::id()))
    }

    /// Drops database `name` (terminating its connections).
    pub fn drop_database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                name.replace('"', "\"\"")
            ),
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        self.stop_server();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}
