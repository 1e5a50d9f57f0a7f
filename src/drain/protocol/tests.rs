//! The drain machine against a scripted ECS that answers at once and consistently: which calls
//! come in which order, and when the machine waits. Lagging reads, throttling at fleet scale
//! and many nodes at once are the fleet simulation's (`tests/fleet_sim`).

use super::*;
use std::collections::BTreeSet;
use std::time::UNIX_EPOCH;

const LATENCY: Duration = Duration::from_millis(20);

fn identity() -> Identity {
    Identity {
        cluster: "web".into(),
        container_instance_arn: "arn:aws:ecs:us-east-1:123456789012:container-instance/web/me".into(),
        ec2_instance_id: "i-me".into(),
    }
}

/// ECS as one node sees it, consistent and immediate.
#[derive(Default)]
struct Ecs {
    status: Option<EcsStatus>,
    attributes: BTreeMap<String, String>,
    registered: usize,
    others: Vec<Claim>,
    draining: BTreeSet<String>,
    /// The next this many ECS calls are throttled.
    throttle: u32,
    tags: Option<String>,
}

impl Ecs {
    fn new(registered: usize) -> Self {
        Ecs { status: Some(EcsStatus::Active), registered, ..Ecs::default() }
    }

    fn execute(&mut self, request: &Request) -> Result<Answer, ApiError> {
        let ecs_call = !matches!(request, Request::Tag { .. } | Request::Untag);
        if ecs_call && self.throttle > 0 {
            self.throttle -= 1;
            return Err(ApiError::Throttled { context: "test".into(), detail: "Rate exceeded".into() });
        }
        Ok(match request {
            Request::DescribeSelf => Answer::SelfState {
                status: self.status.unwrap_or(EcsStatus::Other),
                attributes: self.attributes.clone(),
            },
            Request::ReadView { registered, draining: listed } => {
                let mut claims = self.others.clone();
                let mut draining = self.draining.clone();
                if let Some(claim) = self.attributes.get(claims::CLAIM_ATTRIBUTE) {
                    claims.extend(Claim::parse("me", claim));
                }
                if self.status == Some(EcsStatus::Draining) {
                    draining.insert("me".into());
                }
                if *listed == Listed::ClaimedDraining {
                    draining.retain(|i| claims.iter().any(|c| c.instance == *i));
                }
                let view = View { registered: if *registered { self.registered } else { 0 }, draining, claims };
                Answer::View { view, calls: 3 }
            }
            Request::PutAttribute { name, value } => {
                self.attributes.insert(name.to_string(), value.clone());
                Answer::Done
            }
            Request::DeleteAttribute { name, value } => {
                if self.attributes.get(*name) == Some(value) {
                    self.attributes.remove(*name);
                }
                Answer::Done
            }
            Request::SetStatus { draining } => {
                self.status = Some(if *draining { EcsStatus::Draining } else { EcsStatus::Active });
                Answer::Done
            }
            Request::Tag { text, .. } => {
                self.tags = Some(text.clone());
                Answer::Done
            }
            Request::Untag => {
                self.tags = None;
                Answer::Done
            }
        })
    }
}

/// What the node wants over time.
#[derive(Clone, Copy, Default)]
struct Want {
    disk: bool,
    trouble: bool,
    spot: bool,
    ttf: Option<u64>,
    hold: bool,
}

struct Run {
    machine: DrainMachine,
    ecs: Ecs,
    start: Instant,
    wall0: SystemTime,
    now: Duration,
    /// (when, the call) for every call made.
    calls: Vec<(Duration, Request)>,
}

impl Run {
    fn new(ecs: Ecs) -> Run {
        let start = Instant::now();
        let mut machine = DrainMachine::new(identity(), None, 7);
        machine.assume(start, EcsStatus::Active, ecs.attributes.clone(), ecs.registered);
        Run {
            machine,
            ecs,
            start,
            wall0: UNIX_EPOCH + Duration::from_secs(1_764_000_000),
            now: Duration::ZERO,
            calls: Vec::new(),
        }
    }

    fn inputs(&self, want: Want) -> Inputs<'static> {
        Inputs {
            now: self.start + self.now,
            wall: self.wall0 + self.now,
            wants: Wants { disk_pressure: want.disk, spot_interruption: want.spot, ..Wants::default() },
            trouble: want.trouble,
            hold: want.hold,
            time_to_full: want.ttf.map(Duration::from_secs),
            detail: "disk 93.0% used",
            max_fraction: 0.2,
        }
    }

    /// Runs until `until` (seconds from the start) with `want` throughout.
    fn run(&mut self, want: Want, until: f64) {
        let end = Duration::from_secs_f64(until);
        while self.now < end {
            let inputs = self.inputs(want);
            match self.machine.next(&inputs) {
                Next::Call(request) => {
                    self.now += LATENCY;
                    let result = self.ecs.execute(&request);
                    let inputs = self.inputs(want);
                    self.machine.answer(&inputs, &request, result);
                    self.calls.push((self.now, request));
                }
                Next::Idle(at) => self.now = (at - self.start).max(self.now + Duration::from_millis(1)).min(end),
            }
        }
    }

    fn kinds(&self, from: f64) -> Vec<String> {
        let from = Duration::from_secs_f64(from);
        self.calls.iter().filter(|(at, _)| *at > from).map(|(_, r)| kind(r)).collect()
    }
}

fn kind(request: &Request) -> String {
    match request {
        Request::DescribeSelf => "describe".into(),
        Request::ReadView { .. } => "read".into(),
        Request::PutAttribute { name, value } if *name == claims::CLAIM_ATTRIBUTE => {
            if value.contains("drained") {
                "mark".into()
            } else {
                "claim".into()
            }
        }
        Request::PutAttribute { .. } => "signal".into(),
        Request::DeleteAttribute { name, .. } if *name == claims::CLAIM_ATTRIBUTE => "withdraw".into(),
        Request::DeleteAttribute { .. } => "unsignal".into(),
        Request::SetStatus { draining: true } => "drain".into(),
        Request::SetStatus { draining: false } => "undrain".into(),
        Request::Tag { .. } => "tag".into(),
        Request::Untag => "untag".into(),
    }
}

const MUST: Want = Want { disk: true, trouble: true, spot: false, ttf: Some(20), hold: false };
const TROUBLE: Want = Want { disk: false, trouble: true, spot: false, ttf: Some(120), hold: false };
const CALM: Want = Want { disk: false, trouble: false, spot: false, ttf: None, hold: false };

fn holder(instance: &str, full: u64, drained: u64) -> Claim {
    let t = |s: u64| UNIX_EPOCH + Duration::from_secs(1_764_000_000 + s);
    Claim { instance: instance.into(), written: t(0), urgency: Urgency::FullAt(t(full)), drained: Some(t(drained)) }
}

#[test]
fn with_room_a_node_that_must_drain_drains_in_two_round_trips_without_waiting() {
    let mut run = Run::new(Ecs::new(10));
    run.run(MUST, 1.0);
    // A look, then the drain (a node with no claim looks before it writes one, and claims
    // once drained: its DRAINING status counts for everyone meanwhile).
    assert_eq!(run.kinds(0.0)[..2], ["read", "drain"]);
    // Nothing but round trips between "must drain" and DRAINING.
    assert_eq!(run.calls[1].0, LATENCY * 2);
    assert_eq!(run.ecs.status, Some(EcsStatus::Draining));
    // Then, in this order: the claim (marked drained), the tag, the soft signal.
    assert_eq!(run.kinds(0.0)[2..], ["mark", "tag", "signal"]);
    assert!(run.ecs.tags.as_deref().unwrap().starts_with("disk-pressure: disk 93.0% used"));
    let status = run.machine.status();
    assert!(status.draining && status.owner == Some(DrainReason::DiskPressure), "{status:?}");
    assert_eq!(status.drains_total["disk-pressure"], 1);
}

#[test]
fn a_claim_put_while_trouble_was_coming_leaves_at_most_one_read_before_the_drain() {
    let mut run = Run::new(Ecs::new(10));
    run.run(TROUBLE, 10.0);
    assert_eq!(run.kinds(0.0), ["read", "claim", "signal"]);
    assert!(run.ecs.attributes[claims::CLAIM_ATTRIBUTE].contains("full 2025-11-24T16:02:00Z"));
    // The same prediction as claimed (full at 120 s): nothing to rewrite.
    run.run(Want { ttf: Some(110), ..MUST }, 11.0);
    assert_eq!(run.kinds(10.0)[..2], ["read", "drain"]);
    // Must drain within a few seconds of the early read that found room: that read admits.
    let mut run = Run::new(Ecs::new(10));
    run.run(TROUBLE, 3.0);
    assert_eq!(run.kinds(0.0), ["read", "claim", "signal"]);
    run.run(Want { ttf: Some(110), ..MUST }, 3.5);
    assert_eq!(run.kinds(3.0)[..1], ["drain"], "{:?}", run.kinds(3.0));
    // A claim never needed is withdrawn once the trouble has been gone for 10 s (a moment's
    // calm keeps it: withdrawing and claiming again costs two writes and its place).
    let mut run = Run::new(Ecs::new(10));
    run.run(TROUBLE, 5.0);
    run.run(CALM, 6.0);
    assert_eq!(run.kinds(5.0), ["unsignal"]);
    assert!(run.ecs.attributes.contains_key(claims::CLAIM_ATTRIBUTE));
    run.run(CALM, 14.9);
    assert_eq!(run.kinds(5.0), ["unsignal"]);
    run.run(CALM, 16.0);
    assert_eq!(run.kinds(5.0), ["unsignal", "withdraw"]);
    assert!(run.ecs.attributes.is_empty());
}

#[test]
fn withheld_near_the_front_a_node_keeps_its_claim_and_looks_again_soon() {
    // 20% of 10 is 2 slots, both held.
    let mut ecs = Ecs::new(10);
    ecs.others = vec![holder("a", 10, 1), holder("b", 10, 1)];
    ecs.draining = ["a".to_string(), "b".to_string()].into();
    let mut run = Run::new(ecs);
    run.run(MUST, 30.0);
    let kinds = run.kinds(0.0);
    assert_eq!(kinds[..3], ["read", "claim", "signal"]);
    assert!(kinds.iter().filter(|k| *k == "read").count() >= 3, "looks again within seconds: {kinds:?}");
    assert!(!kinds.contains(&"drain".to_string()) && !kinds.contains(&"withdraw".to_string()), "{kinds:?}");
    assert!(run.machine.status().withheld.as_deref().unwrap().contains("2 of 10 instances"));
    // A slot frees: the next look drains.
    run.ecs.others.pop();
    run.ecs.draining.remove("b");
    run.run(MUST, 45.0);
    assert!(run.kinds(30.0).contains(&"drain".to_string()), "{:?}", run.kinds(30.0));
}

#[test]
fn withheld_far_from_the_front_a_node_withdraws_and_looks_again_rarely_without_claiming() {
    let mut ecs = Ecs::new(100);
    ecs.others = (0..20).map(|i| holder(&format!("h{i:02}"), 10, 1)).collect();
    ecs.draining = (0..20).map(|i| format!("h{i:02}")).collect();
    // Twenty waiters closer to full than this node.
    let t = |s: u64| UNIX_EPOCH + Duration::from_secs(1_764_000_000 + s);
    ecs.others.extend((0..20).map(|i| Claim {
        instance: format!("w{i:02}"),
        written: t(0),
        urgency: Urgency::FullAt(t(5)),
        drained: None,
    }));
    let mut run = Run::new(ecs);
    // (Within the waiters' claims' lifetime: they are not refreshed here.)
    run.run(MUST, 85.0);
    let kinds = run.kinds(0.0);
    assert_eq!(kinds[..2], ["read", "signal"], "{kinds:?}");
    // 100 instances × 3 calls a read × 0.1 s: 30 s and more between looks, each a read alone.
    let reads: Vec<Duration> =
        run.calls.iter().filter(|(_, r)| matches!(r, Request::ReadView { .. })).map(|(at, _)| *at).collect();
    assert!(reads.len() >= 2 && reads.windows(2).all(|w| w[1] - w[0] >= Duration::from_secs(30)), "{reads:?}");
    assert!(!kinds.contains(&"claim".to_string()), "never a claim while far back: {kinds:?}");
}

#[test]
fn a_holder_steps_back_for_one_about_to_fill_that_drained_on_a_read_that_missed_it() {
    let mut run = Run::new(Ecs::new(10));
    // Full in 50 s: drains at once (the budget looks free).
    run.run(Want { ttf: Some(50), ..MUST }, 1.0);
    assert_eq!(run.ecs.status, Some(EcsStatus::Draining));
    // Meanwhile two others, full in 5 s, drained on reads that missed this node.
    run.ecs.others = vec![holder("a", 5, 0), holder("b", 6, 0)];
    run.ecs.draining = ["a".to_string(), "b".to_string()].into();
    run.run(Want { ttf: Some(50), ..MUST }, 5.0);
    let kinds = run.kinds(1.0);
    assert_eq!(kinds[..3], ["read", "undrain", "claim"], "{kinds:?}");
    assert_eq!(run.ecs.status, Some(EcsStatus::Active));
    assert!(!run.ecs.attributes[claims::CLAIM_ATTRIBUTE].contains("drained"), "a waiting claim again");
    assert!(run.machine.status().withheld.is_some() && !run.machine.status().draining);
}

#[test]
fn a_holder_that_stays_reads_the_claims_four_times_then_settles() {
    let mut ecs = Ecs::new(10);
    // A spot drain without a claim: counted by the admission, not listed for the settle checks.
    ecs.draining.insert("spot".into());
    let mut run = Run::new(ecs);
    run.run(MUST, 200.0);
    let listed: Vec<Listed> = run
        .calls
        .iter()
        .filter_map(|(_, r)| match r {
            Request::ReadView { draining, .. } => Some(*draining),
            _ => None,
        })
        .collect();
    assert_eq!(listed.len(), 1 + claims::SETTLE_CHECKS.len(), "{:?}", run.kinds(0.0));
    assert_eq!(listed[0], Listed::AllDraining, "the admission counts every drain");
    assert!(listed[1..].iter().all(|l| *l == Listed::ClaimedDraining), "settle checks list the holders: {listed:?}");
    assert_eq!(run.ecs.status, Some(EcsStatus::Draining));
}

#[test]
fn recovery_undrains_then_withdraws_the_claim_untags_and_forgets_the_record() {
    let mut run = Run::new(Ecs::new(10));
    run.run(MUST, 1.0);
    assert!(run.machine.take_record_change().is_some_and(|r| r.is_some_and(|r| !r.pending)));
    run.run(CALM, 3.0);
    assert_eq!(run.kinds(1.0), ["undrain", "withdraw", "untag", "unsignal"]);
    assert_eq!(run.ecs.status, Some(EcsStatus::Active));
    assert!(run.ecs.attributes.is_empty() && run.ecs.tags.is_none());
    assert_eq!(run.machine.take_record_change(), Some(None));
}

#[test]
fn the_drain_is_written_down_before_ecs_hears_of_it_and_a_record_that_cannot_be_written_does_not_hold_it() {
    let mut run = Run::new(Ecs::new(10));
    let inputs = run.inputs(MUST);
    let Next::Call(read) = run.machine.next(&inputs) else { panic!("a call") };
    assert_eq!(kind(&read), "read");
    let result = run.ecs.execute(&read);
    run.machine.answer(&inputs, &read, result);
    assert_eq!(run.machine.next(&inputs), Next::Call(Request::SetStatus { draining: true }));
    // The executor is offered the record, pending, before it asks ECS.
    let record = run.machine.take_record_change().expect("offered").expect("a record");
    assert!(record.pending && record.reason == DrainReason::DiskPressure);
    // The state disk is full: the record stays in memory, offered again later; the drain goes on.
    run.machine.keep_record_change();
    run.machine.answer(&inputs, &Request::SetStatus { draining: true }, Ok(Answer::Done));
    assert!(run.machine.take_record_change().is_some_and(|r| r.is_some_and(|r| !r.pending)));
    assert!(run.machine.status().draining);
}

#[test]
fn a_forged_soft_signal_and_a_claim_nodewarden_cannot_read_are_removed_at_the_next_self_check() {
    let mut ecs = Ecs::new(10);
    ecs.attributes.insert(claims::PRESSURE_ATTRIBUTE.into(), "yes".into());
    ecs.attributes.insert(claims::CLAIM_ATTRIBUTE.into(), "9999-01-01 forged".into());
    let mut run = Run { machine: DrainMachine::new(identity(), None, 1), ..Run::new(ecs) };
    run.run(CALM, 1.0);
    assert_eq!(run.kinds(0.0), ["describe", "withdraw", "unsignal"]);
    assert!(run.ecs.attributes.is_empty());
    // One put by someone else later lasts until the next self-check (300 s for 10 instances).
    run.ecs.attributes.insert(claims::PRESSURE_ATTRIBUTE.into(), "true".into());
    run.run(CALM, 400.0);
    assert!(run.ecs.attributes.is_empty(), "{:?}", run.ecs.attributes);
    let checks: Vec<Duration> =
        run.calls.iter().filter(|(_, r)| *r == Request::DescribeSelf).map(|(at, _)| *at).collect();
    assert!(checks.len() == 2 && checks[1] <= Duration::from_secs(361), "{checks:?}");
}

#[test]
fn throttling_backs_off_at_random_and_a_spot_notice_does_not_wait_for_it() {
    let mut ecs = Ecs::new(1000);
    ecs.throttle = 3;
    let mut run = Run::new(ecs);
    run.run(MUST, 60.0);
    let first_drain = run.calls.iter().find(|(_, r)| *r == Request::SetStatus { draining: true }).map(|(at, _)| *at);
    assert!(first_drain.is_some_and(|at| at > LATENCY * 6), "{:?}", run.calls);
    assert!(run.machine.status().last_error.is_none());
    // Throttled while disk pressure waits for its backoff: a spot notice goes through at once.
    let mut ecs = Ecs::new(1000);
    ecs.throttle = 1;
    let mut run = Run::new(ecs);
    run.run(MUST, 0.03);
    assert_eq!(run.kinds(0.0), ["read"]);
    run.run(Want { spot: true, ..MUST }, 0.2);
    assert_eq!(run.kinds(0.0)[1..3], ["drain", "tag"], "{:?}", run.kinds(0.0));
}

#[test]
fn a_holder_puts_its_mark_before_its_settle_checks_however_long_aws_throttles_it() {
    let mut run = Run::new(Ecs::new(10));
    run.run(MUST, 0.03);
    assert_eq!(run.kinds(0.0), ["read", "drain"]);
    // The mark is turned away for longer than the first settle check's 3 s.
    run.ecs.throttle = 4;
    run.run(MUST, 60.0);
    let after: Vec<String> = run.kinds(0.04).into_iter().filter(|k| k != "tag").collect();
    let first_read = after.iter().position(|k| k == "read").expect("settle checks follow");
    assert_eq!(after[..first_read], ["mark"; 5], "{after:?}");
    assert!(run.ecs.attributes[claims::CLAIM_ATTRIBUTE].contains("drained"));
}

#[test]
fn a_spot_notice_drains_at_once_without_a_claim() {
    let mut run = Run::new(Ecs::new(10));
    run.run(Want { spot: true, ..CALM }, 1.0);
    assert_eq!(run.kinds(0.0), ["drain", "tag"]);
    assert!(run.ecs.attributes.is_empty());
    // With this instance's status older than 30 s, it is not asked first: the instance goes
    // away either way, and a spot wave's reads would take the cluster's read budget from
    // nodes about to fill.
    let mut run = Run::new(Ecs::new(10));
    run.run(CALM, 40.0);
    run.run(Want { spot: true, ..CALM }, 41.0);
    assert_eq!(run.kinds(40.0), ["drain", "tag"]);
    assert_eq!(run.machine.status().owner, Some(DrainReason::SpotInterruption));
}

#[test]
fn an_operators_drain_is_adopted_and_never_undone() {
    let mut ecs = Ecs::new(10);
    ecs.status = Some(EcsStatus::Draining);
    let mut run = Run { machine: DrainMachine::new(identity(), None, 1), ..Run::new(ecs) };
    run.run(CALM, 1.0);
    assert_eq!(run.kinds(0.0), ["describe", "tag"]);
    assert_eq!(run.machine.status().owner, Some(DrainReason::Operator));
    run.run(CALM, 700.0);
    assert!(!run.kinds(1.0).contains(&"undrain".to_string()));
    assert_eq!(run.ecs.status, Some(EcsStatus::Draining));
}

#[test]
fn a_read_that_lags_this_nodes_own_drain_is_not_taken_for_an_undrain() {
    let mut run = Run::new(Ecs::new(10));
    run.run(MUST, 1.0);
    let inputs = run.inputs(MUST);
    // A DescribeSelf answer from before the drain arrives after it.
    let stale = Answer::SelfState { status: EcsStatus::Active, attributes: run.ecs.attributes.clone() };
    run.machine.answer(&inputs, &Request::DescribeSelf, Ok(stale));
    assert!(run.machine.status().draining, "the drain is still nodewarden's");
    assert_eq!(run.machine.take_record_change().map(|r| r.is_some()), Some(true));
}

#[test]
fn a_hold_for_the_offenders_stop_delays_a_new_drain_and_never_undoes_one() {
    // Held: claimed (trouble), no drain.
    let mut run = Run::new(Ecs::new(10));
    run.run(Want { hold: true, ..MUST }, 5.0);
    assert!(!run.kinds(0.0).contains(&"drain".to_string()), "{:?}", run.kinds(0.0));
    run.run(MUST, 6.0);
    assert!(run.kinds(5.0).contains(&"drain".to_string()), "{:?}", run.kinds(5.0));
    // Drained, then a new stop is awaited: the drain stays.
    run.run(Want { hold: true, ..MUST }, 60.0);
    assert!(!run.kinds(6.0).contains(&"undrain".to_string()), "{:?}", run.kinds(6.0));
    assert_eq!(run.ecs.status, Some(EcsStatus::Draining));
}
