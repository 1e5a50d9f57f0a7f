//! The validated settings: what the rest of nodewarden reads. Built only by `validate`, so
//! every value here passed its newtype's checks and the cross-field rules.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::values::{
    ByteSize, ClusterName, DeviceSpec, Filesystem, ImagePattern, ImageReference, Percent, Secret, keyword_enum,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub ecs: EcsSettings,
    pub docker: DockerSettings,
    pub disk: DiskSettings,
    pub gc: GcSettings,
    pub drain: DrainSettings,
    pub offender: OffenderSettings,
    pub health: HealthSettings,
}

/// What SIGHUP changes in a running daemon; the rest (the agent, Docker's disk, the health
/// endpoint, the drain triggers and lifecycle hook) applies at the next start. One type, so no
/// loop can hold a stale copy of half of it while reading the other half live.
#[derive(Debug, Clone, PartialEq)]
pub struct Reloadable {
    pub disk: DiskSettings,
    pub gc: GcSettings,
    pub max_draining_fraction: Percent,
}

impl Settings {
    pub fn reloadable(&self) -> Reloadable {
        Reloadable {
            disk: self.disk.clone(),
            gc: self.gc.clone(),
            max_draining_fraction: self.drain.max_draining_fraction,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EcsSettings {
    pub cluster: ClusterName,
    /// Where `cluster` came from: it decides whether nodewarden writes ECS_CLUSTER.
    pub cluster_source: ClusterSource,
    /// Who runs the ECS agent: nodewarden, or ecs-init's `ecs.service` (the ECS-optimized AMI).
    pub agent: AgentOwner,
    pub agent_image: ImageReference,
    pub agent_tarball: PathBuf,
    pub engine_auth: Option<EngineAuth>,
    /// Extra keys for `/etc/ecs/ecs.config`, already checked.
    pub config: BTreeMap<String, String>,
    /// Keys of `config` nodewarden does not know, passed to the agent unchecked on purpose.
    pub config_unchecked: Vec<String>,
    /// No health verdict on the agent before it ran this long.
    pub agent_health_grace: Duration,
    pub agent_health_interval: Duration,
    /// Consecutive failed introspection checks that restart the agent.
    pub agent_health_failures: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineAuth {
    pub kind: EngineAuthType,
    pub data: Secret,
}

/// Where `[ecs] cluster` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterSource {
    /// The settings (defaults, file, userdata): nodewarden writes ECS_CLUSTER.
    Settings,
    /// Another writer's ECS_CLUSTER line in ecs.config (classic ECS userdata): kept as it is,
    /// never claimed as nodewarden's.
    EcsConfig,
    /// Not known yet, only for `setup` with ecs-init running the agent: userdata's script
    /// appends ECS_CLUSTER to ecs.config later in the boot (cloud-init runs scripts after
    /// setup), and ecs-init reads it then. nodewarden writes no ECS_CLUSTER; `cluster` holds
    /// the agent's own fallback, `default`. The daemon, ordered after ecs.service, reads the
    /// line when it starts.
    Later,
}

keyword_enum! {
    pub enum AgentOwner {
        /// nodewarden creates and supervises the `ecs-agent` container (hosts without ecs-init).
        Nodewarden = "nodewarden",
        /// `ecs.service` (ecs-init) runs the agent; nodewarden does the rest and watches it.
        EcsInit = "ecs-init",
    }
}

keyword_enum! {
    pub enum EngineAuthType {
        Docker = "docker",
        Dockercfg = "dockercfg",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DockerSettings {
    pub data_device: DeviceSpec,
    pub filesystem: Filesystem,
    pub log_max_size: ByteSize,
    pub log_max_files: u32,
    /// `overlay2.size`; `None` when set to "none".
    pub container_disk_limit: Option<ByteSize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskSettings {
    pub check_interval: Duration,
    pub gc_start: Percent,
    pub gc_stop: Percent,
    pub drain_at: Percent,
    pub drain_if_full_within: Duration,
    pub recover_below: Percent,
    pub recover_after: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GcSettings {
    pub min_image_age: Duration,
    pub exited_container_min_age: Duration,
    pub keep_images: Vec<ImagePattern>,
    /// A GC run that takes longer is abandoned (a wedged Docker call), so the drain is not held.
    pub run_timeout: Duration,
    /// Stopped containers the ECS agent did not create are removed too (off: only ECS tasks').
    pub remove_other_containers: bool,
    /// With their anonymous volumes (only with `remove_other_containers`).
    pub remove_other_volumes: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrainSettings {
    pub enabled: bool,
    pub max_draining_fraction: Percent,
    pub on_spot_interruption: bool,
    pub on_termination: bool,
    pub lifecycle_hook: String,
    /// Lifecycle action heartbeats while waiting for tasks to stop.
    pub heartbeat_interval: Duration,
    /// Complete the lifecycle action anyway after this long.
    pub termination_timeout: Duration,
}

/// What to do about the container that fills Docker's disk (it is always named).
#[derive(Debug, Clone, PartialEq)]
pub struct OffenderSettings {
    pub action: OffenderAction,
}

keyword_enum! {
    pub enum OffenderAction {
        /// Name it in /status, /metrics, the journal and the drain tag; nothing more.
        None = "none",
        /// `StopTask` it when its growth alone would fill the disk within drain-if-full-within.
        StopTask = "stop-task",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    pub listen: SocketAddr,
    pub allow_remote: bool,
}
