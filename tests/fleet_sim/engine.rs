//! A deterministic discrete-event simulation of a fleet: every node runs nodewarden's own
//! decision code — the disk step (`daemon::disk_step`: GC, the pressure machine, the offender)
//! and the drain machine (`drain::protocol`: the claim protocol) — against models of what they
//! act on: a disk per node (fill rates from the scenario, GC that frees what is reclaimable,
//! footprints of the writers), and ECS, with
//! - reads that see other nodes' writes only after a delay drawn per read and instance (0–2 s);
//! - one token bucket for cluster reads and attribute writes (50 burst, 20 a second; a page of a
//!   list is a call), shared with 2 calls a second by others (agents, deployments, the
//!   console); `ThrottlingException` past it;
//! - `UpdateContainerInstancesState` and `StopTask` in buckets of their own, sized the same (an
//!   assumption: ECS throttles them in other categories).
//!
//! Seeded: the same seed gives the same run, event for event.

#![allow(dead_code)] // Shared by the test and the bench; each uses part of it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nodewarden::daemon::disk_step::{DiskCommand, DiskStep, StopAnswer, StopRequest};
use nodewarden::disk::DiskSample;
use nodewarden::drain::claims::{self, Claim, View};
use nodewarden::drain::protocol::{ADMISSION_FRESH, Answer, Inputs, Listed, Next, Request};
use nodewarden::drain::{ApiError, DrainMachine, DrainReason, EcsStatus, Identity, Wants};
use nodewarden::gc::GcReport;
use nodewarden::node::DiskOutlook;
use nodewarden::offender::Footprint;
use nodewarden::settings::values::Percent;
use nodewarden::settings::{DiskSettings, OffenderAction};

const GIB: f64 = (1u64 << 30) as f64;
const MB: f64 = 1_000_000.0;

/// The fleet's mix of trouble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One runaway service on every node at once (20 MB/s from 40–60% used), draining only.
    ServiceWide,
    /// The same with `[offender] action = "stop-task"`: each node stops its own copy.
    ServiceWideStopTask,
    /// A few nodes (1% of the fleet, one at least and ten at most) get a 200 MB/s runaway at
    /// random moments within a minute; the others fill slowly (50–500 KB/s), which GC keeps up
    /// with.
    FewFast,
    /// A spot wave drains 10% of the fleet at once, while 15% have a 20 MB/s runaway.
    SpotWave,
}

impl Scenario {
    pub const ALL: [Scenario; 4] =
        [Scenario::FewFast, Scenario::SpotWave, Scenario::ServiceWideStopTask, Scenario::ServiceWide];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::ServiceWide => "service-wide runaway, drain only",
            Scenario::ServiceWideStopTask => "service-wide runaway, stop-task",
            Scenario::FewFast => "a few (1%, ≤ 10) at 200 MB/s among slow fillers",
            Scenario::SpotWave => "spot wave (10%) + 15% runaways",
        }
    }

    fn duration(self) -> Duration {
        Duration::from_secs(240)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: usize,
    pub seed: u64,
    pub scenario: Scenario,
    pub max_fraction: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub nodes: usize,
    pub budget: usize,
    /// The most instances DRAINING for disk pressure at any instant…
    pub most_draining: usize,
    /// …and the most that lasted longer than the protocol's settling time (what the budget
    /// bounds once claims converge).
    pub most_draining_converged: usize,
    /// The longest stretch with more than the budget DRAINING for disk pressure.
    pub longest_excess: Duration,
    /// From "must drain" to DRAINING, for the nodes that drained.
    pub drain_delays: Vec<Duration>,
    /// Nodes admitted at their first look whose path to DRAINING held a wait that was neither
    /// a call in flight nor a backoff after AWS turned a call away (must be none).
    pub waited_beyond_round_trips: usize,
    /// The longest such wait.
    pub longest_unexplained_wait: Duration,
    /// Disks that reached 100% before their node drained or stopped its offender.
    pub full: usize,
    /// Nodes that drained for disk pressure, and that stopped their offender.
    pub drained: usize,
    pub stopped: usize,
    /// Calls against the reads-and-attributes bucket, a second on average and at the peak.
    pub bucket_calls_per_second: f64,
    pub bucket_peak_per_second: u32,
    pub throttled: u64,
    /// Free space when DRAINING was requested, the least of all drained nodes.
    pub least_free_at_drain: f64,
    pub sim_seconds: f64,
    /// Tokens taken / calls turned away, by kind of call.
    pub by_kind: String,
}

impl Outcome {
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut delays = self.drain_delays.clone();
        delays.sort();
        (!delays.is_empty()).then(|| delays[((delays.len() - 1) as f64 * p).round() as usize])
    }
}

/// The settling time after which two nodes' claims are visible to each other and a holder
/// outside the budget has stepped back: the last settle check, plus reads' lag and a call.
pub const CONVERGED_AFTER: Duration = Duration::from_secs(80);

/// splitmix64.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.unit()
    }
}

/// A deterministic lag for one read of one instance's key.
fn lag(seed: u64, read: u64, key: usize) -> Duration {
    let mut rng = Rng(seed ^ read.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (key as u64).wrapping_mul(0x9E37_79B9));
    Duration::from_secs_f64(2.0 * rng.unit())
}

struct Bucket {
    tokens: f64,
    at: Duration,
    capacity: f64,
    refill: f64,
    /// Calls admitted, by whole second.
    by_second: BTreeMap<u64, u32>,
    admitted: u64,
    throttled: u64,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            tokens: 50.0,
            at: Duration::ZERO,
            capacity: 50.0,
            refill: 20.0,
            by_second: BTreeMap::new(),
            admitted: 0,
            throttled: 0,
        }
    }

    /// Takes `n` tokens at `now`, or as many as there are and fails.
    fn take(&mut self, now: Duration, n: u32) -> bool {
        self.tokens = (self.tokens + (now - self.at).as_secs_f64() * self.refill).min(self.capacity);
        self.at = now;
        let n = f64::from(n);
        if self.tokens >= n {
            self.tokens -= n;
            self.admitted += n as u64;
            *self.by_second.entry(now.as_secs()).or_default() += n as u32;
            true
        } else {
            let got = self.tokens.floor();
            self.tokens -= got;
            self.admitted += got as u64;
            *self.by_second.entry(now.as_secs()).or_default() += got as u32;
            self.throttled += 1;
            false
        }
    }
}

/// A key whose writes become visible to each reader after its own lag.
#[derive(Debug, Clone)]
struct History<T: Clone>(Vec<(Duration, T)>);

impl<T: Clone> Default for History<T> {
    fn default() -> Self {
        History(Vec::new())
    }
}

impl<T: Clone> History<T> {
    fn write(&mut self, at: Duration, value: T) {
        self.0.push((at, value));
    }

    fn seen(&self, at: Duration, lag: Duration) -> Option<T> {
        self.0.iter().rev().find(|(written, _)| *written + lag <= at).map(|(_, v)| v.clone())
    }

    fn last(&self) -> Option<T> {
        self.0.last().map(|(_, v)| v.clone())
    }
}

/// ECS as the fleet shares it.
struct Ecs {
    seed: u64,
    reads: u64,
    registered: usize,
    status: Vec<History<EcsStatus>>,
    attributes: Vec<BTreeMap<String, History<Option<String>>>>,
    /// Instances that ever drained or claimed: what a list has to look at.
    touched: std::collections::BTreeSet<usize>,
    cluster: Bucket,
    drains: Bucket,
    stops: Bucket,
    others_at: Duration,
    /// Claims and DRAINING instances as they stand: a list's pages, counted before any read.
    claims_now: usize,
    draining_now: usize,
    /// DRAINING instances that carry a claim: what a settle read lists (`Listed::ClaimedDraining`).
    claimed_draining_now: usize,
    /// Tokens taken and calls turned away, by kind of call.
    by_kind: BTreeMap<&'static str, (u64, u64)>,
}

impl Ecs {
    fn throttled(context: &str) -> ApiError {
        ApiError::Throttled { context: context.into(), detail: "Rate exceeded".into() }
    }

    /// The rest of the account's callers: 2 calls a second.
    fn others(&mut self, now: Duration) {
        while self.others_at + Duration::from_millis(500) <= now {
            self.others_at += Duration::from_millis(500);
            let at = self.others_at;
            self.cluster.take(at, 1);
        }
    }

    fn execute(&mut self, node: usize, now: Duration, request: &Request) -> Result<Answer, ApiError> {
        self.others(now);
        let before = self.cluster.admitted;
        let was_claimed_draining = self.claimed_draining(node);
        let result = self.execute_inner(node, now, request);
        match (was_claimed_draining, self.claimed_draining(node)) {
            (false, true) => self.claimed_draining_now += 1,
            (true, false) => self.claimed_draining_now -= 1,
            _ => {}
        }
        let kind = match request {
            Request::DescribeSelf => "describe",
            Request::ReadView { .. } => "read",
            Request::PutAttribute { name, .. } if *name == claims::CLAIM_ATTRIBUTE => "claim",
            Request::PutAttribute { .. } => "signal",
            Request::DeleteAttribute { .. } => "delete",
            Request::SetStatus { .. } => "status",
            _ => "tag",
        };
        let entry = self.by_kind.entry(kind).or_default();
        entry.0 += self.cluster.admitted - before;
        entry.1 += u64::from(result.is_err());
        result
    }

    fn execute_inner(&mut self, node: usize, now: Duration, request: &Request) -> Result<Answer, ApiError> {
        match request {
            Request::DescribeSelf => {
                if !self.cluster.take(now, 1) {
                    return Err(Self::throttled("DescribeContainerInstances"));
                }
                self.reads += 1;
                let lag = lag(self.seed, self.reads, node);
                let status = self.status[node].seen(now, lag).unwrap_or(EcsStatus::Active);
                let attributes = self.attributes[node]
                    .iter()
                    .filter_map(|(name, history)| Some((name.clone(), history.seen(now, lag).flatten()?)))
                    .collect();
                Ok(Answer::SelfState { status, attributes })
            }
            // Paged, a token a page, with the SDK's retries: `PagedRead`.
            Request::ReadView { .. } => unreachable!("reads are paged (PagedRead)"),
            Request::PutAttribute { name, value } => {
                if !self.cluster.take(now, 1) {
                    return Err(Self::throttled("PutAttributes"));
                }
                self.touched.insert(node);
                let history = self.attributes[node].entry(name.to_string()).or_default();
                if *name == claims::CLAIM_ATTRIBUTE && history.last().flatten().is_none() {
                    self.claims_now += 1;
                }
                history.write(now, Some(value.clone()));
                Ok(Answer::Done)
            }
            Request::DeleteAttribute { name, .. } => {
                if !self.cluster.take(now, 1) {
                    return Err(Self::throttled("DeleteAttributes"));
                }
                let history = self.attributes[node].entry(name.to_string()).or_default();
                if *name == claims::CLAIM_ATTRIBUTE && history.last().flatten().is_some() {
                    self.claims_now -= 1;
                }
                history.write(now, None);
                Ok(Answer::Done)
            }
            Request::SetStatus { draining } => {
                if !self.drains.take(now, 1) {
                    return Err(Self::throttled("UpdateContainerInstancesState"));
                }
                self.touched.insert(node);
                let was = self.status[node].last() == Some(EcsStatus::Draining);
                match (was, *draining) {
                    (false, true) => self.draining_now += 1,
                    (true, false) => self.draining_now -= 1,
                    _ => {}
                }
                self.status[node].write(now, if *draining { EcsStatus::Draining } else { EcsStatus::Active });
                Ok(Answer::Done)
            }
            // EC2 tags: another service's limits; not modelled.
            Request::Tag { .. } | Request::Untag => Ok(Answer::Done),
        }
    }

    /// Whether an instance is DRAINING with a claim on it, as things stand.
    fn claimed_draining(&self, node: usize) -> bool {
        self.status[node].last() == Some(EcsStatus::Draining)
            && self.attributes[node].get(claims::CLAIM_ATTRIBUTE).and_then(History::last).flatten().is_some()
    }

    /// The calls a read of the cluster takes: a page per 100 entries of each list, counted on
    /// the lists as they stand when it starts, and DescribeClusters when asked.
    fn read_calls(&self, registered: bool, listed: Listed) -> u32 {
        let pages = |n: usize| n.div_ceil(100).max(1) as u32;
        let draining = match listed {
            Listed::AllDraining => self.draining_now,
            Listed::ClaimedDraining => self.claimed_draining_now,
        };
        u32::from(registered) + pages(draining) + pages(self.claims_now)
    }

    /// One page of a read: a token, or `false` when AWS turns it away.
    fn read_page(&mut self, now: Duration, holder: bool) -> bool {
        self.others(now);
        let taken = self.cluster.take(now, 1);
        self.read_kind(holder).0 += u64::from(taken);
        taken
    }

    /// Tokens taken and reads turned away, a holder's (settle reads) apart from the others'.
    fn read_kind(&mut self, holder: bool) -> &mut (u64, u64) {
        self.by_kind.entry(if holder { "settle read" } else { "read" }).or_default()
    }

    /// The view a read that finished at `now` shows (each instance's entries as seen after
    /// their own lag).
    fn view(&mut self, now: Duration, draining_at: Duration, registered: bool, listed: Listed, calls: u32) -> Answer {
        self.reads += 1;
        let read = self.reads;
        let mut view = View { registered: if registered { self.registered } else { 0 }, ..View::default() };
        for &i in &self.touched {
            let lag = lag(self.seed, read, i);
            let claim = self.attributes[i].get(claims::CLAIM_ATTRIBUTE).and_then(|h| h.seen(now, lag)).flatten();
            let listed = listed == Listed::AllDraining || claim.is_some();
            if listed && self.status[i].seen(draining_at, lag) == Some(EcsStatus::Draining) {
                view.draining.insert(instance(i));
            }
            if let Some(value) = claim {
                view.claims.extend(Claim::parse(&instance(i), &value));
            }
        }
        Answer::View { view, calls }
    }
}

/// A read of the cluster in flight, page by page as the daemon's executor makes it
/// (`ecs_api::cluster_view`): each page one call, a throttled page retried by the AWS SDK's
/// standard retry (3 attempts, full jitter under a ceiling of 1 s doubling per attempt); the
/// read fails when a page fails its last attempt, and the node's next read within
/// `ADMISSION_FRESH` of its first page goes on from there. The view it gives shows the DRAINING
/// instances as of its first page (the staler end) and the claims as of its last.
#[derive(Debug, Clone)]
struct PagedRead {
    request: Request,
    registered: bool,
    listed: Listed,
    /// When its first page was read: a resumed read's DRAINING pages are as old as that.
    started: Duration,
    calls: u32,
    left: u32,
    attempt: u32,
}

const SDK_MAX_ATTEMPTS: u32 = 3;

fn percent(text: &str) -> Percent {
    text.parse().expect("a valid percentage")
}

fn instance(i: usize) -> String {
    format!("ci-{i:05}")
}

/// One node's disk, writers and GC.
struct Disk {
    total: f64,
    used: f64,
    /// Bytes GC can still remove (unused images, exited containers).
    reclaimable: f64,
    /// The runaway: when it starts, how fast, and whether its task was stopped (then it writes
    /// nothing from `stops_at`).
    runaway: Option<(Duration, f64)>,
    stops_at: Option<Duration>,
    written: f64,
    slow_rate: f64,
    at: Duration,
}

impl Disk {
    fn advance(&mut self, to: Duration) {
        let mut rate = self.slow_rate;
        if let Some((start, speed)) = self.runaway
            && to > start
            && self.stops_at.is_none_or(|stop| to <= stop)
        {
            let from = self.at.max(start);
            let seconds = (to - from).as_secs_f64();
            self.written += speed * seconds;
            self.used = (self.used + speed * seconds).min(self.total);
        }
        let seconds = (to - self.at).as_secs_f64();
        rate *= seconds;
        self.used = (self.used + rate).min(self.total);
        self.at = to;
    }

    fn sample(&self, at: Instant) -> DiskSample {
        let available = (self.total - self.used).max(0.0) as u64;
        DiskSample {
            at,
            total_bytes: self.total as u64,
            available_bytes: available,
            total_inodes: 1_000_000,
            available_inodes: 900_000,
        }
    }
}

struct Node {
    machine: DrainMachine,
    step: DiskStep,
    disk: Disk,
    outlook: DiskOutlook,
    spot_at: Option<Duration>,
    busy: bool,
    wake: Option<Duration>,
    gc_running: bool,
    must_since: Option<Duration>,
    drained_at: Option<Duration>,
    stopped: bool,
    full: bool,
    /// Whether the node was ever withheld or turned away by AWS before it drained.
    withheld_or_throttled: bool,
    /// Time spent idle while it had to drain, neither withheld nor backing off.
    unexplained: Duration,
    idle_since: Option<Duration>,
    /// Counted among the DRAINING for disk pressure.
    counted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Check(usize),
    Wake(usize),
    CallDone(usize),
    GcDone(usize),
    Footprints(usize),
    StopDone(usize, String),
    Page(usize),
}

pub fn run(config: &Config) -> Outcome {
    let mut rng = Rng(config.seed);
    let base = Instant::now();
    let wall0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let settings = DiskSettings {
        check_interval: Duration::from_secs(1),
        gc_start: percent("85%"),
        gc_stop: percent("80%"),
        drain_at: percent("92%"),
        drain_if_full_within: Duration::from_secs(600),
        recover_below: percent("75%"),
        recover_after: Duration::from_secs(300),
    };
    let n = config.nodes;
    let action =
        if config.scenario == Scenario::ServiceWideStopTask { OffenderAction::StopTask } else { OffenderAction::None };
    let runaways: usize = match config.scenario {
        Scenario::ServiceWide | Scenario::ServiceWideStopTask => n,
        Scenario::FewFast => (n / 100).clamp(1, 10),
        Scenario::SpotWave => (n * 15 / 100).max(1),
    };
    let spots: usize = if config.scenario == Scenario::SpotWave { (n / 10).max(1) } else { 0 };
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let identity = Identity {
                cluster: "fleet".into(),
                container_instance_arn: format!(
                    "arn:aws:ecs:us-east-1:123456789012:container-instance/fleet/{}",
                    instance(i)
                ),
                ec2_instance_id: format!("i-{i:05}"),
            };
            let mut machine = DrainMachine::new(identity, None, rng.next());
            machine.assume(base, EcsStatus::Active, BTreeMap::new(), n);
            let runaway = (i < runaways).then(|| match config.scenario {
                Scenario::FewFast => (Duration::from_secs_f64(rng.between(10.0, 70.0)), 200.0 * MB),
                _ => (Duration::from_secs_f64(rng.between(10.0, 11.0)), 20.0 * MB),
            });
            let used = match config.scenario {
                Scenario::FewFast => rng.between(0.30, 0.70),
                _ => rng.between(0.40, 0.60),
            };
            Node {
                machine,
                step: DiskStep::new("/var/lib/docker".into(), action, base),
                disk: Disk {
                    total: GIB,
                    used: used * GIB,
                    reclaimable: rng.between(0.02, 0.08) * GIB,
                    runaway,
                    stops_at: None,
                    written: 0.0,
                    slow_rate: if i >= runaways { rng.between(50e3, 500e3) } else { 0.0 },
                    at: Duration::ZERO,
                },
                outlook: DiskOutlook::default(),
                // The spot wave hits nodes other than the runaways' first ones.
                spot_at: (i >= n - spots).then_some(Duration::from_secs(20)),
                busy: false,
                wake: None,
                gc_running: false,
                must_since: None,
                drained_at: None,
                stopped: false,
                full: false,
                withheld_or_throttled: false,
                unexplained: Duration::ZERO,
                idle_since: None,
                counted: false,
            }
        })
        .collect();
    let mut ecs = Ecs {
        seed: config.seed,
        reads: 0,
        registered: n,
        status: vec![History::default(); n],
        attributes: vec![BTreeMap::new(); n],
        touched: Default::default(),
        cluster: Bucket::new(),
        drains: Bucket::new(),
        stops: Bucket::new(),
        others_at: Duration::ZERO,
        claims_now: 0,
        draining_now: 0,
        claimed_draining_now: 0,
        by_kind: BTreeMap::new(),
    };
    let mut queue: BinaryHeap<Reverse<(Duration, u64, Event)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |queue: &mut BinaryHeap<Reverse<(Duration, u64, Event)>>, at: Duration, event: Event| {
        seq += 1;
        queue.push(Reverse((at, seq, event)));
    };
    for i in 0..n {
        // Checks spread over the first second, as nodes booted at different times.
        let at = Duration::from_secs_f64(rng.unit());
        push(&mut queue, at, Event::Check(i));
    }
    let mut in_flight: Vec<Option<(Request, Result<Answer, ApiError>)>> = (0..n).map(|_| None).collect();
    let mut reading: Vec<Option<PagedRead>> = vec![None; n];
    let mut parked: Vec<Option<PagedRead>> = vec![None; n];
    let mut stop_answers: BTreeMap<(usize, String), (StopRequest, StopAnswer)> = BTreeMap::new();
    let end = config.scenario.duration();
    let allowed = claims::allowed(n, config.max_fraction);
    let mut outcome = Outcome { nodes: n, budget: allowed, least_free_at_drain: 1.0, ..Outcome::default() };
    let mut draining_for_disk = 0usize;
    let mut excess_since: Option<Duration> = None;
    let mut transient_counts: Vec<(Duration, usize)> = Vec::new();
    let latency = |rng: &mut Rng| Duration::from_secs_f64(rng.between(0.02, 0.08));
    let trace: Option<usize> = std::env::var("FLEET_SIM_TRACE").ok().and_then(|v| v.parse().ok());

    while let Some(Reverse((now, _, event))) = queue.pop() {
        if now > end {
            break;
        }
        let at = base + now;
        let wall = wall0 + now;
        let node_index = match &event {
            Event::Check(i)
            | Event::Wake(i)
            | Event::CallDone(i)
            | Event::GcDone(i)
            | Event::Footprints(i)
            | Event::Page(i) => *i,
            Event::StopDone(i, _) => *i,
        };
        if let Event::Page(i) = event {
            let read = reading[i].as_mut().expect("a read in flight");
            if ecs.read_page(now, nodes[i].drained_at.is_some()) {
                read.left -= 1;
                read.attempt = 0;
                if read.left > 0 {
                    push(&mut queue, now + latency(&mut rng), Event::Page(i));
                    continue;
                }
                let read = reading[i].take().expect("a read in flight");
                in_flight[i] =
                    Some((read.request, Ok(ecs.view(now, read.started, read.registered, read.listed, read.calls))));
            } else {
                read.attempt += 1;
                if read.attempt < SDK_MAX_ATTEMPTS {
                    let ceiling = Duration::from_secs(1) * 2u32.pow(read.attempt - 1);
                    push(&mut queue, now + latency(&mut rng) + ceiling.mul_f64(rng.unit()), Event::Page(i));
                    continue;
                }
                let mut read = reading[i].take().expect("a read in flight");
                ecs.read_kind(nodes[i].drained_at.is_some()).1 += 1;
                read.attempt = 0;
                parked[i] = Some(read.clone());
                in_flight[i] = Some((read.request, Err(Ecs::throttled("ListContainerInstances"))));
            }
            push(&mut queue, now + latency(&mut rng), Event::CallDone(i));
            continue;
        }
        let node = &mut nodes[node_index];
        node.disk.advance(now);
        if node.disk.used >= node.disk.total && !node.full && node.drained_at.is_none() && !node.stopped {
            node.full = true;
        }
        let mut commands = Vec::new();
        let woken = matches!(event, Event::Wake(_) | Event::CallDone(_));
        match event {
            Event::Check(i) => {
                let sample = node.disk.sample(at);
                commands = node.step.on_sample(sample, &settings, at);
                let next = node.step.next_check_in(&settings);
                push(&mut queue, now + next, Event::Check(i));
            }
            Event::Wake(_) => {
                if node.wake != Some(now) {
                    continue;
                }
                node.wake = None;
            }
            Event::CallDone(i) => {
                let (request, result) = in_flight[i].take().expect("a call in flight");
                node.busy = false;
                if matches!(result, Err(ref e) if e.is_throttled()) && node.drained_at.is_none() {
                    node.withheld_or_throttled = true;
                }
                let succeeded = result.is_ok();
                let outlook = node.outlook.clone();
                let spot = node.spot_at.is_some_and(|t| now >= t);
                node.machine.answer(&inputs(&outlook, spot, at, wall, config.max_fraction), &request, result);
                if request == (Request::SetStatus { draining: true })
                    && succeeded
                    && node.machine.status().owner == Some(DrainReason::DiskPressure)
                    && node.drained_at.is_none()
                {
                    node.drained_at = Some(now);
                    outcome.drained += 1;
                    outcome.least_free_at_drain =
                        outcome.least_free_at_drain.min(1.0 - node.disk.used / node.disk.total);
                    if let Some(since) = node.must_since {
                        outcome.drain_delays.push(now - since);
                    }
                    if !node.withheld_or_throttled && node.unexplained > Duration::ZERO {
                        outcome.waited_beyond_round_trips += 1;
                        outcome.longest_unexplained_wait = outcome.longest_unexplained_wait.max(node.unexplained);
                    }
                }
            }
            Event::GcDone(_) => {
                node.gc_running = false;
                let target = settings.gc_stop.fraction() * node.disk.total;
                let freed = node.disk.reclaimable.min((node.disk.used - target).max(0.0));
                node.disk.reclaimable -= freed;
                node.disk.used -= freed;
                let report = GcReport {
                    started: wall,
                    duration_seconds: 1.0,
                    used_before: (node.disk.used + freed) / node.disk.total,
                    used_after: node.disk.used / node.disk.total,
                    bytes_freed: freed as i64,
                    containers_removed: 0,
                    images_removed: u32::from(freed > 0.0),
                    reached_target: node.disk.used <= target,
                    steps: Vec::new(),
                    kept: Vec::new(),
                };
                node.step.on_gc_finished(Ok(report), at, wall);
            }
            Event::Footprints(_) => {
                let footprints =
                    vec![footprint("runaway", node.disk.written as u64, true), footprint("steady", 50 << 20, false)];
                commands = node.step.on_footprints(Ok(footprints), &settings, at);
            }
            Event::Page(_) => unreachable!("pages are handled above"),
            Event::StopDone(i, task) => {
                let (request, answer) = stop_answers.remove(&(i, task)).expect("a stop in flight");
                if answer == StopAnswer::Stopped && !node.stopped {
                    node.stopped = true;
                    outcome.stopped += 1;
                    // The agent stops the container within a couple of seconds; GC may then
                    // remove its writable layer.
                    node.disk.stops_at = Some(now + Duration::from_secs(2));
                    node.disk.reclaimable += node.disk.written;
                }
                node.step.on_stop_answer(&request, answer, wall);
            }
        }
        // Carry out the disk step's commands.
        for command in commands {
            match command {
                DiskCommand::StartGc { .. } => {
                    if !node.gc_running {
                        node.gc_running = true;
                        push(&mut queue, now + Duration::from_secs(1), Event::GcDone(node_index));
                    }
                }
                DiskCommand::SampleFootprints => {
                    push(&mut queue, now + Duration::from_millis(100), Event::Footprints(node_index))
                }
                DiskCommand::StopTask(request) => {
                    let answer = if ecs.stops.take(now, 1) {
                        StopAnswer::Stopped
                    } else {
                        StopAnswer::Failed("throttled".into())
                    };
                    let delay = latency(&mut rng) * 2;
                    let task = request.task_arn.clone();
                    stop_answers.insert((node_index, task.clone()), (request, answer));
                    push(&mut queue, now + delay, Event::StopDone(node_index, task));
                }
            }
        }
        // What the node wants now, and the drain machine's next step.
        let outlook = node.step.outlook(at);
        if outlook.must_drain && !outlook.hold && node.must_since.is_none() && node.drained_at.is_none() {
            node.must_since = Some(now);
        }
        let spot_due = node.spot_at.is_some_and(|t| now >= t);
        let changed = outlook != node.outlook;
        node.outlook = outlook;
        if node.busy || !(changed || spot_due || woken) {
            continue;
        }
        if let Some(since) = node.idle_since.take()
            && let Some(must) = node.must_since
            && node.drained_at.is_none()
            && now > must
        {
            let status = node.machine.status();
            if status.withheld.is_none() && status.last_error.is_none() {
                node.unexplained += now - since.max(must);
            } else {
                node.withheld_or_throttled = true;
            }
        }
        let outlook = node.outlook.clone();
        match node.machine.next(&inputs(&outlook, spot_due, at, wall, config.max_fraction)) {
            Next::Call(request @ Request::ReadView { registered, draining: listed }) => {
                if trace == Some(node_index) {
                    eprintln!("{:8.3} node {node_index}: {request:?} (must {})", now.as_secs_f64(), outlook.must_drain);
                }
                let resumed = parked[node_index].take().filter(|p| {
                    p.listed == listed && (p.registered || !registered) && now - p.started < ADMISSION_FRESH
                });
                let read = resumed.unwrap_or_else(|| {
                    let calls = ecs.read_calls(registered, listed);
                    PagedRead { request, registered, listed, started: now, calls, left: calls, attempt: 0 }
                });
                reading[node_index] = Some(read);
                node.busy = true;
                push(&mut queue, now + latency(&mut rng), Event::Page(node_index));
            }
            Next::Call(request) => {
                let result = ecs.execute(node_index, now, &request);
                if trace == Some(node_index) {
                    eprintln!(
                        "{:8.3} node {node_index}: {request:?} -> {:?} (must {} trouble {})",
                        now.as_secs_f64(),
                        result.as_ref().map(|_| "ok").map_err(|e| e.is_throttled()),
                        outlook.must_drain,
                        outlook.trouble
                    );
                }
                node.busy = true;
                in_flight[node_index] = Some((request, result));
                push(&mut queue, now + latency(&mut rng), Event::CallDone(node_index));
            }
            Next::Idle(until) => {
                let until = until.saturating_duration_since(base).max(now + Duration::from_millis(1));
                node.idle_since = Some(now);
                if node.wake.is_none_or(|w| w != until) {
                    node.wake = Some(until);
                    push(&mut queue, until, Event::Wake(node_index));
                }
            }
        }
        // The budget over time: DRAINING for disk pressure.
        let holds = node.machine.status().owner == Some(DrainReason::DiskPressure);
        if holds != node.counted {
            node.counted = holds;
            let count = if holds { draining_for_disk + 1 } else { draining_for_disk - 1 };
            draining_for_disk = count;
            outcome.most_draining = outcome.most_draining.max(count);
            transient_counts.push((now, count));
            if count > allowed {
                excess_since.get_or_insert(now);
            } else if let Some(since) = excess_since.take() {
                outcome.longest_excess = outcome.longest_excess.max(now - since);
            }
        }
    }
    if let Some(since) = excess_since {
        outcome.longest_excess = outcome.longest_excess.max(end - since);
    }
    // The most that lasted longer than the settling time.
    transient_counts.push((end, draining_for_disk));
    outcome.most_draining_converged =
        transient_counts.windows(2).filter(|w| w[1].0 - w[0].0 >= CONVERGED_AFTER).map(|w| w[0].1).max().unwrap_or(0);
    for node in &mut nodes {
        node.disk.advance(end);
        if node.disk.used >= node.disk.total && !node.full && node.drained_at.is_none() && !node.stopped {
            node.full = true;
        }
    }
    outcome.full = nodes.iter().filter(|n| n.full).count();
    let seconds = end.as_secs_f64();
    outcome.sim_seconds = seconds;
    outcome.bucket_calls_per_second = ecs.cluster.admitted as f64 / seconds;
    outcome.bucket_peak_per_second = ecs.cluster.by_second.values().copied().max().unwrap_or(0);
    outcome.throttled = ecs.cluster.throttled + ecs.drains.throttled + ecs.stops.throttled;
    outcome.by_kind = ecs.by_kind.iter().map(|(k, v)| format!("{k} {}/{}", v.0, v.1)).collect::<Vec<_>>().join(", ");
    outcome
}

fn inputs(outlook: &DiskOutlook, spot: bool, at: Instant, wall: SystemTime, max_fraction: f64) -> Inputs<'_> {
    Inputs {
        now: at,
        wall,
        wants: Wants { disk_pressure: outlook.must_drain, spot_interruption: spot, ..Wants::default() },
        trouble: outlook.trouble,
        hold: outlook.hold,
        time_to_full: outlook.time_to_full,
        detail: &outlook.detail,
        max_fraction,
    }
}

fn footprint(name: &str, bytes: u64, task: bool) -> Footprint {
    Footprint {
        container_id: name.into(),
        name: name.into(),
        image: format!("{name}:1"),
        task_arn: task.then(|| format!("arn:aws:ecs:us-east-1:123456789012:task/fleet/{name}")),
        task_family: task.then(|| name.to_string()),
        ecs_agent: false,
        writable_bytes: bytes,
        volume_bytes: 0,
        log_bytes: 0,
        cut_short: false,
        writable_from_quota: false,
    }
}

/// The table's header and one row per run, in Markdown.
pub fn table_header() -> String {
    "| scenario | nodes | budget | most DRAINING (any instant / lasting) | must drain → DRAINING p50 / p99 | disks full | drained / stopped | least free at DRAINING | bucket calls/s (mean / peak) | throttled | waits beyond round trips |\n\
     | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        .to_string()
}

pub fn table_row(scenario: Scenario, o: &Outcome) -> String {
    let ms = |d: Option<Duration>| d.map_or("–".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
    let least_free = if o.drained == 0 { "–".to_string() } else { format!("{:.1}%", o.least_free_at_drain * 100.0) };
    format!(
        "| {} | {} | {} | {} / {} | {} / {} | {} | {} / {} | {} | {:.1} / {} | {} | {} |",
        scenario.name(),
        o.nodes,
        o.budget,
        o.most_draining,
        o.most_draining_converged,
        ms(o.percentile(0.5)),
        ms(o.percentile(0.99)),
        o.full,
        o.drained,
        o.stopped,
        least_free,
        o.bucket_calls_per_second,
        o.bucket_peak_per_second,
        o.throttled,
        o.waited_beyond_round_trips,
    )
}
