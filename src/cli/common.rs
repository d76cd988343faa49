//! Pieces several commands share: the async runtime, mapping pipeline errors to exit codes,
//! the confirmation prompt, and progress reporting.

use std::io::BufRead;
use std::time::Duration;

use super::output::Style;
use super::{ExitStatus, Printer};
use crate::apply::{Reporter, StepReport};
use crate::pipeline::PipelineError;
use crate::plan::Step;
use crate::settings::Settings;
use crate::spec::diagnostic::render_text;
use crate::state::StateError;

/// The injected faults (`--fault`, test builds), or the exit status after saying why they do
/// not parse. Every command that executes steps starts here.
pub fn faults(settings: &Settings, printer: &Printer) -> Result<crate::faults::Faults, ExitStatus> {
    match settings
        .fault
        .as_deref()
        .map(crate::faults::Faults::parse)
        .transpose()
    {
        Ok(faults) => Ok(faults.unwrap_or_default()),
        Err(error) => {
            printer.error(&error);
            Err(ExitStatus::Error)
        }
    }
}

/// Loads the desired state in `file` and observes its deployment (`ops::apply::prepare`), or
/// the exit status after reporting why not.
pub async fn load_and_observe(
    file: &std::path::Path,
    settings: &Settings,
    printer: &Printer,
) -> Result<crate::pipeline::Prepared, ExitStatus> {
    crate::ops::apply::prepare(file, settings)
        .await
        .map_err(|error| report_pipeline_error(error, printer))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

/// Policy on what apply would leave behind (the desired values over the deployment's files):
/// warnings are printed; an error-level finding stops `plan` and `apply` with exit 3.
pub fn check_effective_policy(
    prepared: &crate::pipeline::Prepared,
    plan: &crate::plan::Plan,
    printer: &Printer,
) -> Result<(), ExitStatus> {
    match crate::ops::plan::check_effective_policy(prepared, plan) {
        Ok(warnings) => {
            for diagnostic in &warnings {
                let at = diagnostic
                    .location
                    .as_ref()
                    .map(|location| format!("{location}: "))
                    .unwrap_or_default();
                printer.warning(&format!("{at}{} [{}]", diagnostic.message, diagnostic.code));
            }
            Ok(())
        }
        Err(broken) => {
            printer.diagnostics(&render_text(
                &broken.findings,
                prepared.loaded.checked.sources(),
            ));
            printer.error(&broken.to_string());
            Err(ExitStatus::Invalid)
        }
    }
}

/// Reports a pipeline error and returns its exit code.
pub fn report_pipeline_error(error: PipelineError, printer: &Printer) -> ExitStatus {
    match error {
        PipelineError::Invalid {
            diagnostics,
            sources,
        } => {
            printer.diagnostics(&render_text(&diagnostics, &sources));
            let errors = diagnostics
                .iter()
                .filter(|diagnostic| diagnostic.is_error())
                .count();
            printer.error(&format!(
                "the desired state has {errors} error{}; run `tldw-ops validate` for details",
                if errors == 1 { "" } else { "s" }
            ));
            ExitStatus::Invalid
        }
        PipelineError::Unfinished(record) => {
            printer.error(&format!(
                "apply {} of environment {} did not finish (started {} by {}@{}, pid {}).\n\
                 Nothing new is applied until it is settled. Either:\n  \
                 tldw-ops apply --resume        finish it\n  \
                 tldw-ops rollback --unfinished undo what it did",
                record.id,
                record.environment,
                record.started_at,
                record.actor_user,
                record.actor_host,
                record.pid
            ));
            ExitStatus::NeedsAttention
        }
        PipelineError::State(error) => report_state_error(error, printer),
        other => {
            printer.error(&other.to_string());
            ExitStatus::Error
        }
    }
}

pub fn report_state_error(error: StateError, printer: &Printer) -> ExitStatus {
    match error {
        StateError::Locked {
            environment,
            holder,
        } => {
            let alive = if holder.host == crate::settings::hostname() {
                if crate::apply::recover::process_alive(holder.pid) {
                    " (still running)"
                } else {
                    " (that process is gone; if no apply is running, clear it with `tldw-ops state unlock --force`)"
                }
            } else {
                ""
            };
            printer.error(&format!(
                "environment {environment} is locked by apply {} on host {} (pid {}{alive}), started {}",
                holder.apply_id, holder.host, holder.pid, holder.started_at
            ));
            ExitStatus::Locked
        }
        other => {
            printer.error(&other.to_string());
            ExitStatus::Error
        }
    }
}

/// Asks for `yes` on a terminal. Without one, refuses unless auto-approved.
pub fn confirm(
    question: &str,
    auto_approve: bool,
    settings: &Settings,
    printer: &Printer,
) -> Result<(), ExitStatus> {
    if auto_approve {
        return Ok(());
    }
    if !settings.interactive {
        printer.error("no terminal to confirm on; review the plan and pass --auto-approve to apply without a prompt");
        return Err(ExitStatus::Error);
    }
    printer.stderr(&format!(
        "\n{question}\n  Only 'yes' will be accepted to approve.\n\n  {} ",
        printer.paint(Style::Bold, "Enter a value:")
    ));
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        printer.note("Cancelled; nothing was changed.");
        Err(ExitStatus::Error)
    }
}

/// Progress as plain lines on stderr, with a spinner on a terminal.
pub struct LineReporter {
    printer: Printer,
    total: usize,
    bar: Option<indicatif::ProgressBar>,
}

impl LineReporter {
    pub fn new(printer: Printer, total: usize, interactive: bool) -> LineReporter {
        // A spinner redraws its line with escape codes: not in JSON logs.
        let bar = (interactive && !printer.json_logs()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        LineReporter {
            printer,
            total,
            bar,
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => self.printer.note(text),
        }
    }
}

impl Reporter for LineReporter {
    fn step_started(&self, step: &Step) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "[{}/{}] {} {}",
                step.index + 1,
                self.total,
                step.kind.as_str(),
                step.target
            ));
        }
    }

    fn step_finished(&self, step: &Step, report: &StepReport) {
        let status = match report {
            StepReport::Done { elapsed } => self.printer.paint(
                Style::Success,
                &format!("done ({})", elapsed_text(*elapsed)),
            ),
            StepReport::Skipped => self.printer.paint(Style::Dim, "already in place"),
            StepReport::Failed { error } => self
                .printer
                .paint(Style::Error, &format!("failed: {error}")),
        };
        self.line(&format!(
            "[{}/{}] {} {}: {status}",
            step.index + 1,
            self.total,
            step.kind.as_str(),
            step.target
        ));
    }

    fn undo_started(&self, step: &Step) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("undoing step {} {}", step.index + 1, step.target));
        }
    }

    fn undo_finished(&self, step: &Step, result: &Result<(), String>) {
        let status = match result {
            Ok(()) => self.printer.paint(Style::Success, "restored"),
            Err(error) => self
                .printer
                .paint(Style::Error, &format!("could not be undone: {error}")),
        };
        self.line(&format!(
            "undo step {} {} {}: {status}",
            step.index + 1,
            step.kind.as_str(),
            step.target
        ));
    }

    fn note(&self, text: &str) {
        self.line(text);
    }

    fn activity(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_string());
        }
    }
}

impl Drop for LineReporter {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// For `apply --resume` and `rollback --unfinished`: `ops::apply::load_unfinished`'s desired
/// state, unfinished apply and its plan. `Err` is the exit status, already reported; `Success`
/// when there is nothing unfinished (`nothing_to` says to what).
pub async fn load_unfinished(
    file: &std::path::Path,
    settings: &Settings,
    printer: &Printer,
    nothing_to: &str,
) -> Result<crate::ops::apply::Unfinished, ExitStatus> {
    use crate::ops::apply::UnfinishedError;
    crate::ops::apply::load_unfinished(file, settings)
        .await
        .map_err(|error| match error {
            UnfinishedError::Pipeline(error) => report_pipeline_error(error, printer),
            UnfinishedError::State(error) => report_state_error(error, printer),
            UnfinishedError::NoneUnfinished(key) => {
                printer.note(&format!(
                    "environment {key} has no unfinished apply; nothing to {nothing_to}."
                ));
                ExitStatus::Success
            }
            UnfinishedError::UnreadablePlan(message) => {
                printer.error(&message);
                ExitStatus::NeedsAttention
            }
        })
}

/// Which part of the desired state to plan and apply (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// The `backup:` policy alone: create a set when one is due, delete what the keep policy
    /// releases. Nothing else is changed or recorded; `before_apply` does not apply.
    Backup,
}

/// A duration as people read it: `840 ms`, `10.5 s`, `2m 05s`, `1h 02m`.
pub fn elapsed_text(elapsed: std::time::Duration) -> String {
    let millis = elapsed.as_millis();
    let seconds = elapsed.as_secs();
    if millis < 1_000 {
        format!("{millis} ms")
    } else if seconds < 60 {
        format!("{}.{} s", seconds, (millis % 1_000) / 100)
    } else if seconds < 3_600 {
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h {:02}m", seconds / 3_600, (seconds % 3_600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::elapsed_text;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(elapsed_text(Duration::from_millis(37)), "37 ms");
        assert_eq!(elapsed_text(Duration::from_millis(10_515)), "10.5 s");
        assert_eq!(elapsed_text(Duration::from_millis(59_999)), "59.9 s");
        assert_eq!(elapsed_text(Duration::from_secs(125)), "2m 05s");
        assert_eq!(elapsed_text(Duration::from_secs(3_720)), "1h 02m");
    }
}
