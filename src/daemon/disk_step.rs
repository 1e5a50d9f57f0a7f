//! What the disk loop decides, as a pure step: each observation (a statvfs sample, a GC run
//! that ended, a footprint sample, the answer to a stop) goes in with the settings and the
//! time, and the commands to carry out come back (start GC, sample footprints, stop a task).
//! Its memory is the fill rate, the pressure machine, GC's schedule and totals, and the
//! offender episode (while the disk is in trouble: who writes fastest, whether to stop it, the
//! hold on the drain while a stop takes effect). The disk loop (`disk_loop`) only measures,
//! executes and publishes; the fleet simulation drives the same step with a model disk.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::disk::{DiskSample, FillRate, human_bytes};
use crate::drain::{Observation, Phase, PressureMachine};
use crate::gc::GcReport;
use crate::node::snapshot::{DiskOutlook, DiskSnapshot};
use crate::node::status::{GcStatus, GcTotals, OffenderStatus, StoppedTask};
use crate::offender::{Footprint, Offender, action, growth};
use crate::settings::{DiskSettings, OffenderAction};

/// The fill rate is measured over this window.
pub const FILL_RATE_WINDOW: Duration = Duration::from_secs(10);
/// After a GC run that could not reach gc-stop, wait this long before the next (unless usage
/// rises further), so an unreclaimable disk does not turn into a busy loop of listings.
const RETRY_AFTER_SHORTFALL: Duration = Duration::from_secs(10);
/// Checked this many times more often while the disk would reach drain-at within ten checks.
const FAST_CHECKS: u32 = 4;

/// Footprints are sampled this often in an episode's first minute (each sample measures the
/// containers' directories), then every 10 s while it lasts; every half second while the disk
/// would be full within a minute.
const SAMPLE_EVERY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(10));
const SAMPLE_URGENT: Duration = Duration::from_millis(500);
const SAMPLE_FAST_FOR: Duration = Duration::from_secs(60);
/// Growth is measured against the oldest sample within this window: writes come in bursts,
/// and one interval alone would name whoever happened to burst last.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// With stop-task, a drain waits at most this long after trouble began for the first offender
/// verdict (two samples are needed for a rate)…
const FIRST_VERDICT_WAIT: Duration = Duration::from_secs(10);
/// …and this long after asking for a stop, for the stop and GC to relieve the disk…
const STOP_HOLD: Duration = Duration::from_secs(30);
/// …but never while the disk would be full sooner than this (a verdict takes about a second
/// when sampling fast, a stop about as long): then it drains now, and the stop still goes out
/// (the offender first; the drain in time if the stop is not enough).
const URGENT_WITHIN: Duration = Duration::from_secs(5);
/// Footprints are sampled fast while the disk would be full within this.
const FAST_SAMPLING_WITHIN: Duration = Duration::from_secs(60);
/// The container of a stopped task is removed whatever its age for this long after the stop.
const REMOVE_STOPPED_FOR: Duration = Duration::from_secs(600);

/// A task to stop, from the disk loop to the drain loop (which has the ECS client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub task_arn: String,
    pub reason: String,
}

/// What the drain loop answers about a stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopAnswer {
    Stopped,
    /// ECS does not list the task on this instance (a label anyone could set): left running.
    NotPlacedHere,
    Failed(String),
}

/// What to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskCommand {
    /// Garbage-collect down to gc-stop; finished containers in `remove_now` go whatever age.
    StartGc {
        remove_now: BTreeSet<String>,
    },
    SampleFootprints,
    StopTask(StopRequest),
}

/// The offender episode: from the disk's trouble to its end.
#[derive(Debug, Clone, Default)]
struct Episode {
    started: Option<Instant>,
    history: VecDeque<(Instant, Vec<Footprint>)>,
    sampling_since: Option<Instant>,
    verdict_reached: bool,
    hold_until: Option<Instant>,
    /// The stop asked for in this episode (with the family and container it was for), and
    /// whether the answer is still awaited.
    stop: Option<(StopRequest, String, String)>,
    awaiting_answer: bool,
    summary: Option<String>,
}

pub struct DiskStep {
    data_root: PathBuf,
    action: OffenderAction,
    rate: FillRate,
    pressure: PressureMachine,
    sample: Option<DiskSample>,
    used_next: f64,
    gc_running: bool,
    gc_runs: u64,
    shortfall: Option<(Instant, f64)>,
    last_gc: Option<GcReport>,
    gc_totals: GcTotals,
    gc_start: f64,
    episode: Episode,
    /// Task families stopped here, and when: not stopped here again within the cooldown.
    stopped_families: BTreeMap<String, Instant>,
    stopped_containers: BTreeMap<String, Instant>,
    /// Task ARNs from container labels that ECS does not list here: never asked for again.
    not_here: BTreeSet<String>,
    offender: OffenderStatus,
}

impl DiskStep {
    pub fn new(data_root: PathBuf, action: OffenderAction, now: Instant) -> Self {
        DiskStep {
            data_root,
            action,
            rate: FillRate::new(FILL_RATE_WINDOW),
            pressure: PressureMachine::new(now),
            sample: None,
            used_next: 0.0,
            gc_running: false,
            gc_runs: 0,
            shortfall: None,
            last_gc: None,
            gc_totals: GcTotals::default(),
            gc_start: 1.0,
            episode: Episode::default(),
            stopped_families: BTreeMap::new(),
            stopped_containers: BTreeMap::new(),
            not_here: BTreeSet::new(),
            offender: OffenderStatus::default(),
        }
    }

    /// Docker said where its data lives: measure there from now on.
    pub fn set_data_root(&mut self, data_root: PathBuf) {
        if data_root != self.data_root {
            self.data_root = data_root;
            self.rate = FillRate::new(FILL_RATE_WINDOW);
        }
    }

    /// When to check next: every check interval, or a few times as often while the disk would
    /// reach drain-at within ten intervals (statvfs is one syscall; a 1 GiB disk at 200 MB/s
    /// moves 19% an interval).
    pub fn next_check_in(&self, s: &DiskSettings) -> Duration {
        let interval = s.check_interval;
        let Some(sample) = self.sample else { return interval };
        let per_interval = (self.used_next - used(&sample)).max(0.0);
        let to_drain_at = s.drain_at.fraction() - used(&sample);
        if per_interval > 0.0 && to_drain_at < per_interval * 10.0 { interval / FAST_CHECKS } else { interval }
    }

    /// One statvfs sample.
    pub fn on_sample(&mut self, sample: DiskSample, s: &DiskSettings, now: Instant) -> Vec<DiskCommand> {
        let mut commands = Vec::new();
        self.rate.push(sample);
        self.sample = Some(sample);
        self.gc_start = s.gc_start.fraction();
        // The next check is predicted from the recent rate: a burst that ended (an image pulled,
        // a file written at once) does not keep moving thresholds a check ahead.
        let rate = self.rate.recent_bytes_per_second().unwrap_or(0.0).max(0.0);
        let ahead_bytes = rate * s.check_interval.as_secs_f64();
        self.used_next =
            used(&sample) + if sample.total_bytes == 0 { 0.0 } else { ahead_bytes / sample.total_bytes as f64 };
        let ahead = used(&sample).max(self.used_next);
        let retrying_soon = self.shortfall.is_some_and(|(at, left)| {
            now.duration_since(at) < RETRY_AFTER_SHORTFALL && sample.used_fraction() <= left + 0.01
        });
        let awaiting_stop = self.episode.hold_until.is_some_and(|until| now < until);
        if ahead >= self.gc_start && !self.gc_running && (!retrying_soon || awaiting_stop) {
            tracing::info!(
                used = format!("{:.1}%", sample.used_fraction() * 100.0),
                inodes = format!("{:.1}%", sample.used_inode_fraction() * 100.0),
                gc_start = %s.gc_start,
                "Docker's disk is past gc-start; garbage-collecting"
            );
            self.stopped_containers.retain(|_, at| now.duration_since(*at) < REMOVE_STOPPED_FOR);
            self.gc_running = true;
            commands.push(DiskCommand::StartGc { remove_now: self.stopped_containers.keys().cloned().collect() });
        }
        let observation = Observation {
            at: sample.at,
            used: used(&sample),
            used_next: self.used_next,
            time_to_full: self.rate.time_to_full(),
            gc_runs_finished: self.gc_runs,
            gc_running: self.gc_running,
            source_stopped: self.episode.stop.is_some() && !self.episode.awaiting_answer,
        };
        let before = self.pressure.phase();
        let phase = self.pressure.observe(&observation, s);
        if phase != before {
            match phase {
                Phase::Pressure => {
                    tracing::warn!(reason = self.pressure.reason(), "disk pressure: GC cannot hold Docker's disk")
                }
                Phase::Recovering => tracing::info!("disk usage is below recover-below; holding before recovery"),
                Phase::Normal if before == Phase::Recovering => tracing::info!("disk recovered"),
                _ => {}
            }
        }
        // The offender is watched while trouble lasts, from the observation that brings it.
        commands.extend(self.watch_offender(now));
        commands
    }

    /// A GC run ended (or failed, or was abandoned at its timeout).
    pub fn on_gc_finished(&mut self, result: Result<GcReport, String>, now: Instant, wall: SystemTime) {
        self.gc_running = false;
        self.gc_runs += 1;
        match result {
            Ok(report) => {
                self.rate.reclaimed(report.bytes_freed.max(0) as u64);
                let line = format!(
                    "freed {} ({} images, {} containers) in {:.1}s; used {:.1}% → {:.1}%",
                    human_bytes(report.bytes_freed.max(0) as u64),
                    report.images_removed,
                    report.containers_removed,
                    report.duration_seconds,
                    report.used_before * 100.0,
                    report.used_after * 100.0
                );
                if report.reached_target {
                    tracing::info!("gc done: {line}");
                    self.shortfall = None;
                } else {
                    let blocked: Vec<String> = report.kept.iter().map(|(name, why)| format!("{name}: {why}")).collect();
                    tracing::warn!(kept = ?blocked, "gc could not reach gc-stop: {line}");
                    self.shortfall = Some((now, report.used_after));
                }
                self.gc_totals.add(&report, wall);
                self.last_gc = Some(report);
            }
            Err(error) => {
                self.gc_totals.last_run_at = Some(wall);
                tracing::error!(%error, "gc failed");
                self.shortfall = Some((now, self.sample.map_or(1.0, |s| s.used_fraction())));
            }
        }
    }

    /// The offender side, at each check: start or end the episode, sample when due.
    fn watch_offender(&mut self, now: Instant) -> Option<DiskCommand> {
        if !self.pressure.trouble() {
            if self.episode.started.is_some() && !self.episode.awaiting_answer {
                self.episode = Episode::default();
                self.offender.top = None;
                self.offender.left = None;
            }
            return None;
        }
        let started = *self.episode.started.get_or_insert(now);
        if self.episode.sampling_since.is_some() {
            return None;
        }
        let every = if self.rate.time_to_full().is_some_and(|t| t < FAST_SAMPLING_WITHIN) {
            SAMPLE_URGENT
        } else if now.duration_since(started) < SAMPLE_FAST_FOR {
            SAMPLE_EVERY.0
        } else {
            SAMPLE_EVERY.1
        };
        let due = self.episode.history.back().is_none_or(|(at, _)| now.duration_since(*at) >= every);
        due.then(|| {
            self.episode.sampling_since = Some(now);
            DiskCommand::SampleFootprints
        })
    }

    /// What the sample that just came back cost, for /status and /metrics.
    pub fn on_sample_cost(&mut self, cost: crate::offender::SampleCost) {
        self.offender.last_sample = Some(cost);
    }

    /// The footprints of every running container, sampled at `now`.
    pub fn on_footprints(
        &mut self,
        result: Result<Vec<Footprint>, String>,
        s: &DiskSettings,
        now: Instant,
    ) -> Vec<DiskCommand> {
        self.episode.sampling_since = None;
        let footprints = match result {
            Ok(footprints) => footprints,
            Err(error) => {
                tracing::debug!(%error, "sampling container footprints failed");
                return Vec::new();
            }
        };
        if self.episode.started.is_none() {
            return Vec::new();
        }
        tracing::debug!(
            containers = footprints.len(),
            bytes = footprints.iter().map(Footprint::bytes).sum::<u64>(),
            "sampled container footprints"
        );
        self.episode.history.push_back((now, footprints));
        while self.episode.history.len() > 2
            && self.episode.history.front().is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.episode.history.pop_front();
        }
        let ranked = growth::rank(self.episode.history.make_contiguous());
        let Some(top) = ranked.into_iter().next() else { return Vec::new() };
        let summary = top.summary();
        if self.offender.top.as_ref().map(|t| &t.footprint.container_id) != Some(&top.footprint.container_id) {
            tracing::warn!("{summary}");
        }
        self.episode.summary = Some(summary);
        let mut commands = Vec::new();
        let mut left = None;
        if self.action == OffenderAction::StopTask {
            self.episode.verdict_reached = true;
            let available = self.sample.map_or(0, |s| s.available_bytes);
            match action::decide(&top, available, s.drain_if_full_within, &self.stopped_families, now) {
                action::Verdict::Stop { task_arn, .. } if self.not_here.contains(&task_arn) => {
                    left = Some(format!(
                        "task {task_arn} is not one ECS lists on this container instance (its label may be forged); \
                         not stopped"
                    ));
                }
                action::Verdict::Stop { task_arn, family, reason } if self.episode.stop.is_none() => {
                    tracing::warn!(task = %task_arn, %reason, "stopping the task that fills Docker's disk");
                    self.stopped_families.insert(family.clone(), now);
                    self.stopped_containers.insert(top.footprint.container_id.clone(), now);
                    self.episode.hold_until = Some(now + STOP_HOLD);
                    let request = StopRequest { task_arn, reason };
                    self.episode.stop = Some((request.clone(), family, top.footprint.container_id.clone()));
                    self.episode.awaiting_answer = true;
                    commands.push(DiskCommand::StopTask(request));
                }
                action::Verdict::Stop { .. } => {}
                action::Verdict::Leave(why) => left = Some(why),
            }
        }
        self.offender.top = Some(top);
        self.offender.left = left;
        commands
    }

    /// What the drain loop made of a stop.
    pub fn on_stop_answer(&mut self, request: &StopRequest, answer: StopAnswer, wall: SystemTime) {
        let asked = self.episode.stop.as_ref().filter(|(asked, _, _)| asked == request).cloned();
        if asked.is_some() {
            self.episode.awaiting_answer = false;
        }
        let undo = |step: &mut DiskStep| {
            if let Some((_, family, container)) = &asked {
                step.stopped_families.remove(family);
                step.stopped_containers.remove(container);
            }
            step.episode.stop = None;
            step.episode.hold_until = None;
        };
        match answer {
            StopAnswer::Stopped => {
                tracing::warn!(task = %request.task_arn, reason = %request.reason, "stopped the task filling Docker's disk");
                self.offender.last_stop =
                    Some(StoppedTask { task_arn: request.task_arn.clone(), reason: request.reason.clone(), at: wall });
                self.offender.stops += 1;
            }
            StopAnswer::NotPlacedHere => {
                let why = format!(
                    "task {} is not one ECS lists on this container instance (its label may be forged); not stopped",
                    request.task_arn
                );
                tracing::warn!("{why}");
                undo(self);
                self.offender.left = Some(why);
                self.not_here.insert(request.task_arn.clone());
            }
            StopAnswer::Failed(error) => {
                // Asked again at the next verdict.
                tracing::warn!(%error, task = %request.task_arn, "stopping the task failed; retrying");
                undo(self);
            }
        }
    }

    /// The disk would be full within a few seconds: no time to wait for a stop.
    fn urgent(&self) -> bool {
        self.rate.time_to_full().is_some_and(|t| t < URGENT_WITHIN)
    }

    /// The drain waits: stop-task is on and the first verdict is still coming, or a stop was
    /// asked for and has not had its chance to relieve the disk; never while urgent.
    fn holds_drain(&self, now: Instant) -> bool {
        if self.action != OffenderAction::StopTask || self.urgent() {
            return false;
        }
        let e = &self.episode;
        let awaiting_verdict =
            !e.verdict_reached && e.started.is_some_and(|at| now.duration_since(at) < FIRST_VERDICT_WAIT);
        awaiting_verdict || e.hold_until.is_some_and(|until| now < until)
    }

    /// What the drain loop acts on.
    pub fn outlook(&self, now: Instant) -> DiskOutlook {
        let reason = self.pressure.reason();
        let detail = match &self.episode.summary {
            Some(summary) if !reason.is_empty() => format!("{reason}; {summary}"),
            Some(summary) => summary.clone(),
            None => reason.to_string(),
        };
        DiskOutlook {
            must_drain: self.pressure.wants_drain(),
            hold: self.holds_drain(now),
            trouble: self.pressure.trouble(),
            time_to_full: self.rate.time_to_full(),
            detail,
        }
    }

    pub fn snapshot(&self, now: Instant) -> DiskSnapshot {
        DiskSnapshot {
            data_root: self.data_root.clone(),
            last_tick: Some(now),
            sample: self.sample,
            fill_rate: self.rate.bytes_per_second(),
            time_to_full: self.rate.time_to_full(),
            phase: self.pressure.phase(),
            reason: self.pressure.reason().to_string(),
            gc_start: self.gc_start,
            gc: GcStatus {
                running: self.gc_running,
                runs: self.gc_runs,
                last: self.last_gc.clone(),
                totals: self.gc_totals.clone(),
            },
            offender: self.offender.clone(),
            outlook: self.outlook(now),
        }
    }

    /// The fastest writer, for tests and the simulation.
    pub fn top_writer(&self) -> Option<&Offender> {
        self.offender.top.as_ref()
    }
}

/// The larger of byte and inode usage.
fn used(sample: &DiskSample) -> f64 {
    sample.used_fraction().max(sample.used_inode_fraction())
}

#[cfg(test)]
mod tests;
