//! The deployment a desired state targets: its resolved paths and services, and observing its
//! files. Relative paths in `target` resolve against the directory of the YAML file that wrote
//! them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::model::{Address, Observed, Target};
use crate::plan::service::{HealthCheck, SmokeCheck};
use crate::providers::config_file::{ConfigFile, ConfigFileError};
use crate::providers::env_file::{EnvFile, EnvFileError};
use crate::spec::Checked;
use crate::spec::types::{DEFAULT_CONFIG_FILE, DEFAULT_ENV_FILE, DEFAULT_USER_DB_BASE_DIR};

/// Where everything is.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub root: PathBuf,
    pub env_file: PathBuf,
    pub config_file: PathBuf,
    pub user_db_base_dir: PathBuf,
    pub api_url: Option<String>,
    pub service_url: Option<String>,
    pub restart: Option<Vec<String>>,
    pub stop: Option<Vec<String>>,
    pub start: Option<Vec<String>>,
    pub health: Vec<HealthCheck>,
    pub smoke: Vec<SmokeCheck>,
    /// Restart plus health gates, together.
    pub service_timeout: std::time::Duration,
    /// Where the backup sets go and what they hold, when there is a `backup:` policy.
    pub backup: Option<crate::backups::BackupTarget>,
}

impl Deployment {
    pub fn from_checked(checked: &Checked) -> Deployment {
        let target = &checked.spec.target;
        let root = checked.declared_path("/target/root", &target.root);
        let env_file = root.join(target.env_file.as_deref().unwrap_or(DEFAULT_ENV_FILE));
        let config_file = root.join(target.config_file.as_deref().unwrap_or(DEFAULT_CONFIG_FILE));
        let user_db_base_dir = root.join(
            target
                .user_db_base_dir
                .as_deref()
                .unwrap_or(DEFAULT_USER_DB_BASE_DIR),
        );
        let api_url = target
            .api
            .as_ref()
            .map(|api| api.url.trim_end_matches('/').to_string());
        let service = target.service.as_ref();
        let service_url = service
            .and_then(|service| service.url.clone())
            .or_else(|| api_url.clone())
            .map(|url| url.trim_end_matches('/').to_string());
        let health = service
            .map(|service| {
                service
                    .health
                    .iter()
                    .map(|gate| HealthCheck {
                        url: format!("{}{}", service_url.clone().unwrap_or_default(), gate.path),
                        expect_status: gate.expect_status.unwrap_or(200),
                        expect_json: gate.expect_json.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let smoke = service
            .map(|service| {
                service
                    .smoke
                    .iter()
                    .map(|gate| SmokeCheck {
                        name: gate.name.clone().unwrap_or_else(|| gate.path.clone()),
                        url: format!("{}{}", service_url.clone().unwrap_or_default(), gate.path),
                        auth: gate.auth == Some(crate::spec::types::SmokeAuth::Api),
                        expect_status: gate.expect_status.unwrap_or(200),
                        expect_json: gate.expect_json.clone(),
                        timeout_ms: gate
                            .timeout
                            .map(|timeout| timeout.as_seconds() * 1000)
                            .unwrap_or(10_000),
                        retries: gate.retries.unwrap_or(2),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let backup = crate::backups::BackupTarget::resolve(
            checked,
            &root,
            &env_file,
            &config_file,
            &user_db_base_dir,
        );
        Deployment {
            root,
            env_file,
            config_file,
            user_db_base_dir,
            api_url,
            service_url,
            restart: service.and_then(|service| service.restart.clone()),
            stop: service.and_then(|service| service.stop.clone()),
            start: service.and_then(|service| service.start.clone()),
            health,
            smoke,
            service_timeout: service
                .and_then(|service| service.timeout)
                .map(|timeout| timeout.as_std())
                .unwrap_or(std::time::Duration::from_secs(60)),
            backup,
        }
    }
}

/// The deployment's files as read during observe.
#[derive(Debug, Clone)]
pub struct ObservedFiles {
    pub env: EnvFile,
    pub config: ConfigFile,
}

impl ObservedFiles {
    /// The canonical value `address` has now. File addresses are read from the files
    /// themselves, as the executor's precondition check reads them: a key the desired state
    /// does not manage (a rotation's `keep_previous_as`, a key a rollback plan restores) is not
    /// in `observed`, and would read as absent there but present at apply.
    pub fn now(&self, observed: &Observed, address: &Address) -> Option<String> {
        match address.kind().target() {
            Target::EnvFile => self.env.observe(address).canonical(),
            Target::ConfigFile => self.config.observe(address).canonical(),
            Target::Api | Target::Backups | Target::Checkout => observed.get(address).canonical(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Env(#[from] EnvFileError),
    #[error(transparent)]
    Config(#[from] ConfigFileError),
}

/// Reads and parses the `.env` and config.txt.
pub fn read_files(deployment: &Deployment) -> Result<ObservedFiles, ObserveError> {
    let (env, config) = std::thread::scope(|scope| {
        let env = scope.spawn(|| EnvFile::read(&deployment.env_file));
        let config = ConfigFile::read(&deployment.config_file);
        (env.join().expect("the .env reader does not panic"), config)
    });
    Ok(ObservedFiles {
        env: env?,
        config: config?,
    })
}

/// Reads the `.env` and config.txt and returns the observed value of every file address in
/// `addresses`, with warnings about the files.
pub fn observe_files(
    deployment: &Deployment,
    addresses: &BTreeSet<Address>,
) -> Result<(Observed, ObservedFiles), ObserveError> {
    let files = read_files(deployment)?;
    Ok((file_values(&files, addresses), files))
}

/// The observed value of every file address in `addresses`, with warnings about the files.
pub fn file_values(files: &ObservedFiles, addresses: &BTreeSet<Address>) -> Observed {
    let (env, config) = (&files.env, &files.config);
    let mut observed = Observed::default();
    for address in addresses {
        let value = match address.kind().target() {
            Target::EnvFile => env.observe(address),
            Target::ConfigFile => config.observe(address),
            Target::Api | Target::Backups | Target::Checkout => continue,
        };
        observed.values.insert(address.clone(), value);
    }
    let managed: BTreeSet<&str> = addresses
        .iter()
        .filter(|address| address.kind().target() == Target::EnvFile)
        .map(Address::name)
        .collect();
    observed
        .warnings
        .extend(env.warnings(&|key| managed.contains(key)));
    observed
}
