//! The disk loop: statvfs every check interval, the fill rate, and GC started within one
//! interval of crossing `gc-start` (bytes or inodes). GC runs beside the loop, so the loop
//! keeps measuring while images are being removed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::drain_loop::DiskWants;
use super::offender_watch::OffenderWatch;
use crate::disk::{self, FillRate, human_bytes};
use crate::drain::{EcsApi, Identity, Observation, Phase, PressureMachine};
use crate::gc::{self, GcError, GcPolicy, GcReport, LastUseStore};
use crate::node::SharedState;
use crate::settings::values::ImageReference;
use crate::settings::{DiskSettings, OffenderAction, Reloadable};

/// While this file exists (named by NODEWARDEN_DEBUG_PAUSE_FILE), the main loop stalls: a
/// fault-injection hook so tests can show the watchdog and /healthz notice a stuck loop.
const PAUSE_FILE_ENV: &str = "NODEWARDEN_DEBUG_PAUSE_FILE";

/// The fill rate is measured over this window.
const FILL_RATE_WINDOW: Duration = Duration::from_secs(10);
/// After a GC run that could not reach gc-stop, wait this long before the next (unless usage
/// rises further), so an unreclaimable disk does not turn into a busy loop of listings.
const RETRY_AFTER_SHORTFALL: Duration = Duration::from_secs(10);

pub struct DiskWatch {
    pub docker: Docker,
    pub data_root: PathBuf,
    /// The settings SIGHUP changes, as in force now.
    pub settings: watch::Receiver<Arc<Reloadable>>,
    /// The agent's image, protected from GC (an agent change applies at the next start).
    pub agent_image: ImageReference,
    pub store: Arc<Mutex<LastUseStore>>,
    pub state: SharedState,
    pub wants: watch::Sender<DiskWants>,
    /// The last STATUS= line sent, to send only changes.
    last_status: String,
    /// Which container fills the disk, and stopping it (opt-in).
    offenders: OffenderWatch,
    /// ECS, to keep the images of this instance's tasks (none with draining off).
    ecs: Option<EcsApi>,
}

/// How long a GC run waits for ECS to name this instance's task images before it plans with
/// what Docker shows (containers in use) alone.
const TASK_IMAGES_WAIT: Duration = Duration::from_secs(5);

impl DiskWatch {
    #[allow(clippy::too_many_arguments)] // Each is a distinct input the loop owns; a struct would only rename them.
    pub fn new(
        docker: Docker,
        data_root: PathBuf,
        settings: watch::Receiver<Arc<Reloadable>>,
        agent_image: ImageReference,
        store: Arc<Mutex<LastUseStore>>,
        state: SharedState,
        wants: watch::Sender<DiskWants>,
        offender_action: OffenderAction,
    ) -> Self {
        let offenders = OffenderWatch::new(docker.clone(), data_root.clone(), offender_action);
        DiskWatch {
            docker,
            data_root,
            settings,
            agent_image,
            store,
            state,
            wants,
            last_status: String::new(),
            offenders,
            ecs: None,
        }
    }

    /// Asks ECS, at each GC run, which images this instance's tasks name.
    pub fn with_ecs(mut self, ecs: Option<EcsApi>) -> Self {
        self.ecs = ecs;
        self
    }

    fn disk(&self) -> DiskSettings {
        self.settings.borrow().disk.clone()
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let pause_file = std::env::var_os(PAUSE_FILE_ENV).map(PathBuf::from);
        let mut interval = self.disk().check_interval;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut rate = FillRate::new(FILL_RATE_WINDOW);
        let mut running: Option<JoinHandle<Result<GcReport, GcError>>> = None;
        // When the last unsuccessful run ended, and the usage it left.
        let mut shortfall: Option<(Instant, f64)> = None;
        let mut probe_failing = false;
        let mut pressure = PressureMachine::new(Instant::now().into_std());
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.changed() => break,
            }
            while pause_file.as_ref().is_some_and(|f| f.exists()) && !*shutdown.borrow() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if self.settings.has_changed().unwrap_or(false) {
                self.settings.mark_unchanged();
                if self.disk().check_interval != interval {
                    interval = self.disk().check_interval;
                    ticks = tokio::time::interval(interval);
                    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                }
            }
            self.state.lock().last_tick = Some(std::time::Instant::now());
            let sample = match disk::probe(&self.data_root) {
                Ok(sample) => {
                    if probe_failing {
                        tracing::info!(path = %self.data_root.display(), "Docker's filesystem is measurable again");
                    }
                    probe_failing = false;
                    sample
                }
                Err(error) => {
                    if !probe_failing {
                        tracing::error!(%error, "cannot measure Docker's filesystem");
                    }
                    probe_failing = true;
                    continue;
                }
            };
            rate.push(sample);
            {
                let mut state = self.state.lock();
                state.sample = Some(sample);
                state.fill_rate = rate.bytes_per_second();
                state.time_to_full = rate.time_to_full();
            }
            if let Some(task) = running.take_if(|task| task.is_finished()) {
                let report = task.await.unwrap_or_else(|e| {
                    Err(GcError::Disk(disk::ProbeError {
                        path: self.data_root.clone(),
                        source: std::io::Error::other(format!("GC task failed: {e}")),
                    }))
                });
                shortfall = self.finish(report);
            }
            let start = self.disk().gc_start.fraction();
            let wants_gc = gc::above(&sample, start);
            let waiting = !self.offenders.awaiting_stop()
                && shortfall.is_some_and(|(at, left)| {
                    at.elapsed() < RETRY_AFTER_SHORTFALL && sample.used_fraction() <= left + 0.01
                });
            if wants_gc && running.is_none() && !waiting {
                tracing::info!(
                    used = format!("{:.1}%", sample.used_fraction() * 100.0),
                    inodes = format!("{:.1}%", sample.used_inode_fraction() * 100.0),
                    gc_start = %self.disk().gc_start,
                    "Docker's disk is past gc-start; garbage-collecting"
                );
                running = Some(self.spawn_gc());
            }
            let within = self.disk().drain_if_full_within;
            // Under pressure: GC ran and did not bring the disk under gc-start, or worse.
            let active = pressure.gc_behind();
            self.offenders.tick(active, &sample, within, &self.state).await;
            // After GC started, so the machine sees reclaim under way before it drains.
            self.update_pressure(&mut pressure, &sample, rate.time_to_full());
            self.report();
            // After the first STATUS line: READY (sent once this flips) follows it.
            self.state.mark_first_check();
        }
        if let Some(task) = running {
            task.abort();
        }
    }

    fn update_pressure(&self, machine: &mut PressureMachine, sample: &disk::DiskSample, ttf: Option<Duration>) {
        let (gc_runs_finished, gc_running) = {
            let state = self.state.lock();
            (state.gc_runs, state.gc_running)
        };
        let observation = Observation {
            at: sample.at,
            used: sample.used_fraction().max(sample.used_inode_fraction()),
            time_to_full: ttf,
            gc_runs_finished,
            gc_running,
            source_stopped: self.offenders.stopped_this_episode(),
        };
        let before = machine.phase();
        let phase = machine.observe(&observation, &self.disk());
        if phase != before {
            match phase {
                Phase::Pressure => {
                    tracing::warn!(reason = machine.reason(), "disk pressure: GC cannot hold Docker's disk")
                }
                Phase::Recovering => tracing::info!("disk usage is below recover-below; holding before recovery"),
                Phase::Normal if before == Phase::Recovering => tracing::info!("disk recovered"),
                _ => {}
            }
        }
        {
            let mut state = self.state.lock();
            state.pressure = phase;
            state.pressure_reason = machine.reason().to_string();
        }
        let wants = DiskWants {
            drain: machine.wants_drain() && !self.offenders.holds_drain(),
            gc_behind: machine.gc_behind(),
            reason: machine.reason().to_string(),
            offender: self.offenders.summary(),
            stop: self.offenders.stop_request(),
        };
        self.wants.send_if_modified(|current| {
            let changed = *current != wants;
            *current = wants;
            changed
        });
    }

    /// Conditions for /status, and the STATUS= line for `systemctl status`.
    fn report(&mut self) {
        let gc_start = self.disk().gc_start.fraction();
        let mut state = self.state.lock();
        state.gc_start = gc_start;
        state.refresh_conditions(std::time::SystemTime::now());
        let agent = state.agent.lock().clone();
        let used = state.sample.map_or(0.0, |s| s.used_fraction() * 100.0);
        let agent_word = if agent.terminal {
            "terminal"
        } else if agent.stopped {
            "stopped"
        } else if agent.healthy == Some(true) {
            "healthy"
        } else if agent.healthy == Some(false) || !agent.running {
            "unhealthy"
        } else {
            "starting"
        };
        let drain_word = match (&state.drain.ecs_status, state.drain.owner) {
            (_, Some(owner)) if state.drain.draining => format!("DRAINING ({})", owner.as_str()),
            (Some(status), _) => status.clone(),
            (None, _) => "ECS status unknown".into(),
        };
        let line = format!("docker {used:.0}% used, agent {agent_word}, {drain_word}");
        drop(state);
        if self.last_status != line {
            crate::systemd::status(&line);
            self.last_status = line;
        }
    }

    fn spawn_gc(&self) -> JoinHandle<Result<GcReport, GcError>> {
        self.state.lock().gc_running = true;
        let mut policy = GcPolicy::new(&self.settings.borrow().gc, &self.agent_image);
        policy.remove_now = self.offenders.remove_now();
        let (docker, data_root, store) = (self.docker.clone(), self.data_root.clone(), self.store.clone());
        let stop = self.disk().gc_stop.fraction();
        let drain_at = self.disk().drain_at.fraction();
        let deadline = self.settings.borrow().gc.run_timeout;
        let ecs = self.ecs.clone().zip(self.state.lock().drain.identity.clone());
        tokio::spawn(async move {
            // A wedged Docker call must not hold the run, and with it the drain, for ever.
            let wanted = || async move {
                match ecs {
                    Some((api, identity)) => task_images(&api, &identity).await,
                    None => gc::TaskImages::Unknown,
                }
            };
            let run = gc::run_once(&docker, &data_root, &store, &policy, stop, drain_at, wanted);
            match tokio::time::timeout(deadline, run).await {
                Ok(result) => result.map(|(_, report)| report),
                Err(_) => Err(GcError::TimedOut(deadline)),
            }
        })
    }

    /// Records a finished run; returns the shortfall when it could not reach gc-stop.
    fn finish(&self, result: Result<GcReport, GcError>) -> Option<(Instant, f64)> {
        let mut state = self.state.lock();
        state.gc_running = false;
        state.gc_runs += 1;
        match result {
            Ok(report) => {
                let line = format!(
                    "freed {} ({} images, {} containers) in {:.1}s; used {:.1}% → {:.1}%",
                    human_bytes(report.bytes_freed.max(0) as u64),
                    report.images_removed,
                    report.containers_removed,
                    report.duration_seconds,
                    report.used_before * 100.0,
                    report.used_after * 100.0
                );
                let shortfall = (!report.reached_target).then(|| (Instant::now(), report.used_after));
                if report.reached_target {
                    tracing::info!("gc done: {line}");
                } else {
                    let blocked: Vec<String> = report.kept.iter().map(|(name, why)| format!("{name}: {why}")).collect();
                    tracing::warn!(kept = ?blocked, "gc could not reach gc-stop: {line}");
                }
                state.gc_totals.add(&report);
                state.last_gc = Some(report);
                shortfall
            }
            Err(error) => {
                state.gc_totals.last_run_at = Some(std::time::SystemTime::now());
                tracing::error!(%error, "gc failed");
                Some((Instant::now(), state.sample.map_or(1.0, |s| s.used_fraction())))
            }
        }
    }
}

/// This instance's task images, normalized as Docker lists them; unknown (with a warning) when
/// ECS does not answer in time: GC then keeps images of unknown use below drain-at.
async fn task_images(api: &EcsApi, identity: &Identity) -> gc::TaskImages {
    match tokio::time::timeout(TASK_IMAGES_WAIT, api.task_images(identity)).await {
        Ok(Ok(images)) => gc::TaskImages::Known(images.iter().map(|image| gc::normalize_reference(image)).collect()),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot ask ECS which images this instance's tasks need; keeping images of unknown use");
            gc::TaskImages::Unknown
        }
        Err(_) => {
            tracing::warn!(wait = ?TASK_IMAGES_WAIT, "ECS did not name this instance's task images in time; keeping images of unknown use");
            gc::TaskImages::Unknown
        }
    }
}
