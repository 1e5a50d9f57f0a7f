//! With ecs-init in charge of the agent (`[ecs] agent = "ecs-init"`), nodewarden only watches
//! it: whether the `ecs-agent` container runs, and whether `/v1/metadata` answers once it has
//! run for the grace period. It never creates, restarts or stops it; ecs-init does.

use std::time::{Duration, SystemTime};

use bollard::Docker;
use hyper::Uri;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::spec::CONTAINER_NAME;
use super::supervisor::{AgentPublisher, HealthPolicy};
use crate::http::HttpClient;
use crate::introspection;

pub struct Observer {
    pub docker: Docker,
    pub introspection: Uri,
    pub health: HealthPolicy,
    pub state: AgentPublisher,
}

impl Observer {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let http = HttpClient::new();
        let mut ticks = tokio::time::interval(self.health.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => return,
            }
            let container = self.docker.inspect_container(CONTAINER_NAME, None).await.ok();
            let state = container.as_ref().and_then(|c| c.state.clone());
            let running = state.as_ref().and_then(|s| s.running).unwrap_or(false);
            let started_at = state
                .as_ref()
                .and_then(|s| s.started_at.as_deref())
                .and_then(|at| humantime::parse_rfc3339_weak(at.split('.').next().unwrap_or(at)).ok());
            let ran_for = started_at.and_then(|at| SystemTime::now().duration_since(at).ok()).unwrap_or_default();
            let verdict = if running && ran_for >= self.health.grace {
                let timeout = self.health.interval.min(Duration::from_secs(5));
                Some(introspection::fetch_metadata(&http, &self.introspection, timeout).await)
            } else {
                None
            };
            self.state.update(|agent| {
                agent.container_id = container.as_ref().and_then(|c| c.id.clone());
                agent.image = container.as_ref().and_then(|c| c.config.as_ref()?.image.clone()).unwrap_or_default();
                agent.running = running;
                agent.started_at = started_at;
                agent.last_exit_code = state.as_ref().and_then(|s| s.exit_code).filter(|_| !running);
                match verdict {
                    None => agent.healthy = None,
                    Some(Ok(metadata)) => {
                        agent.healthy = Some(true);
                        agent.consecutive_failures = 0;
                        agent.metadata = Some(metadata);
                        agent.last_error = None;
                    }
                    Some(Err(error)) => {
                        agent.healthy = Some(false);
                        agent.consecutive_failures += 1;
                        agent.last_error =
                            Some(format!("{error} (ecs-init runs the agent; nodewarden does not restart it)"));
                    }
                }
                if container.is_none() {
                    agent.last_error =
                        Some(format!("no {CONTAINER_NAME} container: ecs.service (ecs-init) has not started it"));
                }
            });
        }
    }
}
