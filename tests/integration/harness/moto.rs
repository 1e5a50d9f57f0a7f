//! moto's server on a free loopback port, from the virtualenv scripts/install-test-deps made,
//! with the real aws-sdk clients pointed at it through nodewarden's own Environment.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::Method;
use nodewarden::environment::Environment;
use nodewarden::http::HttpClient;

use super::aws_proxy::AwsProxy;
use super::system;

pub const REGION: &str = "us-east-1";
const DEFAULT_MOTO: &str = "/opt/nodewarden-test/venv/bin/moto_server";

pub struct Moto {
    /// moto's own port; clients go through `proxy` (see `endpoint`).
    pub port: u16,
    child: Child,
    log: tempfile::NamedTempFile,
    /// Counts calls and makes moto answer like ECS where it differs (see aws_proxy).
    pub proxy: AwsProxy,
}

impl Moto {
    pub async fn start() -> Moto {
        let binary = PathBuf::from(std::env::var("NODEWARDEN_MOTO_SERVER").unwrap_or_else(|_| DEFAULT_MOTO.into()));
        assert!(
            binary.is_file(),
            "moto_server not found at {}: run scripts/install-test-deps (it installs moto[server] in a virtualenv) \
             or set NODEWARDEN_MOTO_SERVER",
            binary.display()
        );
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("creating moto's log file");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("reopening the log"))
            .stderr(log.reopen().expect("reopening the log"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let proxy = AwsProxy::start(port);
        let mut moto = Moto { port, child, log, proxy };
        moto.wait_ready().await;
        moto
    }

    async fn wait_ready(&mut self) {
        let http = HttpClient::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited with {status}; its log:\n{}", self.log());
            }
            let uri = format!("http://127.0.0.1:{}/moto-api/data.json", self.port).parse().expect("a valid URL");
            if http.get(uri, &[], Duration::from_secs(2)).await.is_ok_and(|r| r.status.is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "moto_server did not answer within 60 s; its log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Where AWS clients connect: the counting proxy in front of moto.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy.port)
    }

    /// Everything a `nodewarden run` of one node needs: this moto, its dockerd, its IMDS, no
    /// agent (identity then comes from the ECS API), and `caller` as the SDK's app id so the
    /// counting proxy tells nodes apart.
    pub fn node_env(&self, docker_host: String, imds_endpoint: String, caller: &str) -> Vec<(String, String)> {
        let mut env = self.env_vars();
        env.push(("DOCKER_HOST".into(), docker_host));
        env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds_endpoint));
        env.push(("NODEWARDEN_AGENT_INTROSPECTION".into(), "http://127.0.0.1:9".into()));
        env.push(("AWS_SDK_UA_APP_ID".into(), caller.into()));
        env
    }

    /// The variables that point nodewarden (binary or library) at this moto.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ]
    }

    pub fn environment(&self) -> Environment {
        let vars = self.env_vars();
        Environment::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("moto's variables are valid")
    }

    /// The tests' own ECS client: nodewarden's, with patience for moto on a loaded machine (its
    /// first EC2 call loads the AMI catalogue; a thousand instances take a while).
    pub async fn ecs(&self) -> aws_sdk_ecs::Client {
        let environment = self.environment();
        let config = nodewarden::aws::sdk_config(&environment, None, &nodewarden::aws::AwsProxy::FromEnvironment).await;
        let client = nodewarden::aws::ecs_client(&environment, &config);
        aws_sdk_ecs::Client::from_conf(client.config().to_builder().timeout_config(patient()).build())
    }

    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        let environment = self.environment();
        let config = nodewarden::aws::sdk_config(&environment, None, &nodewarden::aws::AwsProxy::FromEnvironment).await;
        let client = nodewarden::aws::ec2_client(&environment, &config);
        aws_sdk_ec2::Client::from_conf(client.config().to_builder().timeout_config(patient()).build())
    }

    /// Launches `count` EC2 instances in moto and registers each as a container instance of a
    /// new `cluster`; returns (EC2 instance id, container instance ARN) pairs.
    pub async fn register_cluster(&self, cluster: &str, count: i32) -> Vec<(String, String)> {
        let ec2 = self.ec2().await;
        let images = ec2.describe_images().owners("amazon").send().await.expect("DescribeImages on moto");
        let ami = images.images().first().and_then(|i| i.image_id()).expect("moto ships default AMIs").to_string();
        let launched = ec2
            .run_instances()
            .image_id(ami)
            .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
            .min_count(count)
            .max_count(count)
            .send()
            .await
            .expect("RunInstances on moto");
        let ids: Vec<String> =
            launched.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
        let ecs = self.ecs().await;
        ecs.create_cluster().cluster_name(cluster).send().await.expect("CreateCluster on moto");
        let mut registered = Vec::new();
        for id in ids {
            let document = serde_json::json!({"instanceId": id, "region": REGION, "accountId": "123456789012"});
            let output = ecs
                .register_container_instance()
                .cluster(cluster)
                .instance_identity_document(document.to_string())
                .send()
                .await
                .expect("RegisterContainerInstance on moto");
            let arn = output.container_instance().and_then(|c| c.container_instance_arn()).expect("an ARN").to_string();
            registered.push((id, arn));
        }
        registered
    }

    /// The ECS status (ACTIVE, DRAINING) of a container instance.
    pub async fn status(&self, cluster: &str, arn: &str) -> String {
        let described =
            self.ecs().await.describe_container_instances().cluster(cluster).container_instances(arn).send().await;
        let described = described.expect("DescribeContainerInstances on moto");
        described.container_instances().first().and_then(|c| c.status()).unwrap_or_default().to_string()
    }

    /// The statuses of several container instances at one moment, in order.
    pub async fn statuses(&self, cluster: &str, arns: &[String]) -> Vec<String> {
        let described = self
            .ecs()
            .await
            .describe_container_instances()
            .cluster(cluster)
            .set_container_instances(Some(arns.to_vec()))
            .send()
            .await
            .expect("DescribeContainerInstances on moto");
        arns.iter()
            .map(|arn| {
                described
                    .container_instances()
                    .iter()
                    .find(|c| c.container_instance_arn() == Some(arn.as_str()))
                    .and_then(|c| c.status())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// The custom attributes (not `ecs.*`) of a container instance, name → value.
    pub async fn attributes(&self, cluster: &str, arn: &str) -> std::collections::BTreeMap<String, String> {
        let described =
            self.ecs().await.describe_container_instances().cluster(cluster).container_instances(arn).send().await;
        let described = described.expect("DescribeContainerInstances on moto");
        described
            .container_instances()
            .first()
            .map(|c| c.attributes())
            .unwrap_or_default()
            .iter()
            .filter(|a| !a.name().starts_with("ecs."))
            .map(|a| (a.name().to_string(), a.value().unwrap_or_default().to_string()))
            .collect()
    }

    /// The EC2 tags of `resource`, as a map.
    pub async fn tags(&self, resource: &str) -> std::collections::BTreeMap<String, String> {
        let filter = aws_sdk_ec2::types::Filter::builder().name("resource-id").values(resource).build();
        let tags = self.ec2().await.describe_tags().filters(filter).send().await.expect("DescribeTags on moto");
        tags.tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
            .collect()
    }

    /// Stops moto (the "AWS unreachable" case); `start_again` brings it back on the same port.
    pub fn pause(&mut self) {
        system::signal(self.child.id(), "STOP");
    }

    pub fn resume(&mut self) {
        system::signal(self.child.id(), "CONT");
    }

    /// Forgets every resource, between scenarios in one test.
    pub async fn reset(&self) {
        let uri = format!("{}/moto-api/reset", self.endpoint()).parse().expect("a valid URL");
        let response = HttpClient::new().send(Method::POST, uri, &[], Duration::from_secs(10)).await;
        assert!(response.is_ok_and(|r| r.status.is_success()), "resetting moto failed");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a free loopback port")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let pid = self.child.id();
        system::signal(pid, "CONT");
        system::signal(pid, "TERM");
        if !system::wait_gone(pid, Duration::from_secs(10)) {
            system::signal(pid, "KILL");
        }
        let _ = self.child.wait();
    }
}

fn patient() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(120))
        .operation_timeout(Duration::from_secs(240))
        .build()
}
