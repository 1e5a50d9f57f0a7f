//! Ranking containers by growth between two samples: a pure function.

use std::time::Instant;

use super::{Footprint, Offender};

/// The containers that grew, fastest first (ties: the larger first). `samples` are oldest
/// first; each container's growth runs from the oldest sample that has it to the newest, so a
/// container that appeared meanwhile is measured from when it was first seen, and one seen in
/// the newest sample only has no rate yet. A measurement cut short (a floor, not a figure) is
/// no end of a growth: a container counted partly, then fully, did not grow by the difference.
pub fn rank(samples: &[(Instant, Vec<Footprint>)]) -> Vec<Offender> {
    let Some((newest_at, newest)) = samples.last() else { return Vec::new() };
    let mut grown: Vec<Offender> = newest
        .iter()
        .filter(|now| !now.cut_short)
        .filter_map(|now| {
            let (then_at, then) = samples.iter().find_map(|(at, footprints)| {
                footprints.iter().find(|f| f.container_id == now.container_id && !f.cut_short).map(|f| (*at, f))
            })?;
            let seconds = newest_at.duration_since(then_at).as_secs_f64();
            let delta = now.bytes() as f64 - then.bytes() as f64;
            (seconds > 0.0 && delta > 0.0).then(|| Offender {
                footprint: now.clone(),
                bytes: now.bytes(),
                rate_bytes_per_second: delta / seconds,
            })
        })
        .collect();
    grown.sort_by(|a, b| {
        b.rate_bytes_per_second.total_cmp(&a.rate_bytes_per_second).then_with(|| b.bytes.cmp(&a.bytes))
    });
    grown
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// Two samples `elapsed` apart.
    fn two(before: &[Footprint], after: &[Footprint], elapsed: Duration) -> Vec<Offender> {
        let start = Instant::now();
        rank(&[(start, before.to_vec()), (start + elapsed, after.to_vec())])
    }

    pub fn footprint(id: &str, writable: u64, volumes: u64, logs: u64) -> Footprint {
        Footprint {
            container_id: id.into(),
            name: format!("name-{id}"),
            image: "app:1".into(),
            task_arn: Some(format!("arn:aws:ecs:us-east-1:123456789012:task/c/{id}")),
            task_family: Some("app".into()),
            ecs_agent: false,
            writable_bytes: writable,
            volume_bytes: volumes,
            log_bytes: logs,
            cut_short: false,
            writable_from_quota: false,
        }
    }

    #[test]
    fn the_fastest_writer_comes_first_whatever_it_writes_to() {
        let before = [footprint("a", 100, 0, 0), footprint("b", 0, 100, 0), footprint("c", 0, 0, 100)];
        let after = [footprint("a", 300, 0, 0), footprint("b", 0, 1100, 0), footprint("c", 0, 0, 600)];
        let ranked = two(&before, &after, Duration::from_secs(2));
        let order: Vec<(&str, f64)> =
            ranked.iter().map(|o| (o.footprint.container_id.as_str(), o.rate_bytes_per_second)).collect();
        assert_eq!(order, [("b", 500.0), ("c", 250.0), ("a", 100.0)]);
        assert_eq!(ranked[0].bytes, 1100);
    }

    #[test]
    fn shrinking_steady_and_new_containers_are_not_ranked() {
        let before = [footprint("shrinks", 500, 0, 0), footprint("steady", 5, 0, 0)];
        let after = [footprint("shrinks", 100, 0, 0), footprint("steady", 5, 0, 0), footprint("new", 10_000, 0, 0)];
        assert!(two(&before, &after, Duration::from_secs(1)).is_empty());
        assert!(two(&before, &before, Duration::ZERO).is_empty());
    }

    #[test]
    fn a_container_that_appeared_meanwhile_is_measured_from_when_it_was_first_seen() {
        let start = Instant::now();
        let samples = [
            (start, vec![]),
            (start + Duration::from_secs(4), vec![footprint("late", 1000, 0, 0), footprint("new", 5, 0, 0)]),
            (start + Duration::from_secs(6), vec![footprint("late", 3000, 0, 0)]),
        ];
        let ranked = rank(&samples);
        assert_eq!(ranked.len(), 1);
        assert_eq!(ranked[0].footprint.container_id, "late");
        assert_eq!(ranked[0].rate_bytes_per_second, 1000.0);
        assert!(rank(&samples[..1]).is_empty() && rank(&[]).is_empty());
    }

    #[test]
    fn a_measurement_cut_short_is_never_an_end_of_a_growth() {
        let cut = |f: Footprint| Footprint { cut_short: true, ..f };
        // Counted partly, then fully: not a writer of the difference.
        let ranked = two(&[cut(footprint("many-files", 10, 0, 0))], &[footprint("many-files", 5000, 0, 0)], SECOND);
        assert!(ranked.is_empty(), "{ranked:?}");
        // Cut short now: no figure to rank, however large.
        let ranked = two(&[footprint("many-files", 10, 0, 0)], &[cut(footprint("many-files", 5000, 0, 0))], SECOND);
        assert!(ranked.is_empty(), "{ranked:?}");
        // A full count older than the cut-short one still makes a growth with the newest full one.
        let start = Instant::now();
        let samples = [
            (start, vec![footprint("w", 100, 0, 0), footprint("other", 0, 0, 0)]),
            (start + SECOND, vec![cut(footprint("w", 50, 0, 0)), cut(footprint("other", 9000, 0, 0))]),
            (start + 2 * SECOND, vec![footprint("w", 300, 0, 0), cut(footprint("other", 9000, 0, 0))]),
        ];
        let ranked = rank(&samples);
        assert_eq!(ranked.len(), 1, "{ranked:?}");
        assert_eq!((ranked[0].footprint.container_id.as_str(), ranked[0].rate_bytes_per_second), ("w", 100.0));
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn equal_rates_rank_the_larger_first() {
        let before = [footprint("small", 0, 0, 0), footprint("large", 1000, 0, 0)];
        let after = [footprint("small", 100, 0, 0), footprint("large", 1100, 0, 0)];
        let ranked = two(&before, &after, Duration::from_secs(1));
        assert_eq!(ranked[0].footprint.container_id, "large");
    }

    proptest! {
        #[test]
        fn rates_are_positive_sorted_and_never_exceed_the_growth(
            sizes in prop::collection::vec((0u64..1 << 40, 0u64..1 << 40), 0..20),
            millis in 1u64..100_000,
        ) {
            let before: Vec<Footprint> =
                sizes.iter().enumerate().map(|(i, (b, _))| footprint(&i.to_string(), *b, 0, 0)).collect();
            let after: Vec<Footprint> =
                sizes.iter().enumerate().map(|(i, (_, a))| footprint(&i.to_string(), *a, 0, 0)).collect();
            let ranked = two(&before, &after, Duration::from_millis(millis));
            prop_assert!(ranked.windows(2).all(|w| w[0].rate_bytes_per_second >= w[1].rate_bytes_per_second));
            for o in &ranked {
                prop_assert!(o.rate_bytes_per_second > 0.0);
                let i: usize = o.footprint.container_id.parse().unwrap();
                let grew = sizes[i].1 - sizes[i].0;
                prop_assert!((o.rate_bytes_per_second * millis as f64 / 1000.0 - grew as f64).abs() < 1.0 + grew as f64 * 1e-9);
            }
        }
    }
}
