//! The disk pressure state machine, a pure function of samples, GC progress, settings and
//! time: Normal → Reclaiming (past gc-start, GC at work) → Pressure (reclaim cannot hold the
//! disk: still at or above drain-at after a GC run, or the fill rate says full within
//! drain-if-full-within) → Recovering (below recover-below) → Normal once it stayed there for
//! recover-after. Pressure is left only through recover-below, well under drain-at, so usage
//! wavering around one threshold cannot make the node drain and undrain in turn.
//!
//! Reclaim and the drain at drain-at are judged on the usage expected at the next check as well
//! as the usage now (a decision deferred to the next check acts on that one, and a writer at
//! 200 MB/s crosses a 1 GiB disk's last 15% within one 1 s interval), and so is trouble (the
//! early claim); a fast fill drains once the disk is past gc-start itself, so that GC, started
//! a check early, has gone first.

use std::time::{Duration, Instant};

use crate::settings::DiskSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Normal,
    Reclaiming,
    Pressure,
    Recovering,
}

/// What the machine reads at each check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub at: Instant,
    /// The larger of byte and inode usage, 0.0–1.0.
    pub used: f64,
    /// The usage expected at the next check at the current fill rate (`used` when not filling).
    pub used_next: f64,
    /// From the fill rate; `None` when not filling.
    pub time_to_full: Option<Duration>,
    /// GC runs finished since the disk went past gc-start (a finished run means reclaim was tried).
    pub gc_runs_finished: u64,
    /// A GC run is under way: reclaim has started.
    pub gc_running: bool,
    /// A task filling the disk was stopped at its source since the disk passed gc-start.
    pub source_stopped: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PressureMachine {
    phase: Phase,
    since: Instant,
    /// GC runs finished when Reclaiming began; a later count means reclaim was tried.
    gc_runs_at_reclaim: u64,
    reason: String,
    /// Still past gc-start after a GC run finished: GC is not keeping up.
    gc_behind: bool,
    /// At the last observation: past gc-start (now or by the next check) and full within
    /// drain-if-full-within.
    filling_fast: bool,
}

impl PressureMachine {
    pub fn new(now: Instant) -> Self {
        PressureMachine {
            phase: Phase::Normal,
            since: now,
            gc_runs_at_reclaim: 0,
            reason: String::new(),
            gc_behind: false,
            filling_fast: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn since(&self) -> Instant {
        self.since
    }

    /// Why the machine is in Pressure (or went there), for logs, tags and /status.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The early signal: past gc-start and a GC run did not bring it under, or already in
    /// Pressure. Services can steer away (the `nodewarden.disk-pressure` attribute) before
    /// anyone drains.
    pub fn gc_behind(&self) -> bool {
        self.gc_behind || self.wants_drain()
    }

    /// The instance should be drained for disk pressure (Pressure or still Recovering).
    pub fn wants_drain(&self) -> bool {
        matches!(self.phase, Phase::Pressure | Phase::Recovering)
    }

    /// Trouble is coming: GC is not keeping up, or the disk fills fast past gc-start. A node
    /// claims its place in the cluster's drain budget then, before it must drain.
    pub fn trouble(&self) -> bool {
        self.gc_behind() || self.filling_fast
    }

    fn enter(&mut self, phase: Phase, at: Instant) {
        if self.phase != phase {
            self.phase = phase;
            self.since = at;
        }
    }

    /// Advances on one observation; returns the phase after it.
    pub fn observe(&mut self, o: &Observation, s: &DiskSettings) -> Phase {
        let (gc_start, gc_stop) = (s.gc_start.fraction(), s.gc_stop.fraction());
        let (drain_at, recover_below) = (s.drain_at.fraction(), s.recover_below.fraction());
        let ahead = o.used.max(o.used_next);
        let full_soon = o.time_to_full.is_some_and(|t| t <= s.drain_if_full_within);
        // Trouble comes a check early (checks come faster then: see `DiskStep::next_check_in`).
        self.filling_fast = ahead >= gc_start && full_soon;
        let pct = |f: f64| format!("{:.1}%", f * 100.0);
        match self.phase {
            Phase::Normal | Phase::Reclaiming => {
                if self.phase == Phase::Normal && ahead >= gc_start {
                    self.gc_runs_at_reclaim = o.gc_runs_finished;
                    self.enter(Phase::Reclaiming, o.at);
                }
                let reclaim_tried = o.gc_runs_finished > self.gc_runs_at_reclaim;
                self.gc_behind = self.phase == Phase::Reclaiming && reclaim_tried && ahead >= gc_start;
                // GC always goes first: drain only once reclaim has started (or was tried), or,
                // a check early, once a finished run left the disk short and none is under way
                // (xfs reserves a growing file's blocks in jumps: the next check may be too late).
                let left_short = reclaim_tried && !o.gc_running && ahead >= gc_start;
                if full_soon && ((o.used >= gc_start && (o.gc_running || reclaim_tried)) || left_short) {
                    let ttf = o
                        .time_to_full
                        .map(|t| crate::settings::values::format_duration(Duration::from_secs(t.as_secs())));
                    self.reason = format!(
                        "disk {} used and filling: full in about {} (drain-if-full-within {})",
                        pct(o.used),
                        ttf.unwrap_or_default(),
                        crate::settings::values::format_duration(s.drain_if_full_within)
                    );
                    self.enter(Phase::Pressure, o.at);
                } else if ahead >= drain_at && reclaim_tried {
                    self.reason = if o.used >= drain_at {
                        format!("disk {} used after garbage collection (drain-at {})", pct(o.used), s.drain_at)
                    } else {
                        format!(
                            "disk {} used and {} by the next check, after garbage collection (drain-at {})",
                            pct(o.used),
                            pct(ahead.min(1.0)),
                            s.drain_at
                        )
                    };
                    self.enter(Phase::Pressure, o.at);
                } else if self.phase == Phase::Reclaiming && ahead < gc_stop {
                    self.enter(Phase::Normal, o.at);
                }
            }
            Phase::Pressure => {
                if o.used < recover_below {
                    self.enter(Phase::Recovering, o.at);
                } else if o.source_stopped && o.used < gc_stop && o.time_to_full.is_none() {
                    // The writer was stopped and its space reclaimed: the cause is gone, not
                    // wavering around a threshold, so no drain and no hold.
                    self.reason.clear();
                    self.gc_behind = false;
                    self.enter(Phase::Normal, o.at);
                }
            }
            Phase::Recovering => {
                if o.used >= recover_below {
                    self.enter(Phase::Pressure, o.at);
                } else if o.at.duration_since(self.since) >= s.recover_after {
                    self.enter(Phase::Normal, o.at);
                }
            }
        }
        self.phase
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::values::Percent;
    use std::str::FromStr;

    fn settings() -> DiskSettings {
        DiskSettings {
            check_interval: Duration::from_secs(1),
            gc_start: Percent::from_str("85%").unwrap(),
            gc_stop: Percent::from_str("80%").unwrap(),
            drain_at: Percent::from_str("92%").unwrap(),
            drain_if_full_within: Duration::from_secs(600),
            recover_below: Percent::from_str("75%").unwrap(),
            recover_after: Duration::from_secs(300),
        }
    }

    /// Feeds (second, used %, time-to-full seconds, GC runs finished) and returns the phase and
    /// the soft signal after each; a GC run is under way whenever usage is past gc-start (as
    /// the disk loop arranges).
    fn observe_all(steps: &[(u64, f64, Option<u64>, u64)]) -> Vec<(Phase, bool)> {
        let start = Instant::now();
        let mut machine = PressureMachine::new(start);
        steps
            .iter()
            .map(|&(second, used, ttf, runs)| {
                let o = Observation {
                    at: start + Duration::from_secs(second),
                    used: used / 100.0,
                    used_next: used / 100.0,
                    time_to_full: ttf.map(Duration::from_secs),
                    gc_runs_finished: runs,
                    gc_running: used >= 85.0,
                    source_stopped: false,
                };
                (machine.observe(&o, &settings()), machine.gc_behind())
            })
            .collect()
    }

    fn run(steps: &[(u64, f64, Option<u64>, u64)]) -> Vec<Phase> {
        observe_all(steps).into_iter().map(|(phase, _)| phase).collect()
    }

    use Phase::*;

    fn behind(steps: &[(u64, f64, Option<u64>, u64)]) -> Vec<bool> {
        observe_all(steps).into_iter().map(|(_, behind)| behind).collect()
    }

    #[test]
    fn the_soft_signal_comes_when_a_gc_run_leaves_the_disk_past_gc_start_and_goes_with_it() {
        // Past gc-start, GC at work: no signal yet. A run finished and it is still past: signal.
        // Under gc-start again (GC catching up): gone.
        assert_eq!(
            behind(&[(0, 86.0, None, 0), (1, 87.0, None, 1), (2, 84.0, None, 1), (3, 79.0, None, 2)]),
            [false, true, false, false]
        );
        // Pressure implies it.
        assert_eq!(behind(&[(0, 93.0, None, 0), (1, 93.0, None, 1)]), [false, true]);
    }

    #[test]
    fn gc_that_keeps_up_never_drains() {
        assert_eq!(
            run(&[(0, 50.0, None, 0), (1, 86.0, None, 0), (2, 88.0, None, 0), (3, 79.0, None, 1)]),
            [Normal, Reclaiming, Reclaiming, Normal]
        );
    }

    #[test]
    fn above_drain_at_drains_only_after_reclaim_was_tried() {
        assert_eq!(
            run(&[(0, 93.0, None, 0), (1, 93.0, None, 0), (2, 93.0, None, 1)]),
            [Reclaiming, Reclaiming, Pressure]
        );
    }

    #[test]
    fn a_fast_fill_past_gc_start_drains_at_once_but_a_fast_fill_below_it_does_not() {
        assert_eq!(run(&[(0, 40.0, Some(30), 0), (1, 86.0, Some(20), 0)]), [Normal, Pressure]);
        assert_eq!(run(&[(0, 86.0, Some(3600), 0)]), [Reclaiming], "a slow fill is left to GC");
    }

    #[test]
    fn thresholds_are_judged_on_the_next_check_too() {
        let start = Instant::now();
        let mut m = PressureMachine::new(start);
        // At 80%, about to be at 98% by the next check: reclaim starts now, trouble is said
        // (claim early), and the drain comes once the disk is past gc-start with GC at work.
        let o = Observation {
            at: start,
            used: 0.80,
            used_next: 0.98,
            time_to_full: Some(Duration::from_secs(2)),
            gc_runs_finished: 0,
            gc_running: true,
            source_stopped: false,
        };
        assert_eq!(m.observe(&o, &settings()), Reclaiming);
        assert!(m.trouble() && !m.wants_drain());
        let o = Observation { at: start + Duration::from_millis(250), used: 0.86, ..o };
        assert_eq!(m.observe(&o, &settings()), Pressure);
        // Past drain-at by the next check, after a GC run: drains before it gets there.
        let mut m = PressureMachine::new(start);
        let o = Observation { used: 0.88, used_next: 0.93, time_to_full: None, gc_runs_finished: 0, ..o };
        assert_eq!(m.observe(&o, &settings()), Reclaiming);
        let o = Observation { gc_runs_finished: 1, gc_running: false, ..o };
        assert_eq!(m.observe(&o, &settings()), Pressure);
        // A check early, once a finished run left the disk short and none is under way.
        let mut m = PressureMachine::new(start);
        let o = Observation {
            used: 0.84,
            used_next: 0.89,
            time_to_full: Some(Duration::from_secs(3)),
            gc_runs_finished: 0,
            gc_running: true,
            ..o
        };
        assert_eq!(m.observe(&o, &settings()), Reclaiming, "GC at work");
        let o = Observation { gc_runs_finished: 1, gc_running: false, ..o };
        assert_eq!(m.observe(&o, &settings()), Pressure, "GC left it short");
        // Not filling fast (full in an hour): only GC, once the next check would be past gc-start.
        let mut slow = PressureMachine::new(start);
        let o = Observation {
            used: 0.80,
            used_next: 0.86,
            time_to_full: Some(Duration::from_secs(3600)),
            gc_runs_finished: 0,
            gc_running: true,
            ..o
        };
        assert_eq!(slow.observe(&o, &settings()), Reclaiming);
        assert!(!slow.trouble());
    }

    #[test]
    fn a_fast_fill_waits_for_reclaim_to_start() {
        let start = Instant::now();
        let mut m = PressureMachine::new(start);
        let o = Observation {
            at: start,
            used: 0.86,
            used_next: 0.86,
            time_to_full: Some(Duration::from_secs(5)),
            gc_runs_finished: 0,
            gc_running: false,
            source_stopped: false,
        };
        assert_eq!(m.observe(&o, &settings()), Reclaiming, "GC first");
        let o = Observation { gc_running: true, at: start + Duration::from_secs(1), ..o };
        assert_eq!(m.observe(&o, &settings()), Pressure);
    }

    #[test]
    fn recovery_needs_the_hold_time_below_recover_below() {
        let phases = run(&[
            (0, 93.0, None, 1),
            (1, 93.0, None, 2),
            (10, 74.0, None, 2),
            (200, 74.0, None, 2),
            (309, 74.0, None, 2),
            (310, 74.0, None, 2),
        ]);
        assert_eq!(phases, [Reclaiming, Pressure, Recovering, Recovering, Recovering, Normal]);
    }

    #[test]
    fn flapping_around_thresholds_does_not_flap_the_drain() {
        // Around drain-at while draining: stays Pressure (leaving needs recover-below).
        let around_drain_at =
            run(&[(0, 93.0, None, 1), (1, 93.0, None, 2), (2, 91.0, None, 2), (3, 93.0, None, 2), (4, 90.0, None, 2)]);
        assert_eq!(around_drain_at, [Reclaiming, Pressure, Pressure, Pressure, Pressure]);
        // Around recover-below: each rise restarts the hold; no Normal until a full hold passes.
        let mut steps = vec![(0, 93.0, None, 1), (1, 93.0, None, 2)];
        for i in 0..20u64 {
            steps.push((2 + i * 100, if i % 2 == 0 { 74.0 } else { 76.0 }, None, 2));
        }
        let phases = run(&steps);
        assert!(!phases.contains(&Normal), "{phases:?}");
        assert_eq!(*phases.last().unwrap(), Pressure);
        // Around gc-start while Normal: Reclaiming and back, never Pressure without a reason.
        let around_gc_start =
            run(&[(0, 84.0, None, 0), (1, 86.0, None, 0), (2, 79.0, None, 1), (3, 86.0, None, 1), (4, 84.0, None, 1)]);
        assert!(!around_gc_start.contains(&Pressure), "{around_gc_start:?}");
    }

    #[test]
    fn the_reason_says_why() {
        let start = Instant::now();
        let mut m = PressureMachine::new(start);
        let o = |s: u64, used: f64, ttf: Option<u64>, runs: u64| Observation {
            at: start + Duration::from_secs(s),
            used,
            used_next: used,
            time_to_full: ttf.map(Duration::from_secs),
            gc_runs_finished: runs,
            gc_running: true,
            source_stopped: false,
        };
        m.observe(&o(0, 0.86, Some(45), 0), &settings());
        assert_eq!(m.reason(), "disk 86.0% used and filling: full in about 45s (drain-if-full-within 10m)");
        assert!(m.wants_drain());
    }

    #[test]
    fn a_writer_stopped_at_its_source_ends_the_pressure_once_its_space_is_back() {
        let start = Instant::now();
        let mut m = PressureMachine::new(start);
        let o = |s: u64, used: f64, ttf: Option<u64>, stopped: bool| Observation {
            at: start + Duration::from_secs(s),
            used,
            used_next: used,
            time_to_full: ttf.map(Duration::from_secs),
            gc_runs_finished: 1,
            gc_running: true,
            source_stopped: stopped,
        };
        assert_eq!(m.observe(&o(0, 0.86, Some(45), false), &settings()), Pressure);
        // Stopped, not yet reclaimed (still past gc-stop), or still filling: pressure stays.
        assert_eq!(m.observe(&o(1, 0.86, None, true), &settings()), Pressure);
        assert_eq!(m.observe(&o(2, 0.79, Some(45), true), &settings()), Pressure);
        // Reclaimed below gc-stop and not filling: the cause is gone.
        assert_eq!(m.observe(&o(3, 0.79, None, true), &settings()), Normal);
        assert!(!m.wants_drain() && !m.gc_behind() && m.reason().is_empty());
        // Without a stop, the same figures keep the hysteresis (recover-below is 75%).
        let mut plain = PressureMachine::new(start);
        plain.observe(&o(0, 0.86, Some(45), false), &settings());
        assert_eq!(plain.observe(&o(3, 0.79, None, false), &settings()), Pressure);
    }
}
