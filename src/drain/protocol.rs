//! The drain controller as a pure state machine: what this node knows of ECS (its status, its
//! claim, its attributes, the last read of the cluster) and what it wants (from the disk loop
//! and IMDS) decide the one ECS call to make next, or how long to stay idle. An executor makes
//! the call and hands the answer back (`answer`); the daemon's drain loop does so against AWS,
//! the fleet simulation (`benches/fleet_sim.rs`) against a model of ECS. No I/O, no clock:
//! time comes in with the inputs, randomness from a seed.
//!
//! The rules, in the order `next` applies them:
//! 1. after a failed call, wait out its backoff (random only here: retries and throttling),
//!    unless what the node wants got stronger since;
//! 2. know this instance's status (once at start, then every few minutes, or fresh before a
//!    spot or termination drain and before an undrain);
//! 3. drain, undrain, adopt or reclassify as `policy` decides; a disk-pressure drain goes
//!    through the claim protocol (`claims`): claim (at once, or already while trouble was
//!    coming), read the cluster, drain if within the budget: a few round trips, no waiting;
//! 4. after draining for disk pressure, read the claims again a few times and step back if
//!    another holder comes first;
//! 5. keep the claim as it should be: put early when trouble comes, mark it drained, refresh
//!    it, withdraw it when it is not needed;
//! 6. tags, then the soft signal (`nodewarden.disk-pressure`), which waits while AWS throttles.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::claims::{self, Claim, Urgency, Verdict, View};
use super::ecs_api::{ApiError, Identity};
use super::policy::{self, Decision, DrainReason, EcsStatus, Wants};
use super::record::DrainRecord;

/// A spot, termination or undrain decision needs this instance's status at most this old.
const ACT_FRESH: Duration = Duration::from_secs(30);
/// ECS reads may lag this node's own writes by this much: an older answer contradicting a write
/// this recent is not news.
const LAG_ALLOWANCE: Duration = Duration::from_secs(10);
/// The cluster's registered count is read again after this long.
const REGISTERED_FRESH: Duration = Duration::from_secs(600);
/// An admission read's verdict is acted on within this, or read again; a read cut short is
/// resumed within this of its first page (`EcsApi::cluster_view`), so no view is staler than
/// ECS's own lag allowance by the time it is acted on.
pub const ADMISSION_FRESH: Duration = Duration::from_secs(5);
/// How long a waiting claim stays after trouble passed before it is withdrawn.
const CLAIM_LINGER: Duration = Duration::from_secs(10);
/// The shortest ceiling of a throttled retry's jitter, however close to full the disk is.
const URGENT_RETRY_FLOOR: Duration = Duration::from_millis(500);
/// The soft signal and early claims wait this long after AWS last throttled this node.
const THROTTLE_QUIET: Duration = Duration::from_secs(30);
/// Withheld waiters this close to the front keep their claims (and look again soon), so a freed
/// slot goes to the one closest to full; the rest withdraw and look again rarely.
pub const KEEP_WAITERS: usize = 10;
/// A waiting claim's prediction is rewritten when it moved this much (and at most this often).
const URGENCY_SLACK: Duration = Duration::from_secs(10);
const URGENCY_REWRITE_EVERY: Duration = Duration::from_secs(5);

/// Which DRAINING instances a read of the cluster lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Every one: an admission counts the unclaimed drains (spot, termination, operators).
    AllDraining,
    /// Only those that carry a claim: a holder's settle check orders the holders alone, and a
    /// spot wave's thousand drains would cost it ten pages more each time.
    ClaimedDraining,
}

/// What the node wants and knows at this moment.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub now: Instant,
    pub wall: SystemTime,
    pub wants: Wants,
    /// Trouble is coming (see `PressureMachine::trouble`): claim early, signal softly.
    pub trouble: bool,
    /// Do not start a disk-pressure drain now (the offender's stop is awaited); one already
    /// made stays.
    pub hold: bool,
    /// Predicted time until the disk is full at the current rate.
    pub time_to_full: Option<Duration>,
    /// Why, for the drain's record and tags.
    pub detail: &'a str,
    pub max_fraction: f64,
}

/// One call to ECS (or EC2, for tags), for an executor to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// This container instance: its status and attributes (DescribeContainerInstances).
    DescribeSelf,
    /// The cluster as a drain decision needs it (`EcsApi::cluster_view`); the registered count
    /// only when asked (DescribeClusters).
    ReadView {
        registered: bool,
        draining: Listed,
    },
    PutAttribute {
        name: &'static str,
        value: String,
    },
    DeleteAttribute {
        name: &'static str,
        value: String,
    },
    SetStatus {
        draining: bool,
    },
    /// EC2 tags on this instance: why and since when it drained.
    Tag {
        text: String,
        since: SystemTime,
    },
    Untag,
}

/// What a call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    SelfState {
        status: EcsStatus,
        attributes: BTreeMap<String, String>,
    },
    /// `calls`: how many calls the read took (pages), which sizes the waits between reads.
    View {
        view: View,
        calls: u32,
    },
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Call(Request),
    Idle(Instant),
}

/// What a view was read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Admission of this node's own claim (or, without a claim, a look before claiming).
    Admission,
    /// Trouble is coming: is there room to claim early?
    Early,
    /// A holder's check after draining.
    Settle,
}

#[derive(Debug, Clone)]
struct OwnStatus {
    status: EcsStatus,
    at: Instant,
}

#[derive(Debug, Clone)]
struct OwnClaim {
    claim: Claim,
    /// When ECS took the last write (`None`: adopted from an answer; refresh at once).
    put_at: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Settle {
    drained: SystemTime,
    base: Instant,
    /// Checks done (`claims::SETTLE_CHECKS`).
    done: usize,
}

#[derive(Debug, Clone)]
struct Withheld {
    until: Instant,
    keep: bool,
}

#[derive(Debug, Clone)]
struct Retry {
    at: Instant,
    wants: (Wants, bool),
}

/// The drain controller's memory. See the module comment for the rules.
#[derive(Debug, Clone)]
pub struct DrainMachine {
    identity: Identity,
    instance: String,
    record: Option<DrainRecord>,
    record_changed: bool,
    own: Option<OwnStatus>,
    /// This node's own last status write, which lagging reads must not undo.
    set: Option<(EcsStatus, Instant)>,
    claim: Option<OwnClaim>,
    /// An attribute on this instance that nodewarden did not put and cannot read: removed.
    foreign: Option<(&'static str, String)>,
    /// The soft signal as ECS holds it (its value, to remove it by value), once known.
    pressure: Option<Option<String>>,
    pressure_put_at: Option<Instant>,
    pending: Option<Purpose>,
    admitted: Option<Instant>,
    /// Trouble only: when the last look found room to claim early, and when to look again.
    early_room: Option<Instant>,
    early_next: Option<Instant>,
    /// Since when neither trouble nor a drain is wanted.
    calm_since: Option<Instant>,
    registered: Option<(usize, Instant)>,
    view_calls: u32,
    settle: Option<Settle>,
    step_back: bool,
    withheld: Option<Withheld>,
    retry: Option<Retry>,
    failures: u32,
    throttles: u32,
    last_throttle: Option<Instant>,
    tagged: Option<String>,
    next_self_check: Option<Instant>,
    rng: u64,
    status: super::DrainStatus,
}

impl DrainMachine {
    /// A machine for this instance; `record` is the drain record found on disk at start.
    /// `seed` drives the jitter of retries and waits (any value; the daemon takes the clock).
    pub fn new(identity: Identity, record: Option<DrainRecord>, seed: u64) -> Self {
        let instance = super::ecs_api::instance_id(&identity.container_instance_arn).to_string();
        let mut machine = DrainMachine {
            instance,
            record,
            record_changed: false,
            own: None,
            set: None,
            claim: None,
            foreign: None,
            pressure: None,
            pressure_put_at: None,
            pending: None,
            admitted: None,
            early_room: None,
            early_next: None,
            calm_since: None,
            registered: None,
            view_calls: 1,
            settle: None,
            step_back: false,
            withheld: None,
            retry: None,
            failures: 0,
            throttles: 0,
            last_throttle: None,
            tagged: None,
            next_self_check: None,
            rng: seed | 1,
            status: super::DrainStatus { identity: Some(identity.clone()), ..super::DrainStatus::default() },
            identity,
        };
        machine.refresh_status();
        machine
    }

    /// Starts as a daemon that has run a while would be: its status and attributes known (the
    /// fleet simulation's steady state; the daemon itself always asks first).
    /// Its next self-check comes anywhere within the idle refresh, as a fleet's are spread.
    pub fn assume(&mut self, now: Instant, status: EcsStatus, attributes: BTreeMap<String, String>, registered: usize) {
        self.on_self(now, status, attributes);
        self.know_registered(now, registered);
        self.next_self_check = Some(now + self.idle_refresh().mul_f64(self.random()));
    }

    /// The cluster's registered count, as read at start: it sizes the waits before the first
    /// read of the cluster (the daemon reads it once when it finds its identity).
    pub fn know_registered(&mut self, now: Instant, registered: usize) {
        self.registered = Some((registered, now));
    }

    /// What /status shows.
    pub fn status(&self) -> &super::DrainStatus {
        &self.status
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The drain record, if it changed since the last call: `Some(None)` means remove it.
    /// The executor writes it down before its next call; one that cannot be written (a full
    /// disk) is handed back with `keep_record_change`, and the drain goes on from memory.
    pub fn take_record_change(&mut self) -> Option<Option<DrainRecord>> {
        std::mem::take(&mut self.record_changed).then(|| self.record.clone())
    }

    /// The record could not be written: offer it again later.
    pub fn keep_record_change(&mut self) {
        self.record_changed = true;
    }

    /// An operator's `nodewarden drain`/`undrain` rewrote the record on disk: it is the truth.
    pub fn adopt_record(&mut self, record: Option<DrainRecord>) {
        if self.record != record && !self.record_changed {
            self.record = record;
            self.settle = None;
            self.refresh_status();
        }
    }

    /// The next call to make, or when to look again (sooner if the inputs change).
    pub fn next(&mut self, i: &Inputs<'_>) -> Next {
        if !i.wants.disk_pressure {
            self.withheld = None;
            self.admitted = None;
            self.status.withheld = None;
        }
        if let Some(retry) = &self.retry {
            if i.now < retry.at && !stronger(retry.wants, (i.wants, i.trouble)) {
                return Next::Idle(retry.at);
            }
            self.retry = None;
        }
        let self_check_due = self.next_self_check.is_none_or(|at| i.now >= at);
        if self.own.is_none() || self_check_due {
            return self.call(Request::DescribeSelf);
        }
        if let Some((name, value)) = self.foreign.clone() {
            return self.call(Request::DeleteAttribute { name, value });
        }
        let status = self.own_status();
        let decision = policy::decide(i.wants, self.record.as_ref().map(|r| r.reason), status);
        match decision {
            Decision::Drain(DrainReason::DiskPressure) if i.hold => {}
            Decision::Drain(DrainReason::DiskPressure) => {
                if let Some(next) = self.claim_and_drain(i) {
                    return next;
                }
            }
            Decision::Drain(reason) => {
                // The instance goes away either way, and DRAINING twice is harmless: a spot
                // wave or a scale-in drains on the status it knows, without a read of its own
                // that would take the cluster's read budget from nodes about to fill. A spot
                // stop is undone later, so it drains only on a fresh status.
                let goes_away = matches!(reason, DrainReason::SpotInterruption | DrainReason::Termination);
                if !self.own_fresh(i.now) && (!goes_away || self.own_status() != EcsStatus::Active) {
                    return self.call(Request::DescribeSelf);
                }
                self.intend(reason, i.detail, i.wall);
                return self.call(Request::SetStatus { draining: true });
            }
            Decision::Undrain => {
                if !self.own_fresh(i.now) {
                    return self.call(Request::DescribeSelf);
                }
                return self.call(Request::SetStatus { draining: false });
            }
            Decision::Reclassify(reason) => {
                tracing::warn!(reason = reason.as_str(), detail = i.detail, "the drain now has a stronger reason");
                self.note_drain(reason, i.detail, i.wall);
                self.settle = None;
                self.step_back = false;
            }
            Decision::AdoptOperatorDrain => {
                tracing::info!("this instance was set to DRAINING by someone else: an operator's drain, never undone");
                self.note_drain(DrainReason::Operator, "drained outside nodewarden", i.wall);
            }
            Decision::Nothing => {
                if self.step_back {
                    return self.call(Request::SetStatus { draining: false });
                }
                if self.next_settle_check().is_some_and(|at| i.now >= at) {
                    self.pending = Some(Purpose::Settle);
                    let registered = self.registered_stale(i.now);
                    return self.call(Request::ReadView { registered, draining: Listed::ClaimedDraining });
                }
            }
        }
        if let Some(request) = self.claim_upkeep(i) {
            return self.call(request);
        }
        if let Some(request) = self.tags() {
            return self.call(request);
        }
        if let Some(request) = self.soft_signal(i) {
            return self.call(request);
        }
        Next::Idle(self.wake_at(i))
    }

    /// Hands back what the last call returned.
    pub fn answer(&mut self, i: &Inputs<'_>, request: &Request, result: Result<Answer, ApiError>) {
        let purpose = self.pending.take();
        let answer = match result {
            Ok(answer) => answer,
            Err(error) => return self.failed(i, request, error),
        };
        self.failures = 0;
        self.throttles /= 2;
        self.status.last_error = None;
        match (request, answer) {
            (Request::DescribeSelf, Answer::SelfState { status, attributes }) => {
                self.on_self(i.now, status, attributes);
                self.next_self_check = Some(i.now + self.jittered(self.idle_refresh()));
            }
            (Request::ReadView { .. }, Answer::View { view, calls }) => self.on_view(i, view, calls, purpose),
            (Request::PutAttribute { name, value }, Answer::Done) => {
                if *name == claims::CLAIM_ATTRIBUTE {
                    let claim = Claim::parse(&self.instance, value)
                        .expect("nodewarden parses the claims it writes (tested in claims)");
                    self.status.claimed_at.get_or_insert(claim.written);
                    self.claim = Some(OwnClaim { claim, put_at: Some(i.now) });
                } else {
                    self.set_pressure(Some(value.clone()), i.now);
                }
            }
            (Request::DeleteAttribute { name, value }, Answer::Done) => {
                if self.foreign.as_ref().is_some_and(|(n, v)| n == name && v == value) {
                    self.foreign = None;
                }
                if *name == claims::CLAIM_ATTRIBUTE {
                    if self.claim.as_ref().is_some_and(|c| c.claim.value() == *value) {
                        self.claim = None;
                        self.status.claimed_at = None;
                    }
                } else {
                    self.set_pressure(None, i.now);
                }
            }
            (Request::SetStatus { draining }, Answer::Done) => self.on_set(i, *draining),
            (Request::Tag { text, .. }, Answer::Done) => self.tagged = Some(text.clone()),
            (Request::Untag, Answer::Done) => self.tagged = None,
            (request, answer) => {
                tracing::error!(?request, ?answer, "an answer that does not fit its call; ignored");
            }
        }
        self.refresh_status();
    }

    fn call(&mut self, request: Request) -> Next {
        Next::Call(request)
    }

    fn own_status(&self) -> EcsStatus {
        self.own.as_ref().map_or(EcsStatus::Other, |o| o.status)
    }

    fn own_fresh(&self, now: Instant) -> bool {
        self.own.as_ref().is_some_and(|o| now.duration_since(o.at) < ACT_FRESH)
    }

    fn registered_stale(&self, now: Instant) -> bool {
        self.registered.is_none_or(|(_, at)| now.duration_since(at) >= REGISTERED_FRESH)
    }

    fn registered(&self) -> usize {
        self.registered.map_or(0, |(n, _)| n)
    }

    fn recently_throttled(&self, now: Instant) -> bool {
        self.last_throttle.is_some_and(|at| now.duration_since(at) < THROTTLE_QUIET)
    }

    /// The urgency this node would claim now.
    fn urgency(i: &Inputs<'_>) -> Urgency {
        match i.time_to_full {
            Some(ttf) => Urgency::FullAt(i.wall + Duration::from_secs(ttf.as_secs())),
            None => Urgency::Steady,
        }
    }

    fn new_claim(&self, i: &Inputs<'_>, drained: Option<SystemTime>) -> Claim {
        let urgency = match (&self.claim, drained) {
            // A holder keeps the prediction it drained with: it orders the holders.
            (Some(own), Some(_)) => own.claim.urgency,
            _ => Self::urgency(i),
        };
        // Milliseconds are what the value carries.
        let written = SystemTime::UNIX_EPOCH
            + Duration::from_millis(i.wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64));
        let round = |t: SystemTime| {
            SystemTime::UNIX_EPOCH
                + Duration::from_secs(t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
        };
        let urgency = match urgency {
            Urgency::FullAt(at) => Urgency::FullAt(round(at)),
            Urgency::Steady => Urgency::Steady,
        };
        Claim { instance: self.instance.clone(), written, urgency, drained: drained.map(round) }
    }

    /// Rule 3 for disk pressure: claim, read, drain. `None` while withheld (the upkeep and the
    /// idle wait follow).
    fn claim_and_drain(&mut self, i: &Inputs<'_>) -> Option<Next> {
        if self.withheld.as_ref().is_some_and(|w| i.now < w.until) {
            return None;
        }
        // An early claim's read that found room a moment ago admits as an admission read
        // does: the same view of the cluster, one read fewer where AWS throttles hardest.
        let fresh = |at: &mut Instant| i.now.duration_since(*at) < ADMISSION_FRESH;
        let admitted = self.admitted.take_if(fresh).is_some() | self.early_room.take_if(fresh).is_some();
        match &self.claim {
            Some(own) if own.claim.drained.is_none() && !self.urgency_moved(i) => {}
            // Without a claim, a node looks before it claims: while the budget is spent that
            // costs one read and no write (and no removal later), and the claims ECS lists stay
            // about as many as the budget, which keeps every node's reads short. Admitted, it
            // drains at once and claims after (its DRAINING status counts for everyone until
            // the claim shows): one write fewer before the drain, where AWS throttles hardest.
            None => {}
            Some(_) if admitted => {}
            Some(_) => {
                let claim = self.new_claim(i, None);
                return Some(self.call(Request::PutAttribute { name: claims::CLAIM_ATTRIBUTE, value: claim.value() }));
            }
        }
        if admitted {
            tracing::debug!(claim = %self.claim.as_ref().map(|c| c.claim.value()).unwrap_or_default(), "within the drain budget");
            self.intend(DrainReason::DiskPressure, i.detail, i.wall);
            return Some(self.call(Request::SetStatus { draining: true }));
        }
        self.pending = Some(Purpose::Admission);
        Some(self.call(Request::ReadView { registered: self.registered_stale(i.now), draining: Listed::AllDraining }))
    }

    /// Whether the waiting claim's prediction moved enough to be written again.
    fn urgency_moved(&self, i: &Inputs<'_>) -> bool {
        let Some(own) = &self.claim else { return false };
        if own.put_at.is_some_and(|at| i.now.duration_since(at) < URGENCY_REWRITE_EVERY) {
            return false;
        }
        match (own.claim.urgency, Self::urgency(i)) {
            (Urgency::FullAt(was), Urgency::FullAt(now)) => {
                let moved =
                    if now > was { now.duration_since(was) } else { was.duration_since(now) }.unwrap_or_default();
                let remaining = now.duration_since(i.wall).unwrap_or_default();
                moved > URGENCY_SLACK.max(remaining / 4)
            }
            (a, b) => a != b,
        }
    }

    /// Rule 5: the claim as it should be now.
    fn claim_upkeep(&mut self, i: &Inputs<'_>) -> Option<Request> {
        if !i.trouble {
            self.early_next = None;
            self.early_room = None;
        }
        let status = self.own_status();
        let ours = self.record.as_ref().map(|r| r.reason);
        let holder = ours == Some(DrainReason::DiskPressure) && status == EcsStatus::Draining && !self.step_back;
        let keep = self.withheld.as_ref().is_none_or(|w| w.keep);
        let must = i.wants.disk_pressure && status == EcsStatus::Active && ours.is_none();
        let early = i.trouble && status == EcsStatus::Active && ours.is_none() && !self.recently_throttled(i.now);
        let wanted = holder || ((must || early) && keep);
        let put = |claim: Claim| Request::PutAttribute { name: claims::CLAIM_ATTRIBUTE, value: claim.value() };
        let calm = !i.trouble && !i.wants.disk_pressure;
        self.calm_since = if calm { Some(self.calm_since.unwrap_or(i.now)) } else { None };
        // A waiting claim outlives a moment's calm (GC's frees read as a writer slowing): a
        // claim withdrawn and put again costs two writes where AWS throttles hardest, and
        // the node its place in the order.
        let lingers = calm
            && !holder
            && self.calm_since.is_some_and(|since| i.now.duration_since(since) < CLAIM_LINGER)
            && self.claim.as_ref().is_some_and(|c| c.claim.drained.is_none());
        match &self.claim {
            Some(_) if !wanted && lingers => None,
            Some(own) if !wanted => {
                Some(Request::DeleteAttribute { name: claims::CLAIM_ATTRIBUTE, value: own.claim.value() })
            }
            None if holder => {
                let drained = self.drained_at();
                Some(put(self.new_claim(i, Some(drained))))
            }
            // Withheld near the front: in the order, so a freed slot goes to the closest to full.
            None if must && keep && self.withheld.is_some() => Some(put(self.new_claim(i, None))),
            None if early && keep && !must => {
                if self.early_room.is_some_and(|at| i.now.duration_since(at) < ADMISSION_FRESH) {
                    Some(put(self.new_claim(i, None)))
                } else if self.early_next.is_none_or(|at| i.now >= at) {
                    self.pending = Some(Purpose::Early);
                    Some(Request::ReadView { registered: self.registered_stale(i.now), draining: Listed::AllDraining })
                } else {
                    None
                }
            }
            Some(own) if holder => {
                let due = own.put_at.is_none_or(|at| i.now.duration_since(at) >= claims::HOLDER_REFRESH);
                (own.claim.drained.is_none() || due).then(|| put(self.new_claim(i, Some(self.drained_at()))))
            }
            Some(own) => {
                let due = own.put_at.is_none_or(|at| i.now.duration_since(at) >= claims::WAITER_REFRESH);
                let stale_marker = own.claim.drained.is_some();
                (due || stale_marker || self.urgency_moved(i)).then(|| put(self.new_claim(i, None)))
            }
            None => None,
        }
    }

    /// When the next settle check is due. The mark comes first: until it shows, the other
    /// holders' settle checks cannot see this drain to order it (and under throttling a settle
    /// read may take long).
    fn next_settle_check(&self) -> Option<Instant> {
        let marked = self.claim.as_ref().is_some_and(|c| c.claim.drained.is_some());
        self.settle.as_ref().filter(|_| marked).map(|s| s.base + claims::SETTLE_CHECKS[s.done])
    }

    fn drained_at(&self) -> SystemTime {
        self.settle
            .as_ref()
            .map(|s| s.drained)
            .or(self.record.as_ref().map(|r| r.since))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Rule 6: the tags say why the instance drains, once the drain is ECS's.
    fn tags(&self) -> Option<Request> {
        let desired = self.record.as_ref().filter(|r| !r.pending).map(|r| (tag_text(r), r.since));
        match (desired, &self.tagged) {
            (Some((text, since)), tagged) if tagged.as_deref() != Some(text.as_str()) => {
                Some(Request::Tag { text, since })
            }
            (None, Some(_)) => Some(Request::Untag),
            _ => None,
        }
    }

    /// Rule 6: the soft signal while trouble lasts; it never competes with a throttled drain.
    fn soft_signal(&self, i: &Inputs<'_>) -> Option<Request> {
        let desired = i.trouble || i.wants.disk_pressure;
        let known = self.pressure.as_ref()?;
        match (desired, known) {
            (true, None) if !self.recently_throttled(i.now) => {
                // "true" is the only value ever set (moto deletes only on a matching value).
                Some(Request::PutAttribute { name: claims::PRESSURE_ATTRIBUTE, value: "true".into() })
            }
            (false, Some(value)) => {
                Some(Request::DeleteAttribute { name: claims::PRESSURE_ATTRIBUTE, value: value.clone() })
            }
            _ => None,
        }
    }

    fn set_pressure(&mut self, value: Option<String>, now: Instant) {
        let on = value.is_some();
        if self.pressure.as_ref().map(Option::is_some) != Some(on) {
            tracing::info!(on, "{} attribute {}", if on { "set" } else { "removed" }, claims::PRESSURE_ATTRIBUTE);
        }
        self.pressure = Some(value);
        self.pressure_put_at = Some(now);
    }

    fn wake_at(&self, i: &Inputs<'_>) -> Instant {
        let mut at = self.next_self_check.unwrap_or(i.now);
        if let Some(settle) = self.next_settle_check() {
            at = at.min(settle);
        }
        if let Some(withheld) = &self.withheld {
            at = at.min(withheld.until);
        }
        if let Some(early) = self.early_next.filter(|_| i.trouble && self.claim.is_none()) {
            at = at.min(early);
        }
        if let Some(since) = self.calm_since.filter(|_| self.claim.as_ref().is_some_and(|c| c.claim.drained.is_none()))
        {
            at = at.min(since + CLAIM_LINGER);
        }
        if let Some(own) = &self.claim {
            let every = if own.claim.drained.is_some() { claims::HOLDER_REFRESH } else { claims::WAITER_REFRESH };
            at = at.min(own.put_at.map_or(i.now, |put| put + every));
        }
        if let Some(quiet) = self.last_throttle.map(|t| t + THROTTLE_QUIET)
            && quiet > i.now
            && (i.trouble || i.wants.disk_pressure)
        {
            at = at.min(quiet);
        }
        at.max(i.now)
    }

    /// This instance's own status, from a read; a read contradicting this node's own recent
    /// write is lag, not news.
    fn observe_own(&mut self, now: Instant, status: EcsStatus) {
        let status = match self.set {
            Some((written, at)) if now.duration_since(at) < LAG_ALLOWANCE && status != written => written,
            _ => status,
        };
        self.own = Some(OwnStatus { status, at: now });
        // The record against what ECS says (a crash, a failed call, an operator).
        match (&mut self.record, status) {
            (Some(record), EcsStatus::Active) if record.pending => {
                tracing::info!("a drain nodewarden intended never reached ECS; deciding again");
                self.forget_record();
            }
            (Some(_), EcsStatus::Active) => {
                tracing::warn!("this instance is ACTIVE again although nodewarden drained it: someone undrained it");
                self.forget_record();
                self.tagged.get_or_insert_default();
            }
            (Some(record), EcsStatus::Draining) if record.pending => {
                tracing::info!("ECS took the drain nodewarden intended before it could note so; it is nodewarden's");
                record.pending = false;
                self.record_changed = true;
            }
            _ => {}
        }
    }

    fn on_self(&mut self, now: Instant, status: EcsStatus, attributes: BTreeMap<String, String>) {
        self.observe_own(now, status);
        let recently = |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) < LAG_ALLOWANCE);
        // The claim on this instance is this node's to keep, whoever wrote it: one it does not
        // know (from before a restart, or forged) is adopted and then kept or withdrawn by the
        // rules; one it cannot read is removed.
        if !recently(self.claim.as_ref().and_then(|c| c.put_at)) {
            match attributes.get(claims::CLAIM_ATTRIBUTE) {
                Some(value) if self.claim.as_ref().is_some_and(|c| c.claim.value() == *value) => {}
                Some(value) => match Claim::parse(&self.instance, value) {
                    Some(claim) => self.claim = Some(OwnClaim { claim, put_at: None }),
                    None => self.foreign = Some((claims::CLAIM_ATTRIBUTE, value.clone())),
                },
                None => self.claim = None,
            }
        }
        if !recently(self.pressure_put_at) {
            self.pressure = Some(attributes.get(claims::PRESSURE_ATTRIBUTE).cloned());
        }
    }

    fn on_view(&mut self, i: &Inputs<'_>, mut view: View, calls: u32, purpose: Option<Purpose>) {
        self.view_calls = calls.max(1);
        match view.registered {
            0 => view.registered = self.registered(),
            n => self.registered = Some((n, i.now)),
        }
        // This instance's own status is ECS's answer to DescribeSelf alone (the record follows
        // it); a read showing it DRAINING unasked for is checked with one before acting.
        let own_draining = view.draining.contains(&self.instance);
        let recently_set = self.set.is_some_and(|(_, at)| i.now.duration_since(at) < LAG_ALLOWANCE);
        if own_draining && self.own_status() != EcsStatus::Draining && !recently_set {
            self.next_self_check = Some(i.now);
            return;
        }
        match purpose {
            Some(Purpose::Admission) => {
                let candidate = match &self.claim {
                    Some(own) => own.claim.clone(),
                    None => self.new_claim(i, None),
                };
                match claims::may_drain(&view, &candidate, i.max_fraction, i.wall) {
                    Verdict::Admitted => {
                        self.admitted = Some(i.now);
                        self.withheld = None;
                    }
                    Verdict::Withheld { ahead, allowed, waiters_ahead } => {
                        self.withhold(i, ahead, allowed, waiters_ahead < KEEP_WAITERS, view.registered)
                    }
                }
            }
            Some(Purpose::Early) => {
                let candidate = self.new_claim(i, None);
                match claims::may_drain(&view, &candidate, i.max_fraction, i.wall) {
                    Verdict::Admitted => self.early_room = Some(i.now),
                    Verdict::Withheld { .. } => {
                        let wait = self.far_recheck(view.registered);
                        self.early_next = Some(i.now + wait);
                    }
                }
            }
            Some(Purpose::Settle) => {
                let Some(settle) = &mut self.settle else { return };
                let own = Claim {
                    drained: Some(settle.drained),
                    ..self.claim.as_ref().map(|c| c.claim.clone()).unwrap_or_else(|| Claim {
                        instance: self.instance.clone(),
                        written: settle.drained,
                        urgency: Urgency::Steady,
                        drained: None,
                    })
                };
                match claims::must_step_back(&view, &own, i.max_fraction, i.wall) {
                    Verdict::Admitted => {
                        settle.done += 1;
                        if settle.done == claims::SETTLE_CHECKS.len() {
                            self.settle = None;
                        }
                    }
                    Verdict::Withheld { ahead, allowed, .. } => {
                        tracing::warn!(ahead, allowed, "another node comes first in the drain budget: stepping back");
                        self.step_back = true;
                        self.withhold(i, ahead, allowed, true, view.registered);
                    }
                }
            }
            None => {}
        }
    }

    fn on_set(&mut self, i: &Inputs<'_>, draining: bool) {
        let status = if draining { EcsStatus::Draining } else { EcsStatus::Active };
        self.set = Some((status, i.now));
        self.own = Some(OwnStatus { status, at: i.now });
        if draining {
            let Some(record) = &mut self.record else { return };
            record.pending = false;
            self.record_changed = true;
            let reason = record.reason;
            *self.status.drains_total.entry(reason.as_str().to_string()).or_default() += 1;
            tracing::warn!(reason = reason.as_str(), detail = %record.detail, "set this container instance to DRAINING");
            if reason == DrainReason::DiskPressure {
                self.settle = Some(Settle { drained: i.wall, base: i.now, done: 0 });
                self.withheld = None;
            }
        } else {
            let stepped_back = std::mem::take(&mut self.step_back);
            let reason = self.record.as_ref().map(|r| r.reason);
            self.forget_record();
            // The tags go too, whoever set them (a daemon restarted since does not know).
            self.tagged.get_or_insert_default();
            self.settle = None;
            if stepped_back {
                tracing::warn!("this container instance is ACTIVE again: another node holds the drain budget");
            } else if reason == Some(DrainReason::SpotStop) {
                tracing::info!(
                    "back after a spot stop, with no notice pending: this container instance is ACTIVE again"
                );
            } else {
                tracing::info!("the disk recovered: this container instance is ACTIVE again");
            }
        }
    }

    fn failed(&mut self, i: &Inputs<'_>, request: &Request, error: ApiError) {
        let text = error.to_string();
        if matches!(request, Request::Tag { .. } | Request::Untag) {
            // Tags are for people; the drain does not wait on them.
            tracing::warn!(error = %text, "could not tag the instance with the drain state");
            self.tagged = match request {
                Request::Tag { text, .. } => Some(text.clone()),
                _ => None,
            };
            return;
        }
        if self.status.last_error.as_deref() != Some(text.as_str()) {
            tracing::warn!(error = %text, "drain check failed; retrying");
        }
        self.status.last_error = Some(text);
        let delay = if error.is_throttled() {
            self.last_throttle = Some(i.now);
            self.throttles = (self.throttles + 1).min(16);
            // Full jitter, its ceiling doubling up to a bound sized by the fleet: the nodes that
            // AWS turned away spread over the bucket's refill instead of coming back together.
            // A node that must drain retries within a fraction of its time to full: the nodes
            // closest to full come back most often and take the tokens first.
            let mut cap = throttle_cap(self.registered.map(|(n, _)| n), self.view_calls);
            if let Some(ttf) = i.time_to_full.filter(|_| self.drain_pending(i)) {
                cap = cap.min((ttf / 4).max(URGENT_RETRY_FLOOR));
            }
            let ceiling = (Duration::from_secs(1) * 2u32.pow(self.throttles - 1)).min(cap);
            Duration::from_millis(100) + ceiling.mul_f64(self.random())
        } else {
            self.failures = (self.failures + 1).min(16);
            let base = (Duration::from_secs(3) * 2u32.pow(self.failures - 1)).min(Duration::from_secs(120));
            base.mul_f64(0.8 + 0.4 * self.random())
        };
        if let Request::SetStatus { draining: true } = request
            && self.record.as_ref().is_some_and(|r| r.pending)
        {
            // Decided afresh next time (the record stays pending until ECS says otherwise).
            self.admitted = None;
        }
        self.retry = Some(Retry { at: i.now + delay, wants: (i.wants, i.trouble) });
        self.refresh_status();
    }

    /// A disk-pressure drain this node must make and has not made (nor been withheld from).
    fn drain_pending(&self, i: &Inputs<'_>) -> bool {
        i.wants.disk_pressure
            && !i.hold
            && self.record.is_none()
            && self.own_status() == EcsStatus::Active
            && self.withheld.is_none()
    }

    fn withhold(&mut self, i: &Inputs<'_>, ahead: usize, allowed: usize, keep: bool, registered: usize) {
        let why = format!(
            "disk pressure wants a drain, but {ahead} of {registered} instances already drain or come first and \
             max-draining-fraction allows {allowed}; still reclaiming"
        );
        if self.status.withheld.as_deref() != Some(why.as_str()) {
            tracing::warn!("{why}");
        }
        self.status.withheld = Some(why);
        let wait = if keep {
            Duration::from_secs(5)
                .max(Duration::from_secs(u64::from(self.view_calls)))
                .mul_f64(1.0 + 0.5 * self.random())
        } else {
            self.far_recheck(registered)
        };
        self.withheld = Some(Withheld { until: i.now + wait, keep });
        self.admitted = None;
    }

    /// Withheld far from the front: look rarely, so the withheld of a fleet-wide runaway
    /// together stay well under ECS's read rate (a look costs `view_calls` calls).
    fn far_recheck(&mut self, registered: usize) -> Duration {
        let base = Duration::from_secs_f64(registered as f64 * f64::from(self.view_calls) * 0.1);
        base.clamp(Duration::from_secs(10), Duration::from_secs(3600)).mul_f64(1.0 + 0.5 * self.random())
    }

    /// Writes the drain down before ECS is asked (pending until it answers).
    fn intend(&mut self, reason: DrainReason, detail: &str, wall: SystemTime) {
        let record = self.record_for(reason, detail, wall, true);
        self.record = Some(record);
        self.record_changed = true;
    }

    fn note_drain(&mut self, reason: DrainReason, detail: &str, wall: SystemTime) {
        let record = self.record_for(reason, detail, wall, false);
        self.record = Some(record);
        self.record_changed = true;
    }

    fn record_for(&self, reason: DrainReason, detail: &str, wall: SystemTime, pending: bool) -> DrainRecord {
        DrainRecord {
            reason,
            detail: detail.to_string(),
            since: self.record.as_ref().map_or(wall, |r| r.since),
            cluster: self.identity.cluster.clone(),
            container_instance_arn: self.identity.container_instance_arn.clone(),
            pending,
        }
    }

    fn forget_record(&mut self) {
        if self.record.take().is_some() {
            self.record_changed = true;
        }
        self.settle = None;
    }

    fn idle_refresh(&self) -> Duration {
        // About 2 calls a second for the whole fleet at most: 300 s up to 1,000 instances.
        Duration::from_millis(500 * self.registered() as u64).max(Duration::from_secs(300))
    }

    fn jittered(&mut self, base: Duration) -> Duration {
        base.mul_f64(0.8 + 0.4 * self.random())
    }

    /// splitmix64: jitter needs no crypto, and a seed makes the simulation repeatable.
    fn random(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn refresh_status(&mut self) {
        let s = &mut self.status;
        s.ecs_status = self.own.as_ref().map(|o| o.status.as_str().to_string());
        s.draining = self.record.as_ref().is_some_and(|r| !r.pending);
        s.owner = self.record.as_ref().filter(|r| !r.pending).map(|r| r.reason);
        s.detail = self.record.as_ref().map(|r| r.detail.clone());
        s.since = self.record.as_ref().map(|r| r.since);
        s.claim = self.claim.as_ref().map(|c| c.claim.value());
        if self.claim.is_none() {
            s.claimed_at = None;
        }
        s.pressure_attribute = self.pressure.as_ref().is_some_and(Option::is_some);
    }
}

/// The tag's text: `disk-pressure: disk 93.0% used …`.
fn tag_text(record: &DrainRecord) -> String {
    format!("{}: {}", record.reason.as_str(), record.detail)
}

/// The largest wait after throttling: sized so that the whole fleet's retries, each a read of
/// `view_calls` calls, come back no faster than ECS refills its bucket (about 20 a second), from
/// 5 s to 5 min.
fn throttle_cap(registered: Option<usize>, view_calls: u32) -> Duration {
    // The cluster's size unknown (never read): a minute, whatever it is.
    let Some(registered) = registered else { return Duration::from_secs(60) };
    let calls = registered as f64 * f64::from(view_calls.max(1));
    Duration::from_secs_f64(calls / 20.0).clamp(Duration::from_secs(5), Duration::from_secs(300))
}

/// A want is stronger when there is a reason to drain now that there was not (or a stronger
/// one), or trouble where there was none: the backoff of a failure does not delay it.
fn stronger(before: (Wants, bool), now: (Wants, bool)) -> bool {
    let rank = |w: Wants| match w.reason() {
        None => 0,
        Some(DrainReason::DiskPressure) => 1,
        Some(DrainReason::SpotStop) => 2,
        Some(DrainReason::SpotInterruption) => 3,
        Some(DrainReason::Termination) => 4,
        Some(DrainReason::Operator) => 5,
    };
    rank(now.0) > rank(before.0) || (now.1 && !before.1)
}

#[cfg(test)]
mod tests;
