//! The incident nodewarden exists to prevent, end to end: a container fills Docker's own
//! 1 GiB disk. GC runs first; when it cannot keep up, the instance asks to drain while space
//! is still free (at least 10% at 50 MB/s, 5% at 200 MB/s: the drain costs no waiting, in a
//! cluster of any size); the root filesystem does not move; /status says why; once the writer
//! is gone the instance returns to ACTIVE after the hold time. With `[offender] action =
//! "stop-task"`, the writer's task is stopped before the disk is full, and the drain still
//! comes in time.

use std::time::{Duration, Instant};

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use nodewarden::disk;

use crate::harness::daemon::Nodewarden;
use crate::harness::docker::TestDocker;
use crate::harness::imds::ImdsServer;
use crate::harness::loopdisk::LoopDisk;
use crate::harness::moto::Moto;
use crate::harness::system::Tmpfs;
use crate::harness::{images, slots};

const MIB: u64 = 1 << 20;
const CLUSTER: &str = "web";

fn used(path: &std::path::Path) -> disk::DiskSample {
    disk::probe(path).unwrap()
}

/// One node of a cluster of `size` on moto: Docker's own 1 GiB disk prepared by `nodewarden
/// setup` from userdata, dockerd on it, three old images GC may remove, a service container.
/// Dropped in field order, after `Drop` stopped nodewarden: dockerd, then the volume (whose drop
/// unmounts what setup mounted in nodewarden's root), then that root, which can then be removed.
struct Incident {
    docker: TestDocker,
    _volume: LoopDisk,
    nodewarden: Nodewarden,
    moto: Moto,
    _imds: ImdsServer,
    self_id: String,
    own_arn: String,
    data_root: std::path::PathBuf,
    _backing: Tmpfs,
    _root: tempfile::TempDir,
    _alone: Vec<slots::Slot>,
}

impl Drop for Incident {
    fn drop(&mut self) {
        self.nodewarden.stop();
    }
}

impl Incident {
    async fn start(size: i32, extra: &str) -> Incident {
        // Alone: other tests' loop files live on the root filesystem this test watches.
        let alone = slots::acquire_all_but_one("docker");
        let root = tempfile::Builder::new().prefix("nwe2e-").tempdir().unwrap();
        // The Docker "volume" is backed by memory, as an EBS volume is by something other than root.
        let backing = Tmpfs::mount(&root.path().join("backing"), 1100);
        let volume = LoopDisk::create(&backing.path, "docker-volume", 1024);
        let moto = Moto::start().await;
        let mut cluster = moto.register_cluster(CLUSTER, size).await;
        let (self_id, own_arn) = cluster.remove(0);
        let imds = ImdsServer::start().await;
        imds.state().instance_id = self_id.clone();
        imds.set_user_data(format!(
            "[ecs]\ncluster = \"{CLUSTER}\"\n[docker]\ndata-device = \"{}\"\n\
             [disk]\nrecover-below = \"60%\"\nrecover-after = \"5s\"\n[gc]\nmin-image-age = \"0s\"\n\
             [drain]\nmax-draining-fraction = \"20%\"\n{extra}",
            volume.device.display()
        ));
        let mut env = moto.env_vars();
        env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.endpoint()));
        env.push(("NODEWARDEN_AGENT_INTROSPECTION".into(), "http://127.0.0.1:9".into()));
        let mut nodewarden = Nodewarden::new("", env);
        volume.link_into(nodewarden.root.path());

        // Setup prepares Docker's own disk from userdata, then dockerd starts on what it wrote.
        let setup = nodewarden.command(&["setup"]).output().unwrap();
        assert!(
            setup.status.success(),
            "{}{}",
            String::from_utf8_lossy(&setup.stdout),
            String::from_utf8_lossy(&setup.stderr)
        );
        let data_root = nodewarden.root.path().join("var/lib/docker");
        let docker = TestDocker::start_on(&nodewarden.root.path().join("etc/docker/daemon.json"), &data_root).await;
        let client = docker.client.clone();
        for name in ["old/r1", "old/r2", "old/r3"] {
            images::make_image(&client, &format!("{name}:1"), 30 * MIB).await;
        }
        images::make_image(&client, "run/u1:1", 30 * MIB).await;
        images::start_sleeper(&client, "run/u1:1", "service").await;
        nodewarden.set_env("DOCKER_HOST", &docker.host());
        nodewarden.start();
        nodewarden.wait_ready(Duration::from_secs(30)).await;
        nodewarden.wait_log(&["found this container instance"], Duration::from_secs(30)).await;
        Incident {
            nodewarden,
            docker,
            moto,
            _imds: imds,
            self_id,
            own_arn,
            data_root,
            _volume: volume,
            _backing: backing,
            _root: root,
            _alone: alone,
        }
    }

    /// Starts a container appending `mb_per_tenth` MiB every 0.1 s to its writable layer (no
    /// Docker event says so), labelled as the ECS agent labels a task's container.
    async fn runaway(&self, mb_per_tenth: u32, task_arn: Option<&str>) -> String {
        let script =
            format!("while true; do dd if=/dev/zero bs=1M count={mb_per_tenth} 2>/dev/null >> /fill; sleep 0.1; done");
        let client = &self.docker.client;
        let id = match task_arn {
            None => images::create_container(client, images::BASE_IMAGE, Some("runaway"), &["sh", "-c", &script]).await,
            Some(arn) => {
                let labels = [
                    ("com.amazonaws.ecs.task-arn", arn),
                    ("com.amazonaws.ecs.task-definition-family", "runaway"),
                    ("com.amazonaws.ecs.container-name", "runaway"),
                    ("com.amazonaws.ecs.cluster", CLUSTER),
                ];
                images::create_labelled_container(
                    client,
                    images::BASE_IMAGE,
                    Some("ecs-runaway-1"),
                    &["sh", "-c", &script],
                    &labels,
                )
                .await
            }
        };
        client.start_container(&id, None).await.unwrap();
        id
    }

    /// Free space (a fraction) when ECS shows this instance DRAINING, polled every 20 ms.
    async fn free_when_draining(&mut self, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            if self.moto.status(CLUSTER, &self.own_arn).await == "DRAINING" {
                return 1.0 - used(&self.data_root).used_fraction();
            }
            self.nodewarden.assert_running();
            assert!(Instant::now() < deadline, "no drain; log:\n{}", self.nodewarden.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_container_is_reclaimed_then_drained_before_the_disk_is_full_and_recovers() {
    let mut incident = Incident::start(5, "").await;
    // The runaway: about 50 MB/s into its own writable layer.
    let root_before = used(std::path::Path::new("/")).used_bytes();
    let docker_before = used(&incident.data_root).used_bytes();
    let writer = incident.runaway(5, None).await;
    let started = Instant::now();
    let free_at_drain = incident.free_when_draining(Duration::from_secs(60)).await;
    let log = incident.nodewarden.log();
    eprintln!(
        "50 MB/s: DRAINING {:.1?} after the writer started, {:.1}% free",
        started.elapsed(),
        free_at_drain * 100.0
    );
    assert!(free_at_drain >= 0.10, "DRAINING with only {:.1}% free; log:\n{log}", free_at_drain * 100.0);
    let gc_at = log.find("past gc-start; garbage-collecting").expect("GC ran");
    let drain_at = log.find("set this container instance to DRAINING").expect("drained");
    assert!(gc_at < drain_at, "GC must run first:\n{log}");
    assert!(log.contains("gc step action=remove image old/"), "GC removed images:\n{log}");

    // Conditions are evaluated every check interval: give /status a few ticks to catch up.
    let condition_of = |doc: &serde_json::Value, kind: &str| {
        doc["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap().clone()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let doc = loop {
        let doc: serde_json::Value =
            serde_json::from_str(&incident.nodewarden.get("/status").await.unwrap().1).unwrap();
        if condition_of(&doc, "Draining")["status"] == "True" || Instant::now() > deadline {
            break doc;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let condition = |kind: &str| condition_of(&doc, kind);
    assert_eq!(condition("DiskPressure")["status"], "True", "{doc:#}");
    assert!(condition("DiskPressure")["message"].as_str().unwrap().contains("filling"), "{doc:#}");
    assert_eq!(condition("Draining")["status"], "True", "{doc:#}");
    assert_eq!(condition("Draining")["reason"], "DrainedForDiskPressure");
    // The tag follows the drain (after the claim's mark): ECS says DRAINING first.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reason = loop {
        match incident.moto.tags(&incident.self_id).await.get("nodewarden:drain-reason") {
            Some(reason) => break reason.clone(),
            None => {
                assert!(Instant::now() < deadline, "DRAINING, but never tagged; log:\n{}", incident.nodewarden.log());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(reason.starts_with("disk-pressure: "), "drain reason tag: {reason}");

    // All of that went to Docker's own disk; the root filesystem hardly moved.
    let written = used(&incident.data_root).used_bytes().saturating_sub(docker_before);
    let root_moved = used(std::path::Path::new("/")).used_bytes().abs_diff(root_before);
    assert!(written > 200 * MIB, "the writer wrote only {written} bytes");
    assert!(
        root_moved < 100 * MIB,
        "the root filesystem moved by {root_moved} bytes while Docker's disk took {written}"
    );

    // The writer is removed (as ECS stops a drained task): space is back, ACTIVE after the hold.
    // The hold is timed from before the removal: the space comes back while Docker is still
    // removing, and a slow removal must not count against the hold.
    let freed = Instant::now();
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    incident.docker.client.remove_container(&writer, Some(remove)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while incident.moto.status(CLUSTER, &incident.own_arn).await != "ACTIVE" {
        incident.nodewarden.assert_running();
        assert!(Instant::now() < deadline, "never ACTIVE again; log:\n{}", incident.nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(freed.elapsed() >= Duration::from_secs(4), "ACTIVE after {:?}, before the 5 s hold", freed.elapsed());
}

/// 200 MB/s in a cluster of a thousand: a 1 GiB disk goes from gc-start to full in under a
/// second. The drain is asked for with at least 5% free, the cluster's size costing nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_200_mb_a_second_runaway_drains_with_space_left_in_a_thousand_node_cluster() {
    let mut incident = Incident::start(1000, "").await;
    incident.runaway(20, None).await;
    let started = Instant::now();
    let free_at_drain = incident.free_when_draining(Duration::from_secs(60)).await;
    eprintln!(
        "200 MB/s: DRAINING {:.1?} after the writer started, {:.1}% free",
        started.elapsed(),
        free_at_drain * 100.0
    );
    assert!(
        free_at_drain >= 0.05,
        "DRAINING with only {:.1}% free; log:\n{}",
        free_at_drain * 100.0,
        incident.nodewarden.log()
    );
}

/// With `[offender] action = "stop-task"`, the same 200 MB/s writer, an ECS task placed on this
/// instance, is stopped before the disk is full, and the drain still comes with space left.
#[tokio::test(flavor = "multi_thread")]
async fn with_stop_task_a_200_mb_a_second_runaway_is_stopped_before_the_disk_is_full() {
    let mut incident = Incident::start(5, "[offender]\naction = \"stop-task\"\n").await;
    let ecs = incident.moto.ecs().await;
    let definition =
        aws_sdk_ecs::types::ContainerDefinition::builder().name("runaway").image("app:1").memory(64).build();
    ecs.register_task_definition().family("runaway").container_definitions(definition).send().await.unwrap();
    let started = ecs.start_task().cluster(CLUSTER).task_definition("runaway").container_instances(&incident.own_arn);
    let task = started.send().await.unwrap().tasks()[0].task_arn().unwrap().to_string();
    let writer = incident.runaway(20, Some(&task)).await;
    let began = Instant::now();
    let (mut free_at_stop, mut free_at_drain, mut least_free) = (None, None, 1.0f64);
    // Until the stop, and ten seconds more: the disk never fills; a drain, if one comes, comes
    // with space left.
    while free_at_stop.is_none() || began.elapsed() < Duration::from_secs(10) {
        let free = 1.0 - used(&incident.data_root).used_fraction();
        least_free = least_free.min(free);
        if free_at_stop.is_none() {
            let described = ecs.describe_tasks().cluster(CLUSTER).tasks(&task).send().await.unwrap();
            if described.tasks().first().and_then(|t| t.desired_status()) == Some("STOPPED") {
                free_at_stop = Some(free);
                // As the ECS agent would: the task's container stops.
                let _ = incident.docker.client.kill_container(&writer, None).await;
            }
        }
        if free_at_drain.is_none() && incident.moto.status(CLUSTER, &incident.own_arn).await == "DRAINING" {
            free_at_drain = Some(free);
        }
        incident.nodewarden.assert_running();
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "stopped at {free_at_stop:?}, drained at {free_at_drain:?}; log:\n{}",
            incident.nodewarden.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop = free_at_stop.unwrap();
    eprintln!(
        "200 MB/s with stop-task: stopped with {:.1}% free; DRAINING {}; at least {:.1}% free throughout",
        stop * 100.0,
        free_at_drain.map_or("not needed".to_string(), |f| format!("with {:.1}% free", f * 100.0)),
        least_free * 100.0
    );
    assert!(stop > 0.0 && least_free > 0.0, "the disk filled; log:\n{}", incident.nodewarden.log());
    if let Some(drain) = free_at_drain {
        assert!(drain >= 0.05, "DRAINING with only {:.1}% free; log:\n{}", drain * 100.0, incident.nodewarden.log());
    }
    let reason = ecs.describe_tasks().cluster(CLUSTER).tasks(&task).send().await.unwrap().tasks()[0]
        .stopped_reason()
        .unwrap_or_default()
        .to_string();
    assert!(reason.starts_with("nodewarden: container runaway wrote "), "{reason}");
}

/// Any container can carry a task-ARN label: a writer labelled with a task that ECS placed on
/// another instance is never stopped (moto shows that task RUNNING), and this node drains in
/// time instead.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_task_label_is_never_stopped_and_the_node_drains_instead() {
    let mut incident = Incident::start(5, "[offender]\naction = \"stop-task\"\n").await;
    let ecs = incident.moto.ecs().await;
    let definition =
        aws_sdk_ecs::types::ContainerDefinition::builder().name("victim").image("app:1").memory(64).build();
    ecs.register_task_definition().family("victim").container_definitions(definition).send().await.unwrap();
    let listed = ecs.list_container_instances().cluster(CLUSTER).send().await.unwrap();
    let other = listed.container_instance_arns().iter().find(|arn| **arn != incident.own_arn).unwrap().clone();
    let started = ecs.start_task().cluster(CLUSTER).task_definition("victim").container_instances(&other);
    let victim = started.send().await.unwrap().tasks()[0].task_arn().unwrap().to_string();
    // 10 MB/s: time for the offender's verdict before the disk is full.
    incident.runaway(1, Some(&victim)).await;
    let free_at_drain = incident.free_when_draining(Duration::from_secs(90)).await;
    assert!(free_at_drain >= 0.05, "DRAINING with only {:.1}% free", free_at_drain * 100.0);
    incident.nodewarden.wait_log(&["is not one ECS lists on this container instance"], Duration::from_secs(30)).await;
    let described = ecs.describe_tasks().cluster(CLUSTER).tasks(&victim).send().await.unwrap();
    assert_eq!(described.tasks()[0].desired_status(), Some("RUNNING"), "the other instance's task was stopped");
}
