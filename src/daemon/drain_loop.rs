//! The drain loop: combines what the disk wants (from the pressure machine) with the spot
//! notice and the Auto Scaling lifecycle state, and drives the drain controller. Polls IMDS
//! every 2 s for spot notices (AWS gives two minutes) and every 5 s for the lifecycle state.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::offender_watch::StopRequest;
use crate::backoff::Backoff;
use crate::drain::termination::{self, LifecycleSettings};
use crate::drain::{DrainController, DrainReason, EcsApi, Wants};
use crate::environment::Environment;
use crate::host_paths::HostPaths;
use crate::imds::{ImdsClient, ImdsConfig};
use crate::node::SharedState;
use crate::settings::{Reloadable, Settings};

const TICK: Duration = Duration::from_secs(1);
pub const SPOT_POLL: Duration = Duration::from_secs(2);
const LIFECYCLE_POLL: Duration = Duration::from_secs(5);

/// What the disk side wants: a drain, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskWants {
    pub drain: bool,
    /// GC is not keeping up: the soft signal before a drain.
    pub gc_behind: bool,
    /// The fastest writer, for the drain's detail and tag.
    pub offender: Option<String>,
    /// A task to stop for filling the disk (`[offender] action = "stop-task"`).
    pub stop: Option<StopRequest>,
    pub reason: String,
}

pub struct DrainLoop {
    pub controller: DrainController,
    pub api: EcsApi,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub imds: Arc<ImdsClient>,
    pub on_spot: bool,
    pub on_termination: bool,
    pub lifecycle: LifecycleSettings,
    pub state: SharedState,
    /// The settings SIGHUP changes; this loop reads `max_draining_fraction`.
    pub settings: watch::Receiver<Arc<Reloadable>>,
}

impl DrainLoop {
    /// Builds the loop and what it talks to: IMDS (identity, Region, spot and lifecycle) and
    /// the AWS clients.
    pub async fn from_settings(
        paths: &HostPaths,
        settings: &Settings,
        environment: &Environment,
        state: SharedState,
        settings_rx: watch::Receiver<Arc<Reloadable>>,
    ) -> DrainLoop {
        let imds_config = ImdsConfig { deadline: Duration::from_secs(5), ..ImdsConfig::default() };
        let imds = Arc::new(ImdsClient::new(environment.imds_endpoint.clone(), imds_config));
        let proxy = crate::aws::AwsProxy::choose(environment.proxy_in_environment, &settings.ecs.config);
        let (clients, region_unknown) = crate::aws::Clients::resolve(environment, &imds, &proxy).await;
        if let Some(why) = region_unknown {
            tracing::warn!(%why, "the SDK's default chain decides the Region");
        }
        let api = clients.ecs_api();
        let controller = DrainController::new(
            api.clone(),
            settings.ecs.cluster.as_str().to_string(),
            settings.drain.max_draining_fraction.fraction(),
            imds.clone(),
            environment.agent_introspection.clone(),
            paths.drain_record(),
        );
        DrainLoop {
            controller,
            api,
            autoscaling: clients.autoscaling,
            imds,
            on_spot: settings.drain.on_spot_interruption,
            on_termination: settings.drain.on_termination,
            lifecycle: LifecycleSettings {
                hook: settings.drain.lifecycle_hook.clone(),
                heartbeat_every: settings.drain.heartbeat_interval,
                timeout: settings.drain.termination_timeout,
            },
            state,
            settings: settings_rx,
        }
    }

    pub async fn run(mut self, mut disk: watch::Receiver<DiskWants>, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // IMDS is polled in a task of its own: an AWS call here may take 20 s, and the spot
        // notice gives two minutes in all.
        let (fate_tx, mut fate) = watch::channel(Fate::default());
        let poller = tokio::spawn(poll_fate(self.imds.clone(), self.on_spot, self.on_termination, fate_tx));
        let mut lifecycle_task: Option<tokio::task::JoinHandle<()>> = None;
        // Tasks already stopped for filling the disk: each is asked for once.
        let mut stopped: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = disk.changed() => {}
                _ = fate.changed() => {}
                _ = shutdown.changed() => break,
            }
            let Fate { spot, spot_clear, terminating } = fate.borrow_and_update().clone();
            self.controller.set_max_fraction(self.settings.borrow().max_draining_fraction.fraction());
            let disk_wants = disk.borrow().clone();
            let spot_action = spot.as_ref().map(|(action, _)| action.as_str());
            let wants = Wants {
                disk_pressure: disk_wants.drain,
                spot_interruption: spot_action == Some("terminate"),
                spot_stop: matches!(spot_action, Some("stop" | "hibernate")),
                spot_clear,
                termination: terminating,
            };
            let detail = match wants.reason() {
                Some(DrainReason::Termination) => "Auto Scaling lifecycle state Terminated".to_string(),
                Some(DrainReason::SpotInterruption | DrainReason::SpotStop) => {
                    spot.map(|(_, text)| text).unwrap_or_default()
                }
                _ => match &disk_wants.offender {
                    Some(offender) => format!("{}; {offender}", disk_wants.reason),
                    None => disk_wants.reason.clone(),
                },
            };
            if let Some(request) = &disk_wants.stop {
                self.stop_task(request, &mut stopped).await;
            }
            self.controller.tick(wants, disk_wants.gc_behind, &detail).await;
            let drain = self.controller.status().clone();
            self.state.update(|state| state.drain = drain);

            // Whoever drained (an operator, a spot notice, disk pressure, termination): once the
            // instance is terminating and DRAINING, the hook is carried to its end, so Auto
            // Scaling never waits out the hook's timeout.
            let status = self.controller.status();
            let draining = status.draining || status.ecs_status.as_deref() == Some("DRAINING");
            if terminating
                && draining
                && lifecycle_task.is_none()
                && let Some(identity) = self.controller.identity().cloned()
            {
                let (autoscaling, api, settings) = (self.autoscaling.clone(), self.api.clone(), self.lifecycle.clone());
                lifecycle_task = Some(tokio::spawn(async move {
                    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
                    while let Err(error) =
                        termination::complete_after_tasks_stop(&autoscaling, &api, &identity, &settings).await
                    {
                        tracing::warn!(%error, "completing the lifecycle action failed; retrying");
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }));
            }
        }
        if let Some(task) = lifecycle_task {
            task.abort();
        }
        poller.abort();
    }

    /// Stops a task the disk loop named (at most once each; a failure is retried next tick).
    async fn stop_task(&mut self, request: &StopRequest, stopped: &mut std::collections::BTreeSet<String>) {
        if stopped.contains(&request.task_arn) {
            return;
        }
        let cluster = match self.controller.resolve_identity().await {
            Ok(identity) => identity.cluster,
            Err(error) => {
                tracing::warn!(%error, task = %request.task_arn, "cannot stop the task yet");
                return;
            }
        };
        match self.api.stop_task(&cluster, &request.task_arn, &request.reason).await {
            Ok(()) => {
                tracing::warn!(task = %request.task_arn, reason = %request.reason, "stopped the task filling Docker's disk");
                stopped.insert(request.task_arn.clone());
                let stop = crate::node::status::StoppedTask {
                    task_arn: request.task_arn.clone(),
                    reason: request.reason.clone(),
                    at: std::time::SystemTime::now(),
                };
                self.state.update(|state| {
                    state.offender.last_stop = Some(stop);
                    state.offender.stops += 1;
                });
            }
            Err(error) => tracing::warn!(%error, task = %request.task_arn, "stopping the task failed; retrying"),
        }
    }
}

/// Whether the instance is going away, as IMDS says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fate {
    /// The spot notice's action (terminate, stop, hibernate) and "spot interruption: stop at
    /// …", once noticed (a notice is never withdrawn before its action).
    spot: Option<(String, String)>,
    /// IMDS answered "no spot notice" in this boot.
    spot_clear: bool,
    /// Auto Scaling's lifecycle state is Terminated.
    terminating: bool,
}

/// Polls IMDS for a spot notice (every 2 s) and Auto Scaling's lifecycle state (every 5 s),
/// publishing changes; never waits behind AWS.
async fn poll_fate(imds: Arc<ImdsClient>, on_spot: bool, on_termination: bool, fate: watch::Sender<Fate>) {
    let mut next_spot = Instant::now();
    let mut next_lifecycle = Instant::now();
    loop {
        let now = Instant::now();
        if on_spot && fate.borrow().spot.is_none() && now >= next_spot {
            next_spot = now + SPOT_POLL;
            match termination::spot_notice(&imds).await {
                Ok(Some(notice)) => {
                    let when = notice.time.as_deref().unwrap_or("soon");
                    tracing::warn!(action = %notice.action, time = when, "spot interruption notice");
                    let text = format!("spot interruption: {} at {when}", notice.action);
                    fate.send_modify(|f| f.spot = Some((notice.action.clone(), text)));
                }
                Ok(None) => {
                    fate.send_if_modified(|f| !std::mem::replace(&mut f.spot_clear, true));
                }
                Err(error) => tracing::debug!(%error, "spot notice poll failed"),
            }
        }
        if on_termination && !fate.borrow().terminating && now >= next_lifecycle {
            next_lifecycle = now + LIFECYCLE_POLL;
            match termination::termination_requested(&imds).await {
                Ok(true) => {
                    tracing::warn!("Auto Scaling is terminating this instance");
                    fate.send_modify(|f| f.terminating = true);
                }
                Ok(false) => {}
                Err(error) => tracing::debug!(%error, "lifecycle state poll failed"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
