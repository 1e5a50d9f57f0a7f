//! Which container is filling Docker's disk, and (opt-in) stopping it at its source. While the
//! disk is past gc-start, the disk loop samples every running container's footprint on
//! Docker's filesystem (writable layer, volumes in Docker's data root, log file) at a bounded
//! cost; `growth` ranks them by how fast they grow; `action` decides whether the fastest may
//! be stopped (an ECS task, never the agent, fast enough to fill the disk alone, not stopped
//! here just before). `sampler` is the Docker and filesystem edge.

pub mod action;
pub mod growth;
pub mod sampler;

use serde::{Deserialize, Serialize};

/// ECS's labels on the containers of a task (set by the agent).
pub const LABEL_TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
pub const LABEL_TASK_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
pub const LABEL_CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";

/// One container's footprint on Docker's filesystem at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    pub container_id: String,
    pub name: String,
    pub image: String,
    /// From the ECS labels; `None` for a container ECS did not start.
    pub task_arn: Option<String>,
    pub task_family: Option<String>,
    /// The ECS agent itself: never stopped.
    pub ecs_agent: bool,
    pub writable_bytes: u64,
    pub volume_bytes: u64,
    pub log_bytes: u64,
    /// A walk ran out of its bound before the end: the figure is a floor, and the next full
    /// count would look like sudden growth. Never ranked or stopped on.
    #[serde(default)]
    pub cut_short: bool,
    /// `writable_bytes` is the writable layer's XFS project quota block count (exact, read
    /// without walking); otherwise the layer was walked.
    #[serde(default)]
    pub writable_from_quota: bool,
}

impl Footprint {
    pub fn bytes(&self) -> u64 {
        self.writable_bytes + self.volume_bytes + self.log_bytes
    }

    /// "container web-1 (task family app, image app:1)" for logs, tags and stop reasons.
    pub fn describe(&self) -> String {
        match &self.task_family {
            Some(family) => format!("container {} (task family {family}, image {})", self.name, self.image),
            None => format!("container {} (image {}, not an ECS task)", self.name, self.image),
        }
    }
}

/// What one footprint sample cost: the figure that must stay flat however many files the
/// containers hold (where writable layers are read from their project quotas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleCost {
    pub wall_seconds: f64,
    /// CPU time of the thread that measured.
    pub cpu_seconds: f64,
    pub containers: usize,
    /// Writable layers read from their XFS project quotas, not walked.
    pub layers_from_quota: usize,
    /// Directory entries walked (volumes, logs, and layers without a quota).
    pub entries_walked: u64,
    /// Containers whose walk its bound cut short.
    pub cut_short: usize,
}

/// The fastest-growing container, as /status, /metrics and the drain tag show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offender {
    #[serde(flatten)]
    pub footprint: Footprint,
    pub bytes: u64,
    pub rate_bytes_per_second: f64,
}

impl Offender {
    /// One line: who, how much, how fast.
    pub fn summary(&self) -> String {
        format!(
            "top writer: {}, {} at {}/s{}",
            self.footprint.describe(),
            crate::disk::human_bytes(self.bytes),
            crate::disk::human_bytes(self.rate_bytes_per_second.max(0.0) as u64),
            self.footprint.task_arn.as_ref().map(|arn| format!(", task {arn}")).unwrap_or_default()
        )
    }
}
