//! The cascade at fleet scale: five nodes of one cluster, each with its own dockerd on its own
//! loop-mounted xfs, all passing drain-at at the same moment (a runaway deployed everywhere),
//! with `max-draining-fraction = "20%"` (one of five). Round after round, exactly one drains;
//! the rest report the budget as spent and keep reclaiming; the soft signal
//! (`nodewarden.disk-pressure`) is on every node under pressure and gone after recovery; no
//! claim is left behind; idle nodes make no ECS calls.

use std::time::{Duration, Instant};

use nodewarden::disk;
use nodewarden::node::status::StatusDocument;

use crate::harness::aws_proxy;
use crate::harness::daemon::Nodewarden;
use crate::harness::docker::{DockerOptions, TestDocker};
use crate::harness::imds::ImdsServer;
use crate::harness::moto::Moto;
use crate::harness::slots;

const CLUSTER: &str = "fleet";
const NODES: usize = 5;
const ROUNDS: usize = 10;
const CLAIM: &str = "nodewarden.drain-claim";
const PRESSURE: &str = "nodewarden.disk-pressure";

struct Node {
    docker: TestDocker,
    _imds: ImdsServer,
    arn: String,
    nodewarden: Nodewarden,
}

impl Node {
    /// Fills Docker's disk to `fraction` at once (fallocate: real blocks, no data to write).
    fn fill_to(&self, fraction: f64) {
        let sample = disk::probe(&self.docker.data_root).unwrap();
        let wanted = ((sample.total_bytes as f64 * fraction) as u64).saturating_sub(sample.used_bytes());
        let path = self.docker.data_root.join("filler");
        let status = std::process::Command::new("fallocate")
            .args(["-l", &wanted.to_string()])
            .arg(&path)
            .status()
            .expect("running fallocate (util-linux)");
        assert!(status.success(), "fallocate -l {wanted} {}", path.display());
    }

    fn empty(&self) {
        let _ = std::fs::remove_file(self.docker.data_root.join("filler"));
    }

    async fn status(&self) -> Option<StatusDocument> {
        let (_, body) = self.nodewarden.get("/status").await?;
        serde_json::from_str(&body).ok()
    }
}

/// Five nodes of one cluster, each with its own dockerd and IMDS, running nodewarden with the
/// shared disk thresholds plus `extra` settings; returned once each found itself.
async fn fleet(moto: &Moto, extra: &str) -> Vec<Node> {
    let members = moto.register_cluster(CLUSTER, NODES as i32).await;
    let mut nodes = Vec::new();
    for (index, (instance_id, arn)) in members.into_iter().enumerate() {
        let options = DockerOptions { take_slot: false, ..DockerOptions::default() };
        let docker = TestDocker::start_with(options).await;
        let imds = ImdsServer::start().await;
        imds.state().instance_id = instance_id;
        let settings = format!(
            "[ecs]\ncluster = \"{CLUSTER}\"\n[docker]\ndata-device = \"none\"\n\
             [disk]\ncheck-interval = \"1s\"\ngc-start = \"50%\"\ngc-stop = \"45%\"\n{extra}"
        );
        let env = moto.node_env(docker.host(), imds.endpoint(), &format!("node{index}"));
        let mut nodewarden = Nodewarden::new(&settings, env);
        nodewarden.start();
        nodes.push(Node { docker, _imds: imds, arn, nodewarden });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in &mut nodes {
        while !node.status().await.is_some_and(|s| s.alive && s.disk.is_some() && s.drain.identity.is_some()) {
            node.nodewarden.assert_running();
            assert!(Instant::now() < deadline, "a node never found itself and its disk:\n{}", node.nodewarden.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    nodes
}

fn logs(nodes: &[Node]) -> String {
    nodes.iter().enumerate().map(|(i, n)| format!("--- node {i} ---\n{}\n", n.nodewarden.log())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn five_nodes_filling_at_once_drain_exactly_one_per_round() {
    // Five dockerds and five loop devices: this test takes every Docker slot.
    let _alone = slots::acquire_all("docker");
    let moto = Moto::start().await;
    let mut nodes = fleet(
        &moto,
        "drain-at = \"60%\"\nrecover-below = \"40%\"\nrecover-after = \"2s\"\ndrain-if-full-within = \"0s\"\n\
         [drain]\nmax-draining-fraction = \"20%\"\n",
    )
    .await;
    let arns: Vec<String> = nodes.iter().map(|n| n.arn.clone()).collect();

    // Idle: no pressure anywhere, so no ECS calls at all for a while.
    moto.proxy.reset();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = moto.proxy.counts();
    assert!(idle.keys().all(|(caller, _)| !caller.starts_with("node")), "idle nodes called AWS: {idle:?}");

    let mut transient_max = 0;
    for round in 1..=ROUNDS {
        moto.proxy.reset();
        for node in &nodes {
            node.fill_to(0.70);
        }
        // Converged: one node DRAINING, and every other says the budget is spent.
        let started = Instant::now();
        let converged = loop {
            let statuses = moto.statuses(CLUSTER, &arns).await;
            let draining = statuses.iter().filter(|s| *s == "DRAINING").count();
            transient_max = transient_max.max(draining);
            let mut withheld = 0;
            for node in &nodes {
                if node.status().await.is_some_and(|s| s.drain.withheld.is_some()) {
                    withheld += 1;
                }
            }
            if draining == 1 && withheld == NODES - 1 {
                break started.elapsed();
            }
            for node in &mut nodes {
                node.nodewarden.assert_running();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "round {round}: not converged after 60 s ({statuses:?}, {withheld} withheld)\n{}",
                logs(&nodes)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // And it stays converged: never more than one, never none, while the pressure lasts.
        let hold = Instant::now();
        while hold.elapsed() < Duration::from_secs(6) {
            let statuses = moto.statuses(CLUSTER, &arns).await;
            let draining = statuses.iter().filter(|s| *s == "DRAINING").count();
            assert_eq!(draining, 1, "round {round}: {statuses:?} after convergence\n{}", logs(&nodes));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The soft signal is on every node under pressure; the drained one holds a claim (a
        // withheld one holds one only for the moment it looks again).
        let drained = moto.statuses(CLUSTER, &arns).await.iter().position(|s| s == "DRAINING").unwrap();
        for (i, arn) in arns.iter().enumerate() {
            let attributes = moto.attributes(CLUSTER, arn).await;
            assert_eq!(attributes.get(PRESSURE).map(String::as_str), Some("true"), "node {i}: {attributes:?}");
            if i == drained {
                assert!(attributes.contains_key(CLAIM), "node {i}: {attributes:?}");
            }
        }
        let decision_calls = moto.proxy.counts();

        for node in &nodes {
            node.empty();
        }
        let started = Instant::now();
        loop {
            let statuses = moto.statuses(CLUSTER, &arns).await;
            let mut leftovers = Vec::new();
            for arn in &arns {
                leftovers.extend(moto.attributes(CLUSTER, arn).await.into_keys());
            }
            if statuses.iter().all(|s| s == "ACTIVE") && leftovers.is_empty() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "round {round}: not recovered ({statuses:?}, attributes left: {leftovers:?})\n{}",
                logs(&nodes)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let ecs_calls: u64 = decision_calls.iter().filter(|((c, _), _)| c.starts_with("node")).map(|(_, n)| n).sum();
        println!(
            "round {round}: node {drained} drained, converged in {converged:.1?}, {ecs_calls} AWS calls by the \
             fleet ({} ListAttributes, {} DescribeClusters)",
            aws_proxy::total(&decision_calls, "ListAttributes"),
            aws_proxy::total(&decision_calls, "DescribeClusters"),
        );
    }
    println!("most instances DRAINING at any moment, before convergence included: {transient_max}");
}

/// The service-wide runaway with `[offender] action = "stop-task"`: the same task runs on
/// every node and writes about 8 MiB/s. Every node stops its own copy at the source, long
/// before the disk is full; no node drains beyond the budget (here: none needs to); the stop
/// reason names nodewarden and the bytes; GC removes the stopped container at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_on_every_node_is_stopped_at_its_source_on_each() {
    let _alone = slots::acquire_all("docker");
    let moto = Moto::start().await;
    let mut nodes = fleet(
        &moto,
        "drain-at = \"80%\"\nrecover-below = \"30%\"\ndrain-if-full-within = \"5m\"\n\
         [drain]\nmax-draining-fraction = \"20%\"\n[offender]\naction = \"stop-task\"\n",
    )
    .await;
    let arns: Vec<String> = nodes.iter().map(|n| n.arn.clone()).collect();
    let ecs = moto.ecs().await;
    let definition =
        aws_sdk_ecs::types::ContainerDefinition::builder().name("runaway").image("app:1").memory(64).build();
    ecs.register_task_definition().family("runaway").container_definitions(definition).send().await.unwrap();
    let mut tasks = Vec::new();
    for node in &nodes {
        // moto records the task; the test plays the agent that runs (and later stops) it.
        let started = ecs.start_task().cluster(CLUSTER).task_definition("runaway").container_instances(&node.arn);
        tasks.push(started.send().await.unwrap().tasks()[0].task_arn().unwrap().to_string());
        crate::harness::images::base_image(&node.docker.client).await;
        node.fill_to(0.40);
    }
    // The fill above is one burst: let it leave the disks' fill-rate estimate (the runaway,
    // not the test's setup, is what must bring the disks past gc-start).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The runaway starts everywhere at once: 8 MiB every second.
    let script = "while true; do dd if=/dev/zero bs=1M count=8 2>/dev/null >> /fill; sleep 1; done";
    let mut containers = Vec::new();
    for (node, task) in nodes.iter().zip(&tasks) {
        let labels = [
            ("com.amazonaws.ecs.task-arn", task.as_str()),
            ("com.amazonaws.ecs.task-definition-family", "runaway"),
            ("com.amazonaws.ecs.container-name", "runaway"),
            ("com.amazonaws.ecs.cluster", CLUSTER),
        ];
        let client = &node.docker.client;
        let id = crate::harness::images::create_labelled_container(
            client,
            crate::harness::images::BASE_IMAGE,
            Some("ecs-runaway-1"),
            &["sh", "-c", script],
            &labels,
        )
        .await;
        client.start_container(&id, None).await.unwrap();
        containers.push(id);
    }
    let started = Instant::now();

    let mut stopped_after: Vec<Option<Duration>> = vec![None; NODES];
    let mut most_used = [0.0f64; NODES];
    // When each disk passed gc-start (50%): the pressure the stop answers.
    let mut pressure_at: [Option<Duration>; NODES] = [None; NODES];
    let mut most_draining = 0;
    let mut removed = vec![false; NODES];
    while removed.iter().any(|r| !r) {
        for (i, node) in nodes.iter().enumerate() {
            let used = disk::probe(&node.docker.data_root).unwrap().used_fraction();
            most_used[i] = most_used[i].max(used);
            if used >= 0.50 && pressure_at[i].is_none() {
                pressure_at[i] = Some(started.elapsed());
            }
        }
        most_draining =
            most_draining.max(moto.statuses(CLUSTER, &arns).await.iter().filter(|s| *s == "DRAINING").count());
        let described = ecs.describe_tasks().cluster(CLUSTER).set_tasks(Some(tasks.clone())).send().await.unwrap();
        for (i, task) in tasks.iter().enumerate() {
            let found = described.tasks().iter().find(|t| t.task_arn() == Some(task.as_str()));
            // desiredStatus STOPPED is what StopTask sets and the agent acts on. (moto advances
            // lastStatus by itself, one step per DescribeTasks, from RUNNING to STOPPED: its
            // "managed state" for tasks. Real ECS only stops what was asked to stop.)
            let stopped = found.is_some_and(|t| t.desired_status() == Some("STOPPED"));
            if stopped && stopped_after[i].is_none() {
                // As the ECS agent would: the task's container stops (and stays, for GC).
                stopped_after[i] = Some(started.elapsed());
                let _ = nodes[i].docker.client.kill_container(&containers[i], None).await;
            }
            if stopped_after[i].is_some() && !removed[i] {
                removed[i] = nodes[i].docker.client.inspect_container(&containers[i], None).await.is_err();
            }
        }
        for node in &mut nodes {
            node.nodewarden.assert_running();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not every runaway was stopped and removed: stopped {stopped_after:?}, removed {removed:?}\n{}",
            logs(&nodes)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let described = ecs.describe_tasks().cluster(CLUSTER).set_tasks(Some(tasks.clone())).send().await.unwrap();
    for task in described.tasks() {
        let reason = task.stopped_reason().unwrap_or_default();
        assert!(reason.starts_with("nodewarden: container runaway wrote "), "{reason}");
        assert!(reason.contains("MiB") && reason.contains("would be full in"), "{reason}");
    }
    for (i, used) in most_used.iter().enumerate() {
        assert!(*used < 0.80, "node {i} reached {:.1}% (drain-at 80%)\n{}", used * 100.0, logs(&nodes));
    }
    assert!(most_draining <= 1, "{most_draining} instances DRAINING at once (budget 1)");
    // The disk is back to normal everywhere, with no drain.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, node) in nodes.iter().enumerate() {
        let status = node.status().await.unwrap();
        assert!(status.offender.last_stop.is_some() && status.offender.stops == 1, "node {i}: {:?}", status.offender);
        assert!(!status.drain.draining, "node {i} drained although the stop relieved it\n{}", node.nodewarden.log());
    }
    let seconds: Vec<String> = stopped_after
        .iter()
        .zip(&pressure_at)
        .map(|(stop, pressure)| {
            let (stop, pressure) = (stop.unwrap(), pressure.unwrap_or_default());
            format!("{:.1} ({:.1} after gc-start)", stop.as_secs_f64(), stop.saturating_sub(pressure).as_secs_f64())
        })
        .collect();
    let peaks: Vec<String> = most_used.iter().map(|u| format!("{:.1}%", u * 100.0)).collect();
    println!(
        "runaway started → its task asked to stop, per node, s: {}; peak usage {}",
        seconds.join(", "),
        peaks.join(", ")
    );
}
