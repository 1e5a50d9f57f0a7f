//! Bootstrap and supervision of the ECS agent on the harness's real dockerd, with a locally
//! built stand-in agent and userdata served by the IMDS test server.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{KillContainerOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt;

use crate::harness::daemon::Nodewarden;
use crate::harness::docker::TestDocker;
use crate::harness::imds::{Faults, ImdsServer};
use crate::harness::{images, system};

const AGENT_IMAGE: &str = "nodewarden-test/agent:v1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn userdata(cluster: &str, extra: &str) -> String {
    format!(
        "[ecs]\ncluster = \"{cluster}\"\nagent-image = \"{AGENT_IMAGE}\"\nagent-health-grace = \"0s\"\n\
         agent-health-interval = \"500ms\"\nagent-health-failures = 3\n{extra}[docker]\ndata-device = \"none\"\n"
    )
}

struct Bootstrap {
    docker: TestDocker,
    imds: ImdsServer,
    nodewarden: Nodewarden,
}

/// A dockerd with the stand-in agent image, IMDS serving `userdata`, and a nodewarden whose
/// settings file is empty (everything comes from userdata).
async fn bootstrap(userdata_text: &str) -> Bootstrap {
    let docker = TestDocker::start().await;
    let port = free_port();
    images::make_standin_agent(&docker.client, AGENT_IMAGE, port).await;
    let imds = ImdsServer::start().await;
    imds.set_user_data(userdata_text.as_bytes().to_vec());
    let env = vec![
        ("DOCKER_HOST".to_string(), docker.host()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(), imds.endpoint()),
        ("NODEWARDEN_AGENT_INTROSPECTION".to_string(), format!("http://127.0.0.1:{port}")),
        // No AWS here: draining is off for these tests.
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
    ];
    let nodewarden = Nodewarden::new("[drain]\nenabled = false\n", env);
    Bootstrap { docker, imds, nodewarden }
}

fn setup(nodewarden: &Nodewarden, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["setup"];
    args.extend(extra);
    nodewarden.command(&args).output().expect("running nodewarden setup")
}

/// `systemd-analyze verify` of the packaged nodewarden.service with the drop-ins setup wrote
/// under `root`, loaded as systemd loads them (ExecStart pointed at the binary under test).
fn verify_unit_with_drop_ins(root: &std::path::Path) {
    system::require_tool("systemd-analyze", "systemd");
    let units = root.join("etc/systemd/system");
    let package = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/nodewarden.service")).unwrap();
    let unit = unit.replace("/usr/bin/nodewarden", env!("CARGO_BIN_EXE_nodewarden"));
    std::fs::write(package.path().join("nodewarden.service"), unit).unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", "nodewarden.service"])
        .env("SYSTEMD_UNIT_PATH", format!("{}:{}:", units.display(), package.path().display()))
        .output()
        .unwrap();
    assert!(verify.status.success() && verify.stderr.is_empty(), "systemd-analyze verify: {}", text(&verify));
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

async fn agent_container(docker: &Docker) -> Option<bollard::models::ContainerInspectResponse> {
    docker.inspect_container("ecs-agent", None).await.ok()
}

async fn wait_for(what: &str, timeout: Duration, nodewarden: &mut Nodewarden, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        nodewarden.assert_running();
        assert!(Instant::now() < deadline, "timed out waiting for {what}; log:\n{}", nodewarden.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn running_since(docker: &Docker) -> Option<String> {
    let state = agent_container(docker).await?.state?;
    state.running.unwrap_or(false).then(|| state.started_at.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_and_run_create_the_agent_as_ecs_init_does_and_restarts_keep_it() {
    // A proxy as the ECS documentation configures it, in ecs.config.
    let proxy = "[ecs.config]\nHTTP_PROXY = \"127.0.0.1:3128\"\nNO_PROXY = \"169.254.169.254,169.254.170.2,/var/run/docker.sock\"\n";
    let mut b = bootstrap(&userdata("from-imds", proxy)).await;
    let output = setup(&b.nodewarden, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let config_path = b.nodewarden.root.path().join("etc/ecs/ecs.config");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains("\nECS_CLUSTER=from-imds\n"), "{config}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&config_path).unwrap().permissions().mode() & 0o777, 0o600);
    let units = b.nodewarden.root.path().join("etc/systemd/system");
    let drop_in = std::fs::read_to_string(units.join("nodewarden.service.d/20-agent-owner.conf")).unwrap();
    assert!(drop_in.contains("Conflicts=ecs.service"), "{drop_in}");
    verify_unit_with_drop_ins(b.nodewarden.root.path());

    b.nodewarden.start();
    let client = b.docker.client.clone();
    wait_for("the agent to run", Duration::from_secs(30), &mut b.nodewarden, async || {
        running_since(&client).await.is_some()
    })
    .await;
    let inspect = agent_container(&client).await.unwrap();
    let host = inspect.host_config.clone().unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("host"));
    assert_eq!(host.userns_mode.as_deref(), Some("host"));
    assert_eq!(host.cap_add.clone().unwrap(), ["NET_ADMIN", "SYS_ADMIN"]);
    assert_eq!(host.init, Some(true));
    let log = host.log_config.clone().unwrap();
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    let log_options = log.config.unwrap();
    assert_eq!((log_options["max-size"].as_str(), log_options["max-file"].as_str()), ("16m", "4"));
    let env = inspect.config.clone().unwrap().env.unwrap();
    for wanted in [
        "ECS_CLUSTER=from-imds",
        "ECS_DATADIR=/data",
        "ECS_LOGFILE=/log/ecs-agent.log",
        "ECS_ENABLE_TASK_IAM_ROLE=true",
        "HTTP_PROXY=127.0.0.1:3128",
        "NO_PROXY=169.254.169.254,169.254.170.2,/var/run/docker.sock",
    ] {
        assert!(env.contains(&wanted.to_string()), "{wanted} missing from {env:?}");
    }
    // The health endpoint's port is reserved beside the agent's own: no task gets it.
    let reserved = env.iter().find_map(|e| e.strip_prefix("ECS_RESERVED_PORTS=")).expect("ECS_RESERVED_PORTS is set");
    let reserved: Vec<u16> = serde_json::from_str(reserved).unwrap();
    for port in [22, 2375, 2376, 51678, 51679, b.nodewarden.health_port] {
        assert!(reserved.contains(&port), "{port} not reserved: {reserved:?}");
    }
    let root = b.nodewarden.root.path().display().to_string();
    let binds = host.binds.unwrap();
    for wanted in [
        format!("{}:/var/run/docker.sock", b.docker.socket.display()),
        format!("{root}/var/log/ecs:/log"),
        format!("{root}/var/lib/ecs/data:/data"),
        format!("{root}/etc/ecs:/etc/ecs"),
        format!("{root}/var/cache/ecs:/var/cache/ecs"),
        format!("{root}/var/lib/ecs:/var/lib/ecs"),
        "/sys/fs/cgroup:/sys/fs/cgroup".to_string(),
        "/proc:/host/proc:ro".to_string(),
    ] {
        assert!(binds.contains(&wanted), "{wanted} missing from {binds:?}");
    }
    assert!(host.restart_policy.and_then(|p| p.name).is_none_or(|n| n.to_string().is_empty() || n.to_string() == "no"));

    // Stopping nodewarden leaves the agent running; starting it again keeps the same container.
    let id = inspect.id.unwrap();
    assert_eq!(b.nodewarden.stop(), Some(0));
    assert!(running_since(&client).await.is_some(), "stopping nodewarden stopped the agent");
    b.nodewarden.start();
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.nodewarden.assert_running();
    assert_eq!(agent_container(&client).await.unwrap().id.unwrap(), id, "an unchanged spec replaced the container");
    assert!(b.nodewarden.log().contains("matches its spec; keeping it"), "{}", b.nodewarden.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absent_agent_image_is_loaded_from_its_tarball() {
    let mut b = bootstrap(&userdata("tarball", "")).await;
    let client = b.docker.client.clone();
    let tarball = b.nodewarden.root.path().join("var/cache/ecs/ecs-agent.tar");
    std::fs::create_dir_all(tarball.parent().unwrap()).unwrap();
    let mut export = client.export_image(AGENT_IMAGE);
    let mut bytes = Vec::new();
    while let Some(chunk) = export.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    std::fs::write(&tarball, bytes).unwrap();
    client.remove_image(AGENT_IMAGE, Some(RemoveImageOptionsBuilder::default().build()), None).await.unwrap();
    std::fs::write(
        &b.nodewarden.settings,
        // A host path, read under --root like every other (the real /var/cache has no tarball).
        "[drain]\nenabled = false\n[ecs]\nagent-tarball = \"/var/cache/ecs/ecs-agent.tar\"\n",
    )
    .unwrap();

    assert_eq!(setup(&b.nodewarden, &[]).status.code(), Some(0));
    b.nodewarden.start();
    wait_for("the agent to run", Duration::from_secs(30), &mut b.nodewarden, async || {
        running_since(&client).await.is_some()
    })
    .await;
    assert!(b.nodewarden.log().contains("loaded the agent image"), "{}", b.nodewarden.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn supervision_restarts_on_failure_stops_on_terminal_and_acts_on_health() {
    let mut b = bootstrap(&userdata("supervised", "")).await;
    assert_eq!(setup(&b.nodewarden, &[]).status.code(), Some(0));
    b.nodewarden.start();
    let client = b.docker.client.clone();
    wait_for("the agent to run", Duration::from_secs(30), &mut b.nodewarden, async || {
        running_since(&client).await.is_some()
    })
    .await;
    let control = b.nodewarden.root.path().join("etc/ecs");

    // Killed: restarted within the backoff (0.5 s, ±20%).
    let first = running_since(&client).await.unwrap();
    client
        .kill_container("ecs-agent", Some(KillContainerOptionsBuilder::default().signal("SIGKILL").build()))
        .await
        .unwrap();
    wait_for("a restart after a kill", Duration::from_secs(10), &mut b.nodewarden, async || {
        running_since(&client).await.is_some_and(|s| s != first)
    })
    .await;

    // No answer on /v1/metadata: restarted after 3 failed checks (every 500 ms).
    let before = running_since(&client).await.unwrap();
    std::fs::write(control.join("standin-unhealthy"), "").unwrap();
    wait_for("a restart of the unhealthy agent", Duration::from_secs(15), &mut b.nodewarden, async || {
        running_since(&client).await.is_some_and(|s| s != before)
    })
    .await;
    assert!(
        b.nodewarden.log().contains("the ECS agent is unhealthy; restarting its container"),
        "{}",
        b.nodewarden.log()
    );

    // Exit 5: terminal, not restarted.
    std::fs::write(control.join("standin-exit"), "5").unwrap();
    wait_for("the terminal exit", Duration::from_secs(10), &mut b.nodewarden, async || {
        running_since(&client).await.is_none()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(running_since(&client).await.is_none(), "a terminal agent was restarted");
    assert!(b.nodewarden.log().contains("exited 5 (terminal)"), "{}", b.nodewarden.log());
    b.nodewarden.assert_running();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_userdata_keeps_the_last_good_ecs_config_byte_for_byte() {
    let b = bootstrap(&userdata("good", "")).await;
    assert_eq!(setup(&b.nodewarden, &[]).status.code(), Some(0));
    let config_path = b.nodewarden.root.path().join("etc/ecs/ecs.config");
    let good = std::fs::read(&config_path).unwrap();

    for (bad, expected) in [
        ("[ecs]\ncluster = \"x\"\n[disk\n".to_string(), "userdata:3:"),
        (
            userdata("bad", "").replace(AGENT_IMAGE, "amazon/amazon-ecs-agent:latest"),
            "ecs.agent-image: expected a pinned image",
        ),
    ] {
        b.imds.set_user_data(bad.into_bytes());
        let output = setup(&b.nodewarden, &[]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        assert!(text(&output).contains(expected), "{expected} missing:\n{}", text(&output));
        assert_eq!(std::fs::read(&config_path).unwrap(), good, "ecs.config changed after bad userdata");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_rides_out_imds_faults_falls_back_to_saved_userdata_and_fails_clearly_on_a_first_boot() {
    let b = bootstrap(&userdata("faulty", "")).await;
    b.imds.set_faults(Faults { token_delay: Duration::from_millis(1500), fail_next: 3, ..Faults::default() });
    let output = setup(&b.nodewarden, &["--imds-deadline", "30s"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        std::fs::read_to_string(b.nodewarden.root.path().join("etc/ecs/ecs.config"))
            .unwrap()
            .contains("ECS_CLUSTER=faulty")
    );

    // A later boot with IMDS down: the userdata settings of the last good setup stand in.
    b.imds.set_faults(Faults { drop_next: u32::MAX, ..Faults::default() });
    let output = setup(&b.nodewarden, &["--imds-deadline", "3s"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("using the userdata settings saved by the last good setup"), "{}", text(&output));
    let config = std::fs::read_to_string(b.nodewarden.root.path().join("etc/ecs/ecs.config")).unwrap();
    assert!(config.contains("ECS_CLUSTER=faulty"), "{config}");

    // The first boot has nothing saved: it fails, naming IMDS.
    std::fs::remove_file(b.nodewarden.state_dir().join("userdata.toml")).unwrap();
    let started = Instant::now();
    let output = setup(&b.nodewarden, &["--imds-deadline", "3s"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(started.elapsed() < Duration::from_secs(20), "the deadline was not honoured");
    let message = text(&output);
    assert!(message.contains(&b.imds.endpoint()) && message.contains("/latest/user-data"), "{message}");
}

/// A network namespace this test made, removed on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        system::require_root("a network namespace");
        system::require_tool("ip", "iproute2");
        system::require_tool("iptables", "iptables");
        let name = format!("nwtest-{}-{}", std::process::id(), free_port());
        system::run(Command::new("ip").args(["netns", "add", &name]));
        NetNs(name)
    }

    fn exec(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.0, program]).args(args);
        command
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        system::try_run(Command::new("ip").args(["netns", "del", &self.0]));
        // `ip netns add` bind-mounts /run/netns the first time; undo it once no namespace is left.
        let left = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout.is_empty()).unwrap_or(false);
        if left {
            system::try_run(Command::new("umount").arg("/run/netns"));
        }
    }
}

#[test]
fn host_network_preparation_is_idempotent_and_undone_inside_a_namespace() {
    let ns = NetNs::new();
    let host_before = host_route_localnet();
    let root = tempfile::tempdir().unwrap();
    let settings = root.path().join("settings.toml");
    std::fs::write(&settings, "[ecs]\ncluster = \"netns\"\n[docker]\ndata-device = \"none\"\n").unwrap();
    let nodewarden = env!("CARGO_BIN_EXE_nodewarden");
    let root_arg = root.path().to_str().unwrap();
    let settings_arg = settings.to_str().unwrap();
    let setup = |extra: &[&str]| {
        let mut args = vec!["setup", "--root", root_arg, "--settings", settings_arg, "--no-userdata", "--host-network"];
        args.extend(extra);
        let output = ns.exec(nodewarden, &args).output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    };
    let rules = || {
        let nat = system::run(&mut ns.exec("iptables", &["-w", "-t", "nat", "-S"]));
        let filter = system::run(&mut ns.exec("iptables", &["-w", "-t", "filter", "-S"]));
        format!("{nat}{filter}").lines().filter(|l| l.contains("nodewarden")).map(str::to_string).collect::<Vec<_>>()
    };
    let route_localnet =
        || system::run(&mut ns.exec("cat", &["/proc/sys/net/ipv4/conf/all/route_localnet"])).trim().to_string();

    setup(&[]);
    let first = rules();
    assert_eq!(first.len(), 4, "{first:#?}");
    assert!(
        first.iter().any(|r| r.contains("169.254.170.2") && r.contains("DNAT") && r.contains("127.0.0.1:51679")),
        "{first:#?}"
    );
    assert!(first.iter().any(|r| r.contains("--dport 51678") && r.contains("DROP")), "{first:#?}");
    assert_eq!(route_localnet(), "1");
    setup(&[]);
    assert_eq!(rules(), first, "a second setup added rules again");

    setup(&["--undo"]);
    assert!(rules().is_empty(), "{:#?}", rules());
    assert_eq!(route_localnet(), "0");
    assert_eq!(host_route_localnet(), host_before, "the host's own namespace was touched");
}

fn host_route_localnet() -> String {
    std::fs::read_to_string(Path::new("/proc/sys/net/ipv4/conf/all/route_localnet")).unwrap_or_default()
}

#[test]
fn a_failing_host_network_rule_leaves_route_localnet_off_and_no_rule_behind() {
    let ns = NetNs::new();
    let root = tempfile::tempdir().unwrap();
    let settings = root.path().join("settings.toml");
    std::fs::write(&settings, "[ecs]\ncluster = \"netns\"\n[docker]\ndata-device = \"none\"\n").unwrap();
    // iptables that refuses NAT rules (as a kernel without the nat table would), bind-mounted
    // over the real one in a private mount namespace inside the test's network namespace.
    let real = std::fs::canonicalize("/usr/sbin/iptables").expect("iptables is installed");
    let copy = root.path().join("iptables-real");
    std::fs::copy(&real, &copy).unwrap();
    let fake = root.path().join("iptables-fake");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" -t nat -A \"*|*\" -t nat -I \"*) echo 'iptables: simulated: no nat table' >&2; exit 1;; esac\n\
             exec {} iptables \"$@\"\n",
            copy.display()
        ),
    )
    .unwrap();
    system::run(Command::new("chmod").arg("755").arg(&fake));
    let script = format!(
        "mount --bind {fake} {real} && exec {nodewarden} setup --root {root} --settings {settings} --no-userdata --host-network",
        fake = fake.display(),
        real = real.display(),
        nodewarden = env!("CARGO_BIN_EXE_nodewarden"),
        root = root.path().display(),
        settings = settings.display(),
    );
    let output = ns.exec("unshare", &["--mount", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("simulated: no nat table") && message.contains("were removed"), "{message}");
    let route_localnet = system::run(&mut ns.exec("cat", &["/proc/sys/net/ipv4/conf/all/route_localnet"]));
    assert_eq!(route_localnet.trim(), "0", "route_localnet was set although its guards are not in place");
    let nat = system::run(&mut ns.exec("iptables", &["-w", "-t", "nat", "-S"]));
    let filter = system::run(&mut ns.exec("iptables", &["-w", "-t", "filter", "-S"]));
    let left: Vec<&str> = nat.lines().chain(filter.lines()).filter(|l| l.contains("nodewarden")).collect();
    assert!(left.is_empty(), "rules left behind: {left:#?}");
    // The real binary outside the namespace is untouched.
    assert!(system::run(Command::new("iptables").arg("--version")).contains("iptables"));
}

/// A stand-in ecs-init: its unit file under the root, enabled (linked into a target's wants).
fn install_ecs_service(root: &Path, enabled: bool) {
    let unit = root.join("usr/lib/systemd/system/ecs.service");
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::write(&unit, "[Unit]\nDescription=stand-in ecs-init\n[Service]\nExecStart=/bin/true\n").unwrap();
    if enabled {
        let wants = root.join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink("/usr/lib/systemd/system/ecs.service", wants.join("ecs.service")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_nodewarden_running_the_agent_an_enabled_ecs_init_is_refused() {
    // Chosen by the operator: with ecs.service enabled and no choice, ecs-init would keep it.
    let b = bootstrap(&userdata("mine", "agent = \"nodewarden\"\n")).await;
    install_ecs_service(b.nodewarden.root.path(), true);
    let output = setup(&b.nodewarden, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("systemctl disable --now ecs.service"), "{}", text(&output));
    assert!(text(&output).contains("agent = \"ecs-init\""), "{}", text(&output));
    assert!(!b.nodewarden.root.path().join("run/nodewarden/docker-ready").exists(), "Docker may start anyway");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_ecs_init_running_the_agent_ecs_config_is_shared_and_the_agent_is_watched_never_touched() {
    let mut b = bootstrap(&userdata("shared", "agent = \"ecs-init\"\n")).await;
    let root = b.nodewarden.root.path().to_path_buf();
    let output = setup(&b.nodewarden, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("has no ecs.service"), "{}", text(&output));

    install_ecs_service(&root, true);
    // Another writer's keys, as userdata's `echo … >> /etc/ecs/ecs.config` habit leaves them.
    let config_path = root.join("etc/ecs/ecs.config");
    std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
    std::fs::write(&config_path, "ECS_CLUSTER=shared\nECS_LOGLEVEL=warn\nECS_RESERVED_PORTS=[9000]\n").unwrap();
    let output = setup(&b.nodewarden, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains("\nECS_LOGLEVEL=warn\n"), "another writer's key was dropped:\n{config}");
    assert!(config.contains("\nECS_CLUSTER=shared\n"), "{config}");
    assert!(!config.contains("ECS_AVAILABLE_LOGGING_DRIVERS"), "ecs-init adds its own defaults:\n{config}");
    let reserved = config.lines().find_map(|l| l.strip_prefix("ECS_RESERVED_PORTS=")).unwrap();
    let reserved: Vec<u16> = serde_json::from_str(reserved).unwrap();
    assert!(reserved.contains(&9000) && reserved.contains(&b.nodewarden.health_port), "{reserved:?}");
    let drop_in = std::fs::read_to_string(root.join("etc/systemd/system/nodewarden.service.d/20-agent-owner.conf"));
    assert!(drop_in.unwrap().contains("After=ecs.service"));
    verify_unit_with_drop_ins(&root);

    // The agent as ecs-init starts it; nodewarden watches it and never restarts it.
    let client = b.docker.client.clone();
    let id = start_ecs_init_agent(&client, "shared").await;
    b.nodewarden.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.nodewarden.status().await["agent"]["healthy"] != serde_json::Value::Bool(true) {
        b.nodewarden.assert_running();
        assert!(Instant::now() < deadline, "the agent was never seen healthy; log:\n{}", b.nodewarden.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(b.nodewarden.log().contains("ecs.service (ecs-init) runs the ECS agent"), "{}", b.nodewarden.log());
    let started = client.inspect_container(&id, None).await.unwrap().state.unwrap().started_at;

    // It stops (ecs-init's to restart): nodewarden says so and leaves it alone.
    let stop = bollard::query_parameters::StopContainerOptionsBuilder::default().t(1).build();
    client.stop_container(&id, Some(stop)).await.unwrap();
    b.nodewarden.wait_condition("AgentUnhealthy", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let state = client.inspect_container(&id, None).await.unwrap().state.unwrap();
    assert_eq!(state.running, Some(false), "nodewarden restarted ecs-init's agent");
    assert_eq!(state.started_at, started);
    assert_eq!(client.inspect_container("ecs-agent", None).await.unwrap().id.as_deref(), Some(id.as_str()));
}

/// The registry secret of `[ecs] engine-auth-data` is in the agent container's create body
/// and in every inspection of it; bollard logs both at debug. With NODEWARDEN_LOG=trace the
/// whole run (setup, creating the agent, a restart that inspects and keeps it) is searched
/// for the secret. The harness has no journal: the daemon's stderr is what the journal gets.
#[tokio::test(flavor = "multi_thread")]
async fn a_trace_level_run_never_logs_the_registry_secret() {
    const SECRET: &str = "registry-pass-6f1d2c";
    let auth = format!(
        "engine-auth-type = \"docker\"\nengine-auth-data = '{{\"https://registry.local\":{{\"username\":\"u\",\"password\":\"{SECRET}\"}}}}'\n"
    );
    let mut b = bootstrap(&userdata("secret-logs", &auth)).await;
    let trace = [("NODEWARDEN_LOG", "trace")];
    let output = b.nodewarden.command(&["setup"]).envs(trace).output().expect("running nodewarden setup");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let setup_log = text(&output);
    b.nodewarden.start_with(&trace);
    let client = b.docker.client.clone();
    wait_for("the agent to run", Duration::from_secs(30), &mut b.nodewarden, async || {
        running_since(&client).await.is_some()
    })
    .await;
    let env = agent_container(&client).await.unwrap().config.unwrap().env.unwrap();
    assert!(
        env.iter().any(|e| e.starts_with("ECS_ENGINE_AUTH_DATA=") && e.contains(SECRET)),
        "the secret must reach the agent for this test to mean anything: {:?}",
        env.iter().map(|e| e.split('=').next()).collect::<Vec<_>>()
    );
    assert_eq!(b.nodewarden.stop(), Some(0));
    b.nodewarden.start_with(&trace);
    b.nodewarden.wait_log(&["matches its spec; keeping it"], Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.nodewarden.stop(), Some(0));
    let log = b.nodewarden.log();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "NODEWARDEN_LOG=trace was not honoured:\n{log}");
    for (what, text) in [("setup's output", &setup_log), ("the daemon's stderr", &log)] {
        if let Some(at) = text.find(SECRET) {
            let line = text[..at].rsplit('\n').next().unwrap_or_default();
            panic!("{what} holds the registry secret, on a line starting: {:.200}", line);
        }
    }
}

/// The agent container as ecs-init's `start` makes it (enough for nodewarden's watch).
async fn start_ecs_init_agent(client: &Docker, cluster: &str) -> String {
    let config = bollard::models::ContainerCreateBody {
        image: Some(AGENT_IMAGE.to_string()),
        env: Some(vec![format!("ECS_CLUSTER={cluster}")]),
        host_config: Some(bollard::models::HostConfig { network_mode: Some("host".into()), ..Default::default() }),
        ..Default::default()
    };
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::default().name("ecs-agent").build();
    let id = client.create_container(Some(options), config).await.unwrap().id;
    client.start_container(&id, None).await.unwrap();
    id
}

/// The stock ECS-optimized AMI with the least userdata: ecs.service enabled, no TOML anywhere
/// (userdata is the classic script), the cluster only in ecs.config's ECS_CLUSTER, written by
/// that script after setup ran (cloud-init runs scripts late). Setup takes the ecs-init role
/// by itself and says so; the daemon, started after ecs.service, reads the cluster and is READY.
#[tokio::test(flavor = "multi_thread")]
async fn on_the_stock_ecs_ami_ecs_init_keeps_the_agent_and_the_cluster_comes_from_ecs_config() {
    let docker = TestDocker::start().await;
    let port = free_port();
    images::make_standin_agent(&docker.client, AGENT_IMAGE, port).await;
    let imds = ImdsServer::start().await;
    imds.set_user_data(b"#!/bin/bash\necho ECS_CLUSTER=classic >> /etc/ecs/ecs.config\n".to_vec());
    let env = vec![
        ("DOCKER_HOST".to_string(), docker.host()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(), imds.endpoint()),
        ("NODEWARDEN_AGENT_INTROSPECTION".to_string(), format!("http://127.0.0.1:{port}")),
        ("AWS_REGION".to_string(), "us-east-1".to_string()),
    ];
    // Test scaffolding only (no AWS, no volume, a free health port): nothing about the agent or cluster.
    let mut n = Nodewarden::new("[docker]\ndata-device = \"none\"\n[drain]\nenabled = false\n", env);
    let root = n.root.path().to_path_buf();
    install_ecs_service(&root, true);

    let output = setup(&n, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let said = text(&output);
    assert!(said.contains("ECS agent: run by ecs.service (ecs-init), since it is enabled on this host"), "{said}");
    assert!(said.contains("[ecs] cluster: not given yet"), "{said}");
    let config_path = root.join("etc/ecs/ecs.config");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(!config.contains("ECS_CLUSTER="), "setup named a cluster nobody gave:\n{config}");
    assert!(config.contains("ECS_RESERVED_PORTS="), "{config}");
    assert!(root.join("run/nodewarden/docker-ready").exists(), "Docker may not start");

    // Userdata's script, as cloud-final runs it after setup.
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(&config_path).unwrap();
    file.write_all(b"ECS_CLUSTER=classic\n").unwrap();
    drop(file);
    let check = n.command(&["check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let merged = String::from_utf8_lossy(&check.stdout);
    let line = |key: &str| merged.lines().find(|l| l.starts_with(&format!("{key} = "))).unwrap_or("").to_string();
    assert!(line("agent").starts_with("agent = \"ecs-init\"  # host: ecs.service (ecs-init) is enabled"), "{merged}");
    assert!(line("cluster").starts_with("cluster = \"classic\"  # ecs.config "), "{merged}");
    let at = std::fs::read_to_string(&config_path).unwrap().lines().count();
    assert!(line("cluster").ends_with(&format!("etc/ecs/ecs.config:{at}:13")), "{merged}");

    // ecs-init starts the agent with that ecs.config; nodewarden comes up READY beside it.
    let client = docker.client.clone();
    start_ecs_init_agent(&client, "classic").await;
    n.start();
    n.wait_ready(Duration::from_secs(30)).await;
    assert!(n.log().contains("ecs.service (ecs-init) runs the ECS agent"), "{}", n.log());
    n.stop();

    // The next boot's setup: the line stays another writer's, as it was; nothing is said twice.
    let output = setup(&n, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let said = text(&output);
    assert!(!said.contains("not given yet") && !said.contains("ecs.config: ECS_CLUSTER"), "{said}");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert_eq!(config.matches("ECS_CLUSTER=classic\n").count(), 1, "{config}");
    let ours = config.lines().find(|l| l.starts_with("# nodewarden's keys:")).unwrap();
    assert!(!ours.contains("ECS_CLUSTER"), "nodewarden claimed the operator's line: {config}");
}
