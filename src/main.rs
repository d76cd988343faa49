//! Thin entry point: parse the command line, run it, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    tldw_ops::cli::main()
}
