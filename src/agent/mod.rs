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
pub use supervisor::{AgentPublisher, AgentState, HealthPolicy, Supervisor};
