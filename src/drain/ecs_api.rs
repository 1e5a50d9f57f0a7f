//! The AWS edge of draining: finding this instance's container instance, its status and
//! attributes, what a drain decision needs of the cluster (the registered count, the DRAINING
//! instances, the claims: a call per hundred of each, however large the cluster), setting
//! DRAINING/ACTIVE, its tasks (to keep their images, to stop only a task ECS placed here), and
//! tagging the EC2 instance. `execute` carries out the calls the drain machine asks for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{Attribute, ContainerInstance, ContainerInstanceStatus, TargetType};

use super::claims::{self, Claim, View};
use super::policy::EcsStatus;
use super::protocol::{ADMISSION_FRESH, Answer, Listed, Request};

/// Describe calls take at most 100 container instances.
const DESCRIBE_BATCH: usize = 100;
pub const TAG_REASON: &str = "nodewarden:drain-reason";
pub const TAG_SINCE: &str = "nodewarden:drained-at";

/// A failed AWS call, by the kind the caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The account's request rate for the API is spent (shared with the ECS agents,
    /// deployments, the console): wait longer before the next try.
    #[error("{context}: AWS is throttling ({detail}); backing off")]
    Throttled { context: String, detail: String },
    #[error("{context}: {detail}")]
    Failed { context: String, detail: String },
}

impl ApiError {
    pub(crate) fn from_sdk(
        context: impl Into<String>,
        error: impl std::error::Error + ProvideErrorMetadata,
    ) -> ApiError {
        let throttled = matches!(
            error.code(),
            Some("ThrottlingException" | "Throttling" | "RequestLimitExceeded" | "TooManyRequestsException")
        );
        let context = context.into();
        let detail = aws_sdk_ecs::error::DisplayErrorContext(error).to_string();
        if throttled { ApiError::Throttled { context, detail } } else { ApiError::Failed { context, detail } }
    }

    pub fn is_throttled(&self) -> bool {
        matches!(self, ApiError::Throttled { .. })
    }
}

/// The id ECS attributes use as a container instance's target: the last element of its ARN
/// (real ECS takes the ARN too; moto only this, so this works on both).
pub fn instance_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
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
    /// The last read of the cluster, if AWS cut it short (see `PartialView`).
    partial: Arc<Mutex<Option<PartialView>>>,
}

/// A read of the cluster that failed part-way, kept for the next read to go on from where it
/// stopped: under a fleet's throttling a read of many pages seldom gets every page in one go,
/// and starting over would spend the cluster's read rate again on the pages already read.
/// Resumed only within `ADMISSION_FRESH` of its first page: a longer-stitched view missed
/// drains often enough, in the fleet simulation, to hold the budget over for minutes.
#[derive(Debug, Clone)]
struct PartialView {
    started: Instant,
    listed: Listed,
    registered: Option<usize>,
    draining: BTreeSet<String>,
    draining_next: Cursor,
    claims: Vec<Claim>,
    claims_next: Cursor,
    /// Pages read so far (and DescribeClusters).
    calls: u32,
}

/// Where a paged list stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    Start,
    Next(String),
    Done,
}

impl Cursor {
    fn token(&self) -> Option<String> {
        match self {
            Cursor::Next(token) => Some(token.clone()),
            Cursor::Start | Cursor::Done => None,
        }
    }

    fn after(next_token: Option<&str>) -> Cursor {
        next_token.map_or(Cursor::Done, |token| Cursor::Next(token.to_string()))
    }
}

impl PartialView {
    fn new(listed: Listed) -> PartialView {
        PartialView {
            started: Instant::now(),
            listed,
            registered: None,
            draining: BTreeSet::new(),
            draining_next: Cursor::Start,
            claims: Vec::new(),
            claims_next: Cursor::Start,
            calls: 0,
        }
    }

    /// Whether a read asked for now can go on from this one.
    fn serves(&self, listed: Listed, with_registered: bool) -> bool {
        self.listed == listed
            && (self.registered.is_some() || !with_registered)
            && self.started.elapsed() < ADMISSION_FRESH
    }
}

/// What came of a request to stop a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    Stopped,
    /// ECS does not list the task on this container instance: not stopped.
    NotPlacedHere,
}

/// One container instance as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub arn: String,
    pub ec2_instance_id: Option<String>,
    pub status: EcsStatus,
}

impl EcsApi {
    pub fn new(ecs: aws_sdk_ecs::Client, ec2: aws_sdk_ec2::Client) -> EcsApi {
        EcsApi { ecs, ec2, partial: Arc::default() }
    }

    /// Every container instance of `cluster` with its status. Matching is done here, not with
    /// ListContainerInstances' `filter` (moto ignores it; this works the same on real ECS).
    /// Costs a call per 100 instances: only for finding this instance when the agent cannot say.
    pub async fn members(&self, cluster: &str) -> Result<Vec<Member>, ApiError> {
        let mut arns = Vec::new();
        let mut pages = self.ecs.list_container_instances().cluster(cluster).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ApiError::from_sdk(format!("listing container instances of {cluster}"), e))?;
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
                .map_err(|e| ApiError::from_sdk(format!("describing container instances of {cluster}"), e))?;
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

    /// This container instance as ECS describes it: one call.
    async fn describe_self(&self, identity: &Identity) -> Result<Option<ContainerInstance>, ApiError> {
        self.describe(&identity.cluster, &identity.container_instance_arn).await
    }

    async fn describe(&self, cluster: &str, arn: &str) -> Result<Option<ContainerInstance>, ApiError> {
        let described = self
            .ecs
            .describe_container_instances()
            .cluster(cluster)
            .container_instances(arn)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(format!("describing {arn}"), e))?;
        Ok(described.container_instances().first().cloned())
    }

    /// A container instance of `cluster` by its ARN, if ECS knows it there: one call.
    pub async fn describe_instance(&self, cluster: &str, arn: &str) -> Result<Option<Member>, ApiError> {
        Ok(self.describe(cluster, arn).await?.map(|i| Member {
            arn: i.container_instance_arn().unwrap_or_default().to_string(),
            ec2_instance_id: i.ec2_instance_id().map(str::to_string),
            status: EcsStatus::parse(i.status().unwrap_or_default()),
        }))
    }

    /// This instance's status and attributes: one call.
    pub async fn own_state(&self, identity: &Identity) -> Result<(EcsStatus, BTreeMap<String, String>), ApiError> {
        let described = self.describe_self(identity).await?;
        let status = described.as_ref().map_or(EcsStatus::Other, |i| EcsStatus::parse(i.status().unwrap_or_default()));
        let attributes = described
            .iter()
            .flat_map(|i| i.attributes())
            .filter(|a| a.name().starts_with("nodewarden."))
            .map(|a| (a.name().to_string(), a.value().unwrap_or_default().to_string()))
            .collect();
        Ok((status, attributes))
    }

    /// The cluster's registered container instances (ACTIVE and DRAINING): one call.
    pub async fn registered_count(&self, cluster: &str) -> Result<usize, ApiError> {
        let described = self
            .ecs
            .describe_clusters()
            .clusters(cluster)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(format!("describing cluster {cluster}"), e))?;
        let registered = described.clusters().first().map_or(0, |c| c.registered_container_instances_count());
        Ok(usize::try_from(registered).unwrap_or(0))
    }

    /// What a drain decision reads of the cluster, with how many calls it took: the registered
    /// count (when asked; one call), the DRAINING instances (all, or those with a claim) and the
    /// drain claims (a call per 100 of each, at least one), however large the cluster. A read
    /// that fails part-way is resumed by the next one (`PartialView`).
    pub async fn cluster_view(
        &self,
        cluster: &str,
        with_registered: bool,
        listed: Listed,
    ) -> Result<(View, u32), ApiError> {
        let kept = self.partial.lock().unwrap_or_else(PoisonError::into_inner).take();
        let mut read = kept.filter(|p| p.serves(listed, with_registered)).unwrap_or_else(|| PartialView::new(listed));
        match self.read_on(cluster, with_registered, &mut read).await {
            Ok(()) => {
                let view =
                    View { registered: read.registered.unwrap_or(0), draining: read.draining, claims: read.claims };
                Ok((view, read.calls.max(1)))
            }
            Err(error) => {
                *self.partial.lock().unwrap_or_else(PoisonError::into_inner) = Some(read);
                Err(error)
            }
        }
    }

    /// Reads what `read` still lacks, page by page, noting each page as it comes.
    async fn read_on(&self, cluster: &str, with_registered: bool, read: &mut PartialView) -> Result<(), ApiError> {
        if with_registered && read.registered.is_none() {
            read.registered = Some(self.registered_count(cluster).await?);
            read.calls += 1;
        }
        // The claimed ones alone by ECS's cluster query language. moto ignores `filter` and
        // lists every DRAINING instance: a superset, which orders the holders the same.
        let filter = match read.listed {
            Listed::AllDraining => None,
            Listed::ClaimedDraining => Some(format!("attribute:{} exists", claims::CLAIM_ATTRIBUTE)),
        };
        while read.draining_next != Cursor::Done {
            let page = self
                .ecs
                .list_container_instances()
                .cluster(cluster)
                .status(ContainerInstanceStatus::Draining)
                .set_filter(filter.clone())
                .set_next_token(read.draining_next.token())
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(format!("listing DRAINING container instances of {cluster}"), e))?;
            read.calls += 1;
            read.draining.extend(page.container_instance_arns().iter().map(|arn| instance_id(arn).to_string()));
            read.draining_next = Cursor::after(page.next_token());
        }
        while read.claims_next != Cursor::Done {
            let page = self
                .ecs
                .list_attributes()
                .cluster(cluster)
                .target_type(TargetType::ContainerInstance)
                .attribute_name(claims::CLAIM_ATTRIBUTE)
                .set_next_token(read.claims_next.token())
                .send()
                .await
                .map_err(|e| ApiError::from_sdk(format!("listing drain claims in {cluster}"), e))?;
            read.calls += 1;
            for attribute in page.attributes() {
                let target = instance_id(attribute.target_id().unwrap_or_default());
                read.claims.extend(Claim::parse(target, attribute.value().unwrap_or_default()));
            }
            read.claims_next = Cursor::after(page.next_token());
        }
        Ok(())
    }

    /// Makes one call the drain machine asked for (`protocol::Request`).
    pub async fn execute(&self, identity: &Identity, request: &Request) -> Result<Answer, ApiError> {
        match request {
            Request::DescribeSelf => {
                let (status, attributes) = self.own_state(identity).await?;
                Ok(Answer::SelfState { status, attributes })
            }
            Request::ReadView { registered, draining } => {
                let (view, calls) = self.cluster_view(&identity.cluster, *registered, *draining).await?;
                Ok(Answer::View { view, calls })
            }
            Request::PutAttribute { name, value } => {
                self.put_attribute(identity, name, value).await.map(|()| Answer::Done)
            }
            Request::DeleteAttribute { name, value } => {
                self.delete_attribute(identity, name, Some(value)).await.map(|()| Answer::Done)
            }
            Request::SetStatus { draining } => self.set_status(identity, *draining).await.map(|()| Answer::Done),
            Request::Tag { text, since } => {
                self.tag(&identity.ec2_instance_id, text, *since).await.map(|()| Answer::Done)
            }
            Request::Untag => self.untag(&identity.ec2_instance_id).await.map(|()| Answer::Done),
        }
    }

    /// Puts `name = value` on this container instance.
    pub async fn put_attribute(&self, identity: &Identity, name: &str, value: &str) -> Result<(), ApiError> {
        let context = format!("setting attribute {name}={value} on this container instance");
        let attribute = attribute(identity, name, Some(value), &context)?;
        let request = self.ecs.put_attributes().cluster(&identity.cluster).attributes(attribute);
        request.send().await.map(drop).map_err(|e| ApiError::from_sdk(context, e))
    }

    /// Removes attribute `name` from this container instance. `value` is the value it was
    /// set to; when unknown (after a restart, from the CLI) it is read first. Real ECS deletes
    /// by name, moto only when the value matches too (`moto/ecs/models.py`,
    /// `_delete_attribute`), so sending the value works on both.
    pub async fn delete_attribute(&self, identity: &Identity, name: &str, value: Option<&str>) -> Result<(), ApiError> {
        let context = format!("removing attribute {name} from this container instance");
        let current = match value {
            Some(value) => Some(value.to_string()),
            None => {
                let instance = self.describe_self(identity).await?;
                let found = instance.as_ref().and_then(|i| i.attributes().iter().find(|a| a.name() == name));
                let Some(found) = found else { return Ok(()) };
                found.value().map(str::to_string)
            }
        };
        let attribute = attribute(identity, name, current.as_deref(), &context)?;
        let request = self.ecs.delete_attributes().cluster(&identity.cluster).attributes(attribute);
        request.send().await.map(drop).map_err(|e| ApiError::from_sdk(context, e))
    }

    /// Sets DRAINING or ACTIVE; a failure ECS reports per instance is an error too.
    pub async fn set_status(&self, identity: &Identity, draining: bool) -> Result<(), ApiError> {
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
            .map_err(|e| ApiError::from_sdk(context.clone(), e))?;
        if let Some(failure) = output.failures().first() {
            let detail = format!("{} ({})", failure.reason().unwrap_or("failed"), failure.detail().unwrap_or(""));
            return Err(ApiError::Failed { context, detail });
        }
        Ok(())
    }

    /// Stops a task ECS placed on this instance; `reason` shows in the ECS console and the
    /// task's events. The ARN comes from a container's label, which any container can carry:
    /// it is stopped only if ListTasks for this container instance names it, so a forged label
    /// can never stop a task of another instance (or of nobody).
    pub async fn stop_task_placed_here(
        &self,
        identity: &Identity,
        task_arn: &str,
        reason: &str,
    ) -> Result<StopOutcome, ApiError> {
        if !self.running_tasks(identity).await?.iter().any(|arn| arn == task_arn) {
            return Ok(StopOutcome::NotPlacedHere);
        }
        self.ecs
            .stop_task()
            .cluster(&identity.cluster)
            .task(task_arn)
            .reason(reason)
            .send()
            .await
            .map(|_| StopOutcome::Stopped)
            .map_err(|e| ApiError::from_sdk(format!("stopping task {task_arn}"), e))
    }

    /// Tasks ECS still wants running on this instance.
    pub async fn running_tasks(&self, identity: &Identity) -> Result<Vec<String>, ApiError> {
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
            let page = page.map_err(|e| ApiError::from_sdk("listing this instance's tasks", e))?;
            tasks.extend(page.task_arns().iter().cloned());
        }
        Ok(tasks)
    }

    /// The images of the tasks ECS wants running on this instance, as their task definitions
    /// name them: a task still PENDING (pulled, containers not yet created) is among them.
    pub async fn task_images(&self, identity: &Identity) -> Result<std::collections::BTreeSet<String>, ApiError> {
        let mut images = std::collections::BTreeSet::new();
        // DescribeTasks takes at most 100 tasks a call.
        for chunk in self.running_tasks(identity).await?.chunks(100) {
            let described = self
                .ecs
                .describe_tasks()
                .cluster(&identity.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("describing this instance's tasks", e))?;
            let containers = described.tasks().iter().flat_map(|task| task.containers());
            images.extend(containers.filter_map(|c| c.image().map(str::to_string)));
        }
        Ok(images)
    }

    /// Tags the EC2 instance with why and when it was drained, where operators look.
    pub async fn tag(&self, instance_id: &str, reason: &str, since: SystemTime) -> Result<(), ApiError> {
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
            .map_err(|e| ApiError::from_sdk(format!("tagging {instance_id}"), e))
    }

    pub async fn untag(&self, instance_id: &str) -> Result<(), ApiError> {
        let tag = |key: &str| aws_sdk_ec2::types::Tag::builder().key(key).build();
        self.ec2
            .delete_tags()
            .resources(instance_id)
            .tags(tag(TAG_REASON))
            .tags(tag(TAG_SINCE))
            .send()
            .await
            .map(drop)
            .map_err(|e| ApiError::from_sdk(format!("removing tags from {instance_id}"), e))
    }
}

fn attribute(identity: &Identity, name: &str, value: Option<&str>, context: &str) -> Result<Attribute, ApiError> {
    Attribute::builder()
        .name(name)
        .set_value(value.map(str::to_string))
        .target_type(TargetType::ContainerInstance)
        .target_id(instance_id(&identity.container_instance_arn))
        .build()
        .map_err(|e| ApiError::Failed { context: context.to_string(), detail: e.to_string() })
}

/// EC2 tag values hold at most 256 characters.
fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// How long AWS calls may take before the daemon moves on (it retries at the next check).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::error::ErrorMetadata;
    use aws_sdk_ecs::operation::list_attributes::ListAttributesOutput;
    use aws_sdk_ecs::operation::list_container_instances::{ListContainerInstancesError, ListContainerInstancesOutput};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn arn(id: &str) -> String {
        format!("arn:aws:ecs:us-east-1:123456789012:container-instance/web/{id}")
    }

    /// A read throttled on its second page goes on from that page the next time, without
    /// reading the first again.
    #[tokio::test]
    async fn a_read_cut_short_by_throttling_resumes_at_the_page_it_lacked() {
        let first = mock!(aws_sdk_ecs::Client::list_container_instances)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                ListContainerInstancesOutput::builder().container_instance_arns(arn("a")).next_token("page-2").build()
            });
        let second = mock!(aws_sdk_ecs::Client::list_container_instances)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .sequence()
            .error(|| {
                ListContainerInstancesError::generic(
                    ErrorMetadata::builder().code("ThrottlingException").message("Rate exceeded").build(),
                )
            })
            .output(|| ListContainerInstancesOutput::builder().container_instance_arns(arn("b")).build())
            .repeatedly()
            .build();
        let claims =
            mock!(aws_sdk_ecs::Client::list_attributes).then_output(|| ListAttributesOutput::builder().build());
        let ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&first, &second, &claims], |c| {
            c.retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled())
        });
        let ec2 = aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::Config::builder()
                .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
                .region(aws_sdk_ec2::config::Region::new("us-east-1"))
                .build(),
        );
        let api = EcsApi::new(ecs, ec2);

        let error = api.cluster_view("web", false, Listed::AllDraining).await.unwrap_err();
        assert!(error.is_throttled(), "{error}");
        let (view, calls) = api.cluster_view("web", false, Listed::AllDraining).await.unwrap();
        assert_eq!(view.draining, ["a".to_string(), "b".to_string()].into());
        assert_eq!(first.num_calls(), 1, "the first page is not read again");
        assert_eq!(second.num_calls(), 2);
        assert_eq!(calls, 3, "two DRAINING pages and one of claims");

        // A finished read is not resumed: the next one starts at the first page.
        api.cluster_view("web", false, Listed::AllDraining).await.unwrap();
        assert_eq!(first.num_calls(), 2);
    }
}
