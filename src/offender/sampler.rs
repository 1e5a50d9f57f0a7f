//! The edge of attribution: each running container's footprint on Docker's filesystem. What
//! Docker says of a container (name, labels, writable-layer directory, log file, volumes) is
//! inspected once and kept. Each sample, in a blocking task, reads a writable layer's size from
//! its XFS project quota where dockerd gave it one (`overlay2.size`: a few syscalls, however
//! many files), and otherwise walks the directories counting allocated blocks (what fills the
//! disk, sparse or not), with a bound of entries per container so one with millions of files
//! cannot make a sample expensive, nor leave the others uncounted; a measurement the bound cut
//! short says so (and is never ranked). Volumes and logs are always walked: no quota covers them.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;

use super::{Footprint, LABEL_CONTAINER_NAME, LABEL_TASK_ARN, LABEL_TASK_FAMILY, SampleCost};

/// Directory entries walked per container and sample, at most.
pub const WALK_BOUND: u64 = 50_000;

#[derive(Debug, Clone)]
struct Known {
    name: String,
    image: String,
    task_arn: Option<String>,
    task_family: Option<String>,
    ecs_agent: bool,
    upper_dir: Option<PathBuf>,
    log_path: Option<PathBuf>,
    volumes: Vec<PathBuf>,
}

pub struct Sampler {
    docker: Docker,
    data_root: PathBuf,
    known: HashMap<String, Known>,
    /// Said once in the journal: writable layers are read from their project quotas.
    said_quota: bool,
    last_cost: Option<SampleCost>,
}

impl Sampler {
    pub fn new(docker: Docker, data_root: PathBuf) -> Self {
        Sampler { docker, data_root, known: HashMap::new(), said_quota: false, last_cost: None }
    }

    /// What the last sample's measuring cost (the Docker calls before it not counted).
    pub fn last_cost(&self) -> Option<SampleCost> {
        self.last_cost
    }

    /// Every running container's footprint now. One list call, an inspect per container not
    /// seen before, then the walk off the async threads.
    pub async fn sample(&mut self) -> Result<Vec<Footprint>, bollard::errors::Error> {
        let running = self.docker.list_containers(Some(ListContainersOptionsBuilder::default().build())).await?;
        let ids: Vec<String> = running.iter().filter_map(|c| c.id.clone()).collect();
        self.known.retain(|id, _| ids.contains(id));
        for id in &ids {
            if self.known.contains_key(id) {
                continue;
            }
            match self.docker.inspect_container(id, None).await {
                Ok(inspected) => {
                    self.known.insert(id.clone(), known_from(&inspected, &self.data_root));
                }
                // Gone between the list and the inspect: measured next time, if back.
                Err(error) => tracing::debug!(container = %id, %error, "inspecting a container to attribute growth"),
            }
        }
        let known: Vec<(String, Known)> = self.known.iter().map(|(id, k)| (id.clone(), k.clone())).collect();
        let (measured, cost) = tokio::task::spawn_blocking(move || {
            let (started, cpu_before) = (Instant::now(), thread_cpu());
            let mut cost = SampleCost { containers: known.len(), ..SampleCost::default() };
            let measured = known
                .into_iter()
                .map(|(id, k)| {
                    let (footprint, walked) = measure(id, k, WALK_BOUND, crate::storage::quota::writable_layer_bytes);
                    cost.entries_walked += walked;
                    cost.layers_from_quota += usize::from(footprint.writable_from_quota);
                    cost.cut_short += usize::from(footprint.cut_short);
                    footprint
                })
                .collect::<Vec<Footprint>>();
            cost.wall_seconds = started.elapsed().as_secs_f64();
            cost.cpu_seconds = thread_cpu().saturating_sub(cpu_before).as_secs_f64();
            (measured, Some(cost))
        })
        .await
        .unwrap_or_default();
        self.last_cost = cost.or(self.last_cost);
        if !self.said_quota && measured.iter().any(|f| f.writable_from_quota) {
            self.said_quota = true;
            tracing::info!("writable layers measured from their XFS project quotas (overlay2.size), not walked");
        }
        Ok(measured)
    }
}

fn known_from(inspected: &bollard::models::ContainerInspectResponse, data_root: &Path) -> Known {
    let labels = inspected.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
    let name = labels
        .get(LABEL_CONTAINER_NAME)
        .cloned()
        .or_else(|| inspected.name.as_deref().map(|n| n.trim_start_matches('/').to_string()))
        .unwrap_or_default();
    let image = inspected.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default();
    let docker_name = inspected.name.as_deref().unwrap_or_default().trim_start_matches('/');
    let upper_dir = inspected.graph_driver.as_ref().and_then(|g| g.data.get("UpperDir")).map(PathBuf::from);
    // Volumes on Docker's own filesystem; a bind mount of a host directory fills another disk.
    let volumes = inspected
        .mounts
        .iter()
        .flatten()
        .filter_map(|m| m.source.as_deref().map(PathBuf::from))
        .filter(|source| source.starts_with(data_root))
        .collect();
    Known {
        name,
        image,
        task_arn: labels.get(LABEL_TASK_ARN).cloned(),
        task_family: labels.get(LABEL_TASK_FAMILY).cloned(),
        ecs_agent: docker_name == crate::agent::spec::CONTAINER_NAME,
        upper_dir,
        log_path: inspected.log_path.as_deref().filter(|p| !p.is_empty()).map(PathBuf::from),
        volumes,
    }
}

/// The CPU time of the calling thread: the measuring runs on one blocking thread, so this is
/// its cost alone, whatever else the daemon does meanwhile.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.try_into().unwrap_or(0), t.tv_nsec.try_into().unwrap_or(0))
}

/// One container's footprint, and the directory entries walked for it: its writable layer
/// from `layer_quota` where that answers, everything else walked, at most `bound` entries.
fn measure(
    container_id: String,
    known: Known,
    bound: u64,
    layer_quota: impl Fn(&Path) -> Option<u64>,
) -> (Footprint, u64) {
    let mut budget = bound;
    let mut cut_short = false;
    let mut walk = |path: &Path| {
        let (bytes, complete) = allocated(path, &mut budget);
        cut_short |= !complete;
        bytes
    };
    let quota = known.upper_dir.as_deref().and_then(&layer_quota);
    let writable_from_quota = quota.is_some();
    let writable_bytes = quota.unwrap_or_else(|| known.upper_dir.as_deref().map_or(0, &mut walk));
    let volume_bytes = known.volumes.iter().map(|dir| walk(dir)).sum();
    let log_bytes = known.log_path.as_deref().map_or(0, &mut walk);
    let footprint = Footprint {
        container_id,
        name: known.name,
        image: known.image,
        task_arn: known.task_arn,
        task_family: known.task_family,
        ecs_agent: known.ecs_agent,
        writable_bytes,
        volume_bytes,
        log_bytes,
        cut_short,
        writable_from_quota,
    };
    (footprint, bound - budget)
}

/// Bytes allocated under `path` (a file or a directory tree, not following links), walking at
/// most `budget` entries, and whether the walk reached the end (what is left unwalked is not
/// counted). A path that is gone holds nothing.
pub fn allocated(path: &Path, budget: &mut u64) -> (u64, bool) {
    let Ok(metadata) = std::fs::symlink_metadata(path) else { return (0, true) };
    if *budget == 0 {
        return (0, false);
    }
    *budget -= 1;
    let blocks = metadata.blocks() * 512;
    if !metadata.is_dir() {
        // The smaller of length and allocation: a sparse file holds only its blocks, and an
        // appended one may hold blocks reserved ahead of its end (xfs's speculative
        // preallocation), which come and go in jumps that would hide who really writes.
        return (blocks.min(metadata.len()), true);
    }
    let Ok(entries) = std::fs::read_dir(path) else { return (blocks, true) };
    let (mut total, mut complete) = (blocks, true);
    for entry in entries.flatten() {
        let (bytes, whole) = allocated(&entry.path(), budget);
        total += bytes;
        complete &= whole;
        if !complete {
            break;
        }
    }
    (total, complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_counts_real_blocks_and_stops_at_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::File::create(dir.path().join("sparse")).unwrap().set_len(1 << 30).unwrap();
        let mut budget = 100;
        let (total, complete) = allocated(dir.path(), &mut budget);
        assert!((64 * 1024..1 << 20).contains(&total), "a sparse GiB is not counted, real 64 KiB is: {total}");
        assert!(complete);
        assert_eq!(budget, 100 - 4);
        let mut none = 0;
        assert_eq!(allocated(dir.path(), &mut none), (0, false));
        let mut three = 3;
        assert!(!allocated(dir.path(), &mut three).1, "four entries do not fit in three");
        let mut any = 0;
        assert_eq!(allocated(&dir.path().join("gone"), &mut any), (0, true), "nothing there: nothing cut short");
    }

    #[test]
    fn each_container_has_its_own_bound_and_a_cut_short_one_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let many = dir.path().join("many");
        std::fs::create_dir(&many).unwrap();
        for i in 0..20 {
            std::fs::write(many.join(i.to_string()), vec![1u8; 4096]).unwrap();
        }
        let few = dir.path().join("few");
        std::fs::create_dir(&few).unwrap();
        std::fs::write(few.join("a"), vec![1u8; 4096]).unwrap();
        let known = |dir: &Path| Known {
            name: "c".into(),
            image: "app:1".into(),
            task_arn: None,
            task_family: None,
            ecs_agent: false,
            upper_dir: Some(dir.to_path_buf()),
            log_path: None,
            volumes: Vec::new(),
        };
        // Measured one after the other with a bound of 10 each: the first's many files do not
        // leave the second uncounted.
        let no_quota = |_: &Path| None;
        let (first, walked) = measure("many".into(), known(&many), 10, no_quota);
        assert_eq!(walked, 10, "the whole bound walked");
        let (second, walked) = measure("few".into(), known(&few), 10, no_quota);
        assert_eq!(walked, 2, "the directory and its one file");
        assert!(first.cut_short && !first.writable_from_quota, "{first:?}");
        assert!(!second.cut_short && second.writable_bytes >= 4096, "{second:?}");
        let (whole, _) = measure("many".into(), known(&many), 100, no_quota);
        assert!(!whole.cut_short && whole.writable_bytes >= 20 * 4096, "{whole:?}");
        // Where the layer's project quota answers, its figure is taken and nothing is walked:
        // not cut short even with no bound left for the walk.
        let (quota, walked) = measure("many".into(), known(&many), 0, |_: &Path| Some(7 << 20));
        assert_eq!(walked, 0, "nothing walked for a layer its quota measured");
        assert!(quota.writable_from_quota && !quota.cut_short && quota.writable_bytes == 7 << 20, "{quota:?}");
    }
}
