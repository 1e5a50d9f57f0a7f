//! Supervising the `ecs-agent` container better than ecs-init: restart with backoff on
//! failure, honour its exit codes (0 stays stopped, 5 is terminal, 42 reloads the image), and
//! act on health: after a start grace period, N failed `/v1/metadata` checks in a row restart
//! the container. Stopping nodewarden leaves the agent and its tasks running.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::RestartContainerOptionsBuilder;
use futures_util::StreamExt;
use hyper::Uri;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::docker_side::{self, Ensured};
use super::exit_policy::{AfterExit, after_exit};
use super::spec::AgentSpec;
use crate::backoff::Backoff;
use crate::http::HttpClient;
use crate::introspection::{self, AgentMetadata};

#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// No health verdict before the agent ran this long (it registers with ECS first).
    pub grace: Duration,
    pub interval: Duration,
    /// Consecutive failed checks that restart the container.
    pub failures: u32,
}

/// What the health endpoint reports about the agent.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct AgentState {
    pub container_id: Option<String>,
    pub image: String,
    pub running: bool,
    /// `None` until the first verdict after the grace period.
    pub healthy: Option<bool>,
    pub consecutive_failures: u32,
    /// Exit code 5: the agent cannot run here; not restarted.
    pub terminal: bool,
    /// Exit code 0: stopped on purpose; not restarted.
    pub stopped: bool,
    pub last_exit_code: Option<i64>,
    pub restarts: u64,
    pub metadata: Option<AgentMetadata>,
    pub last_error: Option<String>,
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub started_at: Option<SystemTime>,
}

/// The agent loop's state, owned by the supervisor (or observer) and published on a watch:
/// the status loop reads copies, nothing else writes it.
#[derive(Debug)]
pub struct AgentPublisher(watch::Sender<AgentState>);

impl AgentPublisher {
    pub fn new() -> (AgentPublisher, watch::Receiver<AgentState>) {
        let (tx, rx) = watch::channel(AgentState::default());
        (AgentPublisher(tx), rx)
    }

    /// Changes the state and publishes it.
    pub fn update<T>(&self, change: impl FnOnce(&mut AgentState) -> T) -> T {
        let mut result = None;
        self.0.send_modify(|state| result = Some(change(state)));
        result.expect("send_modify runs the change once")
    }
}

pub struct Supervisor {
    pub docker: Docker,
    pub spec: AgentSpec,
    pub tarball: PathBuf,
    pub introspection: Uri,
    pub health: HealthPolicy,
    pub state: AgentPublisher,
}

enum Watched {
    Exited(i64),
    Unhealthy,
    DockerLost(String),
    Shutdown,
}

/// The agent container as Docker reports it right now.
enum Now {
    Running,
    Exited(i64),
    Unknown,
}

impl Supervisor {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.state.update(|s| s.image = self.spec.image.clone());
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        loop {
            if *shutdown.borrow() {
                return;
            }
            let id = match self.bring_up().await {
                Ok(id) => id,
                Err(error) => {
                    tracing::error!(%error, "cannot start the ECS agent; retrying");
                    self.state.update(|s| s.last_error = Some(error.to_string()));
                    if sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let started = Instant::now();
            let watched = match self.watch(&id, &mut shutdown).await {
                // It may have exited while its last check was failing: then its exit code
                // decides (a terminal 5 stays stopped), not the checks.
                Watched::Unhealthy => match self.state_now(&id).await {
                    Now::Exited(code) => Watched::Exited(code),
                    Now::Running | Now::Unknown => Watched::Unhealthy,
                },
                other => other,
            };
            match watched {
                Watched::Shutdown => return,
                Watched::DockerLost(error) => {
                    tracing::warn!(%error, "lost Docker while watching the agent; reconnecting");
                    self.state.update(|s| s.running = false);
                }
                Watched::Unhealthy => {
                    let options = RestartContainerOptionsBuilder::default().t(10).build();
                    if let Err(error) = self.docker.restart_container(&id, Some(options)).await {
                        tracing::warn!(%error, "restarting the unhealthy agent failed");
                    }
                    self.count_restart();
                    continue;
                }
                Watched::Exited(seen) => {
                    // A wait that began while a restart was under way reports the exit of the
                    // instance that stopped, and the instance started since may itself have
                    // exited already (a terminal 5 must not be read as the restart's 143):
                    // the container's own state says what happened last.
                    let code = match self.state_now(&id).await {
                        Now::Running => {
                            tracing::debug!(seen, "the agent's wait saw an earlier exit; it runs: watching again");
                            continue;
                        }
                        Now::Exited(code) => code,
                        Now::Unknown => seen,
                    };
                    self.state.update(|state| {
                        state.running = false;
                        state.last_exit_code = Some(code);
                    });
                    match after_exit(code) {
                        AfterExit::StayStopped => {
                            tracing::info!("the ECS agent exited 0 (stopped on purpose); leaving it stopped");
                            self.state.update(|s| s.stopped = true);
                            return wait_for_shutdown(&mut shutdown).await;
                        }
                        AfterExit::Terminal => {
                            tracing::error!(
                                "the ECS agent exited 5 (terminal): it cannot run on this instance; not restarting"
                            );
                            self.state.update(|s| s.terminal = true);
                            return wait_for_shutdown(&mut shutdown).await;
                        }
                        AfterExit::ReloadAndRestart => {
                            tracing::info!("the ECS agent asked for its image to be reloaded (exit 42)");
                            if let Err(error) = docker_side::load_tarball(&self.docker, &self.tarball).await {
                                tracing::error!(%error, "reloading the agent image failed");
                            }
                            self.count_restart();
                            continue;
                        }
                        AfterExit::RestartWithBackoff => {
                            self.count_restart();
                        }
                    }
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            tracing::info!(?delay, "restarting the ECS agent after a backoff");
            if sleep_or_shutdown(delay, &mut shutdown).await {
                return;
            }
        }
    }

    async fn state_now(&self, id: &str) -> Now {
        let Some(state) = self.docker.inspect_container(id, None).await.ok().and_then(|c| c.state) else {
            return Now::Unknown;
        };
        match (state.running, state.exit_code) {
            (Some(true), _) => Now::Running,
            (_, Some(code)) => Now::Exited(code),
            _ => Now::Unknown,
        }
    }

    fn count_restart(&self) {
        self.state.update(|s| s.restarts += 1);
    }

    async fn bring_up(&self) -> Result<String, super::AgentError> {
        docker_side::ensure_image(&self.docker, &self.spec.image, &self.tarball).await?;
        let ensured = docker_side::ensure_container(&self.docker, &self.spec).await?;
        match &ensured {
            Ensured::Kept(id) => {
                tracing::info!(container = %id, "the ecs-agent container matches its spec; keeping it")
            }
            Ensured::Created(id) => tracing::info!(container = %id, "created the ecs-agent container"),
            Ensured::Replaced(id) => tracing::info!(container = %id, "replaced the ecs-agent container"),
        }
        docker_side::ensure_running(&self.docker, ensured.id()).await?;
        self.state.update(|state| {
            state.container_id = Some(ensured.id().to_string());
            state.running = true;
            state.healthy = None;
            state.consecutive_failures = 0;
            state.last_error = None;
            state.started_at = Some(SystemTime::now());
        });
        Ok(ensured.id().to_string())
    }

    async fn watch(&self, id: &str, shutdown: &mut watch::Receiver<bool>) -> Watched {
        let http = HttpClient::new();
        let started = Instant::now();
        let mut wait = self.docker.wait_container(id, None);
        let mut checks = tokio::time::interval(self.health.interval);
        checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                result = wait.next() => return match result {
                    Some(Ok(response)) => Watched::Exited(response.status_code),
                    Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Watched::Exited(code),
                    Some(Err(error)) => Watched::DockerLost(error.to_string()),
                    None => Watched::DockerLost("the wait stream ended".into()),
                },
                _ = checks.tick() => {
                    if started.elapsed() < self.health.grace {
                        continue;
                    }
                    let timeout = self.health.interval.min(Duration::from_secs(5));
                    match introspection::fetch_metadata(&http, &self.introspection, timeout).await {
                        Ok(metadata) => self.state.update(|state| {
                            state.healthy = Some(true);
                            state.consecutive_failures = 0;
                            state.metadata = Some(metadata);
                        }),
                        Err(error) => {
                            let failures = self.state.update(|state| {
                                state.healthy = Some(false);
                                state.consecutive_failures += 1;
                                state.consecutive_failures
                            });
                            tracing::warn!(%error, failures, limit = self.health.failures, "ECS agent health check failed");
                            if failures >= self.health.failures {
                                tracing::warn!("the ECS agent is unhealthy; restarting its container");
                                return Watched::Unhealthy;
                            }
                        }
                    }
                }
                _ = shutdown.changed() => return Watched::Shutdown,
            }
        }
    }
}

/// Sleeps; returns true when shutdown came first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = shutdown.changed() => true,
    }
}

async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
