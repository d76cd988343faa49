//! Backup benchmark: `create_set` of a per-user tree of SQLite databases in WAL mode against
//! `cp -r` of the same tree, in the same run, on the same disk.
//!
//! Run with `cargo bench --bench backup` (release build). By default 200 users with one
//! database of about 4 MB each (800 MB). It prints the median wall time of each method over a
//! few runs and the ratios. `create_set` copies each database consistently (while a server may
//! be writing), hashes every byte and fsyncs the set before writing its manifest; `cp -r` does
//! none of that, so `cp -r` followed by `sync` is shown as well, for fairness.
//!
//! The source is in the page cache for every method (it was just written, and every method
//! reads it once before the first timed run); each copy is deleted and the disk synced before
//! the next method starts, so no method pays for another's writes. Timings are noisy on a shared
//! machine: compare the ratios within one run. Knobs: `TLDW_OPS_BENCH_USERS` (200),
//! `TLDW_OPS_BENCH_MB` (4), `TLDW_OPS_BENCH_RUNS` (3), `TLDW_OPS_BENCH_CONCURRENCY` (a list,
//! default `2,4,8`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use tldw_ops::providers::backups::{BackupSource, CreateOptions, create_set_with};
use tldw_ops::spec::types::BackupItem;

#[allow(clippy::disallowed_methods)]
fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::disallowed_methods)]
fn concurrencies() -> Vec<usize> {
    std::env::var("TLDW_OPS_BENCH_CONCURRENCY")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![2, 4, 8])
}

/// One database of about `megabytes` MB in WAL mode, as tldw_server leaves a user's media DB.
async fn database(path: &Path, megabytes: i64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off)
        .connect()
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE media (id INTEGER PRIMARY KEY, title TEXT NOT NULL, content BLOB NOT NULL)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    // Two rows of 1.4 KB to a 4 KiB page, as a media table of extracted text holds.
    let rows = megabytes * 1024 * 1024 / 2_048;
    sqlx::query(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1) \
         INSERT INTO media (id, title, content) SELECT x, 'title ' || x, randomblob(1400) FROM n",
    )
    .bind(rows)
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
}

fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let metadata = entry.metadata().unwrap();
        total += if metadata.is_dir() {
            tree_size(&entry.path())
        } else {
            metadata.len()
        };
    }
    total
}

fn read_tree(path: &Path) {
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        if entry.metadata().unwrap().is_dir() {
            read_tree(&entry.path());
        } else {
            let _ = std::fs::read(entry.path()).unwrap();
        }
    }
}

fn sync() {
    assert!(Command::new("sync").status().unwrap().success());
}

fn remove(path: &Path) {
    if path.exists() {
        std::fs::remove_dir_all(path).unwrap();
    }
    sync();
}

fn timed(work: impl FnOnce()) -> Duration {
    let started = Instant::now();
    work();
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn main() {
    let users: usize = knob("TLDW_OPS_BENCH_USERS", 200);
    let megabytes: i64 = knob("TLDW_OPS_BENCH_MB", 4);
    let runs: usize = knob("TLDW_OPS_BENCH_RUNS", 3);
    let concurrencies = concurrencies();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("user_databases");
    let started = Instant::now();
    runtime.block_on(async {
        for user in 1..=users {
            database(
                &base.join(user.to_string()).join("Media_DB_v2.db"),
                megabytes,
            )
            .await;
        }
    });
    let bytes = tree_size(&base);
    eprintln!(
        "made {users} databases, {:.0} MB in all, in {:.1} s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    read_tree(&base);
    sync();

    let copy = work.path().join("copy");
    let backups = work.path().join("backups");
    let source = BackupSource {
        environment: "bench".to_string(),
        authnz: None,
        user_db_base_dir: Some(base.clone()),
        env_file: None,
        config_file: None,
        pg_bin_dir: None,
    };
    let mut cp = Vec::new();
    let mut cp_sync = Vec::new();
    let mut create: Vec<Vec<Duration>> = vec![Vec::new(); concurrencies.len()];
    for run in 0..runs {
        cp.push(timed(|| {
            let status = Command::new("cp").arg("-r").arg(&base).arg(&copy).status();
            assert!(status.unwrap().success());
        }));
        remove(&copy);
        cp_sync.push(timed(|| {
            let status = Command::new("cp").arg("-r").arg(&base).arg(&copy).status();
            assert!(status.unwrap().success());
            sync();
        }));
        remove(&copy);
        for (index, &concurrency) in concurrencies.iter().enumerate() {
            let set_id = format!("2026-11-25T0{run}0{index}00Z");
            create[index].push(timed(|| {
                let manifest = runtime
                    .block_on(create_set_with(
                        &backups,
                        &source,
                        &[BackupItem::UserDatabases],
                        &set_id,
                        "2026-11-25T03:00:00Z".parse().unwrap(),
                        &CreateOptions { concurrency },
                    ))
                    .unwrap();
                assert_eq!(manifest.items.len(), users);
            }));
            remove(&backups);
        }
        eprintln!("run {} of {runs} done", run + 1);
    }
    let cp = median(cp);
    let cp_sync = median(cp_sync);
    println!(
        "\n{users} SQLite databases (WAL mode) of about {megabytes} MB, {:.0} MB in all; median of {runs} runs\n",
        bytes as f64 / 1e6
    );
    println!("| method | wall time | vs cp -r | vs cp -r + sync |");
    println!("|---|---:|---:|---:|");
    println!("| cp -r | {} | 1.00× | |", seconds(cp));
    println!(
        "| cp -r + sync | {} | {:.2}× | 1.00× |",
        seconds(cp_sync),
        cp_sync.as_secs_f64() / cp.as_secs_f64()
    );
    for (concurrency, times) in concurrencies.iter().zip(create) {
        let time = median(times);
        println!(
            "| create_set, {concurrency} at once | {} | {:.2}× | {:.2}× |",
            seconds(time),
            time.as_secs_f64() / cp.as_secs_f64(),
            time.as_secs_f64() / cp_sync.as_secs_f64()
        );
    }
}
