use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = nodewarden::cli::Cli::parse();
    // Logs go to stderr (journald captures them under systemd); NODEWARDEN_LOG filters them.
    let filter = EnvFilter::try_from_env("NODEWARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    nodewarden::commands::run(cli)
}
