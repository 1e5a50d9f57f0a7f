//! `nodewarden run`: the long-running daemon, as loops that each own their state and publish
//! snapshots on watches; requests between them are typed messages with one owner each.
//!
//! - `docker_link`: connects to dockerd, pings it (DockerUnavailable);
//! - `disk_loop` (the main loop): statvfs every check interval, the pure `disk_step` (GC,
//!   pressure, the offender), GC runs and footprint samples beside it;
//! - `drain_loop`: the one ECS client, driving the pure drain machine (`drain::protocol`),
//!   serving task images to GC and stops to the disk loop; `fate` polls IMDS beside it;
//! - the agent's supervisor (or observer) and the image-use tracker (`gc::Tracker`);
//! - `status_loop`: combines the snapshots for the health endpoint and `systemctl status`.

pub mod disk_loop;
pub mod disk_step;
pub mod docker_link;
pub mod drain_loop;
pub mod fate;
pub mod status_loop;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::agent::AgentPublisher;
use crate::drain::DrainStatus;
use crate::environment::Environment;
use crate::gc::{LastUseStore, Tracker, UsageHandle};
use crate::health::HealthContext;
use crate::host_paths::HostPaths;
use crate::node::{DiskOutlook, DiskSnapshot};
use crate::settings::{AgentOwner, Reloadable, Settings, SettingsInput, UserdataSource};

/// How long startup waits for the first disk check before READY: long enough for a dockerd
/// that is up, short enough that systemd's start timeout never fires while Docker is down.
const FIRST_CHECK_GRACE: Duration = Duration::from_secs(10);

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
) -> Result<(), DaemonError> {
    let signals = Signals::install()?;
    // Bind first: a taken or disallowed address is a configuration error to fail on.
    let listen = settings.health.listen;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| DaemonError::Bind { listen, source })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (settings_tx, settings_rx) = watch::channel(Arc::new(settings.reloadable()));
    let (config_tx, config_rx) = watch::channel(None::<String>);
    let (docker_tx, docker_rx) = watch::channel(docker_link::DockerState::default());
    let (disk_tx, disk_rx) = watch::channel(DiskSnapshot::new(paths.docker_data_root()));
    let (outlook_tx, outlook_rx) = watch::channel(DiskOutlook::default());
    let (drain_tx, drain_rx) = watch::channel(DrainStatus::default());
    let (agent, agent_rx) = AgentPublisher::new();
    let (board_tx, board_rx) = watch::channel(Arc::new(status_loop::empty_board(&disk_rx.borrow())));
    let mut tasks = Vec::new();

    let health = Arc::new(HealthContext {
        board: board_rx.clone(),
        setup_marker: paths.setup_marker(),
        stale_after: (settings.disk.check_interval * 3).max(Duration::from_secs(2)),
    });
    tracing::info!(listen = %settings.health.listen, "health endpoint: /healthz /readyz /status /metrics");
    tasks.push(tokio::spawn(crate::health::serve(listener, health, shutdown_rx.clone())));
    let sources = status_loop::Sources {
        disk: disk_rx.clone(),
        drain: drain_rx,
        agent: agent_rx,
        docker: docker_rx.clone(),
        config_error: config_rx,
        shared_disk: crate::storage::shared_disk::shared_disk_note(
            crate::storage::shared_disk::read_marker(&paths).as_deref(),
        ),
    };
    tasks.push(tokio::spawn(status_loop::run(sources, board_tx, shutdown_rx.clone())));
    tasks.push(tokio::spawn(feed_watchdog(disk_rx.clone(), settings_rx.clone(), shutdown_rx.clone())));
    tasks.push(tokio::spawn(docker_link::run(environment.clone(), docker_tx, shutdown_rx.clone())));

    let ecs = if settings.drain.enabled {
        let (handle, requests) = drain_loop::EcsHandle::channel();
        let drain =
            drain_loop::DrainLoop::from_settings(&paths, &settings, &environment, settings_rx.clone(), drain_tx).await;
        tasks.push(tokio::spawn(drain.run(outlook_rx, requests, shutdown_rx.clone())));
        Some(handle)
    } else {
        tracing::warn!("[drain] enabled = false: this instance is never drained by nodewarden");
        None
    };

    let (usage, usage_requests) = UsageHandle::channel();
    let docker_side = DockerSide {
        paths: paths.clone(),
        settings: settings.clone(),
        environment: environment.clone(),
        docker: docker_rx.clone(),
        agent,
        usage_requests,
    };
    tasks.push(tokio::spawn(docker_side.run(shutdown_rx.clone())));
    let disk = disk_loop::DiskLoop {
        docker: docker_rx,
        data_root: paths.docker_data_root(),
        settings: settings_rx.clone(),
        agent_image: settings.ecs.agent_image.clone(),
        offender_action: settings.offender.action,
        usage,
        ecs,
        snapshot: disk_tx,
        outlook: outlook_tx,
    };
    tasks.push(tokio::spawn(disk.run(shutdown_rx.clone())));

    let mut checked = board_rx.clone();
    let _ = tokio::time::timeout(FIRST_CHECK_GRACE, checked.wait_for(|board| board.checked)).await;
    crate::systemd::ready();
    match board_rx.borrow().docker_error.clone() {
        None => tracing::info!("ready"),
        Some(error) => tracing::warn!(%error, "ready without Docker: GC and agent supervision start when it answers"),
    }

    wait_for_signals(signals, &paths, &settings_file, &settings_tx, &config_tx).await;
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
    disk: watch::Receiver<DiskSnapshot>,
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
        // Before the first check the loop ticks every second while it waits for Docker.
        let interval = settings.borrow().disk.check_interval;
        let (last_tick, checked) = {
            let disk = disk.borrow();
            (disk.last_tick, disk.sample.is_some())
        };
        let fresh_within = if checked { interval * 2 } else { interval.max(Duration::from_secs(1)) * 2 };
        if last_tick.is_some_and(|at| at.elapsed() <= fresh_within) {
            crate::systemd::watchdog();
        }
    }
}

/// What needs dockerd besides the disk loop: the image-use tracker and the agent's supervisor
/// (or observer). Started once Docker answers.
struct DockerSide {
    paths: HostPaths,
    settings: Settings,
    environment: Environment,
    docker: watch::Receiver<docker_link::DockerState>,
    agent: AgentPublisher,
    usage_requests: tokio::sync::mpsc::Receiver<crate::gc::UsageRequest>,
}

impl DockerSide {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let docker = loop {
            if let Some(client) = self.docker.borrow_and_update().client.clone() {
                break client;
            }
            tokio::select! {
                _ = self.docker.changed() => {}
                _ = shutdown.changed() => return,
            }
        };
        let store = LastUseStore::load(&self.paths.image_usage());
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(Tracker::new(docker.clone(), store, self.usage_requests).run(shutdown.clone())));
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
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// SIGHUP reloads settings (invalid ones are refused and reported); SIGTERM or SIGINT stops.
/// The handlers for SIGTERM, SIGINT and SIGHUP, installed before anything else starts: a
/// signal that came before them would take the process's default action (a SIGHUP sent as soon
/// as /healthz answered would end the daemon).
/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("installing the {name} handler: {source}")]
    Signal { name: &'static str, source: std::io::Error },
    #[error("binding the health endpoint on {listen}: {source}")]
    Bind { listen: std::net::SocketAddr, source: std::io::Error },
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        use tokio::signal::unix::{SignalKind, signal};
        let install =
            |kind: SignalKind, name: &'static str| signal(kind).map_err(|source| DaemonError::Signal { name, source });
        Ok(Signals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

async fn wait_for_signals(
    signals: Signals,
    paths: &HostPaths,
    settings_file: &SettingsInput,
    live: &watch::Sender<Arc<Reloadable>>,
    config_error: &watch::Sender<Option<String>>,
) {
    let Signals { mut term, mut int, mut hup } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                crate::systemd::reloading();
                let assembled = crate::settings::assemble(paths, settings_file, &UserdataSource::Saved).await;
                let assembled = assembled.map_err(|error| crate::error::chain(&error));
                match assembled.and_then(|assembly| assembly.result.map_err(|invalid| invalid.to_string())) {
                    Ok(new) => {
                        tracing::info!("settings reloaded ([disk], [gc] and [drain] max-draining-fraction apply now; agent changes at the next start)");
                        live.send_replace(Arc::new(new.settings.reloadable()));
                        config_error.send_replace(None);
                    }
                    Err(error) => {
                        tracing::error!(%error, "new settings are invalid; keeping the ones in force");
                        config_error.send_replace(Some(error));
                    }
                }
                crate::systemd::ready();
            }
        }
    }
}
