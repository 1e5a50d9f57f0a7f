//! The incident nodewarden exists to prevent, end to end: a container fills Docker's own
//! 1 GiB disk at about 50 MB/s. GC runs first; when it cannot keep up, the instance asks to
//! drain while at least 5% is still free; the root filesystem does not move; /status says
//! why; once the writer is gone the instance returns to ACTIVE after the hold time.

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

fn used(path: &std::path::Path) -> disk::DiskSample {
    disk::probe(path).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_container_is_reclaimed_then_drained_before_the_disk_is_full_and_recovers() {
    // Alone: other tests' loop files live on the root filesystem this test watches.
    let _alone = slots::acquire_all_but_one("docker");
    let root = tempfile::Builder::new().prefix("nwe2e-").tempdir().unwrap();
    // The Docker "volume" is backed by memory, as an EBS volume is by something other than root.
    let backing = Tmpfs::mount(&root.path().join("backing"), 1100);
    let volume = LoopDisk::create(&backing.path, "docker-volume", 1024);
    let moto = Moto::start().await;
    let mut cluster = moto.register_cluster("web", 5).await;
    let (self_id, own_arn) = cluster.remove(0);
    let imds = ImdsServer::start().await;
    imds.state().instance_id = self_id.clone();
    imds.set_user_data(format!(
        "[ecs]\ncluster = \"web\"\n[docker]\ndata-device = \"{}\"\n\
         [disk]\nrecover-below = \"60%\"\nrecover-after = \"5s\"\n[gc]\nmin-image-age = \"0s\"\n\
         [drain]\nmax-draining-fraction = \"20%\"\n",
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

    // The runaway: about 50 MB/s into its own writable layer. No Docker event says so.
    let root_before = used(std::path::Path::new("/")).used_bytes();
    let docker_before = used(&data_root).used_bytes();
    let script = "while true; do dd if=/dev/zero bs=1M count=5 2>/dev/null >> /fill; sleep 0.1; done";
    let writer = images::create_container(&client, images::BASE_IMAGE, Some("runaway"), &["sh", "-c", script]).await;
    client.start_container(&writer, None).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let free_at_drain = loop {
        if moto.status("web", &own_arn).await == "DRAINING" {
            break 1.0 - used(&data_root).used_fraction();
        }
        nodewarden.assert_running();
        assert!(Instant::now() < deadline, "no drain; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = nodewarden.log();
    assert!(free_at_drain >= 0.05, "DRAINING with only {:.1}% free; log:\n{log}", free_at_drain * 100.0);
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
        let doc: serde_json::Value = serde_json::from_str(&nodewarden.get("/status").await.unwrap().1).unwrap();
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
    assert!(moto.tags(&self_id).await["nodewarden:drain-reason"].starts_with("disk-pressure: "));

    // All of that went to Docker's own disk; the root filesystem hardly moved.
    let written = used(&data_root).used_bytes().saturating_sub(docker_before);
    let root_moved = used(std::path::Path::new("/")).used_bytes().abs_diff(root_before);
    assert!(written > 200 * MIB, "the writer wrote only {written} bytes");
    assert!(
        root_moved < 100 * MIB,
        "the root filesystem moved by {root_moved} bytes while Docker's disk took {written}"
    );

    // The writer is removed (as ECS stops a drained task): space is back, ACTIVE after the hold.
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    client.remove_container(&writer, Some(remove)).await.unwrap();
    let freed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while moto.status("web", &own_arn).await != "ACTIVE" {
        nodewarden.assert_running();
        assert!(Instant::now() < deadline, "never ACTIVE again; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(freed.elapsed() >= Duration::from_secs(4), "ACTIVE after {:?}, before the 5 s hold", freed.elapsed());
    drop(nodewarden);
    drop(docker);
    drop(volume);
    drop(backing);
}
