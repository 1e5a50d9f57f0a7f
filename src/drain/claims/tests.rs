//! Table tests of the claim format, the orders and the trust bounds, and a property test of the
//! converged orders. The protocol over lagging reads is exercised with the real drain machine
//! in `tests/fleet_sim` (a property test over interleavings and the fleet simulation).

use super::*;
use proptest::prelude::*;
use std::time::UNIX_EPOCH;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_764_000_000 + seconds)
}

/// A waiting claim written at `written`, full at `full` (seconds).
fn waiting(instance: &str, written: u64, full: u64) -> Claim {
    Claim { instance: instance.into(), written: at(written), urgency: Urgency::FullAt(at(full)), drained: None }
}

fn drained(instance: &str, written: u64, full: u64, drained_at: u64) -> Claim {
    Claim { drained: Some(at(drained_at)), ..waiting(instance, written, full) }
}

fn view(registered: usize, draining: &[&str], claims: &[Claim]) -> View {
    View { registered, draining: draining.iter().map(|s| s.to_string()).collect(), claims: claims.to_vec() }
}

fn withheld(ahead: usize, allowed: usize, waiters_ahead: usize) -> Verdict {
    Verdict::Withheld { ahead, allowed, waiters_ahead }
}

#[test]
fn claim_values_round_trip_fit_an_ecs_attribute_and_old_ones_still_read() {
    let claims = [
        Claim { written: at(5) + Duration::from_millis(123), ..waiting("i1", 0, 35) },
        Claim { urgency: Urgency::Steady, ..waiting("i1", 5, 0) },
        drained("i1", 5, 35, 7),
    ];
    let values: Vec<String> = claims.iter().map(Claim::value).collect();
    assert_eq!(
        values,
        [
            "2025-11-24T16:00:05.123Z disk-pressure full 2025-11-24T16:00:35Z",
            "2025-11-24T16:00:05.000Z disk-pressure steady",
            "2025-11-24T16:00:05.000Z disk-pressure full 2025-11-24T16:00:35Z drained 2025-11-24T16:00:07Z",
        ]
    );
    for (claim, value) in claims.iter().zip(&values) {
        assert!(value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || "-.: ".contains(c)));
        assert_eq!(Claim::parse("i1", value).as_ref(), Some(claim));
    }
    // The previous version's claims: full at their time, so old and new nodes share one order.
    assert_eq!(Claim::parse("i1", "2025-11-24T16:00:05.000Z disk-pressure"), Some(waiting("i1", 5, 5)));
    for garbage in
        ["", "garbage", "2025-11-24T16:00:05Z spot", "2025-11-24T16:00:05Z disk-pressure full", "x disk-pressure"]
    {
        assert_eq!(Claim::parse("i1", garbage), None, "{garbage:?}");
    }
}

#[test]
fn budgets_round_up_and_zero_means_never() {
    assert_eq!(allowed(3, 0.2), 1);
    assert_eq!(allowed(5, 0.2), 1);
    assert_eq!(allowed(10, 0.2), 2);
    assert_eq!(allowed(5, 0.0), 0);
    assert_eq!(allowed(1, 1.0), 1);
    assert_eq!(allowed(0, 0.2), 0);
}

#[test]
fn the_waiter_closest_to_full_drains_first_ties_by_id_and_steady_last() {
    let now = at(10);
    let steady = Claim { urgency: Urgency::Steady, ..waiting("s", 1, 0) };
    let claims = [waiting("b", 1, 40), waiting("a", 1, 40), waiting("c", 2, 20), steady.clone()];
    let v = view(5, &[], &claims);
    // 20% of 5: one slot. c is full soonest, whoever claimed first.
    assert_eq!(may_drain(&v, &waiting("c", 2, 20), 0.2, now), Verdict::Admitted);
    assert_eq!(may_drain(&v, &waiting("a", 1, 40), 0.2, now), withheld(1, 1, 1));
    assert_eq!(may_drain(&v, &waiting("b", 1, 40), 0.2, now), withheld(2, 1, 2));
    assert_eq!(may_drain(&v, &steady, 0.2, now), withheld(3, 1, 3));
    // 40% of 5: two slots; a beats b on the id at the same urgency.
    assert_eq!(may_drain(&v, &waiting("a", 1, 40), 0.4, now), Verdict::Admitted);
    assert_eq!(may_drain(&v, &waiting("b", 1, 40), 0.4, now), withheld(2, 2, 2));
}

#[test]
fn a_node_counts_only_others_and_needs_no_read_of_its_own_claim() {
    let now = at(10);
    let own = waiting("b", 9, 30);
    assert_eq!(may_drain(&view(5, &[], &[]), &own, 0.2, now), Verdict::Admitted);
    assert_eq!(may_drain(&view(5, &[], std::slice::from_ref(&own)), &own, 0.2, now), Verdict::Admitted);
    assert_eq!(may_drain(&view(5, &[], &[waiting("a", 1, 20)]), &own, 0.2, now), withheld(1, 1, 1));
}

#[test]
fn drains_take_budget_first_and_unclaimed_ones_never_push_a_holder_back() {
    let now = at(10);
    // x drains for a spot notice (no claim), h holds a slot: a waits behind both at 40% of 5.
    let v = view(5, &["x", "h"], &[drained("h", 1, 30, 2), waiting("a", 3, 5)]);
    assert_eq!(may_drain(&v, &waiting("a", 3, 5), 0.4, now), withheld(2, 2, 0));
    // h drained for disk pressure, then x drained for a spot notice: h stays.
    let v = view(5, &["x", "h"], &[drained("h", 1, 30, 2)]);
    assert_eq!(must_step_back(&v, &drained("h", 1, 30, 2), 0.2, now), Verdict::Admitted);
}

#[test]
fn two_drains_on_stale_reads_keep_the_one_about_to_fill_and_a_settled_drain_stays() {
    let now = at(12);
    // a (full at 50) and b (full at 15) drained within seconds of each other on reads that
    // missed each other: b is about to fill and stays; a steps back.
    let a = drained("a", 2, 50, 3);
    let b = drained("b", 4, 15, 5);
    let v = view(5, &["a", "b"], &[a.clone(), b.clone()]);
    assert_eq!(must_step_back(&v, &a, 0.2, now), withheld(1, 1, 0));
    assert_eq!(must_step_back(&v, &b, 0.2, now), Verdict::Admitted);
    // Before b's marker is visible, a reader takes b to have drained now: the same verdicts.
    let v = view(5, &["a", "b"], &[a.clone(), waiting("b", 4, 15)]);
    assert_eq!(must_step_back(&v, &a, 0.2, now), withheld(1, 1, 0));
    // A drain beyond the urgency horizon of another's has settled: a newcomer about to fill
    // (c, full at 105) steps back, not the settled one (a, full at 500).
    let a = drained("a", 2, 500, 3);
    let c = drained("c", 100, 105, 101);
    let v = view(5, &["a", "c"], &[a.clone(), c.clone()]);
    assert_eq!(must_step_back(&v, &c, 0.2, at(104)), withheld(1, 1, 0));
    assert_eq!(must_step_back(&v, &a, 0.2, at(104)), Verdict::Admitted);
}

#[test]
fn claims_from_the_future_are_ignored_beyond_the_clock_skew_allowance() {
    let now = at(100);
    let own = waiting("b", 99, 130);
    let within = waiting("a", 100 + CLOCK_SKEW.as_secs(), 101);
    assert_eq!(may_drain(&view(5, &[], &[within]), &own, 0.2, now), withheld(1, 1, 1));
    let beyond = waiting("a", 101 + CLOCK_SKEW.as_secs(), 101);
    assert_eq!(may_drain(&view(5, &[], &[beyond]), &own, 0.2, now), Verdict::Admitted);
    // A drain marker from the future on an instance ECS shows ACTIVE makes no holder: the
    // claim counts as a waiting one (here ahead of ours, being closer to full).
    let v = view(5, &[], &[drained("a", 95, 96, 5000)]);
    assert_eq!(may_drain(&v, &own, 0.2, now), withheld(1, 1, 1));
}

#[test]
fn claims_that_are_not_refreshed_expire_and_nothing_blocks_the_cluster_longer() {
    let own = waiting("me", 1000, 1030);
    // Every other instance carries a forged, urgent claim: withheld until they expire.
    let forged: Vec<Claim> = (0..9).map(|i| waiting(&format!("f{i}"), 1000, 1000)).collect();
    let v = view(10, &[], &forged);
    let just_before = 1000 + WAITER_TTL.as_secs() - 1;
    assert!(matches!(may_drain(&v, &own, 0.5, at(just_before)), Verdict::Withheld { .. }));
    assert_eq!(may_drain(&v, &own, 0.5, at(1000 + WAITER_TTL.as_secs())), Verdict::Admitted);
    // A holder's claim lives longer while its instance drains; past its TTL the drain still
    // counts, as an unclaimed one.
    let holder = drained("h", 0, 10, 1);
    let v = view(5, &["h"], std::slice::from_ref(&holder));
    let after = HOLDER_TTL.as_secs() + 1;
    assert_eq!(may_drain(&v, &waiting("me", after, after), 0.2, at(after)), withheld(1, 1, 0));
    assert_eq!(must_step_back(&v, &drained("me", after, after, after), 0.2, at(after)), Verdict::Admitted);
    // A drain marker on an instance ECS shows ACTIVE counts only for its grace, then as a wait.
    let v = view(5, &[], &[drained("m", 50, 60, 50)]);
    assert_eq!(may_drain(&v, &waiting("me", 55, 55), 0.2, at(55)), withheld(1, 1, 0));
    let later = 50 + MARKER_GRACE.as_secs();
    assert_eq!(may_drain(&v, &waiting("me", later, later), 0.2, at(later)), withheld(1, 1, 1));
}

#[test]
fn a_claim_cannot_jump_the_order_by_naming_the_past() {
    let now = at(100);
    // Written at 90 but "full" in 1970: counts as full at 90, behind one full at 80.
    let liar = Claim { urgency: Urgency::FullAt(UNIX_EPOCH), ..waiting("a", 90, 0) };
    let honest = waiting("b", 70, 80);
    let v = view(5, &[], &[liar.clone(), honest.clone()]);
    assert_eq!(may_drain(&v, &honest, 0.2, now), Verdict::Admitted);
    assert_eq!(may_drain(&v, &liar, 0.2, now), withheld(1, 1, 1));
}

#[test]
fn a_zero_budget_admits_nobody() {
    assert_eq!(may_drain(&view(5, &[], &[]), &waiting("a", 0, 0), 0.0, at(1)), withheld(0, 0, 0));
}

proptest! {
    /// Once every claim is visible, at most `allowed` holders keep their drains, and they are
    /// the first in the holders' order; the waiters admitted are the first waiters.
    #[test]
    fn converged_orders_keep_the_budget(
        holders in prop::collection::vec((0u64..200, 0u64..400, any::<bool>()), 0..12),
        waiters in prop::collection::vec((0u64..400, any::<bool>()), 0..12),
        unclaimed in 0usize..3,
        fraction in prop::sample::select(vec![0.1, 0.2, 0.25, 0.5, 1.0]),
    ) {
        let now = at(300);
        let mut claims = Vec::new();
        let mut draining: Vec<String> = (0..unclaimed).map(|i| format!("x{i}")).collect();
        for (i, (drained_at, full, steady)) in holders.iter().enumerate() {
            let mut c = drained(&format!("h{i:02}"), 290, *full, 100 + drained_at);
            if *steady { c.urgency = Urgency::Steady; }
            draining.push(c.instance.clone());
            claims.push(c);
        }
        for (i, (full, steady)) in waiters.iter().enumerate() {
            let mut c = waiting(&format!("w{i:02}"), 290, 290 + full);
            if *steady { c.urgency = Urgency::Steady; }
            claims.push(c);
        }
        let registered = holders.len() + waiters.len() + unclaimed + 3;
        let draining: Vec<&str> = draining.iter().map(String::as_str).collect();
        let v = view(registered, &draining, &claims);
        let allowed = allowed(registered, fraction);
        let kept = claims.iter().filter(|c| c.drained.is_some())
            .filter(|c| must_step_back(&v, c, fraction, now) == Verdict::Admitted).count();
        prop_assert_eq!(kept, holders.len().min(allowed));
        let admitted = claims.iter().filter(|c| c.drained.is_none())
            .filter(|c| may_drain(&v, c, fraction, now) == Verdict::Admitted).count();
        prop_assert_eq!(admitted, allowed.saturating_sub(unclaimed + holders.len()).min(waiters.len()));
    }
}
