//! Cost against what is on the disk: a footprint sample (the offender's measure, taken while
//! the disk is in trouble) with 10 containers holding many files in their writable layers and
//! volumes; the time from a runaway crossing gc-start to being named offender among them; and
//! GC's plan (`nodewarden gc --dry-run`) and run against the number of images, with
//! `docker image prune -a -f` as the peer. This kernel has no XFS quota: the sample here is the
//! bounded walk (each container's measurement cut short past its bound, and marked so). Where
//! dockerd set `overlay2.size` on a prjquota mount, the sampler reads each writable layer's
//! project block count instead (the boot test's VM checks that path); volumes and logs are
//! walked either way.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::daemon::Nodewarden;
use crate::harness::docker::{DockerOptions, TestDocker};
use crate::harness::images;
use crate::report::{Report, Row};
use nodewarden::disk;
use nodewarden::offender::sampler::{Sampler, WALK_BOUND};

const CONTAINERS: usize = 10;

/// This process's user+system CPU time, all threads (the sampler's walk runs on one of them),
/// in the kernel's 10 ms ticks.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// `count` empty files under `dir`, a thousand per directory.
fn make_files(dir: &Path, count: usize) {
    for index in 0..count {
        let sub = dir.join(format!("d{}", index / 1000));
        if index % 1000 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        std::fs::File::create(sub.join(index.to_string())).unwrap();
    }
}

/// Ten running containers with an anonymous volume each, `files` in all, half in their
/// writable layers and half in their volumes (written from the host, into Docker's dirs).
async fn crowd(docker: &TestDocker, files: usize) {
    use bollard::models::{ContainerCreateBody, HostConfig};
    let base = images::base_image(&docker.client).await;
    for index in 0..CONTAINERS {
        let body = ContainerCreateBody {
            image: Some(base.to_string()),
            cmd: Some(vec!["sleep".into(), "86400".into()]),
            volumes: Some(vec!["/data".into()]),
            host_config: Some(HostConfig { network_mode: Some("none".into()), ..Default::default() }),
            ..Default::default()
        };
        let name = format!("crowd{index}");
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::default().name(&name).build();
        let id = docker.client.create_container(Some(options), body).await.unwrap().id;
        docker.client.start_container(&id, None).await.unwrap();
        let inspected = docker.client.inspect_container(&id, None).await.unwrap();
        let upper = inspected.graph_driver.as_ref().and_then(|g| g.data.get("UpperDir")).cloned().unwrap();
        let volume = inspected.mounts.iter().flatten().find_map(|m| m.source.clone()).unwrap();
        let each = files / CONTAINERS / 2;
        make_files(&Path::new(&upper).join("files"), each);
        make_files(Path::new(&volume), each);
    }
}

/// (wall, CPU, any measurement cut short) of one footprint sample, the median of three.
async fn sample_cost(docker: &TestDocker) -> (Duration, Duration, bool) {
    let mut sampler = Sampler::new(docker.client.clone(), docker.data_root.clone());
    sampler.sample().await.unwrap(); // inspects each container once: not what a sample costs
    let mut runs = Vec::new();
    for _ in 0..3 {
        let (wall, cpu) = (Instant::now(), cpu_time());
        let footprints = sampler.sample().await.unwrap();
        assert_eq!(footprints.len(), CONTAINERS, "{footprints:?}");
        runs.push((wall.elapsed(), cpu_time() - cpu, footprints.iter().any(|f| f.cut_short)));
    }
    runs.sort();
    runs[1]
}

/// Seconds from a 50 MB/s writer crossing gc-start to /status naming it the top writer, among
/// the crowd, with a 1 s check interval.
async fn time_to_named(docker: &TestDocker) -> f64 {
    let used = disk::probe(&docker.data_root).unwrap().used_fraction();
    let start = ((used * 100.0).ceil() + 5.0).min(90.0);
    let settings = format!(
        "[ecs]\ncluster = \"bench\"\n[docker]\ndata-device = \"none\"\n[drain]\nenabled = false\n\
         [disk]\ncheck-interval = \"1s\"\ngc-start = \"{start}%\"\ngc-stop = \"{}%\"\nrecover-below = \"{}%\"\n",
        start - 1.0,
        start - 2.0
    );
    let mut nodewarden = Nodewarden::new(&settings, vec![("DOCKER_HOST".into(), docker.host())]);
    nodewarden.setup();
    nodewarden.start();
    nodewarden.wait_ready(Duration::from_secs(30)).await;
    let script = "while true; do dd if=/dev/zero bs=1M count=5 2>/dev/null >> /fill; sleep 0.1; done";
    let writer =
        images::create_container(&docker.client, images::BASE_IMAGE, Some("runaway"), &["sh", "-c", script]).await;
    docker.client.start_container(&writer, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while disk::probe(&docker.data_root).unwrap().used_fraction() < start / 100.0 {
        assert!(Instant::now() < deadline, "the writer never reached gc-start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let crossed = Instant::now();
    loop {
        let status = nodewarden.status().await;
        if status["offender"]["top"]["name"] == "runaway" {
            break;
        }
        nodewarden.assert_running();
        assert!(crossed.elapsed() < Duration::from_secs(60), "never named: {status:#}\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let named = crossed.elapsed().as_secs_f64();
    let remove = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
    docker.client.remove_container(&writer, Some(remove)).await.unwrap();
    named
}

/// (`nodewarden gc --dry-run`, `nodewarden gc`, `docker image prune -a -f`) with `count` unused images.
async fn gc_at(count: usize) -> (Duration, Duration, Duration) {
    let docker = TestDocker::start().await;
    // GC asks ECS (moto, this instance registered, no task) which images its tasks want.
    let moto = crate::harness::moto::Moto::start().await;
    let imds = crate::harness::imds::ImdsServer::start().await;
    imds.state().instance_id = moto.register_cluster("bench", 1).await.remove(0).0;
    let settings = "[ecs]\ncluster = \"bench\"\n[docker]\ndata-device = \"none\"\n\
                    [disk]\ngc-start = \"3%\"\ngc-stop = \"2%\"\ndrain-at = \"99%\"\nrecover-below = \"1%\"\n\
                    [gc]\nmin-image-age = \"0s\"\n";
    let nodewarden = Nodewarden::new(settings, moto.node_env(docker.host(), imds.endpoint(), "bench"));
    let timed = |args: &[&str]| {
        let started = Instant::now();
        let output = nodewarden.command(args).output().unwrap();
        assert!(output.status.success(), "nodewarden {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        started.elapsed()
    };
    for index in 0..count {
        images::import_tiny(&docker.client, &format!("bulk/image{index:04}:1")).await;
    }
    let plan = timed(&["gc", "--dry-run"]);
    let run = timed(&["gc"]);
    for index in 0..count {
        images::import_tiny(&docker.client, &format!("bulk/image{index:04}:1")).await;
    }
    (plan, run, crate::prune(&docker))
}

pub async fn scaling(report: &mut Report) {
    println!("\n7. Scaling: a footprint sample, naming the offender, and GC, against what is on the disk");
    let sizes: Vec<usize> = report.size.pick(vec![10_000, 100_000, 1_000_000], vec![1_000, 10_000]);
    for files in sizes {
        // Room for a million inodes: xfs allocates them as it goes, 512 bytes each.
        let docker = TestDocker::start_with(DockerOptions { disk_mb: 4096, ..Default::default() }).await;
        crowd(&docker, files).await;
        let (wall, cpu, cut_short) = sample_cost(&docker).await;
        let named = time_to_named(&docker).await;
        println!(
            "   {files} files in {CONTAINERS} containers: a sample {:.1} ms wall, {:.1} ms CPU{}; the runaway named \
             {named:.1} s after crossing gc-start",
            wall.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() * 1000.0,
            if cut_short { " (walks cut short at their bound)" } else { "" }
        );
        report.row(Row {
            benchmark: format!(
                "scaling: {files} files in the writable layers and volumes of {CONTAINERS} containers; a footprint \
                 sample, and a 50 MB/s runaway among them named offender"
            ),
            ours: format!(
                "a sample: {:.1} ms wall, {:.1} ms CPU (bounded walk, {WALK_BOUND} entries per container{}); named \
                 {named:.1} s after crossing gc-start",
                wall.as_secs_f64() * 1000.0,
                cpu.as_secs_f64() * 1000.0,
                if cut_short { ", cut short and marked" } else { ", complete" }
            ),
            peer: "an unbounded walk grows with the files (kubelet reads XFS project quotas instead)".into(),
            ratio: format!("{:.2} µs of CPU per file on the disk", cpu.as_secs_f64() * 1e6 / files as f64),
            target: format!(
                "named within two check intervals (2 s): {}",
                if named <= 2.0 { "**met**" } else { "**not met**" }
            ),
        });
    }
    for count in report.size.pick(vec![200, 2000], vec![20, 50]) {
        let (plan, run, prune) = gc_at(count).await;
        println!(
            "   {count} images: nodewarden gc --dry-run {:.2} s, gc {:.2} s; docker image prune -a -f {:.2} s",
            plan.as_secs_f64(),
            run.as_secs_f64(),
            prune.as_secs_f64()
        );
        report.row(Row {
            benchmark: format!("scaling: GC with {count} unused images"),
            ours: format!(
                "plan (`nodewarden gc --dry-run`) {:.2} s; `nodewarden gc` {:.2} s",
                plan.as_secs_f64(),
                run.as_secs_f64()
            ),
            peer: format!("`docker image prune -a -f`: {:.2} s", prune.as_secs_f64()),
            ratio: format!("prune takes {:.2}x nodewarden's run", prune.as_secs_f64() / run.as_secs_f64()),
            target: "(none: how it grows from 200 to 2,000)".into(),
        });
    }
}
