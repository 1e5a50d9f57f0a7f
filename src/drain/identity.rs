//! Which container instance this EC2 instance is. The agent's introspection API says it in one
//! local call, but anything on the host network can answer on its port: its answer is used
//! only when ECS confirms that the ARN belongs to this EC2 instance (as IMDS names it) in this
//! cluster. Otherwise ECS is asked which member of the cluster this instance is.

use std::time::Duration;

use hyper::Uri;

use super::ecs_api::{ApiError, EcsApi, Identity};
use crate::http::HttpClient;
use crate::imds::{ImdsClient, ImdsError};
use crate::introspection;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("reading this instance's id from IMDS: {0}")]
    Imds(#[from] Box<ImdsError>),
    #[error("EC2 instance {instance_id} is not registered in ECS cluster {cluster} (is the ECS agent up?)")]
    NotRegistered { instance_id: String, cluster: String },
}

/// The container instance ARN of this EC2 instance: the agent's introspection API when ECS
/// confirms it, else the ECS API matched on the instance id from IMDS.
pub async fn resolve_identity(
    api: &EcsApi,
    cluster: &str,
    imds: &ImdsClient,
    http: &HttpClient,
    introspection: &Uri,
) -> Result<Identity, IdentityError> {
    let instance_id = imds.instance_id().await.map_err(Box::new)?;
    let from_agent = introspection::fetch_metadata(http, introspection, Duration::from_secs(2))
        .await
        .ok()
        .and_then(|metadata| metadata.container_instance_arn);
    let mut arn = None;
    if let Some(claimed) = from_agent {
        let described = api.describe_instance(cluster, &claimed).await?;
        match described.and_then(|i| i.ec2_instance_id) {
            Some(ec2) if ec2 == instance_id => arn = Some(claimed),
            other => tracing::warn!(
                arn = %claimed,
                ec2_instance = other.as_deref().unwrap_or("none in this cluster"),
                this_instance = %instance_id,
                "the agent's introspection API names a container instance that is not this EC2 instance; ignoring it"
            ),
        }
    }
    if arn.is_none() {
        arn = api
            .members(cluster)
            .await?
            .into_iter()
            .find(|m| m.ec2_instance_id.as_deref() == Some(instance_id.as_str()))
            .map(|m| m.arn);
    }
    let arn = arn.ok_or_else(|| IdentityError::NotRegistered {
        instance_id: instance_id.clone(),
        cluster: cluster.to_string(),
    })?;
    Ok(Identity { cluster: cluster.to_string(), container_instance_arn: arn, ec2_instance_id: instance_id })
}
