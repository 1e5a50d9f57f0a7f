//! `nodewarden run`: the long-running daemon. It supervises the ECS agent, follows Docker's
//! events for image usage, watches Docker's filesystem every check interval (the main loop:
//! liveness, watchdog, conditions), garbage-collects past `gc-start`, drains under pressure
//! or when the instance is going away, and serves the health endpoint.

pub mod disk_watch;
pub mod drain_loop;
pub mod offender_watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::backoff::Backoff;
use crate::environment::Environment;
use crate::gc::{LastUseStore, Tracker};
use crate::health::HealthContext;
use crate::host_paths::HostPaths;
use crate::node::SharedState;
use crate::settings::{AgentOwner, Reloadable, Settings, SettingsInput, UserdataSource};

/// How long startup waits for the first disk check before READY: long enough for a dockerd
/// that is up, short enough that systemd's start timeout never fires while Docker is down.
const FIRST_CHECK_GRACE: Duration = Duration::from_secs(10);
/// While Docker does not answer at start, a warning this often (besides the first).
const DOCKER_WAIT_WARN_EVERY: Duration = Duration::from_secs(60);

/// Startup order: bind and serve the health endpoint, start the drain loop (spot and
/// termination drains need no Docker), then the Docker side as soon as dockerd answers. READY
/// follows the first disk check, or the grace when Docker is down: the daemon is up and says
/// `DockerUnavailable` rather than hold the boot in systemd's start timeout.
///
/// SIGHUP assembles the settings again from `settings_file` and the saved userdata.
pub async fn run(
    paths: HostPaths,
    settings_file: SettingsInput,
    settings: Settings,
    environment: Environment,
) -> Result<(), String> {
    // Bind first: a taken or disallowed address is a configuration error to fail on.
    let listener = tokio::net::TcpListener::bind(settings.health.listen)
        .await
        .map_err(|e| format!("binding the health endpoint on {}: {e}", settings.health.listen))?;
    let state = SharedState::new(paths.docker_data_root());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (settings_tx, settings_rx) = watch::channel(Arc::new(settings.reloadable()));
    let (wants_tx, wants_rx) = watch::channel(drain_loop::DiskWants::default());
    let mut tasks = Vec::new();

    let health = Arc::new(HealthContext {
        state: state.clone(),
        setup_marker: paths.setup_marker(),
        stale_after: (settings.disk.check_interval * 3).max(Duration::from_secs(2)),
    });
    tracing::info!(listen = %settings.health.listen, "health endpoint: /healthz /readyz /status /metrics");
    tasks.push(tokio::spawn(crate::health::serve(listener, health, shutdown_rx.clone())));
    tasks.push(tokio::spawn(keepalive_until_first_check(state.clone(), shutdown_rx.clone())));
    tasks.push(tokio::spawn(feed_watchdog(state.clone(), settings_rx.clone(), shutdown_rx.clone())));

    let drain = if settings.drain.enabled {
        Some(
            drain_loop::DrainLoop::from_settings(&paths, &settings, &environment, state.clone(), settings_rx.clone())
                .await,
        )
    } else {
        tracing::warn!("[drain] enabled = false: this instance is never drained by nodewarden");
        None
    };
    let agent = crate::agent::SharedAgent::default();
    state.lock().agent = agent.clone();
    let docker_side = DockerSide {
        paths: paths.clone(),
        settings: settings.clone(),
        environment: environment.clone(),
        state: state.clone(),
        settings_rx: settings_rx.clone(),
        wants: wants_tx,
        agent,
        ecs: drain.as_ref().map(|drain| drain.api.clone()),
    };
    tasks.push(tokio::spawn(docker_side.run(shutdown_rx.clone())));
    if let Some(drain) = drain {
        tasks.push(tokio::spawn(drain.run(wants_rx, shutdown_rx.clone())));
    }

    let mut first_check = state.first_check();
    let _ = tokio::time::timeout(FIRST_CHECK_GRACE, first_check.wait_for(|done| *done)).await;
    crate::systemd::ready();
    match state.lock().docker_error.clone() {
        None => tracing::info!("ready"),
        Some(error) => tracing::warn!(%error, "ready without Docker: GC and agent supervision start when it answers"),
    }

    wait_for_signals(&paths, &settings_file, &settings_tx, &state).await;
    crate::systemd::stopping();
    tracing::info!("stopping (the ECS agent and its tasks keep running)");
    let _ = shutdown_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// systemd's watchdog, from a timer of its own: a ping every third of WatchdogSec while the main
/// loop ticked within two check intervals. A 60 s check-interval never trips the unit's 30 s
/// WatchdogSec, and a stuck main loop still stops the pings (systemd then restarts us).
async fn feed_watchdog(
    state: SharedState,
    settings: watch::Receiver<Arc<Reloadable>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(timeout) = crate::systemd::watchdog_timeout() else { return };
    let mut ticks = tokio::time::interval((timeout / 3).max(Duration::from_millis(50)));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        // Before the first check the keepalive ticks every second instead of the main loop.
        let interval = settings.borrow().disk.check_interval;
        let checked = *state.first_check().borrow();
        let fresh_within = if checked { interval * 2 } else { interval.max(Duration::from_secs(1)) * 2 };
        let fresh = state.lock().last_tick.is_some_and(|at| at.elapsed() <= fresh_within);
        if fresh {
            crate::systemd::watchdog();
        }
    }
}

/// Until the disk loop's first check (which needs Docker), keep /healthz (and so the watchdog)
/// alive and `systemctl status` saying what the daemon waits for.
async fn keepalive_until_first_check(state: SharedState, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut first_check = state.first_check();
    // STATUS= only when it changes: systemd reads every message, but a notify socket that is
    // not read (a test, a wedged manager) holds 10 datagrams, and a full one blocks the sender.
    let mut last_status = String::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = first_check.wait_for(|done| *done) => return,
            _ = shutdown.changed() => return,
        }
        let waiting = state.update(|state| {
            state.last_tick = Some(std::time::Instant::now());
            state.docker_error.clone()
        });
        if let Some(error) = waiting {
            let line = format!("waiting for Docker: {error}");
            if line != last_status {
                crate::systemd::status(&line);
                last_status = line;
            }
        }
    }
}

/// Everything that needs dockerd: the image-use tracker, agent supervision and the disk loop
/// with GC. Started once Docker answers; until then `DockerUnavailable` says why not.
struct DockerSide {
    paths: HostPaths,
    settings: Settings,
    environment: Environment,
    state: SharedState,
    settings_rx: watch::Receiver<Arc<Reloadable>>,
    wants: watch::Sender<drain_loop::DiskWants>,
    agent: crate::agent::SharedAgent,
    /// For GC to keep this instance's task images (the drain loop's client).
    ecs: Option<crate::drain::EcsApi>,
}

impl DockerSide {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Some(docker) = wait_for_docker(&self.environment, &self.state, &mut shutdown).await else { return };
        let data_root = match docker.info().await {
            Ok(info) => info.docker_root_dir.map(PathBuf::from).unwrap_or_else(|| self.paths.docker_data_root()),
            Err(error) => {
                let fallback = self.paths.docker_data_root();
                tracing::warn!(%error, data_root = %fallback.display(), "Docker did not say its root dir; assuming");
                fallback
            }
        };
        tracing::info!(docker = %self.environment.docker_host, data_root = %data_root.display(), "watching Docker's disk");
        self.state.lock().data_root = data_root.clone();
        let store = Arc::new(Mutex::new(LastUseStore::load(&self.paths.image_usage())));
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(docker_watch(docker.clone(), self.state.clone(), shutdown.clone())));
        tasks.push(tokio::spawn(Tracker::new(docker.clone(), store.clone()).run(shutdown.clone())));
        let health = crate::agent::HealthPolicy {
            grace: self.settings.ecs.agent_health_grace,
            interval: self.settings.ecs.agent_health_interval,
            failures: self.settings.ecs.agent_health_failures,
        };
        let introspection = self.environment.agent_introspection.clone();
        match self.settings.ecs.agent {
            AgentOwner::Nodewarden => {
                for dir in crate::agent::spec::host_dirs(&self.paths) {
                    if let Err(error) = std::fs::create_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), %error, "cannot create a directory the agent mounts");
                    }
                }
                let supervisor = crate::agent::Supervisor {
                    docker: docker.clone(),
                    spec: crate::agent::spec::build(&self.settings, &self.paths, self.environment.docker_socket()),
                    // A host path like every other: under --root in tests and the demo.
                    tarball: self.paths.host(&self.settings.ecs.agent_tarball),
                    introspection,
                    health,
                    state: self.agent,
                };
                tasks.push(tokio::spawn(supervisor.run(shutdown.clone())));
            }
            AgentOwner::EcsInit => {
                tracing::info!("ecs.service (ecs-init) runs the ECS agent; watching it, never restarting it");
                let observer =
                    crate::agent::Observer { docker: docker.clone(), introspection, health, state: self.agent };
                tasks.push(tokio::spawn(observer.run(shutdown.clone())));
            }
        }
        let watcher = disk_watch::DiskWatch::new(
            docker,
            data_root,
            self.settings_rx,
            self.settings.ecs.agent_image.clone(),
            store,
            self.state,
            self.wants,
            self.settings.offender.action,
        )
        .with_ecs(self.ecs);
        tasks.push(tokio::spawn(watcher.run(shutdown.clone())));
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Connects to Docker, retrying with backoff until it answers or the daemon stops; while it
/// does not, `DockerUnavailable` carries the error and the journal hears of it.
async fn wait_for_docker(
    environment: &Environment,
    state: &SharedState,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<bollard::Docker> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut warned_at: Option<tokio::time::Instant> = None;
    loop {
        let attempt = match crate::docker::not_yet(environment) {
            Some(why) => Err(why),
            None => crate::docker::connect(environment).await.map_err(|e| e.to_string()),
        };
        match attempt {
            Ok(docker) => {
                if warned_at.is_some() {
                    tracing::info!(docker = %environment.docker_host, "Docker answers");
                }
                state.update(|state| state.docker_error = None);
                return Some(docker);
            }
            Err(error) => {
                if warned_at.is_none_or(|at| at.elapsed() >= DOCKER_WAIT_WARN_EVERY) {
                    tracing::warn!(%error, "waiting for Docker");
                    warned_at = Some(tokio::time::Instant::now());
                }
                state.update(|state| state.docker_error = Some(error));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

/// Pings Docker every few seconds for the DockerUnavailable condition.
async fn docker_watch(docker: bollard::Docker, state: SharedState, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let error = match tokio::time::timeout(Duration::from_secs(3), docker.ping()).await {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(format!("Docker does not answer: {error}")),
            Err(_) => Some("Docker did not answer a ping within 3 s".to_string()),
        };
        state.update(|state| {
            if state.docker_error.is_some() != error.is_some() {
                match &error {
                    Some(error) => tracing::warn!(%error, "Docker is unavailable"),
                    None => tracing::info!("Docker answers again"),
                }
            }
            state.docker_error = error;
        });
    }
}

/// SIGHUP reloads settings (invalid ones are refused and reported); SIGTERM or SIGINT stops.
async fn wait_for_signals(
    paths: &HostPaths,
    settings_file: &SettingsInput,
    live: &watch::Sender<Arc<Reloadable>>,
    state: &SharedState,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        // Without signal handlers the daemon can only be killed; run until then.
        return std::future::pending().await;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                crate::systemd::reloading();
                let assembled = crate::settings::assemble(paths, settings_file, &UserdataSource::Saved).await;
                match assembled.and_then(|assembly| assembly.result.map_err(|invalid| invalid.to_string())) {
                    Ok(new) => {
                        tracing::info!("settings reloaded ([disk], [gc] and [drain] max-draining-fraction apply now; agent changes at the next start)");
                        live.send_replace(Arc::new(new.settings.reloadable()));
                        state.update(|state| state.config_error = None);
                    }
                    Err(error) => {
                        tracing::error!(%error, "new settings are invalid; keeping the ones in force");
                        state.update(|state| state.config_error = Some(error));
                    }
                }
                crate::systemd::ready();
            }
        }
    }
}
