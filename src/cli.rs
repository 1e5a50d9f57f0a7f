//! The command-line contract (see the brief): every command takes `--settings` and `--root`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nodewarden",
    version,
    propagate_version = true,
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
        /// Read userdata from FILE instead of IMDS
        #[arg(long, value_name = "FILE", conflicts_with = "no_userdata")]
        userdata: Option<PathBuf>,
        /// Take no settings from userdata (hosts without IMDS, such as ECS Anywhere)
        #[arg(long)]
        no_userdata: bool,
        /// Prepare the host network (route_localnet, iptables) even under a --root other than /
        #[arg(long)]
        host_network: bool,
        /// How long to wait for the Docker data device to appear
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration_arg)]
        device_wait: std::time::Duration,
        /// How long to keep trying IMDS for userdata before failing
        #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration_arg)]
        imds_deadline: std::time::Duration,
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
        #[arg(long, conflicts_with_all = ["check", "watch"])]
        json: bool,
        /// Answer as a monitoring plugin: one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
        #[arg(long, conflicts_with = "watch")]
        check: bool,
        /// Refresh the summary in place every 2 seconds
        #[arg(long)]
        watch: bool,
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

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::settings::values::parse_duration(text).map_err(|expected| format!("expected {expected}"))
}
