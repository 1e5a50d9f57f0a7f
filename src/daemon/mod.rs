//! `nodewarden run`: the long-running daemon. It supervises the ECS agent, follows Docker's
//! events for image usage, watches Docker's filesystem every check interval (the main loop:
//! liveness, watchdog, conditions), garbage-collects past `gc-start`, drains under pressure
//! or when the instance is going away, and serves the health endpoint.

pub mod disk_watch;
pub mod drain_loop;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::drain::termination::LifecycleSettings;
use crate::drain::{DrainController, EcsApi};
use crate::environment::Environment;
use crate::gc::{LastUseStore, Tracker};
use crate::health::{HealthContext, SETUP_MARKER};
use crate::host_paths::HostPaths;
use crate::imds::{ImdsClient, ImdsConfig};
use crate::settings::Settings;
pub use state::{NodeState, SharedState};

/// How long startup waits for dockerd (it may still be starting after boot).
const DOCKER_STARTUP_DEADLINE: Duration = Duration::from_secs(300);

/// Re-reads settings on SIGHUP; an error keeps the settings in force.
pub type Reload = Box<dyn Fn() -> Result<Settings, String> + Send + Sync>;

pub async fn run(paths: HostPaths, settings: Settings, environment: Environment, reload: Reload) -> Result<(), String> {
    // Bind first: a taken or disallowed address is a configuration error to fail on.
    let listener = tokio::net::TcpListener::bind(settings.health.listen)
        .await
        .map_err(|e| format!("binding the health endpoint on {}: {e}", settings.health.listen))?;
    let docker =
        crate::docker::connect_with_retry(&environment, DOCKER_STARTUP_DEADLINE).await.map_err(|e| e.to_string())?;
    let info = docker
        .info()
        .await
        .map_err(|e| format!("asking Docker at {} for its root dir: {e}", environment.docker_host))?;
    let data_root = info.docker_root_dir.map(PathBuf::from).unwrap_or_else(|| paths.docker_data_root());
    tracing::info!(docker = %environment.docker_host, data_root = %data_root.display(), "watching Docker's disk");

    let store = Arc::new(Mutex::new(LastUseStore::load(&paths.state_dir())));
    let state = SharedState::new(data_root.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (settings_tx, settings_rx) = watch::channel(Arc::new(settings.clone()));
    let (wants_tx, wants_rx) = watch::channel(drain_loop::DiskWants::default());
    let mut tasks = Vec::new();

    let health = Arc::new(HealthContext {
        state: state.clone(),
        setup_marker: paths.state_dir().join(SETUP_MARKER),
        stale_after: (settings.disk.check_interval * 3).max(Duration::from_secs(2)),
        system: std::sync::Mutex::new(sysinfo::System::new()),
    });
    tracing::info!(listen = %settings.health.listen, "health endpoint: /healthz /readyz /status /metrics");
    tasks.push(tokio::spawn(crate::health::serve(listener, health, shutdown_rx.clone())));
    tasks.push(tokio::spawn(docker_watch(docker.clone(), state.clone(), shutdown_rx.clone())));
    tasks.push(tokio::spawn(Tracker::new(docker.clone(), store.clone()).run(shutdown_rx.clone())));

    let agent = crate::agent::SharedAgent::default();
    state.lock().agent = agent.clone();
    for dir in crate::agent::spec::host_dirs(&paths) {
        if let Err(error) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), %error, "cannot create a directory the agent mounts");
        }
    }
    let supervisor = crate::agent::Supervisor {
        docker: docker.clone(),
        spec: crate::agent::spec::build(&settings, &paths, environment.docker_socket()),
        tarball: settings.ecs.agent_tarball.clone(),
        introspection: environment.agent_introspection.clone(),
        health: crate::agent::HealthPolicy {
            grace: settings.ecs.agent_health_grace,
            interval: settings.ecs.agent_health_interval,
            failures: settings.ecs.agent_health_failures,
        },
        state: agent,
    };
    tasks.push(tokio::spawn(supervisor.run(shutdown_rx.clone())));

    let watcher = disk_watch::DiskWatch::new(docker, data_root, settings_rx.clone(), store, state.clone(), wants_tx);
    tasks.push(tokio::spawn(watcher.run(shutdown_rx.clone())));
    if settings.drain.enabled {
        let drain = drain_loop(&paths, &settings, &environment, state.clone(), settings_rx.clone()).await;
        tasks.push(tokio::spawn(drain.run(wants_rx, shutdown_rx.clone())));
    } else {
        tracing::warn!("[drain] enabled = false: this instance is never drained by nodewarden");
    }

    // READY only once the first disk check ran: everything is initialised.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state.lock().sample.is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crate::systemd::ready();
    tracing::info!("ready");

    wait_for_signals(&reload, &settings_tx, &state).await;
    crate::systemd::stopping();
    tracing::info!("stopping (the ECS agent and its tasks keep running)");
    let _ = shutdown_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
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
        let mut state = state.lock();
        if state.docker_error.is_some() != error.is_some() {
            match &error {
                Some(error) => tracing::warn!(%error, "Docker is unavailable"),
                None => tracing::info!("Docker answers again"),
            }
        }
        state.docker_error = error;
    }
}

/// SIGHUP reloads settings (invalid ones are refused and reported); SIGTERM or SIGINT stops.
async fn wait_for_signals(reload: &Reload, settings: &watch::Sender<Arc<Settings>>, state: &SharedState) {
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
                match reload() {
                    Ok(new) => {
                        tracing::info!("settings reloaded ([disk], [gc] and [drain] max-draining-fraction apply now; agent changes at the next start)");
                        settings.send_replace(Arc::new(new));
                        state.lock().config_error = None;
                    }
                    Err(error) => {
                        tracing::error!(%error, "new settings are invalid; keeping the ones in force");
                        state.lock().config_error = Some(error);
                    }
                }
                crate::systemd::ready();
            }
        }
    }
}

/// Builds the drain loop: IMDS (for identity, region, spot and lifecycle), and the ECS, EC2
/// and Auto Scaling clients, region from the environment or else from IMDS.
async fn drain_loop(
    paths: &HostPaths,
    settings: &Settings,
    environment: &Environment,
    state: SharedState,
    settings_rx: watch::Receiver<Arc<Settings>>,
) -> drain_loop::DrainLoop {
    let imds_config = ImdsConfig { deadline: Duration::from_secs(5), ..ImdsConfig::default() };
    let imds = Arc::new(ImdsClient::new(environment.imds_endpoint.clone(), imds_config));
    let region = match environment.aws_region {
        Some(_) => None,
        None => match imds.region().await {
            Ok(region) => Some(region),
            Err(error) => {
                tracing::warn!(%error, "no AWS_REGION and IMDS did not say; the SDK's default chain decides");
                None
            }
        },
    };
    let config = crate::aws::sdk_config(environment, region.as_deref()).await;
    let api =
        EcsApi { ecs: crate::aws::ecs_client(environment, &config), ec2: crate::aws::ec2_client(environment, &config) };
    let controller = DrainController::new(
        api.clone(),
        settings.ecs.cluster.as_str().to_string(),
        settings.drain.max_draining_fraction.fraction(),
        imds.clone(),
        environment.agent_introspection.clone(),
        paths.state_dir(),
    );
    drain_loop::DrainLoop {
        controller,
        api,
        autoscaling: crate::aws::autoscaling_client(environment, &config),
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
