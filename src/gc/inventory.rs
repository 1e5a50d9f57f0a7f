//! What the planner decides over: plain data about images and containers, gathered from
//! Docker at the edge (see `docker_inventory`) or made up in tests.

use std::collections::BTreeMap;
use std::time::SystemTime;

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
    /// When a container last used it (created, started, stopped, removed), if ever seen.
    #[serde(with = "crate::time::unix_seconds::option", default)]
    pub last_used: Option<SystemTime>,
}

/// Image id → usage.
pub type UsageMap = BTreeMap<String, Usage>;
