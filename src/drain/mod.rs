//! Draining this container instance before its disk is exhausted, without starting a cascade
//! (a cluster-wide budget), and when the instance is going away (spot notice, Auto Scaling
//! termination). Pure parts: `pressure` (the state machine) and `policy` (the decision).

pub mod claims;
pub mod controller;
pub mod ecs_api;
pub mod policy;
pub mod pressure;
pub mod record;
pub mod termination;

pub use controller::{DrainController, DrainStatus, resolve_identity};
pub use ecs_api::{EcsApi, Identity};
pub use policy::{Decision, DrainReason, EcsStatus, Wants};
pub use pressure::{Observation, Phase, PressureMachine};
