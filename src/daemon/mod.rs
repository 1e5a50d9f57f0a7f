//! `nodewarden run`: the long-running daemon. Today it follows Docker's events for image
//! usage, watches Docker's filesystem every check interval, and garbage-collects past
//! `gc-start`; agent supervision, drain and the health endpoint join it as they land.

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
use crate::gc::{GcPolicy, LastUseStore, Tracker};
use crate::host_paths::HostPaths;
use crate::imds::{ImdsClient, ImdsConfig};
use crate::settings::Settings;
pub use state::{NodeState, SharedState};

/// How long startup waits for dockerd (it may still be starting after boot).
const DOCKER_STARTUP_DEADLINE: Duration = Duration::from_secs(300);

pub async fn run(paths: HostPaths, settings: Settings, environment: Environment) -> Result<(), String> {
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

    let (wants_tx, wants_rx) = watch::channel(drain_loop::DiskWants::default());

    let tracker = tokio::spawn(Tracker::new(docker.clone(), store.clone()).run(shutdown_rx.clone()));
    let docker_for_agent = docker.clone();
    let watcher = disk_watch::DiskWatch {
        docker,
        data_root,
        disk: settings.disk.clone(),
        policy: GcPolicy::from_settings(&settings),
        store,
        state: state.clone(),
        wants: wants_tx,
    };
    let watch_task = tokio::spawn(watcher.run(shutdown_rx.clone()));
    let agent = crate::agent::SharedAgent::default();
    let supervisor = crate::agent::Supervisor {
        docker: docker_for_agent,
        spec: crate::agent::spec::build(&settings, &paths, environment.docker_socket()),
        tarball: settings.ecs.agent_tarball.clone(),
        introspection: environment.agent_introspection.clone(),
        health: crate::agent::HealthPolicy {
            grace: settings.ecs.agent_health_grace,
            interval: settings.ecs.agent_health_interval,
            failures: settings.ecs.agent_health_failures,
        },
        state: agent.clone(),
    };
    for dir in crate::agent::spec::host_dirs(&paths) {
        if let Err(error) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), %error, "cannot create a directory the agent mounts");
        }
    }
    let agent_task = tokio::spawn(supervisor.run(shutdown_rx.clone()));
    state.lock().agent = agent;
    let drain_task = if settings.drain.enabled {
        let drain = drain_loop(&paths, &settings, &environment, state.clone()).await;
        Some(tokio::spawn(drain.run(wants_rx, shutdown_rx)))
    } else {
        tracing::warn!("[drain] enabled = false: this instance is never drained by nodewarden");
        None
    };

    wait_for_shutdown_signal().await;
    tracing::info!("stopping (the ECS agent and tasks keep running)");
    let _ = shutdown_tx.send(true);
    let _ = watch_task.await;
    let _ = tracker.await;
    let _ = agent_task.await;
    if let Some(task) = drain_task {
        let _ = task.await;
    }
    Ok(())
}

/// Builds the drain loop: IMDS (for identity, region, spot and lifecycle), and the ECS, EC2
/// and Auto Scaling clients, region from the environment or else from IMDS.
async fn drain_loop(
    paths: &HostPaths,
    settings: &Settings,
    environment: &Environment,
    state: SharedState,
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
    }
}

async fn wait_for_shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers the daemon can only be killed; run until then.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
