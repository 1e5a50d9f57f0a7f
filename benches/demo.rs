//! The local demo (`scripts/demo`): a throwaway Docker daemon on a small loop-mounted disk
//! prepared by `nodewarden setup`, moto for AWS, the IMDS test server, and nodewarden showing
//! disk fill → GC → drain → recovery, narrated for a person. It uses the test harness, so it
//! cleans up the same way the tests do: daemons stopped by PID, mounts and loop devices gone.
#![allow(clippy::unwrap_used)] // A demo: a failure should stop it loudly.

#[path = "../tests/integration/harness/mod.rs"]
mod harness;

use std::time::{Duration, Instant};

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use harness::daemon::Nodewarden;
use harness::docker::TestDocker;
use harness::images;
use harness::imds::ImdsServer;
use harness::loopdisk::LoopDisk;
use harness::moto::Moto;
use harness::system::Tmpfs;
use nodewarden::disk::{self, human_bytes};

const MIB: u64 = 1 << 20;
/// The agent image the demo's settings name; built locally as the stand-in.
const STANDIN_AGENT: &str = "nodewarden-demo/agent:v1";

fn say(text: &str) {
    println!("\n\x1b[1m==> {text}\x1b[0m");
}

fn show(output: &std::process::Output) {
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
}

fn main() {
    tokio::runtime::Runtime::new().unwrap().block_on(demo());
}

async fn demo() {
    harness::system::require_root("the demo (loop devices, mounts, dockerd)");
    let started = Instant::now();
    say("nodewarden demo: one node, one runaway container, and what nodewarden does about it");
    let root = tempfile::Builder::new().prefix("nwdemo-").tempdir().unwrap();
    let backing = Tmpfs::mount(&root.path().join("backing"), 1100);
    let volume = LoopDisk::create(&backing.path, "docker-volume", 1024);
    println!("A blank 1 GiB volume for Docker's data: {} (think: the EBS volume xvdcz).", volume.device.display());

    say("AWS (moto) with an ECS cluster of five instances, and IMDS serving this instance's userdata");
    let moto = Moto::start().await;
    let mut cluster = moto.register_cluster("demo", 5).await;
    let (self_id, own_arn) = cluster.remove(0);
    let imds = ImdsServer::start().await;
    imds.state().instance_id = self_id.clone();
    let userdata = format!(
        "[ecs]\ncluster = \"demo\"\nagent-image = \"{STANDIN_AGENT}\"\nagent-health-grace = \"3s\"\n\
         [docker]\ndata-device = \"{}\"\n[disk]\nrecover-below = \"60%\"\nrecover-after = \"10s\"\n\
         [gc]\nmin-image-age = \"0s\"\n[drain]\nmax-draining-fraction = \"20%\"\n",
        volume.device.display()
    );
    println!("This instance is {self_id}, registered as {own_arn}.\nUserdata (TOML):\n{userdata}");
    imds.set_user_data(userdata);
    let mut env = moto.env_vars();
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.endpoint()));
    // The stand-in ECS agent (the real image cannot be pulled here) answers /v1/metadata here.
    let agent_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    env.push(("NODEWARDEN_AGENT_INTROSPECTION".into(), format!("http://127.0.0.1:{agent_port}")));
    let mut nodewarden = Nodewarden::new("", env);
    volume.link_into(nodewarden.root.path());
    // What the stand-in reports as this instance's ARN, as the real agent does once registered.
    let ecs_dir = nodewarden.root.path().join("etc/ecs");
    std::fs::create_dir_all(&ecs_dir).unwrap();
    std::fs::write(ecs_dir.join("standin-arn"), &own_arn).unwrap();

    say("nodewarden setup: userdata → settings → Docker's own disk → daemon.json → ecs.config");
    show(&nodewarden.command(&["setup"]).output().unwrap());
    let data_root = nodewarden.root.path().join("var/lib/docker");

    say("Docker starts on the daemon.json setup wrote; some old images, one service in use");
    let docker = TestDocker::start_on(&nodewarden.root.path().join("etc/docker/daemon.json"), &data_root).await;
    let client = docker.client.clone();
    for name in ["old/report-job", "old/migration", "old/canary"] {
        images::make_image(&client, &format!("{name}:1"), 40 * MIB).await;
    }
    images::make_image(&client, "shop/web:42", 40 * MIB).await;
    images::make_standin_agent(&client, STANDIN_AGENT, agent_port).await;
    images::start_sleeper(&client, "shop/web:42", "web").await;
    println!("Docker's root is {} on {}.", data_root.display(), volume.device.display());

    say("nodewarden run: the daemon starts the ECS agent (a stand-in here) and watches the disk");
    nodewarden.set_env("DOCKER_HOST", &docker.host());
    nodewarden.start();
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        let doc: serde_json::Value =
            serde_json::from_str(&nodewarden.get("/status").await.map(|(_, b)| b).unwrap_or_default())
                .unwrap_or_default();
        if doc["ready"] == true && doc["agent"]["healthy"] == true {
            break;
        }
        assert!(Instant::now() < ready_by, "not ready with a healthy agent; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    show(&nodewarden.command(&["status"]).output().unwrap());

    say("A runaway container starts writing about 50 MB/s into its own writable layer");
    let script = "while true; do dd if=/dev/zero bs=1M count=5 2>/dev/null >> /fill; sleep 0.1; done";
    let writer = images::create_container(&client, images::BASE_IMAGE, Some("runaway"), &["sh", "-c", script]).await;
    client.start_container(&writer, None).await.unwrap();
    let root_before = disk::probe(std::path::Path::new("/")).unwrap().used_bytes();
    let mut drained = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let doc: serde_json::Value = serde_json::from_str(&nodewarden.get("/status").await.unwrap().1).unwrap();
        let ecs = moto.status("demo", &own_arn).await;
        println!(
            "  docker disk {:>5}% used, filling {:>10}/s | pressure: {:<10} | GC runs: {} | ECS: {ecs}",
            doc["disk"]["used_percent"],
            human_bytes(doc["disk"]["fill_rate_bytes_per_second"].as_f64().unwrap_or(0.0).max(0.0) as u64),
            doc["pressure"]["phase"].as_str().unwrap_or("?"),
            doc["gc"]["runs"],
        );
        if ecs == "DRAINING" && doc["drain"]["draining"] == true {
            drained = true;
            break;
        }
    }
    assert!(drained, "the demo expected a drain; log:\n{}", nodewarden.log());
    // The drain does not wait for GC to finish when the disk fills this fast; GC's result
    // follows within seconds.
    for _ in 0..30 {
        let doc: serde_json::Value = serde_json::from_str(&nodewarden.get("/status").await.unwrap().1).unwrap();
        if doc["gc"]["running"] == false && doc["gc"]["runs"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = nodewarden.log();
    for line in log.lines().filter(|l| l.contains("gc step") || l.contains("DRAINING") || l.contains("disk pressure")) {
        println!("  log: {}", line.split_once("  ").map_or(line, |(_, rest)| rest.trim()));
    }

    say("What operators see: nodewarden status, and the EC2 tags");
    show(&nodewarden.command(&["status"]).output().unwrap());
    for (key, value) in moto.tags(&self_id).await {
        println!("  tag {key} = {value}");
    }
    let root_after = disk::probe(std::path::Path::new("/")).unwrap().used_bytes();
    println!(
        "The root filesystem moved by {} meanwhile: the runaway only filled Docker's disk.",
        human_bytes(root_after.abs_diff(root_before))
    );

    say("ECS would stop the drained task; here the demo removes the runaway container");
    client.remove_container(&writer, Some(RemoveContainerOptionsBuilder::default().force(true).build())).await.unwrap();
    let freed = Instant::now();
    while moto.status("demo", &own_arn).await != "ACTIVE" {
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "  {:>3}s after the space came back: still DRAINING (recover-after is 10s)",
            freed.elapsed().as_secs()
        );
        assert!(freed.elapsed() < Duration::from_secs(60), "no recovery; log:\n{}", nodewarden.log());
    }
    println!(
        "  ACTIVE again {:.0}s after the space came back: nodewarden undoes only its own drain.",
        freed.elapsed().as_secs_f64()
    );

    say("Cleaning up: nodewarden, dockerd and moto stopped by PID, the disk unmounted, the loop device detached");
    drop(nodewarden);
    drop(docker);
    drop(volume);
    drop(backing);
    drop(moto);
    println!("Done in {:.0}s.", started.elapsed().as_secs_f64());
}
