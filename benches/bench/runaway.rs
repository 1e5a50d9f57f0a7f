//! The incident as a benchmark: a container writes into its writable layer on a 1 GiB Docker
//! disk at 50 and at 200 MB/s; how much of the disk is still free when ECS shows the instance
//! DRAINING. The peer is no nodewarden at all: the disk fills, 0 % free. Median and worst of
//! five runs each (one in a quick run), each run on a fresh dockerd and moto.

use std::time::{Duration, Instant};

use crate::harness::daemon::Nodewarden;
use crate::harness::docker::{DockerOptions, TestDocker};
use crate::harness::images;
use crate::harness::imds::ImdsServer;
use crate::harness::moto::Moto;
use crate::report::{Report, Row};
use nodewarden::disk;

const CLUSTER: &str = "bench";
const MIB: u64 = 1 << 20;

/// One run: (free fraction when DRAINING was seen, seconds from the writer's start).
async fn once(mib_per_tenth: u32) -> (f64, f64) {
    let docker = TestDocker::start_with(DockerOptions { disk_mb: 1024, ..Default::default() }).await;
    for name in ["old/r1", "old/r2", "old/r3"] {
        images::make_image(&docker.client, &format!("{name}:1"), 30 * MIB).await;
    }
    let moto = Moto::start().await;
    let mut cluster = moto.register_cluster(CLUSTER, 5).await;
    let (instance_id, own_arn) = cluster.remove(0);
    let imds = ImdsServer::start().await;
    imds.state().instance_id = instance_id;
    // The defaults but for GC's minimum image age (the images were just made).
    let settings = format!(
        "[ecs]\ncluster = \"{CLUSTER}\"\n[docker]\ndata-device = \"none\"\n[gc]\nmin-image-age = \"0s\"\n\
         [drain]\nmax-draining-fraction = \"20%\"\n"
    );
    let mut nodewarden = Nodewarden::new(&settings, moto.node_env(docker.host(), imds.endpoint(), "runaway"));
    nodewarden.setup();
    nodewarden.start();
    nodewarden.wait_ready(Duration::from_secs(30)).await;
    nodewarden.wait_log(&["found this container instance"], Duration::from_secs(30)).await;
    let script =
        format!("while true; do dd if=/dev/zero bs=1M count={mib_per_tenth} 2>/dev/null >> /fill; sleep 0.1; done");
    let writer =
        images::create_container(&docker.client, images::BASE_IMAGE, Some("runaway"), &["sh", "-c", &script]).await;
    docker.client.start_container(&writer, None).await.unwrap();
    let started = Instant::now();
    let free = loop {
        if moto.status(CLUSTER, &own_arn).await == "DRAINING" {
            break 1.0 - disk::probe(&docker.data_root).unwrap().used_fraction();
        }
        nodewarden.assert_running();
        assert!(started.elapsed() < Duration::from_secs(90), "no drain in 90 s; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let remove = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
    docker.client.remove_container(&writer, Some(remove)).await.unwrap();
    (free, seconds)
}

pub async fn runaway(report: &mut Report) {
    let runs = report.size.pick(5, 1);
    println!("\n6. Runaway: free space on a 1 GiB Docker disk when DRAINING is requested, {runs} run(s) per rate");
    for (mb_per_second, target) in [(50u32, 0.10), (200, 0.05)] {
        let mut results = Vec::new();
        for _ in 0..runs {
            results.push(once(mb_per_second / 10).await);
        }
        results.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (worst, median) = (results[0], results[results.len() / 2]);
        let all: Vec<String> = results.iter().map(|(f, _)| format!("{:.1}", f * 100.0)).collect();
        println!(
            "   {mb_per_second} MB/s: {:.1} % free at DRAINING (median; worst {:.1} %; DRAINING {:.1} s after the \
             writer started); all runs: {} %",
            median.0 * 100.0,
            worst.0 * 100.0,
            median.1,
            all.join(", ")
        );
        report.row(Row {
            benchmark: format!(
                "runaway: a container writes {mb_per_second} MB/s into its writable layer on a 1 GiB Docker disk; \
                 free space when ECS shows DRAINING ({runs} runs)"
            ),
            ours: format!(
                "{:.1} % free (median), {:.1} % (worst); DRAINING {:.1} s after the writer started",
                median.0 * 100.0,
                worst.0 * 100.0,
                median.1
            ),
            peer: "no nodewarden: the disk fills (0 % free), the agent and every task on it fail".into(),
            ratio: format!("{:.0} MiB kept free in the worst run", worst.0 * 1024.0),
            target: format!(
                "at least {:.0} % free: {}",
                target * 100.0,
                if worst.0 >= target { "**met**" } else { "**not met**" }
            ),
        });
    }
}
