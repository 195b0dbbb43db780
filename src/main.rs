//! The `strata` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    strata::cli::run(strata::cli::Cli::parse())
}
