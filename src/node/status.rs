//! The `/status` document: conditions first, then the figures behind them. A documented
//! example lives in `docs/status-example.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use crate::agent::AgentState;
use crate::drain::{DrainStatus, Phase};
use crate::gc::GcReport;
use crate::node::NodeState;

/// Serialized by the health endpoint, deserialized by `nodewarden status`: one schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDocument {
    pub version: String,
    /// The main loop ticked recently.
    pub alive: bool,
    /// Setup finished and the first disk check ran.
    pub ready: bool,
    pub conditions: Vec<Condition>,
    pub disk: Option<DiskStatus>,
    pub pressure: PressureStatus,
    /// Which container fills the disk (sampled while past gc-start), and what was done.
    #[serde(default)]
    pub offender: OffenderStatus,
    pub gc: GcStatus,
    pub drain: DrainStatus,
    pub agent: AgentState,
    pub host: HostStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DiskStatus {
    pub path: PathBuf,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub used_percent: f64,
    pub inodes_total: u64,
    pub inodes_used: u64,
    pub inodes_used_percent: f64,
    pub fill_rate_bytes_per_second: Option<f64>,
    pub time_to_full_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PressureStatus {
    pub phase: Phase,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OffenderStatus {
    /// The fastest-growing container at the last sample; kept until the disk is back to normal.
    pub top: Option<crate::offender::Offender>,
    /// The last task nodewarden stopped for filling the disk.
    pub last_stop: Option<StoppedTask>,
    /// Why the top writer was not stopped (with `[offender] action = "stop-task"`).
    pub left: Option<String>,
    /// Tasks stopped since start.
    pub stops: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoppedTask {
    pub task_arn: String,
    pub reason: String,
    #[serde(with = "crate::gc::inventory::unix_seconds")]
    pub at: std::time::SystemTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcStatus {
    pub running: bool,
    pub runs: u64,
    pub last: Option<GcReport>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostStatus {
    pub cpu_percent: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
}

pub fn document(state: &NodeState, alive: bool, ready: bool, host: HostStatus) -> StatusDocument {
    let disk = state.sample.map(|s| DiskStatus {
        path: state.data_root.clone(),
        total_bytes: s.total_bytes,
        used_bytes: s.used_bytes(),
        available_bytes: s.available_bytes,
        used_percent: round1(s.used_fraction() * 100.0),
        inodes_total: s.total_inodes,
        inodes_used: s.used_inodes(),
        inodes_used_percent: round1(s.used_inode_fraction() * 100.0),
        fill_rate_bytes_per_second: state.fill_rate.map(|r| r.round()),
        time_to_full_seconds: state.time_to_full.map(|t| t.as_secs_f64().round()),
    });
    StatusDocument {
        version: env!("CARGO_PKG_VERSION").to_string(),
        alive,
        ready,
        conditions: state.conditions.clone(),
        disk,
        pressure: PressureStatus { phase: state.pressure, reason: state.pressure_reason.clone() },
        offender: state.offender.clone(),
        gc: GcStatus { running: state.gc_running, runs: state.gc_runs, last: state.last_gc.clone() },
        drain: state.drain.clone(),
        agent: state.agent.lock().clone(),
        host,
    }
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
