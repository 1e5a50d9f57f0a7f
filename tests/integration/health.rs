//! The health endpoint, `nodewarden status` and systemd notifications of a running
//! `nodewarden run` against the harness's Docker, moto and IMDS.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use nodewarden::node::status::StatusDocument;

use crate::harness::daemon::Nodewarden;
use crate::harness::docker::TestDocker;
use crate::harness::imds::ImdsServer;
use crate::harness::moto::Moto;
use crate::harness::system;

struct Node {
    _docker: TestDocker,
    _moto: Moto,
    _imds: ImdsServer,
    nodewarden: Nodewarden,
}

async fn node(extra_settings: &str) -> Node {
    let docker = TestDocker::start().await;
    let moto = Moto::start().await;
    let imds = ImdsServer::start().await;
    let (instance_id, _) = moto.register_cluster("web", 1).await.remove(0);
    imds.state().instance_id = instance_id;
    let mut env = moto.env_vars();
    env.push(("DOCKER_HOST".into(), docker.host()));
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.endpoint()));
    env.push(("NODEWARDEN_AGENT_INTROSPECTION".into(), "http://127.0.0.1:9".into()));
    let settings = format!(
        "[ecs]\ncluster = \"web\"\nagent-health-grace = \"0s\"\n[docker]\ndata-device = \"none\"\n{extra_settings}"
    );
    Node { _docker: docker, _moto: moto, _imds: imds, nodewarden: Nodewarden::new(&settings, env) }
}

async fn wait_get(n: &mut Nodewarden, path: &str, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((code, body)) = n.get(path).await
            && code == want
        {
            return body;
        }
        n.assert_running();
        assert!(Instant::now() < deadline, "{path} never answered {want}; log:\n{}", n.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Parses the Prometheus text exposition: `name{labels} value` → value.
/// Metric families and their types, as `prometheus_client.openmetrics.parser` reads `text`
/// (it refuses anything that is not valid OpenMetrics).
fn openmetrics_families(text: &str) -> BTreeMap<String, String> {
    use std::io::Write;
    let moto = std::env::var("NODEWARDEN_MOTO_SERVER").expect("NODEWARDEN_MOTO_SERVER (scripts/install-test-deps)");
    let python = Path::new(&moto).with_file_name("python");
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
                  [print(f.name, f.type) for f in p(sys.stdin.read())]\n";
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {} (prometheus-client, scripts/install-test-deps): {e}", python.display()));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "not valid OpenMetrics: {}\n{text}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("malformed sample line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("malformed value in {line:?}"));
        assert!(!metrics.contains_key(name), "duplicate series {name}");
        metrics.insert(name.to_string(), value);
    }
    assert!(text.trim_end().ends_with("# EOF"), "an OpenMetrics exposition ends with # EOF");
    metrics
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_answers_and_status_reads_well() {
    let mut node = node("").await;
    let n = &mut node.nodewarden;
    n.start();
    assert_eq!(wait_get(n, "/healthz", 200).await, "ok\n");
    assert_eq!(n.get("/readyz").await.map(|(c, _)| c), Some(503), "not ready before setup ran");
    n.setup();
    wait_get(n, "/readyz", 200).await;

    // Give the drain loop a moment to ask ECS for this instance's status.
    let deadline = Instant::now() + Duration::from_secs(20);
    let doc: serde_json::Value = loop {
        let doc: serde_json::Value = serde_json::from_str(&wait_get(n, "/status", 200).await).unwrap();
        if doc["drain"]["ecs_status"] == "ACTIVE" || Instant::now() > deadline {
            break doc;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((doc["alive"].as_bool(), doc["ready"].as_bool()), (Some(true), Some(true)));
    let kinds: Vec<&str> = doc["conditions"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "DiskPressure",
            "InodePressure",
            "DockerUnavailable",
            "AgentUnhealthy",
            "AgentTerminal",
            "Draining",
            "ConfigInvalid",
            "DockerOnRootDisk",
        ]
    );
    for condition in doc["conditions"].as_array().unwrap() {
        assert!(condition["status"] == "True" || condition["status"] == "False", "{condition}");
        assert!(condition["reason"].as_str().is_some_and(|r| !r.is_empty()), "{condition}");
        let since = condition["since"].as_str().unwrap_or_default();
        assert!(humantime::parse_rfc3339(since).is_ok(), "RFC 3339 transition time: {condition}");
    }
    let by_kind =
        |kind: &str| doc["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap().clone();
    assert_eq!(by_kind("DiskPressure")["status"], "False");
    assert_eq!(by_kind("DockerUnavailable")["status"], "False");
    assert_eq!(by_kind("AgentUnhealthy")["status"], "True", "no agent image here: {}", by_kind("AgentUnhealthy"));
    let disk = &doc["disk"];
    assert!(disk["total_bytes"].as_u64().unwrap() > 0 && disk["used_bytes"].as_u64().is_some());
    assert!(disk["inodes_total"].as_u64().unwrap() > 0 && disk["used_percent"].as_f64().is_some());
    assert_eq!(doc["drain"]["ecs_status"], "ACTIVE", "{doc:#}");
    assert_eq!(doc["drain"]["draining"], false);
    assert!(doc["drain"]["identity"]["container_instance_arn"].as_str().unwrap().contains("container-instance/web/"));
    assert!(
        doc["agent"]["restarts"].as_u64().is_some()
            && doc["agent"]["image"].as_str().unwrap().contains("amazon-ecs-agent")
    );
    assert!(doc["gc"]["runs"].as_u64().is_some() && doc["gc"]["freed_bytes_total"].as_u64().is_some());
    assert_eq!(doc["schema_version"], 3);
    assert!(humantime::parse_rfc3339(doc["generated_at"].as_str().unwrap()).is_ok(), "{}", doc["generated_at"]);
    assert!(doc.get("host").is_none(), "host figures belong to node_exporter");

    // The documented example has exactly the live document's shape.
    let example: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate::harness::fixture("../../docs/status-example.json")).unwrap(),
    )
    .unwrap();
    for section in ["", "disk", "drain", "agent", "gc", "pressure", "offender"] {
        let keys = |v: &serde_json::Value| {
            let v = if section.is_empty() { v } else { &v[section] };
            v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
        };
        assert_eq!(keys(&example), keys(&doc), "docs/status-example.json differs from /status in {section:?}");
    }
    // One schema: the live document and the example read as the type `nodewarden status`
    // uses, and the live one writes back unchanged.
    let typed: StatusDocument = serde_json::from_value(doc.clone()).expect("/status reads as a StatusDocument");
    assert_eq!(serde_json::to_value(&typed).unwrap(), doc, "/status does not round-trip through StatusDocument");
    let example: StatusDocument = serde_json::from_value(example).expect("the example reads as a StatusDocument");
    assert!(nodewarden::commands::status_summary(&example).contains("DRAINING by disk-pressure"));

    let text = wait_get(n, "/metrics", 200).await;
    let metrics = parse_metrics(&text);
    let total = metrics["nodewarden_disk_total_bytes"];
    assert_eq!(total, disk["total_bytes"].as_f64().unwrap());
    assert!((0.0..=1.0).contains(&metrics["nodewarden_disk_used_ratio"]));
    assert_eq!(metrics["nodewarden_draining"], 0.0);
    assert_eq!(metrics["nodewarden_condition{condition=\"DiskPressure\",status=\"True\"}"], 0.0);
    assert_eq!(metrics["nodewarden_condition{condition=\"DiskPressure\",status=\"False\"}"], 1.0);
    assert_eq!(metrics["nodewarden_condition{condition=\"AgentUnhealthy\",status=\"True\"}"], 1.0);
    assert_eq!(metrics["nodewarden_build_info{version=\"0.1.0\"}"], 1.0);
    assert_eq!(metrics["nodewarden_drains_total{reason=\"disk-pressure\"}"], 0.0);
    assert!(!text.contains("host_cpu"), "host figures belong to node_exporter");
    // Read by the reference OpenMetrics parser (Prometheus' own client library), every name an
    // alert rule needs is there, with its type.
    let families = openmetrics_families(&text);
    for (name, kind) in [
        ("nodewarden_build_info", "gauge"),
        ("nodewarden_ready", "gauge"),
        ("nodewarden_condition", "gauge"),
        ("nodewarden_disk_used_ratio", "gauge"),
        ("nodewarden_gc_runs", "counter"),
        ("nodewarden_gc_freed_bytes", "counter"),
        ("nodewarden_gc_images_removed", "counter"),
        ("nodewarden_gc_containers_removed", "counter"),
        ("nodewarden_gc_duration_seconds", "histogram"),
        ("nodewarden_drains", "counter"),
        ("nodewarden_drain_withheld", "gauge"),
        ("nodewarden_draining", "gauge"),
        ("nodewarden_agent_restarts", "counter"),
    ] {
        assert_eq!(families.get(name).map(String::as_str), Some(kind), "{name} in {families:?}");
    }
    // Every metric the shipped alert rules and dashboard query is one nodewarden exports (the
    // fill rate and the offender's write rate appear once known, later than this test looks).
    let monitoring = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/monitoring");
    let queried =
        ["alerts.yml", "dashboard.json"].map(|f| std::fs::read_to_string(monitoring.join(f)).unwrap()).join("\n");
    let later = ["nodewarden_disk_fill_rate_bytes_per_second", "nodewarden_offender_write_rate_bytes_per_second"];
    let names =
        queried.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("nodewarden_"));
    for name in names.collect::<std::collections::BTreeSet<_>>() {
        let family = ["_bucket", "_sum", "_count", "_total"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(families.contains_key(family) || later.contains(&name), "{name} is queried but not exported");
    }

    let status = n.command(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let conditions_at = text.find("Conditions:").unwrap();
    assert!(conditions_at < text.find("Docker disk").unwrap(), "conditions first:\n{text}");
    assert!(text.contains("! AgentUnhealthy") && text.contains("Drain        ACTIVE"), "{text}");
    let json = n.command(&["status", "--json"]).output().unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(raw["conditions"].as_array().unwrap().len(), nodewarden::node::conditions::TYPES.len());

    n.stop();
    let stopped = n.command(&["status"]).output().unwrap();
    assert_eq!(stopped.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("nodewarden is not running"),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_status_watchdog_and_stopping_and_a_stuck_loop_stops_the_pings() {
    let mut node = node("[disk]\ncheck-interval = \"200ms\"\n").await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let pause = dir.path().join("pause");
    let n = &mut node.nodewarden;
    n.start_with(&[
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "2000000"),
        ("NODEWARDEN_DEBUG_PAUSE_FILE", pause.to_str().unwrap()),
    ]);
    let mut heard: Vec<String> = Vec::new();
    let listen = |socket: &UnixDatagram, for_how_long: Duration| {
        let mut got = Vec::new();
        let until = Instant::now() + for_how_long;
        let mut buffer = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = socket.recv(&mut buffer) {
                got.extend(String::from_utf8_lossy(&buffer[..n]).lines().map(str::to_string));
            }
        }
        got
    };
    heard.extend(listen(&socket, Duration::from_secs(4)));
    assert!(heard.iter().any(|m| m == "READY=1"), "{heard:?}\n{}", n.log());
    assert!(heard.iter().any(|m| m.starts_with("STATUS=docker ") && m.contains("% used, agent ")), "{heard:?}");
    assert!(heard.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3, "{heard:?}");
    let ready_at = heard.iter().position(|m| m == "READY=1").unwrap();
    assert!(heard[..ready_at].iter().any(|m| m.starts_with("STATUS=")), "READY comes after the first check: {heard:?}");

    // The main loop stalls: the pings stop, and /healthz says so.
    std::fs::write(&pause, b"").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let during = listen(&socket, Duration::from_secs(3));
    assert!(!during.iter().any(|m| m == "WATCHDOG=1"), "pings went on from a stalled loop: {during:?}");
    assert_eq!(n.get("/healthz").await.map(|(c, _)| c), Some(503));
    std::fs::remove_file(&pause).unwrap();
    let after = listen(&socket, Duration::from_secs(2));
    assert!(after.iter().any(|m| m == "WATCHDOG=1"), "pings did not resume: {after:?}");

    system::signal(n.pid().unwrap(), "TERM");
    let last = listen(&socket, Duration::from_secs(3));
    assert!(last.iter().any(|m| m == "STOPPING=1"), "{last:?}");
}

/// A notify socket nobody reads (a wedged manager) fills after a few datagrams; the daemon
/// must not block on it: the endpoint answers, the loop ticks, a reload is taken.
#[tokio::test(flavor = "multi_thread")]
async fn a_notify_socket_nobody_reads_never_stalls_the_daemon() {
    let mut node = node("[disk]\ncheck-interval = \"200ms\"\n").await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let _never_read = UnixDatagram::bind(&socket_path).unwrap();
    let n = &mut node.nodewarden;
    // A ping every 50 ms: the socket's queue is full within a second.
    n.start_with(&[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "150000")]);
    wait_get(n, "/healthz", 200).await;
    let until = Instant::now() + Duration::from_secs(6);
    let mut hups = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let code = n.get("/healthz").await.map(|(code, _)| code);
        assert_eq!(code, Some(200), "the daemon stalled on a full notify socket; log:\n{}", n.log());
        if hups < 3 {
            system::signal(n.pid().unwrap(), "HUP");
            hups += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(n.log().matches("settings reloaded").count(), 3, "reloads stalled; log:\n{}", n.log());
}

/// A check-interval longer than WatchdogSec (60 s against the unit's 30 s, here 5 s against
/// 3 s) must not get the daemon killed: the watchdog is fed from its own timer.
#[tokio::test(flavor = "multi_thread")]
async fn the_watchdog_is_fed_between_checks_slower_than_its_timeout() {
    let mut node = node("[disk]\ncheck-interval = \"5s\"\n").await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let n = &mut node.nodewarden;
    n.start_with(&[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "3000000")]);
    // Past the first check, then a window shorter than one check interval.
    let mut buffer = [0u8; 4096];
    let mut ready = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready && Instant::now() < deadline {
        if let Ok(len) = socket.recv(&mut buffer) {
            ready |= String::from_utf8_lossy(&buffer[..len]).lines().any(|m| m == "READY=1");
        }
    }
    assert!(ready, "no READY:\n{}", n.log());
    let mut pings = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(4500) {
        if let Ok(len) = socket.recv(&mut buffer)
            && String::from_utf8_lossy(&buffer[..len]).lines().any(|m| m == "WATCHDOG=1")
        {
            pings.push(started.elapsed());
        }
    }
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(pings.len() >= 3, "pings at {pings:?}: the 3 s watchdog would have fired");
    assert!(gaps.iter().all(|g| *g < Duration::from_secs(3)), "gaps {gaps:?}");
    n.assert_running();
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_keeps_the_settings_in_force_when_the_new_ones_are_invalid() {
    let mut node = node("").await;
    let n = &mut node.nodewarden;
    n.start();
    wait_get(n, "/healthz", 200).await;
    let good = std::fs::read_to_string(&n.settings).unwrap();
    // Invalid, and holding secrets where ecs-init users put them: no channel may show them.
    const SECRETS: [&str; 2] = ["hunter2-registry-password", "tok-9f8e7d6c5b4a"];
    let bad = format!(
        "{good}\n[gc]\nmin-image-age = \"soon\"\n[ecs.config]\n\
         ECS_ENGINE_AUTH_DATA = \"{{\\\"https://index.docker.io/v1/\\\":{{\\\"auth\\\":\\\"{}\\\"}}}}\"\n\
         ECS_PRIVATE_REGISTRY_TOKEN = \"{}\"\n",
        SECRETS[0], SECRETS[1]
    );
    std::fs::write(&n.settings, &bad).unwrap();
    system::signal(n.pid().unwrap(), "HUP");
    let config_invalid = async |n: &mut Nodewarden| {
        let doc: serde_json::Value = serde_json::from_str(&wait_get(n, "/status", 200).await).unwrap();
        doc["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "ConfigInvalid").unwrap().clone()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut condition = config_invalid(n).await;
    while condition["status"] != "True" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        condition = config_invalid(n).await;
    }
    assert_eq!(condition["status"], "True", "{condition}");
    assert!(condition["message"].as_str().unwrap().contains("gc.min-image-age"), "{condition}");
    assert!(condition["message"].as_str().unwrap().contains("ECS_ENGINE_AUTH_DATA"), "{condition}");
    n.assert_running();
    let check = n.command(&["check"]).output().unwrap();
    let channels = [
        ("/status", wait_get(n, "/status", 200).await),
        ("/metrics", wait_get(n, "/metrics", 200).await),
        ("the journal (stderr)", n.log()),
        ("check's stdout", String::from_utf8_lossy(&check.stdout).into_owned()),
        ("check's stderr", String::from_utf8_lossy(&check.stderr).into_owned()),
    ];
    for (channel, text) in &channels {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{channel} shows a secret:\n{text}");
        }
    }
    assert!(channels[4].1.contains("ecs.config.ECS_PRIVATE_REGISTRY_TOKEN"), "{}", channels[4].1);

    std::fs::write(&n.settings, &good).unwrap();
    system::signal(n.pid().unwrap(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while config_invalid(n).await["status"] != "False" {
        assert!(Instant::now() < deadline, "valid settings were not taken back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn the_endpoint_refuses_non_loopback_addresses_unless_allowed() {
    let n = Nodewarden::new("[ecs]\ncluster = \"c\"\n[health]\nlisten = \"0.0.0.0:51690\"\n", vec![]);
    let output = n.command(&["run"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("health.listen: expected a loopback address") && stderr.contains("allow-remote"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_docker_the_daemon_is_ready_says_why_and_takes_docker_when_it_answers() {
    // Booted with Docker down (its disk refused, say): systemd must hear READY rather than
    // time the start out, operators must read why, and Docker is taken up once it answers.
    let moto = Moto::start().await;
    let imds = ImdsServer::start().await;
    let (instance_id, _) = moto.register_cluster("web", 1).await.remove(0);
    imds.state().instance_id = instance_id;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let mut env = moto.env_vars();
    env.push(("DOCKER_HOST".into(), format!("unix://{}", socket.display())));
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.endpoint()));
    env.push(("NODEWARDEN_AGENT_INTROSPECTION".into(), "http://127.0.0.1:9".into()));
    let settings = "[ecs]\ncluster = \"web\"\n[docker]\ndata-device = \"none\"\n";
    let mut n = Nodewarden::new(settings, env);
    n.setup();
    let notify = UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
    notify.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    n.start_with(&[("NOTIFY_SOCKET", dir.path().join("notify.sock").to_str().unwrap())]);

    let mut heard: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = [0u8; 4096];
    while !heard.iter().any(|m| m == "READY=1") {
        assert!(Instant::now() < deadline, "no READY without Docker: {heard:?}\n{}", n.log());
        if let Ok(count) = notify.recv(&mut buffer) {
            heard.extend(String::from_utf8_lossy(&buffer[..count]).lines().map(str::to_string));
        }
    }
    assert_eq!(wait_get(&mut n, "/healthz", 200).await, "ok\n");
    let readyz = wait_get(&mut n, "/readyz", 503).await;
    assert!(readyz.contains("waiting for Docker") && readyz.contains("docker.sock"), "{readyz}");
    let doc: serde_json::Value = serde_json::from_str(&wait_get(&mut n, "/status", 200).await).unwrap();
    let docker = doc["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "DockerUnavailable").unwrap();
    assert_eq!(docker["status"], "True", "{docker}");
    let status = n.command(&["status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("DockerUnavailable"));
    // As a monitoring plugin: critical, naming the condition.
    let plugin = n.command(&["status", "--check"]).output().unwrap();
    let line = String::from_utf8_lossy(&plugin.stdout).to_string();
    assert_eq!(plugin.status.code(), Some(2), "{line}");
    assert!(line.starts_with("NODEWARDEN CRITICAL - ") && line.contains("DockerUnavailable"), "{line}");
    assert!(n.log().contains("waiting for Docker"), "the journal hears nothing:\n{}", n.log());

    // Docker comes up where DOCKER_HOST points: the daemon takes it up and becomes ready.
    let docker = TestDocker::start().await;
    std::os::unix::fs::symlink(&docker.socket, &socket).unwrap();
    // Within the daemon's 5 s retry, with room for a machine busy with other tests' dockerds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let readyz = n.get("/readyz").await;
        if readyz.as_ref().is_some_and(|(code, _)| *code == 200) {
            break;
        }
        n.assert_running();
        assert!(
            Instant::now() < deadline,
            "not ready 60 s after Docker came up: /readyz {readyz:?}, /status {:?}\n{}",
            n.get("/status").await,
            n.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(n.log().contains("Docker answers"), "{}", n.log());
    let plugin = n.command(&["status", "--check"]).output().unwrap();
    assert_ne!(plugin.status.code(), Some(2), "{}", String::from_utf8_lossy(&plugin.stdout));
    n.stop();
    // Nothing answers: unknown, not OK.
    let plugin = n.command(&["status", "--check"]).output().unwrap();
    assert_eq!(plugin.status.code(), Some(3), "{}", String::from_utf8_lossy(&plugin.stdout));
    assert!(String::from_utf8_lossy(&plugin.stdout).starts_with("NODEWARDEN UNKNOWN - nodewarden is not running"));
}

/// The soft "Max open files" limit of process `pid`, from /proc.
fn open_files_limit(pid: &str) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("reading /proc/PID/limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("a Max open files line");
    line.split_whitespace().nth(3).and_then(|n| n.parse().ok()).expect("a number")
}

/// The `LimitNOFILE=` the packaged unit gives the daemon.
fn unit_open_files_limit() -> u64 {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/nodewarden.service")).unwrap();
    let value = unit.lines().find_map(|l| l.strip_prefix("LimitNOFILE=")).expect("nodewarden.service sets LimitNOFILE");
    value.trim().parse().expect("LimitNOFILE is a number")
}

/// A task on the host network holds 1,000 idle connections to the health port. The daemon runs
/// with the descriptor limit its unit sets: `/healthz` still answers, and a GC run (Docker calls,
/// each a new descriptor) completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_idle_connections_neither_silence_healthz_nor_stall_a_gc_run() {
    const IDLE: usize = 1000;
    let prlimit = system::require_tool("prlimit", "util-linux");
    // This test process holds the connections itself: it needs the descriptors.
    let own = std::process::id().to_string();
    if open_files_limit(&own) < IDLE as u64 + 256 {
        system::run(std::process::Command::new(&prlimit).args(["--pid", &own, "--nofile=4096:4096"]));
    }
    assert!(open_files_limit(&own) >= IDLE as u64 + 256, "this test needs 1,256 open files: ulimit -n 4096");
    let docker = TestDocker::start().await;
    let client = docker.client.clone();
    for name in ["idle/g1:1", "idle/g2:1"] {
        crate::harness::images::make_image(&client, name, 20 << 20).await;
    }
    let settings = "[ecs]\ncluster = \"c\"\n[docker]\ndata-device = \"none\"\n[drain]\nenabled = false\n\
                    [disk]\ngc-start = \"60%\"\ngc-stop = \"50%\"\ndrain-at = \"95%\"\nrecover-below = \"40%\"\n\
                    [gc]\nmin-image-age = \"0s\"\n";
    let env = vec![
        ("DOCKER_HOST".to_string(), docker.host()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_string(), "http://127.0.0.1:9".to_string()),
    ];
    let mut n = Nodewarden::new(settings, env);
    n.start();
    n.wait_for_state_file("image-usage.json", Duration::from_secs(30)).await;
    wait_get(&mut n, "/healthz", 200).await;
    // Used by a container, so GC may take them (ECS is not asked here).
    for name in ["idle/g1:1", "idle/g2:1"] {
        let id = crate::harness::images::run_to_completion(&client, name, &["true"]).await;
        client.remove_container(&id, None::<bollard::query_parameters::RemoveContainerOptions>).await.unwrap();
    }
    let pid = n.pid().expect("running").to_string();
    let limit = unit_open_files_limit();
    system::run(std::process::Command::new(&prlimit).args(["--pid", &pid, &format!("--nofile={limit}:{limit}")]));
    assert_eq!(open_files_limit(&pid), limit);

    let address = format!("127.0.0.1:{}", n.health_port);
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(tokio::net::TcpStream::connect(&address).await.expect("connecting to the health port"));
    }
    let started = Instant::now();
    let answered = n.get("/healthz").await;
    assert_eq!(
        answered.as_ref().map(|(code, _)| *code),
        Some(200),
        "/healthz with {IDLE} idle connections; log:\n{}",
        n.log()
    );
    let descriptors = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    eprintln!(
        "/healthz answered in {:?} with {IDLE} idle connections held; the daemon has {descriptors} descriptors open",
        started.elapsed()
    );

    let sample = nodewarden::disk::probe(&docker.data_root).unwrap();
    let wanted = (sample.total_bytes as f64 * 0.66) as u64;
    crate::harness::daemon::fill(&docker.data_root.join("filler"), wanted.saturating_sub(sample.used_bytes()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = n.log();
        if log.contains("gc done") || log.contains("gc could not reach gc-stop") {
            assert!(log.contains("gc step action=remove image idle/"), "GC removed no image:\n{log}");
            break;
        }
        assert!(!log.contains("gc failed"), "GC failed under the flood:\n{log}");
        n.assert_running();
        assert!(Instant::now() < deadline, "no GC run completed with {IDLE} idle connections held; log:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answered = n.get("/healthz").await;
    assert_eq!(answered.map(|(code, _)| code), Some(200), "/healthz after the GC run; log:\n{}", n.log());
    assert!(!n.log().contains("Too many open files"), "the daemon ran out of descriptors:\n{}", n.log());
    drop(idle);
}
