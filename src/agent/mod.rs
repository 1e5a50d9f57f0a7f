//! The ECS agent: `/etc/ecs/ecs.config`, the `ecs-agent` container as ecs-init creates it,
//! host network preparation, and supervision.

pub mod docker_side;
pub mod ecs_config;
pub mod exit_policy;
pub mod host_network;
pub mod spec;
pub mod supervisor;

pub use supervisor::{AgentState, HealthPolicy, SharedAgent, Supervisor};
