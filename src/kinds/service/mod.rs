//! The service steps: `restart` and `health_gate` after a change, and the `stop_service` and
//! `start_service` steps around a restore. Each is journaled `started` before it acts and
//! `done` or `failed` after.
//! - `stop_service`: runs `target.service.stop`, then waits until the health URLs no longer
//!   answer. Undo starts the server.
//! - `start_service`: runs `target.service.start`. Undo stops the server.
//! - `restart` and `health_gate` have no undo of their own: a rollback that wrote back a file
//!   restarts and re-checks once for all of them.

use std::time::{Duration, Instant};

use super::backups::described;
use super::{Effects, Provider, StepContext, StepError, StepFuture, UndoContext, Undoes, Undone};
use crate::deployment::Deployment;
use crate::faults::Point;
use crate::plan::service::HealthCheck;
use crate::plan::{Operation, Step};
use crate::providers::service::{ServiceError, health_client, run_command, wait_healthy};
use crate::providers::tldw_api::TldwApi;
use crate::state::{StepRecord, StepStatus};

pub struct Restart;
pub struct HealthGate;
pub struct StopService;
pub struct StartService;

/// The health URL that answers anything at all (a running server), if one does.
pub async fn server_answers(health: &[HealthCheck]) -> Option<String> {
    let client = health_client();
    for check in health {
        if client.get(&check.url).send().await.is_ok() {
            return Some(check.url.clone());
        }
    }
    None
}

async fn wait_until_silent(health: &[HealthCheck], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match server_answers(health).await {
            None => return Ok(()),
            Some(url) if Instant::now() >= deadline => {
                return Err(format!(
                    "tldw_server still answers at {url} {}s after the stop command",
                    timeout.as_secs()
                ));
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn run_service_command(
    argv: Option<&Vec<String>>,
    what: &str,
    deployment: &Deployment,
) -> Result<(), String> {
    let argv = argv.ok_or_else(|| format!("no `target.service.{what}` command is configured"))?;
    run_command(argv, deployment.service_timeout)
        .await
        .map_err(|error| error.to_string())
}

/// Restarts (when configured), waits for the health gates and runs the smoke gates: what a
/// rollback does once after it wrote back a file, so the final health it reports is the same
/// verdict an apply's gates give.
pub async fn restart_and_check(
    deployment: &Deployment,
    api: Option<&TldwApi>,
    restart: bool,
) -> Result<(), String> {
    let deadline = Instant::now() + deployment.service_timeout;
    if restart && let Some(argv) = &deployment.restart {
        run_command(argv, deployment.service_timeout)
            .await
            .map_err(|error: ServiceError| error.to_string())?;
    }
    if !deployment.health.is_empty() {
        wait_healthy(&deployment.health, deadline)
            .await
            .map_err(|error| error.to_string())?;
    }
    super::smoke::check_all(api, &deployment.smoke).await
}

/// Journals the step, runs `act` between the two pause points, and settles the row.
pub(super) async fn journaled<F: Future<Output = Result<(), StepError>>>(
    cx: &StepContext<'_>,
    step: &Step,
    after_hash: Option<&str>,
    act: F,
) -> Result<StepRecord, StepError> {
    let mut record = cx.journal.row(step, StepStatus::Started);
    record.after_hash = after_hash.map(str::to_string);
    cx.write(&record).await?;
    cx.pause(step, Point::Before).await;
    let result = act.await;
    cx.pause(step, Point::After).await;
    cx.settle(record, result).await
}

impl Provider for Restart {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        _effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(async move {
            let Some(Operation::Run { argv }) = step.operations.first() else {
                return Err(StepError::Message(
                    "restart step without a command".to_string(),
                ));
            };
            journaled(cx, step, None, async {
                Ok(run_command(argv, cx.deployment.service_timeout).await?)
            })
            .await
        })
    }
}

impl Provider for HealthGate {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(async move {
            let record = journaled(cx, step, None, async {
                let deadline = Instant::now() + cx.deployment.service_timeout;
                Ok(wait_healthy(&cx.deployment.health, deadline).await?)
            })
            .await?;
            effects.health_checked = true;
            Ok(record)
        })
    }
}

impl Provider for StopService {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        _effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(journaled(cx, step, Some("stopped"), async {
            run_service_command(cx.deployment.stop.as_ref(), "stop", cx.deployment).await?;
            wait_until_silent(&cx.deployment.health, cx.deployment.service_timeout).await?;
            Ok(())
        }))
    }

    fn undoes(&self) -> Undoes {
        Undoes::Started
    }

    fn undo<'a>(
        &'a self,
        cx: &'a UndoContext<'a>,
        step: &'a Step,
        _row: &'a StepRecord,
    ) -> StepFuture<'a, Result<Undone, String>> {
        Box::pin(async move {
            run_service_command(cx.deployment.start.as_ref(), "start", cx.deployment)
                .await
                .map_err(|error| {
                    format!("the server was stopped and could not be started: {error}")
                })?;
            Ok(described(format!(
                "{} (started the server again)",
                step.index + 1
            )))
        })
    }
}

impl Provider for StartService {
    fn ensure<'a>(
        &'a self,
        cx: &'a StepContext<'a>,
        step: &'a Step,
        _effects: &'a mut Effects,
    ) -> StepFuture<'a, Result<StepRecord, StepError>> {
        Box::pin(journaled(cx, step, Some("started"), async {
            Ok(run_service_command(cx.deployment.start.as_ref(), "start", cx.deployment).await?)
        }))
    }

    fn undoes(&self) -> Undoes {
        Undoes::Started
    }

    fn undo<'a>(
        &'a self,
        cx: &'a UndoContext<'a>,
        step: &'a Step,
        _row: &'a StepRecord,
    ) -> StepFuture<'a, Result<Undone, String>> {
        Box::pin(async move {
            run_service_command(cx.deployment.stop.as_ref(), "stop", cx.deployment)
                .await
                .map_err(|error| format!("could not stop the server: {error}"))?;
            wait_until_silent(&cx.deployment.health, cx.deployment.service_timeout).await?;
            Ok(described(format!(
                "{} (stopped the server)",
                step.index + 1
            )))
        })
    }
}
