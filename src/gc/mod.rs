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
pub use plan::{Action, GcPolicy, Kept, Plan, Step, TaskImages, normalize_reference, plan};
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
/// unbounded: execution stops on the measured figures. At or above `drain_at`, images of
/// unknown use go too when ECS cannot say which images its tasks want (see [`Kept::UnknownUse`]).
pub fn plan_below(
    sample: &DiskSample,
    inventory: &Inventory,
    usage: &UsageMap,
    policy: &GcPolicy,
    stop_below: f64,
    drain_at: f64,
) -> Plan {
    let target = if sample.used_inode_fraction() >= stop_below { u64::MAX } else { sample.bytes_above(stop_below) };
    let policy = GcPolicy { past_drain_at: above(sample, drain_at), ..policy.clone() };
    plan(inventory, usage, &policy, SystemTime::now(), target)
}

/// As [`plan_below`], asking `task_images` which images this instance's tasks want only when
/// the plan would remove an image (planned first as if ECS named none), so a node whose GC has
/// no image left to remove (a runaway's long pressure) makes no ECS calls. `policy`'s own
/// `task_images` is replaced by the answer.
pub async fn plan_asking<Fut>(
    sample: &DiskSample,
    inventory: &Inventory,
    usage: &UsageMap,
    policy: &GcPolicy,
    stop_below: f64,
    drain_at: f64,
    task_images: impl FnOnce() -> Fut,
) -> Plan
where
    Fut: std::future::Future<Output = TaskImages>,
{
    let none_wanted = GcPolicy { task_images: TaskImages::Known(BTreeSet::new()), ..policy.clone() };
    let plan = plan_below(sample, inventory, usage, &none_wanted, stop_below, drain_at);
    if !plan.removes_images() {
        return plan;
    }
    let answer = task_images().await;
    if answer == none_wanted.task_images {
        return plan;
    }
    let policy = GcPolicy { task_images: answer, ..policy.clone() };
    plan_below(sample, inventory, usage, &policy, stop_below, drain_at)
}

/// Surveys, asks for the usage of what it lists (the tracker brings the last-use store up to
/// the listing first: an image pulled a moment ago that the event stream has not reported yet
/// is first seen now, not aged by its build date), plans and executes once. `task_images`
/// names the images of the tasks ECS placed here, or says ECS cannot (see [`plan_asking`]).
pub async fn run_once<Fut>(
    docker: &Docker,
    data_root: &Path,
    usage: impl AsyncFnOnce(&Inventory) -> Option<UsageMap>,
    policy: &GcPolicy,
    stop_below: f64,
    drain_at: f64,
    task_images: impl FnOnce() -> Fut,
) -> Result<(Plan, GcReport), GcError>
where
    Fut: std::future::Future<Output = TaskImages>,
{
    let (sample, inventory) = survey(docker, data_root).await?;
    let usage = usage(&inventory).await.ok_or(GcError::UsageUnavailable)?;
    let plan = plan_asking(&sample, &inventory, &usage, policy, stop_below, drain_at, task_images).await;
    let report = execute(docker, &plan, stop_below, || disk::probe(data_root).ok()).await;
    Ok((plan, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::inventory::Usage;
    use std::cell::Cell;
    use std::time::{Duration, UNIX_EPOCH};

    const MIB: u64 = 1 << 20;

    /// A 100 MiB disk `used_mib` full, bytes and inodes alike.
    fn sample(used_mib: u64) -> DiskSample {
        DiskSample {
            at: std::time::Instant::now(),
            total_bytes: 100 * MIB,
            available_bytes: (100 - used_mib) * MIB,
            total_inodes: 1000,
            available_inodes: 1000 - used_mib * 10,
        }
    }

    fn inventory() -> (Inventory, UsageMap) {
        let long_ago = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let image = |id: &str| Image {
            id: format!("sha256:{id}"),
            parent_id: None,
            repo_tags: vec![format!("app/{id}:1")],
            repo_digests: vec![],
            size: 10 * MIB,
            shared_size: None,
            created: long_ago,
            labels: Default::default(),
        };
        let inventory = Inventory { images: vec![image("pulled"), image("ran")], containers: vec![] };
        let mut usage = UsageMap::new();
        usage.insert("sha256:pulled".into(), Usage { first_seen: long_ago, last_used: None, last_container_use: None });
        let ran = Some(long_ago + Duration::from_secs(10));
        usage.insert("sha256:ran".into(), Usage { first_seen: long_ago, last_used: ran, last_container_use: ran });
        (inventory, usage)
    }

    fn policy() -> GcPolicy {
        let gc = crate::settings::GcSettings {
            min_image_age: Duration::ZERO,
            exited_container_min_age: Duration::ZERO,
            keep_images: vec![],
            run_timeout: Duration::from_secs(60),
            remove_other_containers: false,
            remove_other_volumes: false,
        };
        GcPolicy::new(&gc, &"amazon/amazon-ecs-agent:v1".parse().expect("a pinned reference"))
    }

    fn removed(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::RemoveImage { tags, .. } => Some(tags.join(",")),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn ecs_is_asked_only_when_an_image_would_go_and_unknown_keeps_images_of_unknown_use_below_drain_at() {
        let (inventory, usage) = inventory();
        let asked = Cell::new(0);
        let answer = |images: TaskImages| {
            asked.set(asked.get() + 1);
            async move { images }
        };
        // Below gc-stop: nothing to free, ECS not asked.
        let plan =
            plan_asking(&sample(10), &inventory, &usage, &policy(), 0.5, 0.9, || answer(TaskImages::Unknown)).await;
        assert!(plan.steps.is_empty() && asked.get() == 0);
        // Above gc-stop, below drain-at, ECS cannot say: only the image a container used goes.
        let plan =
            plan_asking(&sample(85), &inventory, &usage, &policy(), 0.5, 0.9, || answer(TaskImages::Unknown)).await;
        assert_eq!((removed(&plan), asked.get()), (vec!["app/ran:1".to_string()], 1));
        assert!(plan.kept.iter().any(|(n, k)| n == "app/pulled:1" && *k == Kept::UnknownUse), "{:?}", plan.kept);
        // At drain-at, it goes too.
        let plan =
            plan_asking(&sample(90), &inventory, &usage, &policy(), 0.5, 0.9, || answer(TaskImages::Unknown)).await;
        assert_eq!(removed(&plan), ["app/pulled:1", "app/ran:1"]);
        // ECS names the pulled image: a pending task's, kept at any usage.
        let wanted = TaskImages::Known(["app/pulled:1".to_string()].into());
        let plan = plan_asking(&sample(95), &inventory, &usage, &policy(), 0.5, 0.9, || answer(wanted)).await;
        assert_eq!(removed(&plan), ["app/ran:1"]);
        // ECS names nothing: both go below drain-at.
        let none = TaskImages::Known(Default::default());
        let plan = plan_asking(&sample(85), &inventory, &usage, &policy(), 0.5, 0.9, || answer(none)).await;
        assert_eq!(removed(&plan), ["app/pulled:1", "app/ran:1"]);
        assert_eq!(asked.get(), 4);
    }
}
