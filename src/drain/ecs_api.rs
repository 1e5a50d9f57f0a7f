//! The AWS edge of draining: finding this instance's container instance, its status and the
//! cluster's, setting DRAINING/ACTIVE, listing its tasks, and tagging the EC2 instance.

use std::time::{Duration, SystemTime};

use aws_sdk_ecs::types::ContainerInstanceStatus;

use super::policy::EcsStatus;

/// Describe calls take at most 100 container instances.
const DESCRIBE_BATCH: usize = 100;
pub const TAG_REASON: &str = "nodewarden:drain-reason";
pub const TAG_SINCE: &str = "nodewarden:drained-at";

fn ecs_error(context: &str, error: impl std::error::Error) -> String {
    format!("{context}: {}", aws_sdk_ecs::error::DisplayErrorContext(error))
}

/// This instance as ECS knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub cluster: String,
    pub container_instance_arn: String,
    pub ec2_instance_id: String,
}

#[derive(Debug, Clone)]
pub struct EcsApi {
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
}

/// One container instance as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub arn: String,
    pub ec2_instance_id: Option<String>,
    pub status: EcsStatus,
}

impl EcsApi {
    /// Every container instance of `cluster` with its status. Matching is done here, not with
    /// ListContainerInstances' `filter` (moto ignores it; this works the same on real ECS).
    pub async fn members(&self, cluster: &str) -> Result<Vec<Member>, String> {
        let mut arns = Vec::new();
        let mut pages = self.ecs.list_container_instances().cluster(cluster).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ecs_error(&format!("listing container instances of {cluster}"), e))?;
            arns.extend(page.container_instance_arns().iter().cloned());
        }
        let mut members = Vec::with_capacity(arns.len());
        for batch in arns.chunks(DESCRIBE_BATCH) {
            let described = self
                .ecs
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| ecs_error(&format!("describing container instances of {cluster}"), e))?;
            for instance in described.container_instances() {
                members.push(Member {
                    arn: instance.container_instance_arn().unwrap_or_default().to_string(),
                    ec2_instance_id: instance.ec2_instance_id().map(str::to_string),
                    status: EcsStatus::parse(instance.status().unwrap_or_default()),
                });
            }
        }
        Ok(members)
    }

    /// Sets DRAINING or ACTIVE; a failure ECS reports per instance is an error too.
    pub async fn set_status(&self, identity: &Identity, draining: bool) -> Result<(), String> {
        let status = if draining { ContainerInstanceStatus::Draining } else { ContainerInstanceStatus::Active };
        let context = format!("setting {} to {}", identity.container_instance_arn, status.as_str());
        let output = self
            .ecs
            .update_container_instances_state()
            .cluster(&identity.cluster)
            .container_instances(&identity.container_instance_arn)
            .status(status)
            .send()
            .await
            .map_err(|e| ecs_error(&context, e))?;
        if let Some(failure) = output.failures().first() {
            return Err(format!(
                "{context}: {} ({})",
                failure.reason().unwrap_or("failed"),
                failure.detail().unwrap_or("")
            ));
        }
        Ok(())
    }

    /// Tasks ECS still wants running on this instance.
    pub async fn running_tasks(&self, identity: &Identity) -> Result<Vec<String>, String> {
        let mut tasks = Vec::new();
        let mut pages = self
            .ecs
            .list_tasks()
            .cluster(&identity.cluster)
            .container_instance(&identity.container_instance_arn)
            .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ecs_error("listing this instance's tasks", e))?;
            tasks.extend(page.task_arns().iter().cloned());
        }
        Ok(tasks)
    }

    /// Tags the EC2 instance with why and when it was drained, where operators look.
    pub async fn tag(&self, instance_id: &str, reason: &str, since: SystemTime) -> Result<(), String> {
        let since = humantime::format_rfc3339_seconds(since).to_string();
        let tag = |key: &str, value: &str| aws_sdk_ec2::types::Tag::builder().key(key).value(value).build();
        self.ec2
            .create_tags()
            .resources(instance_id)
            .tags(tag(TAG_REASON, &truncate(reason, 256)))
            .tags(tag(TAG_SINCE, &since))
            .send()
            .await
            .map(drop)
            .map_err(|e| format!("tagging {instance_id}: {}", aws_sdk_ec2::error::DisplayErrorContext(e)))
    }

    pub async fn untag(&self, instance_id: &str) -> Result<(), String> {
        let tag = |key: &str| aws_sdk_ec2::types::Tag::builder().key(key).build();
        self.ec2
            .delete_tags()
            .resources(instance_id)
            .tags(tag(TAG_REASON))
            .tags(tag(TAG_SINCE))
            .send()
            .await
            .map(drop)
            .map_err(|e| format!("removing tags from {instance_id}: {}", aws_sdk_ec2::error::DisplayErrorContext(e)))
    }
}

/// EC2 tag values hold at most 256 characters.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// How long AWS calls may take before the daemon moves on (it retries at the next check).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);
