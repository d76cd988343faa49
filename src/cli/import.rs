//! `tldw-ops import --root DIR`: write a desired-state file from a running deployment so the
//! first plan is empty. Secrets become `from_env: TLDW_IMPORT_<NAME>` references; their values
//! are never written or printed.

use std::path::{Component, Path, PathBuf};

use super::common::runtime;
use super::output::Style;
use super::{ExitStatus, Printer};
use crate::import::{self, ApiOptions, Options};
use crate::providers::files::write_atomic;
use crate::providers::tldw_api::{ApiConfig, TldwApi};
use crate::settings::Settings;
use crate::spec::types::{ApiAuth, DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE};

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
    let valid_environment = {
        let mut chars = args.environment.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && args.environment.len() <= 63
    };
    if !valid_environment {
        printer.error(&format!(
            "`{}` is not an environment name: letters, digits, `_`, `.` and `-`, starting with a letter or digit",
            args.environment
        ));
        return ExitStatus::Error;
    }
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        printer.error(&format!(
            "{} exists; pass --force to replace it",
            out.display()
        ));
        return ExitStatus::Error;
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let root = normalize(&cwd.join(&args.root));
    let out_directory = args
        .out
        .as_ref()
        .and_then(|out| normalize(&cwd.join(out)).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| cwd.clone());
    let auth = match args.auth {
        AuthArg::Bearer => ApiAuth::Bearer,
        AuthArg::ApiKey => ApiAuth::ApiKey,
    };
    let options = Options {
        root: import::relative_to(&root, &out_directory),
        env_file: root.join(args.env_file.as_deref().unwrap_or(DEFAULT_ENV_FILE)),
        config_file: root.join(args.config_file.as_deref().unwrap_or(DEFAULT_CONFIG_FILE)),
        env_file_in_yaml: args.env_file.clone(),
        config_file_in_yaml: args.config_file.clone(),
        environment: args.environment.clone(),
        api: args.api.as_ref().map(|url| ApiOptions {
            url: url.trim_end_matches('/').to_string(),
            token_env: args.token_env.clone().unwrap_or_default(),
            auth,
        }),
        date: settings.now().to_string().chars().take(10).collect(),
    };
    let api = match &options.api {
        None => None,
        Some(api) => {
            let Some(token) = settings.process_env.get(&api.token_env) else {
                printer.error(&format!(
                    "--token-env {}: that environment variable is not set; export an admin token in it",
                    api.token_env
                ));
                return ExitStatus::Error;
            };
            match TldwApi::new(ApiConfig::new(api.url.clone(), token.clone(), auth)) {
                Ok(client) => Some(client),
                Err(error) => {
                    printer.error(&error.to_string());
                    return ExitStatus::Error;
                }
            }
        }
    };
    let found = match runtime().block_on(import::read(&options, api.as_ref())) {
        Ok(found) => found,
        Err(error) => {
            printer.error(&error.to_string());
            return ExitStatus::Error;
        }
    };
    let imported = import::render(&options, &found);
    match &args.out {
        Some(out) => {
            if let Err(error) = write_atomic(out, imported.yaml.as_bytes(), 0o644, None) {
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
    if let Some(out) = &args.out {
        report_policy(out, settings, printer);
    }
    ExitStatus::Success
}

/// The deployment may already break policy rules; say so now rather than at the first plan.
fn report_policy(out: &Path, settings: &Settings, printer: &Printer) {
    match crate::pipeline::load_checked(out, settings) {
        Ok(checked) => {
            for diagnostic in checked
                .diagnostics
                .iter()
                .filter(|diagnostic| diagnostic.is_error())
            {
                printer.warning(&format!(
                    "the deployment breaks a rule today, so plan will refuse this file until it is fixed or waived: {} [{}]",
                    diagnostic.message, diagnostic.code
                ));
            }
        }
        Err(error) => printer.warning(&format!("the written file does not validate: {error}")),
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
