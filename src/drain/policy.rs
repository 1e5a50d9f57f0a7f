//! Whether to drain, undrain or leave the instance alone: a pure function of what nodewarden
//! wants, who drained the instance (if anyone) and its ECS status. Whether the cluster's
//! budget lets a disk-pressure drain through is `claims`' question.

use serde::{Deserialize, Serialize};

/// Why nodewarden drained (or an operator did). Persisted, so it survives restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrainReason {
    DiskPressure,
    /// A spot notice that ends the instance (terminate).
    SpotInterruption,
    /// A spot stop or hibernate notice: the instance comes back later, and is undrained then.
    SpotStop,
    Termination,
    /// `nodewarden drain`, or DRAINING set by someone else: never undone by nodewarden.
    Operator,
}

impl DrainReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DrainReason::DiskPressure => "disk-pressure",
            DrainReason::SpotInterruption => "spot-interruption",
            DrainReason::SpotStop => "spot-stop",
            DrainReason::Termination => "termination",
            DrainReason::Operator => "operator",
        }
    }

    /// Whether nodewarden may return the instance to ACTIVE by itself once the cause is gone:
    /// the disk recovered, or the spot-stopped instance is back.
    pub fn undone_on_recovery(self) -> bool {
        matches!(self, DrainReason::DiskPressure | DrainReason::SpotStop)
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
    /// A spot notice to terminate.
    pub spot_interruption: bool,
    /// A spot notice to stop or hibernate.
    pub spot_stop: bool,
    /// IMDS answered that there is no spot notice (in this boot, after a stop: the instance is back).
    pub spot_clear: bool,
    pub termination: bool,
}

impl Wants {
    /// The strongest reason to be drained, if any. Going away outranks a full disk.
    pub fn reason(self) -> Option<DrainReason> {
        if self.termination {
            Some(DrainReason::Termination)
        } else if self.spot_interruption {
            Some(DrainReason::SpotInterruption)
        } else if self.spot_stop {
            Some(DrainReason::SpotStop)
        } else if self.disk_pressure {
            Some(DrainReason::DiskPressure)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Set DRAINING, recorded as ours with this reason. For disk pressure, only through the
    /// cluster's budget (`claims`); going away (spot, termination) drains at once.
    Drain(DrainReason),
    /// The instance is DRAINING and nobody recorded it: an operator did; adopt as theirs.
    AdoptOperatorDrain,
    /// Return to ACTIVE: we drained for disk pressure and the disk recovered, or for a spot
    /// stop and the instance is back.
    Undrain,
    /// A stronger reason now applies to our own drain (e.g. termination after disk pressure).
    Reclassify(DrainReason),
}

/// Decides. `recorded` is who drained according to our record.
pub fn decide(wants: Wants, recorded: Option<DrainReason>, status: EcsStatus) -> Decision {
    match (status, recorded) {
        (EcsStatus::Other, _) => Decision::Nothing,
        (EcsStatus::Draining, None) => Decision::AdoptOperatorDrain,
        (EcsStatus::Draining, Some(ours)) => match wants.reason() {
            Some(reason) if ours.undone_on_recovery() && reason != ours => Decision::Reclassify(reason),
            None if ours == DrainReason::DiskPressure => Decision::Undrain,
            // Back from a spot stop only once IMDS has said "no notice" in this boot.
            None if ours == DrainReason::SpotStop && wants.spot_clear => Decision::Undrain,
            _ => Decision::Nothing,
        },
        (EcsStatus::Active, _) => match wants.reason() {
            None => Decision::Nothing,
            Some(reason) => Decision::Drain(reason),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DrainReason::*;

    const NONE: Wants = Wants {
        disk_pressure: false,
        spot_interruption: false,
        spot_stop: false,
        spot_clear: false,
        termination: false,
    };
    const DISK: Wants = Wants { disk_pressure: true, ..NONE };
    const SPOT: Wants = Wants { spot_interruption: true, ..NONE };
    const SPOT_STOP: Wants = Wants { spot_stop: true, ..NONE };
    const BACK: Wants = Wants { spot_clear: true, ..NONE };

    #[test]
    fn ecs_statuses_read_and_show_as_ecs_writes_them() {
        for status in [EcsStatus::Active, EcsStatus::Draining] {
            assert_eq!(EcsStatus::parse(status.as_str()), status);
        }
        assert_eq!(EcsStatus::parse("DEREGISTERING"), EcsStatus::Other);
    }

    #[test]
    fn disk_pressure_asks_for_a_drain_and_going_away_outranks_it() {
        assert_eq!(decide(DISK, None, EcsStatus::Active), Decision::Drain(DiskPressure));
    }

    #[test]
    fn going_away_outranks_disk_pressure() {
        assert_eq!(decide(SPOT, None, EcsStatus::Active), Decision::Drain(SpotInterruption));
        let both = Wants { disk_pressure: true, termination: true, ..NONE };
        assert_eq!(decide(both, None, EcsStatus::Active), Decision::Drain(Termination));
        assert_eq!(decide(both, Some(DiskPressure), EcsStatus::Draining), Decision::Reclassify(Termination));
    }

    #[test]
    fn only_our_disk_pressure_drain_is_undone() {
        assert_eq!(decide(NONE, Some(DiskPressure), EcsStatus::Draining), Decision::Undrain);
        assert_eq!(decide(NONE, Some(Operator), EcsStatus::Draining), Decision::Nothing);
        assert_eq!(decide(NONE, Some(SpotInterruption), EcsStatus::Draining), Decision::Nothing);
        assert_eq!(decide(DISK, Some(Operator), EcsStatus::Draining), Decision::Nothing);
    }

    #[test]
    fn a_spot_stop_drain_is_undone_once_imds_says_the_notice_is_gone() {
        assert_eq!(decide(SPOT_STOP, None, EcsStatus::Active), Decision::Drain(SpotStop));
        let stop_and_disk = Wants { disk_pressure: true, ..SPOT_STOP };
        assert_eq!(decide(stop_and_disk, None, EcsStatus::Active), Decision::Drain(SpotStop));
        // Not yet known (no answer from IMDS in this boot), or the notice still there: stay.
        assert_eq!(decide(NONE, Some(SpotStop), EcsStatus::Draining), Decision::Nothing);
        assert_eq!(decide(SPOT_STOP, Some(SpotStop), EcsStatus::Draining), Decision::Nothing);
        assert_eq!(decide(BACK, Some(SpotStop), EcsStatus::Draining), Decision::Undrain);
        // Back, but the disk is full now: the drain stays, as a disk-pressure one.
        let back_full = Wants { disk_pressure: true, ..BACK };
        assert_eq!(decide(back_full, Some(SpotStop), EcsStatus::Draining), Decision::Reclassify(DiskPressure));
        // A terminate notice is for ever.
        assert_eq!(decide(BACK, Some(SpotInterruption), EcsStatus::Draining), Decision::Nothing);
    }

    #[test]
    fn a_drain_nobody_recorded_belongs_to_an_operator() {
        assert_eq!(decide(NONE, None, EcsStatus::Draining), Decision::AdoptOperatorDrain);
        assert_eq!(decide(DISK, None, EcsStatus::Draining), Decision::AdoptOperatorDrain);
    }

    #[test]
    fn nothing_to_do_when_active_and_unwanted_or_status_unusable() {
        assert_eq!(decide(NONE, None, EcsStatus::Active), Decision::Nothing);
        assert_eq!(decide(DISK, None, EcsStatus::Other), Decision::Nothing);
    }
}
