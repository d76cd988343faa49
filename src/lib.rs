//! tldw-ops: a declarative plan/apply reconciler for tldw_server deployments.
//!
//! The pipeline runs one way: `spec` (load, validate) → `model` (compile to resources) →
//! `providers` (observe) → `plan` (pure diff) → `apply` (journal, checkpoints, rollback).
//! `cli` is the thin shell around it. See docs/ and the README for the design.

pub mod apply;
pub mod backups;
pub mod cli;
pub mod deployment;
pub mod drift;
pub mod effective;
pub mod envdiff;
pub mod environments;
pub mod faults;
pub mod import;
pub mod kinds;
pub mod limits;
pub mod model;
pub mod ops;
pub mod pipeline;
pub mod plan;
pub mod preview;
pub mod promotion;
pub mod providers;
pub mod secrets;
pub mod settings;
pub mod spec;
pub mod state;

#[cfg(test)]
mod architecture {
    //! The layering rules, checked on the source so a change that breaks them fails here, not
    //! in review.

    use std::path::Path;

    /// The modules that do I/O or drive it. The pure core must not name them.
    const IMPURE: [&str; 13] = [
        "apply",
        "backups",
        "cli",
        "deployment",
        "drift",
        "envdiff",
        "environments",
        "import",
        "kinds",
        "pipeline",
        "preview",
        "providers",
        "state",
    ];

    fn rust_files(directory: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                out.push(path);
            }
        }
    }

    /// The files of the pure core: `spec`, `model`, `plan`, and the pure half of every kind
    /// (`kinds/<kind>/kind.rs`).
    fn pure_files(source: &Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for core in ["spec", "model", "plan"] {
            rust_files(&source.join(core), &mut files);
        }
        for entry in std::fs::read_dir(source.join("kinds")).unwrap() {
            let half = entry.unwrap().path().join("kind.rs");
            if half.exists() {
                files.push(half);
            }
        }
        files
    }

    /// The code of `file` before its test module: a test may use whatever it checks against.
    fn code_before_tests(file: &Path) -> String {
        let text = std::fs::read_to_string(file).unwrap();
        text.split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn the_pure_core_imports_nothing_that_does_io() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let files = pure_files(&source);
        assert!(files.len() > 10, "the core's files were found");
        assert!(
            files
                .iter()
                .filter(|file| file.ends_with("kind.rs"))
                .count()
                >= 4,
            "the kinds' pure halves were found"
        );
        let mut breaches = Vec::new();
        for file in &files {
            let in_kinds = file.strip_prefix(source.join("kinds")).is_ok();
            for (number, line) in code_before_tests(file).lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                let names_io = IMPURE.iter().any(|module| {
                    code.contains(&format!("crate::{module}::"))
                        || code.contains(&format!("crate::{module};"))
                });
                // A kind's pure half reaches its I/O half through `super`, so it may not use it.
                if names_io || (in_kinds && code.contains("super::")) {
                    breaches.push(format!(
                        "{}:{}: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
        assert!(
            breaches.is_empty(),
            "the pure core names an I/O module:\n{}",
            breaches.join("\n")
        );
    }

    /// Lines of `file` (code, not comments) that name any of `paths`.
    fn naming(file: &Path, paths: &[&str]) -> Vec<String> {
        let text = std::fs::read_to_string(file).unwrap();
        text.lines()
            .enumerate()
            .filter(|(_, line)| {
                let code = line.split("//").next().unwrap_or_default();
                paths.iter().any(|path| code.contains(path))
            })
            .map(|(number, line)| format!("{}:{}: {}", file.display(), number + 1, line.trim()))
            .collect()
    }

    /// The command line sits on top: the library never calls up into it. The planners of changes
    /// and of backups share their service types instead of importing each other, and the
    /// `apply` and `backup` commands import in one direction only.
    #[test]
    fn nothing_calls_up_into_the_cli_and_the_planners_do_not_import_each_other() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&source, &mut files);
        let mut breaches = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(&source).unwrap();
            // lib.rs holds these rules themselves, as strings.
            if relative.starts_with("cli")
                || relative == Path::new("main.rs")
                || relative == Path::new("lib.rs")
            {
                continue;
            }
            breaches.extend(naming(file, &["crate::cli::", "crate::cli;"]));
        }
        breaches.extend(naming(
            &source.join("plan/backups.rs"),
            &["super::diff", "crate::plan::diff"],
        ));
        // `backup` runs its sets through `apply`'s executor; `apply` needs nothing of `backup`.
        breaches.extend(naming(
            &source.join("cli/apply.rs"),
            &["super::backup", "crate::cli::backup"],
        ));
        breaches.extend(naming(
            &source.join("ops/apply.rs"),
            &["super::backup", "crate::ops::backup"],
        ));
        assert!(
            breaches.is_empty(),
            "an upward or circular import:\n{}",
            breaches.join("\n")
        );
    }

    /// The library operations return values: they print nothing and pick no exit status, which
    /// is the command line's work (`cli/` prints what `ops/` returns and maps it to a status).
    #[test]
    fn the_operations_neither_print_nor_pick_an_exit_status() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&source.join("ops"), &mut files);
        assert!(files.len() > 10, "the operations' files were found");
        let mut breaches = Vec::new();
        for file in &files {
            breaches.extend(naming(
                file,
                &[
                    "println!",
                    "eprintln!",
                    "print!(",
                    "std::io::stdout",
                    "std::io::stderr",
                    "ExitStatus",
                ],
            ));
        }
        assert!(
            breaches.is_empty(),
            "an operation prints or picks an exit status:\n{}",
            breaches.join("\n")
        );
    }

    /// The top-level modules import each other in one direction only: no module reaches itself
    /// through others. Test modules are left out (a test may use whatever it checks against).
    #[test]
    fn the_top_level_modules_form_no_import_cycle() {
        use std::collections::{BTreeMap, BTreeSet};
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&source, &mut files);
        let module_of = |file: &Path| -> Option<String> {
            let relative = file.strip_prefix(&source).ok()?;
            let first = relative.components().next()?.as_os_str().to_str()?;
            let name = first.strip_suffix(".rs").unwrap_or(first);
            (!matches!(name, "lib" | "main")).then(|| name.to_string())
        };
        let modules: BTreeSet<String> = files.iter().filter_map(|file| module_of(file)).collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let Some(from) = module_of(file) else {
                continue;
            };
            if file.components().any(|part| part.as_os_str() == "tests") {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let text = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or_default();
                for (at, _) in code.match_indices("crate::") {
                    let rest = &code[at + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != from && modules.contains(&name) {
                        edges.entry(from.clone()).or_default().insert(name);
                    }
                }
            }
        }
        // Depth-first search; a module met again on the current path closes a cycle.
        fn visit(
            module: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(start) = path.iter().position(|seen| seen == module) {
                let mut cycle = path[start..].to_vec();
                cycle.push(module.to_string());
                return Some(cycle);
            }
            if done.contains(module) {
                return None;
            }
            path.push(module.to_string());
            for next in edges.get(module).into_iter().flatten() {
                if let Some(cycle) = visit(next, edges, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            done.insert(module.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for module in &modules {
            if let Some(cycle) = visit(module, &edges, &mut Vec::new(), &mut done) {
                panic!("an import cycle: {}", cycle.join(" -> "));
            }
        }
        assert!(edges.len() > 5, "the module graph was read: {edges:?}");
    }
}
