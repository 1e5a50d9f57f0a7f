//! Each harness piece exercised on the real thing: dockerd really runs on a loop-mounted xfs
//! and cleans up after itself, the image factory makes real images, moto answers the real
//! aws-sdk clients, and the IMDS test server really goes through the IMDSv2 token flow.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hyper::{Method, StatusCode};
use nodewarden::http::HttpClient;
use nodewarden::imds::{ImdsClient, ImdsConfig, ImdsError};

use crate::harness::docker::TestDocker;
use crate::harness::imds::{Faults, ImdsServer};
use crate::harness::moto::Moto;
use crate::harness::{images, system};

#[tokio::test(flavor = "multi_thread")]
async fn dockerd_runs_on_a_loop_mounted_xfs_and_cleans_up() {
    let docker = TestDocker::start().await;
    let info = docker.client.info().await.expect("docker info");
    let root_dir = info.docker_root_dir.clone().expect("DockerRootDir");
    assert_eq!(Path::new(&root_dir), docker.data_root.as_path());
    let (mount_point, fstype, source, _) = system::mount_of(Path::new(&root_dir)).expect("a mount holds the root dir");
    assert_eq!(mount_point, docker.data_root, "the data-root is its own mount");
    assert_eq!(fstype, "xfs");
    assert!(source.starts_with("/dev/loop"), "backed by {source}");
    assert_eq!(info.driver.as_deref(), Some("overlay2"));
    let version = docker.client.version().await.expect("docker version");
    assert!(version.api_version.is_some(), "API version negotiated");

    let pid = docker.pid().expect("dockerd is running");
    let data_root = docker.data_root.clone();
    drop(docker);
    assert!(!system::alive(pid), "dockerd {pid} still runs after drop");
    assert!(system::mounts_under(&data_root).is_empty(), "the data-root is still mounted");
    let loops =
        system::run(Command::new("losetup").arg("--list").arg("--noheadings").arg("--output").arg("NAME,BACK-FILE"));
    assert!(!loops.contains(&source), "{source} is still attached:\n{loops}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_factory_makes_distinct_images_of_chosen_sizes() {
    let docker = TestDocker::start().await;
    let base = images::base_image(&docker.client).await;
    let base_size = docker.client.inspect_image(base).await.expect("inspecting the base").size.expect("a size");
    let mut ids = Vec::new();
    for (tag, mib) in [("test/a:1", 4u64), ("test/b:1", 8), ("test/c:1", 16)] {
        let id = images::make_image(&docker.client, tag, mib << 20).await;
        let size = docker.client.inspect_image(tag).await.expect("inspecting a made image").size.expect("a size");
        let own = (size - base_size) as u64;
        assert!(
            own >= mib << 20 && own < (mib << 20) + (1 << 20),
            "{tag}: {own} bytes over the base, wanted {mib} MiB"
        );
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each image is distinct");
    let sleeper = images::start_sleeper(&docker.client, "test/a:1", "sleeper").await;
    let inspect = docker.client.inspect_container(&sleeper, None).await.expect("inspecting the sleeper");
    assert_eq!(inspect.state.and_then(|s| s.running), Some(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_answers_the_real_aws_sdk_clients() {
    let moto = Moto::start().await;
    let ecs = moto.ecs().await;
    ecs.create_cluster().cluster_name("harness").send().await.expect("CreateCluster on moto");
    let clusters = ecs.list_clusters().send().await.expect("ListClusters on moto");
    assert!(clusters.cluster_arns().iter().any(|arn| arn.ends_with("cluster/harness")), "{clusters:?}");
    let ec2 = moto.ec2().await;
    let regions = ec2.describe_regions().send().await.expect("DescribeRegions on moto");
    assert!(regions.regions().iter().any(|r| r.region_name() == Some("us-east-1")));
    moto.reset().await;
    let clusters = ecs.list_clusters().send().await.expect("ListClusters after reset");
    assert!(clusters.cluster_arns().is_empty(), "reset forgets everything");
}

fn quick_config() -> ImdsConfig {
    ImdsConfig {
        request_timeout: Duration::from_millis(500),
        deadline: Duration::from_secs(10),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ImdsConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_imds_server_speaks_imdsv2() {
    let imds = ImdsServer::start().await;
    let http = HttpClient::new();
    let url = |path: &str| format!("{}{path}", imds.endpoint()).parse().expect("a valid URL");
    let timeout = Duration::from_secs(2);

    // No token: 401. A token request without a TTL, or with one past 6 hours: 400.
    let response = http.get(url("/latest/meta-data/instance-id"), &[], timeout).await.expect("IMDS answers");
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let response = http.send(Method::PUT, url("/latest/api/token"), &[], timeout).await.expect("IMDS answers");
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let ttl_too_long = [("x-aws-ec2-metadata-token-ttl-seconds", "21601")];
    let response = http.send(Method::PUT, url("/latest/api/token"), &ttl_too_long, timeout).await.expect("answers");
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    // With a token: answers; with a made-up one: 401.
    let ttl = [("x-aws-ec2-metadata-token-ttl-seconds", "60")];
    let token = http.send(Method::PUT, url("/latest/api/token"), &ttl, timeout).await.expect("a token");
    assert_eq!(token.status, StatusCode::OK);
    let token = String::from_utf8(token.body.to_vec()).expect("an ASCII token");
    let with_token = [("x-aws-ec2-metadata-token", token.as_str())];
    let response = http.get(url("/latest/meta-data/instance-id"), &with_token, timeout).await.expect("answers");
    assert_eq!((response.status, &response.body[..]), (StatusCode::OK, &b"i-0123456789abcdef0"[..]));
    let forged = [("x-aws-ec2-metadata-token", "forged")];
    let response = http.get(url("/latest/meta-data/instance-id"), &forged, timeout).await.expect("answers");
    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
    let response =
        http.get(url("/latest/meta-data/spot/instance-action"), &with_token, timeout).await.expect("answers");
    assert_eq!(response.status, StatusCode::NOT_FOUND, "no spot notice until one is set");

    // What cloud-init walks: dated versions, listings with subdirectories marked by a slash.
    let get = |path: &'static str| http.get(url(path), &with_token, timeout);
    let response = get("/2021-03-23/meta-data/instance-id").await.expect("answers");
    assert_eq!((response.status, &response.body[..]), (StatusCode::OK, &b"i-0123456789abcdef0"[..]));
    assert_eq!(get("/1999-01-01/meta-data/instance-id").await.expect("answers").status, StatusCode::NOT_FOUND);
    let listing = get("/latest/meta-data/").await.expect("answers");
    let listing = String::from_utf8_lossy(&listing.body).into_owned();
    let keys: Vec<&str> = listing.lines().collect();
    assert!(keys.contains(&"instance-id") && keys.contains(&"placement/") && keys.contains(&"network/"), "{listing}");
    assert!(!keys.contains(&"spot/") && !keys.contains(&"iam/"), "absent until set: {listing}");
    let macs = get("/latest/meta-data/network/interfaces/macs").await.expect("answers");
    assert_eq!(&macs.body[..], b"06:00:00:00:00:01/");
    let identity = get("/2016-09-02/dynamic/instance-identity/").await.expect("answers");
    assert_eq!(&identity.body[..], b"document");
    imds.state().iam_role = Some("ecs-instance".into());
    let role = get("/latest/meta-data/iam/security-credentials/").await.expect("answers");
    assert_eq!(&role.body[..], b"ecs-instance");
    let credentials = get("/latest/meta-data/iam/security-credentials/ecs-instance").await.expect("answers");
    let credentials: serde_json::Value = serde_json::from_slice(&credentials.body).expect("JSON credentials");
    assert_eq!(credentials["Code"], "Success");
}

#[tokio::test(flavor = "multi_thread")]
async fn nodewardens_imds_client_goes_through_the_token_flow_and_survives_faults() {
    let imds = ImdsServer::start().await;
    let client = ImdsClient::new(imds.endpoint().parse().expect("a valid URL"), quick_config());

    assert_eq!(client.user_data().await.expect("user-data"), None, "404 means no userdata");
    imds.set_user_data(vec![0x1f, 0x8b, 0xff]);
    assert_eq!(
        client.user_data().await.expect("user-data").as_deref(),
        Some(&[0x1f, 0x8b, 0xff][..]),
        "bytes, not text"
    );
    assert_eq!(client.instance_id().await.expect("instance id"), "i-0123456789abcdef0");
    assert_eq!(client.region().await.expect("region"), "us-east-1");
    let document = client.identity_document().await.expect("identity document");
    assert_eq!((document.account_id.as_str(), document.availability_zone.as_str()), ("123456789012", "us-east-1a"));
    assert_eq!(imds.stats().token_requests, 1, "the token is cached across calls");

    // An expired token is renewed transparently after the 401.
    imds.expire_tokens();
    assert_eq!(client.instance_id().await.expect("instance id after expiry"), "i-0123456789abcdef0");
    assert_eq!(imds.stats().token_requests, 2);
    assert!(imds.stats().unauthorized >= 1);

    // 500s and dropped connections are retried.
    imds.set_faults(Faults { fail_next: 3, ..Faults::default() });
    assert!(client.region().await.is_ok(), "three 500s then success");
    imds.set_faults(Faults { drop_next: 2, ..Faults::default() });
    assert!(client.region().await.is_ok(), "two dropped connections then success");

    // IMDS gone for longer than the deadline: a clear error naming the endpoint and path.
    imds.set_faults(Faults { drop_next: u32::MAX, ..Faults::default() });
    let short = ImdsClient::new(
        imds.endpoint().parse().expect("a valid URL"),
        ImdsConfig { deadline: Duration::from_secs(1), ..quick_config() },
    );
    let error = short.region().await.expect_err("IMDS is down");
    assert!(matches!(error, ImdsError::Deadline { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(&imds.endpoint()) && message.contains("/latest/meta-data/placement/region"), "{message}");
}
