//! AWS SDK clients built from [`Environment`], so endpoint overrides (moto in tests and the
//! demo, VPC endpoints in production), region and static credentials come from one place.
//! Without static credentials the SDK's default chain applies (the instance role via IMDS).

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;

use crate::environment::{AwsService, Environment};

/// The hosts no proxy ever serves: IMDS (credentials, identity) and the ECS task metadata
/// endpoint are link-local, reachable only from the instance itself.
const NEVER_PROXIED: &str = "169.254.169.254,169.254.170.2";

/// Which proxy nodewarden's AWS calls go through. The process environment wins (a systemd
/// drop-in with `Environment=HTTPS_PROXY=...`, `NO_PROXY=...`), as for any AWS SDK; without
/// one, the proxy `[ecs.config]` gives the agent (`HTTP_PROXY`/`HTTPS_PROXY`, `NO_PROXY`, as the
/// ECS documentation configures it), so one setting serves the agent and nodewarden.
/// nodewarden's own IMDS client never uses a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsProxy {
    /// The SDK reads the process environment (which may name no proxy at all).
    FromEnvironment,
    /// From ecs.config: every AWS call through `url`, except the hosts `no_proxy` lists.
    FromEcsConfig { url: String, no_proxy: String },
}

impl AwsProxy {
    pub fn choose(proxy_in_environment: bool, ecs_config: &BTreeMap<String, String>) -> AwsProxy {
        let value = |key: &str| ecs_config.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        // The agent sends all its traffic through HTTP_PROXY; HTTPS_PROXY, when given, is
        // the one for HTTPS, which is what AWS endpoints speak.
        match value("HTTPS_PROXY").or(value("HTTP_PROXY")) {
            Some(proxy) if !proxy_in_environment => {
                let url = if proxy.contains("://") { proxy.to_string() } else { format!("http://{proxy}") };
                let no_proxy = match value("NO_PROXY") {
                    Some(listed) => format!("{listed},{NEVER_PROXIED}"),
                    None => NEVER_PROXIED.to_string(),
                };
                AwsProxy::FromEcsConfig { url, no_proxy }
            }
            _ => AwsProxy::FromEnvironment,
        }
    }
}

/// An HTTPS client as the SDK's default one (rustls with aws-lc), through `proxy`.
fn proxied_http_client(proxy: ProxyConfig) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(proxy.clone()));
        connector.build()
    })
}

/// Shared SDK configuration; `region` is used when the environment names none (from IMDS).
pub async fn sdk_config(environment: &Environment, region: Option<&str>, proxy: &AwsProxy) -> SdkConfig {
    // Bounded calls: a hung endpoint must not stall the daemon's loops (they retry next time).
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .operation_attempt_timeout(std::time::Duration::from_secs(5))
        .operation_timeout(std::time::Duration::from_secs(20))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
    if let AwsProxy::FromEcsConfig { url, no_proxy } = proxy {
        match ProxyConfig::all(url.as_str()) {
            Ok(config) => loader = loader.http_client(proxied_http_client(config.no_proxy(no_proxy))),
            Err(error) => {
                // Not the URL itself: it may carry the proxy's credentials.
                tracing::warn!(%error, "[ecs.config] HTTPS_PROXY/HTTP_PROXY is not a proxy URL nodewarden can use; calling AWS directly")
            }
        }
    }
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
    pub async fn resolve(
        environment: &Environment,
        imds: &crate::imds::ImdsClient,
        proxy: &AwsProxy,
    ) -> (Clients, Option<String>) {
        let (region, unknown) = match environment.aws_region {
            Some(_) => (None, None),
            None => match imds.region().await {
                Ok(region) => (Some(region), None),
                Err(error) => (None, Some(format!("no AWS_REGION, and IMDS did not say the Region: {error}"))),
            },
        };
        let config = sdk_config(environment, region.as_deref(), proxy).await;
        let clients = Clients {
            ecs: ecs_client(environment, &config),
            ec2: ec2_client(environment, &config),
            autoscaling: autoscaling_client(environment, &config),
        };
        (clients, unknown)
    }

    /// What the drain controller talks to.
    pub fn ecs_api(&self) -> crate::drain::EcsApi {
        crate::drain::EcsApi::new(self.ecs.clone(), self.ec2.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_comes_from_the_environment_first_then_from_ecs_config() {
        let config = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let from = |url: &str, no_proxy: &str| AwsProxy::FromEcsConfig { url: url.into(), no_proxy: no_proxy.into() };
        let cases = [
            (false, config(&[]), AwsProxy::FromEnvironment),
            (false, config(&[("ECS_CLUSTER", "c")]), AwsProxy::FromEnvironment),
            // The ECS documentation's form: host:port, no scheme.
            (false, config(&[("HTTP_PROXY", "10.0.0.131:3128")]), from("http://10.0.0.131:3128", NEVER_PROXIED)),
            (
                false,
                config(&[("HTTP_PROXY", "10.0.0.131:3128"), ("NO_PROXY", "169.254.169.254,/var/run/docker.sock")]),
                from("http://10.0.0.131:3128", "169.254.169.254,/var/run/docker.sock,169.254.169.254,169.254.170.2"),
            ),
            (
                false,
                config(&[("HTTP_PROXY", "10.0.0.131:3128"), ("HTTPS_PROXY", "https://proxy.corp:8443")]),
                from("https://proxy.corp:8443", NEVER_PROXIED),
            ),
            (false, config(&[("HTTP_PROXY", "  ")]), AwsProxy::FromEnvironment),
            // A proxy in nodewarden's own environment wins: the SDK reads it with NO_PROXY.
            (true, config(&[("HTTP_PROXY", "10.0.0.131:3128")]), AwsProxy::FromEnvironment),
        ];
        for (in_environment, ecs_config, want) in cases {
            assert_eq!(AwsProxy::choose(in_environment, &ecs_config), want, "{in_environment} {ecs_config:?}");
        }
    }
}
