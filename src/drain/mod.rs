//! Draining this container instance before its disk is exhausted, without starting a cascade
//! (a cluster-wide budget), and when the instance is going away (spot notice, Auto Scaling
//! termination). Pure parts: `pressure` (the disk's state machine), `policy` (drain or not),
//! `claims` (the budget's orders), `protocol` (the controller: which ECS call next). Edges:
//! `ecs_api` (AWS), `identity` (which container instance this is), `record` (the drain record
//! file), `termination` (IMDS notices, the lifecycle hook).

pub mod claims;
pub mod ecs_api;
pub mod identity;
pub mod policy;
pub mod pressure;
pub mod protocol;
pub mod record;
pub mod termination;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use ecs_api::{ApiError, EcsApi, Identity};
pub use identity::{IdentityError, resolve_identity};
pub use policy::{Decision, DrainReason, EcsStatus, Wants};
pub use pressure::{Observation, Phase, PressureMachine};
pub use protocol::DrainMachine;

/// What /status shows about draining.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DrainStatus {
    /// ECS's view: ACTIVE, DRAINING, or unknown before the first answer.
    pub ecs_status: Option<String>,
    pub draining: bool,
    /// Who drained: disk-pressure, spot-interruption, spot-stop, termination, operator.
    pub owner: Option<DrainReason>,
    pub detail: Option<String>,
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub since: Option<SystemTime>,
    /// Set while disk pressure wants a drain the cluster budget does not allow.
    pub withheld: Option<String>,
    /// This instance's claim on the drain budget, as written, while it holds one.
    #[serde(default)]
    pub claim: Option<String>,
    /// When this instance first claimed, while it holds a claim.
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub claimed_at: Option<SystemTime>,
    /// Whether the `nodewarden.disk-pressure` attribute is set on this instance.
    #[serde(default)]
    pub pressure_attribute: bool,
    /// Drains nodewarden made since start, by reason (`drains_total{reason}`).
    #[serde(default)]
    pub drains_total: BTreeMap<String, u64>,
    pub identity: Option<Identity>,
    pub last_error: Option<String>,
    /// Set while the drain record cannot be written (a full state disk): the drain goes on
    /// from memory, and the record is written once it can be.
    #[serde(default)]
    pub record_error: Option<String>,
}
