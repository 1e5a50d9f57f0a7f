//! The cluster's drain budget when many nodes decide at once: a pure function of what ECS
//! shows. A node that wants a disk-pressure drain first *claims* (an ECS attribute on its
//! container instance, `nodewarden.drain-claim = "<time> disk-pressure"`), then reads every
//! claim and drains only if it is within the budget in one order every node computes the same
//! way: earliest claim first, then instance id. Otherwise it withdraws its claim (withheld).
//! Reads may be stale (a claim not yet visible), so two nodes can both drain; after draining a
//! node reads again, and the ones outside the order step back. Once every claim is visible,
//! every node computes the same order, so at most `allowed` instances stay drained for disk
//! pressure.
//!
//! Instances DRAINING without a claim (spot, termination, an operator) take budget before any
//! claim when a node decides to drain, but never make a node already drained for disk pressure
//! step back: undraining a full node would restart the cascade the budget exists to stop.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::policy::DrainReason;

/// The ECS attribute a node puts on its own container instance to claim a drain slot.
pub const CLAIM_ATTRIBUTE: &str = "nodewarden.drain-claim";
/// The soft signal: set while GC cannot keep up, so services can avoid the node with a
/// placement constraint (`attribute:nodewarden.disk-pressure != true`) before anyone drains.
pub const PRESSURE_ATTRIBUTE: &str = "nodewarden.disk-pressure";
/// A claim whose instance is not DRAINING after this long is stale: its node was withheld or
/// died without withdrawing it. Admitted nodes drain within seconds of claiming.
pub const CLAIM_TTL: Duration = Duration::from_secs(120);

/// One node's claim, as read back from ECS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The container instance's id (the last element of its ARN).
    pub instance: String,
    pub at: SystemTime,
}

impl Claim {
    /// The attribute value: `2026-11-27T15:50:01.123Z disk-pressure` (ECS attribute values
    /// allow letters, digits, `-`, `.`, `:`, spaces; at most 128 characters).
    pub fn value(at: SystemTime, reason: DrainReason) -> String {
        format!("{} {}", humantime::format_rfc3339_millis(at), reason.as_str())
    }

    /// Reads a claim back; `None` for a value this version cannot read (ignored, not fatal).
    pub fn parse(instance: &str, value: &str) -> Option<Claim> {
        let time = value.split_whitespace().next()?;
        let at = humantime::parse_rfc3339_weak(time).ok()?;
        Some(Claim { instance: instance.to_string(), at })
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
    /// Outside it: `ahead` instances drain or hold earlier claims, `allowed` may drain.
    Withheld { ahead: usize, allowed: usize },
}

/// The live claims in the budget's order, `own` included even when the read did not show it
/// yet (a node always knows its own claim).
fn order(view: &View, own: &Claim, now: SystemTime) -> Vec<Claim> {
    let mut claims: Vec<Claim> = view
        .claims
        .iter()
        .filter(|c| c.instance != own.instance)
        .filter(|c| view.draining.contains(&c.instance) || now.duration_since(c.at).unwrap_or_default() < CLAIM_TTL)
        .cloned()
        .collect();
    claims.push(own.clone());
    claims.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.instance.cmp(&b.instance)));
    claims
}

/// May the node holding `own` (not yet DRAINING) start a disk-pressure drain?
pub fn may_drain(view: &View, own: &Claim, max_fraction: f64, now: SystemTime) -> Verdict {
    let claims = order(view, own, now);
    let claimed: BTreeSet<&str> = claims.iter().map(|c| c.instance.as_str()).collect();
    let unclaimed_draining = view.draining.iter().filter(|i| !claimed.contains(i.as_str())).count();
    let position = claims.iter().position(|c| c.instance == own.instance).unwrap_or(claims.len());
    let allowed = allowed(view.registered, max_fraction);
    let ahead = unclaimed_draining + position;
    if ahead < allowed { Verdict::Admitted } else { Verdict::Withheld { ahead, allowed } }
}

/// Must the node holding `own`, DRAINING for disk pressure, step back? Only claims count
/// here (see the module comment).
pub fn must_step_back(view: &View, own: &Claim, max_fraction: f64, now: SystemTime) -> Verdict {
    let claims = order(view, own, now);
    let ahead = claims.iter().position(|c| c.instance == own.instance).unwrap_or(claims.len());
    let allowed = allowed(view.registered, max_fraction);
    if ahead < allowed { Verdict::Admitted } else { Verdict::Withheld { ahead, allowed } }
}

#[cfg(test)]
mod tests;
