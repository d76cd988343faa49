//! The one place that reads the process environment. Everything else gets what it needs from
//! [`Settings`], so behaviour is reproducible in tests and the layering rule (no `std::env::var`
//! elsewhere) holds; `clippy.toml` enforces it.
//!
//! The test hooks (`TLDW_OPS_NOW`, `TLDW_OPS_FAULT`, `TLDW_OPS_SALT`, `TLDW_OPS_APPLY_ID`) are
//! read only by a build with the `test-hooks` cargo feature, which the end-to-end tests need and
//! a release build leaves off: a production binary ignores them whatever the environment says.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// Environment variable that overrides where state is kept (a path or a `postgres://` URL).
pub const STATE_VARIABLE: &str = "TLDW_OPS_STATE";
/// Test hook: fail at a given step (see docs/testing.md). Read only with `test-hooks`.
pub const FAULT_VARIABLE: &str = "TLDW_OPS_FAULT";
/// Test hook: fix the clock (see docs/testing.md). Read only with `test-hooks`.
pub const NOW_VARIABLE: &str = "TLDW_OPS_NOW";
/// Test hook: the salt a new state store gets, 64 hex digits (see docs/testing.md). Read only
/// with `test-hooks`.
pub const SALT_VARIABLE: &str = "TLDW_OPS_SALT";
/// Test hook: the id of the next apply (see docs/testing.md). Read only with `test-hooks`.
pub const APPLY_ID_VARIABLE: &str = "TLDW_OPS_APPLY_ID";
/// Whether this build honours the test hooks: only with `--features test-hooks`.
pub const HOOKS_ENABLED: bool = cfg!(feature = "test-hooks");

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
    /// The fault-injection hook, when set and this build has `test-hooks`.
    pub fault: Option<String>,
    /// Who runs this: user name and host, recorded with every apply.
    pub user: String,
    pub host: String,
    /// `TLDW_OPS_NOW` (an RFC 3339 time): a test hook that fixes the clock, for rotation,
    /// promotion soak and backup schedules. Read only by a build with `test-hooks`.
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
        let hooks = TestHooks::read(&process_env, HOOKS_ENABLED);
        // The store's first open and the apply id have no `Settings` at hand: they ask
        // [`injected_salt`] and [`injected_apply_id`]. The first read wins.
        let _ = INJECTED.set(hooks.clone());
        let TestHooks {
            fault, fixed_now, ..
        } = hooks;
        let user = actor(&process_env, uid_user_name);
        let host = hostname();
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

/// The test hooks as a build reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestHooks {
    pub fault: Option<String>,
    pub fixed_now: Option<jiff::Timestamp>,
    /// `TLDW_OPS_SALT`: the salt a new state store gets instead of a random one, so salted
    /// fingerprints, the state id and the desired hash are the same on every run.
    pub salt: Option<[u8; 32]>,
    /// `TLDW_OPS_APPLY_ID`: the id of the next apply instead of `<time>-<random>`.
    pub apply_id: Option<String>,
}

/// The hooks [`Settings::from_process`] read, for the code that has no `Settings`.
static INJECTED: OnceLock<TestHooks> = OnceLock::new();

/// The injected salt for a new state store (`TLDW_OPS_SALT`), when this build has
/// `test-hooks` and the variable holds 64 hex digits; else none, and the salt is random.
pub fn injected_salt() -> Option<[u8; 32]> {
    INJECTED.get()?.salt
}

/// The injected id of the next apply (`TLDW_OPS_APPLY_ID`), when this build has `test-hooks`
/// and the variable is a usable id; else none, and the id is made from the time and randomness.
pub fn injected_apply_id() -> Option<String> {
    INJECTED.get()?.apply_id.clone()
}

/// 64 hex digits as 32 bytes.
fn parse_salt(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    // Digits only: `from_str_radix` alone would take a `+` sign as well.
    if text.len() != 64 || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut salt = [0u8; 32];
    for (byte, pair) in salt.iter_mut().zip(text.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(salt)
}

/// An apply id names a directory (the apply's checkpoints): letters, digits, `-` and `_` only.
fn usable_apply_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

impl TestHooks {
    /// Reads the hooks from `process_env` when `hooks_enabled` (the binary passes
    /// [`HOOKS_ENABLED`]), else none: a build without `test-hooks` ignores the variables.
    pub fn read(process_env: &BTreeMap<String, String>, hooks_enabled: bool) -> TestHooks {
        if !hooks_enabled {
            return TestHooks::default();
        }
        TestHooks {
            fault: process_env.get(FAULT_VARIABLE).cloned(),
            fixed_now: process_env
                .get(NOW_VARIABLE)
                .and_then(|text| text.parse().ok()),
            salt: process_env
                .get(SALT_VARIABLE)
                .and_then(|text| parse_salt(text)),
            apply_id: process_env
                .get(APPLY_ID_VARIABLE)
                .filter(|text| usable_apply_id(text))
                .cloned(),
        }
    }
}

/// Who runs this, as applies record it: `$USER`, else `$LOGNAME`, else the name of the
/// process's real uid (cron and systemd units often set neither variable), else `uid <n>`.
pub fn actor(
    process_env: &BTreeMap<String, String>,
    uid_name: impl FnOnce() -> Option<String>,
) -> String {
    process_env
        .get("USER")
        .or_else(|| process_env.get("LOGNAME"))
        .filter(|name| !name.is_empty())
        .cloned()
        .or_else(uid_name)
        .unwrap_or_else(|| "uid ?".to_string())
}

/// The user name of this process's real uid, from `/proc/self/status` and `/etc/passwd`;
/// `uid <n>` when the passwd file does not list it.
pub fn uid_user_name() -> Option<String> {
    let status = crate::limits::read_regular_file(
        std::path::Path::new("/proc/self/status"),
        crate::limits::MAX_SECRET_FILE_BYTES,
    )
    .ok()?;
    let uid = real_uid(&String::from_utf8_lossy(&status))?;
    let passwd = crate::limits::read_regular_file(
        std::path::Path::new("/etc/passwd"),
        crate::limits::MAX_DEPLOYMENT_FILE_BYTES,
    )
    .ok()
    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    .unwrap_or_default();
    Some(passwd_name(&passwd, uid).unwrap_or_else(|| format!("uid {uid}")))
}

/// The real uid from the `Uid:` line of `/proc/<pid>/status` (real, effective, saved, fs).
fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The name `/etc/passwd` gives `uid` (`name:password:uid:gid:...`).
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let listed: u32 = fields.next()?.parse().ok()?;
        (listed == uid && !name.is_empty()).then(|| name.to_string())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn a_build_without_test_hooks_ignores_the_hook_variables() {
        let salt = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let process_env = env(&[
            (NOW_VARIABLE, "2026-11-26T03:00:00Z"),
            (FAULT_VARIABLE, "fail:0"),
            (SALT_VARIABLE, salt),
            (APPLY_ID_VARIABLE, "20261126T030000Z-000001"),
        ]);
        assert_eq!(TestHooks::read(&process_env, false), TestHooks::default());
        let enabled = TestHooks::read(&process_env, true);
        assert_eq!(enabled.fault.as_deref(), Some("fail:0"));
        assert_eq!(
            enabled.fixed_now,
            Some("2026-11-26T03:00:00Z".parse().unwrap())
        );
        let half: Vec<u8> = (0..16).map(|index| index * 0x11).collect();
        let expected_salt: [u8; 32] = [half.clone(), half].concat().try_into().unwrap();
        assert_eq!(enabled.salt, Some(expected_salt));
        assert_eq!(enabled.apply_id.as_deref(), Some("20261126T030000Z-000001"));
    }

    #[test]
    fn an_unusable_salt_or_apply_id_is_not_injected() {
        for salt in [
            "",
            "00",
            &"0".repeat(63),
            &"0".repeat(65),
            &"g".repeat(64),
            &"é".repeat(32),
            &"+f".repeat(32),
        ] {
            let hooks = TestHooks::read(&env(&[(SALT_VARIABLE, salt)]), true);
            assert_eq!(hooks.salt, None, "{salt:?}");
        }
        for id in ["", "../x", "a/b", "a b", &"a".repeat(65)] {
            let hooks = TestHooks::read(&env(&[(APPLY_ID_VARIABLE, id)]), true);
            assert_eq!(hooks.apply_id, None, "{id:?}");
        }
    }

    #[test]
    fn this_build_reads_the_hooks_exactly_when_the_feature_is_on() {
        assert_eq!(HOOKS_ENABLED, cfg!(feature = "test-hooks"));
        let process_env = env(&[(NOW_VARIABLE, "2026-11-26T03:00:00Z")]);
        let hooks = TestHooks::read(&process_env, HOOKS_ENABLED);
        assert_eq!(hooks.fixed_now.is_some(), cfg!(feature = "test-hooks"));
    }

    #[test]
    fn the_actor_falls_back_from_user_to_logname_to_the_uid_name() {
        let named = |name: &str| {
            let name = name.to_string();
            move || Some(name)
        };
        assert_eq!(
            actor(&env(&[("USER", "alice"), ("LOGNAME", "bob")]), named("x")),
            "alice"
        );
        assert_eq!(actor(&env(&[("LOGNAME", "bob")]), named("x")), "bob");
        assert_eq!(actor(&env(&[("USER", "")]), named("carol")), "carol");
        assert_eq!(actor(&env(&[]), || None), "uid ?");
        assert_ne!(actor(&env(&[]), uid_user_name), "unknown");
    }

    #[test]
    fn the_uid_name_comes_from_proc_status_and_passwd() {
        let status = "Name:\tx\nUid:\t1001\t1001\t1001\t1001\nGid:\t0\n";
        assert_eq!(real_uid(status), Some(1001));
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\ndeploy:x:1001:1001::/home/deploy:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 1001).as_deref(), Some("deploy"));
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 7), None);
        // This process: whoever runs the tests has a uid, and usually a passwd entry.
        let name = uid_user_name().unwrap();
        assert!(!name.is_empty());
    }
}
