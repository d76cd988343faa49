//! The deployment's paths stay inside `target.root`: a desired-state file from a pull request
//! cannot point apply's writes elsewhere, by `..`, an absolute path or a symbolic link, unless
//! the file says so with `target.allow_outside_root`.

use crate::common::{ENV_PATH, Site, run};
use crate::plan::{command, site, yaml};

/// A site whose YAML has `lines` added under `target:`.
fn site_with_target(lines: &str) -> Site {
    let site = site("");
    let text = yaml("").replace("  root: site\n", &format!("  root: site\n{lines}"));
    site.write_yaml("tldw-ops.yaml", &text);
    site
}

fn line_of(site: &Site, needle: &str) -> usize {
    let text = std::fs::read_to_string(site.path().join("tldw-ops.yaml")).unwrap();
    text.lines().position(|line| line.contains(needle)).unwrap() + 1
}

#[test]
fn an_env_file_that_climbs_out_of_the_root_is_refused_at_validate_and_plan() {
    let site = site_with_target("  env_file: ../../escape.env\n");
    let line = line_of(&site, "env_file:");
    for verb in [&["validate"][..], &["plan"][..]] {
        let (code, _, stderr) = run(&mut command(&site, verb));
        assert_eq!(code, 3, "{verb:?}: {stderr}");
        assert!(stderr.contains("value.outside_root"), "{stderr}");
        assert!(
            stderr.contains(&format!("tldw-ops.yaml:{line}:")),
            "points at the line: {stderr}"
        );
        assert!(stderr.contains("allow_outside_root"), "says how: {stderr}");
    }
    assert!(!site.path().join("../escape.env").exists());
}

#[test]
fn an_absolute_config_file_is_refused_and_apply_writes_nothing() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("config.txt");
    let site = site_with_target(&format!("  config_file: {}\n", target.display()));
    let before = site.env_text();
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("is absolute"), "{stderr}");
    assert!(!target.exists(), "nothing was written outside the root");
    assert_eq!(
        site.env_text(),
        before,
        "nothing was written inside it either"
    );
}

#[test]
fn a_symbolic_link_out_of_the_root_is_refused_at_plan() {
    let outside = tempfile::tempdir().unwrap();
    let site = site("");
    let env = site.path().join(ENV_PATH);
    let real = outside.path().join("real.env");
    std::fs::rename(&env, &real).unwrap();
    std::os::unix::fs::symlink(&real, &env).unwrap();
    let before = std::fs::read_to_string(&real).unwrap();
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("value.outside_root"), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(std::fs::read_to_string(&real).unwrap(), before);
}

#[test]
fn allow_outside_root_lets_a_declared_path_out_and_the_plan_shows_where() {
    let outside = tempfile::tempdir().unwrap();
    let env = outside.path().join("shared.env");
    std::fs::copy(crate::common::fixture("tldw_server/env.example"), &env).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
    let site = site_with_target(&format!(
        "  env_file: {}\n  allow_outside_root: [env_file]\n",
        env.display()
    ));
    let (code, stdout, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&env.display().to_string()),
        "the plan names the outside path: {stdout}"
    );
    let (code, _, stderr) = run(&mut command(&site, &["apply", "--auto-approve"]));
    assert_eq!(code, 0, "{stderr}");
    let written = std::fs::read_to_string(&env).unwrap();
    assert!(written.contains("LOG_LEVEL=info"), "{written}");
}

#[test]
fn a_root_that_does_not_exist_is_refused_at_plan_not_created() {
    let site = site("");
    let text = yaml("").replace("  root: site\n", "  root: no-such-site\n");
    site.write_yaml("tldw-ops.yaml", &text);
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("value.root_missing"), "{stderr}");
    assert!(
        stderr.contains("tldw-ops.yaml:4:"),
        "points at target.root: {stderr}"
    );
    assert!(!site.path().join("no-such-site").exists());
}

#[test]
fn every_path_a_symbolic_link_takes_out_of_the_root_is_reported_in_one_run() {
    let outside = tempfile::tempdir().unwrap();
    let site = site("");
    for (relative, name) in [
        (ENV_PATH, "real.env"),
        (crate::common::CONFIG_PATH, "real-config.txt"),
    ] {
        let inside = site.path().join(relative);
        let real = outside.path().join(name);
        std::fs::rename(&inside, &real).unwrap();
        std::os::unix::fs::symlink(&real, &inside).unwrap();
    }
    let (code, _, stderr) = run(&mut command(&site, &["plan"]));
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        stderr.matches("error[value.outside_root]").count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("`target.env_file`"), "{stderr}");
    assert!(stderr.contains("`target.config_file`"), "{stderr}");
}
