//! Restarting tldw_server and checking its health: the restart command runs as an argv (never
//! a shell string) with a timeout; health gates are polled with short per-request timeouts until
//! they all pass or the deadline passes.

use std::time::{Duration, Instant};

use crate::plan::service::HealthCheck;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{what} command `{command}` could not start: {source}")]
    Spawn {
        what: &'static str,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} command `{command}` exited with {status}")]
    Failed {
        what: &'static str,
        command: String,
        status: String,
    },
    #[error("{what} command `{command}` did not finish within {seconds}s and was stopped")]
    Timeout {
        what: &'static str,
        command: String,
        seconds: u64,
    },
    #[error("health gates did not pass within {seconds}s: {detail}")]
    Unhealthy { seconds: u64, detail: String },
}

/// Runs the restart command `argv` and waits for it, up to `timeout`.
pub async fn run_command(argv: &[String], timeout: Duration) -> Result<(), ServiceError> {
    run_in("restart", argv, None, timeout).await
}

/// Runs `argv` (the `what` command, as messages name it) in `directory`, or the current one,
/// and waits for it, up to `timeout`.
pub async fn run_in(
    what: &'static str,
    argv: &[String],
    directory: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<(), ServiceError> {
    let command = crate::plan::service::shell_words(argv);
    let Some((program, arguments)) = argv.split_first() else {
        return Err(ServiceError::Failed {
            what,
            command,
            status: "an empty command".to_string(),
        });
    };
    let mut process = tokio::process::Command::new(program);
    if let Some(directory) = directory {
        process.current_dir(directory);
    }
    let mut child = process
        .args(arguments)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ServiceError::Spawn {
            what,
            command: command.clone(),
            source,
        })?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(ServiceError::Failed {
            what,
            command,
            status: status.to_string(),
        }),
        Ok(Err(source)) => Err(ServiceError::Spawn {
            what,
            command,
            source,
        }),
        Err(_) => {
            let _ = child.kill().await;
            Err(ServiceError::Timeout {
                what,
                command,
                seconds: timeout.as_secs(),
            })
        }
    }
}

/// The result of one check.
async fn check_once(client: &reqwest::Client, check: &HealthCheck) -> Result<(), String> {
    check_response(
        client.get(&check.url),
        &check.url,
        check.expect_status,
        check.expect_json.as_ref(),
        true,
    )
    .await
}

/// Sends `request` and checks the status and top-level JSON fields of the answer. With
/// `show_values` false a differing field is named but its value is not shown (the request
/// carried a credential, and what it returns is not the public health document).
pub async fn check_response(
    request: reqwest::RequestBuilder,
    url: &str,
    expect_status: u16,
    expect_json: Option<&serde_json::Map<String, serde_json::Value>>,
    show_values: bool,
) -> Result<(), String> {
    let response = request
        .send()
        .await
        .map_err(|error| format!("{url}: {}", describe(&error)))?;
    let status = response.status().as_u16();
    if status != expect_status {
        return Err(format!("{url}: status {status}, expected {expect_status}"));
    }
    if let Some(expected) = expect_json {
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| format!("{url}: the response is not JSON"))?;
        for (field, value) in expected {
            if body.get(field) != Some(value) {
                let found = match body.get(field) {
                    None => "missing".to_string(),
                    Some(found) if show_values => found.to_string(),
                    Some(_) => "another value".to_string(),
                };
                return Err(if show_values || found == "missing" {
                    format!("{url}: field `{field}` is {found}, expected {value}")
                } else {
                    format!("{url}: field `{field}` does not hold the expected value")
                });
            }
        }
    }
    Ok(())
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_connect() {
        "connection refused or unreachable".to_string()
    } else if error.is_timeout() {
        "timed out".to_string()
    } else {
        "request failed".to_string()
    }
}

/// An HTTP client for health checks: short timeouts, no proxy.
pub fn health_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3))
        .build()
        .expect("an HTTP client with static settings builds")
}

/// Polls every check until all pass in one round, or `deadline` passes.
pub async fn wait_healthy(checks: &[HealthCheck], deadline: Instant) -> Result<(), ServiceError> {
    let client = health_client();
    let started = Instant::now();
    loop {
        let mut failures = Vec::new();
        for check in checks {
            if let Err(failure) = check_once(&client, check).await {
                failures.push(failure);
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ServiceError::Unhealthy {
                seconds: started.elapsed().as_secs(),
                detail: failures.join("; "),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
