//! `tldw-ops schema`: print the JSON Schema that editors and CI use.

use super::{ExitStatus, Printer};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which schema: the desired-state format, a layer of it (a file that `extends` another or
    /// that others extend: no key is required), or saved plan files.
    #[arg(value_enum, default_value_t = Which::DesiredState)]
    which: Which,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    DesiredState,
    Layer,
    Plan,
}

pub fn run(args: Args, printer: &Printer) -> ExitStatus {
    match args.which {
        Which::DesiredState => printer.stdout(&crate::spec::schema::schema_text()),
        Which::Layer => printer.stdout(&crate::spec::schema::layer_schema_text()),
        Which::Plan => printer.stdout(&crate::plan::schema_text()),
    }
    ExitStatus::Success
}
