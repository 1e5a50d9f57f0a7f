//! The cluster's drain budget when many nodes decide at once: a pure function of what ECS shows.
//!
//! A node that sees trouble coming *claims* before it must drain: an ECS attribute on its own
//! container instance, `nodewarden.drain-claim`, that says when it wrote the claim and when it
//! predicts its disk is full (its urgency). When it must drain, it reads the cluster once and
//! drains at once if the budget has room: no waiting. Room is counted in one order every node
//! computes the same way from the claims:
//!
//! - DRAINING instances without a claim (spot, termination, an operator) take budget first;
//! - then the *holders*: claims of instances that are DRAINING (the drain is already spent);
//! - then the *waiters* ahead of this one: the claim closest to full first, ties by instance id.
//!
//! Reads are eventually consistent, so two nodes can both drain on reads that missed each
//! other. For a short while after draining, a holder reads again and steps back if it is not
//! among the first `allowed` holders in the holders' order: by predicted full time within the
//! urgency horizon of when each drained (the one about to fill wins), and by drain time beyond
//! it (a drain that has settled is never displaced by a newer one). Once every claim is
//! visible, every node computes the same orders, so at most `allowed` instances stay drained
//! for disk pressure. Unclaimed drains never push a holder back: undraining a full node because
//! a spot wave came would restart the cascade the budget exists to stop.
//!
//! Trust is bounded: a claim dated further in the future than the clock-skew allowance is
//! ignored, a waiting claim not refreshed within `WAITER_TTL` and a holder's within
//! `HOLDER_TTL` are ignored, and predictions are clamped to the claim's own times, so no
//! attribute can hold budget longer than its expiry or jump the order by claiming the past.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::policy::DrainReason;

/// The ECS attribute a node puts on its own container instance to claim a drain slot.
pub const CLAIM_ATTRIBUTE: &str = "nodewarden.drain-claim";
/// The soft signal: set while GC cannot keep up, so services can avoid the node with a
/// placement constraint (`attribute:nodewarden.disk-pressure != true`) before anyone drains.
pub const PRESSURE_ATTRIBUTE: &str = "nodewarden.disk-pressure";
/// How far ahead of the reader's clock a claim may be dated and still count (EC2 instances
/// keep time with the Amazon Time Sync Service, well within this).
pub const CLOCK_SKEW: Duration = Duration::from_secs(10);
/// A waiting claim is refreshed this often; one not refreshed within `WAITER_TTL` is ignored
/// (its node was withheld and died, or it is forged).
pub const WAITER_REFRESH: Duration = Duration::from_secs(30);
pub const WAITER_TTL: Duration = Duration::from_secs(90);
/// A holder's claim (its instance DRAINING) is refreshed this often, and ignored past its TTL:
/// the drain still counts then, as an unclaimed one.
pub const HOLDER_REFRESH: Duration = Duration::from_secs(600);
pub const HOLDER_TTL: Duration = Duration::from_secs(1800);
/// A claim marked drained counts as a holder before ECS shows its instance DRAINING (reads
/// lag) for this long, no longer: a stale or forged marker on an ACTIVE instance cannot keep
/// a slot.
pub const MARKER_GRACE: Duration = Duration::from_secs(30);
/// Within this of their drain times, holders are ordered by urgency; beyond it, by drain time.
pub const URGENCY_HORIZON: Duration = Duration::from_secs(60);
/// The furthest prediction a claim carries; further means "not filling" for the order.
const FURTHEST: Duration = Duration::from_secs(24 * 3600);

/// When a node predicts its disk is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Full at this moment at the current fill rate (the moment the claim was written, or
    /// earlier, for a disk already past drain-at).
    FullAt(SystemTime),
    /// Past drain-at but not filling: it must drain, but nothing is about to fill.
    Steady,
}

/// One node's claim, as written and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The container instance's id (the last element of its ARN).
    pub instance: String,
    /// When the claim was last written (refreshed).
    pub written: SystemTime,
    pub urgency: Urgency,
    /// Set once the node has drained (it holds its slot since then).
    pub drained: Option<SystemTime>,
}

impl Claim {
    /// The attribute value, at most 128 characters of the ones ECS allows (letters, digits,
    /// `-`, `.`, `:`, spaces): `2026-12-04T19:50:01.123Z disk-pressure full
    /// 2026-12-04T19:50:31Z drained 2026-12-04T19:50:05Z`.
    pub fn value(&self) -> String {
        let urgency = match self.urgency {
            Urgency::FullAt(at) => format!("full {}", humantime::format_rfc3339_seconds(at)),
            Urgency::Steady => "steady".to_string(),
        };
        let drained =
            self.drained.map(|at| format!(" drained {}", humantime::format_rfc3339_seconds(at))).unwrap_or_default();
        format!(
            "{} {} {urgency}{drained}",
            humantime::format_rfc3339_millis(self.written),
            DrainReason::DiskPressure.as_str()
        )
    }

    /// Reads a claim back; `None` for a value this version cannot read (ignored, not fatal).
    /// A claim of an earlier version (`<time> disk-pressure`) reads as full at its time, so old
    /// and new nodes share one budget during a rollout.
    pub fn parse(instance: &str, value: &str) -> Option<Claim> {
        let mut words = value.split_whitespace();
        let time = |word: Option<&str>| word.and_then(|w| humantime::parse_rfc3339_weak(w).ok());
        let written = time(words.next())?;
        if words.next()? != DrainReason::DiskPressure.as_str() {
            return None;
        }
        let urgency = match words.next() {
            None => Urgency::FullAt(written),
            Some("full") => Urgency::FullAt(time(words.next())?),
            Some("steady") => Urgency::Steady,
            Some(_) => return None,
        };
        let drained = match words.next() {
            None => None,
            Some("drained") => Some(time(words.next())?),
            Some(_) => return None,
        };
        Some(Claim { instance: instance.to_string(), written, urgency, drained })
    }

    /// The predicted full time the order uses: never before the claim was written (no claim
    /// jumps the order by naming the past), never beyond a day (`None`: not filling).
    fn full_at(&self) -> Option<SystemTime> {
        match self.urgency {
            Urgency::FullAt(at) if at <= self.written + FURTHEST => Some(at.max(self.written)),
            _ => None,
        }
    }
}

/// What ECS shows of the cluster at one moment, as read for a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// `registeredContainerInstancesCount` (ACTIVE and DRAINING).
    pub registered: usize,
    /// Instance ids that are DRAINING.
    pub draining: BTreeSet<String>,
    pub claims: Vec<Claim>,
}

/// How many instances may drain at once: the fraction of the cluster, rounded up so any
/// budget above 0% allows one (a 3-instance cluster at 20% may drain one).
pub fn allowed(registered: usize, max_fraction: f64) -> usize {
    if max_fraction <= 0.0 {
        return 0;
    }
    // The small epsilon keeps 20% of 5 at exactly 1 despite binary fractions.
    ((registered as f64 * max_fraction) - 1e-9).ceil().max(0.0) as usize
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Within the budget: drain (or stay drained).
    Admitted,
    /// Outside it: `ahead` instances drain or come first, `allowed` may drain; `waiters_ahead`
    /// of them are waiting claims closer to full.
    Withheld { ahead: usize, allowed: usize, waiters_ahead: usize },
}

/// A live claim as one reader sees it at one moment.
struct Seen<'a> {
    claim: &'a Claim,
    /// Holders: the order key (see `holder_key`).
    holder: Option<SystemTime>,
}

/// Whether a claim still counts at `now`, and as what.
fn see<'a>(claim: &'a Claim, view: &View, now: SystemTime) -> Option<Seen<'a>> {
    if claim.written > now + CLOCK_SKEW {
        return None;
    }
    let age = now.duration_since(claim.written).unwrap_or_default();
    let marked_recently = claim
        .drained
        .is_some_and(|at| at <= now + CLOCK_SKEW && now.duration_since(at).unwrap_or_default() < MARKER_GRACE);
    let holder = view.draining.contains(&claim.instance) || marked_recently;
    let ttl = if holder { HOLDER_TTL } else { WAITER_TTL };
    if age >= ttl {
        return None;
    }
    // A holder whose marker is not visible yet drained about now, as far as this reader knows.
    let drained = claim.drained.filter(|at| *at <= now + CLOCK_SKEW).unwrap_or(now);
    Some(Seen { claim, holder: holder.then(|| holder_key(claim, drained)) })
}

/// The holders' order: the predicted full time, kept within the urgency horizon of the drain
/// time (a settled drain is older than any newcomer's key), then the instance id.
fn holder_key(claim: &Claim, drained: SystemTime) -> SystemTime {
    let latest = drained + URGENCY_HORIZON;
    claim.full_at().map_or(latest, |at| at.clamp(drained, latest))
}

/// The waiters' order: closest to full first (not filling last), then the instance id.
fn waiter_order(a: &Claim, b: &Claim) -> Ordering {
    let key = |c: &Claim| (c.full_at().is_none(), c.full_at());
    key(a).cmp(&key(b)).then_with(|| a.instance.cmp(&b.instance))
}

/// The live claims of others, and the DRAINING instances that hold none.
fn others<'a>(view: &'a View, own: &str, now: SystemTime) -> (Vec<Seen<'a>>, usize) {
    let seen: Vec<Seen<'a>> =
        view.claims.iter().filter(|c| c.instance != own).filter_map(|c| see(c, view, now)).collect();
    let claimed: BTreeSet<&str> = seen.iter().map(|s| s.claim.instance.as_str()).collect();
    let unclaimed = view.draining.iter().filter(|i| i.as_str() != own && !claimed.contains(i.as_str())).count();
    (seen, unclaimed)
}

/// May the node holding `own` (a waiting claim, its instance not DRAINING) drain now?
pub fn may_drain(view: &View, own: &Claim, max_fraction: f64, now: SystemTime) -> Verdict {
    let (seen, unclaimed) = others(view, &own.instance, now);
    let holders = seen.iter().filter(|s| s.holder.is_some()).count();
    let waiters_ahead =
        seen.iter().filter(|s| s.holder.is_none() && waiter_order(s.claim, own) == Ordering::Less).count();
    let allowed = allowed(view.registered, max_fraction);
    let ahead = unclaimed + holders + waiters_ahead;
    if ahead < allowed { Verdict::Admitted } else { Verdict::Withheld { ahead, allowed, waiters_ahead } }
}

/// Must the node holding `own` (drained for disk pressure at `own.drained`) step back? Only
/// holders count here (see the module comment).
pub fn must_step_back(view: &View, own: &Claim, max_fraction: f64, now: SystemTime) -> Verdict {
    let (seen, _) = others(view, &own.instance, now);
    let own_key = (holder_key(own, own.drained.unwrap_or(now)), own.instance.as_str());
    let ahead = seen
        .iter()
        .filter_map(|s| s.holder.map(|key| (key, s.claim.instance.as_str())))
        .filter(|key| *key < own_key)
        .count();
    let allowed = allowed(view.registered, max_fraction);
    if ahead < allowed { Verdict::Admitted } else { Verdict::Withheld { ahead, allowed, waiters_ahead: 0 } }
}

/// How long after draining a holder keeps reading the claims: past the urgency horizon, the
/// clock-skew allowance and the reads' lag, a newer holder can no longer come before it.
pub const SETTLE_CHECKS: [Duration; 3] = [Duration::from_secs(3), Duration::from_secs(25), Duration::from_secs(75)];

#[cfg(test)]
mod tests;
