//! The claim protocol at fleet scale, on nodewarden's own decision code (`engine`): run in CI
//! at 1,000 nodes, it asserts that the drain budget holds once claims converge in every
//! scenario, that no node with a free budget waits for anything but its calls, and that a few
//! fast runaways among a large fleet all drain in time. `cargo bench --bench fleet_sim` prints
//! the table for 10 to 10,000 nodes (BENCHMARKS.md).

#![allow(clippy::unwrap_used)] // Test code.

mod engine;

use engine::{Config, Scenario};

fn run(scenario: Scenario, nodes: usize, seed: u64) -> engine::Outcome {
    let outcome = engine::run(&Config { nodes, seed, scenario, max_fraction: 0.2 });
    println!("{}", engine::table_row(scenario, &outcome));
    println!("    calls: {}", outcome.by_kind);
    outcome
}

#[test]
fn at_a_thousand_nodes_the_budget_holds_and_nobody_with_room_waits() {
    println!("{}", engine::table_header());
    for scenario in Scenario::ALL {
        let o = run(scenario, 1000, 7);
        assert!(
            o.most_draining_converged <= o.budget,
            "{}: {} DRAINING for disk pressure for longer than {:?}, budget {}",
            scenario.name(),
            o.most_draining_converged,
            engine::CONVERGED_AFTER,
            o.budget
        );
        assert!(
            o.longest_excess < engine::CONVERGED_AFTER,
            "{}: over budget for {:?}",
            scenario.name(),
            o.longest_excess
        );
        assert_eq!(
            o.waited_beyond_round_trips,
            0,
            "{}: nodes admitted at once waited {:?} beyond their calls",
            scenario.name(),
            o.longest_unexplained_wait
        );
        assert!(o.drained > 0 || o.stopped > 0, "{}: nothing happened", scenario.name());
    }
}

#[test]
fn a_few_fast_runaways_in_a_large_fleet_drain_in_round_trips_with_space_left() {
    for nodes in [10, 1000] {
        let o = run(Scenario::FewFast, nodes, 11);
        assert_eq!(o.full, 0, "{nodes} nodes: a disk filled");
        assert_eq!(o.drained, (nodes / 100).clamp(1, 10), "{nodes} nodes: every runaway drains");
        let p99 = o.percentile(0.99).unwrap();
        assert!(p99.as_secs_f64() < 1.0, "{nodes} nodes: p99 must drain → DRAINING {p99:?}");
        assert!(o.least_free_at_drain >= 0.05, "{nodes} nodes: {:.1}% free", o.least_free_at_drain * 100.0);
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(Scenario::SpotWave, 100, 3);
    let b = run(Scenario::SpotWave, 100, 3);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Over any interleaving the seed makes (which nodes fill when, every read's lag, every
    /// call's latency, the jitter of every wait), in small fleets where the budget is one or a
    /// few: never more DRAINING for disk pressure than the budget once claims converge.
    #[test]
    fn the_budget_holds_after_convergence_over_interleavings(
        seed in 1u64..u64::MAX,
        nodes in 3usize..40,
        fraction in proptest::sample::select(vec![0.1, 0.2, 0.34, 0.5]),
        scenario in proptest::sample::select(Scenario::ALL.to_vec()),
    ) {
        let o = engine::run(&Config { nodes, seed, scenario, max_fraction: fraction });
        proptest::prop_assert!(
            o.most_draining_converged <= o.budget && o.longest_excess < engine::CONVERGED_AFTER,
            "{} nodes, {}: {} lasting (budget {}), over budget for {:?}",
            nodes, scenario.name(), o.most_draining_converged, o.budget, o.longest_excess
        );
        proptest::prop_assert_eq!(o.waited_beyond_round_trips, 0);
    }
}
