//! `tldw-ops completions SHELL` and `tldw-ops man [COMMAND]`: the command line describing
//! itself, generated from the same clap definitions as `--help`, so neither can fall behind.
//! Both print to stdout and read nothing else.

use clap::CommandFactory;

use super::{Cli, ExitStatus, Printer};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// A command (`plan`, or `backup restore`) whose page to print instead of the overview.
    #[arg(value_name = "COMMAND", num_args = 0..)]
    command: Vec<String>,
}

pub fn completions(args: CompletionsArgs, printer: &Printer) -> ExitStatus {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "tldw-ops", &mut out);
    printer.stdout(&String::from_utf8_lossy(&out));
    ExitStatus::Success
}

pub fn man(args: ManArgs, printer: &Printer) -> ExitStatus {
    match man_page(&args.command) {
        Ok(page) => {
            printer.stdout(&page);
            ExitStatus::Success
        }
        Err(message) => {
            printer.error(&message);
            ExitStatus::Usage
        }
    }
}

/// The roff page of the top level, or of the command at `path` (`["backup", "restore"]`),
/// named `tldw-ops-backup-restore` as man pages of subcommands are (git, cargo).
pub fn man_page(path: &[String]) -> Result<String, String> {
    let mut command = Cli::command();
    // Propagates the global options and the version into every subcommand.
    command.build();
    let mut name = String::from("tldw-ops");
    let mut invoked = String::from("tldw-ops");
    for part in path {
        let Some(found) = command.find_subcommand(part).cloned() else {
            return Err(format!(
                "no command `{}`; `tldw-ops --help` lists them",
                path.join(" ")
            ));
        };
        name = format!("{name}-{part}");
        invoked = format!("{invoked} {part}");
        command = found;
    }
    let command = command.display_name(name).bin_name(invoked);
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .source(format!("tldw-ops {}", env!("CARGO_PKG_VERSION")))
        .manual("tldw-ops manual")
        .render(&mut out)
        .map_err(|error| format!("cannot render the manual page: {error}"))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
