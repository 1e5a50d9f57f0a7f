//! Node conditions in node-problem-detector's style: a fixed set of types, each True or
//! False with a reason, a message and the time it last changed. Evaluated from plain data.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::agent::AgentState;
use crate::disk::DiskSample;
use crate::drain::{DrainStatus, Phase};

pub const TYPES: &[&str] = &[
    "DiskPressure",
    "InodePressure",
    "DockerUnavailable",
    "AgentUnhealthy",
    "AgentTerminal",
    "Draining",
    "ConfigInvalid",
    "DockerOnRootDisk",
];

/// What the evaluation reads.
pub struct Inputs<'a> {
    pub pressure: Phase,
    pub pressure_reason: &'a str,
    pub sample: Option<DiskSample>,
    pub gc_start: f64,
    pub docker_error: Option<&'a str>,
    pub agent: &'a AgentState,
    pub drain: &'a DrainStatus,
    pub config_error: Option<&'a str>,
    /// Setup kept Docker's data on the root disk (`storage::shared_disk`): why.
    pub shared_disk: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub kind: &'static str,
    pub active: bool,
    pub reason: &'static str,
    pub message: String,
}

fn observed(kind: &'static str, active: bool, reason: &'static str, message: impl Into<String>) -> Observed {
    Observed { kind, active, reason, message: message.into() }
}

pub fn evaluate(i: &Inputs<'_>) -> Vec<Observed> {
    let pct = |f: f64| format!("{:.1}%", f * 100.0);
    let disk = match i.pressure {
        Phase::Pressure => observed("DiskPressure", true, "ReclaimCannotKeepUp", i.pressure_reason),
        Phase::Recovering => {
            observed("DiskPressure", true, "Recovering", "below recover-below; holding before recovery")
        }
        Phase::Reclaiming => observed("DiskPressure", false, "Reclaiming", "past gc-start; garbage collection at work"),
        Phase::Normal => observed("DiskPressure", false, "DiskOk", "below gc-start"),
    };
    let inodes = match i.sample {
        Some(s) if s.used_inode_fraction() >= i.gc_start => observed(
            "InodePressure",
            true,
            "InodesAboveGcStart",
            format!("{} of inodes used", pct(s.used_inode_fraction())),
        ),
        Some(s) => {
            observed("InodePressure", false, "InodesOk", format!("{} of inodes used", pct(s.used_inode_fraction())))
        }
        None => observed("InodePressure", false, "NotMeasuredYet", "no disk sample yet"),
    };
    let docker = match i.docker_error {
        Some(error) => observed("DockerUnavailable", true, "DockerUnreachable", error),
        None => observed("DockerUnavailable", false, "DockerOk", "Docker answers"),
    };
    let agent = i.agent;
    let unhealthy = if agent.terminal || agent.stopped {
        observed(
            "AgentUnhealthy",
            true,
            "AgentStopped",
            "the ECS agent is not running (see AgentTerminal and last exit code)",
        )
    } else if agent.healthy == Some(false) {
        observed(
            "AgentUnhealthy",
            true,
            "IntrospectionFailing",
            format!("{} failed /v1/metadata checks in a row", agent.consecutive_failures),
        )
    } else if !agent.running {
        observed(
            "AgentUnhealthy",
            true,
            "AgentNotRunning",
            agent.last_error.clone().unwrap_or_else(|| "starting".into()),
        )
    } else if agent.healthy == Some(true) {
        observed("AgentUnhealthy", false, "AgentHealthy", "the agent answers /v1/metadata")
    } else {
        observed("AgentUnhealthy", false, "AgentStarting", "within the start grace period")
    };
    let terminal = if agent.terminal {
        observed(
            "AgentTerminal",
            true,
            "ExitedTerminal",
            "the agent exited 5: it cannot run on this instance; not restarted",
        )
    } else {
        observed("AgentTerminal", false, "AgentRunnable", "")
    };
    let draining = match (i.drain.draining, i.drain.owner, &i.drain.withheld) {
        (true, Some(owner), _) => {
            let reason = match owner {
                crate::drain::DrainReason::DiskPressure => "DrainedForDiskPressure",
                crate::drain::DrainReason::SpotInterruption => "DrainedForSpotInterruption",
                crate::drain::DrainReason::SpotStop => "DrainedForSpotStop",
                crate::drain::DrainReason::Termination => "DrainedForTermination",
                crate::drain::DrainReason::Operator => "DrainedByOperator",
            };
            observed("Draining", true, reason, i.drain.detail.clone().unwrap_or_default())
        }
        (_, _, Some(withheld)) => observed("Draining", false, "DrainWithheld", withheld.clone()),
        _ => observed("Draining", false, "NotDraining", ""),
    };
    let config = match i.config_error {
        Some(error) => observed("ConfigInvalid", true, "ReloadRejected", error),
        None => observed("ConfigInvalid", false, "ConfigValid", ""),
    };
    let shared = match i.shared_disk {
        Some(note) => observed("DockerOnRootDisk", true, "DataFoundOnRootDisk", note),
        None => observed("DockerOnRootDisk", false, "OwnDisk", ""),
    };
    vec![disk, inodes, docker, unhealthy, terminal, draining, config, shared]
}

/// A condition as /status reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// "True", "False" or "Unknown", as Kubernetes writes conditions.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// When the status last changed.
    #[serde(with = "crate::time::rfc3339")]
    pub since: SystemTime,
}

/// Remembers when each condition last changed status.
#[derive(Debug, Clone, Default)]
pub struct ConditionBook {
    since: BTreeMap<&'static str, (bool, SystemTime)>,
}

impl ConditionBook {
    pub fn update(&mut self, observed: Vec<Observed>, now: SystemTime) -> Vec<Condition> {
        observed
            .into_iter()
            .map(|o| {
                let entry = self.since.entry(o.kind).or_insert((o.active, now));
                if entry.0 != o.active {
                    *entry = (o.active, now);
                }
                Condition {
                    kind: o.kind.to_string(),
                    status: if o.active { "True" } else { "False" }.to_string(),
                    reason: o.reason.to_string(),
                    message: o.message,
                    since: entry.1,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    fn inputs<'a>(agent: &'a AgentState, drain: &'a DrainStatus) -> Inputs<'a> {
        Inputs {
            pressure: Phase::Normal,
            pressure_reason: "",
            sample: Some(DiskSample {
                at: Instant::now(),
                total_bytes: 100,
                available_bytes: 50,
                total_inodes: 100,
                available_inodes: 10,
            }),
            gc_start: 0.85,
            docker_error: None,
            agent,
            drain,
            config_error: None,
            shared_disk: None,
        }
    }

    #[test]
    fn every_type_is_reported_once_and_reflects_its_input() {
        let agent = AgentState { running: true, healthy: Some(true), ..AgentState::default() };
        let drain = DrainStatus::default();
        let mut i = inputs(&agent, &drain);
        i.pressure = Phase::Pressure;
        i.pressure_reason = "disk 93.0% used after garbage collection (drain-at 92%)";
        i.docker_error = Some("connection refused");
        let observed = evaluate(&i);
        assert_eq!(observed.iter().map(|o| o.kind).collect::<Vec<_>>(), TYPES);
        let find = |kind: &str| observed.iter().find(|o| o.kind == kind).unwrap().clone();
        assert!(find("DiskPressure").active && find("DiskPressure").message.contains("93.0%"));
        assert!(find("InodePressure").active, "90% of inodes is past gc-start");
        assert!(find("DockerUnavailable").active);
        assert!(!find("AgentUnhealthy").active && !find("Draining").active && !find("ConfigInvalid").active);
    }

    #[test]
    fn docker_kept_on_the_root_disk_is_a_condition_with_setups_words() {
        let agent = AgentState::default();
        let drain = DrainStatus::default();
        let find = |i: &Inputs<'_>| evaluate(i).into_iter().find(|o| o.kind == "DockerOnRootDisk").unwrap();
        assert!(!find(&inputs(&agent, &drain)).active);
        let mut i = inputs(&agent, &drain);
        i.shared_disk = Some("Docker's data stays on the root disk: /var/lib/docker held 3 images");
        let shared = find(&i);
        assert!(shared.active && shared.reason == "DataFoundOnRootDisk" && shared.message.contains("3 images"));
    }

    #[test]
    fn since_moves_only_when_the_status_changes() {
        let agent = AgentState::default();
        let drain = DrainStatus::default();
        let mut book = ConditionBook::default();
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let first = book.update(evaluate(&inputs(&agent, &drain)), t(10));
        let again = book.update(evaluate(&inputs(&agent, &drain)), t(20));
        assert_eq!(first, again);
        let mut i = inputs(&agent, &drain);
        i.config_error = Some("bad");
        let changed = book.update(evaluate(&i), t(30));
        let config = changed.iter().find(|c| c.kind == "ConfigInvalid").unwrap();
        assert_eq!((config.status.as_str(), config.since), ("True", t(30)));
    }
}
