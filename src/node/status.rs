//! The `/status` document: conditions first, then the figures behind them. A documented
//! example lives in `docs/status-example.json`.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use crate::agent::AgentState;
use crate::drain::{DrainStatus, Phase};
use crate::gc::GcReport;
use crate::node::NodeState;

/// This document's layout; raised when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 2;

/// Serialized by the health endpoint, deserialized by `nodewarden status`: one schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDocument {
    pub schema_version: u32,
    pub version: String,
    #[serde(with = "rfc3339")]
    pub generated_at: SystemTime,
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
    /// Since the daemon started.
    #[serde(flatten)]
    pub totals: GcTotals,
}

/// What GC has done since the daemon started: the counters /metrics exposes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GcTotals {
    pub freed_bytes_total: u64,
    pub images_removed_total: u64,
    pub containers_removed_total: u64,
    /// When the last run ended (finished, failed or abandoned).
    #[serde(default, with = "rfc3339_option")]
    pub last_run_at: Option<SystemTime>,
    /// Each finished run's duration, for the histogram (not in /status).
    #[serde(skip)]
    pub durations_seconds: Vec<f64>,
}

impl GcTotals {
    /// Runs kept for the histogram: GC runs minutes apart at most, so this is days of them.
    const DURATIONS_KEPT: usize = 10_000;

    pub fn add(&mut self, report: &GcReport) {
        self.freed_bytes_total += report.bytes_freed.max(0) as u64;
        self.images_removed_total += u64::from(report.images_removed);
        self.containers_removed_total += u64::from(report.containers_removed);
        if self.durations_seconds.len() >= Self::DURATIONS_KEPT {
            self.durations_seconds.remove(0);
        }
        self.durations_seconds.push(report.duration_seconds);
        self.last_run_at = Some(SystemTime::now());
    }
}

/// Times as RFC 3339 (UTC, seconds), as operators and `jq` read them.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_seconds(*time).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

pub mod rfc3339_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        time.map(|t| humantime::format_rfc3339_seconds(t).to_string()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => humantime::parse_rfc3339_weak(&text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}"))),
        }
    }
}

pub fn document(state: &NodeState, alive: bool, ready: bool) -> StatusDocument {
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
        schema_version: SCHEMA_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
        generated_at: SystemTime::now(),
        alive,
        ready,
        conditions: state.conditions.clone(),
        disk,
        pressure: PressureStatus { phase: state.pressure, reason: state.pressure_reason.clone() },
        offender: state.offender.clone(),
        gc: GcStatus {
            running: state.gc_running,
            runs: state.gc_runs,
            last: state.last_gc.clone(),
            totals: state.gc_totals.clone(),
        },
        drain: state.drain.clone(),
        agent: state.agent.lock().clone(),
    }
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
