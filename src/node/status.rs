//! The `/status` document: conditions first, then the figures behind them. A documented
//! example lives in `docs/status-example.json`.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::conditions::Condition;
use super::snapshot::DiskSnapshot;
use crate::agent::AgentState;
use crate::drain::{DrainStatus, Phase};
use crate::gc::GcReport;

/// This document's layout; raised when a field changes meaning or goes away. 3: every time is
/// RFC 3339 (2 wrote some as Unix seconds); the drain's claim as written.
pub const SCHEMA_VERSION: u32 = 3;

/// Serialized by the health endpoint, deserialized by `nodewarden status`: one schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDocument {
    pub schema_version: u32,
    pub version: String,
    #[serde(with = "crate::time::rfc3339")]
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
    /// What the last footprint sample cost (samples are taken while past gc-start).
    #[serde(default)]
    pub last_sample: Option<crate::offender::SampleCost>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoppedTask {
    pub task_arn: String,
    pub reason: String,
    #[serde(with = "crate::time::rfc3339")]
    pub at: std::time::SystemTime,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    #[serde(default, with = "crate::time::rfc3339::option")]
    pub last_run_at: Option<SystemTime>,
    /// Each finished run's duration, for the histogram (not in /status).
    #[serde(skip)]
    pub durations_seconds: Vec<f64>,
}

impl GcTotals {
    /// Runs kept for the histogram: GC runs minutes apart at most, so this is days of them.
    const DURATIONS_KEPT: usize = 10_000;

    pub fn add(&mut self, report: &GcReport, now: SystemTime) {
        self.freed_bytes_total += report.bytes_freed.max(0) as u64;
        self.images_removed_total += u64::from(report.images_removed);
        self.containers_removed_total += u64::from(report.containers_removed);
        if self.durations_seconds.len() >= Self::DURATIONS_KEPT {
            self.durations_seconds.remove(0);
        }
        self.durations_seconds.push(report.duration_seconds);
        self.last_run_at = Some(now);
    }
}

/// What the status loop publishes and the health endpoint reads.
#[derive(Debug, Clone)]
pub struct Board {
    /// The document; `alive`, `ready` and `generated_at` are set by the reader.
    pub document: StatusDocument,
    /// When the disk loop last ticked.
    pub last_tick: Option<std::time::Instant>,
    pub docker_error: Option<String>,
    /// The disk has been measured and a STATUS line said so: READY may follow.
    pub checked: bool,
}

/// What the status loop combines into a document: each loop's latest snapshot.
pub struct Parts<'a> {
    pub disk: &'a DiskSnapshot,
    pub drain: &'a DrainStatus,
    pub agent: &'a AgentState,
    pub conditions: Vec<Condition>,
}

/// The document, with `alive` and `ready` as the caller judges them now.
pub fn document(parts: Parts<'_>, alive: bool, ready: bool) -> StatusDocument {
    let d = parts.disk;
    let disk = d.sample.map(|s| DiskStatus {
        path: d.data_root.clone(),
        total_bytes: s.total_bytes,
        used_bytes: s.used_bytes(),
        available_bytes: s.available_bytes,
        used_percent: round1(s.used_fraction() * 100.0),
        inodes_total: s.total_inodes,
        inodes_used: s.used_inodes(),
        inodes_used_percent: round1(s.used_inode_fraction() * 100.0),
        fill_rate_bytes_per_second: d.fill_rate.map(|r| r.round()),
        time_to_full_seconds: d.time_to_full.map(|t| t.as_secs_f64().round()),
    });
    StatusDocument {
        schema_version: SCHEMA_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
        generated_at: SystemTime::now(),
        alive,
        ready,
        conditions: parts.conditions,
        disk,
        pressure: PressureStatus { phase: d.phase, reason: d.reason.clone() },
        offender: d.offender.clone(),
        gc: d.gc.clone(),
        drain: parts.drain.clone(),
        agent: parts.agent.clone(),
    }
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
