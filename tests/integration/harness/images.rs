//! Images made locally, since no registry is reachable: a base imported from Debian's
//! busybox-static, and images of chosen sizes committed from containers on that base.

use std::path::Path;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::system::require_tool;

pub const BASE_IMAGE: &str = "nodewarden-test/busybox:base";

/// A tar of a minimal root: /bin/busybox plus a link per applet, and the usual directories.
pub fn busybox_rootfs_tar() -> Vec<u8> {
    let busybox =
        ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).is_file()).unwrap_or_else(|| {
            panic!("busybox not found: install Debian's busybox-static (scripts/install-test-deps does)")
        });
    let listing = super::system::run(std::process::Command::new(busybox).arg("--list"));
    let mut builder = tar::Builder::new(Vec::new());
    for dir in ["bin", "tmp", "etc", "proc", "sys", "dev", "www", "var"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        header.set_size(0);
        builder.append_data(&mut header, dir, std::io::empty()).expect("tar to memory");
    }
    builder.append_path_with_name(busybox, "bin/busybox").expect("adding busybox to the tar");
    for applet in listing.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        builder.append_link(&mut header, format!("bin/{applet}"), "busybox").expect("tar to memory");
    }
    builder.into_inner().expect("tar to memory")
}

/// Imports the busybox base image once per daemon; returns its reference.
pub async fn base_image(docker: &Docker) -> &'static str {
    if docker.inspect_image(BASE_IMAGE).await.is_ok() {
        return BASE_IMAGE;
    }
    let (repo, tag) = BASE_IMAGE.rsplit_once(':').expect("the base reference has a tag");
    let options = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tag).build();
    let body = bollard::body_full(busybox_rootfs_tar().into());
    let mut stream = docker.create_image(Some(options), Some(body), None);
    while let Some(item) = stream.next().await {
        item.unwrap_or_else(|e| panic!("importing {BASE_IMAGE}: {e}"));
    }
    BASE_IMAGE
}

/// Runs `command` in a throwaway container on `image` (no network) and waits for exit 0.
pub async fn run_to_completion(docker: &Docker, image: &str, command: &[&str]) -> String {
    let id = create_container(docker, image, None, command).await;
    docker.start_container(&id, None).await.unwrap_or_else(|e| panic!("starting a container on {image}: {e}"));
    let mut wait = docker.wait_container(&id, None);
    while let Some(result) = wait.next().await {
        match result {
            Ok(response) => assert_eq!(response.status_code, 0, "{command:?} on {image} failed"),
            Err(e) => panic!("{command:?} on {image} failed: {e}"),
        }
    }
    id
}

pub async fn create_container(docker: &Docker, image: &str, name: Option<&str>, command: &[&str]) -> String {
    create_labelled_container(docker, image, name, command, &[]).await
}

/// As `create_container`, with labels (an ECS task's `com.amazonaws.ecs.*`, for instance).
pub async fn create_labelled_container(
    docker: &Docker,
    image: &str,
    name: Option<&str>,
    command: &[&str],
    labels: &[(&str, &str)],
) -> String {
    let mut options = CreateContainerOptionsBuilder::default();
    if let Some(name) = name {
        options = options.name(name);
    }
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(command.iter().map(|s| s.to_string()).collect()),
        labels: (!labels.is_empty()).then(|| labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        host_config: Some(HostConfig { network_mode: Some("none".into()), ..Default::default() }),
        ..Default::default()
    };
    docker
        .create_container(Some(options.build()), body)
        .await
        .unwrap_or_else(|e| panic!("creating a container on {image}: {e}"))
        .id
}

/// A container on `image` that keeps running (`sleep`), for "in use" images.
pub async fn start_sleeper(docker: &Docker, image: &str, name: &str) -> String {
    let id = create_container(docker, image, Some(name), &["sleep", "86400"]).await;
    docker.start_container(&id, None).await.unwrap_or_else(|e| panic!("starting {name}: {e}"));
    id
}

/// Makes `reference` (repo:tag) holding `size_bytes` of random data over the base image, and
/// returns its image id. Random bytes, so no two images share or compress their content.
pub async fn make_image(docker: &Docker, reference: &str, size_bytes: u64) -> String {
    require_tool("busybox", "busybox-static");
    let base = base_image(docker).await;
    let script = format!("head -c {size_bytes} /dev/urandom > /blob && echo {reference} > /id");
    let container = run_to_completion(docker, base, &["sh", "-c", &script]).await;
    let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    let options = CommitContainerOptionsBuilder::default().container(&container).repo(repo).tag(tag).build();
    let committed = docker
        .commit_container(options, bollard::config::ContainerConfig::default())
        .await
        .unwrap_or_else(|e| panic!("committing {reference}: {e}"));
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    docker
        .remove_container(&container, Some(remove))
        .await
        .unwrap_or_else(|e| panic!("removing the builder of {reference}: {e}"));
    committed.id
}

/// The stand-in ECS agent (the real image cannot be pulled here): busybox `httpd` serving
/// `/v1/metadata` on 127.0.0.1:`port` (host network), built from a tarball through the API.
/// Control files in its `/etc/ecs` (bind-mounted from the host): `standin-exit` holding a
/// code makes it exit with that code; `standin-unhealthy` stops its HTTP server;
/// `standin-arn` is the container instance ARN it reports (as the real agent does once it has
/// registered), else a made-up one.
pub async fn make_standin_agent(docker: &Docker, reference: &str, port: u16) {
    let script = format!(
        r#"#!/bin/sh
mkdir -p /www/v1
ARN=$(cat /etc/ecs/standin-arn 2>/dev/null || echo "arn:aws:ecs:us-east-1:123456789012:container-instance/$ECS_CLUSTER/standin")
printf '{{"Cluster":"%s","ContainerInstanceArn":"%s","Version":"Amazon ECS Agent - v1.105.1 (stand-in)"}}' "$ECS_CLUSTER" "$ARN" > /www/v1/metadata
httpd -f -p 127.0.0.1:{port} -h /www &
HTTPD=$!
while true; do
  if [ -f /etc/ecs/standin-exit ]; then code=$(cat /etc/ecs/standin-exit); rm -f /etc/ecs/standin-exit; kill $HTTPD; exit $code; fi
  if [ -f /etc/ecs/standin-unhealthy ]; then rm -f /etc/ecs/standin-unhealthy; kill $HTTPD; fi
  sleep 0.1
done
"#
    );
    let mut tar = tar::Builder::new(Vec::new());
    let base = busybox_rootfs_tar();
    let mut archive = tar::Archive::new(&base[..]);
    for entry in archive.entries().expect("reading the base tar") {
        let mut entry = entry.expect("a base tar entry");
        let mut header = entry.header().clone();
        let path = entry.path().expect("a path").into_owned();
        if header.entry_type() == tar::EntryType::Symlink {
            let target = entry.link_name().expect("a link").expect("a target").into_owned();
            tar.append_link(&mut header, &path, &target).expect("tar to memory");
        } else {
            tar.append_data(&mut header, &path, &mut entry).expect("tar to memory");
        }
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    tar.append_data(&mut header, "standin.sh", script.as_bytes()).expect("tar to memory");
    let (repo, tag) = reference.rsplit_once(':').expect("a tagged reference");
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec![r#"CMD ["/bin/sh", "/standin.sh"]"#.to_string()])
        .build();
    let body = bollard::body_full(tar.into_inner().expect("tar to memory").into());
    let mut stream = docker.create_image(Some(options), Some(body), None);
    while let Some(item) = stream.next().await {
        item.unwrap_or_else(|e| panic!("importing the stand-in agent {reference}: {e}"));
    }
}

/// A tiny single-layer image with unique content, imported through the API (fast: no
/// container runs), for benchmarks that need hundreds of images.
pub async fn import_tiny(docker: &Docker, reference: &str) -> String {
    let mut tar = tar::Builder::new(Vec::new());
    let content = format!("{reference}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "id", content.as_bytes()).expect("tar to memory");
    let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
    let options = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tag).build();
    let body = bollard::body_full(tar.into_inner().expect("tar to memory").into());
    let mut stream = docker.create_image(Some(options), Some(body), None);
    while let Some(item) = stream.next().await {
        item.unwrap_or_else(|e| panic!("importing {reference}: {e}"));
    }
    docker.inspect_image(reference).await.ok().and_then(|i| i.id).unwrap_or_default()
}
