//! One module per command; each returns the process exit code.

mod check;
mod drain;
mod gc;
mod inputs;
mod run;
mod setup;
mod status;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::host_paths::HostPaths;

pub use crate::settings::SettingsInput;
pub use status::{check as status_check, summary as status_summary};

/// Exit codes: 0 success, 1 failure or invalid input, 2 usage error (clap).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
}

/// What every command shares: the host paths under `--root` and where the settings file is.
#[derive(Debug, Clone)]
pub struct Context {
    pub paths: HostPaths,
    pub settings: SettingsInput,
}

impl Context {
    pub fn from_cli(cli: &Cli) -> Self {
        let paths = HostPaths::new(&cli.root);
        let settings = match &cli.settings {
            Some(path) => SettingsInput::Required(path.clone()),
            None => SettingsInput::Optional(paths.settings_file()),
        };
        Context { paths, settings }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let context = Context::from_cli(&cli);
    let code = match cli.command {
        Command::Check { file, userdata } => check::run(&context, file.as_deref(), userdata.as_deref()),
        Command::Run => run::run(&context),
        Command::Setup { undo, userdata, no_userdata, host_network, device_wait, imds_deadline } => setup::run(
            &context,
            setup::SetupArgs { undo, userdata, no_userdata, host_network, device_wait, imds_deadline },
        ),
        Command::Status { json, check, watch } => {
            let mode = match (json, check, watch) {
                (true, _, _) => status::Mode::Json,
                (_, true, _) => status::Mode::Check,
                (_, _, true) => status::Mode::Watch,
                _ => status::Mode::Summary,
            };
            status::run(&context, mode)
        }
        Command::Gc { dry_run } => gc::run(&context, dry_run),
        Command::Drain => drain::run(&context, true),
        Command::Undrain => drain::run(&context, false),
    };
    ExitCode::from(code)
}

fn fail(message: &str) -> u8 {
    eprintln!("error: {message}");
    exit::FAILED
}

/// [`fail`] with an error and its causes ([`crate::error::chain`]).
fn fail_on(error: &(dyn std::error::Error + 'static)) -> u8 {
    fail(&crate::error::chain(error))
}

/// Why a command could not do its work, naming what it concerns; commands print it with
/// [`fail_on`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// Every problem in the settings, one per line.
    #[error("{0}")]
    Invalid(crate::settings::Invalid),
    #[error(transparent)]
    Environment(#[from] crate::environment::EnvironmentError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
    #[error(transparent)]
    Write(#[from] crate::fsutil::WriteError),
    #[error(transparent)]
    Identity(#[from] crate::drain::IdentityError),
    /// Neither `AWS_REGION` nor IMDS gave the Region: why.
    #[error("{0}")]
    Region(String),
    #[error("{doing} {}: {source}", path.display())]
    Io { doing: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("running systemctl {args}: {source}")]
    SystemctlSpawn { args: String, source: std::io::Error },
    #[error("systemctl {args} failed ({status})")]
    Systemctl { args: String, status: std::process::ExitStatus },
    /// The host is not in a state this command may act on: what to do about it.
    #[error("{0}")]
    Refused(String),
}

/// The async runtime for commands that do I/O. Two worker threads: the machine has two cores
/// and nodewarden should stay small next to the workloads.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a tokio runtime needs only memory and threads")
}
