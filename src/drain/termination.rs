//! Leaving gracefully: the EC2 spot interruption notice and the Auto Scaling target lifecycle
//! state from IMDS, and completing the termination lifecycle action once this instance runs
//! no tasks (with heartbeats while waiting), so Auto Scaling does not cut tasks off.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::ecs_api::{EcsApi, Identity};
use crate::imds::{ImdsClient, ImdsError};

/// Why a spot notice, the lifecycle state or the lifecycle action could not be had, naming
/// the instance or hook.
#[derive(Debug, thiserror::Error)]
pub enum TerminationError {
    #[error(transparent)]
    Imds(Box<ImdsError>),
    #[error("unexpected spot/instance-action answer: {source}")]
    SpotAnswer { source: serde_json::Error },
    /// An Auto Scaling call failed: what it was doing, and the SDK's full error context.
    #[error("{doing}: {detail}")]
    AutoScaling { doing: String, detail: String },
    #[error("{instance} is not in an Auto Scaling group")]
    NotInGroup { instance: String },
}

impl From<ImdsError> for TerminationError {
    fn from(error: ImdsError) -> Self {
        TerminationError::Imds(Box::new(error))
    }
}

pub const SPOT_ACTION_PATH: &str = "/latest/meta-data/spot/instance-action";
pub const LIFECYCLE_STATE_PATH: &str = "/latest/meta-data/autoscaling/target-lifecycle-state";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SpotAction {
    pub action: String,
    #[serde(default)]
    pub time: Option<String>,
}

/// A spot notice, if IMDS has one (404 means none). Only actions that take the instance away
/// count: terminate, stop, hibernate.
pub async fn spot_notice(imds: &ImdsClient) -> Result<Option<SpotAction>, TerminationError> {
    let Some(body) = imds.get(SPOT_ACTION_PATH).await? else { return Ok(None) };
    let action: SpotAction = serde_json::from_slice(&body).map_err(|source| TerminationError::SpotAnswer { source })?;
    Ok(matches!(action.action.as_str(), "terminate" | "stop" | "hibernate").then_some(action))
}

/// Whether Auto Scaling wants this instance gone (`Terminated`); `false` when not in a group.
pub async fn termination_requested(imds: &ImdsClient) -> Result<bool, TerminationError> {
    let state = imds.get(LIFECYCLE_STATE_PATH).await?;
    Ok(state.is_some_and(|s| s.as_ref() == b"Terminated"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleSettings {
    pub hook: String,
    pub heartbeat_every: Duration,
    /// Complete anyway after this long, so a stuck task cannot hold the instance forever.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleOutcome {
    TasksStopped,
    TimedOut,
}

fn asg_error(doing: &str, error: impl std::error::Error) -> TerminationError {
    TerminationError::AutoScaling {
        doing: doing.to_string(),
        detail: aws_sdk_autoscaling::error::DisplayErrorContext(error).to_string(),
    }
}

/// Waits until ECS lists no running task on this instance (or the timeout), heartbeating the
/// lifecycle action meanwhile, then completes it with CONTINUE.
pub async fn complete_after_tasks_stop(
    autoscaling: &aws_sdk_autoscaling::Client,
    api: &EcsApi,
    identity: &Identity,
    settings: &LifecycleSettings,
) -> Result<LifecycleOutcome, TerminationError> {
    let instance = identity.ec2_instance_id.as_str();
    let described = autoscaling
        .describe_auto_scaling_instances()
        .instance_ids(instance)
        .send()
        .await
        .map_err(|e| asg_error(&format!("finding the Auto Scaling group of {instance}"), e))?;
    let group = described
        .auto_scaling_instances()
        .first()
        .and_then(|i| i.auto_scaling_group_name())
        .ok_or_else(|| TerminationError::NotInGroup { instance: instance.to_string() })?
        .to_string();
    let started = Instant::now();
    let mut last_heartbeat = Instant::now();
    let poll = settings.heartbeat_every.min(Duration::from_secs(5));
    let outcome = loop {
        match api.running_tasks(identity).await {
            Ok(tasks) if tasks.is_empty() => break LifecycleOutcome::TasksStopped,
            Ok(tasks) => tracing::info!(remaining = tasks.len(), "waiting for tasks to stop before termination"),
            Err(error) => tracing::warn!(%error, "cannot list tasks; still waiting"),
        }
        if started.elapsed() >= settings.timeout {
            tracing::warn!(timeout = ?settings.timeout, "tasks still running at the termination timeout; completing anyway");
            break LifecycleOutcome::TimedOut;
        }
        if last_heartbeat.elapsed() >= settings.heartbeat_every {
            let heartbeat = autoscaling
                .record_lifecycle_action_heartbeat()
                .auto_scaling_group_name(&group)
                .lifecycle_hook_name(&settings.hook)
                .instance_id(instance)
                .send()
                .await;
            match heartbeat {
                Ok(_) => tracing::debug!("lifecycle action heartbeat sent"),
                Err(error) => tracing::warn!(error = %asg_error("lifecycle heartbeat", error), "heartbeat failed"),
            }
            last_heartbeat = Instant::now();
        }
        tokio::time::sleep(poll).await;
    };
    autoscaling
        .complete_lifecycle_action()
        .auto_scaling_group_name(&group)
        .lifecycle_hook_name(&settings.hook)
        .instance_id(instance)
        .lifecycle_action_result("CONTINUE")
        .send()
        .await
        .map_err(|e| asg_error(&format!("completing lifecycle hook {} for {instance}", settings.hook), e))?;
    tracing::info!(?outcome, hook = %settings.hook, "lifecycle action completed: Auto Scaling may terminate the instance");
    Ok(outcome)
}
