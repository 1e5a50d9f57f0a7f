//! Draining on moto's server and the IMDS test server: disk pressure GC cannot relieve, the
//! cluster budget, ownership (an operator's drain is never undone), spot notices, Auto Scaling
//! termination (lifecycle calls through aws-smithy-mocks), and AWS being away for a while.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_autoscaling::operation::complete_lifecycle_action::CompleteLifecycleActionOutput;
use aws_sdk_autoscaling::operation::describe_auto_scaling_instances::DescribeAutoScalingInstancesOutput;
use aws_sdk_autoscaling::operation::record_lifecycle_action_heartbeat::RecordLifecycleActionHeartbeatOutput;
use aws_sdk_autoscaling::types::AutoScalingInstanceDetails;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use nodewarden::disk;
use nodewarden::drain::termination::{self, LifecycleOutcome, LifecycleSettings};
use nodewarden::drain::{EcsApi, Identity};

use crate::harness::daemon::{Nodewarden, fill};
use crate::harness::docker::TestDocker;
use crate::harness::imds::ImdsServer;
use crate::harness::moto::Moto;
use crate::harness::system;

const CLUSTER: &str = "web";

/// A dockerd, moto with a cluster of five where this instance is the first, and IMDS saying so.
struct World {
    docker: TestDocker,
    moto: Moto,
    imds: ImdsServer,
    self_id: String,
    own_arn: String,
    other_arns: Vec<String>,
}

async fn world() -> World {
    let docker = TestDocker::start().await;
    let moto = Moto::start().await;
    let imds = ImdsServer::start().await;
    let mut members = moto.register_cluster(CLUSTER, 5).await;
    let (self_id, own_arn) = members.remove(0);
    imds.state().instance_id = self_id.clone();
    World { docker, moto, imds, self_id, own_arn, other_arns: members.into_iter().map(|(_, arn)| arn).collect() }
}

impl World {
    /// A nodewarden on this world. `drain-if-full-within = "0s"` switches the fill-rate
    /// trigger off: these tests fill the disk in one burst and test the other reasons.
    fn nodewarden(&self, extra: &str) -> Nodewarden {
        let settings = format!(
            "[ecs]\ncluster = \"{CLUSTER}\"\n[docker]\ndata-device = \"none\"\n\
             [disk]\ncheck-interval = \"1s\"\ngc-start = \"50%\"\ngc-stop = \"45%\"\ndrain-at = \"60%\"\n\
             recover-below = \"40%\"\nrecover-after = \"4s\"\ndrain-if-full-within = \"0s\"\n{extra}"
        );
        // No agent here: identity comes from the ECS API.
        Nodewarden::new(&settings, self.moto.node_env(self.docker.host(), self.imds.endpoint(), "drain"))
    }

    async fn status(&self) -> String {
        self.moto.status(CLUSTER, &self.own_arn).await
    }

    async fn wait_status(&self, want: &str, timeout: Duration, nodewarden: &mut Nodewarden) -> Duration {
        let started = Instant::now();
        loop {
            if self.status().await == want {
                return started.elapsed();
            }
            nodewarden.assert_running();
            assert!(started.elapsed() < timeout, "not {want} after {timeout:?}; log:\n{}", nodewarden.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The drain noted after ECS took it: ECS says DRAINING as soon as it took the call; the
    /// tags and the record's confirmation follow once the call returned to nodewarden.
    async fn wait_noted(&self, nodewarden: &mut Nodewarden) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while drain_record(&nodewarden.state_dir()).get("pending").is_some()
            || !self.moto.tags(&self.self_id).await.contains_key("nodewarden:drain-reason")
        {
            nodewarden.assert_running();
            assert!(Instant::now() < deadline, "DRAINING, but never noted; log:\n{}", nodewarden.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// ACTIVE again, and the undrain finished: ECS is told first, then the tags, the claim and
    /// the record go, so those are waited for too.
    async fn wait_undrained(&self, timeout: Duration, nodewarden: &mut Nodewarden) -> Duration {
        let took = self.wait_status("ACTIVE", timeout, nodewarden).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while drain_record(&nodewarden.state_dir()) != serde_json::Value::Null
            || self.moto.tags(&self.self_id).await.contains_key("nodewarden:drain-reason")
        {
            assert!(Instant::now() < deadline, "ACTIVE, but the record or the tag stayed; log:\n{}", nodewarden.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        took
    }

    fn fill_to(&self, fraction: f64) {
        let sample = disk::probe(&self.docker.data_root).unwrap();
        let wanted = (sample.total_bytes as f64 * fraction) as u64;
        fill(&self.filler(), wanted.saturating_sub(sample.used_bytes()));
    }

    fn filler(&self) -> std::path::PathBuf {
        self.docker.data_root.join("filler")
    }
}

fn drain_record(state_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(state_dir.join("drain.json")).unwrap_or_else(|_| "null".into());
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_pressure_gc_cannot_relieve_drains_tags_and_recovers_after_the_hold() {
    let w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"100%\"\n");
    nodewarden.start();
    w.fill_to(0.70);
    w.wait_status("DRAINING", Duration::from_secs(30), &mut nodewarden).await;
    w.wait_noted(&mut nodewarden).await;

    let tags = w.moto.tags(&w.self_id).await;
    let reason = tags.get("nodewarden:drain-reason").cloned().unwrap_or_default();
    // About 70%: xfs preallocates ahead of a growing file, so the figure can read a few points more.
    let percent: f64 = reason
        .strip_prefix("disk-pressure: disk ")
        .and_then(|rest| rest.split('%').next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("tags: {tags:?}"));
    assert!((69.0..80.0).contains(&percent), "tags: {tags:?}");
    assert!(reason.contains("after garbage collection (drain-at 60%)"), "{reason}");
    assert!(tags.contains_key("nodewarden:drained-at"), "{tags:?}");
    let record = drain_record(&nodewarden.state_dir());
    assert_eq!(record["reason"], "disk-pressure", "{record}");
    assert!(nodewarden.log().contains("disk pressure: GC cannot hold Docker's disk"), "{}", nodewarden.log());
    for other in &w.other_arns {
        assert_eq!(w.moto.status(CLUSTER, other).await, "ACTIVE", "only this instance drains");
    }

    // Space comes back: ACTIVE again only after recover-after (4 s) below recover-below.
    std::fs::remove_file(w.filler()).unwrap();
    let freed = Instant::now();
    w.wait_undrained(Duration::from_secs(30), &mut nodewarden).await;
    assert!(freed.elapsed() >= Duration::from_secs(3), "undrained after {:?}, before the hold time", freed.elapsed());
    assert_eq!(drain_record(&nodewarden.state_dir()), serde_json::Value::Null);
}

/// The drain record is written before ECS is asked; one that cannot be written (here a
/// directory stands in its place) never holds the drain: it drains from memory, /status says
/// why the record is missing, and the record is written once it can be. A crash after ECS took
/// a drain but before it was noted leaves a pending record: after the restart the drain is
/// still nodewarden's, undone when the disk recovers.
#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_drain_record_never_holds_the_drain_and_a_crash_between_keeps_it_ours() {
    let w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"100%\"\n");
    let record_path = nodewarden.state_dir().join("drain.json");
    std::fs::create_dir_all(record_path.join("in-the-way")).unwrap();
    nodewarden.start();
    w.fill_to(0.70);
    w.wait_status("DRAINING", Duration::from_secs(30), &mut nodewarden).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = nodewarden.get("/status").await.map(|(_, body)| body).unwrap_or_default();
        let doc: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
        if doc["drain"]["record_error"].as_str().is_some_and(|e| e.contains("drain.json")) {
            assert_eq!(doc["drain"]["owner"], "disk-pressure", "{doc:#}");
            break;
        }
        assert!(Instant::now() < deadline, "/status never says the record is missing; {doc:#}\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(nodewarden.log().contains("draining from memory"), "{}", nodewarden.log());

    // Writable again: the record is written down (tried every few seconds), nodewarden's and
    // no longer pending.
    std::fs::remove_dir_all(&record_path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while drain_record(&nodewarden.state_dir())["reason"] != "disk-pressure" {
        assert!(Instant::now() < deadline, "never written down; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.wait_noted(&mut nodewarden).await;
    let mut record = drain_record(&nodewarden.state_dir());
    assert_eq!(record["reason"], "disk-pressure", "{record}");

    // A crash after ECS took the drain, before it was noted: the record still says "pending".
    // After the restart it is nodewarden's drain, undone when the disk recovers.
    nodewarden.stop();
    record["pending"] = serde_json::Value::Bool(true);
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    std::fs::remove_file(w.filler()).unwrap();
    nodewarden.start();
    w.wait_undrained(Duration::from_secs(30), &mut nodewarden).await;
}

/// nodewarden's state directory on a filesystem with no byte left (`data-device = "none"`, or
/// the root disk filling): disk pressure still drains, and so does a spot notice.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_state_disk_still_drains_on_pressure_and_on_a_spot_notice() {
    let w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"100%\"\n");
    let state = crate::harness::system::Tmpfs::mount(&nodewarden.state_dir(), 1);
    // Filled to the last byte (what the setup before it wrote there is hidden under it).
    let mut ballast = std::fs::File::create(state.path.join("ballast")).unwrap();
    while std::io::Write::write_all(&mut ballast, &[0u8; 4096]).is_ok() {}
    assert!(std::fs::write(state.path.join("probe"), [0u8; 1]).is_err(), "the state disk is full");
    nodewarden.start();
    w.fill_to(0.70);
    w.wait_status("DRAINING", Duration::from_secs(30), &mut nodewarden).await;
    assert!(nodewarden.log().contains("draining from memory"), "{}", nodewarden.log());
    // Recovered (still nothing written down), then a spot notice: drained again at once.
    std::fs::remove_file(w.filler()).unwrap();
    w.wait_status("ACTIVE", Duration::from_secs(30), &mut nodewarden).await;
    w.imds.state().spot_action = Some(r#"{"action":"terminate","time":"2026-11-27T00:02:00Z"}"#.into());
    let took = w.wait_status("DRAINING", Duration::from_secs(10), &mut nodewarden).await;
    assert!(took < Duration::from_secs(5), "the spot drain took {took:?}");
    drop(nodewarden);
    drop(state);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wedged_docker_holds_the_drain_no_longer_than_the_gc_run_timeout() {
    let w = world().await;
    let mut nodewarden = w.nodewarden("[gc]\nrun-timeout = \"3s\"\n[drain]\nmax-draining-fraction = \"100%\"\n");
    nodewarden.start();
    // Docker's side started (no agent here, so /readyz stays 503).
    nodewarden.wait_log(&["watching Docker's disk", " ready"], Duration::from_secs(30)).await;
    // Docker wedges (a full disk does that): its socket accepts, nothing answers. GC's first
    // call hangs; the drain at drain-at waits for a finished GC run, so the run must end.
    let dockerd = w.docker.pid().expect("dockerd runs");
    system::signal(dockerd, "STOP");
    w.fill_to(0.70);
    let took = w.wait_status("DRAINING", Duration::from_secs(60), &mut nodewarden).await;
    system::signal(dockerd, "CONT");
    let log = nodewarden.log();
    assert!(log.contains("run-timeout"), "the abandoned run is not reported; log:\n{log}");
    eprintln!("drained {took:?} after the disk filled, with Docker wedged");
}

/// ECS placed a task here whose image is pulled but has no container yet (PENDING): GC keeps
/// that image while it removes another unused one.
#[tokio::test(flavor = "multi_thread")]
async fn gc_keeps_the_image_of_a_task_ecs_placed_here_before_its_container_exists() {
    let w = world().await;
    let client = &w.docker.client;
    crate::harness::images::import_tiny(client, "shop/web:42").await;
    crate::harness::images::import_tiny(client, "old/job:1").await;
    let ecs = w.moto.ecs().await;
    let definition =
        aws_sdk_ecs::types::ContainerDefinition::builder().name("web").image("shop/web:42").memory(64).build();
    ecs.register_task_definition().family("web").container_definitions(definition).send().await.unwrap();
    ecs.start_task().cluster(CLUSTER).task_definition("web").container_instances(&w.own_arn).send().await.unwrap();
    let mut nodewarden = w.nodewarden("[gc]\nmin-image-age = \"0s\"\n[drain]\nmax-draining-fraction = \"100%\"\n");
    nodewarden.start();
    // Identity first (GC asks ECS about this instance), then past gc-start (50%), under drain-at.
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodewarden.status().await["drain"]["identity"].is_null() {
        nodewarden.assert_running();
        assert!(Instant::now() < deadline, "no identity; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.fill_to(0.55);
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.inspect_image("old/job:1").await.is_ok() {
        nodewarden.assert_running();
        assert!(Instant::now() < deadline, "GC never removed old/job:1; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        client.inspect_image("shop/web:42").await.is_ok(),
        "the task's image was removed; log:\n{}",
        nodewarden.log()
    );
    // The run reports what it kept once it ends (it cannot reach gc-stop: the filler stays).
    let deadline = Instant::now() + Duration::from_secs(30);
    let kept = loop {
        let kept = nodewarden.status().await["gc"]["last"]["kept"].clone();
        if !kept.is_null() {
            break kept.to_string();
        }
        assert!(Instant::now() < deadline, "no GC report; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(kept.contains("wanted by a task ECS placed here (shop/web:42)"), "{kept}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operators_drain_is_never_undone() {
    let w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"100%\"\n");
    let output = nodewarden.command(&["drain"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(w.status().await, "DRAINING");
    assert_eq!(drain_record(&nodewarden.state_dir())["reason"], "operator");

    // The daemon sees pressure come and go; the operator's drain stays.
    nodewarden.start();
    w.fill_to(0.70);
    tokio::time::sleep(Duration::from_secs(4)).await;
    std::fs::remove_file(w.filler()).unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    nodewarden.assert_running();
    assert_eq!(w.status().await, "DRAINING", "an operator's drain was undone; log:\n{}", nodewarden.log());
    assert_eq!(drain_record(&nodewarden.state_dir())["reason"], "operator");

    let output = nodewarden.command(&["undrain"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(w.status().await, "ACTIVE");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_budget_withholds_a_drain_and_allows_it_when_larger() {
    let w = world().await;
    let ecs = w.moto.ecs().await;
    ecs.update_container_instances_state()
        .cluster(CLUSTER)
        .container_instances(&w.other_arns[0])
        .status(aws_sdk_ecs::types::ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();

    let mut tight = w.nodewarden("[drain]\nmax-draining-fraction = \"20%\"\n");
    tight.start();
    w.fill_to(0.70);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tight.log().contains("max-draining-fraction allows 1") {
        tight.assert_running();
        assert!(Instant::now() < deadline, "no withheld report; log:\n{}", tight.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(w.status().await, "ACTIVE", "the budget was exceeded; log:\n{}", tight.log());
    tight.stop();

    let mut loose = w.nodewarden("[drain]\nmax-draining-fraction = \"40%\"\n");
    loose.start();
    w.wait_status("DRAINING", Duration::from_secs(30), &mut loose).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spot_notice_drains_within_three_seconds() {
    let w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"0%\"\n");
    nodewarden.start();
    // Let the daemon settle (identity, first checks) before the notice arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.imds.state().spot_action = Some(r#"{"action":"terminate","time":"2026-11-27T00:02:00Z"}"#.into());
    let took = w.wait_status("DRAINING", Duration::from_secs(10), &mut nodewarden).await;
    assert!(took <= Duration::from_secs(3), "DRAINING {took:?} after the notice; log:\n{}", nodewarden.log());
    assert_eq!(drain_record(&nodewarden.state_dir())["reason"], "spot-interruption", "the budget (0%) does not apply");
}

/// Docker dies under a running daemon (a full disk does that): the daemon stays up, says so,
/// and a spot notice still drains.
#[tokio::test(flavor = "multi_thread")]
async fn with_docker_stopped_the_daemon_answers_and_still_drains_on_a_spot_notice() {
    let mut w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"0%\"\n");
    nodewarden.start();
    nodewarden.wait_log(&["watching Docker's disk"], Duration::from_secs(30)).await;
    w.docker.stop();
    nodewarden.wait_condition("DockerUnavailable", Duration::from_secs(20)).await;
    assert_eq!(nodewarden.get("/healthz").await.map(|(code, _)| code), Some(200));
    w.imds.state().spot_action = Some(r#"{"action":"terminate","time":"2026-11-27T00:02:00Z"}"#.into());
    w.wait_status("DRAINING", Duration::from_secs(10), &mut nodewarden).await;
    assert_eq!(drain_record(&nodewarden.state_dir())["reason"], "spot-interruption");
    assert_eq!(nodewarden.get("/healthz").await.map(|(code, _)| code), Some(200));
}

/// A spot stop (or hibernate) takes the instance away and brings it back: drained at the
/// notice, ACTIVE again once, after the start, IMDS has no notice.
#[tokio::test(flavor = "multi_thread")]
async fn a_spot_stop_drains_and_the_instance_is_active_again_when_it_comes_back() {
    let w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"0%\"\n");
    nodewarden.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.imds.state().spot_action = Some(r#"{"action":"stop","time":"2026-11-27T00:02:00Z"}"#.into());
    w.wait_status("DRAINING", Duration::from_secs(10), &mut nodewarden).await;
    assert_eq!(drain_record(&nodewarden.state_dir())["reason"], "spot-stop");
    // Still there a while later: the notice stands until the stop.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(w.status().await, "DRAINING");

    // The instance stopped and started again: a new boot, a new daemon, no notice in IMDS.
    nodewarden.stop();
    w.imds.state().spot_action = None;
    nodewarden.start();
    w.wait_undrained(Duration::from_secs(20), &mut nodewarden).await;
    assert!(nodewarden.log().contains("back after a spot stop"), "{}", nodewarden.log());
}

/// The spot notice's two minutes are not spent waiting behind AWS: IMDS is polled on its own
/// while a drain check hangs on an unreachable ECS, and the spot drain lands once it answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_spot_notice_is_seen_at_once_while_aws_calls_hang() {
    let mut w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"100%\"\n");
    nodewarden.start();
    nodewarden.wait_log(&["found this container instance"], Duration::from_secs(20)).await;
    // ECS stops answering just as disk pressure sends the drain loop into an ECS call.
    w.moto.pause();
    w.fill_to(0.70);
    tokio::time::sleep(Duration::from_secs(4)).await;
    w.imds.state().spot_action = Some(r#"{"action":"terminate","time":"2026-11-27T00:02:00Z"}"#.into());
    let noticed = Instant::now();
    while !nodewarden.log().contains("spot interruption notice") {
        nodewarden.assert_running();
        assert!(
            noticed.elapsed() < Duration::from_secs(3),
            "the notice waited behind a hung AWS call; log:\n{}",
            nodewarden.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.moto.resume();
    w.wait_status("DRAINING", Duration::from_secs(40), &mut nodewarden).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while drain_record(&nodewarden.state_dir())["reason"] != "spot-interruption" {
        assert!(Instant::now() < deadline, "{}", drain_record(&nodewarden.state_dir()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An operator drained first; then Auto Scaling terminates the instance: the lifecycle hook is
/// completed all the same (moto lacks the lifecycle calls: the proxy answers them).
#[tokio::test(flavor = "multi_thread")]
async fn the_lifecycle_hook_completes_whoever_drained_first() {
    let w = world().await;
    w.moto.proxy.in_group(&w.self_id, "web-asg");
    let mut nodewarden = w.nodewarden("[drain]\nheartbeat-interval = \"1s\"\n");
    let output = nodewarden.command(&["drain"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    nodewarden.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.imds.state().lifecycle_state = Some("Terminated".into());
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::harness::aws_proxy::total(&w.moto.proxy.counts(), "CompleteLifecycleAction") == 0 {
        nodewarden.assert_running();
        assert!(Instant::now() < deadline, "the hook was left to time out; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(drain_record(&nodewarden.state_dir())["reason"], "operator", "the operator's drain stays theirs");
    assert!(nodewarden.log().contains("lifecycle action completed"), "{}", nodewarden.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_auto_scaling_termination_drains_at_once() {
    let w = world().await;
    let mut nodewarden = w.nodewarden("");
    nodewarden.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.imds.state().lifecycle_state = Some("Terminated".into());
    w.wait_status("DRAINING", Duration::from_secs(10), &mut nodewarden).await;
    assert_eq!(drain_record(&nodewarden.state_dir())["reason"], "termination");
}

#[tokio::test(flavor = "multi_thread")]
async fn termination_heartbeats_while_tasks_run_then_completes_the_lifecycle_action() {
    let moto = Moto::start().await;
    let (self_id, arn) = moto.register_cluster(CLUSTER, 1).await.remove(0);
    let arns = [arn];
    let expected_id = self_id.clone();
    let ecs = moto.ecs().await;
    let definition = aws_sdk_ecs::types::ContainerDefinition::builder().name("app").image("app:1").memory(64).build();
    ecs.register_task_definition().family("app").container_definitions(definition).send().await.unwrap();
    let started =
        ecs.start_task().cluster(CLUSTER).task_definition("app").container_instances(&arns[0]).send().await.unwrap();
    let task = started.tasks()[0].task_arn().unwrap().to_string();

    let describe = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_instances)
        .match_requests({
            let id = expected_id.clone();
            move |r| r.instance_ids() == [id.clone()]
        })
        .then_output({
            let id = expected_id.clone();
            move || {
                let instance = AutoScalingInstanceDetails::builder()
                    .instance_id(id.clone())
                    .auto_scaling_group_name("web-asg")
                    .availability_zone("us-east-1a")
                    .lifecycle_state("Terminating:Wait")
                    .health_status("HEALTHY")
                    .protected_from_scale_in(false)
                    .build();
                DescribeAutoScalingInstancesOutput::builder().auto_scaling_instances(instance).build()
            }
        });
    let heartbeat = mock!(aws_sdk_autoscaling::Client::record_lifecycle_action_heartbeat)
        .match_requests({
            let id = expected_id.clone();
            move |r| {
                r.auto_scaling_group_name() == Some("web-asg")
                    && r.lifecycle_hook_name() == Some("nodewarden-drain")
                    && r.instance_id() == Some(id.as_str())
            }
        })
        .then_output(|| RecordLifecycleActionHeartbeatOutput::builder().build());
    let complete = mock!(aws_sdk_autoscaling::Client::complete_lifecycle_action)
        .match_requests({
            let id = expected_id.clone();
            move |r| {
                r.auto_scaling_group_name() == Some("web-asg")
                    && r.lifecycle_hook_name() == Some("nodewarden-drain")
                    && r.instance_id() == Some(id.as_str())
                    && r.lifecycle_action_result() == Some("CONTINUE")
            }
        })
        .then_output(|| CompleteLifecycleActionOutput::builder().build());
    let autoscaling = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&describe, &heartbeat, &complete]);

    let api = EcsApi::new(moto.ecs().await, moto.ec2().await);
    let identity =
        Identity { cluster: CLUSTER.into(), container_instance_arn: arns[0].clone(), ec2_instance_id: self_id };
    let settings = LifecycleSettings {
        hook: "nodewarden-drain".into(),
        heartbeat_every: Duration::from_millis(500),
        timeout: Duration::from_secs(60),
    };
    let waiting =
        tokio::spawn(
            async move { termination::complete_after_tasks_stop(&autoscaling, &api, &identity, &settings).await },
        );

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(heartbeat.num_calls() >= 2, "heartbeats while the task runs: {}", heartbeat.num_calls());
    assert_eq!(complete.num_calls(), 0, "completed while a task still runs");
    // moto does not stop tasks on DRAINING: the test plays ECS's part.
    ecs.stop_task().cluster(CLUSTER).task(&task).reason("drained").send().await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), waiting).await.expect("completion in time").unwrap();
    assert!(matches!(outcome, Ok(LifecycleOutcome::TasksStopped)), "{outcome:?}");
    assert_eq!(complete.num_calls(), 1);
    assert_eq!(describe.num_calls(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_lands_once_aws_answers_again_and_the_daemon_never_crashes() {
    let mut w = world().await;
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"100%\"\n");
    nodewarden.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.moto.pause();
    w.fill_to(0.70);
    // Longer than the SDK's 20 s operation timeout: calls fail and are retried.
    tokio::time::sleep(Duration::from_secs(24)).await;
    nodewarden.assert_running();
    assert_eq!(drain_record(&nodewarden.state_dir()), serde_json::Value::Null, "nothing recorded while AWS is away");
    w.moto.resume();
    w.wait_status("DRAINING", Duration::from_secs(40), &mut nodewarden).await;
    assert!(nodewarden.log().contains("drain check failed; retrying"), "{}", nodewarden.log());
}

/// nodewarden's own AWS calls go through the proxy `[ecs.config]` gives the agent (the ECS
/// documentation's `HTTP_PROXY=host:port`), except to the hosts `NO_PROXY` lists.
#[tokio::test(flavor = "multi_thread")]
async fn aws_calls_go_through_the_proxy_ecs_config_names_unless_no_proxy_lists_the_host() {
    let w = world().await;
    // AWS straight at moto; the counting proxy in front of moto stands for the site's proxy:
    // a call counted there went through it.
    let proxy = format!("127.0.0.1:{}", w.moto.proxy.port);
    let mut env = w.moto.node_env(w.docker.host(), w.imds.endpoint(), "proxied");
    for (name, value) in &mut env {
        if name == "AWS_ENDPOINT_URL" {
            *value = format!("http://127.0.0.1:{}", w.moto.port);
        }
    }
    let node = |no_proxy: &str| {
        let settings = format!(
            "[ecs]\ncluster = \"{CLUSTER}\"\n[docker]\ndata-device = \"none\"\n\
             [ecs.config]\nHTTP_PROXY = \"{proxy}\"\n{no_proxy}"
        );
        Nodewarden::new(&settings, env.clone())
    };
    let counted = |operation: &str| crate::harness::aws_proxy::total(&w.moto.proxy.counts(), operation);

    w.moto.proxy.reset();
    let output = node("").command(&["drain"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(w.status().await, "DRAINING");
    assert_eq!(counted("UpdateContainerInstancesState"), 1, "the drain did not go through the proxy");

    w.moto.proxy.reset();
    let output = node("NO_PROXY = \"169.254.169.254,127.0.0.1\"\n").command(&["undrain"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    // Read before the test's own check below, which goes through the counting proxy.
    let seen = w.moto.proxy.counts();
    assert_eq!(w.status().await, "ACTIVE");
    assert_eq!(seen, Default::default(), "NO_PROXY lists the host, yet the proxy saw calls");
}

/// Anything on the host network can answer on the agent's introspection port: one that names
/// another instance's container instance is not believed (ECS says that ARN belongs to another
/// EC2 instance); this instance finds itself through ECS and drains itself, never the other.
#[tokio::test(flavor = "multi_thread")]
async fn an_introspection_answer_naming_another_instance_is_refused() {
    let w = world().await;
    let impostor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = impostor.local_addr().unwrap().port();
    let body = serde_json::json!({
        "Cluster": CLUSTER,
        "ContainerInstanceArn": w.other_arns[0],
        "Version": "Amazon ECS Agent - v1.105.1",
    })
    .to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = impostor.accept().await else { return };
            let body = body.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    let mut nodewarden = w.nodewarden("[drain]\nmax-draining-fraction = \"100%\"\n");
    nodewarden.set_env("NODEWARDEN_AGENT_INTROSPECTION", &format!("http://127.0.0.1:{port}"));
    nodewarden.start();
    nodewarden
        .wait_log(
            &["names a container instance that is not this EC2 instance", "found this container instance"],
            Duration::from_secs(30),
        )
        .await;
    let (_, body) = nodewarden.get("/status").await.expect("/status answers");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["drain"]["identity"]["container_instance_arn"], w.own_arn.as_str(), "{doc:#}");
    // Disk pressure drains this instance, not the one the impostor named.
    w.fill_to(0.70);
    w.wait_status("DRAINING", Duration::from_secs(30), &mut nodewarden).await;
    assert_eq!(w.moto.status(CLUSTER, &w.other_arns[0]).await, "ACTIVE");
}
