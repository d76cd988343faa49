//! `tldw-ops import --root DIR`: write a desired-state file from a running deployment so the
//! first plan is empty. Secrets become `from_env: TLDW_IMPORT_<NAME>` references; their values
//! are never written or printed.

use std::path::PathBuf;

use super::common::runtime;
use super::output::Style;
use super::{ExitStatus, Printer};
use crate::ops::import::{Request, import, policy_problems, write};
use crate::settings::Settings;
use crate::spec::types::ApiAuth;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tldw_server directory (the one that holds tldw_Server_API/).
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// The `.env`, relative to the root, when it is not in the usual place.
    #[arg(long, value_name = "PATH")]
    env_file: Option<String>,
    /// `config.txt`, relative to the root, when it is not in the usual place.
    #[arg(long, value_name = "PATH")]
    config_file: Option<String>,
    /// The admin API, to import per-user quotas and check retention overrides.
    #[arg(long, value_name = "URL", requires = "token_env")]
    api: Option<String>,
    /// The environment variable that holds an admin token (written as `from_env`).
    #[arg(long, value_name = "VAR", requires = "api")]
    token_env: Option<String>,
    /// How the token is sent.
    #[arg(long, value_enum, default_value_t = AuthArg::Bearer)]
    auth: AuthArg,
    /// Write the YAML to this file (default: stdout).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace `--out` when it exists.
    #[arg(long)]
    force: bool,
    /// The `environment:` name to write.
    #[arg(long, value_name = "NAME", default_value = "imported")]
    environment: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthArg {
    Bearer,
    ApiKey,
}

pub fn run(args: Args, settings: &Settings, printer: &Printer) -> ExitStatus {
    let auth = match args.auth {
        AuthArg::Bearer => ApiAuth::Bearer,
        AuthArg::ApiKey => ApiAuth::ApiKey,
    };
    let request = Request {
        root: &args.root,
        env_file: args.env_file.as_deref(),
        config_file: args.config_file.as_deref(),
        api: args
            .api
            .as_deref()
            .map(|url| (url, args.token_env.as_deref().unwrap_or_default(), auth)),
        out: args.out.as_deref(),
        force: args.force,
        environment: &args.environment,
    };
    let imported = match runtime().block_on(import(&request, settings)) {
        Ok(imported) => imported,
        Err(error) => {
            printer.error(&error.to_string());
            return ExitStatus::Error;
        }
    };
    match &args.out {
        Some(out) => {
            if let Err(error) = write(out, &imported) {
                printer.error(&error.to_string());
                return ExitStatus::Error;
            }
            printer.note(&format!(
                "{} {}",
                printer.paint(Style::Success, "wrote"),
                out.display()
            ));
        }
        None => printer.stdout(&imported.yaml),
    }
    printer.note(&format!("  {}", imported.summary()));
    if !imported.secrets.is_empty() {
        printer.note(
            "  Before `tldw-ops plan`, export each of these with the current value of the .env key \
             in brackets (CI needs them as secret variables too):",
        );
        for secret in &imported.secrets {
            printer.note(&format!("    {}  ({})", secret.variable, secret.name));
        }
    }
    if !imported.left_out.is_empty() {
        printer.note(&format!(
            "  {} thing{} not imported as-is; the comments at the end of the file say why",
            imported.left_out.len(),
            plural(imported.left_out.len())
        ));
    }
    // The deployment may already break policy rules; say so now rather than at the first plan.
    if let Some(out) = &args.out {
        match policy_problems(out, settings) {
            Ok(problems) => {
                for problem in problems {
                    printer.warning(&format!(
                        "the deployment breaks a rule today, so plan will refuse this file until it is fixed or waived: {problem}"
                    ));
                }
            }
            Err(error) => printer.warning(&format!("the written file does not validate: {error}")),
        }
    }
    ExitStatus::Success
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
