//! Admin API benchmark: the real binary against the fake tldw admin server on loopback with
//! 10,000 users. Times a no-op plan over 10,000 quota users (resolving every username through
//! the paginated user list and reading every quota with bounded concurrency) and an apply of
//! 1,000 quota changes. Run with `cargo bench --bench api`.

#[path = "../tests/support/fake_tldw.rs"]
mod fake_tldw;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fake_tldw::{FakeTldw, FakeTldwConfig};

const BIN: &str = env!("CARGO_BIN_EXE_tldw-ops");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const USERS: usize = 10_000;

fn write_site(directory: &Path, url: &str, quota_of: impl Fn(usize) -> u64) {
    let config_dir = directory.join("site/tldw_Server_API/Config_Files");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::copy(
        Path::new(ROOT).join("fixtures/tldw_server/env.example"),
        config_dir.join(".env"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(ROOT).join("fixtures/tldw_server/config.txt"),
        config_dir.join("config.txt"),
    )
    .unwrap();
    let mut yaml = format!(
        "apiVersion: tldw-ops/v1\nenvironment: bench\ntarget:\n  root: site\n  api:\n    url: {url}\n    token: {{ from_env: BENCH_TOKEN }}\nquotas:\n  users:\n"
    );
    for index in 1..=USERS {
        yaml.push_str(&format!("    user{index:04}: {}\n", quota_of(index)));
    }
    std::fs::write(directory.join("tldw-ops.yaml"), yaml).unwrap();
}

fn run(directory: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = Command::new(BIN)
        .args(args)
        .current_dir(directory)
        .env("BENCH_TOKEN", "admin-token")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success() || status.code() == Some(2),
        "{args:?}: {status}"
    );
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let cores = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1);
    let fake = FakeTldw::start(FakeTldwConfig {
        users: USERS,
        ..FakeTldwConfig::default()
    });
    let directory = tempfile::tempdir().unwrap();
    // Every user at the fake's seed quota: the plan has nothing to do.
    write_site(directory.path(), &fake.url(), |_| 5120);
    let noop: Vec<Duration> = (0..5).map(|_| run(directory.path(), &["plan"])).collect();
    // 1,000 users change.
    let mut applies = Vec::new();
    for round in 0..3u64 {
        write_site(directory.path(), &fake.url(), |index| {
            if index % 10 == 0 { 6000 + round } else { 5120 }
        });
        applies.push(run(directory.path(), &["apply", "--auto-approve"]));
    }
    println!(
        "tldw-ops admin API benchmark: {cores} cores, release build, fake tldw server on loopback, {USERS} users, 16 requests in flight\n"
    );
    println!("| operation | median wall time |");
    println!("|---|---:|");
    println!(
        "| no-op plan over {USERS} quota users | {:.0} ms |",
        median(noop).as_secs_f64() * 1000.0
    );
    println!(
        "| apply of 1,000 quota changes | {:.0} ms |",
        median(applies).as_secs_f64() * 1000.0
    );
}
