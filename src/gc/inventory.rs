//! What the planner decides over: plain data about images and containers, gathered from
//! Docker at the edge (see `docker_inventory`) or made up in tests.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// The label that protects a container and its image from GC, whoever made them; on an image
/// it protects the image. Any value but `false`, `0` or `no` protects (`--label nodewarden.keep`
/// alone gives an empty value, and means "keep").
pub const KEEP_LABEL: &str = "nodewarden.keep";

/// Whether `labels` carry the keep label.
pub fn has_keep_label(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get(KEEP_LABEL)
        .is_some_and(|value| !matches!(value.trim().to_ascii_lowercase().as_str(), "false" | "0" | "no"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `sha256:…`
    pub id: String,
    pub parent_id: Option<String>,
    /// `repository:tag` names; empty for dangling or intermediate images.
    pub repo_tags: Vec<String>,
    /// `repository@sha256:…` names, for images pulled from (or pushed to) a registry.
    pub repo_digests: Vec<String>,
    /// Total size including parent layers, as Docker reports it.
    pub size: u64,
    /// Bytes shared with other images, when Docker computed it.
    pub shared_size: Option<u64>,
    pub created: SystemTime,
    pub labels: BTreeMap<String, String>,
}

impl Image {
    /// A name for people: the first tag, or the short id.
    pub fn display_name(&self) -> String {
        self.repo_tags.first().cloned().unwrap_or_else(|| short_id(&self.id).to_string())
    }
}

pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl ContainerState {
    pub fn parse(state: &str) -> Self {
        match state {
            "created" => ContainerState::Created,
            "paused" => ContainerState::Paused,
            "restarting" => ContainerState::Restarting,
            "removing" => ContainerState::Removing,
            "exited" => ContainerState::Exited,
            "dead" => ContainerState::Dead,
            // Anything unknown counts as running: never remove what we do not understand.
            _ => ContainerState::Running,
        }
    }

    /// Stopped for good: a candidate for removal once old enough.
    pub fn is_finished(self) -> bool {
        matches!(self, ContainerState::Exited | ContainerState::Dead)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image_id: String,
    pub state: ContainerState,
    pub created: SystemTime,
    pub finished_at: Option<SystemTime>,
    /// Writable-layer size, when Docker computed it.
    pub size_rw: Option<u64>,
    pub labels: BTreeMap<String, String>,
}

impl Container {
    /// The ECS agent created it for a task: it carries the agent's task label.
    pub fn is_ecs_task(&self) -> bool {
        self.labels.contains_key(crate::offender::LABEL_TASK_ARN)
    }

    pub fn has_keep_label(&self) -> bool {
        has_keep_label(&self.labels)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub images: Vec<Image>,
    pub containers: Vec<Container>,
}

/// What nodewarden knows of an image's use, persisted across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// When nodewarden first saw the image on this host.
    #[serde(with = "crate::time::unix_seconds")]
    pub first_seen: SystemTime,
    /// When it was last used: a container created, started, stopped or removed on it, or the
    /// image pulled, loaded, imported or tagged; if ever seen.
    #[serde(with = "crate::time::unix_seconds::option", default)]
    pub last_used: Option<SystemTime>,
    /// When a container last used it, if ever seen. Absent in files written before it was
    /// recorded: such an image counts as never used by a container until one uses it.
    #[serde(with = "crate::time::unix_seconds::option", default)]
    pub last_container_use: Option<SystemTime>,
}

impl Usage {
    /// Not since a container used it was the image pulled, loaded, imported or tagged (or
    /// first seen): what made it arrive was a container's use, so no task is still about to
    /// start on it. See [`crate::gc::plan::Kept::UnknownUse`].
    pub fn used_by_a_container_since_it_arrived(&self) -> bool {
        match (self.last_container_use, self.last_used) {
            (Some(container), Some(any)) => container >= any,
            _ => false,
        }
    }
}

/// Image id → usage.
pub type UsageMap = BTreeMap<String, Usage>;
