use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = nodewarden::cli::Cli::parse();
    nodewarden::commands::run(cli)
}
