//! Carries drain decisions out against ECS and EC2: finds this instance's identity, reads its
//! status and the cluster's, decides (see `policy`), acts, records ownership and tags the
//! instance. Every failure is kept for /status and retried at the next check; nothing here
//! can stop the daemon.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use hyper::Uri;
use serde::Serialize;
use tokio::time::Instant;

use super::ecs_api::{EcsApi, Identity};
use super::policy::{self, Budget, Decision, DrainReason, EcsStatus, Wants};
use super::record::{self, DrainRecord};
use crate::http::HttpClient;
use crate::imds::ImdsClient;
use crate::introspection;

/// ECS is asked at most this often while nothing is wanted (to notice operators' drains)…
const IDLE_REFRESH: Duration = Duration::from_secs(60);
/// …and this often while something is wanted but not done (budget spent, API down).
const BUSY_REFRESH: Duration = Duration::from_secs(3);

/// What /status shows about draining.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct DrainStatus {
    /// ECS's view: ACTIVE, DRAINING, or unknown before the first answer.
    pub ecs_status: Option<String>,
    pub draining: bool,
    /// Who drained: disk-pressure, spot-interruption, termination, operator.
    pub owner: Option<DrainReason>,
    pub detail: Option<String>,
    #[serde(with = "crate::gc::inventory::unix_seconds_option")]
    pub since: Option<SystemTime>,
    /// Set while disk pressure wants a drain the cluster budget does not allow.
    pub withheld: Option<String>,
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
    next_check: Instant,
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
            next_check: Instant::now(),
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

    /// One check: `detail` explains the strongest want (the pressure reason, the spot notice).
    /// Asks ECS only when something changed or a refresh is due.
    pub async fn tick(&mut self, wants: Wants, detail: &str) {
        let changed = wants != self.last_wants;
        self.last_wants = wants;
        if !changed && Instant::now() < self.next_check {
            return;
        }
        let busy = wants.reason().is_some() || self.record.is_some();
        self.next_check = Instant::now() + if busy { BUSY_REFRESH } else { IDLE_REFRESH };
        match self.reconcile(wants, detail).await {
            Ok(()) => self.status.last_error = None,
            Err(error) => {
                if self.status.last_error.as_deref() != Some(error.as_str()) {
                    tracing::warn!(%error, "drain check failed; retrying");
                }
                self.status.last_error = Some(error);
                self.next_check = Instant::now() + BUSY_REFRESH;
            }
        }
    }

    pub async fn resolve_identity(&mut self) -> Result<Identity, String> {
        if let Some(identity) = &self.identity {
            return Ok(identity.clone());
        }
        let identity = resolve_identity(&self.api, &self.cluster, &self.imds, &self.http, &self.introspection).await?;
        tracing::info!(arn = %identity.container_instance_arn, "found this container instance");
        self.identity = Some(identity.clone());
        self.status.identity = Some(identity.clone());
        Ok(identity)
    }

    async fn reconcile(&mut self, wants: Wants, detail: &str) -> Result<(), String> {
        let identity = self.resolve_identity().await?;
        // An operator may have run `nodewarden drain`/`undrain` meanwhile: the file is the truth.
        self.record = record::load(&self.record_path);
        let members = self.api.members(&self.cluster).await?;
        let own =
            members.iter().find(|m| m.arn == identity.container_instance_arn).map_or(EcsStatus::Other, |m| m.status);
        self.status.ecs_status = Some(own.as_str().to_string());
        if own == EcsStatus::Active && self.record.is_some() {
            tracing::warn!("this instance is ACTIVE again although nodewarden drained it: someone undrained it");
            self.forget_record()?;
        }
        let budget = Budget {
            registered: members.iter().filter(|m| m.status != EcsStatus::Other).count(),
            others_draining: members
                .iter()
                .filter(|m| m.arn != identity.container_instance_arn && m.status == EcsStatus::Draining)
                .count(),
            max_fraction: self.max_fraction,
        };
        let decision = policy::decide(wants, self.record.as_ref().map(|r| r.reason), own, Some(budget));
        if !matches!(decision, Decision::Withhold { .. }) {
            self.status.withheld = None;
        }
        match decision {
            Decision::Nothing => {}
            Decision::Drain(reason) => {
                self.api.set_status(&identity, true).await?;
                tracing::warn!(reason = reason.as_str(), detail, "set this container instance to DRAINING");
                self.remember(&identity, reason, detail).await?;
                self.status.ecs_status = Some("DRAINING".into());
            }
            Decision::Reclassify(reason) => {
                tracing::warn!(reason = reason.as_str(), detail, "the drain now has a stronger reason");
                self.remember(&identity, reason, detail).await?;
            }
            Decision::AdoptOperatorDrain => {
                tracing::info!("this instance was set to DRAINING by someone else: an operator's drain, never undone");
                self.remember(&identity, DrainReason::Operator, "drained outside nodewarden").await?;
            }
            Decision::Withhold { others_draining, allowed } => {
                let why = format!(
                    "disk pressure wants a drain, but {others_draining} of {} instances already drain and \
                     max-draining-fraction allows {allowed}; still reclaiming",
                    budget.registered
                );
                if self.status.withheld.as_deref() != Some(why.as_str()) {
                    tracing::warn!("{why}");
                }
                self.status.withheld = Some(why);
            }
            Decision::Undrain => {
                self.api.set_status(&identity, false).await?;
                tracing::info!("the disk recovered: this container instance is ACTIVE again");
                if let Err(error) = self.api.untag(&identity.ec2_instance_id).await {
                    tracing::warn!(%error, "could not remove the drain tags");
                }
                self.forget_record()?;
                self.status.ecs_status = Some("ACTIVE".into());
            }
        }
        Ok(())
    }

    async fn remember(&mut self, identity: &Identity, reason: DrainReason, detail: &str) -> Result<(), String> {
        let record = DrainRecord {
            reason,
            detail: detail.to_string(),
            since: self.record.as_ref().map_or_else(SystemTime::now, |r| r.since),
            cluster: identity.cluster.clone(),
            container_instance_arn: identity.container_instance_arn.clone(),
        };
        record::save(&self.record_path, &record).map_err(|e| e.to_string())?;
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

    fn forget_record(&mut self) -> Result<(), String> {
        record::clear(&self.record_path).map_err(|e| e.to_string())?;
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
) -> Result<Identity, String> {
    let instance_id = imds.instance_id().await.map_err(|e| e.to_string())?;
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
    let arn = arn.ok_or_else(|| {
        format!("EC2 instance {instance_id} is not registered in ECS cluster {cluster} (is the ECS agent up?)")
    })?;
    Ok(Identity { cluster: cluster.to_string(), container_instance_arn: arn, ec2_instance_id: instance_id })
}
