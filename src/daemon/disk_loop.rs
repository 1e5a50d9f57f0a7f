//! The disk loop (the daemon's main loop): statvfs every check interval (more often while the
//! disk fills fast), the decisions of `disk_step`, and their execution beside the loop, so the
//! loop keeps measuring while images are removed or footprints measured: GC runs and footprint
//! samples are tasks of their own, a stop goes to the drain loop (which holds the ECS client).
//! It owns its state and publishes a snapshot after each check, and the outlook (what the
//! drain loop acts on) whenever it changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::disk_step::{DiskCommand, DiskStep, StopAnswer, StopRequest};
use super::docker_link::DockerState;
use super::drain_loop::EcsHandle;
use crate::disk;
use crate::gc::{self, GcError, GcPolicy, GcReport, UsageHandle};
use crate::node::{DiskOutlook, DiskSnapshot};
use crate::offender::Footprint;
use crate::offender::sampler::Sampler;
use crate::settings::values::ImageReference;
use crate::settings::{OffenderAction, Reloadable};

/// While this file exists (named by NODEWARDEN_DEBUG_PAUSE_FILE), the main loop stalls: a
/// fault-injection hook so tests can show the watchdog and /healthz notice a stuck loop.
const PAUSE_FILE_ENV: &str = "NODEWARDEN_DEBUG_PAUSE_FILE";
/// While Docker has not answered yet, the loop still ticks this often (liveness).
const WAITING_TICK: Duration = Duration::from_secs(1);

/// What finished beside the loop.
enum Done {
    Gc(Result<GcReport, String>),
    Footprints(Sampler, Result<Vec<Footprint>, String>),
    Stop(StopRequest, StopAnswer),
}

pub struct DiskLoop {
    pub docker: watch::Receiver<DockerState>,
    /// Where Docker's data is measured until Docker says otherwise.
    pub data_root: PathBuf,
    /// The settings SIGHUP changes, as in force now.
    pub settings: watch::Receiver<Arc<Reloadable>>,
    /// The agent's image, protected from GC (an agent change applies at the next start).
    pub agent_image: ImageReference,
    pub offender_action: OffenderAction,
    pub usage: UsageHandle,
    /// ECS (through the drain loop), for task images and stops; none with draining off.
    pub ecs: Option<EcsHandle>,
    pub snapshot: watch::Sender<DiskSnapshot>,
    pub outlook: watch::Sender<DiskOutlook>,
}

impl DiskLoop {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let Some(docker) = self.wait_for_docker(&mut shutdown).await else { return };
        let data_root = match docker.info().await {
            Ok(info) => info.docker_root_dir.map(PathBuf::from).unwrap_or_else(|| self.data_root.clone()),
            Err(error) => {
                tracing::warn!(%error, data_root = %self.data_root.display(), "Docker did not say its root dir; assuming");
                self.data_root.clone()
            }
        };
        tracing::info!(data_root = %data_root.display(), "watching Docker's disk");
        let pause_file = std::env::var_os(PAUSE_FILE_ENV).map(PathBuf::from);
        let mut step = DiskStep::new(data_root.clone(), self.offender_action, Instant::now().into_std());
        let mut sampler = Some(Sampler::new(docker.clone(), data_root.clone()));
        let (done_tx, mut done_rx) = mpsc::channel::<Done>(16);
        let mut probe_failing = false;
        let mut next_check = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_check) => {}
                Some(done) = done_rx.recv() => {
                    let now = Instant::now().into_std();
                    let commands = match done {
                        Done::Gc(result) => {
                            step.on_gc_finished(result, now, std::time::SystemTime::now());
                            Vec::new()
                        }
                        Done::Footprints(back, result) => {
                            if let Some(cost) = back.last_cost() {
                                step.on_sample_cost(cost);
                            }
                            sampler = Some(back);
                            step.on_footprints(result, &self.disk_settings(), now)
                        }
                        Done::Stop(request, answer) => {
                            step.on_stop_answer(&request, answer, std::time::SystemTime::now());
                            Vec::new()
                        }
                    };
                    self.execute(commands, &docker, &data_root, &mut sampler, &done_tx);
                    self.publish(&step);
                    continue;
                }
                _ = shutdown.changed() => break,
            }
            while pause_file.as_ref().is_some_and(|f| f.exists()) && !*shutdown.borrow() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let settings = self.disk_settings();
            let checked = Instant::now();
            next_check = checked + settings.check_interval;
            let sample = match disk::probe(&data_root) {
                Ok(sample) => {
                    if probe_failing {
                        tracing::info!(path = %data_root.display(), "Docker's filesystem is measurable again");
                    }
                    probe_failing = false;
                    sample
                }
                Err(error) => {
                    if !probe_failing {
                        tracing::error!(%error, "cannot measure Docker's filesystem");
                    }
                    probe_failing = true;
                    self.snapshot.send_modify(|s| s.last_tick = Some(Instant::now().into_std()));
                    continue;
                }
            };
            let commands = step.on_sample(sample, &settings, Instant::now().into_std());
            // From this sample's rate, not the one before: a runaway that shows in this sample
            // gets the fast checks from the next one on (judged a check late, a writer at
            // 50 MB/s went 6% further on a 1 GiB disk before the checks came faster).
            next_check = checked + step.next_check_in(&settings);
            self.execute(commands, &docker, &data_root, &mut sampler, &done_tx);
            self.publish(&step);
        }
    }

    fn disk_settings(&self) -> crate::settings::DiskSettings {
        self.settings.borrow().disk.clone()
    }

    fn publish(&self, step: &DiskStep) {
        let now = Instant::now().into_std();
        self.snapshot.send_replace(step.snapshot(now));
        let outlook = step.outlook(now);
        self.outlook.send_if_modified(|current| {
            let changed = *current != outlook;
            *current = outlook;
            changed
        });
    }

    /// Carries the step's commands out beside the loop; each reports back on `done`.
    fn execute(
        &self,
        commands: Vec<DiskCommand>,
        docker: &Docker,
        data_root: &std::path::Path,
        sampler: &mut Option<Sampler>,
        done: &mpsc::Sender<Done>,
    ) {
        for command in commands {
            let done = done.clone();
            match command {
                DiskCommand::StartGc { remove_now } => {
                    let settings = self.settings.borrow().clone();
                    let mut policy = GcPolicy::new(&settings.gc, &self.agent_image);
                    policy.remove_now = remove_now;
                    let (docker, data_root, usage, ecs) =
                        (docker.clone(), data_root.to_path_buf(), self.usage.clone(), self.ecs.clone());
                    let stop = settings.disk.gc_stop.fraction();
                    let drain_at = settings.disk.drain_at.fraction();
                    let deadline = settings.gc.run_timeout;
                    tokio::spawn(async move {
                        let usage_of = async |inventory: &gc::Inventory| usage.usage(inventory).await;
                        let wanted = || async move {
                            match ecs {
                                Some(ecs) => ecs.task_images().await,
                                None => gc::TaskImages::Unknown,
                            }
                        };
                        let run = gc::run_once(&docker, &data_root, usage_of, &policy, stop, drain_at, wanted);
                        // A wedged Docker call must not hold the run, and with it the drain, for ever.
                        let result = match tokio::time::timeout(deadline, run).await {
                            Ok(result) => result.map(|(_, report)| report).map_err(|e| e.to_string()),
                            Err(_) => Err(GcError::TimedOut(deadline).to_string()),
                        };
                        let _ = done.send(Done::Gc(result)).await;
                    });
                }
                DiskCommand::SampleFootprints => {
                    let Some(mut taken) = sampler.take() else { continue };
                    tokio::spawn(async move {
                        let result = taken.sample().await.map_err(|e| e.to_string());
                        let _ = done.send(Done::Footprints(taken, result)).await;
                    });
                }
                DiskCommand::StopTask(request) => {
                    let ecs = self.ecs.clone();
                    tokio::spawn(async move {
                        let answer = match ecs {
                            Some(ecs) => ecs.stop_task(request.clone()).await,
                            None => StopAnswer::Failed("[drain] enabled = false: no ECS client".into()),
                        };
                        let _ = done.send(Done::Stop(request, answer)).await;
                    });
                }
            }
        }
    }

    /// Waits for Docker, keeping the loop's tick (liveness) and `systemctl status` current.
    async fn wait_for_docker(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<Docker> {
        let mut last_status = String::new();
        loop {
            let state = self.docker.borrow_and_update().clone();
            if let Some(client) = state.client {
                return Some(client);
            }
            self.snapshot.send_modify(|s| s.last_tick = Some(Instant::now().into_std()));
            if let Some(error) = state.error {
                let line = format!("waiting for Docker: {error}");
                // STATUS= only when it changes (a notify socket nobody reads holds few messages).
                if line != last_status {
                    crate::systemd::status(&line);
                    last_status = line;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(WAITING_TICK) => {}
                _ = self.docker.changed() => {}
                _ = shutdown.changed() => return None,
            }
        }
    }
}
