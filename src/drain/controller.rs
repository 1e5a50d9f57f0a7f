//! Carries drain decisions out against ECS and EC2: finds this instance's identity, reads its
//! own status, decides (see `policy`), claims a slot in the cluster's budget before a
//! disk-pressure drain (see `claims`), acts, records ownership and tags the instance. Idle, it
//! asks ECS about this instance only, every few minutes; only a node that wants a disk-pressure
//! drain reads the cluster, in a constant number of calls. Every failure is kept for /status
//! and retried with backoff (longer when AWS throttles); nothing here can stop the daemon.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use hyper::Uri;
use serde::Serialize;
use tokio::time::Instant;

use super::claims::{self, Claim, Verdict};
use super::ecs_api::{ApiError, EcsApi, Identity, instance_id};
use super::policy::{self, Decision, DrainReason, EcsStatus, Wants};
use super::record::{self, DrainRecord};
use crate::backoff::{Backoff, random_up_to};
use crate::fsutil::WriteError;
use crate::http::HttpClient;
use crate::imds::{ImdsClient, ImdsError};
use crate::introspection;

/// ECS is asked about this instance at most this often while nothing changes (to notice an
/// operator's drain); a thousand idle nodes make about 3 calls a second.
const IDLE_REFRESH: Duration = Duration::from_secs(300);
/// How soon to look again while an action is under way (just drained, settling the claims).
const BUSY_REFRESH: Duration = Duration::from_secs(3);
/// After draining for disk pressure, re-read the claims this long, at 3 s, 6 s, 12 s, 24 s and
/// 48 s: stale reads that let two nodes in are resolved well within it, in five looks.
const SETTLE: Duration = Duration::from_secs(60);
/// A claim waits a random part of this, so a runaway deployed everywhere does not make every
/// node claim in the same instant: 2 s, and 50 ms per registered instance up to 60 s.
fn claim_jitter(registered: usize) -> Duration {
    (Duration::from_millis(50) * registered as u32).clamp(Duration::from_secs(2), Duration::from_secs(60))
}
/// Failed calls are retried after this, doubling (with jitter) to the cap.
const RETRY: (Duration, Duration) = (Duration::from_secs(3), Duration::from_secs(120));

/// A withheld node looks again after this long (plus up to half again, at random): 0.5 s per
/// registered instance, from 10 s to 10 min, so the withheld nodes of a service-wide runaway
/// together stay well under ECS's read rate (a look costs 4 calls: 1,000 nodes every 500–750 s
/// make about 6.4 calls a second).
fn withheld_recheck(registered: usize) -> Duration {
    let base =
        (Duration::from_millis(500) * registered as u32).clamp(Duration::from_secs(10), Duration::from_secs(600));
    base + random_up_to(base / 2)
}

/// Why a drain check failed, by what the controller does about it.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("reading this instance's id from IMDS: {0}")]
    Imds(#[from] Box<ImdsError>),
    #[error("EC2 instance {instance_id} is not registered in ECS cluster {cluster} (is the ECS agent up?)")]
    NotRegistered { instance_id: String, cluster: String },
    #[error("the drain record: {0}")]
    Record(#[from] WriteError),
}

/// What /status shows about draining.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct DrainStatus {
    /// ECS's view: ACTIVE, DRAINING, or unknown before the first answer.
    pub ecs_status: Option<String>,
    pub draining: bool,
    /// Who drained: disk-pressure, spot-interruption, spot-stop, termination, operator.
    pub owner: Option<DrainReason>,
    pub detail: Option<String>,
    #[serde(with = "crate::gc::inventory::unix_seconds_option")]
    pub since: Option<SystemTime>,
    /// Set while disk pressure wants a drain the cluster budget does not allow.
    pub withheld: Option<String>,
    /// This instance's claim on the drain budget, while it holds one.
    #[serde(default, with = "crate::gc::inventory::unix_seconds_option")]
    pub claimed_at: Option<SystemTime>,
    /// Whether the `nodewarden.disk-pressure` attribute is set on this instance.
    #[serde(default)]
    pub pressure_attribute: bool,
    /// Drains nodewarden made since start, by reason (`drains_total{reason}`).
    #[serde(default)]
    pub drains_total: std::collections::BTreeMap<String, u64>,
    pub identity: Option<Identity>,
    pub last_error: Option<String>,
}

pub struct DrainController {
    api: EcsApi,
    cluster: String,
    max_fraction: f64,
    imds: std::sync::Arc<ImdsClient>,
    http: HttpClient,
    introspection: Uri,
    /// Where the drain record lives (`HostPaths::drain_record`).
    record_path: PathBuf,
    identity: Option<Identity>,
    record: Option<DrainRecord>,
    status: DrainStatus,
    last_wants: Wants,
    last_soft: bool,
    /// Whether ECS is known to carry `status.pressure_attribute` (not yet at start).
    pressure_known: bool,
    next_check: Instant,
    retry: Backoff,
    /// When this node may claim: set at the first want, a random moment ahead.
    claim_after: Option<Instant>,
    /// Re-read the claims until then after draining for disk pressure…
    settle_until: Option<Instant>,
    /// …waiting this long before the next look (doubling from BUSY_REFRESH).
    settle_every: Duration,
    /// The cluster's registered count as last read (sizes the jitter and the waits).
    registered: usize,
}

impl DrainController {
    pub fn new(
        api: EcsApi,
        cluster: String,
        max_fraction: f64,
        imds: std::sync::Arc<ImdsClient>,
        introspection: Uri,
        record_path: PathBuf,
    ) -> Self {
        let record = record::load(&record_path);
        let status = DrainStatus {
            draining: record.is_some(),
            owner: record.as_ref().map(|r| r.reason),
            detail: record.as_ref().map(|r| r.detail.clone()),
            since: record.as_ref().map(|r| r.since),
            ..DrainStatus::default()
        };
        DrainController {
            api,
            cluster,
            max_fraction,
            imds,
            http: HttpClient::new(),
            introspection,
            record_path,
            identity: None,
            record,
            status,
            last_wants: Wants::default(),
            last_soft: false,
            pressure_known: false,
            next_check: Instant::now(),
            retry: Backoff::new(RETRY.0, RETRY.1),
            claim_after: None,
            settle_until: None,
            settle_every: BUSY_REFRESH,
            registered: 0,
        }
    }

    /// Applies a reloaded `max-draining-fraction`.
    pub fn set_max_fraction(&mut self, fraction: f64) {
        self.max_fraction = fraction;
    }

    pub fn status(&self) -> &DrainStatus {
        &self.status
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// One check: `soft` is the early signal (GC cannot keep up), `detail` explains the
    /// strongest want (the pressure reason, the spot notice). Asks ECS only when something
    /// changed or a check is due.
    pub async fn tick(&mut self, wants: Wants, soft: bool, detail: &str) {
        let changed = wants != self.last_wants || soft != self.last_soft;
        self.last_wants = wants;
        self.last_soft = soft;
        if !changed && Instant::now() < self.next_check {
            return;
        }
        self.next_check = Instant::now() + IDLE_REFRESH.mul_f64(0.8) + random_up_to(IDLE_REFRESH.mul_f64(0.4));
        match self.reconcile(wants, soft, detail).await {
            Ok(()) => {
                self.retry.reset();
                self.status.last_error = None;
            }
            Err(error) => {
                let error_text = error.to_string();
                if self.status.last_error.as_deref() != Some(error_text.as_str()) {
                    tracing::warn!(error = %error_text, "drain check failed; retrying");
                }
                self.status.last_error = Some(error_text);
                let mut delay = self.retry.next_delay();
                if matches!(error, DrainError::Api(ref api) if api.is_throttled()) {
                    delay += self.retry.next_delay();
                }
                self.next_check = Instant::now() + delay;
            }
        }
    }

    fn check_again_in(&mut self, after: Duration) {
        self.next_check = self.next_check.min(Instant::now() + after);
    }

    pub async fn resolve_identity(&mut self) -> Result<Identity, DrainError> {
        if let Some(identity) = &self.identity {
            return Ok(identity.clone());
        }
        let identity = resolve_identity(&self.api, &self.cluster, &self.imds, &self.http, &self.introspection).await?;
        tracing::info!(arn = %identity.container_instance_arn, "found this container instance");
        // One call at start, so the first claim's jitter fits the cluster's size.
        match self.api.registered_count(&self.cluster).await {
            Ok(registered) => self.registered = registered,
            Err(error) => tracing::debug!(%error, "the cluster's size is unknown until the first decision"),
        }
        self.identity = Some(identity.clone());
        self.status.identity = Some(identity.clone());
        Ok(identity)
    }

    async fn reconcile(&mut self, wants: Wants, soft: bool, detail: &str) -> Result<(), DrainError> {
        let identity = self.resolve_identity().await?;
        self.set_pressure_attribute(&identity, soft || wants.disk_pressure).await?;
        // An operator may have run `nodewarden drain`/`undrain` meanwhile: the file is the truth.
        self.record = record::load(&self.record_path);
        let own = self.api.own_status(&identity).await?;
        self.status.ecs_status = Some(own.as_str().to_string());
        match (&self.record, own) {
            (Some(record), EcsStatus::Active) if record.pending => {
                // The drain was written down but ECS never took it (a failed call, a crash): it
                // is decided afresh below, with the claim this node may still hold.
                tracing::info!("a drain nodewarden intended never reached ECS; deciding again");
                self.forget_record()?;
            }
            (Some(_), EcsStatus::Active) => {
                tracing::warn!("this instance is ACTIVE again although nodewarden drained it: someone undrained it");
                self.forget_record()?;
                self.withdraw_claim(&identity).await;
            }
            (Some(record), EcsStatus::Draining) if record.pending => {
                tracing::info!("ECS took the drain nodewarden intended before it could note so; it is nodewarden's");
                let (reason, detail) = (record.reason, record.detail.clone());
                self.remember(&identity, reason, &detail).await?;
            }
            _ => {}
        }
        let decision = policy::decide(wants, self.record.as_ref().map(|r| r.reason), own);
        if !wants.disk_pressure {
            self.status.withheld = None;
        }
        match decision {
            Decision::Nothing => {
                let settling = self.settle_until.is_some_and(|until| Instant::now() < until);
                if settling && self.record.as_ref().is_some_and(|r| r.reason == DrainReason::DiskPressure) {
                    self.settle(&identity).await?;
                } else {
                    self.settle_until = None;
                }
            }
            Decision::Drain(DrainReason::DiskPressure) => self.claim_and_drain(&identity, detail).await?,
            Decision::Drain(reason) => {
                self.intend(&identity, reason, detail)?;
                self.api.set_status(&identity, true).await?;
                *self.status.drains_total.entry(reason.as_str().to_string()).or_default() += 1;
                tracing::warn!(reason = reason.as_str(), detail, "set this container instance to DRAINING");
                self.remember(&identity, reason, detail).await?;
                self.status.ecs_status = Some("DRAINING".into());
            }
            Decision::Reclassify(reason) => {
                tracing::warn!(reason = reason.as_str(), detail, "the drain now has a stronger reason");
                self.settle_until = None;
                self.remember(&identity, reason, detail).await?;
            }
            Decision::AdoptOperatorDrain => {
                tracing::info!("this instance was set to DRAINING by someone else: an operator's drain, never undone");
                self.remember(&identity, DrainReason::Operator, "drained outside nodewarden").await?;
            }
            Decision::Undrain => {
                let back_from_stop = self.record.as_ref().is_some_and(|r| r.reason == DrainReason::SpotStop);
                self.undrain(&identity).await?;
                if back_from_stop {
                    tracing::info!(
                        "back after a spot stop, with no notice pending: this container instance is ACTIVE again"
                    );
                } else {
                    tracing::info!("the disk recovered: this container instance is ACTIVE again");
                }
            }
        }
        Ok(())
    }

    /// The claim protocol for a disk-pressure drain: claim (after a random wait), read the
    /// cluster, drain if within the budget, else withdraw and wait. A node that was withheld
    /// looks before it claims again: while the budget stays spent, that costs reads only.
    async fn claim_and_drain(&mut self, identity: &Identity, detail: &str) -> Result<(), DrainError> {
        let own_id = instance_id(&identity.container_instance_arn).to_string();
        let claimed_at = match self.status.claimed_at {
            Some(at) => at,
            None => {
                let registered = self.registered;
                let after =
                    *self.claim_after.get_or_insert_with(|| Instant::now() + random_up_to(claim_jitter(registered)));
                if Instant::now() < after {
                    self.check_again_in(after - Instant::now());
                    return Ok(());
                }
                if self.status.withheld.is_some() {
                    let view = self.api.cluster_view(&identity.cluster).await?;
                    self.registered = view.registered;
                    let now = SystemTime::now();
                    let hypothetical = Claim { instance: own_id.clone(), at: now };
                    if let Verdict::Withheld { ahead, allowed } =
                        claims::may_drain(&view, &hypothetical, self.max_fraction, now)
                    {
                        self.withhold(ahead, allowed, view.registered);
                        return Ok(());
                    }
                }
                let at = SystemTime::now();
                let value = Claim::value(at, DrainReason::DiskPressure);
                self.api.put_attribute(identity, claims::CLAIM_ATTRIBUTE, &value).await?;
                self.status.claimed_at = Some(at);
                at
            }
        };
        let own = Claim { instance: own_id, at: claimed_at };
        let view = self.api.cluster_view(&identity.cluster).await?;
        self.registered = view.registered;
        match claims::may_drain(&view, &own, self.max_fraction, SystemTime::now()) {
            Verdict::Admitted => {
                self.intend(identity, DrainReason::DiskPressure, detail)?;
                self.api.set_status(identity, true).await?;
                *self.status.drains_total.entry(DrainReason::DiskPressure.as_str().to_string()).or_default() += 1;
                tracing::warn!(reason = "disk-pressure", detail, "set this container instance to DRAINING");
                self.remember(identity, DrainReason::DiskPressure, detail).await?;
                self.status.ecs_status = Some("DRAINING".into());
                self.status.withheld = None;
                self.settle_until = Some(Instant::now() + SETTLE);
                self.settle_every = BUSY_REFRESH;
                self.check_again_in(BUSY_REFRESH);
            }
            Verdict::Withheld { ahead, allowed } => {
                self.withdraw_claim(identity).await;
                self.withhold(ahead, allowed, view.registered);
            }
        }
        Ok(())
    }

    /// Just drained for disk pressure: read the claims again, and step back if another node
    /// is ahead in the budget's order (two nodes decided on reads that missed each other).
    async fn settle(&mut self, identity: &Identity) -> Result<(), DrainError> {
        let Some(claimed_at) = self.status.claimed_at else {
            self.settle_until = None;
            return Ok(());
        };
        let own = Claim { instance: instance_id(&identity.container_instance_arn).to_string(), at: claimed_at };
        let view = self.api.cluster_view(&identity.cluster).await?;
        match claims::must_step_back(&view, &own, self.max_fraction, SystemTime::now()) {
            Verdict::Admitted => {
                self.settle_every *= 2;
                self.check_again_in(self.settle_every / 2);
            }
            Verdict::Withheld { ahead, allowed } => {
                tracing::warn!(ahead, allowed, "another node claimed the drain budget first: stepping back");
                self.undrain(identity).await?;
                self.withhold(ahead, allowed, view.registered);
            }
        }
        Ok(())
    }

    fn withhold(&mut self, ahead: usize, allowed: usize, registered: usize) {
        let why = format!(
            "disk pressure wants a drain, but {ahead} of {registered} instances already drain or claimed first and \
             max-draining-fraction allows {allowed}; still reclaiming"
        );
        if self.status.withheld.as_deref() != Some(why.as_str()) {
            tracing::warn!("{why}");
        }
        self.status.withheld = Some(why);
        self.settle_until = None;
        self.claim_after = None;
        self.check_again_in(withheld_recheck(registered));
    }

    /// Back to ACTIVE, claim withdrawn, tags removed, record forgotten.
    async fn undrain(&mut self, identity: &Identity) -> Result<(), DrainError> {
        self.api.set_status(identity, false).await?;
        if let Err(error) = self.api.untag(&identity.ec2_instance_id).await {
            tracing::warn!(%error, "could not remove the drain tags");
        }
        self.withdraw_claim(identity).await;
        self.forget_record()?;
        self.settle_until = None;
        self.status.ecs_status = Some("ACTIVE".into());
        Ok(())
    }

    /// Removes this node's claim; a failure leaves a claim that expires (`claims::CLAIM_TTL`).
    async fn withdraw_claim(&mut self, identity: &Identity) {
        let value = self.status.claimed_at.map(|at| Claim::value(at, DrainReason::DiskPressure));
        if let Err(error) = self.api.delete_attribute(identity, claims::CLAIM_ATTRIBUTE, value.as_deref()).await {
            tracing::debug!(%error, "withdrawing the drain claim failed; it expires");
        }
        self.status.claimed_at = None;
        self.claim_after = None;
    }

    /// Keeps `nodewarden.disk-pressure` on this instance while GC cannot keep up.
    async fn set_pressure_attribute(&mut self, identity: &Identity, on: bool) -> Result<(), DrainError> {
        if self.pressure_known && on == self.status.pressure_attribute {
            return Ok(());
        }
        // "true" is the only value ever set (moto deletes only on a matching value).
        if on {
            self.api.put_attribute(identity, claims::PRESSURE_ATTRIBUTE, "true").await?;
        } else {
            self.api.delete_attribute(identity, claims::PRESSURE_ATTRIBUTE, Some("true")).await?;
        }
        if on != self.status.pressure_attribute {
            tracing::info!(on, "{} attribute {}", if on { "set" } else { "removed" }, claims::PRESSURE_ATTRIBUTE);
        }
        self.status.pressure_attribute = on;
        self.pressure_known = true;
        Ok(())
    }
    /// Writes the drain down before ECS is asked (see `DrainRecord::pending`); a record that
    /// cannot be written stops the drain here, before ECS hears of it.
    fn intend(&mut self, identity: &Identity, reason: DrainReason, detail: &str) -> Result<(), DrainError> {
        let record = self.record_for(identity, reason, detail, true);
        record::save(&self.record_path, &record)?;
        self.record = Some(record);
        Ok(())
    }

    fn record_for(&self, identity: &Identity, reason: DrainReason, detail: &str, pending: bool) -> DrainRecord {
        DrainRecord {
            reason,
            detail: detail.to_string(),
            since: self.record.as_ref().map_or_else(SystemTime::now, |r| r.since),
            cluster: identity.cluster.clone(),
            container_instance_arn: identity.container_instance_arn.clone(),
            pending,
        }
    }

    /// Notes a drain ECS has taken (or an operator's), and tags the instance with its reason.
    async fn remember(&mut self, identity: &Identity, reason: DrainReason, detail: &str) -> Result<(), DrainError> {
        let record = self.record_for(identity, reason, detail, false);
        record::save(&self.record_path, &record)?;
        let tag_text = format!("{}: {detail}", reason.as_str());
        if let Err(error) = self.api.tag(&identity.ec2_instance_id, &tag_text, record.since).await {
            tracing::warn!(%error, "could not tag the instance with the drain reason");
        }
        self.status.draining = true;
        self.status.owner = Some(reason);
        self.status.detail = Some(record.detail.clone());
        self.status.since = Some(record.since);
        self.record = Some(record);
        Ok(())
    }

    fn forget_record(&mut self) -> Result<(), DrainError> {
        record::clear(&self.record_path)?;
        self.record = None;
        self.status.draining = false;
        self.status.owner = None;
        self.status.detail = None;
        self.status.since = None;
        Ok(())
    }
}

/// The container instance ARN of this EC2 instance: the agent's introspection API first, then
/// the ECS API matched on the instance id from IMDS.
pub async fn resolve_identity(
    api: &EcsApi,
    cluster: &str,
    imds: &ImdsClient,
    http: &HttpClient,
    introspection: &Uri,
) -> Result<Identity, DrainError> {
    let instance_id = imds.instance_id().await.map_err(Box::new)?;
    let from_agent = introspection::fetch_metadata(http, introspection, Duration::from_secs(2)).await;
    let arn = match from_agent {
        Ok(metadata) if metadata.container_instance_arn.is_some() => metadata.container_instance_arn,
        _ => api
            .members(cluster)
            .await?
            .into_iter()
            .find(|m| m.ec2_instance_id.as_deref() == Some(instance_id.as_str()))
            .map(|m| m.arn),
    };
    let arn = arn
        .ok_or_else(|| DrainError::NotRegistered { instance_id: instance_id.clone(), cluster: cluster.to_string() })?;
    Ok(Identity { cluster: cluster.to_string(), container_instance_arn: arn, ec2_instance_id: instance_id })
}
