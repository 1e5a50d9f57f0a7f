//! The disk loop's offender side: while Docker's disk is past gc-start, sample container
//! footprints (beside the loop, like GC), name the fastest writer, and with
//! `[offender] action = "stop-task"` ask for its task to be stopped (the drain loop holds the
//! ECS client) and hold the drain while that takes effect. The decisions are
//! `offender::growth` and `offender::action`; this keeps their inputs and carries out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::disk::DiskSample;
use crate::node::SharedState;
use crate::offender::sampler::Sampler;
use crate::offender::{Footprint, action, growth};
use crate::settings::OffenderAction;

/// Footprints are sampled this often in an episode's first minute (each sample walks the
/// containers' directories), then every 10 s while it lasts.
const SAMPLE_EVERY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(10));
const SAMPLE_FAST_FOR: Duration = Duration::from_secs(60);
/// Growth is measured against the oldest sample within this window: writes come in bursts,
/// and one interval alone would name whoever happened to burst last.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// With stop-task, a drain waits at most this long after the disk passed gc-start for the
/// first offender verdict (two samples are needed for a rate).
const FIRST_VERDICT_WAIT: Duration = Duration::from_secs(10);
/// After asking for a stop, the drain waits this long for the stop and GC to relieve the disk.
const STOP_HOLD: Duration = Duration::from_secs(30);
/// The container of a stopped task is removed whatever its age for this long after the stop.
const REMOVE_STOPPED_FOR: Duration = Duration::from_secs(600);

/// A task to stop, from the disk loop to the drain loop (which has the ECS client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub task_arn: String,
    pub reason: String,
}

type Sampled = (Sampler, Result<Vec<Footprint>, bollard::errors::Error>);

pub struct OffenderWatch {
    sampler: Option<Sampler>,
    sampling: Option<JoinHandle<Sampled>>,
    /// Samples of this episode within the rate window, oldest first.
    history: VecDeque<(std::time::Instant, Vec<Footprint>)>,
    action: OffenderAction,
    /// When this episode (the disk past gc-start) began; `None` while normal.
    episode: Option<Instant>,
    /// A verdict on the top writer was reached in this episode.
    verdict_reached: bool,
    stopped_families: BTreeMap<String, std::time::Instant>,
    stopped_containers: BTreeMap<String, Instant>,
    hold_until: Option<Instant>,
    stop: Option<StopRequest>,
    summary: Option<String>,
}

impl OffenderWatch {
    pub fn new(docker: Docker, data_root: PathBuf, action: OffenderAction) -> Self {
        OffenderWatch {
            sampler: Some(Sampler::new(docker, data_root)),
            sampling: None,
            history: VecDeque::new(),
            action,
            episode: None,
            verdict_reached: false,
            stopped_families: BTreeMap::new(),
            stopped_containers: BTreeMap::new(),
            hold_until: None,
            stop: None,
            summary: None,
        }
    }

    /// One disk-loop tick. `active`: under pressure (GC could not bring the disk under
    /// gc-start, or worse); only then are footprints sampled.
    /// `within` is drain-if-full-within.
    pub async fn tick(&mut self, active: bool, sample: &DiskSample, within: Duration, state: &SharedState) {
        let now = Instant::now();
        self.stopped_containers.retain(|_, at| now.duration_since(*at) < REMOVE_STOPPED_FOR);
        if !active {
            if self.episode.take().is_some() {
                self.history.clear();
                self.verdict_reached = false;
                self.summary = None;
                self.stop = None;
                state.update(|s| {
                    s.offender.top = None;
                    s.offender.left = None;
                });
            }
            return;
        }
        let episode = *self.episode.get_or_insert(now);
        if let Some(task) = self.sampling.take_if(|t| t.is_finished()) {
            match task.await {
                Ok((sampler, result)) => {
                    self.sampler = Some(sampler);
                    match result {
                        Ok(footprints) => self.judge(footprints, sample, within, state),
                        Err(error) => tracing::debug!(%error, "sampling container footprints failed"),
                    }
                }
                Err(error) => tracing::warn!(%error, "the footprint sampler failed"),
            }
        }
        let every = if now.duration_since(episode) < SAMPLE_FAST_FOR { SAMPLE_EVERY.0 } else { SAMPLE_EVERY.1 };
        let due = self.history.back().is_none_or(|(at, _)| at.elapsed() >= every);
        if due && let Some(mut sampler) = self.sampler.take() {
            self.sampling = Some(tokio::spawn(async move {
                let result = sampler.sample().await;
                (sampler, result)
            }));
        }
    }

    fn judge(&mut self, footprints: Vec<Footprint>, sample: &DiskSample, within: Duration, state: &SharedState) {
        let now = Instant::now();
        let sampled_at = std::time::Instant::now();
        tracing::debug!(
            containers = footprints.len(),
            bytes = footprints.iter().map(Footprint::bytes).sum::<u64>(),
            "sampled container footprints"
        );
        self.history.push_back((sampled_at, footprints));
        while self.history.len() > 2
            && self.history.front().is_some_and(|(at, _)| sampled_at.duration_since(*at) > RATE_WINDOW)
        {
            self.history.pop_front();
        }
        let ranked = growth::rank(self.history.make_contiguous());
        let Some(top) = ranked.into_iter().next() else { return };
        let summary = top.summary();
        let changed =
            state.lock().offender.top.as_ref().map(|t| &t.footprint.container_id) != Some(&top.footprint.container_id);
        if changed {
            tracing::warn!("{summary}");
        }
        self.summary = Some(summary);
        let mut left = None;
        if self.action == OffenderAction::StopTask {
            self.verdict_reached = true;
            let verdict =
                action::decide(&top, sample.available_bytes, within, &self.stopped_families, std::time::Instant::now());
            match verdict {
                action::Verdict::Stop { task_arn, family, reason } if self.stop.is_none() => {
                    tracing::warn!(task = %task_arn, %reason, "stopping the task that fills Docker's disk");
                    self.stopped_families.insert(family, std::time::Instant::now());
                    self.stopped_containers.insert(top.footprint.container_id.clone(), now);
                    self.hold_until = Some(now + STOP_HOLD);
                    self.stop = Some(StopRequest { task_arn, reason });
                }
                action::Verdict::Stop { .. } => {}
                action::Verdict::Leave(why) => left = Some(why),
            }
        }
        state.update(|s| {
            s.offender.top = Some(top);
            s.offender.left = left;
        });
    }

    /// The drain waits: stop-task is on and the first verdict is still coming, or a stop was
    /// just asked for and has not had its chance to relieve the disk.
    pub fn holds_drain(&self) -> bool {
        if self.action != OffenderAction::StopTask {
            return false;
        }
        let now = Instant::now();
        let awaiting_verdict =
            !self.verdict_reached && self.episode.is_some_and(|at| now.duration_since(at) < FIRST_VERDICT_WAIT);
        awaiting_verdict || self.hold_until.is_some_and(|until| now < until)
    }

    /// A task was stopped since the disk passed gc-start.
    pub fn stopped_this_episode(&self) -> bool {
        self.stop.is_some()
    }

    /// Containers GC removes whatever their age: those of tasks stopped here.
    pub fn remove_now(&self) -> BTreeSet<String> {
        self.stopped_containers.keys().cloned().collect()
    }

    /// A stop was asked for within the hold: GC should try again each tick rather than wait
    /// out a shortfall, since the stopped container is about to become removable.
    pub fn awaiting_stop(&self) -> bool {
        self.hold_until.is_some_and(|until| Instant::now() < until)
    }

    pub fn summary(&self) -> Option<String> {
        self.summary.clone()
    }

    pub fn stop_request(&self) -> Option<StopRequest> {
        self.stop.clone()
    }
}
