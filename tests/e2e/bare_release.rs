//! A bare-metal release as desired state: `release.git` is the tag the git checkout at
//! `target.root` runs, and `release.install` the command run there after a checkout. The root
//! is a real git repository with two tags; the install command is the repository's own
//! `install.sh`, which records the version it installed, so a test sees which code was
//! installed and in what order.

use std::path::{Path, PathBuf};

use crate::common::{Site, run};
use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};

const TOKEN: &str = "bare-release-admin-token-that-must-never-be-printed-6";

fn git(root: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn sqlite(database: &Path, script: &str) -> String {
    let output = std::process::Command::new("sqlite3")
        .arg(database)
        .arg(script)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

struct Deployment {
    site: Site,
    fake: FakeTldw,
    root: PathBuf,
}

impl Deployment {
    /// A checkout at `v1.0.0`, with `v1.1.0` tagged one commit later.
    fn new(release: &str, fake: FakeTldwConfig) -> Deployment {
        let fake = FakeTldw::start(FakeTldwConfig {
            admin_token: TOKEN.to_string(),
            ..fake
        });
        let site = Site::new();
        let root = site.path().join("site");
        let installed = site.path().join("installed.log");
        git(&root, &["init", "--quiet"]);
        // The `.env` and the databases are the deployment's own, never part of a release.
        std::fs::write(
            root.join(".gitignore"),
            "tldw_Server_API/Config_Files/.env\nDatabases/\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("Databases")).unwrap();
        sqlite(
            &root.join("Databases/users.db"),
            "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT);\
             INSERT INTO users (username) VALUES ('alice'), ('bob');\
             PRAGMA user_version = 87;",
        );
        // Installing 1.1.0 fails while `fail-1.1.0` exists beside the site.
        std::fs::write(
            root.join("install.sh"),
            format!(
                "if [ -e '{fail}' ] && [ \"$(cat VERSION)\" = 1.1.0 ]; then exit 3; fi\n\
                 if [ \"$(cat VERSION)\" = 1.1.0 ]; then sqlite3 Databases/users.db \
                 'CREATE TABLE share_tokens (id INTEGER PRIMARY KEY); PRAGMA user_version = 88; \
                 INSERT INTO users (username) VALUES (\"carol\");'; fi\n\
                 echo \"installed $(cat VERSION)\" >> '{installed}'\n",
                fail = site.path().join("fail-1.1.0").display(),
                installed = installed.display()
            ),
        )
        .unwrap();
        std::fs::write(root.join("VERSION"), "1.0.0\n").unwrap();
        git(&root, &["add", "."]);
        git(&root, &["commit", "--quiet", "-m", "v1.0.0"]);
        git(&root, &["tag", "v1.0.0"]);
        std::fs::write(root.join("VERSION"), "1.1.0\n").unwrap();
        git(&root, &["commit", "--quiet", "-am", "v1.1.0"]);
        git(&root, &["tag", "v1.1.0"]);
        git(&root, &["checkout", "--quiet", "v1.0.0"]);
        let restart = site.path().join("restart.log");
        site.write_yaml(
            "tldw-ops.yaml",
            &format!(
                r#"apiVersion: tldw-ops/v1
environment: dev
target:
  root: site
  database: sqlite:///./Databases/users.db
  api:
    url: {url}
    token: {{ from_env: TEST_ADMIN_TOKEN }}
  service:
    restart: [sh, -c, "cat site/VERSION >> '{restart}'"]
    timeout: 5s
    health:
      - {{ path: /health, expect_json: {{ status: ok }} }}
    smoke:
      - {{ name: admin users, path: "/api/v1/admin/users?limit=1", auth: api, retries: 1, timeout: 2s }}
{release}
backup:
  destination: backups
  every: 24h
  keep: {{ daily: 3 }}
  include: [authnz, config]
  verify: true
"#,
                url = fake.url(),
                restart = restart.display(),
            ),
        );
        Deployment { site, fake, root }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = self.site.command();
        command.args(args).env("TEST_ADMIN_TOKEN", TOKEN);
        run(&mut command)
    }

    fn installed(&self) -> Vec<String> {
        crate::common::log_lines(&self.site.path().join("installed.log"))
    }

    fn head(&self) -> String {
        git(&self.root, &["rev-parse", "HEAD"])
    }

    /// The backup sets, oldest first.
    fn sets(&self) -> Vec<PathBuf> {
        let mut sets: Vec<PathBuf> = std::fs::read_dir(self.site.path().join("backups/dev"))
            .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
            .unwrap_or_default();
        sets.retain(|set| !set.file_name().unwrap().to_string_lossy().starts_with('.'));
        sets.sort();
        sets
    }

    fn commit_of(&self, tag: &str) -> String {
        git(&self.root, &["rev-parse", &format!("{tag}^{{commit}}")])
    }
}

const RELEASE: &str = "release:\n  git: v1.1.0\n  install: [sh, install.sh]";

#[test]
fn a_bare_metal_upgrade_plan_takes_a_backup_then_switches_restarts_and_runs_the_gates() {
    let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
    let (code, stdout, stderr) = deployment.run(&["plan", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kinds = crate::common::step_kinds(&plan);
    assert_eq!(
        kinds,
        [
            "create_backup",
            "switch_release",
            "restart",
            "health_gate",
            "smoke_gate"
        ]
    );
    let change = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|change| change["address"] == "release.git")
        .unwrap();
    assert_eq!(change["before"], "v1.0.0");
    assert_eq!(change["after"], "v1.1.0");
    assert_eq!(change["reason"], "runs v1.0.0; switch to v1.1.0");
    let checkout = &plan["steps"][1]["operations"][0];
    assert_eq!(checkout["op"], "checkout");
    assert_eq!(checkout["reference"], "v1.1.0");
    assert_eq!(checkout["install"], serde_json::json!(["sh", "install.sh"]));
    // Where the AuthNZ schema is now, and that a rollback would put it back.
    let (_, _, stderr) = deployment.run(&["plan"]);
    assert!(
        stderr.contains("upgrade: the AuthNZ database is at user_version 87, 1 table; the new release may migrate it"),
        "{stderr}"
    );
    // The text plan and the PR comment say what the step does.
    let (code, markdown, _) = deployment.run(&["plan", "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(markdown.contains("**switches the release**"), "{markdown}");
    // Nothing moved.
    assert_eq!(deployment.head(), deployment.commit_of("v1.0.0"));
    assert!(deployment.installed().is_empty());
}

#[test]
fn apply_checks_the_tag_out_installs_it_and_then_plans_nothing() {
    let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
    let (code, _, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(deployment.head(), deployment.commit_of("v1.1.0"));
    assert_eq!(deployment.installed(), ["installed 1.1.0"]);
    let restarted = std::fs::read_to_string(deployment.site.path().join("restart.log")).unwrap();
    assert_eq!(
        restarted.trim(),
        "1.1.0",
        "the restart ran after the checkout"
    );
    let (code, stdout, stderr) = deployment.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "a second plan is empty: {stdout}{stderr}");
}

#[test]
fn a_failing_smoke_gate_checks_the_old_release_out_again_and_installs_it() {
    let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
    deployment
        .fake
        .fail_persistently("GET", "/api/v1/admin/users", 500);
    let (code, stdout, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 6, "rolled back: {stdout}{stderr}");
    assert_eq!(deployment.head(), deployment.commit_of("v1.0.0"));
    assert_eq!(
        deployment.installed(),
        ["installed 1.1.0", "installed 1.0.0"],
        "the old release was installed again after the checkout went back"
    );
    assert!(stderr.contains("checked out"), "{stderr}");
    // The upgrade migrated the AuthNZ database (a table, user_version 88, a row written by the
    // new code); the rollback put the pre-upgrade copy back, byte for byte.
    let database = deployment.root.join("Databases/users.db");
    assert_eq!(sqlite(&database, "PRAGMA user_version"), "87");
    assert_eq!(
        sqlite(&database, "SELECT group_concat(username) FROM users"),
        "alice,bob"
    );
    let set = std::fs::read_dir(deployment.site.path().join("backups/dev"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read(&database).unwrap(),
        std::fs::read(set.join("authnz/users.db")).unwrap(),
        "the database is the pre-upgrade set's copy"
    );
    assert!(
        stderr
            .contains("the upgrade had migrated the AuthNZ database; restored it from backup set"),
        "{stderr}"
    );
}

#[test]
fn an_upgrade_that_migrates_nothing_keeps_the_database_as_it_is_on_rollback() {
    let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
    // No migration in this release: the install script is told to skip it.
    let script = std::fs::read_to_string(deployment.root.join("install.sh")).unwrap();
    assert!(script.contains("sqlite3"));
    git(&deployment.root, &["checkout", "--quiet", "v1.1.0"]);
    std::fs::write(
        deployment.root.join("install.sh"),
        script.replace("sqlite3", "true"),
    )
    .unwrap();
    git(
        &deployment.root,
        &["commit", "--quiet", "-am", "v1.1.0 without a migration"],
    );
    git(&deployment.root, &["tag", "-f", "v1.1.0"]);
    git(&deployment.root, &["checkout", "--quiet", "v1.0.0"]);
    let database = deployment.root.join("Databases/users.db");
    sqlite(&database, "INSERT INTO users (username) VALUES ('dave')");
    deployment
        .fake
        .fail_persistently("GET", "/api/v1/admin/users", 500);
    let (code, stdout, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 6, "{stdout}{stderr}");
    assert_eq!(
        sqlite(&database, "SELECT group_concat(username) FROM users"),
        "alice,bob,dave",
        "the live database was left alone"
    );
    assert!(
        stderr.contains("the upgrade left the AuthNZ schema as it was"),
        "{stderr}"
    );
}

#[test]
fn a_failed_install_checks_the_old_commit_out_and_installs_it_again() {
    let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
    std::fs::write(deployment.site.path().join("fail-1.1.0"), "").unwrap();
    let (code, stdout, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 6, "{stdout}{stderr}");
    assert!(
        stderr.contains("install command `sh install.sh` exited with"),
        "{stderr}"
    );
    assert_eq!(deployment.head(), deployment.commit_of("v1.0.0"));
    assert_eq!(deployment.installed(), ["installed 1.0.0"]);
}

#[test]
fn an_old_release_that_cannot_be_installed_again_is_exit_7_with_instructions() {
    let deployment = Deployment::new(
        "release:\n  git: v1.1.0\n  install: [sh, -c, 'exit 3']",
        FakeTldwConfig::default(),
    );
    let (code, stdout, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 7, "{stdout}{stderr}");
    assert!(
        stderr.contains("out again, but install command `sh -c 'exit 3'` exited with"),
        "{stderr}"
    );
    // The code is back at the old commit even though it could not be installed.
    assert_eq!(deployment.head(), deployment.commit_of("v1.0.0"));
}

#[test]
fn a_tag_that_is_not_in_the_checkout_fails_before_anything_moves() {
    let deployment = Deployment::new(
        "release:\n  git: v9.9.9\n  install: [sh, install.sh]",
        FakeTldwConfig::default(),
    );
    let (code, stdout, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_ne!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("release.git `v9.9.9` is not in the checkout"),
        "{stderr}"
    );
    assert_eq!(deployment.head(), deployment.commit_of("v1.0.0"));
    assert!(deployment.installed().is_empty());
}

#[test]
fn release_takes_exactly_one_of_image_and_git_and_production_refuses_a_branch() {
    let deployment = Deployment::new(
        "release:\n  git: v1.1.0\n  image: \"ghcr.io/rmusser01/tldw_server:sha-1111111\"",
        FakeTldwConfig::default(),
    );
    let (code, _, stderr) = deployment.run(&["validate"]);
    assert_eq!(code, 3);
    assert!(stderr.contains("value.release_source"), "{stderr}");
    let production = Deployment::new("release:\n  git: main", FakeTldwConfig::default());
    let text = std::fs::read_to_string(production.site.path().join("tldw-ops.yaml"))
        .unwrap()
        .replace(
            "environment: dev",
            "environment: prod\nenv: { tldw_production: true }",
        );
    production.site.write_yaml("tldw-ops.yaml", &text);
    let (code, stdout, stderr) = production.run(&["validate"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stderr.contains("policy.release-pinned"), "{stderr}");
    assert!(stderr.contains("`release.git: main` moves"), "{stderr}");
}

fn crash_at(deployment: &Deployment, step: u32, point: &str) {
    let mut command = deployment.site.command();
    command
        .args(["apply", "--auto-approve"])
        .env("TEST_ADMIN_TOKEN", TOKEN);
    crate::common::crash_at(command, step, point);
}

#[test]
fn a_kill_at_every_step_of_a_bare_metal_upgrade_resumes_to_the_new_tag_or_rolls_back_to_the_old() {
    // backup, checkout and install, restart, health gate, smoke gate.
    for step in 0..5 {
        for point in ["before", "after"] {
            let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
            crash_at(&deployment, step, point);
            let (code, _, stderr) = deployment.run(&["apply", "--resume"]);
            assert_eq!(code, 0, "{step}:{point}: {stderr}");
            assert_eq!(
                deployment.head(),
                deployment.commit_of("v1.1.0"),
                "{step}:{point}"
            );
            assert_eq!(
                deployment.installed().last().map(String::as_str),
                Some("installed 1.1.0"),
                "{step}:{point}: the new release is installed"
            );
            let (code, _, stderr) = deployment.run(&["plan", "--detailed-exitcode"]);
            assert_eq!(code, 0, "{step}:{point}: converged: {stderr}");

            let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
            crash_at(&deployment, step, point);
            let (code, _, stderr) = deployment.run(&["rollback", "--unfinished", "--auto-approve"]);
            assert_eq!(code, 0, "{step}:{point}: {stderr}");
            assert_eq!(
                deployment.head(),
                deployment.commit_of("v1.0.0"),
                "{step}:{point}"
            );
            // Whatever the migration did is undone with the code.
            assert_eq!(
                sqlite(
                    &deployment.root.join("Databases/users.db"),
                    "PRAGMA user_version"
                ),
                "87",
                "{step}:{point}"
            );
            // Killed once the checkout had begun, the old release is installed again.
            if step >= 1 && !(step == 1 && point == "before") {
                assert_eq!(
                    deployment.installed().last().map(String::as_str),
                    Some("installed 1.0.0"),
                    "{step}:{point}"
                );
            }
        }
    }
}

#[test]
fn rollback_of_an_upgrade_checks_the_replaced_commit_out_and_installs_it() {
    let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
    let (code, _, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let pre_upgrade = deployment.sets();
    assert_eq!(pre_upgrade.len(), 1);
    let (code, stdout, stderr) = deployment.run(&["rollback", "--last", "--auto-approve"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("release.git"), "{stdout}");
    // A safety set first, then the checkout, then the pre-upgrade AuthNZ database (the upgrade
    // migrated it), then the restart and the gates.
    assert!(
        stdout.contains("a safety copy of the data before rolling the upgrade back"),
        "{stdout}"
    );
    let steps: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.trim().split_once(". ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert_eq!(
        steps,
        [
            "create_backup",
            "switch_release",
            "restore_backup",
            "restart",
            "health_gate",
            "smoke_gate"
        ],
        "{stdout}"
    );
    assert_eq!(deployment.head(), deployment.commit_of("v1.0.0"));
    assert_eq!(
        deployment.installed(),
        ["installed 1.1.0", "installed 1.0.0"]
    );
    let database = deployment.root.join("Databases/users.db");
    assert_eq!(
        std::fs::read(&database).unwrap(),
        std::fs::read(pre_upgrade[0].join("authnz/users.db")).unwrap(),
        "the AuthNZ database is the pre-upgrade copy"
    );
    let sets = deployment.sets();
    assert_eq!(sets.len(), 2, "the safety set was taken");
    let safety = sets.iter().find(|set| **set != pre_upgrade[0]).unwrap();
    assert_eq!(
        sqlite(&safety.join("authnz/users.db"), "PRAGMA user_version"),
        "88",
        "the safety set holds the migrated database"
    );
    let restarted = std::fs::read_to_string(deployment.site.path().join("restart.log")).unwrap();
    assert_eq!(
        restarted.lines().last(),
        Some("1.0.0"),
        "the rollback restarted the old release"
    );
    // The YAML still asks for v1.1.0, so the next plan offers the upgrade again.
    let (code, _, _) = deployment.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2);
}

#[test]
fn a_root_that_is_not_a_checkout_is_said_in_the_plan_and_fails_apply_before_anything_moves() {
    let deployment = Deployment::new(RELEASE, FakeTldwConfig::default());
    std::fs::rename(
        deployment.root.join(".git"),
        deployment.site.path().join("git-away"),
    )
    .unwrap();
    let (code, stdout, stderr) = deployment.run(&["plan"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("release.git: the running release could not be read (`git rev-parse"),
        "{stderr}"
    );
    assert!(
        stdout.contains("the checkout's commit could not be read"),
        "{stdout}"
    );
    let (code, _, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 6, "{stderr}");
    assert!(deployment.installed().is_empty());
}
