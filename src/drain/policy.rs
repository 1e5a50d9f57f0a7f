//! Whether to drain, withhold, undrain or leave the instance alone: a pure function of what
//! nodewarden wants, who drained the instance (if anyone), its ECS status and the cluster's
//! drain budget.

use serde::{Deserialize, Serialize};

/// Why nodewarden drained (or an operator did). Persisted, so it survives restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrainReason {
    DiskPressure,
    SpotInterruption,
    Termination,
    /// `nodewarden drain`, or DRAINING set by someone else: never undone by nodewarden.
    Operator,
}

impl DrainReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DrainReason::DiskPressure => "disk-pressure",
            DrainReason::SpotInterruption => "spot-interruption",
            DrainReason::Termination => "termination",
            DrainReason::Operator => "operator",
        }
    }

    /// Whether nodewarden may return the instance to ACTIVE by itself once the cause is gone.
    pub fn undone_on_recovery(self) -> bool {
        self == DrainReason::DiskPressure
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsStatus {
    Active,
    Draining,
    /// REGISTERING, DEREGISTERING, INACTIVE…: nothing can be done with it.
    Other,
}

impl EcsStatus {
    pub fn parse(status: &str) -> Self {
        match status {
            "ACTIVE" => EcsStatus::Active,
            "DRAINING" => EcsStatus::Draining,
            _ => EcsStatus::Other,
        }
    }

    /// As /status shows it (ECS's own words for the two it acts on).
    pub fn as_str(self) -> &'static str {
        match self {
            EcsStatus::Active => "ACTIVE",
            EcsStatus::Draining => "DRAINING",
            EcsStatus::Other => "OTHER",
        }
    }
}

/// What nodewarden wants right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wants {
    pub disk_pressure: bool,
    pub spot_interruption: bool,
    pub termination: bool,
}

impl Wants {
    /// The strongest reason to be drained, if any. Going away outranks a full disk.
    pub fn reason(self) -> Option<DrainReason> {
        if self.termination {
            Some(DrainReason::Termination)
        } else if self.spot_interruption {
            Some(DrainReason::SpotInterruption)
        } else if self.disk_pressure {
            Some(DrainReason::DiskPressure)
        } else {
            None
        }
    }
}

/// The cluster at this moment: registered instances and how many others are DRAINING.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub registered: usize,
    pub others_draining: usize,
    /// `max-draining-fraction`, 0.0–1.0.
    pub max_fraction: f64,
}

impl Budget {
    /// How many instances may drain at once: the fraction of the cluster, rounded up so any
    /// budget above 0% allows one (a 3-instance cluster at 20% may drain one).
    pub fn allowed(self) -> usize {
        if self.max_fraction <= 0.0 {
            return 0;
        }
        // The small epsilon keeps 20% of 5 at exactly 1 despite binary fractions.
        ((self.registered as f64 * self.max_fraction) - 1e-9).ceil().max(0.0) as usize
    }

    pub fn allows_one_more(self) -> bool {
        self.others_draining < self.allowed()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Set DRAINING, recorded as ours with this reason.
    Drain(DrainReason),
    /// Disk pressure wants a drain, but the cluster budget is spent.
    Withhold {
        others_draining: usize,
        allowed: usize,
    },
    /// The instance is DRAINING and nobody recorded it: an operator did; adopt as theirs.
    AdoptOperatorDrain,
    /// Return to ACTIVE: we drained for disk pressure and the disk recovered.
    Undrain,
    /// A stronger reason now applies to our own drain (e.g. termination after disk pressure).
    Reclassify(DrainReason),
}

/// Decides. `recorded` is who drained according to our record; `budget` is only needed
/// (and only consulted) for disk pressure.
pub fn decide(wants: Wants, recorded: Option<DrainReason>, status: EcsStatus, budget: Option<Budget>) -> Decision {
    match (status, recorded) {
        (EcsStatus::Other, _) => Decision::Nothing,
        (EcsStatus::Draining, None) => Decision::AdoptOperatorDrain,
        (EcsStatus::Draining, Some(ours)) => match wants.reason() {
            Some(reason) if ours.undone_on_recovery() && reason != ours => Decision::Reclassify(reason),
            None if ours.undone_on_recovery() => Decision::Undrain,
            _ => Decision::Nothing,
        },
        (EcsStatus::Active, _) => match wants.reason() {
            None => Decision::Nothing,
            // Going away: the budget does not apply.
            Some(reason @ (DrainReason::SpotInterruption | DrainReason::Termination)) => Decision::Drain(reason),
            Some(reason) => match budget {
                Some(b) if b.allows_one_more() => Decision::Drain(reason),
                Some(b) => Decision::Withhold { others_draining: b.others_draining, allowed: b.allowed() },
                // Unknown budget: never exceed it.
                None => Decision::Withhold { others_draining: 0, allowed: 0 },
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DrainReason::*;

    fn budget(registered: usize, others_draining: usize, fraction: f64) -> Option<Budget> {
        Some(Budget { registered, others_draining, max_fraction: fraction })
    }

    const DISK: Wants = Wants { disk_pressure: true, spot_interruption: false, termination: false };
    const SPOT: Wants = Wants { disk_pressure: false, spot_interruption: true, termination: false };
    const NONE: Wants = Wants { disk_pressure: false, spot_interruption: false, termination: false };

    #[test]
    fn ecs_statuses_read_and_show_as_ecs_writes_them() {
        for status in [EcsStatus::Active, EcsStatus::Draining] {
            assert_eq!(EcsStatus::parse(status.as_str()), status);
        }
        assert_eq!(EcsStatus::parse("DEREGISTERING"), EcsStatus::Other);
    }

    #[test]
    fn the_budget_from_the_issue() {
        assert_eq!(
            decide(DISK, None, EcsStatus::Active, budget(5, 1, 0.2)),
            Decision::Withhold { others_draining: 1, allowed: 1 }
        );
        assert_eq!(decide(DISK, None, EcsStatus::Active, budget(5, 1, 0.4)), Decision::Drain(DiskPressure));
    }

    #[test]
    fn budgets_round_up_and_zero_means_never() {
        assert_eq!(Budget { registered: 3, others_draining: 0, max_fraction: 0.2 }.allowed(), 1);
        assert_eq!(Budget { registered: 10, others_draining: 0, max_fraction: 0.2 }.allowed(), 2);
        assert_eq!(Budget { registered: 5, others_draining: 0, max_fraction: 0.0 }.allowed(), 0);
        assert_eq!(Budget { registered: 1, others_draining: 0, max_fraction: 1.0 }.allowed(), 1);
        assert!(matches!(decide(DISK, None, EcsStatus::Active, None), Decision::Withhold { .. }));
    }

    #[test]
    fn going_away_ignores_the_budget_and_outranks_disk_pressure() {
        assert_eq!(decide(SPOT, None, EcsStatus::Active, budget(5, 4, 0.2)), Decision::Drain(SpotInterruption));
        let both = Wants { disk_pressure: true, termination: true, spot_interruption: false };
        assert_eq!(decide(both, None, EcsStatus::Active, None), Decision::Drain(Termination));
        assert_eq!(decide(both, Some(DiskPressure), EcsStatus::Draining, None), Decision::Reclassify(Termination));
    }

    #[test]
    fn only_our_disk_pressure_drain_is_undone() {
        assert_eq!(decide(NONE, Some(DiskPressure), EcsStatus::Draining, None), Decision::Undrain);
        assert_eq!(decide(NONE, Some(Operator), EcsStatus::Draining, None), Decision::Nothing);
        assert_eq!(decide(NONE, Some(SpotInterruption), EcsStatus::Draining, None), Decision::Nothing);
        assert_eq!(decide(DISK, Some(Operator), EcsStatus::Draining, None), Decision::Nothing);
    }

    #[test]
    fn a_drain_nobody_recorded_belongs_to_an_operator() {
        assert_eq!(decide(NONE, None, EcsStatus::Draining, None), Decision::AdoptOperatorDrain);
        assert_eq!(decide(DISK, None, EcsStatus::Draining, None), Decision::AdoptOperatorDrain);
    }

    #[test]
    fn nothing_to_do_when_active_and_unwanted_or_status_unusable() {
        assert_eq!(decide(NONE, None, EcsStatus::Active, None), Decision::Nothing);
        assert_eq!(decide(DISK, None, EcsStatus::Other, budget(5, 0, 1.0)), Decision::Nothing);
    }
}
