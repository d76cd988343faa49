//! Colour is decided per stream and obeys `--color` and `NO_COLOR`; log lines follow the same
//! decision; `--log-format json` makes every stderr line JSON.

use crate::common::{fixture, run, tool};
use crate::plan::{command, site};

const ESCAPE: char = '\x1b';

#[test]
fn color_always_colours_validate_diagnostics() {
    let directory = fixture("specs");
    let (code, _, stderr) =
        run(tool(&directory).args(["validate", "misspelled-key.yaml", "--color", "always"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("\x1b[1;31merror[schema.unknown_key]:\x1b[0m"),
        "the severity head is red: {stderr:?}"
    );
    // The text itself is unchanged once the escapes are gone.
    let (_, _, plain) = run(tool(&directory).args(["validate", "misspelled-key.yaml"]));
    assert_eq!(strip(&stderr), plain);
}

#[test]
fn color_never_and_piped_streams_carry_no_escape_codes_anywhere() {
    let site = site("");
    for args in [
        &["plan", "-vv", "--color", "never"][..],
        &["plan", "-vv"],
        &["plan", "--diff", "-vv"],
        &["validate", "-vv"],
    ] {
        // No NO_COLOR: `auto` must see on its own that both streams are pipes.
        let (code, stdout, stderr) = run(command(&site, args).env_remove("NO_COLOR"));
        assert_eq!(code, 0, "{args:?}: {stderr}");
        if args[0] == "plan" {
            assert!(stderr.contains("INFO"), "{args:?} logged: {stderr}");
        }
        assert!(!stdout.contains(ESCAPE), "{args:?} stdout: {stdout:?}");
        assert!(!stderr.contains(ESCAPE), "{args:?} stderr: {stderr:?}");
    }
    // `--color never` wins over a terminal too; NO_COLOR wins over `auto`.
    let (_, stdout, stderr) = run(&mut command(&site, &["plan", "-v", "--color", "never"]));
    assert!(!stdout.contains(ESCAPE) && !stderr.contains(ESCAPE));
}

#[test]
fn color_always_colours_both_streams_and_the_log_lines() {
    let site = site("");
    let (code, stdout, stderr) = run(&mut command(&site, &["plan", "-v", "--color", "always"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("\x1b[32m+\x1b[0m"),
        "plan symbols: {stdout:?}"
    );
    assert!(
        stderr.contains(ESCAPE),
        "log lines and warnings: {stderr:?}"
    );
}

/// `script` runs the command on a pseudo-terminal; the shell sends only stdout to a file.
#[test]
fn stdout_redirected_to_a_file_gets_no_colour_while_the_terminal_does() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let site = site("");
    let out = site.path().join("plan.txt");
    let shell = format!("{} plan > {}", crate::common::BIN, out.display());
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &shell, "/dev/null"])
        .current_dir(site.path())
        .env_remove("TLDW_OPS_STATE")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .env("USER", "tester")
        .env("TEST_PG_PASSWORD", crate::plan::FROM_ENV_SECRET)
        .stdin(std::process::Stdio::null());
    let (code, terminal, stderr) = run(&mut script);
    assert_eq!(code, 0, "{terminal}{stderr}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.contains("tldw-ops plan for environment dev"),
        "{written}"
    );
    assert!(
        !written.contains(ESCAPE),
        "the file has no escape codes: {written:?}"
    );
    assert!(
        terminal.contains("\x1b[1;33mwarning:\x1b[0m"),
        "stderr on the terminal is coloured: {terminal:?}"
    );
}

#[test]
fn log_format_json_makes_every_stderr_line_json() {
    let site = site("");
    for args in [
        &["plan", "--log-format", "json", "-v", "--out", "plan.json"][..],
        &["apply", "--log-format", "json", "-v", "--auto-approve"],
        &["plan", "--log-format", "json", "--color", "always"],
        &["apply", "--log-format", "json", "--auto-approve"],
        &["history", "--log-format", "json", "--environment", "nosuch"],
        &["show", "nosuch", "--log-format", "json"],
        &["plan", "--log-format", "json", "--no-such-flag"],
        &["--log-format=json", "plna"],
    ] {
        let (_, _, stderr) = run(&mut command(&site, args));
        assert!(!stderr.trim().is_empty(), "{args:?} says something");
        for line in stderr.lines() {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("{args:?}: not JSON ({error}): {line:?}"));
            assert!(value["level"].is_string(), "{args:?}: {line}");
            assert!(value["fields"]["message"].is_string(), "{args:?}: {line}");
            assert!(!line.contains(ESCAPE), "{args:?}: {line:?}");
        }
    }
}

fn strip(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(character) = chars.next() {
        if character == ESCAPE {
            for next in chars.by_ref() {
                if next == 'm' {
                    break;
                }
            }
        } else {
            out.push(character);
        }
    }
    out
}

#[test]
fn clap_help_and_usage_errors_obey_color_too() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(tool(dir.path()).args(["--color", "always", "plna"]));
    assert_eq!(code, 64);
    assert!(stderr.contains(ESCAPE), "{stderr:?}");
    let (code, _, stderr) = run(tool(dir.path())
        .args(["--color=never", "plna"])
        .env_remove("NO_COLOR"));
    assert_eq!(code, 64);
    assert!(!stderr.contains(ESCAPE), "{stderr:?}");
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the terminal half: util-linux `script` is not installed");
        return;
    }
    let help = |flags: &str| {
        let shell = format!("{} plan --help {flags}", crate::common::BIN);
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &shell, "/dev/null"])
            .current_dir(dir.path())
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .stdin(std::process::Stdio::null());
        run(&mut script).1
    };
    assert!(help("").contains(ESCAPE), "help on a terminal is coloured");
    assert!(
        !help("--color never").contains(ESCAPE),
        "--color never wins on a terminal"
    );
}
