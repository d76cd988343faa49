//! A Compose release as desired state: `release.image` is the app image. Changing it is an
//! upgrade: a backup set is always step 1, the replaced image is kept as `TLDW_ROLLBACK_IMAGE`,
//! and a failed gate puts the old image back and restarts it. The restart is a stand-in
//! `docker` that records each call and the image the `.env` held when it ran.

use crate::common::{ENV_PATH, Site, run};
use crate::support::fake_tldw::{FakeTldw, FakeTldwConfig};

const TOKEN: &str = "release-admin-token-that-must-never-be-printed-5";
const OLD: &str = "ghcr.io/rmusser01/tldw_server:sha-1111111";
const NEW: &str = "ghcr.io/rmusser01/tldw_server@sha256:2222222222222222222222222222222222222222222222222222222222222222";

struct Deployment {
    site: Site,
    fake: FakeTldw,
}

impl Deployment {
    fn new(release: &str) -> Deployment {
        let fake = FakeTldw::start(FakeTldwConfig {
            admin_token: TOKEN.to_string(),
            ..FakeTldwConfig::default()
        });
        let site = Site::new();
        site.set_env_text(&format!("{}TLDW_APP_IMAGE={OLD}\n", site.env_text()));
        let docker = site.path().join("docker");
        std::fs::write(
            &docker,
            format!(
                "#!/bin/sh\necho \"docker $* with $(grep '^TLDW_APP_IMAGE=' '{env}')\" >> '{log}'\n",
                env = site.path().join(ENV_PATH).display(),
                log = site.path().join("docker.log").display(),
            ),
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&docker).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&docker, permissions).unwrap();
        site.write_yaml(
            "tldw-ops.yaml",
            &format!(
                r#"apiVersion: tldw-ops/v1
environment: dev
target:
  root: site
  api:
    url: {url}
    token: {{ from_env: TEST_ADMIN_TOKEN }}
  service:
    restart: [{docker}, compose, up, -d, app]
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
  include: [config]
  verify: true
"#,
                url = fake.url(),
                docker = docker.display(),
            ),
        );
        Deployment { site, fake }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = self.site.command();
        command.args(args).env("TEST_ADMIN_TOKEN", TOKEN);
        run(&mut command)
    }

    fn docker_calls(&self) -> Vec<String> {
        crate::common::log_lines(&self.site.path().join("docker.log"))
    }

    fn sets(&self) -> usize {
        std::fs::read_dir(self.site.path().join("backups/dev"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }
}

fn release(image: &str) -> String {
    format!("release:\n  image: \"{image}\"")
}

#[test]
fn an_upgrade_plan_takes_a_backup_first_then_switches_restarts_and_runs_the_gates() {
    let deployment = Deployment::new(&release(NEW));
    let (code, stdout, stderr) = deployment.run(&["plan", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    // The backup policy leaves the AuthNZ database out, and the plan says what that means.
    assert!(
        stdout.contains("upgrade: `backup.include` leaves authnz out"),
        "{stdout}"
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kinds = crate::common::step_kinds(&plan);
    assert_eq!(
        kinds,
        [
            "create_backup",
            "ensure_env_file",
            "restart",
            "health_gate",
            "smoke_gate"
        ]
    );
    let changes = plan["changes"].as_array().unwrap();
    let backup = changes
        .iter()
        .find(|change| {
            change["address"]
                .as_str()
                .unwrap()
                .starts_with("backup.set.")
        })
        .unwrap();
    assert!(
        backup["reason"].as_str().unwrap().starts_with("upgrade:"),
        "{backup}"
    );
    let image = changes
        .iter()
        .find(|change| change["address"] == "env.TLDW_APP_IMAGE")
        .unwrap();
    assert_eq!(image["before"], OLD);
    assert_eq!(image["after"], NEW);
    let set = &plan["steps"][1]["operations"][0];
    assert_eq!(set["secret"]["keep_previous_as"], "TLDW_ROLLBACK_IMAGE");
    // The diff shows the old image moving to TLDW_ROLLBACK_IMAGE, unmasked.
    let (code, text, _) = deployment.run(&["plan", "--diff"]);
    assert_eq!(code, 0);
    assert!(
        text.contains(&format!("+TLDW_ROLLBACK_IMAGE={OLD}")),
        "{text}"
    );
}

#[test]
fn an_upgrade_applies_and_keeps_the_old_image_for_a_rollback() {
    let deployment = Deployment::new(&release(NEW));
    let (code, _, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let env = deployment.site.env_text();
    assert!(env.contains(&format!("TLDW_APP_IMAGE={NEW}")), "{env}");
    assert!(env.contains(&format!("TLDW_ROLLBACK_IMAGE={OLD}")), "{env}");
    assert_eq!(deployment.sets(), 1, "the pre-upgrade set");
    assert_eq!(
        deployment.docker_calls(),
        [format!(
            "docker compose up -d app with TLDW_APP_IMAGE={NEW}"
        )]
    );
    // Nothing more to do afterwards.
    let (code, stdout, stderr) = deployment.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_failed_smoke_gate_puts_the_old_image_back_and_restarts_it() {
    let deployment = Deployment::new(&release(NEW));
    let before = deployment.site.env_text();
    deployment
        .fake
        .fail_next("GET", "/api/v1/admin/users", 500, 2);
    let (code, _, stderr) = deployment.run(&["apply", "--auto-approve"]);
    assert_eq!(code, 6, "{stderr}");
    assert!(
        stderr.contains("smoke gate `admin users` failed"),
        "{stderr}"
    );
    assert_eq!(
        deployment.site.env_text(),
        before,
        "the .env is back byte for byte"
    );
    assert_eq!(
        deployment.docker_calls(),
        [
            format!("docker compose up -d app with TLDW_APP_IMAGE={NEW}"),
            format!("docker compose up -d app with TLDW_APP_IMAGE={OLD}"),
        ]
    );
    assert_eq!(deployment.sets(), 1, "the pre-upgrade set is kept");
    assert!(stderr.contains("final health: healthy"), "{stderr}");
}

#[test]
fn validate_asks_for_what_makes_an_upgrade_reversible() {
    let deployment = Deployment::new(&format!(
        "{}\nenv:\n  TLDW_ROLLBACK_IMAGE: \"{OLD}\"",
        release(NEW)
    ));
    let yaml = std::fs::read_to_string(deployment.site.path().join("tldw-ops.yaml")).unwrap();
    let without_backup = yaml[..yaml.find("backup:\n").unwrap()].to_string();
    deployment.site.write_yaml("tldw-ops.yaml", &without_backup);
    let (code, _, stderr) = deployment.run(&["validate"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("`release` needs a `backup:` policy"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`TLDW_ROLLBACK_IMAGE` is kept by `release`"),
        "{stderr}"
    );
}

/// Starts `apply` paused at a step of the upgrade and kills it with SIGKILL there.
fn crash_at(deployment: &Deployment, step: u32, point: &str) {
    let mut command = deployment.site.command();
    command
        .args(["apply", "--auto-approve"])
        .env("TEST_ADMIN_TOKEN", TOKEN);
    crate::common::crash_at(command, step, point);
}

#[test]
fn a_kill_at_every_step_of_an_upgrade_resumes_to_the_new_image_or_rolls_back_to_the_old() {
    // backup, .env switch, restart, health gate, smoke gate.
    for step in 0..5 {
        for point in ["before", "after"] {
            let deployment = Deployment::new(&release(NEW));
            crash_at(&deployment, step, point);
            let (code, _, stderr) = deployment.run(&["apply", "--resume"]);
            assert_eq!(code, 0, "{step}:{point}: {stderr}");
            let env = deployment.site.env_text();
            assert!(
                env.contains(&format!("TLDW_APP_IMAGE={NEW}\n")),
                "{step}:{point}"
            );
            assert!(
                env.contains(&format!("TLDW_ROLLBACK_IMAGE={OLD}\n")),
                "{step}:{point}"
            );
            assert_eq!(deployment.sets(), 1, "{step}:{point}: one pre-upgrade set");
            let (code, _, stderr) = deployment.run(&["plan", "--detailed-exitcode"]);
            assert_eq!(code, 0, "{step}:{point}: converged: {stderr}");

            let deployment = Deployment::new(&release(NEW));
            let before = deployment.site.env_text();
            crash_at(&deployment, step, point);
            let (code, _, stderr) = deployment.run(&["rollback", "--unfinished", "--auto-approve"]);
            assert_eq!(code, 0, "{step}:{point}: {stderr}");
            assert_eq!(deployment.site.env_text(), before, "{step}:{point}");
            // A pre-upgrade set that was made is a safety copy and stays; one killed while it
            // was being made is removed.
            let kept = usize::from(!(step == 0 && point == "before"));
            assert_eq!(deployment.sets(), kept, "{step}:{point}");
            let last = deployment.docker_calls().last().cloned();
            if let Some(last) = last {
                assert!(
                    last.ends_with(&format!("TLDW_APP_IMAGE={OLD}")),
                    "{step}:{point}: the last restart runs the old image: {last}"
                );
            }
        }
    }
}
