//! The boot test (`scripts/boot-test`): nodewarden installed through userdata on a VM booted
//! as an EC2 instance of the ECS-optimized AMI boots, under QEMU. The userdata is the
//! CloudFormation template's own (`cloud-init/cloudformation.yaml`, its parameters filled in as
//! `Fn::Sub` does): cloud-init reads it from the IMDS test server, installs the .deb built from
//! this tree from bootcmd (fetched from a forwarded server standing in for S3, its sha256
//! checked), and runs its classic `echo ECS_CLUSTER=… >> /etc/ecs/ecs.config` script; no TOML
//! anywhere. The image stands in for the AMI: an enabled ecs.service (ecs-init) that runs the
//! stand-in agent, Amazon Linux's cloud-final ordering, and the EBS launch-name link (xvdcz).
//! nodewarden-setup prepares the volume before docker.service starts. Three boots:
//!   1. first boot: setup takes the ecs-init role by itself, the volume formatted and mounted,
//!      Docker on it with the writable-layer cap, the agent up, nodewarden READY with the
//!      cluster from ecs.config; then a runaway container: GC, DRAINING in moto with space
//!      left, the root filesystem untouched;
//!   2. the same disks again: the filesystem reused (same UUID and data), everything back;
//!   3. a new instance whose volume holds someone's ext4 data: setup refuses, Docker stays
//!      off, the reason is on the serial console, the data is untouched.
//!
//! Each check is printed with its time; the exit code is 0 only when every one passed.
//! Needs root, QEMU and socat (tests/boot/install-deps), the image (tests/boot/build-image)
//! and the .deb (packaging/build --debug), which scripts/boot-test provides.

#[path = "../integration/harness/mod.rs"]
mod harness;
mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use harness::docker::TestDocker;
use harness::imds::ImdsServer;
use harness::moto::Moto;
use harness::system::{require_root, run};
use vm::{Boot, Image, Instance};

const AGENT_IMAGE: &str = "amazon/amazon-ecs-agent:v1.105.1";
const CLUSTER: &str = "boot";
const VOLUME_ID: &str = "vol-0123456789abcdef0";
const VOLUME_MB: u64 = 1024;
/// One boot, its checks included, under TCG on a shared 2-core machine (2–4 minutes seen; a
/// guest check waits 10 minutes at most), so that a hung guest cannot eat CI's time.
const BOOT_LIMIT: Duration = Duration::from_secs(720);
/// Empty files the first boot puts in ten containers' writable layers before the runaway,
/// to show a footprint sample reads each layer's project quota instead of walking it:
/// NODEWARDEN_BOOT_FILES=1000000 NODEWARDEN_BOOT_ONLY=first measures the scaling at a million
/// (a bigger volume for the inodes, a longer limit for making them under TCG). CI's 10,000
/// take about 35 s; `NODEWARDEN_BOOT_FILES=0` leaves them out. With them, and before setup
/// mounted xfs with `allocsize`, drains came at 97 % used in 3 of 5 runs (BENCHMARKS.md).
const FILES: u64 = 10_000;

/// (files, volume MiB, boot limit) for this run.
fn scaling() -> (u64, u64, Duration) {
    let files = std::env::var("NODEWARDEN_BOOT_FILES").ok().map_or(FILES, |v| {
        v.parse().unwrap_or_else(|_| panic!("NODEWARDEN_BOOT_FILES={v:?} is not a number of files"))
    });
    // An xfs inode is 512 bytes, and xfs gives inodes a quarter of a small disk at most.
    let volume_mb = VOLUME_MB.max(files / 1000 * 4);
    // Under TCG a guest makes a few thousand files a second.
    (files, volume_mb, BOOT_LIMIT + Duration::from_secs(files / 500))
}

/// Every check, in order, with when it was decided.
#[derive(Default)]
struct Report {
    started: Option<Instant>,
    passed: usize,
    failed: usize,
}

impl Report {
    fn elapsed(&self) -> f64 {
        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    fn record(&mut self, passed: bool, when: &str, name: &str, detail: &str) {
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        let verdict = if passed { "PASS" } else { "FAIL" };
        println!("{verdict} [{when}] {name}: {detail}");
    }

    fn host(&mut self, passed: bool, name: &str, detail: &str) {
        let when = format!("host, {:.0} s", self.elapsed());
        self.record(passed, &when, name, detail);
    }
}

fn main() -> ExitCode {
    require_root("the boot test (loop devices for the agent image, QEMU's disks)");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let runtime = runtime.expect("a tokio runtime");
    let mut report = Report { started: Some(Instant::now()), ..Report::default() };
    // On SIGINT or SIGTERM the scenario is dropped, and with it the VM, dockerd and moto.
    let interrupted = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = scenario(&mut report) => false,
            _ = tokio::signal::ctrl_c() => true,
            _ = term.recv() => true,
        }
    });
    if interrupted {
        report.host(false, "the boot test ran to its end", "interrupted by a signal; the VM was stopped");
    }
    println!("\nboot test: {:.0} s in all", report.elapsed());
    println!("{} passed, {} failed", report.passed, report.failed);
    if report.failed == 0 && report.passed > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn required_path(variable: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from);
    match path {
        Some(path) if path.exists() => path,
        _ => panic!("{variable} must name {what}; scripts/boot-test sets it"),
    }
}

fn sha256(path: &Path) -> String {
    let line = run(Command::new("sha256sum").arg(path));
    line.split_whitespace().next().expect("sha256sum prints a digest").to_string()
}

async fn scenario(report: &mut Report) {
    let image = Image { dir: required_path("NODEWARDEN_BOOT_IMAGE", "the guest image (tests/boot/build-image)") };
    let deb = required_path("NODEWARDEN_BOOT_DEB", "the nodewarden .deb (packaging/build --debug)");
    let out = PathBuf::from(std::env::var("NODEWARDEN_BOOT_OUT").unwrap_or_else(|_| "target/boot-test".into()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("creating the boot test's output directory");
    let work = tempfile::Builder::new().prefix("nwboot-").tempdir_in("/var/tmp").expect("a work directory");
    let artifacts = work.path().join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("creating the artifacts directory");

    // AWS and IMDS as the instance will see them.
    let moto = Moto::start().await;
    let (instance_id, arn) = moto.register_cluster(CLUSTER, 1).await.remove(0);
    let imds = ImdsServer::start().await;
    {
        let mut state = imds.state();
        state.instance_id = instance_id.clone();
        state.mac = vm::GUEST_MAC.into();
        state.local_ipv4 = vm::GUEST_IPV4.into();
        state.iam_role = Some("ecsInstanceRole".into());
    }

    // The stand-in agent image the integration tests use, saved as the tarball the stand-in
    // ecs-init loads (from the share, as the AMI has it on disk).
    let started = Instant::now();
    let agent_tarball = work.path().join("ecs-agent.tar");
    {
        let docker = TestDocker::start().await;
        harness::images::make_standin_agent(&docker.client, AGENT_IMAGE, 51678).await;
        let mut tar = Vec::new();
        let mut stream = docker.client.export_image(AGENT_IMAGE);
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk.expect("saving the stand-in agent image"));
        }
        std::fs::write(&agent_tarball, tar).expect("writing the agent tarball");
    }
    std::fs::copy(&deb, artifacts.join("nodewarden.deb")).expect("copying the .deb");
    let detail = format!("agent tarball and {} ready in {:.0} s", deb.display(), started.elapsed().as_secs_f64());
    report.host(true, "artifacts", &detail);
    let (artifacts_port, _server) = serve_dir(artifacts.clone()).await;

    // The userdata: the CloudFormation template's, as CloudFormation fills it in.
    let package_url = format!("http://{}/nodewarden.deb", vm::ARTIFACTS_ADDRESS);
    let package_sha256 = sha256(&artifacts.join("nodewarden.deb"));
    let userdata = harness::template::substitute(
        &harness::template::userdata_source(),
        &[("PackageUrl", &package_url), ("PackageSha256", &package_sha256), ("ClusterName", CLUSTER)],
    );
    imds.set_user_data(userdata.clone().into_bytes());
    std::fs::write(out.join("userdata.mime"), &userdata).expect("keeping the userdata");
    report.host(true, "the userdata is cloudformation.yaml's", &format!("{} bytes", userdata.len()));
    let scaffolding = Scaffolding { agent_tarball: &agent_tarball, container_instance_arn: &arn };

    let ports = (imds.addr.port(), artifacts_port, moto.port);
    let volume = work.path().join("volume.img");
    let (files, volume_mb, _) = scaling();
    std::fs::File::create(&volume).and_then(|f| f.set_len(volume_mb << 20)).expect("creating the volume");
    report.host(true, "the volume", &format!("{volume_mb} MiB; {files} files in ten writable layers at first boot"));
    let instance = Instance::create(&image, work.path(), &instance_id);

    // 1. First boot.
    let first = boot(report, &out, "first", &image, &instance, &volume, ports, &scaffolding).await;
    if first {
        let status = moto.status(CLUSTER, &arn).await;
        report.host(status == "DRAINING", "moto: the container instance is DRAINING", &status);
        let tags = moto.tags(&instance_id).await;
        let reason = tags.get("nodewarden:drain-reason").cloned();
        let detail = reason.clone().unwrap_or_else(|| format!("no drain reason tag in {tags:?}"));
        report.host(reason.is_some(), "moto: the EC2 instance is tagged with why", &detail);
    }

    // NODEWARDEN_BOOT_ONLY=first: the first boot alone (a quicker round while developing).
    if std::env::var("NODEWARDEN_BOOT_ONLY").is_ok_and(|only| only == "first") {
        println!("NODEWARDEN_BOOT_ONLY=first: the second and the refusing boot were NOT run");
        return;
    }

    // 2. The same instance and disks, rebooted (only after a first boot that got through).
    if first {
        // The .deb in the share: the second boot upgrades the package in place and removes it.
        let share = out.join("share-second");
        std::fs::create_dir_all(&share).expect("creating the second boot's share");
        std::fs::copy(&deb, share.join("nodewarden.deb")).expect("copying the .deb into the share");
        boot(report, &out, "second", &image, &instance, &volume, ports, &scaffolding).await;
    } else {
        report.host(false, "second boot", "not run: the first boot did not get through its checks");
    }

    // 3. A new instance launched with a volume that holds someone's data.
    let precious = work.path().join("precious");
    std::fs::create_dir_all(&precious).expect("creating the data to keep");
    std::fs::write(precious.join("keep.txt"), "someone's data\n").expect("writing the data to keep");
    let held = work.path().join("held-volume.img");
    run(Command::new("mkfs.ext4").args(["-q", "-L", "precious", "-d"]).arg(&precious).arg(&held).arg("256M"));
    let uuid_before = run(Command::new("blkid").args(["-s", "UUID", "-o", "value"]).arg(&held));
    let other = Instance::create(&image, work.path(), "i-0feedc0ffee000001");
    imds.state().instance_id = other.instance_id.clone();
    if boot(report, &out, "refuse", &image, &other, &held, ports, &scaffolding).await {
        let console = std::fs::read_to_string(out.join("console-refuse.log")).unwrap_or_default();
        let line = console.lines().find(|l| l.contains("formats only devices that hold nothing"));
        let detail = line.map_or_else(|| "no refusal on the serial console".to_string(), str::to_string);
        report.host(line.is_some(), "the reason is on the serial console", detail.trim());
        let uuid_after = run(Command::new("blkid").args(["-s", "UUID", "-o", "value"]).arg(&held));
        let kept = Command::new("debugfs").args(["-R", "cat /keep.txt"]).arg(&held).output();
        let kept = kept.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let intact = uuid_after == uuid_before && kept == "someone's data\n";
        let detail = format!("UUID {} → {}, /keep.txt {:?}", uuid_before.trim(), uuid_after.trim(), kept);
        report.host(intact, "the volume's data is untouched", &detail);
    }
}

/// What the image's stand-ins read from the share: the stand-in ecs-init's agent tarball, and
/// the container instance ARN moto registered, which the stand-in agent reports as the real
/// one would.
struct Scaffolding<'a> {
    agent_tarball: &'a Path,
    container_instance_arn: &'a str,
}

/// Boots once, runs the guest's checks for `phase`, and reports them. True when the guest
/// reached its end and powered off.
#[allow(clippy::too_many_arguments)]
async fn boot(
    report: &mut Report,
    out: &Path,
    phase: &str,
    image: &Image,
    instance: &Instance,
    volume: &Path,
    (imds_port, artifacts_port, moto_port): (u16, u16, u16),
    scaffolding: &Scaffolding<'_>,
) -> bool {
    let share = out.join(format!("share-{phase}"));
    std::fs::create_dir_all(&share).expect("creating the share");
    std::fs::copy(scaffolding.agent_tarball, share.join("ecs-agent.tar")).expect("sharing the agent tarball");
    std::fs::write(share.join("standin-arn"), scaffolding.container_instance_arn).expect("sharing the ARN");
    std::fs::write(share.join("phase"), phase).expect("writing the phase");
    let (files, _, limit) = scaling();
    std::fs::write(share.join("files"), files.to_string()).expect("writing the number of files");
    if let Ok(uuid) = std::fs::read(out.join("share-first/uuid")) {
        std::fs::write(share.join("uuid"), uuid).expect("passing the first boot's UUID on");
    }
    std::fs::copy(repo().join("tests/boot/guest-check"), share.join("guest-check")).expect("copying guest-check");
    let console = out.join(format!("console-{phase}.log"));
    let spec = Boot {
        image,
        instance,
        volume,
        volume_serial: &VOLUME_ID.replace('-', ""),
        share: &share,
        console: console.clone(),
        imds_port,
        artifacts_port,
        moto_port,
        limit,
    };
    println!("\n== boot: {phase} ({}, volume {})", instance.instance_id, volume.display());
    let started = Instant::now();
    let mut running = spec.start();
    let (powered_off, stderr) = running.wait().await;
    let seconds = started.elapsed().as_secs_f64();
    let results = std::fs::read_to_string(share.join("results")).unwrap_or_default();
    let mut done = false;
    for line in results.lines() {
        let mut words = line.splitn(3, ' ');
        let (verdict, at, rest) = (words.next(), words.next(), words.next().unwrap_or(""));
        let when = format!("{phase} boot, {} s after boot", at.unwrap_or("?"));
        match verdict {
            Some("PASS") => report.record(true, &when, rest.split_once(": ").map_or(rest, |p| p.0), detail(rest)),
            Some("FAIL") => report.record(false, &when, rest.split_once(": ").map_or(rest, |p| p.0), detail(rest)),
            Some("DONE") => done = true,
            Some("NOTE") => println!("NOTE [{when}] {rest}"),
            _ => {}
        }
    }
    let detail = format!("QEMU start → power off in {seconds:.0} s (TCG)");
    report.host(powered_off && done, &format!("{phase} boot: the guest ran its checks and powered off"), &detail);
    if !(powered_off && done) {
        let console = std::fs::read_to_string(&console).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(40).collect();
        println!("QEMU: {}", stderr.trim());
        println!("last serial console lines:");
        for line in tail.iter().rev() {
            println!("  | {line}");
        }
    }
    powered_off && done
}

fn detail(rest: &str) -> &str {
    rest.split_once(": ").map_or("", |p| p.1)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Serves the files of `dir` on loopback (the guest reaches it as ARTIFACTS_ADDRESS).
async fn serve_dir(dir: PathBuf) -> (u16, tokio::task::JoinHandle<()>) {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    async fn file(State(dir): State<PathBuf>, UrlPath(name): UrlPath<String>) -> axum::response::Response {
        if name.contains('/') || name.starts_with('.') {
            return StatusCode::NOT_FOUND.into_response();
        }
        match tokio::fs::read(dir.join(&name)).await {
            Ok(bytes) => bytes.into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the artifacts server");
    let port = listener.local_addr().expect("a bound address").port();
    let app = axum::Router::new().route("/{name}", axum::routing::get(file)).with_state(dir);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}
