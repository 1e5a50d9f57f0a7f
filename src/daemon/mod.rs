//! `nodewarden run`: the long-running daemon. Today it follows Docker's events for image
//! usage, watches Docker's filesystem every check interval, and garbage-collects past
//! `gc-start`; agent supervision, drain and the health endpoint join it as they land.

pub mod disk_watch;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::environment::Environment;
use crate::gc::{GcPolicy, LastUseStore, Tracker};
use crate::host_paths::HostPaths;
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

    let tracker = tokio::spawn(Tracker::new(docker.clone(), store.clone()).run(shutdown_rx.clone()));
    let watcher = disk_watch::DiskWatch {
        docker,
        data_root,
        disk: settings.disk.clone(),
        policy: GcPolicy::from_settings(&settings),
        store,
        state,
    };
    let watch_task = tokio::spawn(watcher.run(shutdown_rx));

    wait_for_shutdown_signal().await;
    tracing::info!("stopping (the ECS agent and tasks keep running)");
    let _ = shutdown_tx.send(true);
    let _ = watch_task.await;
    let _ = tracker.await;
    Ok(())
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
