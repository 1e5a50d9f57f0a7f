//! Garbage collection of Docker's disk: the inventory (plain data), the pure planner, the
//! last-use store fed by Docker's event stream, and the executor.

pub mod docker_io;
pub mod inventory;
pub mod last_use;
pub mod plan;
pub mod tracker;

pub use docker_io::{GcReport, Outcome, execute, gather_inventory};
pub use inventory::{Container, ContainerState, Image, Inventory, Usage, UsageMap};
pub use last_use::{LastUseStore, UsageEvent};
pub use plan::{Action, GcPolicy, Kept, Plan, Step, normalize_reference, plan};
pub use tracker::{Tracker, UsageHandle, UsageRequest};

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use bollard::Docker;

use crate::disk::{self, DiskSample, ProbeError};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Disk(#[from] ProbeError),
    #[error("listing Docker images and containers: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("the GC run did not finish within [gc] run-timeout ({0:?}): Docker is wedged or very slow; abandoned")]
    TimedOut(std::time::Duration),
    #[error("the image usage store does not answer (its loop stopped); not planning without it")]
    UsageUnavailable,
}

/// Whether a sample is at or above `threshold` (a fraction) in bytes or in inodes.
pub fn above(sample: &DiskSample, threshold: f64) -> bool {
    sample.used_fraction() >= threshold || sample.used_inode_fraction() >= threshold
}

/// Measures Docker's filesystem and lists its images and containers, for a plan.
pub async fn survey(docker: &Docker, data_root: &Path) -> Result<(DiskSample, Inventory), GcError> {
    let sample = disk::probe(data_root)?;
    let inventory = gather_inventory(docker).await?;
    Ok((sample, inventory))
}

/// Plans what to remove to get below `stop_below`. Under inode pressure the byte target is
/// unbounded: execution stops on the measured figures.
pub fn plan_below(
    sample: &DiskSample,
    inventory: &Inventory,
    usage: &UsageMap,
    policy: &GcPolicy,
    stop_below: f64,
) -> Plan {
    let target = if sample.used_inode_fraction() >= stop_below { u64::MAX } else { sample.bytes_above(stop_below) };
    plan(inventory, usage, policy, SystemTime::now(), target)
}

/// Surveys, asks for the usage of what it lists (the tracker brings the last-use store up to
/// the listing first: an image pulled a moment ago that the event stream has not reported yet
/// is first seen now, not aged by its build date), plans and executes once. `task_images`
/// names the images of the tasks ECS placed here (`None`: ECS could not say); it is asked only
/// when the plan would remove an image, so a node whose GC has nothing left to remove (a
/// runaway's long pressure) makes no ECS calls.
pub async fn run_once(
    docker: &Docker,
    data_root: &Path,
    usage: impl AsyncFnOnce(&Inventory) -> Option<UsageMap>,
    policy: &GcPolicy,
    stop_below: f64,
    task_images: impl AsyncFnOnce() -> Option<BTreeSet<String>>,
) -> Result<(Plan, GcReport), GcError> {
    let (sample, inventory) = survey(docker, data_root).await?;
    let usage = usage(&inventory).await.ok_or(GcError::UsageUnavailable)?;
    let mut plan = plan_below(&sample, &inventory, &usage, policy, stop_below);
    if plan.steps.iter().any(|step| matches!(step.action, Action::RemoveImage { .. })) {
        let wanted = task_images().await.unwrap_or_default();
        if !wanted.is_empty() {
            let policy = GcPolicy { task_images: wanted, ..policy.clone() };
            plan = plan_below(&sample, &inventory, &usage, &policy, stop_below);
        }
    }
    let report = execute(docker, &plan, stop_below, || disk::probe(data_root).ok()).await;
    Ok((plan, report))
}
