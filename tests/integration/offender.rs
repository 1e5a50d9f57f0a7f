//! Offender attribution on a real dockerd: three ECS-labelled containers write at different
//! rates; once the disk is past gc-start, the fastest is named, with its task ARN and family
//! from the labels, in /status, /metrics, `nodewarden status` and the drain tag.

use std::time::{Duration, Instant};

use nodewarden::disk;
use nodewarden::node::status::StatusDocument;

use crate::harness::daemon::{Nodewarden, fill};
use crate::harness::docker::TestDocker;
use crate::harness::images;
use crate::harness::imds::ImdsServer;
use crate::harness::moto::Moto;

const CLUSTER: &str = "web";

fn task_arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/{id}")
}

/// A container as the ECS agent would label it, appending 1 MiB every `pause` seconds.
async fn writer(docker: &TestDocker, name: &str, pause: &str) -> String {
    let script = format!("while true; do dd if=/dev/zero bs=1M count=1 2>/dev/null >> /fill; sleep {pause}; done");
    let arn = task_arn(&format!("{name}0123456789"));
    let labels = [
        ("com.amazonaws.ecs.task-arn", arn.as_str()),
        ("com.amazonaws.ecs.task-definition-family", "writers"),
        ("com.amazonaws.ecs.container-name", name),
        ("com.amazonaws.ecs.cluster", CLUSTER),
    ];
    let id = images::create_labelled_container(
        &docker.client,
        images::BASE_IMAGE,
        Some(&format!("ecs-writers-{name}")),
        &["sh", "-c", &script],
        &labels,
    )
    .await;
    docker.client.start_container(&id, None).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fastest_of_three_writers_is_named_with_its_task_everywhere() {
    let docker = TestDocker::start().await;
    let moto = Moto::start().await;
    let imds = ImdsServer::start().await;
    let mut members = moto.register_cluster(CLUSTER, 5).await;
    let (self_id, own_arn) = members.remove(0);
    imds.state().instance_id = self_id.clone();
    images::base_image(&docker.client).await;
    let settings = format!(
        "[ecs]\ncluster = \"{CLUSTER}\"\n[docker]\ndata-device = \"none\"\n\
         [disk]\ngc-start = \"50%\"\ngc-stop = \"45%\"\ndrain-at = \"60%\"\nrecover-below = \"40%\"\n\
         drain-if-full-within = \"0s\"\n[drain]\nmax-draining-fraction = \"100%\"\n"
    );
    let env = moto.node_env(docker.host(), imds.endpoint(), "offender");
    let mut nodewarden = Nodewarden::new(&settings, env);
    nodewarden.start();

    // 4, 1 and 0.25 MiB/s, from just below gc-start.
    let sample = disk::probe(&docker.data_root).unwrap();
    let below = (sample.total_bytes as f64 * 0.47) as u64;
    fill(&docker.data_root.join("filler"), below.saturating_sub(sample.used_bytes()));
    let mut writers = Vec::new();
    for (name, pause) in [("fast", "0.25"), ("medium", "1"), ("slow", "4")] {
        writers.push(writer(&docker, name, pause).await);
    }

    let started = Instant::now();
    loop {
        if moto.status(CLUSTER, &own_arn).await == "DRAINING" {
            break;
        }
        nodewarden.assert_running();
        assert!(started.elapsed() < Duration::from_secs(90), "no drain; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The tags follow once ECS's answer is back with nodewarden.
    let noted = Instant::now();
    while !moto.tags(&self_id).await.contains_key("nodewarden:drain-reason") {
        assert!(noted.elapsed() < Duration::from_secs(10), "DRAINING, never tagged; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, body) = nodewarden.get("/status").await.expect("/status answers");
    let status: StatusDocument = serde_json::from_str(&body).unwrap();
    let (_, metrics) = nodewarden.get("/metrics").await.expect("/metrics answers");
    let summary = nodewarden.command(&["status"]).output().unwrap();
    for id in &writers {
        let remove = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
        docker.client.remove_container(id, Some(remove)).await.unwrap();
    }

    let top =
        status.offender.top.as_ref().unwrap_or_else(|| panic!("no offender in /status: {body}\n{}", nodewarden.log()));
    assert_eq!(top.footprint.name, "fast", "{body}\n{}", nodewarden.log());
    assert_eq!(top.footprint.task_arn.as_deref(), Some(task_arn("fast0123456789").as_str()));
    assert_eq!(top.footprint.task_family.as_deref(), Some("writers"));
    assert!(top.rate_bytes_per_second > 2.0 * 1048576.0, "{top:?}");
    assert!(top.footprint.writable_bytes > 1 << 20, "the writable layer is measured: {top:?}");

    let tags = moto.tags(&self_id).await;
    let reason = tags.get("nodewarden:drain-reason").cloned().unwrap_or_default();
    assert!(reason.contains("top writer: container fast (task family writers"), "{reason}\n{}", nodewarden.log());
    assert!(
        metrics.lines().any(|l| l.starts_with("nodewarden_offender_write_rate_bytes_per_second{")
            && l.contains("container=\"fast\"")
            && l.contains("task_family=\"writers\"")),
        "{metrics}"
    );
    // What measuring cost, for an operator to see that it stays small: the three writers,
    // walked here (this kernel has no XFS quota; the boot test's VM reads quotas).
    let cost = status.offender.last_sample.unwrap_or_else(|| panic!("no sample cost in /status: {body}"));
    assert!(cost.containers >= 3 && cost.entries_walked >= 3 && cost.layers_from_quota == 0, "{cost:?}");
    assert!(cost.wall_seconds > 0.0 && cost.wall_seconds < 10.0, "{cost:?}");
    assert!(metrics.lines().any(|l| l.starts_with("nodewarden_footprint_sample_seconds ")), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("nodewarden_footprint_sample_cpu_seconds ")), "{metrics}");
    let summary = String::from_utf8_lossy(&summary.stdout);
    assert!(summary.contains("Offender     container fast (task family writers"), "{summary}");
    assert!(summary.contains("writable layers from project quotas"), "{summary}");
    assert!(nodewarden.log().contains("top writer: container fast"), "the journal names it");
}
