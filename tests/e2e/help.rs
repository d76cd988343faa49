//! The command line describing itself: `--help` of every command is a reviewed snapshot, every
//! argument says what it is for, and `completions` and `man` cover every command.

use clap::CommandFactory;

use crate::common::{run, tool};

/// Every command path below the top level, `[]` first: `["plan"]`, `["backup", "list"]`, ...
fn command_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut path = prefix.clone();
            path.push(sub.get_name().to_string());
            walk(sub, path, out);
        }
    }
    let mut command = tldw_ops::cli::Cli::command();
    command.build();
    let mut out = Vec::new();
    walk(&command, Vec::new(), &mut out);
    out
}

#[test]
fn the_help_of_every_command_is_a_reviewed_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let paths = command_paths();
    assert!(
        paths.len() > 20,
        "the walk found the subcommands: {paths:?}"
    );
    for path in paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (code, stdout, stderr) = run(tool(dir.path()).args(&args));
        assert_eq!(code, 0, "{args:?}: {stderr}");
        let name = if path.is_empty() {
            "help_tldw-ops".to_string()
        } else {
            format!("help_tldw-ops_{}", path.join("_"))
        };
        // A string constant's line continuation written twice shows as a lone backslash.
        assert!(
            !stdout.lines().any(|line| line.trim() == "\\"),
            "{name}: a stray backslash line"
        );
        insta::assert_snapshot!(name, stdout);
    }
}

#[test]
fn every_argument_of_every_command_says_what_it_is_for() {
    fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for argument in command.get_arguments() {
            let id = argument.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let help = argument
                .get_help()
                .or(argument.get_long_help())
                .map(|help| help.to_string())
                .unwrap_or_default();
            if help.trim().is_empty() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            if sub.get_about().is_none() {
                missing.push(format!("{path} {} (the command)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut command = tldw_ops::cli::Cli::command();
    command.build();
    let mut missing = Vec::new();
    walk(&command, "tldw-ops", &mut missing);
    assert!(missing.is_empty(), "without help text: {missing:#?}");
}

#[test]
fn global_options_have_their_own_heading_and_every_command_lists_its_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    for path in command_paths() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (_, stdout, _) = run(tool(dir.path()).args(&args));
        let heading = stdout
            .find("Global options:")
            .unwrap_or_else(|| panic!("{args:?} has a Global options heading:\n{stdout}"));
        let option_line = |line: &str, global: &str| {
            let line = line.trim_start();
            line.starts_with(global) || line.starts_with(&format!("-v, {global}"))
        };
        for global in ["--state", "--color", "--verbose", "--log-format"] {
            assert!(
                stdout[heading..]
                    .lines()
                    .any(|line| option_line(line, global)),
                "{args:?} lists {global} under Global options:\n{stdout}"
            );
            assert!(
                !stdout[..heading]
                    .lines()
                    .any(|line| option_line(line, global)),
                "{args:?} lists {global} only under Global options:\n{stdout}"
            );
        }
        let is_group = tldw_ops::cli::Cli::command()
            .find_subcommand(path.first().map(String::as_str).unwrap_or(""))
            .is_some_and(|command| command.has_subcommands());
        if path.len() == 1 && is_group {
            // `state`, `secrets` and `backup` list their commands; each of those has its own.
            continue;
        }
        assert!(stdout.contains("Exit codes:"), "{args:?} lists exit codes");
        assert!(stdout.contains("Examples:"), "{args:?} has examples");
        assert!(stdout.contains("64  usage error"), "{args:?} names 64");
    }
}

#[test]
fn the_bash_completion_script_knows_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(tool(dir.path()).args(["completions", "bash"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("complete -F"), "a bash completion script");
    for path in command_paths().into_iter().filter(|path| !path.is_empty()) {
        let name = path.last().unwrap();
        assert!(
            stdout.contains(name.as_str()),
            "completes `{}`",
            path.join(" ")
        );
    }
    for flag in ["--detailed-exitcode", "--auto-approve", "--log-format"] {
        assert!(stdout.contains(flag), "completes {flag}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, stdout, stderr) = run(tool(dir.path()).args(["completions", shell]));
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains("tldw-ops"), "{shell}");
    }
    let (code, _, stderr) = run(tool(dir.path()).args(["completions", "tcsh"]));
    assert_eq!(code, 64, "an unknown shell is a usage error: {stderr}");
}

/// The lines before `.TH` may only be roff requests (`.ie`, `.el`, `.ds`, comments).
fn assert_roff_page(page: &str, title: &str) {
    let lines: Vec<&str> = page.lines().collect();
    let th = lines
        .iter()
        .position(|line| line.starts_with(".TH "))
        .unwrap_or_else(|| panic!("a .TH line:\n{page}"));
    assert!(
        lines[..th].iter().all(|line| line.starts_with('.')),
        "only requests before .TH: {:?}",
        &lines[..th]
    );
    assert!(
        lines[th].starts_with(&format!(".TH {title} 1")),
        "{}",
        lines[th]
    );
    assert!(page.contains(".SH NAME"), "{page}");
    assert!(page.contains(".SH SYNOPSIS"), "{page}");
}

#[test]
fn the_man_page_is_roff_with_a_title_and_covers_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(tool(dir.path()).arg("man"));
    assert_eq!(code, 0, "{stderr}");
    assert_roff_page(&stdout, "tldw-ops");
    assert!(stdout.contains("plan"), "the overview lists the commands");
    let (code, stdout, stderr) = run(tool(dir.path()).args(["man", "backup", "restore"]));
    assert_eq!(code, 0, "{stderr}");
    assert_roff_page(&stdout, "tldw-ops-backup-restore");
    assert!(stdout.contains("server\\-stopped"), "its options: {stdout}");
    let (code, stdout, stderr) = run(tool(dir.path()).args(["man", "nosuch"]));
    assert_eq!(code, 64, "{stdout}{stderr}");
    assert!(stderr.contains("no command `nosuch`"), "{stderr}");
}
