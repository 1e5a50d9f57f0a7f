//! Whether to stop the fastest-growing container's ECS task: a pure function of the offender,
//! the free space, the settings and this node's recent stops.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Offender;

/// A task family stopped here is not stopped here again within this: if its next copy runs
/// away on this node too, the node drains instead (stopping alone is not holding it).
pub const FAMILY_COOLDOWN: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stop this task, with this reason (shown in the ECS console and events).
    Stop { task_arn: String, family: String, reason: String },
    /// Leave it: why.
    Leave(String),
}

/// `within` is `drain-if-full-within`: a task whose growth alone fills the free space within
/// it is stopped. `stopped` maps task families to when this node last stopped one.
pub fn decide(
    offender: &Offender,
    available_bytes: u64,
    within: Duration,
    stopped: &BTreeMap<String, Instant>,
    now: Instant,
) -> Verdict {
    let f = &offender.footprint;
    let (Some(task_arn), Some(family)) = (&f.task_arn, &f.task_family) else {
        return Verdict::Leave(format!("{} was not started by ECS; nodewarden stops only ECS tasks", f.describe()));
    };
    if f.ecs_agent {
        return Verdict::Leave("the ECS agent is never stopped".into());
    }
    if f.cut_short {
        return Verdict::Leave(format!(
            "{} was measured only in part (too many files); not stopped on a guess",
            f.describe()
        ));
    }
    let rate = offender.rate_bytes_per_second;
    let full_in = if rate > 0.0 { Duration::from_secs_f64(available_bytes as f64 / rate) } else { Duration::MAX };
    if full_in > within {
        return Verdict::Leave(format!(
            "{} alone would fill the disk in {}, later than drain-if-full-within ({})",
            f.describe(),
            crate::settings::values::format_duration(Duration::from_secs(full_in.as_secs().min(u32::MAX as u64))),
            crate::settings::values::format_duration(within)
        ));
    }
    if let Some(last) = stopped.get(family)
        && now.duration_since(*last) < FAMILY_COOLDOWN
    {
        return Verdict::Leave(format!(
            "a task of family {family} was stopped here {} ago; stopping again would not hold the disk",
            crate::settings::values::format_duration(Duration::from_secs(now.duration_since(*last).as_secs()))
        ));
    }
    let reason = format!(
        "nodewarden: container {} wrote {} at {}/s; Docker's disk ({} free) would be full in {}",
        f.name,
        crate::disk::human_bytes(offender.bytes),
        crate::disk::human_bytes(rate as u64),
        crate::disk::human_bytes(available_bytes),
        crate::settings::values::format_duration(Duration::from_secs(full_in.as_secs()))
    );
    // StopTask takes a reason of at most 255 characters.
    let reason: String = reason.chars().take(255).collect();
    Verdict::Stop { task_arn: task_arn.clone(), family: family.clone(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offender::Footprint;

    fn offender(rate: f64, task: bool, agent: bool) -> Offender {
        Offender {
            footprint: Footprint {
                container_id: "c1".into(),
                name: "writer".into(),
                image: "app:1".into(),
                task_arn: task.then(|| "arn:aws:ecs:us-east-1:123456789012:task/web/abc".into()),
                task_family: task.then(|| "app".into()),
                ecs_agent: agent,
                writable_bytes: 300 << 20,
                volume_bytes: 0,
                log_bytes: 0,
                cut_short: false,
                writable_from_quota: false,
            },
            bytes: 300 << 20,
            rate_bytes_per_second: rate,
        }
    }

    const MIB: f64 = (1 << 20) as f64;
    const WITHIN: Duration = Duration::from_secs(600);

    #[test]
    fn a_task_that_alone_fills_the_disk_in_time_is_stopped_with_a_reason_that_says_so() {
        let now = Instant::now();
        // 1 GiB free at 10 MiB/s: full in about 102 s, within 10 minutes.
        match decide(&offender(10.0 * MIB, true, false), 1 << 30, WITHIN, &BTreeMap::new(), now) {
            Verdict::Stop { task_arn, family, reason } => {
                assert!(task_arn.ends_with("task/web/abc"));
                assert_eq!(family, "app");
                assert!(reason.starts_with("nodewarden: container writer wrote 300.0 MiB at 10.0 MiB/s"), "{reason}");
                assert!(reason.contains("(1.0 GiB free) would be full in 1m42s"), "{reason}");
                assert!(reason.len() <= 255);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slow_writers_agents_and_containers_ecs_did_not_start_are_left() {
        let now = Instant::now();
        let none = BTreeMap::new();
        // 1 GiB free at 1 MiB/s: full in 17 minutes, later than 10.
        assert!(matches!(decide(&offender(MIB, true, false), 1 << 30, WITHIN, &none, now), Verdict::Leave(_)));
        assert!(matches!(decide(&offender(100.0 * MIB, false, false), 1 << 30, WITHIN, &none, now), Verdict::Leave(_)));
        assert!(matches!(decide(&offender(100.0 * MIB, true, true), 1 << 30, WITHIN, &none, now), Verdict::Leave(_)));
        let mut partly = offender(100.0 * MIB, true, false);
        partly.footprint.cut_short = true;
        assert!(matches!(decide(&partly, 1 << 30, WITHIN, &none, now), Verdict::Leave(why) if why.contains("in part")));
    }

    #[test]
    fn a_family_stopped_here_recently_is_left_to_the_drain() {
        let now = Instant::now();
        let mut stopped = BTreeMap::new();
        stopped.insert("app".to_string(), now);
        let later = now + Duration::from_secs(60);
        let Verdict::Leave(why) = decide(&offender(10.0 * MIB, true, false), 1 << 30, WITHIN, &stopped, later) else {
            panic!("stopped again within the cooldown");
        };
        assert!(why.contains("stopped here 1m ago"), "{why}");
        let much_later = now + FAMILY_COOLDOWN;
        assert!(matches!(
            decide(&offender(10.0 * MIB, true, false), 1 << 30, WITHIN, &stopped, much_later),
            Verdict::Stop { .. }
        ));
    }
}
