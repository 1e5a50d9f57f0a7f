//! AWS SDK clients built from [`Environment`], so endpoint overrides (moto in tests and the
//! demo, VPC endpoints in production), region and static credentials come from one place.
//! Without static credentials the SDK's default chain applies (the instance role via IMDS).

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::environment::{AwsService, Environment};

/// Shared SDK configuration; `region` is used when the environment names none (from IMDS).
pub async fn sdk_config(environment: &Environment, region: Option<&str>) -> SdkConfig {
    // Bounded calls: a hung endpoint must not stall the daemon's loops (they retry next time).
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .operation_attempt_timeout(std::time::Duration::from_secs(5))
        .operation_timeout(std::time::Duration::from_secs(20))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let Some(region) = environment.aws_region.as_deref().or(region) {
        loader = loader.region(Region::new(region.to_string()));
    }
    if let Some(credentials) = &environment.aws_credentials {
        loader = loader.credentials_provider(aws_sdk_ecs::config::Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.expose().to_string(),
            credentials.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "environment",
        ));
    }
    loader.load().await
}

fn endpoint(environment: &Environment, service: AwsService) -> Option<String> {
    environment.aws_endpoint(service).map(|uri| uri.to_string().trim_end_matches('/').to_string())
}

pub fn ecs_client(environment: &Environment, config: &SdkConfig) -> aws_sdk_ecs::Client {
    let mut builder = aws_sdk_ecs::config::Builder::from(config);
    if let Some(url) = endpoint(environment, AwsService::Ecs) {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_ecs::Client::from_conf(builder.build())
}

pub fn ec2_client(environment: &Environment, config: &SdkConfig) -> aws_sdk_ec2::Client {
    let mut builder = aws_sdk_ec2::config::Builder::from(config);
    if let Some(url) = endpoint(environment, AwsService::Ec2) {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_ec2::Client::from_conf(builder.build())
}

pub fn autoscaling_client(environment: &Environment, config: &SdkConfig) -> aws_sdk_autoscaling::Client {
    let mut builder = aws_sdk_autoscaling::config::Builder::from(config);
    if let Some(url) = endpoint(environment, AwsService::AutoScaling) {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_autoscaling::Client::from_conf(builder.build())
}

/// The clients nodewarden uses, built once: ECS and EC2 for draining and tags, Auto Scaling
/// for lifecycle actions.
#[derive(Clone)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
}

impl Clients {
    /// Builds the clients with the Region from `AWS_REGION`, else from IMDS. When neither
    /// says, the SDK's default chain decides, and the second value says why the Region is
    /// unknown: a command that needs AWS fails on it, the daemon warns and goes on.
    pub async fn resolve(environment: &Environment, imds: &crate::imds::ImdsClient) -> (Clients, Option<String>) {
        let (region, unknown) = match environment.aws_region {
            Some(_) => (None, None),
            None => match imds.region().await {
                Ok(region) => (Some(region), None),
                Err(error) => (None, Some(format!("no AWS_REGION, and IMDS did not say the Region: {error}"))),
            },
        };
        let config = sdk_config(environment, region.as_deref()).await;
        let clients = Clients {
            ecs: ecs_client(environment, &config),
            ec2: ec2_client(environment, &config),
            autoscaling: autoscaling_client(environment, &config),
        };
        (clients, unknown)
    }

    /// What the drain controller talks to.
    pub fn ecs_api(&self) -> crate::drain::EcsApi {
        crate::drain::EcsApi { ecs: self.ecs.clone(), ec2: self.ec2.clone() }
    }
}
