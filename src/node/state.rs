//! What the daemon knows about the node, shared between its loops and read by the health
//! endpoint.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::agent::SharedAgent;
use crate::disk::DiskSample;
use crate::drain::{DrainStatus, Phase};
use crate::gc::GcReport;
use crate::node::conditions::{Condition, ConditionBook};
use crate::node::status::{GcTotals, OffenderStatus};

#[derive(Debug, Clone)]
pub struct NodeState {
    pub data_root: PathBuf,
    pub sample: Option<DiskSample>,
    /// Bytes per second, negative while freeing.
    pub fill_rate: Option<f64>,
    pub time_to_full: Option<Duration>,
    pub gc_running: bool,
    pub gc_runs: u64,
    pub last_gc: Option<GcReport>,
    pub gc_totals: GcTotals,
    pub pressure: Phase,
    pub pressure_reason: String,
    pub offender: OffenderStatus,
    pub drain: DrainStatus,
    /// The agent supervisor's view, shared with it.
    pub agent: SharedAgent,
    /// When the main (disk) loop last ticked: liveness for /healthz and the watchdog.
    pub last_tick: Option<Instant>,
    pub docker_error: Option<String>,
    /// Set when a SIGHUP brought invalid settings (the old ones stay in force).
    pub config_error: Option<String>,
    pub conditions: Vec<Condition>,
    pub condition_book: ConditionBook,
    /// gc-start in force (a fraction), for InodePressure.
    pub gc_start: f64,
}

impl NodeState {
    /// Evaluates the conditions from the current figures, so /status never contradicts itself.
    pub fn refresh_conditions(&mut self, now: std::time::SystemTime) {
        let agent = self.agent.lock().clone();
        let observed = crate::node::conditions::evaluate(&crate::node::conditions::Inputs {
            pressure: self.pressure,
            pressure_reason: &self.pressure_reason,
            sample: self.sample,
            gc_start: self.gc_start,
            docker_error: self.docker_error.as_deref(),
            agent: &agent,
            drain: &self.drain,
            config_error: self.config_error.as_deref(),
        });
        self.conditions = self.condition_book.update(observed, now);
    }
}

/// The node model shared by the daemon's loops (writers) and the health endpoint (reader),
/// with a signal for the first disk check, which READY and the wait for Docker follow.
#[derive(Debug, Clone)]
pub struct SharedState {
    state: Arc<Mutex<NodeState>>,
    first_check: Arc<watch::Sender<bool>>,
}

impl SharedState {
    pub fn new(data_root: PathBuf) -> Self {
        let state = Arc::new(Mutex::new(NodeState {
            data_root,
            sample: None,
            fill_rate: None,
            time_to_full: None,
            gc_running: false,
            gc_runs: 0,
            last_gc: None,
            gc_totals: GcTotals::default(),
            pressure: Phase::Normal,
            pressure_reason: String::new(),
            offender: OffenderStatus::default(),
            drain: DrainStatus::default(),
            agent: SharedAgent::default(),
            last_tick: None,
            docker_error: None,
            config_error: None,
            conditions: Vec::new(),
            condition_book: ConditionBook::default(),
            gc_start: 1.0,
        }));
        SharedState { state, first_check: Arc::new(watch::channel(false).0) }
    }

    pub fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The disk loop measured for the first time (the model now has figures).
    pub fn mark_first_check(&self) {
        self.first_check.send_if_modified(|done| !std::mem::replace(done, true));
    }

    /// Becomes true once the disk loop has measured.
    pub fn first_check(&self) -> watch::Receiver<bool> {
        self.first_check.subscribe()
    }

    /// Changes the state and derives the conditions again: how the daemon's loops write, so
    /// that readers (the health endpoint) only ever take a consistent snapshot.
    pub fn update<T>(&self, change: impl FnOnce(&mut NodeState) -> T) -> T {
        let mut state = self.lock();
        let result = change(&mut state);
        state.refresh_conditions(std::time::SystemTime::now());
        result
    }
}
