//! The CI examples, run for real. The test reads `examples/ci/github-actions.yml` with
//! serde_yaml, and runs each job's `run:` steps in order, each as GitHub runs it (`bash
//! --noprofile --norc -eo pipefail`), with the job's environment and `${{ … }}` expressions
//! substituted, in a git checkout against a temporary deployment and state store. The steps that
//! call GitHub are stood in for: checkout is the test's own `git checkout` (and `git clean`, as
//! actions/checkout does), the artifact actions copy files through a directory, github-script
//! steps (the PR comment, finding the merged pull request) are skipped and their outputs given
//! as expressions, and the install step is replaced by the binary under test on PATH.
//!
//! It proves the pull-request job validates, plans and keeps `plan.json` and a Markdown comment;
//! the merge job applies exactly that plan (`--require-commit` of the reviewed head) and
//! converges; and that a stale plan, or a plan from another commit, fails the merge job without
//! applying or re-planning anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{BIN, assert_no_secret, env_value, fixture, repo};
use crate::environments::postgres;

const PASSWORD: &str = "the-database-password-from-ci-secrets-0123";

/// One step of a job, as much of it as the runner needs.
#[derive(Debug)]
struct Step {
    label: String,
    id: Option<String>,
    uses: Option<String>,
    with: BTreeMap<String, String>,
    run: Option<String>,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
struct Job {
    condition: String,
    env: Vec<(String, String)>,
    steps: Vec<Step>,
}

#[derive(Debug)]
struct Workflow {
    env: Vec<(String, String)>,
    shell: String,
    jobs: BTreeMap<String, Job>,
}

fn text(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::String(text) => text.clone(),
        serde_yaml::Value::Bool(value) => value.to_string(),
        serde_yaml::Value::Number(number) => number.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

fn pairs(value: Option<&serde_yaml::Value>) -> Vec<(String, String)> {
    value
        .and_then(serde_yaml::Value::as_mapping)
        .map(|mapping| {
            mapping
                .iter()
                .map(|(key, value)| (text(key), text(value)))
                .collect()
        })
        .unwrap_or_default()
}

fn github_workflow() -> Workflow {
    let path = repo().join("examples/ci/github-actions.yml");
    let document: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let shell = document["defaults"]["run"]["shell"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut jobs = BTreeMap::new();
    for (name, job) in document["jobs"].as_mapping().unwrap() {
        let steps = job["steps"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|step| Step {
                label: step
                    .get("name")
                    .or_else(|| step.get("uses"))
                    .map(text)
                    .unwrap_or_default(),
                id: step.get("id").map(text),
                uses: step.get("uses").map(text),
                with: pairs(step.get("with")).into_iter().collect(),
                run: step.get("run").map(text),
                env: pairs(step.get("env")),
            })
            .collect();
        jobs.insert(
            text(name),
            Job {
                condition: job.get("if").map(text).unwrap_or_default(),
                env: pairs(job.get("env")),
                steps,
            },
        );
    }
    Workflow {
        env: pairs(document.get("env")),
        shell,
        jobs,
    }
}

/// Replaces every `${{ expression }}` with its value in `expressions`; an expression the test
/// does not know fails it, so a new one in the workflow cannot go unexercised.
fn substitute(text: &str, expressions: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed expression in {text:?}"))
            + start;
        let expression = rest[start + 3..end].trim();
        let value = expressions
            .get(expression)
            .unwrap_or_else(|| panic!("the test does not know the expression `{expression}`"));
        out.push_str(value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// How a job ended: the labels of the run steps that ran, and the failing one with its exit
/// code. `log` is everything the steps printed.
#[derive(Debug, Default)]
struct JobRun {
    ran: Vec<String>,
    failed: Option<(String, i32)>,
    log: String,
}

/// A git repository holding `deploy/prod.yaml`, the deployment it manages, a directory on the
/// "host" for checkpoints, an artifact store and the state location.
struct Ci {
    root: tempfile::TempDir,
    state: String,
}

impl Ci {
    fn new() -> Ci {
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("site/tldw_Server_API/Config_Files");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::copy(fixture("tldw_server/env.example"), config.join(".env")).unwrap();
        std::fs::copy(fixture("tldw_server/config.txt"), config.join("config.txt")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(config.join(".env"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        for directory in ["repo/deploy", "host", "artifacts"] {
            std::fs::create_dir_all(root.path().join(directory)).unwrap();
        }
        // The team's PostgreSQL; SQLite on the host when the suite runs without PostgreSQL.
        let state = match postgres("ci") {
            Some((_, url)) => url,
            None => root.path().join("host/state.db").display().to_string(),
        };
        let ci = Ci { root, state };
        ci.git(&["init", "--quiet", "--initial-branch", "main"]);
        ci.write_yaml("info");
        ci.git(&["add", "deploy/prod.yaml"]);
        ci.git(&["commit", "--quiet", "-m", "Manage prod with tldw-ops"]);
        ci
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    fn workspace(&self) -> PathBuf {
        self.path().join("repo")
    }

    fn env_file(&self) -> PathBuf {
        self.path().join("site/tldw_Server_API/Config_Files/.env")
    }

    fn write_yaml(&self, log_level: &str) {
        std::fs::write(
            self.workspace().join("deploy/prod.yaml"),
            format!(
                "apiVersion: tldw-ops/v1\nenvironment: prod\ntarget:\n  root: {}\nenv:\n  \
                 AUTH_MODE: single_user\n  LOG_LEVEL: {log_level}\nsecrets:\n  values:\n    \
                 SINGLE_USER_API_KEY: {{ generate: {{ format: tldw_api_key }} }}\n    \
                 POSTGRES_PASSWORD: {{ from_env: TLDW_PG_PASSWORD }}\ncors:\n  allowed_origins: \
                 [http://localhost:3000]\nregistration: {{ enabled: false }}\nwaivers: [{{ rule: \
                 production-flag, reason: a test deployment }}]\n",
                self.path().join("site").display()
            ),
        )
        .unwrap();
    }

    fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(["-c", "user.name=CI test", "-c", "user.email=ci@example.org"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(self.workspace())
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// A pull request: a branch from main that sets LOG_LEVEL. Returns its head commit.
    fn pull_request(&self, branch: &str, log_level: &str) -> String {
        self.git(&["checkout", "--quiet", "-b", branch, "main"]);
        self.write_yaml(log_level);
        self.git(&[
            "commit",
            "--quiet",
            "-am",
            &format!("LOG_LEVEL {log_level}"),
        ]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// What actions/checkout leaves: `commit` checked out, untracked files removed.
    fn checkout(&self, commit: &str) {
        self.git(&["checkout", "--quiet", "--detach", commit]);
        self.git(&["clean", "--quiet", "-ffdx"]);
    }

    fn merge(&self, branch: &str) -> String {
        self.git(&["checkout", "--quiet", "main"]);
        self.git(&[
            "merge",
            "--quiet",
            "--no-ff",
            branch,
            "-m",
            &format!("Merge {branch}"),
        ]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn expressions(&self, reviewed: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("secrets.TLDW_OPS_STATE", self.state.clone()),
            ("secrets.TLDW_PG_PASSWORD", PASSWORD.to_string()),
            ("steps.reviewed.outputs.head_sha", reviewed.to_string()),
        ])
    }

    /// Runs `job`'s steps in the workspace as the runner would, standing in for `uses:` steps.
    fn run_job(&self, workflow: &Workflow, job: &str, reviewed: &str) -> JobRun {
        assert_eq!(
            workflow.shell, "bash",
            "run steps use bash with -eo pipefail"
        );
        let expressions = self.expressions(reviewed);
        let job = &workflow.jobs[job];
        let mut outcome = JobRun::default();
        for step in &job.steps {
            match (&step.uses, &step.run) {
                (Some(action), None) => {
                    self.stand_in(action, &step.with);
                    continue;
                }
                (None, Some(_)) if step.id.as_deref() == Some("install") => continue,
                (None, Some(script)) => {
                    let mut command = Command::new("bash");
                    command
                        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
                        .arg(substitute(script, &expressions))
                        .current_dir(self.workspace())
                        .env("PATH", runner_path())
                        .env("USER", "runner")
                        .env_remove("TLDW_OPS_NOW")
                        .env_remove("TLDW_OPS_FAULT")
                        .env_remove("TLDW_OPS_SALT")
                        .env_remove("TLDW_OPS_APPLY_ID")
                        .stdin(std::process::Stdio::null());
                    for (name, value) in workflow.env.iter().chain(&job.env).chain(&step.env) {
                        command.env(name, substitute(value, &expressions));
                    }
                    // The host directory of the runner, here inside the test's directory.
                    command.env("TLDW_OPS_HOST_DIR", self.path().join("host"));
                    let output = command.output().unwrap();
                    outcome.ran.push(step.label.clone());
                    outcome.log.push_str(&format!(
                        "--- {}\n{}{}",
                        step.label,
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    ));
                    if !output.status.success() {
                        outcome.failed =
                            Some((step.label.clone(), output.status.code().unwrap_or(-1)));
                        return outcome;
                    }
                }
                _ => panic!("step {} needs exactly one of uses or run", step.label),
            }
        }
        outcome
    }

    /// The GitHub side of a `uses:` step.
    fn stand_in(&self, action: &str, with: &BTreeMap<String, String>) {
        let artifacts = self.path().join("artifacts");
        if action.starts_with("actions/checkout@") || action.starts_with("actions/github-script@") {
            // The test checks out itself; scripts only talk to the GitHub API.
        } else if action.starts_with("actions/upload-artifact@") {
            let directory = artifacts.join(&with["name"]);
            std::fs::create_dir_all(&directory).unwrap();
            let file = &with["path"];
            std::fs::copy(self.workspace().join(file), directory.join(file)).unwrap();
        } else if action.starts_with("actions/download-artifact@") {
            for entry in std::fs::read_dir(artifacts.join(&with["name"])).unwrap() {
                let entry = entry.unwrap();
                std::fs::copy(entry.path(), self.workspace().join(entry.file_name())).unwrap();
            }
        } else {
            panic!("the test has no stand-in for {action}");
        }
    }
}

/// The runner's PATH with the binary under test first, standing in for the install step.
#[allow(clippy::disallowed_methods)] // test code: the PATH the test itself was given
fn runner_path() -> String {
    let binaries = Path::new(BIN).parent().unwrap();
    format!(
        "{}:{}",
        binaries.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn log_level(ci: &Ci) -> Option<String> {
    env_value(
        &std::fs::read_to_string(ci.env_file()).unwrap(),
        "LOG_LEVEL",
    )
}

#[test]
fn the_github_workflow_plans_a_pull_request_and_applies_the_reviewed_plan_on_merge() {
    let workflow = github_workflow();
    assert!(workflow.jobs["plan"].condition.contains("'pull_request'"));
    assert!(workflow.jobs["apply"].condition.contains("'push'"));
    let uses = |job: &str| -> Vec<String> {
        workflow.jobs[job]
            .steps
            .iter()
            .filter_map(|step| step.uses.clone())
            .collect()
    };
    assert!(
        uses("plan")
            .iter()
            .any(|action| action.starts_with("actions/github-script@")),
        "the plan is posted as a comment"
    );
    let ci = Ci::new();

    // The pull request: validate, plan, keep plan.json and the Markdown comment.
    let head = ci.pull_request("raise-log-level", "warning");
    ci.checkout(&head);
    let job = ci.run_job(&workflow, "plan", "");
    assert_eq!(job.failed, None, "{}", job.log);
    assert_eq!(job.ran, ["Validate", "Plan"]);
    let markdown = std::fs::read_to_string(ci.workspace().join("plan.md")).unwrap();
    assert!(
        markdown.starts_with("<!-- tldw-ops plan: prod -->\n### tldw-ops plan: `prod`"),
        "the comment starts with the marker that finds it again: {markdown}"
    );
    assert!(markdown.contains("`env.LOG_LEVEL`"), "{markdown}");
    assert!(
        markdown.contains(&format!("commit `{}`", &head[..12])),
        "{markdown}"
    );
    let artifact = ci.path().join("artifacts/tldw-ops-plan/plan.json");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&artifact).unwrap()).unwrap();
    assert_eq!(plan["git_commit"], head.as_str());
    let plan_text = std::fs::read_to_string(&artifact).unwrap();

    // The merge: the reviewed plan is applied and nothing is left to do.
    let merged = ci.merge("raise-log-level");
    ci.checkout(&merged);
    assert!(!ci.workspace().join("plan.json").exists());
    let job = ci.run_job(&workflow, "apply", &head);
    assert_eq!(job.failed, None, "{}", job.log);
    assert_eq!(
        job.ran,
        [
            "Keep checkpoints on the host",
            "Apply the reviewed plan",
            "Check that nothing is left to do"
        ]
    );
    assert!(job.log.contains("Apply complete"), "{}", job.log);
    assert_eq!(log_level(&ci).as_deref(), Some("warning"));
    let checkpoints = ci.path().join("host/checkpoints");
    assert_eq!(
        std::fs::read_dir(&checkpoints).unwrap().count(),
        1,
        "the before-images are on the host, not in the workspace"
    );
    let generated = env_value(
        &std::fs::read_to_string(ci.env_file()).unwrap(),
        "SINGLE_USER_API_KEY",
    )
    .unwrap();
    assert_no_secret(
        &[PASSWORD, &generated],
        &[
            ("plan.md", &markdown),
            ("plan.json", &plan_text),
            ("log", &job.log),
        ],
        &[],
    );

    // A second pull request. The apply job refuses a plan that another commit made...
    let second = ci.pull_request("quieter", "error");
    ci.checkout(&second);
    let job = ci.run_job(&workflow, "plan", "");
    assert_eq!(job.failed, None, "{}", job.log);
    let merged = ci.merge("quieter");
    ci.checkout(&merged);
    let job = ci.run_job(&workflow, "apply", &head);
    assert_eq!(
        job.failed,
        Some(("Apply the reviewed plan".to_string(), 4)),
        "{}",
        job.log
    );
    assert!(job.log.contains("--require-commit asks for"), "{}", job.log);
    assert_eq!(log_level(&ci).as_deref(), Some("warning"));

    // ...and a plan whose addresses moved after the review: the moved address and a fresh
    // plan are in the log, nothing is applied, and the job does not re-plan on its own.
    let text = std::fs::read_to_string(ci.env_file()).unwrap();
    std::fs::write(
        ci.env_file(),
        text.replace("LOG_LEVEL=warning", "LOG_LEVEL=debug"),
    )
    .unwrap();
    ci.checkout(&merged);
    let job = ci.run_job(&workflow, "apply", &second);
    assert_eq!(
        job.failed,
        Some(("Apply the reviewed plan".to_string(), 4)),
        "{}",
        job.log
    );
    assert!(
        job.log
            .contains("the saved plan is stale; nothing was applied"),
        "{}",
        job.log
    );
    assert!(job.log.contains("env.LOG_LEVEL: then fp:"), "{}", job.log);
    assert!(job.log.contains("A fresh plan follows"), "{}", job.log);
    assert!(
        job.log.contains("tldw-ops plan for environment prod"),
        "{}",
        job.log
    );
    assert!(
        !job.ran
            .contains(&"Check that nothing is left to do".to_string())
    );
    assert_eq!(
        log_level(&ci).as_deref(),
        Some("debug"),
        "nothing was applied"
    );
}

/// The GitLab variant: `.tldw-ops.before_script` then the job's `script`, as one bash script
/// with `set -eo pipefail` as GitLab's shell runner runs it.
struct GitlabPipeline {
    variables: Vec<(String, String)>,
    before_script: Vec<String>,
    jobs: BTreeMap<String, Vec<String>>,
}

fn gitlab_pipeline() -> GitlabPipeline {
    let path = repo().join("examples/ci/gitlab-ci.yml");
    let document: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let lines = |value: &serde_yaml::Value| -> Vec<String> {
        value.as_sequence().unwrap().iter().map(text).collect()
    };
    let mut jobs = BTreeMap::new();
    for name in ["tldw-ops:plan", "tldw-ops:apply"] {
        assert_eq!(document[name]["extends"].as_str(), Some(".tldw-ops"));
        jobs.insert(name.to_string(), lines(&document[name]["script"]));
    }
    GitlabPipeline {
        variables: pairs(document.get("variables")),
        before_script: lines(&document[".tldw-ops"]["before_script"]),
        jobs,
    }
}

/// Answers `gitlab_api` from files the test writes: the merge requests of a commit, the plan
/// artifact, and notes (recorded).
const GITLAB_STAND_IN: &str = r#"gitlab_api() {
  local path="$1"
  shift
  echo "$path" >> "$FAKE_GITLAB/requests"
  case "$path" in
    merge_requests/*/notes\?*) cat "$FAKE_GITLAB/notes.json" 2>/dev/null || echo '[]' ;;
    merge_requests/*/notes/*)
      echo "updated ${path##*/}" >> "$FAKE_GITLAB/note-writes"
      for argument in "$@"; do
        case "$argument" in body@*) cp "${argument#body@}" "$FAKE_GITLAB/note.md" ;; esac
      done ;;
    merge_requests/*/notes)
      echo "created" >> "$FAKE_GITLAB/note-writes"
      for argument in "$@"; do
        case "$argument" in body@*) cp "${argument#body@}" "$FAKE_GITLAB/note.md" ;; esac
      done
      jq -n --rawfile body "$FAKE_GITLAB/note.md" '[{id: 41, body: $body}]' > "$FAKE_GITLAB/notes.json" ;;
    repository/commits/*/merge_requests) cat "$FAKE_GITLAB/merge_requests.json" ;;
    jobs/artifacts/*/raw/plan.json*) cat "$FAKE_GITLAB/plan.json" ;;
    *) echo "the stand-in does not know $path" >&2; return 1 ;;
  esac
}"#;

impl Ci {
    fn run_gitlab_job(&self, pipeline: &GitlabPipeline, job: &str, ci: &[(&str, &str)]) -> JobRun {
        let mut script = String::new();
        for line in &pipeline.before_script {
            if !line.starts_with("# Install tldw-ops") {
                script.push_str(line);
                script.push('\n');
            }
        }
        script.push_str(GITLAB_STAND_IN);
        script.push('\n');
        for line in &pipeline.jobs[job] {
            script.push_str(line);
            script.push('\n');
        }
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", &script])
            .current_dir(self.workspace())
            .env("PATH", runner_path())
            .env("USER", "gitlab-runner")
            .env_remove("TLDW_OPS_NOW")
            .env_remove("TLDW_OPS_FAULT")
            .env_remove("TLDW_OPS_SALT")
            .env_remove("TLDW_OPS_APPLY_ID")
            .stdin(std::process::Stdio::null());
        for (name, value) in &pipeline.variables {
            command.env(name, value);
        }
        command
            .env("TLDW_OPS_HOST_DIR", self.path().join("host"))
            .env("TLDW_OPS_STATE", &self.state)
            .env("TLDW_PG_PASSWORD", PASSWORD)
            .env("TLDW_OPS_GITLAB_TOKEN", "glpat-not-used-by-the-stand-in")
            .env("CI_API_V4_URL", "https://gitlab.example.org/api/v4")
            .env("CI_PROJECT_ID", "7")
            .env("FAKE_GITLAB", self.path().join("gitlab"));
        for (name, value) in ci {
            command.env(name, value);
        }
        std::fs::create_dir_all(self.path().join("gitlab")).unwrap();
        let output = command.output().unwrap();
        JobRun {
            ran: vec![job.to_string()],
            failed: (!output.status.success())
                .then(|| (job.to_string(), output.status.code().unwrap_or(-1))),
            log: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

#[test]
fn the_gitlab_pipeline_plans_a_merge_request_and_applies_the_reviewed_plan_on_merge() {
    if Command::new("jq").arg("--version").output().is_err() {
        eprintln!("NOTE: the GitLab pipeline test is SKIPPED: it needs jq, as the runner does");
        return;
    }
    let pipeline = gitlab_pipeline();
    let ci = Ci::new();
    let gitlab = ci.path().join("gitlab");

    let head = ci.pull_request("raise-log-level", "warning");
    ci.checkout(&head);
    let job = ci.run_gitlab_job(
        &pipeline,
        "tldw-ops:plan",
        &[("CI_MERGE_REQUEST_IID", "12")],
    );
    assert_eq!(job.failed, None, "{}", job.log);
    let note = std::fs::read_to_string(gitlab.join("note.md")).unwrap();
    assert!(
        note.starts_with("<!-- tldw-ops plan: prod -->\n### tldw-ops plan: `prod`"),
        "the plan is posted: {note}"
    );
    // A second push updates the same note instead of adding one.
    let job = ci.run_gitlab_job(
        &pipeline,
        "tldw-ops:plan",
        &[("CI_MERGE_REQUEST_IID", "12")],
    );
    assert_eq!(job.failed, None, "{}", job.log);
    assert_eq!(
        std::fs::read_to_string(gitlab.join("note-writes")).unwrap(),
        "created\nupdated 41\n"
    );
    // GitLab keeps the job's artifacts.
    std::fs::copy(ci.workspace().join("plan.json"), gitlab.join("plan.json")).unwrap();

    let merged = ci.merge("raise-log-level");
    ci.checkout(&merged);
    std::fs::write(
        gitlab.join("merge_requests.json"),
        format!(r#"[{{"iid": 12, "state": "merged", "sha": "{head}"}}]"#),
    )
    .unwrap();
    let job = ci.run_gitlab_job(&pipeline, "tldw-ops:apply", &[("CI_COMMIT_SHA", &merged)]);
    assert_eq!(job.failed, None, "{}", job.log);
    assert!(job.log.contains("Apply complete"), "{}", job.log);
    assert_eq!(log_level(&ci).as_deref(), Some("warning"));
    let requests = std::fs::read_to_string(gitlab.join("requests")).unwrap();
    assert!(
        requests.contains(&format!("repository/commits/{merged}/merge_requests")),
        "{requests}"
    );
    assert!(
        requests.contains("jobs/artifacts/refs%2Fmerge-requests%2F12%2Fhead/raw/plan.json"),
        "{requests}"
    );
    assert_eq!(
        std::fs::read_dir(ci.path().join("host/checkpoints"))
            .unwrap()
            .count(),
        1
    );

    // A stale plan fails the job and nothing is applied.
    let second = ci.pull_request("quieter", "error");
    ci.checkout(&second);
    let job = ci.run_gitlab_job(
        &pipeline,
        "tldw-ops:plan",
        &[("CI_MERGE_REQUEST_IID", "13")],
    );
    assert_eq!(job.failed, None, "{}", job.log);
    std::fs::copy(ci.workspace().join("plan.json"), gitlab.join("plan.json")).unwrap();
    let text = std::fs::read_to_string(ci.env_file()).unwrap();
    std::fs::write(
        ci.env_file(),
        text.replace("LOG_LEVEL=warning", "LOG_LEVEL=debug"),
    )
    .unwrap();
    let merged = ci.merge("quieter");
    ci.checkout(&merged);
    std::fs::write(
        gitlab.join("merge_requests.json"),
        format!(r#"[{{"iid": 13, "state": "merged", "sha": "{second}"}}]"#),
    )
    .unwrap();
    let job = ci.run_gitlab_job(&pipeline, "tldw-ops:apply", &[("CI_COMMIT_SHA", &merged)]);
    assert_eq!(
        job.failed.as_ref().map(|failed| failed.1),
        Some(4),
        "{}",
        job.log
    );
    assert!(job.log.contains("env.LOG_LEVEL: then fp:"), "{}", job.log);
    assert!(job.log.contains("A fresh plan follows"), "{}", job.log);
    assert_eq!(log_level(&ci).as_deref(), Some("debug"));

    // A push without a merged merge request applies nothing.
    std::fs::write(gitlab.join("merge_requests.json"), "[]").unwrap();
    let job = ci.run_gitlab_job(&pipeline, "tldw-ops:apply", &[("CI_COMMIT_SHA", &merged)]);
    assert_eq!(
        job.failed.as_ref().map(|failed| failed.1),
        Some(1),
        "{}",
        job.log
    );
    assert!(
        job.log.contains("without a merged merge request"),
        "{}",
        job.log
    );
}

/// A release directory as `.github/workflows/release.yml` publishes it:
/// `releases/download/v<version>/` with the tarball of this machine's architecture and
/// SHA256SUMS. Returns the repository URL (`file://`) to install from.
fn fake_release(directory: &Path, version: &str) -> String {
    let arch = String::from_utf8(Command::new("uname").arg("-m").output().unwrap().stdout).unwrap();
    let asset = format!(
        "tldw-ops-{version}-{}-unknown-linux-musl.tar.gz",
        arch.trim()
    );
    let release = directory.join(format!("releases/download/v{version}"));
    let staging = directory.join("staging");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::create_dir_all(&staging).unwrap();
    // A stand-in executable: the real debug binary would make the tarball hundreds of MB.
    let binary = staging.join("tldw-ops");
    std::fs::write(
        &binary,
        format!("#!/bin/sh\necho 'tldw-ops {version} (stand-in)'\n"),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&binary).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&binary, permissions).unwrap();
    let status = Command::new("tar")
        .arg("-czf")
        .arg(release.join(&asset))
        .arg("-C")
        .arg(&staging)
        .arg("tldw-ops")
        .status()
        .unwrap();
    assert!(status.success());
    let sums = Command::new("sha256sum")
        .arg(&asset)
        .current_dir(&release)
        .output()
        .unwrap();
    std::fs::write(release.join("SHA256SUMS"), sums.stdout).unwrap();
    format!("file://{}", directory.display())
}

fn variable<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("{name} is set"))
}

/// Runs an install script with `TLDW_OPS_REPOSITORY` pointing at `repository`; (success, log).
fn run_install(script: &str, version: &str, repository: &str, scratch: &Path) -> (bool, String) {
    let output = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(scratch)
        .env("TLDW_OPS_VERSION", version)
        .env("TLDW_OPS_REPOSITORY", repository)
        .env("RUNNER_TEMP", scratch.join("runner-temp"))
        .env("GITHUB_PATH", scratch.join("github-path"))
        .env("CI_BUILDS_DIR", scratch.join("builds"))
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn both_examples_install_the_release_binary_only_when_its_checksum_matches() {
    let workflow = github_workflow();
    let github_version = variable(&workflow.env, "TLDW_OPS_VERSION").to_string();
    assert!(
        variable(&workflow.env, "TLDW_OPS_REPOSITORY").contains("YOUR-ORG"),
        "the repository is a marked placeholder, never a made-up URL"
    );
    let pipeline = gitlab_pipeline();
    assert_eq!(
        variable(&pipeline.variables, "TLDW_OPS_VERSION"),
        github_version
    );
    let gitlab_install = pipeline
        .before_script
        .iter()
        .find(|line| line.starts_with("# Install tldw-ops"))
        .expect("the GitLab install block")
        .clone();
    let mut installs = vec![("gitlab", gitlab_install)];
    for job in ["plan", "apply"] {
        let step = workflow.jobs[job]
            .steps
            .iter()
            .find(|step| step.id.as_deref() == Some("install"))
            .expect("an install step");
        installs.push(("github", step.run.clone().unwrap()));
    }
    for (_, script) in &installs {
        assert!(!script.contains("cargo install"), "{script}");
        assert!(script.contains("sha256sum --check"), "{script}");
    }
    for (which, script) in &installs {
        let directory = tempfile::tempdir().unwrap();
        let repository = fake_release(&directory.path().join("release"), &github_version);
        let (ok, log) = run_install(script, &github_version, &repository, directory.path());
        assert!(ok, "{which}: {log}");
        assert!(
            log.contains(&format!("tldw-ops {github_version} (stand-in)")),
            "{which}: {log}"
        );

        // A tarball that is not the one SHA256SUMS names is refused, and nothing runs.
        let tampered = tempfile::tempdir().unwrap();
        let repository = fake_release(&tampered.path().join("release"), &github_version);
        let release = tampered
            .path()
            .join(format!("release/releases/download/v{github_version}"));
        let sums = std::fs::read_to_string(release.join("SHA256SUMS")).unwrap();
        std::fs::write(
            release.join("SHA256SUMS"),
            format!("{}{}", "0".repeat(64), &sums[64..]),
        )
        .unwrap();
        let (ok, log) = run_install(script, &github_version, &repository, tampered.path());
        assert!(!ok, "{which}: a wrong checksum must stop the job: {log}");
        assert!(
            !log.contains("(stand-in)"),
            "{which}: the binary never ran: {log}"
        );
    }
}

#[test]
fn the_github_plan_job_refuses_forks_and_no_concurrency_group_can_drop_an_apply() {
    let path = repo().join("examples/ci/github-actions.yml");
    let document: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let plan_if = document["jobs"]["plan"]["if"].as_str().unwrap();
    assert!(
        plan_if.contains("github.event.pull_request.head.repo.full_name == github.repository"),
        "{plan_if}"
    );
    // GitHub keeps one pending run per concurrency group and cancels older pending ones: a
    // group around the apply could drop a merged change. The state lock serialises instead.
    assert!(
        document.get("concurrency").is_none(),
        "no workflow-level group"
    );
    assert!(
        document["jobs"]["apply"].get("concurrency").is_none(),
        "no group on apply"
    );
    assert_eq!(
        document["jobs"]["plan"]["concurrency"]["cancel-in-progress"].as_bool(),
        Some(true)
    );
    let apply = github_workflow().jobs["apply"]
        .steps
        .iter()
        .find(|step| step.label == "Apply the reviewed plan")
        .and_then(|step| step.run.clone())
        .unwrap();
    assert!(
        apply.contains("[ \"$status\" = 5 ]"),
        "waits on a held lock: {apply}"
    );
}
