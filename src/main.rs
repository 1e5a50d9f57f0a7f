use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = nodewarden::cli::Cli::parse();
    nodewarden::logging::init();
    nodewarden::commands::run(cli)
}
