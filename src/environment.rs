//! The standard environment, read in exactly one place: `DOCKER_HOST`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` and its per-service forms, `AWS_EC2_METADATA_SERVICE_ENDPOINT`,
//! `NODEWARDEN_AGENT_INTROSPECTION`, and static AWS credentials when set. Tests, the demo and
//! operators all steer nodewarden through these same variables.

use std::fmt;

use hyper::Uri;

use crate::secret::Secret;

pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
pub const DEFAULT_AGENT_INTROSPECTION: &str = "http://127.0.0.1:51678";
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// An AWS service nodewarden calls, for endpoint overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    Ecs,
    Ec2,
    AutoScaling,
}

impl AwsService {
    /// The suffix of `AWS_ENDPOINT_URL_<SERVICE>` (the SDK's service id, upper snake case).
    pub fn env_suffix(self) -> &'static str {
        match self {
            AwsService::Ecs => "ECS",
            AwsService::Ec2 => "EC2",
            AwsService::AutoScaling => "AUTO_SCALING",
        }
    }
}

#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Environment {
    /// Docker socket, `unix:///path` (the default) or `tcp://host:port`.
    pub docker_host: String,
    pub aws_region: Option<String>,
    aws_endpoint_url: Option<Uri>,
    ecs_endpoint: Option<Uri>,
    ec2_endpoint: Option<Uri>,
    autoscaling_endpoint: Option<Uri>,
    pub imds_endpoint: Uri,
    pub agent_introspection: Uri,
    /// From `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`; otherwise the SDK's default chain.
    pub aws_credentials: Option<StaticCredentials>,
    /// Whether the process environment names a proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    /// either case), which the AWS SDK then follows with `NO_PROXY` (see [`crate::aws::AwsProxy`]).
    pub proxy_in_environment: bool,
}

/// The variables the AWS SDK's HTTP client reads a proxy from.
const PROXY_VARIABLES: [&str; 6] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("environment variable {name}: expected {expected}, found {found:?}")]
pub struct EnvironmentError {
    pub name: &'static str,
    pub expected: &'static str,
    pub found: String,
}

impl Environment {
    /// Reads the process environment.
    pub fn from_process() -> Result<Self, EnvironmentError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests can pass their own without touching the
    /// process environment. Empty values count as unset, as the AWS SDKs treat them.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, EnvironmentError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let url = |name: &'static str| -> Result<Option<Uri>, EnvironmentError> {
            get(name).map(|value| parse_http_url(name, &value)).transpose()
        };
        let docker_host = get("DOCKER_HOST").unwrap_or_else(|| DEFAULT_DOCKER_HOST.into());
        if !(docker_host.starts_with("unix://") || docker_host.starts_with("tcp://")) {
            return Err(EnvironmentError {
                name: "DOCKER_HOST",
                expected: "unix:///path/to/docker.sock or tcp://host:port",
                found: docker_host,
            });
        }
        let aws_credentials = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret)) => Some(StaticCredentials {
                access_key_id,
                secret_access_key: Secret::new(secret),
                session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
            }),
            _ => None,
        };
        Ok(Environment {
            docker_host,
            aws_region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            aws_endpoint_url: url("AWS_ENDPOINT_URL")?,
            ecs_endpoint: url("AWS_ENDPOINT_URL_ECS")?,
            ec2_endpoint: url("AWS_ENDPOINT_URL_EC2")?,
            autoscaling_endpoint: url("AWS_ENDPOINT_URL_AUTO_SCALING")?,
            imds_endpoint: url("AWS_EC2_METADATA_SERVICE_ENDPOINT")?
                .unwrap_or_else(|| Uri::from_static(DEFAULT_IMDS_ENDPOINT)),
            agent_introspection: url("NODEWARDEN_AGENT_INTROSPECTION")?
                .unwrap_or_else(|| Uri::from_static(DEFAULT_AGENT_INTROSPECTION)),
            aws_credentials,
            proxy_in_environment: PROXY_VARIABLES.iter().any(|name| get(name).is_some()),
        })
    }

    /// The endpoint override for `service`: its own variable first, then `AWS_ENDPOINT_URL`.
    pub fn aws_endpoint(&self, service: AwsService) -> Option<&Uri> {
        let specific = match service {
            AwsService::Ecs => &self.ecs_endpoint,
            AwsService::Ec2 => &self.ec2_endpoint,
            AwsService::AutoScaling => &self.autoscaling_endpoint,
        };
        specific.as_ref().or(self.aws_endpoint_url.as_ref())
    }

    /// The Docker socket path when `DOCKER_HOST` is a unix socket.
    pub fn docker_socket(&self) -> Option<&str> {
        self.docker_host.strip_prefix("unix://")
    }
}

fn parse_http_url(name: &'static str, value: &str) -> Result<Uri, EnvironmentError> {
    let error = || EnvironmentError { name, expected: "an http:// or https:// URL", found: value.to_string() };
    let uri: Uri = value.trim_end_matches('/').parse().map_err(|_| error())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Environment, EnvironmentError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Environment::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let e = env(&[]).unwrap();
        assert_eq!(e.docker_host, DEFAULT_DOCKER_HOST);
        assert_eq!(e.docker_socket(), Some("/var/run/docker.sock"));
        assert_eq!(e.imds_endpoint.to_string(), "http://169.254.169.254/");
        assert_eq!(e.agent_introspection.to_string(), "http://127.0.0.1:51678/");
        assert!(e.aws_endpoint(AwsService::Ecs).is_none() && e.aws_credentials.is_none());
    }

    #[test]
    fn per_service_endpoints_override_the_global_one() {
        let e = env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_ENDPOINT_URL_ECS", "http://127.0.0.1:6000/"),
            ("AWS_REGION", "eu-west-1"),
            ("DOCKER_HOST", "unix:///tmp/d.sock"),
        ])
        .unwrap();
        assert_eq!(e.aws_endpoint(AwsService::Ecs).unwrap().port_u16(), Some(6000));
        assert_eq!(e.aws_endpoint(AwsService::Ec2).unwrap().port_u16(), Some(5000));
        assert_eq!(e.aws_endpoint(AwsService::AutoScaling).unwrap().port_u16(), Some(5000));
        assert_eq!(e.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(e.docker_socket(), Some("/tmp/d.sock"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "169.254.169.254")]).unwrap_err();
        assert_eq!(error.name, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
        assert!(env(&[("DOCKER_HOST", "/var/run/docker.sock")]).is_err());
        assert!(env(&[("NODEWARDEN_AGENT_INTROSPECTION", "ftp://x")]).is_err());
    }

    #[test]
    fn credentials_never_print_their_secret() {
        let e = env(&[("AWS_ACCESS_KEY_ID", "AKIDTEST"), ("AWS_SECRET_ACCESS_KEY", "sup3rs3cret")]).unwrap();
        let printed = format!("{e:?}");
        assert!(printed.contains("AKIDTEST") && !printed.contains("sup3rs3cret"), "{printed}");
    }
}
