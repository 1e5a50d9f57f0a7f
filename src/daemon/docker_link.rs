//! The link to dockerd: connect (retrying with backoff until it answers), then ping every few
//! seconds. It publishes the client once connected and whether Docker answers, for the
//! DockerUnavailable condition; the loops that need Docker start when the client is there.

use std::time::Duration;

use bollard::Docker;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::environment::Environment;

/// While Docker does not answer at start, a warning this often (besides the first).
const WAIT_WARN_EVERY: Duration = Duration::from_secs(60);
const PING_EVERY: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default)]
pub struct DockerState {
    /// Set once Docker answered (the API version negotiated); kept when a ping fails later.
    pub client: Option<Docker>,
    /// Why Docker does not answer right now.
    pub error: Option<String>,
}

pub async fn run(environment: Environment, state: watch::Sender<DockerState>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut warned_at: Option<tokio::time::Instant> = None;
    let docker = loop {
        let attempt = match crate::docker::not_yet(&environment) {
            Some(why) => Err(why),
            None => crate::docker::connect(&environment).await.map_err(|e| e.to_string()),
        };
        match attempt {
            Ok(docker) => {
                if warned_at.is_some() {
                    tracing::info!(docker = %environment.docker_host, "Docker answers");
                }
                state.send_replace(DockerState { client: Some(docker.clone()), error: None });
                break docker;
            }
            Err(error) => {
                if warned_at.is_none_or(|at| at.elapsed() >= WAIT_WARN_EVERY) {
                    tracing::warn!(%error, "waiting for Docker");
                    warned_at = Some(tokio::time::Instant::now());
                }
                state.send_modify(|s| s.error = Some(error));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.changed() => return,
        }
    };
    tracing::info!(docker = %environment.docker_host, "connected to Docker");
    let mut ticks = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let error = match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(format!("Docker does not answer: {error}")),
            Err(_) => Some("Docker did not answer a ping within 3 s".to_string()),
        };
        if state.borrow().error.is_some() != error.is_some() {
            match &error {
                Some(error) => tracing::warn!(%error, "Docker is unavailable"),
                None => tracing::info!("Docker answers again"),
            }
        }
        state.send_if_modified(|s| {
            let changed = s.error != error;
            s.error = error;
            changed
        });
    }
}
