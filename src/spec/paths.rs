//! The paths of `target` stay inside `target.root`. A desired-state file may come from a pull
//! request; without this check `env_file: ../../etc/cron.d/x` would point apply's writes
//! anywhere the operator can write. `validate` checks the text (an absolute path, or `..` that
//! climbs out); `plan` checks again with symbolic links resolved ([`escapes`]). A path listed in
//! `target.allow_outside_root` is allowed out, and the plan shows where it resolves.

use std::path::{Component, Path, PathBuf};

use super::diagnostic::Diagnostic;
use super::node::Node;
use super::semantic::locate;
use super::types::{Spec, TargetPath};

/// Findings on the text of the paths.
pub fn check(spec: &Spec, root: &Node) -> Vec<Diagnostic> {
    let target = &spec.target;
    let mut out = Vec::new();
    for path in TargetPath::ALL {
        let Some(value) = path.value(target) else {
            continue;
        };
        if target.allow_outside_root.contains(&path) {
            continue;
        }
        let pointer = format!("/target/{}", path.key());
        let problem = if Path::new(value).is_absolute() {
            Some("is absolute")
        } else if climbs_out(Path::new(value)) {
            Some("climbs out of it with `..`")
        } else {
            None
        };
        if let Some(problem) = problem {
            out.push(
                Diagnostic::error(
                    "value.outside_root",
                    format!(
                        "`target.{}` {problem}: paths of the deployment stay inside `target.root`",
                        path.key()
                    ),
                )
                .at(locate(root, &pointer))
                .path(pointer)
                .hint(format!(
                    "if the file really lives elsewhere, say so: `allow_outside_root: [{}]`",
                    path.key()
                )),
            );
        }
    }
    out
}

/// Whether a relative path, read component by component, ever goes above where it starts.
fn climbs_out(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for component in path.components() {
        match component {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Where `path` really is: its longest existing ancestor with links resolved, and the rest.
pub fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            return rest
                .iter()
                .rev()
                .fold(real, |real, part: &std::ffi::OsString| real.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Whether `path`, with links resolved, lies outside `root` (also resolved). `None` when it is
/// inside; else where it really is.
pub fn escapes(root: &Path, path: &Path) -> Option<PathBuf> {
    let root = resolve(root);
    let real = resolve(path);
    (!real.starts_with(&root)).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn climbing_out_is_seen_through_detours() {
        assert!(climbs_out(Path::new("../x")));
        assert!(climbs_out(Path::new("a/../../x")));
        assert!(!climbs_out(Path::new("a/../b/.env")));
        assert!(!climbs_out(Path::new("tldw_Server_API/Config_Files/.env")));
    }

    #[test]
    fn a_link_out_of_the_root_escapes_it() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("Config_Files")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("linked")).unwrap();
        assert_eq!(
            escapes(root.path(), &root.path().join("Config_Files/.env")),
            None
        );
        assert!(escapes(root.path(), &root.path().join("linked/.env")).is_some());
        assert_eq!(
            escapes(root.path(), &root.path().join("missing/dir/.env")),
            None
        );
    }
}
