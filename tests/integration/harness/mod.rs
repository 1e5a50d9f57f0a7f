//! The test harness shared by every integration test: a private Docker daemon on a
//! loop-mounted xfs, an image factory, moto's server, and an IMDSv2 test server. Each piece
//! fails with a message naming what is missing (root, a Debian package, moto) — never skips.
#![allow(dead_code)] // Later scenarios use parts the current ones do not.

pub mod aws_proxy;
pub mod daemon;
pub mod docker;
pub mod events;
pub mod images;
pub mod imds;
pub mod loopdisk;
pub mod moto;
pub mod slots;
pub mod system;
pub mod template;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The nodewarden binary under test.
pub fn nodewarden() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nodewarden"));
    command.env_remove("DOCKER_HOST").env_remove("AWS_ENDPOINT_URL").stdin(Stdio::null());
    // Only loopback is reachable here: a proxy in the test runner's environment would take
    // nodewarden's AWS calls elsewhere (the proxy test names its own in [ecs.config]).
    for name in
        ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"]
    {
        command.env_remove(name);
    }
    command
}

/// Runs nodewarden with `args`, feeding `stdin`, and returns its output.
pub fn run_nodewarden(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut command = nodewarden();
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("starting the nodewarden binary");
    if let Some(bytes) = stdin {
        child.stdin.take().expect("stdin is piped").write_all(bytes).expect("writing stdin");
    }
    child.wait_with_output().expect("waiting for nodewarden")
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}
