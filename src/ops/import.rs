//! `import --root DIR`: a desired-state file that declares what a running deployment has now,
//! from its `.env`, config.txt and, with an admin token, its per-user quotas.

use std::path::{Component, Path, PathBuf};

use crate::import::{self, ApiOptions, Imported, Options};
use crate::providers::files::{FileError, write_atomic};
use crate::providers::tldw_api::{ApiConfig, ApiError, TldwApi};
use crate::settings::Settings;
use crate::spec::types::{ApiAuth, DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE};

/// What the command line asked for.
pub struct Request<'a> {
    pub root: &'a Path,
    pub env_file: Option<&'a str>,
    pub config_file: Option<&'a str>,
    /// The admin API's URL, the variable that holds its token, and how the token is sent.
    pub api: Option<(&'a str, &'a str, ApiAuth)>,
    /// Where the YAML will be written (paths in it are relative to that file's directory).
    pub out: Option<&'a Path>,
    /// Replace `out` when it exists.
    pub force: bool,
    pub environment: &'a str,
}

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "`{0}` is not an environment name: letters, digits, `_`, `.` and `-`, starting with a letter or digit"
    )]
    EnvironmentName(String),
    #[error("{} exists; pass --force to replace it", .0.display())]
    Exists(PathBuf),
    #[error("--token-env {0}: that environment variable is not set; export an admin token in it")]
    MissingToken(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Read(#[from] import::ImportError),
    #[error(transparent)]
    Write(#[from] FileError),
}

/// Reads the deployment and renders the YAML.
pub async fn import(request: &Request<'_>, settings: &Settings) -> Result<Imported, ImportError> {
    let valid_environment = {
        let mut chars = request.environment.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && request.environment.len() <= 63
    };
    if !valid_environment {
        return Err(ImportError::EnvironmentName(
            request.environment.to_string(),
        ));
    }
    if let Some(out) = request.out
        && out.exists()
        && !request.force
    {
        return Err(ImportError::Exists(out.to_path_buf()));
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let root = normalize(&cwd.join(request.root));
    let out_directory = request
        .out
        .and_then(|out| normalize(&cwd.join(out)).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| cwd.clone());
    let options = Options {
        root: import::relative_to(&root, &out_directory),
        env_file: root.join(request.env_file.unwrap_or(DEFAULT_ENV_FILE)),
        config_file: root.join(request.config_file.unwrap_or(DEFAULT_CONFIG_FILE)),
        env_file_in_yaml: request.env_file.map(str::to_string),
        config_file_in_yaml: request.config_file.map(str::to_string),
        environment: request.environment.to_string(),
        api: request.api.map(|(url, token_env, auth)| ApiOptions {
            url: url.trim_end_matches('/').to_string(),
            token_env: token_env.to_string(),
            auth,
        }),
        date: settings.now().to_string().chars().take(10).collect(),
    };
    let api = match &options.api {
        None => None,
        Some(api) => {
            let Some(token) = settings.process_env.get(&api.token_env) else {
                return Err(ImportError::MissingToken(api.token_env.clone()));
            };
            Some(TldwApi::new(ApiConfig::new(
                api.url.clone(),
                token.clone(),
                api.auth,
            ))?)
        }
    };
    let found = import::read(&options, api.as_ref()).await?;
    Ok(import::render(&options, &found))
}

/// Writes the imported YAML to `out`, whole or not at all.
pub fn write(out: &Path, imported: &Imported) -> Result<(), ImportError> {
    Ok(write_atomic(out, imported.yaml.as_bytes(), 0o644, None)?)
}

/// Rule problems the written file has today: plan refuses it until they are fixed or waived.
pub fn policy_problems(out: &Path, settings: &Settings) -> Result<Vec<String>, String> {
    match crate::pipeline::load_checked(out, settings) {
        Ok(checked) => Ok(checked
            .diagnostics
            .iter()
            .filter(|diagnostic| diagnostic.is_error())
            .map(|diagnostic| format!("{} [{}]", diagnostic.message, diagnostic.code))
            .collect()),
        Err(error) => Err(error.to_string()),
    }
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
