//! The command-line contract (see the brief): every command takes `--settings` and `--root`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nodewarden",
    version,
    about = "Keeps an Amazon ECS container instance alive when Docker's disk fills"
)]
pub struct Cli {
    /// Settings file [default: <root>/etc/nodewarden/settings.toml; a missing default file is fine]
    #[arg(long, global = true, value_name = "PATH")]
    pub settings: Option<PathBuf>,

    /// Take every host path (/etc/ecs, /etc/docker, /etc/systemd/system, /var/lib/...) under DIR
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: supervise the ECS agent, watch the disk, garbage-collect, drain, serve health
    Run,
    /// The oneshot before Docker starts: userdata → settings → disk → daemon.json → ecs.config
    Setup {
        /// Remove what setup applied to the host's network (route_localnet, iptables rules)
        #[arg(long)]
        undo: bool,
    },
    /// Validate settings and print the merged result with each value's source
    Check {
        /// Settings file to check instead of --settings; "-" reads standard input
        #[arg(value_name = "FILE|-")]
        file: Option<String>,
        /// Userdata to merge on top, as EC2 would serve it (TOML, gzip, or multipart MIME)
        #[arg(long, value_name = "FILE")]
        userdata: Option<PathBuf>,
    },
    /// Show the node's conditions and figures from the running daemon's health endpoint
    Status {
        /// Print the raw /status JSON document
        #[arg(long)]
        json: bool,
    },
    /// Garbage-collect Docker's disk once
    Gc {
        /// Print the plan (what, why, bytes) and remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Set this container instance to DRAINING (recorded as an operator's drain)
    Drain,
    /// Return this container instance to ACTIVE
    Undrain,
}
