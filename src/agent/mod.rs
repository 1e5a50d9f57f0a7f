//! The ECS agent: `/etc/ecs/ecs.config`, the `ecs-agent` container as ecs-init creates it,
//! host network preparation, and supervision (or, with ecs-init in charge, observation).

pub mod docker_side;
pub mod ecs_config;
pub mod exit_policy;
pub mod host_network;
pub mod observer;
pub mod spec;
pub mod supervisor;

pub use observer::Observer;

use std::path::PathBuf;

/// Why bringing up the agent or preparing its host network failed, naming the image, tarball,
/// container or rule it concerns.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A Docker Engine API call failed: what it was doing ("inspecting image X").
    #[error("{doing}: {source}")]
    Docker { doing: String, source: bollard::errors::Error },
    #[error("the agent image is absent and its tarball {} cannot be read: {source}", tarball.display())]
    Tarball { tarball: PathBuf, source: std::io::Error },
    /// Docker refused the tarball (its own message).
    #[error("loading {}: {message}", tarball.display())]
    Load { tarball: PathBuf, message: String },
    #[error("{} was loaded but does not contain {image}: set [ecs] agent-image to the image it holds", tarball.display())]
    NotInTarball { tarball: PathBuf, image: String },
    #[error("iptables not found: install Debian's iptables package (or your distribution's)")]
    NoIptables,
    #[error("running {binary}: {source}")]
    Iptables { binary: &'static str, source: std::io::Error },
    /// An iptables command (all its words) failed: its stderr.
    #[error("{command}: {stderr}")]
    Rule { command: String, stderr: String },
    #[error("setting {path} to {value}: {source}")]
    Sysctl { path: &'static str, value: String, source: std::io::Error },
    /// `apply` failed and removed what it had added.
    #[error("{0}; the rules this run added were removed and route_localnet was left as it was")]
    RolledBack(Box<AgentError>),
}
pub use supervisor::{AgentPublisher, AgentState, HealthPolicy, Supervisor};
