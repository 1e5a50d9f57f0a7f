//! `scripts/bench`: nodewarden against its peers, each measured in the same run on the same
//! daemon, printed as ratios (absolute figures only as context). See BENCHMARKS.md.
//!   1. reaction: usage crosses the GC watermark because a container writes (no Docker event)
//!      → first image removal; nodewarden versus docuum with the same threshold;
//!   2. reclaim: removing 200 unused images; nodewarden's GC versus `docker image prune -a -f`
//!      and versus docuum;
//!   3. idle footprint over 60 s at a 1 s check interval: RSS and CPU time, versus docuum;
//!   4. bootstrap: `nodewarden setup` and a running agent from a tarball, versus the shell glue
//!      (docker load + docker run) ecs-init replaced;
//!   5. api-cost: AWS calls a fleet of 20 nodes makes, counted at moto (through the counting
//!      proxy): idle, and when every node passes drain-at at once; projected to 1,000 nodes
//!      against ECS's read rate (about 20 calls a second per account and Region).
#![allow(clippy::unwrap_used)] // A benchmark: a failure should stop it loudly.

#[path = "../tests/integration/harness/mod.rs"]
mod harness;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/runaway.rs"]
mod runaway;
#[path = "bench/scaling.rs"]
mod scaling;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use harness::daemon::Nodewarden;
use harness::docker::TestDocker;
use harness::events::Recorder;
use harness::images;
use nodewarden::disk;
use report::{Report, Row, Size};

const MIB: u64 = 1 << 20;

fn main() {
    harness::system::require_root("the benchmarks (loop devices, dockerd)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // cargo bench passes --bench to a harness-less bench; the rest is ours.
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut size, mut markdown, mut only) = (Size::Full, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => size = Size::Quick,
            "--markdown" => markdown = Some(std::path::PathBuf::from(args.next().expect("--markdown FILE"))),
            name if !name.starts_with('-') => only = Some(name.to_string()),
            other => panic!("unknown argument {other}: [--quick] [--markdown FILE] [benchmark]"),
        }
    }
    println!(
        "nodewarden benchmarks{}, {} on {}",
        if size == Size::Quick { " (quick: small sizes, figures not judged)" } else { "" },
        humantime::format_rfc3339_seconds(SystemTime::now()),
        report::machine()
    );
    let wants = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let mut report = Report::new(size);
    if wants("reaction") {
        runtime.block_on(reaction(&mut report));
    }
    if wants("reclaim") {
        runtime.block_on(reclaim(&mut report));
    }
    if wants("idle") {
        runtime.block_on(idle(&mut report));
    }
    if wants("bootstrap") {
        runtime.block_on(bootstrap(&mut report));
    }
    if wants("runaway") {
        runtime.block_on(runaway::runaway(&mut report));
    }
    if wants("scaling") {
        runtime.block_on(scaling::scaling(&mut report));
    }
    if wants("api-cost") {
        runtime.block_on(api_cost(&mut report));
    }
    if let Some(path) = markdown {
        let command = format!("scripts/bench --markdown {}", path.display());
        std::fs::write(&path, report.markdown(&command)).unwrap();
        println!("\nwrote {}", path.display());
    }
}

fn docuum() -> std::path::PathBuf {
    harness::system::require_tool("docuum", "docuum (cargo install docuum; scripts/bench does)")
}

/// docuum drives the docker CLI: use Debian's 20.10 client against our private daemon.
fn start_docuum(docker: &TestDocker, args: &[&str]) -> Child {
    Command::new(docuum())
        .args(args)
        .env("DOCKER_HOST", docker.host())
        .env("PATH", format!("/usr/bin:/bin:/usr/sbin:{}", std::env::var("PATH").unwrap_or_default()))
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stop(mut child: Child) {
    harness::system::signal(child.id(), "TERM");
    if !harness::system::wait_gone(child.id(), Duration::from_secs(10)) {
        harness::system::signal(child.id(), "KILL");
    }
    let _ = child.wait();
}

fn settings(extra: &str) -> String {
    format!("[ecs]\ncluster = \"bench\"\n[docker]\ndata-device = \"none\"\n[drain]\nenabled = false\n{extra}")
}

/// Starts a writer at ~50 MB/s and returns (time usage crossed `fraction`, first removal).
async fn react(docker: &TestDocker, fraction: f64, timeout: Duration) -> Option<Duration> {
    let client = docker.client.clone();
    let recorder = Recorder::start(&client).await;
    let script = "while true; do dd if=/dev/zero bs=1M count=5 2>/dev/null >> /fill; sleep 0.1; done";
    let writer = images::create_container(&client, images::BASE_IMAGE, Some("writer"), &["sh", "-c", script]).await;
    client.start_container(&writer, None).await.unwrap();
    let crossed = loop {
        if disk::probe(&docker.data_root).unwrap().used_fraction() >= fraction {
            break SystemTime::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let deadline = Instant::now() + timeout;
    let result = loop {
        if let Some((at, _)) = recorder.deleted_images().first() {
            break Some(at.duration_since(crossed).unwrap_or_default());
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let remove = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
    client.remove_container(&writer, Some(remove)).await.unwrap();
    result
}

/// Runs a container once on each old image, as a task once did: with no ECS to ask (draining
/// is off here), nodewarden removes only images a container used since they arrived.
async fn use_old_images(docker: &TestDocker) {
    for name in ["old/a", "old/b", "old/c"] {
        let id = images::run_to_completion(&docker.client, &format!("{name}:1"), &["true"]).await;
        docker.client.remove_container(&id, None::<bollard::query_parameters::RemoveContainerOptions>).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn reaction_setup() -> TestDocker {
    let docker = TestDocker::start_with(harness::docker::DockerOptions { disk_mb: 1024, ..Default::default() }).await;
    for name in ["old/a", "old/b", "old/c"] {
        images::make_image(&docker.client, &format!("{name}:1"), 20 * MIB).await;
    }
    docker
}

async fn reaction(report: &mut Report) {
    println!(
        "\n1. Reaction: a container fills its writable layer past the watermark (no Docker event) → first image removal"
    );
    let timeout = Duration::from_secs(60);
    // docuum does not react at all (no Docker event): in a quick run, waiting a minute shows nothing more.
    let peer_timeout = report.size.pick(timeout, Duration::from_secs(10));
    let docker = reaction_setup().await;
    let used = disk::probe(&docker.data_root).unwrap().used_fraction();
    let start = ((used * 100.0).ceil() + 15.0).min(90.0);
    let mut nodewarden = Nodewarden::new(
        &settings(&format!(
            "[disk]\ncheck-interval = \"1s\"\ngc-start = \"{start}%\"\ngc-stop = \"{}%\"\ndrain-at = \"95%\"\nrecover-below = \"{}%\"\n[gc]\nmin-image-age = \"0s\"\n",
            start - 1.0,
            start - 2.0
        )),
        vec![("DOCKER_HOST".into(), docker.host())],
    );
    nodewarden.start();
    nodewarden.wait_for_state_file("image-usage.json", Duration::from_secs(30)).await;
    use_old_images(&docker).await;
    let ours = react(&docker, start / 100.0, timeout).await;
    drop(nodewarden);
    drop(docker);

    let docker = reaction_setup().await;
    // The same watermark, as docuum reads it: a share of Docker's filesystem.
    let total = disk::probe(&docker.data_root).unwrap().total_bytes;
    let threshold = format!("{} B", (total as f64 * start / 100.0) as u64);
    let peer = start_docuum(&docker, &["--threshold", &threshold, "--min-age", "0s"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    use_old_images(&docker).await;
    let theirs = react(&docker, start / 100.0, peer_timeout).await;
    stop(peer);
    let show = |r: Option<Duration>, within: Duration| {
        r.map_or(format!("no reaction within {} s", within.as_secs()), |d| format!("{:.2} s", d.as_secs_f64()))
    };
    println!("   nodewarden: {}   docuum: {}", show(ours, timeout), show(theirs, peer_timeout));
    let ours = ours.expect("nodewarden did not react within a minute: investigate");
    let ratio = match theirs {
        Some(b) => format!("{:.1}x faster", b.as_secs_f64() / ours.as_secs_f64().max(0.001)),
        None => format!(
            "> {:.0}x faster (docuum acts only on Docker events)",
            peer_timeout.as_secs_f64() / ours.as_secs_f64().max(0.001)
        ),
    };
    println!("   ratio: nodewarden {ratio}");
    report.row(Row {
        benchmark: "reaction: a container fills its writable layer past the GC watermark (no Docker event) → first \
                    image removal"
            .into(),
        ours: format!("{:.2} s", ours.as_secs_f64()),
        peer: format!("docuum, same threshold: {}", show(theirs, peer_timeout)),
        ratio,
        target: format!("under 1 s: {}", met(ours < Duration::from_secs(1))),
    });
}

fn met(yes: bool) -> &'static str {
    if yes { "**met**" } else { "**not met**" }
}

async fn make_tiny_images(docker: &TestDocker, count: usize) {
    for index in 0..count {
        images::import_tiny(&docker.client, &format!("bulk/image{index:03}:1")).await;
    }
}

async fn count_images(docker: &TestDocker) -> usize {
    docker.client.list_images(None::<bollard::query_parameters::ListImagesOptions>).await.unwrap().len()
}

async fn reclaim(report: &mut Report) {
    let count = report.size.pick(200, 20);
    println!("\n2. Reclaim: remove {count} unused images");
    let docker = TestDocker::start().await;
    // nodewarden: one gc run with gc-stop far below what the images take, so all must go. It
    // asks ECS (moto, this instance registered, no task) which images its tasks want first.
    make_tiny_images(&docker, count).await;
    let moto = harness::moto::Moto::start().await;
    let imds = harness::imds::ImdsServer::start().await;
    imds.state().instance_id = moto.register_cluster("bench", 1).await.remove(0).0;
    let nodewarden = Nodewarden::new(
        &settings(
            "[disk]\ngc-start = \"3%\"\ngc-stop = \"2%\"\ndrain-at = \"99%\"\nrecover-below = \"1%\"\n[gc]\nmin-image-age = \"0s\"\n",
        ),
        moto.node_env(docker.host(), imds.endpoint(), "bench"),
    );
    let started = Instant::now();
    let output = nodewarden.command(&["gc"]).output().unwrap();
    let ours = started.elapsed();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let left_ours = count_images(&docker).await;
    // Its own report of the removals alone (the rest is process start, the survey and ECS).
    let stdout = String::from_utf8_lossy(&output.stdout);
    let removal = stdout
        .lines()
        .find(|l| l.starts_with("freed "))
        .expect("`nodewarden gc` printed no \"freed …\" line")
        .to_string();

    make_tiny_images(&docker, count).await;
    let prune_time = prune(&docker);
    let left_prune = count_images(&docker).await;

    make_tiny_images(&docker, count).await;
    let started = Instant::now();
    let peer = start_docuum(&docker, &["--threshold", "0 B", "--min-age", "0s"]);
    let deadline = Instant::now() + Duration::from_secs(300);
    while count_images(&docker).await > left_prune && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let docuum_time = started.elapsed();
    let left_docuum = count_images(&docker).await;
    stop(peer);
    println!(
        "   nodewarden gc: {:.2} s ({left_ours} images left)   docker image prune -a -f: {:.2} s ({left_prune} left)   docuum: {:.2} s ({left_docuum} left)",
        ours.as_secs_f64(),
        prune_time.as_secs_f64(),
        docuum_time.as_secs_f64()
    );
    let (prune_ratio, docuum_ratio) =
        (prune_time.as_secs_f64() / ours.as_secs_f64(), docuum_time.as_secs_f64() / ours.as_secs_f64());
    println!("   nodewarden gc's own report: {removal}");
    println!("   ratio: prune takes {prune_ratio:.2}x nodewarden's time; docuum {docuum_ratio:.2}x");
    report.row(Row {
        benchmark: format!("reclaim: remove {count} unused images"),
        ours: format!("{:.2} s (`nodewarden gc`, process start and its ECS question included)", ours.as_secs_f64()),
        peer: format!(
            "`docker image prune -a -f`: {:.2} s; docuum: {:.2} s",
            prune_time.as_secs_f64(),
            docuum_time.as_secs_f64()
        ),
        ratio: format!("prune takes {prune_ratio:.2}x, docuum {docuum_ratio:.1}x nodewarden's time"),
        target: format!("prune takes at least 1.5x: {}", met(prune_ratio >= 1.5)),
    });
}

/// How long `docker image prune -a -f` (the peer for GC) takes on this daemon.
fn prune(docker: &TestDocker) -> Duration {
    let started = Instant::now();
    let output =
        Command::new("/usr/bin/docker").args(["image", "prune", "-a", "-f"]).env("DOCKER_HOST", docker.host()).output();
    assert!(output.unwrap().status.success(), "docker image prune -a -f failed");
    started.elapsed()
}

/// `pid` and every process below it (docuum's `docker events` child is most of its memory).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((child, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        tree.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        index += 1;
    }
    tree
}

/// (RSS in bytes, user+system CPU seconds) of a process and all its descendants.
fn footprint(pid: u32) -> (u64, f64) {
    process_tree(pid).into_iter().map(footprint_of).fold((0, 0.0), |(r, c), (r2, c2)| (r + r2, c + c2))
}

/// A `/proc/PID/status` field in kB (VmRSS, RssAnon, RssFile), as bytes; 0 when absent.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// (RSS in bytes, user+system CPU seconds) of one process.
fn footprint_of(pid: u32) -> (u64, f64) {
    let rss = status_bytes(pid, "VmRSS");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let hz = 100.0; // USER_HZ on Linux
    (rss, ticks as f64 / hz)
}

async fn measure_idle(pid: u32, seconds: u64) -> (u64, f64) {
    tokio::time::sleep(Duration::from_secs(5)).await; // past startup
    let (_, cpu_before) = footprint(pid);
    let mut peak_rss = 0;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak_rss = peak_rss.max(footprint(pid).0);
    }
    let (_, cpu_after) = footprint(pid);
    (peak_rss, (cpu_after - cpu_before) / seconds as f64 * 100.0)
}

async fn idle(report: &mut Report) {
    let seconds = report.size.pick(60, 5);
    println!("\n3. Idle footprint over {seconds} s, 1 s check interval (each program's whole process tree)");
    let docker = TestDocker::start().await;
    images::make_image(&docker.client, "idle/a:1", MIB).await;
    let mut nodewarden =
        Nodewarden::new(&settings("[disk]\ncheck-interval = \"1s\"\n"), vec![("DOCKER_HOST".into(), docker.host())]);
    nodewarden.start();
    nodewarden.wait_for_state_file("image-usage.json", Duration::from_secs(30)).await;
    let pid = nodewarden.pid().unwrap();
    let (our_rss, our_cpu) = measure_idle(pid, seconds).await;
    // What holds it: anonymous memory (heap, stacks) against pages mapped from the binary and
    // libc (clean, shared with the page cache, dropped by the kernel under memory pressure).
    let (anon, file) = (status_bytes(pid, "RssAnon"), status_bytes(pid, "RssFile"));
    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_nodewarden")).map_or(0, |m| m.len());
    drop(nodewarden);
    let peer = start_docuum(&docker, &["--threshold", "10 GB"]);
    let (their_rss, their_cpu) = measure_idle(peer.id(), seconds).await;
    stop(peer);
    println!(
        "   nodewarden: RSS {:.1} MiB, CPU {:.3}% of a core   docuum: RSS {:.1} MiB, CPU {:.3}% of a core",
        our_rss as f64 / MIB as f64,
        our_cpu,
        their_rss as f64 / MIB as f64,
        their_cpu
    );
    let held = format!(
        "anonymous (heap, stacks) {:.1} MiB, mapped from files {:.1} MiB (code of a {:.1} MB binary, and libc)",
        anon as f64 / MIB as f64,
        file as f64 / MIB as f64,
        binary as f64 / 1e6
    );
    println!("   where nodewarden's RSS is: {held}");
    let rss_ratio = our_rss as f64 / their_rss.max(1) as f64;
    println!(
        "   ratio: RSS {rss_ratio:.2}x docuum's, CPU {:.2}x docuum's (nodewarden also supervises, drains and serves health)",
        our_cpu / their_cpu.max(0.0001)
    );
    report.row(Row {
        benchmark: format!("idle footprint over {seconds} s, 1 s check interval, each program's whole process tree"),
        ours: format!("RSS {:.1} MiB ({held}), CPU {our_cpu:.3} % of a core", our_rss as f64 / MIB as f64),
        peer: format!(
            "docuum (and its `docker events` child): RSS {:.1} MiB, CPU {their_cpu:.3} % of a core",
            their_rss as f64 / MIB as f64
        ),
        ratio: format!("RSS {rss_ratio:.2}x docuum's"),
        target: format!("RSS under 10 MiB: {}", met(our_rss < 10 * MIB)),
    });
}

async fn bootstrap(report: &mut Report) {
    println!("\n4. Bootstrap: setup, then the agent running from a tarball");
    let docker = TestDocker::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    images::make_standin_agent(&docker.client, "bench/agent:v1", port).await;
    // nodewarden reads agent-tarball under its --root, as every path in its settings: the
    // tarball goes inside that root, and the settings name it as the host would.
    const TARBALL: &str = "/var/cache/ecs/ecs-agent.tar";
    let mut nodewarden = Nodewarden::new(
        &format!(
            "[ecs]\ncluster = \"bench\"\nagent-image = \"bench/agent:v1\"\nagent-tarball = \"{TARBALL}\"\n[docker]\ndata-device = \"none\"\n[drain]\nenabled = false\n"
        ),
        vec![
            ("DOCKER_HOST".into(), docker.host()),
            ("NODEWARDEN_AGENT_INTROSPECTION".into(), format!("http://127.0.0.1:{port}")),
        ],
    );
    let tarball = nodewarden.root.path().join(TARBALL.trim_start_matches('/'));
    std::fs::create_dir_all(tarball.parent().unwrap()).unwrap();
    let mut export = docker.client.export_image("bench/agent:v1");
    let mut bytes = Vec::new();
    use futures_util::StreamExt;
    while let Some(chunk) = export.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    std::fs::write(&tarball, bytes).unwrap();
    let remove_image = |client: bollard::Docker| async move {
        let _ = client
            .remove_container(
                "ecs-agent",
                Some(bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
        client
            .remove_image("bench/agent:v1", None::<bollard::query_parameters::RemoveImageOptions>, None)
            .await
            .unwrap();
    };
    remove_image(docker.client.clone()).await;
    let started = Instant::now();
    nodewarden.setup();
    nodewarden.start();
    wait_metadata(port, &nodewarden).await;
    let ours = started.elapsed();
    nodewarden.stop();
    remove_image(docker.client.clone()).await;

    // The glue ecs-init replaced: docker load, then docker run with the same essentials.
    let started = Instant::now();
    let docker_cli =
        |args: &[&str]| Command::new("/usr/bin/docker").args(args).env("DOCKER_HOST", docker.host()).output().unwrap();
    assert!(docker_cli(&["load", "-i", tarball.to_str().unwrap()]).status.success());
    assert!(
        docker_cli(&[
            "run",
            "-d",
            "--name",
            "ecs-agent",
            "--net",
            "host",
            "--init",
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "SYS_ADMIN",
            "-e",
            "ECS_CLUSTER=bench",
            "bench/agent:v1"
        ])
        .status
        .success()
    );
    wait_metadata(port, &nodewarden).await;
    let glue = started.elapsed();
    let ratio = ours.as_secs_f64() / glue.as_secs_f64();
    println!(
        "   nodewarden setup + run: {:.2} s   docker load + docker run: {:.2} s",
        ours.as_secs_f64(),
        glue.as_secs_f64()
    );
    println!(
        "   ratio: nodewarden takes {ratio:.2}x the bare glue's time (it also validates, writes ecs.config and supervises)"
    );
    report.row(Row {
        benchmark: "bootstrap: `nodewarden setup` + the agent running from a tarball".into(),
        ours: format!("{:.2} s", ours.as_secs_f64()),
        peer: format!("`docker load` + `docker run`: {:.2} s", glue.as_secs_f64()),
        ratio: format!("{ratio:.2}x the bare glue's time"),
        target: format!("at most 1.2x: {}", met(ratio <= 1.2)),
    });
}

/// Until the agent's introspection answers; a minute at most, then the daemon's log says why.
async fn wait_metadata(port: u16, nodewarden: &Nodewarden) {
    let http = nodewarden::http::HttpClient::new();
    let uri: hyper::Uri = format!("http://127.0.0.1:{port}/v1/metadata").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http.get(uri.clone(), &[], Duration::from_secs(1)).await.is_ok_and(|r| r.status.is_success()) {
        assert!(Instant::now() < deadline, "the agent never answered; nodewarden's log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// AWS calls by the fleet, per operation, from the proxy's counts (callers `node<i>` only).
fn fleet_calls(counts: &harness::aws_proxy::Counts) -> (u64, std::collections::BTreeMap<String, u64>) {
    let mut by_operation = std::collections::BTreeMap::new();
    let mut total = 0;
    for ((caller, operation), n) in counts {
        if caller.starts_with("node") {
            *by_operation.entry(operation.clone()).or_default() += n;
            total += n;
        }
    }
    (total, by_operation)
}

async fn node_status(node: &Nodewarden) -> Option<nodewarden::node::status::StatusDocument> {
    let (_, body) = node.get("/status").await?;
    serde_json::from_str(&body).ok()
}

async fn api_cost(report: &mut Report) {
    use harness::imds::ImdsServer;
    use harness::moto::Moto;

    const CLUSTER: &str = "bench";
    let nodes_count = report.size.pick(20, 5);
    let idle_seconds: u64 = std::env::var("NODEWARDEN_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(report.size.pick(600, 10));
    println!(
        "\n5. AWS API cost of a {nodes_count}-node fleet, counted at moto; idle {idle_seconds} s, then all under pressure"
    );
    let moto = Moto::start().await;
    let members = moto.register_cluster(CLUSTER, nodes_count as i32).await;
    let arns: Vec<String> = members.iter().map(|(_, arn)| arn.clone()).collect();
    // One dockerd for the fleet: every node watches the same disk, so all of them pass
    // drain-at at the same moment, as under a runaway deployed everywhere.
    let docker = TestDocker::start().await;
    let mut servers = Vec::new();
    let mut nodes = Vec::new();
    for (index, (instance_id, _)) in members.iter().enumerate() {
        let imds = ImdsServer::start().await;
        imds.state().instance_id = instance_id.clone();
        let settings = format!(
            "[ecs]\ncluster = \"{CLUSTER}\"\n[docker]\ndata-device = \"none\"\n\
             [disk]\ngc-start = \"50%\"\ngc-stop = \"45%\"\ndrain-at = \"60%\"\nrecover-below = \"40%\"\n\
             recover-after = \"2s\"\ndrain-if-full-within = \"0s\"\n[drain]\nmax-draining-fraction = \"20%\"\n"
        );
        let env = moto.node_env(docker.host(), imds.endpoint(), &format!("node{index}"));
        let mut nodewarden = Nodewarden::new(&settings, env);
        nodewarden.start();
        servers.push(imds);
        nodes.push(nodewarden);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for node in &nodes {
        while !node_status(node).await.is_some_and(|s| s.disk.is_some() && s.drain.identity.is_some()) {
            assert!(Instant::now() < deadline, "a node never found itself:\n{}", node.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (startup, _) = fleet_calls(&moto.proxy.counts());

    moto.proxy.reset();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let (idle_total, idle_ops) = fleet_calls(&moto.proxy.counts());
    let idle_per_node_hour = idle_total as f64 / nodes_count as f64 * 3600.0 / idle_seconds as f64;

    moto.proxy.reset();
    let sample = disk::probe(&docker.data_root).unwrap();
    let fill = ((sample.total_bytes as f64 * 0.70) as u64).saturating_sub(sample.used_bytes());
    let filler = docker.data_root.join("filler");
    assert!(Command::new("fallocate").args(["-l", &fill.to_string()]).arg(&filler).status().unwrap().success());
    let filled = Instant::now();
    let allowed = nodes_count / 5; // 20%
    let converged = loop {
        let draining = moto.statuses(CLUSTER, &arns).await.iter().filter(|s| *s == "DRAINING").count();
        let mut withheld = 0;
        for node in &nodes {
            withheld += usize::from(node_status(node).await.is_some_and(|s| s.drain.withheld.is_some()));
        }
        if draining == allowed && withheld == nodes_count - allowed {
            break filled.elapsed();
        }
        assert!(
            filled.elapsed() < Duration::from_secs(180),
            "no convergence: {draining} DRAINING, {withheld} withheld"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (decision_total, decision_ops) = fleet_calls(&moto.proxy.counts());
    moto.proxy.reset();
    let hold = report.size.pick(120, 10);
    let mut most = 0;
    for _ in 0..hold {
        tokio::time::sleep(Duration::from_secs(1)).await;
        most = most.max(moto.statuses(CLUSTER, &arns).await.iter().filter(|s| *s == "DRAINING").count());
    }
    let (hold_total, hold_ops) = fleet_calls(&moto.proxy.counts());
    moto.proxy.reset();
    std::fs::remove_file(&filler).unwrap();
    let emptied = Instant::now();
    while !moto.statuses(CLUSTER, &arns).await.iter().all(|s| s == "ACTIVE") {
        assert!(emptied.elapsed() < Duration::from_secs(120), "not ACTIVE again");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (recovery_total, recovery_ops) = fleet_calls(&moto.proxy.counts());

    println!(
        "   startup (identity, cluster size, stale attribute check): {:.1} calls per node",
        startup as f64 / nodes_count as f64
    );
    println!(
        "   idle: {idle_total} calls in {idle_seconds} s = {idle_per_node_hour:.1} per node per hour {idle_ops:?}"
    );
    println!(
        "   decision: all {nodes_count} past drain-at → {allowed} DRAINING, {} withheld in {:.1} s: {decision_total} calls = {:.1} per node {decision_ops:?}",
        nodes_count - allowed,
        converged.as_secs_f64(),
        decision_total as f64 / nodes_count as f64
    );
    println!(
        "   holding {hold} s under pressure (withheld nodes look again): {hold_total} calls = {:.2} per node per minute, never more than {most} DRAINING {hold_ops:?}",
        hold_total as f64 / nodes_count as f64 / (hold as f64 / 60.0)
    );
    println!(
        "   recovery: {recovery_total} calls = {:.1} per node {recovery_ops:?}",
        recovery_total as f64 / nodes_count as f64
    );
    // 1,000 nodes: idle at the measured per-node rate; a withheld node's look costs what the
    // hold measured per look. The decision storm at 1,000 and 10,000 nodes is the simulation's
    // (benches/fleet_sim.rs): a real cluster cannot be stood up here.
    // Every look (a cluster read) lists the claims once; DescribeClusters only now and then.
    let looks_in_hold = hold_ops.get("ListAttributes").copied().unwrap_or(0).max(1) as f64;
    let per_look = hold_total as f64 / looks_in_hold;
    let idle_at_1000 = idle_per_node_hour * 1000.0 / 3600.0;
    println!(
        "   projected to 1,000 nodes: idle {idle_at_1000:.2} calls/s ({per_look:.1} calls per look of a withheld node); \
         the decision storm at 1,000 and 10,000 nodes: cargo bench --bench fleet_sim"
    );
    report.row(Row {
        benchmark: format!(
            "AWS API cost, {nodes_count} nodes on moto (counted at a proxy): idle {idle_seconds} s, then all past \
             drain-at at once, held {hold} s"
        ),
        ours: format!(
            "idle {idle_per_node_hour:.1} calls per node per hour; decision {:.1} per node ({allowed} DRAINING, {} \
             withheld, converged in {:.1} s); hold {:.2} per node per minute; recovery {:.1} per node",
            decision_total as f64 / nodes_count as f64,
            nodes_count - allowed,
            converged.as_secs_f64(),
            hold_total as f64 / nodes_count as f64 / (hold as f64 / 60.0),
            recovery_total as f64 / nodes_count as f64
        ),
        peer: "ECS's cluster-read rate: about 20 calls/s per account and Region".into(),
        ratio: format!(
            "idle at 1,000 nodes: {idle_at_1000:.2} calls/s, {:.0} % of that rate",
            idle_at_1000 / 20.0 * 100.0
        ),
        target: format!("never more than {allowed} DRAINING: {}", met(most <= allowed)),
    });
    drop(nodes);
    drop(servers);
}
