//! What the disk loop publishes after each check: the disk's figures, the pressure phase, GC's
//! and the offender's state, and the outlook the drain loop acts on. Plain data, cloned out.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::disk::DiskSample;
use crate::drain::Phase;
use crate::node::status::{GcStatus, OffenderStatus};

/// The disk side's view at one check.
#[derive(Debug, Clone)]
pub struct DiskSnapshot {
    /// Docker's data root as Docker reports it (what is measured).
    pub data_root: PathBuf,
    /// When the disk loop last ran a check (or, while Docker is not there yet, waited for it):
    /// liveness for /healthz and the watchdog.
    pub last_tick: Option<Instant>,
    pub sample: Option<DiskSample>,
    /// Bytes per second, negative while freeing.
    pub fill_rate: Option<f64>,
    pub time_to_full: Option<Duration>,
    pub phase: Phase,
    pub reason: String,
    /// gc-start in force (a fraction), for InodePressure.
    pub gc_start: f64,
    pub gc: GcStatus,
    pub offender: OffenderStatus,
    pub outlook: DiskOutlook,
}

impl DiskSnapshot {
    pub fn new(data_root: PathBuf) -> Self {
        DiskSnapshot {
            data_root,
            last_tick: None,
            sample: None,
            fill_rate: None,
            time_to_full: None,
            phase: Phase::Normal,
            reason: String::new(),
            gc_start: 1.0,
            gc: GcStatus::default(),
            offender: OffenderStatus::default(),
            outlook: DiskOutlook::default(),
        }
    }
}

/// What the disk wants of the drain loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskOutlook {
    /// Drain for disk pressure: GC cannot hold the disk.
    pub must_drain: bool,
    /// …but do not start that drain yet: the offender's stop is awaited and there is time for
    /// it (a drain already made stays).
    pub hold: bool,
    /// Trouble is coming: claim a place in the drain budget, and set the soft signal.
    pub trouble: bool,
    pub time_to_full: Option<Duration>,
    /// Why, with the fastest writer: for the drain's record and tag.
    pub detail: String,
}
