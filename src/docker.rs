//! Connecting to the Docker Engine API. Debian's dockerd 20.10 speaks API 1.41 while bollard
//! defaults to 1.53, so the version is always negotiated down on connect.

use bollard::{API_DEFAULT_VERSION, Docker};

use crate::environment::Environment;

/// Seconds bollard waits for response headers; long streams (events, wait) are not cut by it.
const REQUEST_TIMEOUT_SECS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("Docker at {host}: {detail}; is dockerd running and is DOCKER_HOST right?")]
    Unreachable { host: String, detail: String },
}

/// The sockets docker.socket listens on (Debian, Amazon Linux).
const ACTIVATED_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

/// Why connecting now would be wrong, if it would: under systemd a connection to Docker's own
/// socket starts docker.service through docker.socket, and with the package that pulls in
/// nodewarden-setup again. So while docker.service is not running (its disk refused, say),
/// nodewarden does not knock: it would start Docker, or re-run a failing setup every few
/// seconds. Private sockets (tests, other daemons) are never socket-activated.
pub fn not_yet(environment: &Environment) -> Option<String> {
    let socket = environment.docker_socket()?;
    if !ACTIVATED_SOCKETS.contains(&socket) {
        return None;
    }
    // Only docker.socket's own listener activates anything; Docker run by another unit (a
    // snap, a distribution's other name) is connected to as always.
    let activating = crate::systemd::unit_running("docker.socket") == Some(true);
    let stopped = crate::systemd::unit_running("docker.service") == Some(false);
    (activating && stopped).then(|| {
        format!(
            "docker.service is not running (not connecting to {socket}, which would start it through docker.socket)"
        )
    })
}

/// Connects once and negotiates the API version.
pub async fn connect(environment: &Environment) -> Result<Docker, ConnectError> {
    let host = environment.docker_host.clone();
    let unreachable = |detail: String| ConnectError::Unreachable { host: host.clone(), detail };
    let client = match environment.docker_socket() {
        Some(socket) => Docker::connect_with_unix(socket, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION),
        None => Docker::connect_with_http(&host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION),
    }
    .map_err(|e| unreachable(e.to_string()))?;
    client.negotiate_version().await.map_err(|e| unreachable(e.to_string()))
}
