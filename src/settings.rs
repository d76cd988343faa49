//! The one place that reads the process environment. Everything else gets what it needs from
//! [`Settings`], so behaviour is reproducible in tests and the layering rule (no `std::env::var`
//! elsewhere) holds; `clippy.toml` enforces it.

use std::collections::BTreeMap;
use std::io::IsTerminal;

/// Environment variable that overrides where state is kept (a path or a `postgres://` URL).
pub const STATE_VARIABLE: &str = "TLDW_OPS_STATE";
/// Test hook: fail at a given step (see docs/testing.md). Never set it in production.
pub const FAULT_VARIABLE: &str = "TLDW_OPS_FAULT";
/// Test hook: fix the clock (see docs/testing.md).
pub const NOW_VARIABLE: &str = "TLDW_OPS_NOW";

#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// A snapshot of the process environment, for templates and `from_env` sources.
    pub process_env: BTreeMap<String, String>,
    /// `--state`, else `TLDW_OPS_STATE`.
    pub state: Option<String>,
    /// Colour on stderr.
    pub color: bool,
    /// Colour on stdout: decided apart from stderr, so `plan > plan.txt` writes no escapes.
    pub stdout_color: bool,
    /// Whether stdin and stderr are terminals (prompts and progress bars).
    pub interactive: bool,
    /// The fault-injection hook, when set.
    pub fault: Option<String>,
    /// Who runs this: user name and host, recorded with every apply.
    pub user: String,
    pub host: String,
    /// `TLDW_OPS_NOW` (an RFC 3339 time): a test hook that fixes the clock, for rotation,
    /// promotion soak and backup schedules. Never set it in production.
    pub fixed_now: Option<jiff::Timestamp>,
}

impl Settings {
    /// Reads the process environment once.
    #[allow(clippy::disallowed_methods)]
    pub fn from_process(state_flag: Option<String>, color: ColorChoice) -> Settings {
        let process_env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
            .collect();
        let state = state_flag.or_else(|| {
            process_env
                .get(STATE_VARIABLE)
                .filter(|value| !value.is_empty())
                .cloned()
        });
        let stderr_terminal = std::io::stderr().is_terminal();
        let no_color = process_env.contains_key("NO_COLOR");
        let decide = |terminal: bool| match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color,
        };
        let stdout_color = decide(std::io::stdout().is_terminal());
        let color = decide(stderr_terminal);
        let interactive = std::io::stdin().is_terminal() && stderr_terminal;
        let fault = process_env.get(FAULT_VARIABLE).cloned();
        let user = process_env
            .get("USER")
            .or_else(|| process_env.get("LOGNAME"))
            .cloned()
            .unwrap_or_else(|| "unknown".to_string());
        let host = hostname();
        let fixed_now = process_env
            .get(NOW_VARIABLE)
            .and_then(|text| text.parse().ok());
        Settings {
            process_env,
            state,
            color,
            stdout_color,
            interactive,
            fault,
            user,
            host,
            fixed_now,
        }
    }

    /// The current time, or the fixed test clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.fixed_now.unwrap_or_else(jiff::Timestamp::now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// The machine's host name, from the kernel.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
