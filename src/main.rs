//! The `neuronmap` binary: parse the command line and hand over to [`neuronmap::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = neuronmap::cli::Cli::parse();
    neuronmap::cli::run(cli)
}
