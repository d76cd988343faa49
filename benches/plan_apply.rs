//! Plan and apply benchmark: the real binary, as a process, against deployments with the real
//! config.txt and `.env` plus N managed config.txt keys and N/2 managed `.env` keys.
//!
//! Run with `cargo bench --bench plan_apply` (release build). It prints a Markdown table of
//! median wall times and peak memory for no-op plans, full-change plans, full applies and
//! applies of a 1% change, at several sizes. Timings are noisy on a shared machine: compare
//! the ratios within one run. Set `TLDW_OPS_BENCH_SIZES=100,1000` to choose sizes, and
//! `TLDW_OPS_BENCH_BASELINE=/path/to/an/older/tldw-ops` to time its no-op plans against this
//! build's, alternating the two, in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tldw-ops");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    fn new(size: usize) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let bench = Bench { dir };
        bench.reset_files();
        let config =
            std::fs::read_to_string(Path::new(ROOT).join("fixtures/tldw_server/config.txt"))
                .unwrap();
        let sections: Vec<String> = config
            .lines()
            .filter_map(|line| {
                line.strip_prefix('[')
                    .and_then(|rest| rest.strip_suffix(']'))
            })
            .map(str::to_string)
            .collect();
        let mut yaml = String::from(
            "apiVersion: tldw-ops/v1\nenvironment: bench\ntarget:\n  root: site\nenv:\n",
        );
        for index in 0..size / 2 {
            yaml.push_str(&format!("  BENCH_SETTING_{index:05}: value-{index}\n"));
        }
        yaml.push_str("config:\n");
        let per_section = size.div_ceil(sections.len());
        let mut written = 0;
        for section in &sections {
            if written >= size {
                break;
            }
            yaml.push_str(&format!("  {section:?}:\n"));
            for _ in 0..per_section.min(size - written) {
                yaml.push_str(&format!("    bench_key_{written:05}: setting {written}\n"));
                written += 1;
            }
        }
        std::fs::write(bench.path().join("tldw-ops.yaml"), yaml).unwrap();
        bench
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config_dir(&self) -> PathBuf {
        self.path().join("site/tldw_Server_API/Config_Files")
    }

    /// The shipped files, and no state: the next plan changes every managed key.
    fn reset_files(&self) {
        std::fs::create_dir_all(self.config_dir()).unwrap();
        std::fs::copy(
            Path::new(ROOT).join("fixtures/tldw_server/env.example"),
            self.config_dir().join(".env"),
        )
        .unwrap();
        std::fs::copy(
            Path::new(ROOT).join("fixtures/tldw_server/config.txt"),
            self.config_dir().join("config.txt"),
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(self.path().join(".tldw-ops"));
    }

    /// Changes the value of one in a hundred managed keys in both files.
    fn drift_one_percent(&self) {
        for file in [".env", "config.txt"] {
            let path = self.config_dir().join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let mut count = 0;
            let changed: Vec<String> = text
                .lines()
                .map(|line| {
                    if line.starts_with("BENCH_SETTING_") || line.starts_with("bench_key_") {
                        count += 1;
                        if count % 100 == 0 {
                            return format!("{line}-drifted");
                        }
                    }
                    line.to_string()
                })
                .collect();
            std::fs::write(&path, changed.join("\n") + "\n").unwrap();
        }
    }

    /// Runs the binary; returns wall time and peak resident memory in KiB.
    fn run(&self, args: &[&str]) -> (Duration, u64) {
        self.run_with(Path::new(BIN), args)
    }

    /// [`Bench::run`] with another build of tldw-ops.
    fn run_with(&self, binary: &Path, args: &[&str]) -> (Duration, u64) {
        let report = self.path().join("time.txt");
        let started = Instant::now();
        let status = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&report)
            .arg(binary)
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        let elapsed = started.elapsed();
        assert!(
            status.success() || status.code() == Some(2),
            "{args:?} failed: {status}"
        );
        let peak = std::fs::read_to_string(&report)
            .ok()
            .and_then(|text| text.trim().lines().last()?.parse().ok())
            .unwrap_or(0);
        (elapsed, peak)
    }
}

fn median(mut samples: Vec<(Duration, u64)>) -> (Duration, u64) {
    samples.sort_by_key(|sample| sample.0);
    let peak = samples.iter().map(|sample| sample.1).max().unwrap_or(0);
    (samples[samples.len() / 2].0, peak)
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

fn main() {
    let sizes = bench_sizes();
    let cores = std::thread::available_parallelism()
        .map(|count| count.get())
        .unwrap_or(1);
    println!(
        "tldw-ops plan/apply benchmark: {cores} cores, release build, median of repeated runs, the binary as a process\n"
    );
    println!(
        "| managed settings (config.txt + .env) | no-op plan | full-change plan | apply, all changed | apply, 1% changed | peak memory |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for &size in &sizes {
        let bench = Bench::new(size);
        let runs = if size >= 10_000 { 5 } else { 15 };
        let mut full_plan = Vec::new();
        let mut apply_all = Vec::new();
        let mut apply_some = Vec::new();
        let mut noop = Vec::new();
        for _ in 0..runs {
            bench.reset_files();
            full_plan.push(bench.run(&["plan"]));
            apply_all.push(bench.run(&["apply", "--auto-approve"]));
            noop.push(bench.run(&["plan"]));
            bench.drift_one_percent();
            apply_some.push(bench.run(&["apply", "--auto-approve"]));
        }
        let (noop_time, noop_peak) = median(noop);
        let (plan_time, plan_peak) = median(full_plan);
        let (apply_time, apply_peak) = median(apply_all);
        let (some_time, some_peak) = median(apply_some);
        let peak = noop_peak.max(plan_peak).max(apply_peak).max(some_peak);
        println!(
            "| {} + {} | {} | {} | {} | {} | {:.1} MB |",
            size,
            size / 2,
            ms(noop_time),
            ms(plan_time),
            ms(apply_time),
            ms(some_time),
            peak as f64 / 1024.0
        );
    }
    #[allow(clippy::disallowed_methods)]
    if let Ok(baseline) = std::env::var("TLDW_OPS_BENCH_BASELINE") {
        compare_with(Path::new(&baseline), &sizes);
    }
}

#[allow(clippy::disallowed_methods)]
fn bench_sizes() -> Vec<usize> {
    std::env::var("TLDW_OPS_BENCH_SIZES")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|size| size.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![100, 1000, 10_000])
}

/// No-op plans of this build and of `baseline`, each against its own copy of the same
/// deployment and state, run alternately so both see the same machine.
fn compare_with(baseline: &Path, sizes: &[usize]) {
    println!(
        "\nNo-op plan, this build against {} (alternating runs, medians)\n",
        baseline.display()
    );
    println!("| managed settings | this build | baseline | ratio |");
    println!("|---|---:|---:|---:|");
    for &size in sizes {
        let ours = Bench::new(size);
        let theirs = Bench::new(size);
        ours.run(&["apply", "--auto-approve"]);
        theirs.run_with(baseline, &["apply", "--auto-approve"]);
        let runs = if size >= 10_000 { 9 } else { 21 };
        let (mut mine, mut old) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            mine.push(ours.run(&["plan"]));
            old.push(theirs.run_with(baseline, &["plan"]));
        }
        let (mine, _) = median(mine);
        let (old, _) = median(old);
        println!(
            "| {} + {} | {} | {} | {:.2} |",
            size,
            size / 2,
            ms(mine),
            ms(old),
            mine.as_secs_f64() / old.as_secs_f64()
        );
    }
}
