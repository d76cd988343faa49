//! The bare-metal release kind: `release.git`, the tag or commit the git checkout at
//! `target.root` runs. Its step (`switch_release`) journals the commit it replaces, checks the
//! new one out (detached) and runs `release.install` in the root; undo checks the old commit
//! out again and installs it. Git is run as `git -C <root>` with argv, never a shell, and the
//! ref must already be in the checkout: nothing is fetched.

pub mod kind;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::{
    Effects, Provider, RestoreContext, Restoring, StepContext, StepError, StepFuture, UndoContext,
    Undoes, Undone, files,
};
use crate::deployment::Deployment;
use crate::faults::Point;
use crate::model::{Address, Desired, ObservedValue};
use crate::plan::{Operation, Step};
use crate::providers::service::run_in;
use crate::state::StepStatus;

/// `switch_release`.
pub struct SwitchRelease;

/// Why git could not do what the release step asked.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git could not start: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("`git {command}` in {} failed: {message}", root.display())]
    Failed {
        command: String,
        root: std::path::PathBuf,
        /// git's first line on stderr.
        message: String,
    },
    #[error(
        "release.git `{reference}` is not in the checkout at {}: fetch it first (`git fetch --tags`)",
        root.display()
    )]
    MissingRef {
        reference: String,
        root: std::path::PathBuf,
    },
}

/// Runs `git -C root args…` and returns its trimmed standard output.
fn git(root: &Path, args: &[&str]) -> Result<String, GitError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| GitError::Spawn { source })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(GitError::Failed {
            command: args.join(" "),
            root: root.to_path_buf(),
            message: stderr.lines().next().unwrap_or_default().trim().to_string(),
        })
    }
}

/// The commit the checkout runs.
fn head(root: &Path) -> Result<String, GitError> {
    git(root, &["rev-parse", "--verify", "HEAD^{commit}"])
}

/// The commit `reference` names in the checkout.
fn resolve(root: &Path, reference: &str) -> Result<String, GitError> {
    git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--end-of-options",
            &format!("{reference}^{{commit}}"),
        ],
    )
    .map_err(|_| GitError::MissingRef {
        reference: reference.to_string(),
        root: root.to_path_buf(),
    })
}

/// Checks `commit` out, detached.
fn checkout(root: &Path, commit: &str) -> Result<(), GitError> {
    git(
        root,
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--detach",
            "--quiet",
            commit,
        ],
    )
    .map(|_| ())
}

/// The release the checkout runs, as the plan compares it with `release.git`: the declared
/// ref itself when the checkout is at its commit, else `git describe` of HEAD (a tag, or a
/// tag with the commits since, or the short commit). Absent, with git's reason, when `root`
/// is not a checkout git will read.
pub fn observe(root: &Path, declared: Option<&str>) -> (ObservedValue, Option<String>) {
    let now = match head(root) {
        Ok(now) => now,
        Err(reason) => {
            return (
                ObservedValue::Absent,
                Some(format!(
                    "release.git: the running release could not be read ({reason})"
                )),
            );
        }
    };
    if let Some(declared) = declared
        && resolve(root, declared).is_ok_and(|commit| commit == now)
    {
        return (ObservedValue::Text(declared.to_string()), None);
    }
    let described = git(root, &["describe", "--tags", "--always", "HEAD"]).unwrap_or(now);
    (ObservedValue::Text(described), None)
}

/// The step's checkout operation.
fn operation(step: &Step) -> Result<(&str, Option<&[String]>), StepError> {
    match step.operations.first() {
        Some(Operation::Checkout {
            reference, install, ..
        }) => Ok((reference, install.as_deref())),
        _ => Err(StepError::Message(
            "a switch_release step without a checkout".to_string(),
        )),
    }
}

async fn install(deployment: &Deployment, argv: Option<&[String]>) -> Result<(), StepError> {
    if let Some(argv) = argv {
        run_in(
            "install",
            argv,
            Some(&deployment.root),
            deployment.service_timeout,
        )
        .await?;
    }
    Ok(())
}

async fn ensure(cx: &StepContext<'_>, step: &Step) -> Result<crate::state::StepRecord, StepError> {
    let (reference, argv) = operation(step)?;
    let root = &cx.deployment.root;
    let previous = head(root)?;
    let target = resolve(root, reference)?;
    // The commit replaced and the one checked out are journaled before anything moves, so a
    // rollback after a crash at any point knows where to go back to.
    let mut row = cx.journal.row(step, StepStatus::Started);
    row.before_values = Some(previous);
    row.after_hash = Some(target.clone());
    cx.write(&row).await?;
    cx.pause(step, Point::Before).await;
    let result = async {
        checkout(root, &target)?;
        install(cx.deployment, argv).await
    }
    .await;
    cx.pause(step, Point::After).await;
    cx.settle(row, result).await
}

impl Provider for SwitchRelease {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        _effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<crate::state::StepRecord, StepError>> {
        Box::pin(ensure(cx, step))
    }

    fn undoes(&self) -> Undoes {
        Undoes::Finished
    }

    /// Checks the replaced commit out again and installs it, so the old code runs with its own
    /// dependencies after the restart the rollback makes.
    fn undo<'a>(
        &'a self,
        cx: &'a UndoContext<'a>,
        step: &'a Step,
        row: &'a crate::state::StepRecord,
    ) -> StepFuture<'a, Result<Undone, String>> {
        Box::pin(async move {
            let number = step.index + 1;
            let Some(previous) = row.before_values.as_deref() else {
                return Ok(Undone {
                    described: Some(format!("{number} (nothing was checked out)")),
                    restored_files: false,
                });
            };
            let root = &cx.deployment.root;
            if head(root).ok().as_deref() != Some(previous) {
                checkout(root, previous).map_err(|error| error.to_string())?;
            }
            let (_, argv) = operation(step).map_err(|error| error.to_string())?;
            install(cx.deployment, argv)
                .await
                .map_err(|error| format!("checked {previous} out again, but {error}"))?;
            Ok(Undone {
                described: Some(format!(
                    "{number} (checked out {} again{})",
                    &previous[..previous.len().min(12)],
                    if argv.is_some() {
                        " and installed it"
                    } else {
                        ""
                    }
                )),
                // The code on disk changed back: the rollback restarts and runs the gates.
                restored_files: true,
            })
        })
    }

    /// `rollback <apply-id>`: check the commit the step replaced out again and install it with
    /// the install command the YAML declares now.
    fn restoring(
        &self,
        cx: &RestoreContext<'_>,
        row: &crate::state::StepRecord,
    ) -> Result<Option<Restoring>, String> {
        let (StepStatus::Done, Some(previous)) = (row.status, &row.before_values) else {
            return Ok(None);
        };
        let address = Address::release();
        let now = cx.now(&address);
        let then = Some(previous.clone());
        if now.as_deref() == Some(previous.as_str()) {
            return Ok(None);
        }
        let install = match cx.desired.get(&address).map(|resource| &resource.desired) {
            Some(Desired::Release { install, .. }) => install.clone(),
            _ => None,
        };
        let operation = Operation::Checkout {
            address: address.clone(),
            reference: previous.clone(),
            install,
        };
        Ok(Some(Restoring {
            changes: vec![cx.change(address.clone(), now, then, false)],
            step: Step {
                index: 0,
                kind: crate::plan::StepKind::SwitchRelease,
                target: row.target.clone(),
                addresses: vec![address.to_string()],
                operations: vec![operation],
            },
            restarts: true,
        }))
    }

    fn fingerprints_now<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        fingerprints: &'a BTreeMap<String, String>,
    ) -> StepFuture<'a, Result<BTreeMap<String, String>, String>> {
        Box::pin(async move {
            let declared = cx
                .desired
                .get(&Address::release())
                .and_then(|resource| resource.desired.canonical());
            let now = observe(&cx.deployment.root, declared.as_deref())
                .0
                .canonical();
            Ok(files::fingerprints_in(cx.salt, fingerprints, |_| {
                now.clone()
            }))
        })
    }
}
