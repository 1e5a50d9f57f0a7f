//! Units, packages and the example userdata: the units pass `systemd-analyze verify`, the
//! .deb and .rpm carry what they should, the .deb installs with dpkg -i (enabling, not
//! starting), and the cloud-init example is valid for both cloud-init and nodewarden.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::system::{self, require_root, require_tool, run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Builds both packages from the debug binary (a release build takes too long for a test),
/// once for all the tests here.
fn build_packages() -> (PathBuf, PathBuf) {
    static BUILT: std::sync::Mutex<Option<(PathBuf, PathBuf)>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    built.get_or_insert_with(build_packages_now).clone()
}

fn build_packages_now() -> (PathBuf, PathBuf) {
    require_tool("cargo-deb", "cargo-deb (cargo install cargo-deb; scripts/install-test-deps does)");
    require_tool(
        "cargo-generate-rpm",
        "cargo-generate-rpm (cargo install cargo-generate-rpm; scripts/install-test-deps does)",
    );
    let output = Command::new(repo().join("packaging/build")).arg("--debug").output().unwrap();
    assert!(output.status.success(), "packaging/build failed:\n{}", text(&output));
    let dir = repo().join("target/packages-debug");
    // Each package has its checksum beside it, and it verifies.
    for package in ["deb", "rpm"] {
        let check = Command::new("sh")
            .arg("-c")
            .arg(format!("sha256sum -c *.{package}.sha256"))
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(check.status.success(), "the .{package} checksum: {}", text(&check));
    }
    let find = |ext: &str| {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == ext))
            .unwrap_or_else(|| panic!("no .{ext} in {}", dir.display()))
    };
    (find("deb"), find("rpm"))
}

const SHIPPED: &[&str] = &[
    "usr/bin/nodewarden",
    "nodewarden-setup.service",
    "nodewarden.service",
    "etc/nodewarden/settings.toml",
    "usr/share/doc/nodewarden/README.md",
    "usr/share/doc/nodewarden/examples/userdata.mime",
    "systemd/system/docker.service.d/nodewarden.conf",
    "systemd/system-preset/80-nodewarden.preset",
    "usr/share/man/man1/nodewarden.1",
    "usr/share/man/man1/nodewarden-setup.1",
    "usr/share/man/man1/nodewarden-status.1",
    "usr/share/bash-completion/completions/nodewarden",
    "/_nodewarden",
    "usr/share/fish/vendor_completions.d/nodewarden.fish",
    "usr/share/doc/nodewarden/monitoring/alerts.yml",
    "usr/share/doc/nodewarden/monitoring/dashboard.json",
];

#[test]
fn packages_carry_the_binary_units_settings_and_docs_and_the_deb_installs() {
    require_root("dpkg -i");
    let (deb, rpm) = build_packages();
    let deb_files = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    require_tool("rpm", "rpm");
    let rpm_files = run(Command::new("rpm").args(["-qlp"]).arg(&rpm));
    for file in SHIPPED {
        assert!(deb_files.contains(file), ".deb lacks {file}:\n{deb_files}");
        assert!(rpm_files.contains(file), ".rpm lacks {file}:\n{rpm_files}");
    }
    let conffiles = run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg("Depends"));
    assert!(conffiles.contains("docker.io | docker-ce"), "{conffiles}");

    let install = Command::new("dpkg").arg("-i").arg(&deb).env("DEBIAN_FRONTEND", "noninteractive").output().unwrap();
    let cleanup = Purge;
    assert!(install.status.success(), "dpkg -i failed:\n{}", text(&install));
    assert!(Path::new("/usr/bin/nodewarden").exists());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata("/etc/nodewarden/settings.toml").unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "settings.toml may hold registry credentials: {mode:o}");
        let listing = run(Command::new("rpm").args(["-qlvp"]).arg(&rpm));
        let line = listing.lines().find(|l| l.ends_with("/etc/nodewarden/settings.toml")).unwrap_or_default();
        assert!(line.starts_with("-rw-------"), "{listing}");
    }
    for unit in ["nodewarden-setup.service", "nodewarden.service"] {
        let enabled = Path::new("/etc/systemd/system/multi-user.target.wants").join(unit);
        assert!(enabled.exists(), "{unit} was not enabled");
    }
    // Enabled, never started by the install on a running host: Docker must not start before
    // setup ran. Only while the system boots (userdata's bootcmd) are the units queued.
    let scripts = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(scripts.path()));
    let postinst = std::fs::read_to_string(scripts.path().join("postinst")).unwrap();
    assert!(postinst.contains("deb-systemd-helper") && postinst.contains("nodewarden.service"), "{postinst}");
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");
    let booting = postinst.find("initializing|starting)").expect("the booting branch");
    let branch_end = booting + postinst[booting..].find(";;").expect("the branch ends");
    let starts: Vec<usize> = postinst.match_indices("systemctl start").map(|(i, _)| i).collect();
    assert!(!starts.is_empty() && starts.iter().all(|i| (booting..branch_end).contains(i)), "{postinst}");
    assert!(postinst[booting..branch_end].contains("--no-block"), "{postinst}");
    // Docker's start asserts setup's marker of this boot, even for a job queued before install.
    let drop_in = std::fs::read_to_string("/lib/systemd/system/docker.service.d/nodewarden.conf").unwrap();
    assert!(drop_in.contains("AssertPathExists=/run/nodewarden/docker-ready"), "{drop_in}");
    // Wanting setup, not requiring it: a failed or stopped setup never stops Docker; the marker decides.
    let requires = drop_in.lines().any(|l| l.starts_with("Requires="));
    assert!(drop_in.contains("\nWants=nodewarden-setup.service") && !requires, "{drop_in}");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "/lib/systemd/system/nodewarden-setup.service", "/lib/systemd/system/nodewarden.service"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "systemd-analyze verify:\n{}", text(&verify));
    let version = run(Command::new("/usr/bin/nodewarden").arg("--version"));
    assert!(version.starts_with("nodewarden "), "{version}");
    drop(cleanup);
}

/// Removes the package even when an assertion failed.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        system::try_run(Command::new("dpkg").args(["--purge", "nodewarden"]));
    }
}

/// The parts of a multipart userdata file, in order, each trimmed at its end.
fn mime_parts(path: &Path) -> Vec<String> {
    let mime = std::fs::read(path).unwrap();
    let message = mail_parser::MessageParser::default().parse(&mime).expect("userdata is MIME");
    message
        .parts
        .iter()
        .filter(|p| !matches!(p.body, mail_parser::PartType::Multipart(_)))
        .map(|p| String::from_utf8_lossy(p.contents()).trim_end().to_string())
        .collect()
}

#[test]
fn the_cloud_init_example_is_valid_for_cloud_init_and_for_nodewarden() {
    let dir = repo().join("cloud-init");
    // userdata.mime is exactly its two parts (rebuild it with cloud-init/make-userdata).
    let expected: Vec<String> = ["cloud-config.yaml", "ecs-cluster.sh"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap().trim_end().to_string())
        .collect();
    assert_eq!(
        mime_parts(&dir.join("userdata.mime")),
        expected,
        "userdata.mime is stale: run cloud-init/make-userdata"
    );

    // On the stock ECS-optimized AMI it needs no settings: ecs.service is enabled, and the
    // script's ECS_CLUSTER line (CloudFormation filled in the cluster) names the cluster.
    let root = tempfile::tempdir().unwrap();
    let unit = root.path().join("usr/lib/systemd/system/ecs.service");
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::write(&unit, "[Unit]\nDescription=stand-in ecs-init\n[Service]\nExecStart=/bin/true\n").unwrap();
    let wants = root.path().join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink("/usr/lib/systemd/system/ecs.service", wants.join("ecs.service")).unwrap();
    std::fs::create_dir_all(root.path().join("etc/ecs")).unwrap();
    std::fs::write(root.path().join("etc/ecs/ecs.config"), "ECS_CLUSTER=prod-web\n").unwrap();
    let userdata = dir.join("userdata.mime");
    let args = ["--root", root.path().to_str().unwrap(), "check", "--userdata", userdata.to_str().unwrap()];
    let check = crate::harness::run_nodewarden(&args, None);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let merged = String::from_utf8_lossy(&check.stdout);
    assert!(merged.contains("cluster = \"prod-web\"  # ecs.config "), "{merged}");
    assert!(merged.contains("agent = \"ecs-init\"  # host: "), "{merged}");

    // With settings of your own: make-userdata's three-part form, the TOML part in force.
    let with_settings = tempfile::NamedTempFile::new().unwrap();
    run(Command::new(dir.join("make-userdata"))
        .arg(dir.join("cloud-config.yaml"))
        .arg(dir.join("settings.toml"))
        .arg(with_settings.path()));
    let check = crate::harness::run_nodewarden(&["check", "--userdata", with_settings.path().to_str().unwrap()], None);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("cluster = \"prod-web\"  # userdata:"));

    require_tool("cloud-init", "cloud-init");
    let schema = Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(dir.join("cloud-config.yaml"))
        .output()
        .unwrap();
    assert!(schema.status.success(), "cloud-init schema:\n{}", text(&schema));
}

/// A test tool scripts/install-test-deps puts at `default` (or `variable` names): fails naming it.
fn installed_tool(variable: &str, default: &str, name: &str, how: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{name} is missing at {} (scripts/install-test-deps {how}; or set {variable})",
        path.display()
    );
    path
}

fn cfn_lint() -> PathBuf {
    installed_tool("NODEWARDEN_CFN_LINT", DEFAULT_CFN_LINT, "cfn-lint", "installs it from PyPI")
}

const DEFAULT_CFN_LINT: &str = "/opt/nodewarden-test/venv/bin/cfn-lint";

/// The policy statements of a JSON document, by Sid: (actions, resources) as sorted lists.
fn statements(policy: &serde_json::Value) -> std::collections::BTreeMap<String, Vec<String>> {
    let as_list = |v: &serde_json::Value| -> Vec<String> {
        let mut items: Vec<String> = match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        items.sort();
        items
    };
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["Sid"].as_str().unwrap_or_default().to_string(), as_list(&s["Action"])))
        .collect()
}

#[test]
fn the_cloudformation_template_passes_cfn_lint_and_embeds_the_example_userdata() {
    let template = crate::harness::template::template_path();
    let lint = Command::new(cfn_lint()).arg(&template).output().unwrap();
    assert!(lint.status.success(), "cfn-lint {}:\n{}", template.display(), text(&lint));

    // The launch template's userdata is userdata.mime, byte for byte (make-userdata writes both).
    let embedded = crate::harness::template::userdata_source();
    let example = std::fs::read_to_string(repo().join("cloud-init/userdata.mime")).unwrap();
    assert!(embedded == example, "cloudformation.yaml's UserData is stale: run cloud-init/make-userdata");
    let variables = crate::harness::template::variables(&embedded);
    assert_eq!(variables, ["PackageUrl", "PackageSha256", "ClusterName"]);

    // Through cfn-lint's own YAML reader (it knows !Sub and friends): what the brief asks of it.
    let python = DEFAULT_CFN_LINT.replace("/cfn-lint", "/python");
    let script = r#"
import json, sys
from cfnlint.decode import decode
template, matches = decode(sys.argv[1])
assert not matches, matches
print(json.dumps(template, default=str))
"#;
    let decoded = run(Command::new(&python).args(["-c", script]).arg(&template));
    let template: serde_json::Value = serde_json::from_str(&decoded).unwrap();
    let resources = &template["Resources"];
    for name in variables {
        assert!(template["Parameters"].get(&name).is_some(), "the userdata uses {name}, not a parameter");
    }
    let data = &resources["LaunchTemplate"]["Properties"]["LaunchTemplateData"];
    assert_eq!(data["MetadataOptions"]["HttpTokens"], "required");
    assert_eq!(data["MetadataOptions"]["HttpPutResponseHopLimit"], 1);
    assert_eq!(data["BlockDeviceMappings"][0]["DeviceName"], "/dev/xvdcz", "nodewarden's default data-device");
    let hook = &resources["AutoScalingGroup"]["Properties"]["LifecycleHookSpecificationList"][0];
    assert_eq!(hook["LifecycleHookName"], "nodewarden-drain", "[drain] lifecycle-hook's default");
    assert_eq!(hook["LifecycleTransition"], "autoscaling:EC2_INSTANCE_TERMINATING");
    assert!(hook["HeartbeatTimeout"].as_u64().unwrap() > 120, "above [drain] heartbeat-interval (2m)");
    assert_eq!(resources["CapacityProvider"]["Type"], "AWS::ECS::CapacityProvider");

    // The role's nodewarden policy is the README's scoped one, statement by statement.
    let readme = std::fs::read_to_string(repo().join("cloud-init/README.md")).unwrap();
    let scoped = readme.split("```json").nth(2).and_then(|b| b.split("```").next()).expect("the scoped policy");
    let scoped: serde_json::Value = serde_json::from_str(scoped).unwrap();
    let role = &resources["InstanceRole"]["Properties"]["Policies"][0]["PolicyDocument"];
    assert_eq!(statements(role), statements(&scoped), "the template's policy differs from cloud-init/README.md's");
    let granted: Vec<String> = statements(role).into_values().flatten().collect();
    for action in ["ecs:ListTasks", "ecs:UpdateContainerInstancesState", "autoscaling:CompleteLifecycleAction"] {
        assert!(granted.iter().any(|a| a == action), "{action} is not granted");
    }
}

#[test]
fn the_packaged_default_settings_are_the_built_in_defaults() {
    // Every commented value in packaging/settings.toml, uncommented, changes nothing.
    let text = std::fs::read_to_string(repo().join("packaging/settings.toml")).unwrap();
    let uncommented: String = text
        .lines()
        .map(|l| l.strip_prefix("# ").filter(|rest| rest.contains(" = ")).unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &uncommented).unwrap();
    let output = crate::harness::run_nodewarden(&["check", file.path().to_str().unwrap()], None);
    // engine-auth-type alone is (rightly) an error; everything else must be accepted.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(problems.len(), 1, "{stderr}");
    assert!(problems[0].contains("engine-auth"), "{stderr}");
}

/// Runs one maintainer script as dpkg or rpm would (`args`), with `systemctl`,
/// `deb-systemd-helper` and `deb-systemd-invoke` replaced by recorders, on a host whose
/// systemd is up (`/run/systemd/system` exists, in a private mount namespace) and says
/// `system_state`; `disabled` units answer "was not enabled". Returns the calls it made, and
/// `marker /run/nodewarden/docker-ready` last when the script left Docker's marker of this boot.
fn maintainer_script_calls(script: &str, args: &[&str], system_state: &str, disabled: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let recorder = r#"#!/bin/sh
echo "${0##*/} $*" >>"$CALLS"
case "$1 $2" in
    "is-system-running "*) echo "$SYSTEM_STATE" ;;
    "--quiet was-enabled") case " $DISABLED " in *" $3 "*) exit 1 ;; esac ;;
esac
exit 0
"#;
    for tool in ["systemctl", "deb-systemd-helper", "deb-systemd-invoke"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(bin.join(tool), recorder).unwrap();
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let script_file = dir.path().join("script");
    std::fs::write(&script_file, script).unwrap();
    let calls = dir.path().join("calls");
    std::fs::write(&calls, "").unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && sh "$0" "$@" && if [ -e /run/nodewarden/docker-ready ]; then echo "marker /run/nodewarden/docker-ready" >>"$CALLS"; fi"#,
        )
        .arg(&script_file)
        .args(args)
        .env("PATH", path)
        .env("CALLS", &calls)
        .env("SYSTEM_STATE", system_state)
        .env("DISABLED", disabled)
        .output()
        .unwrap();
    assert!(output.status.success(), "the script with {args:?} failed:\n{}\n{script}", text(&output));
    std::fs::read_to_string(&calls).unwrap().lines().map(str::to_string).collect()
}

/// Whether any call stops or restarts nodewarden-setup or Docker: docker.service requires
/// setup, so stopping or restarting setup stops or restarts Docker and every task.
fn touches_docker(calls: &[String]) -> bool {
    calls.iter().any(|call| {
        let acts = ["stop", "restart", "try-restart", "--now", "reload-or-restart"]
            .iter()
            .any(|verb| call.split_whitespace().any(|word| word == *verb));
        acts && (call.contains("nodewarden-setup") || call.contains("docker"))
    })
}

#[test]
fn maintainer_scripts_enable_once_restart_only_the_daemon_and_never_stop_docker() {
    require_root("unshare --mount (the scripts see a systemd host)");
    require_tool("rpm", "rpm");
    let (deb, rpm) = build_packages();
    let has = |calls: &[String], wanted: &str| calls.iter().any(|call| call == wanted);

    // rpm: %systemd_post / %systemd_preun / %systemd_postun_with_restart semantics.
    let scriptlet = |tag: &str| run(Command::new("rpm").args(["-qp", "--qf", &format!("%{{{tag}}}")]).arg(&rpm));
    let (post, preun, postun) = (scriptlet("POSTIN"), scriptlet("PREUN"), scriptlet("POSTUN"));
    let units = "nodewarden-setup.service nodewarden.service";

    let first = maintainer_script_calls(&post, &["1"], "running", "");
    assert!(has(&first, &format!("systemctl --no-reload preset {units}")), "first install: {first:?}");
    // On a running host, a Docker restart before the next boot must not wait on setup.
    const MARKER: &str = "marker /run/nodewarden/docker-ready";
    assert!(has(&first, MARKER), "installed on a running host, Docker may not restart: {first:?}");
    assert!(!first.iter().any(|c| c.contains(" start ") || c.contains(" enable ")), "first install: {first:?}");
    let booting = maintainer_script_calls(&post, &["1"], "starting", "");
    assert!(has(&booting, &format!("systemctl start --no-block {units}")), "installed at boot: {booting:?}");
    assert!(!has(&booting, MARKER), "installed while booting, setup must decide: {booting:?}");
    let upgrade = maintainer_script_calls(&post, &["2"], "running", "");
    assert!(
        !upgrade.iter().any(|c| c.contains("preset") || c.contains("enable") || c.contains(" start ")),
        "an upgrade must not re-enable what an admin disabled: {upgrade:?}"
    );
    assert_eq!(maintainer_script_calls(&preun, &["1"], "running", ""), Vec::<String>::new(), "preun on upgrade");
    let removal = maintainer_script_calls(&preun, &["0"], "running", "");
    assert!(has(&removal, "systemctl --no-reload disable --now nodewarden.service"), "removal: {removal:?}");
    assert!(has(&removal, "systemctl --no-reload disable nodewarden-setup.service"), "removal: {removal:?}");
    let upgraded = maintainer_script_calls(&postun, &["1"], "running", "");
    assert!(has(&upgraded, "systemctl try-restart nodewarden.service"), "postun on upgrade: {upgraded:?}");
    let removed = maintainer_script_calls(&postun, &["0"], "running", "");
    assert!(has(&removed, "systemctl daemon-reload"), "postun on removal: {removed:?}");
    assert!(!removed.iter().any(|c| c.contains("restart")), "postun on removal: {removed:?}");
    for calls in [&first, &booting, &upgrade, &removal, &upgraded, &removed] {
        assert!(!touches_docker(calls), "an rpm script stops or restarts setup or Docker: {calls:?}");
    }
    let listing = run(Command::new("rpm").args(["-qlp"]).arg(&rpm));
    assert!(listing.contains("/usr/lib/systemd/system-preset/80-nodewarden.preset"), "{listing}");

    // deb: the same through debhelper's snippets (cargo-deb).
    let scripts = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(scripts.path()));
    let script = |name: &str| std::fs::read_to_string(scripts.path().join(name)).unwrap();
    let (postinst, prerm) = (script("postinst"), script("prerm"));
    let first = maintainer_script_calls(&postinst, &["configure", ""], "running", "");
    assert!(has(&first, MARKER), "installed on a running host, Docker may not restart: {first:?}");
    let booting = maintainer_script_calls(&postinst, &["configure", ""], "starting", "");
    assert!(!has(&booting, MARKER), "installed while booting, setup must decide: {booting:?}");
    for unit in ["nodewarden-setup.service", "nodewarden.service"] {
        assert!(has(&first, &format!("deb-systemd-helper enable {unit}")), "first install: {first:?}");
    }
    assert!(!first.iter().any(|c| c.starts_with("deb-systemd-invoke")), "first install starts nothing: {first:?}");
    let upgrade = maintainer_script_calls(&postinst, &["configure", "0.0.1"], "running", "nodewarden.service");
    assert!(!has(&upgrade, "deb-systemd-helper enable nodewarden.service"), "re-enabled on upgrade: {upgrade:?}");
    assert!(has(&upgrade, "deb-systemd-invoke try-restart nodewarden.service"), "upgrade: {upgrade:?}");
    assert_eq!(maintainer_script_calls(&prerm, &["upgrade", "0.0.2"], "running", ""), Vec::<String>::new());
    let removal = maintainer_script_calls(&prerm, &["remove"], "running", "");
    assert_eq!(removal, ["deb-systemd-invoke stop nodewarden.service"], "removal");
    for calls in [&first, &upgrade, &removal] {
        assert!(!touches_docker(calls), "a deb script stops or restarts setup or Docker: {calls:?}");
    }
}

/// The man pages and completions under packaging/generated/, rendered from the clap definitions
/// into `dir`: one page for nodewarden and one for each command, bash, zsh and fish.
fn render_generated(dir: &Path) {
    use clap::CommandFactory;
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man).unwrap();
    std::fs::create_dir_all(&completions).unwrap();
    clap_mangen::generate_to(nodewarden::cli::Cli::command(), &man).unwrap();
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        clap_complete::generate_to(shell, &mut nodewarden::cli::Cli::command(), "nodewarden", &completions).unwrap();
    }
}

fn files_under(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    for sub in ["man", "completions"] {
        for entry in std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
            files
                .insert(format!("{sub}/{}", entry.file_name().to_string_lossy()), std::fs::read(entry.path()).unwrap());
        }
    }
    files
}

#[test]
fn the_shipped_man_pages_and_completions_are_current_and_work() {
    let rendered = tempfile::tempdir().unwrap();
    render_generated(rendered.path());
    let committed = repo().join("packaging/generated");
    if std::env::var_os("NODEWARDEN_REGENERATE").is_some() {
        let _ = std::fs::remove_dir_all(&committed);
        render_generated(&committed);
    }
    let (want, have) = (files_under(rendered.path()), files_under(&committed));
    let stale: Vec<&String> =
        want.keys().chain(have.keys()).filter(|name| want.get(*name) != have.get(*name)).collect();
    assert!(
        stale.is_empty(),
        "packaging/generated/ is out of date with the command line ({stale:?}): run \
         NODEWARDEN_REGENERATE=1 cargo test --test integration -- packaging::the_shipped_man_pages and commit"
    );
    let page = String::from_utf8_lossy(&have["man/nodewarden-status.1"]).into_owned();
    assert!(page.contains(".TH nodewarden-status 1") && page.contains("CRITICAL"), "{page}");

    // bash loads the completion and completes commands and options from it.
    let bash = Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$1"; COMP_WORDS=(nodewarden st); COMP_CWORD=1; COMP_LINE="nodewarden st"; COMP_POINT=${#COMP_LINE}
_nodewarden nodewarden st nodewarden; echo "${COMPREPLY[*]}"
COMP_WORDS=(nodewarden status --ch); COMP_CWORD=2; COMP_LINE="nodewarden status --ch"; COMP_POINT=${#COMP_LINE}
_nodewarden nodewarden --ch status; echo "${COMPREPLY[*]}""#,
        )
        .arg("bash")
        .arg(committed.join("completions/nodewarden.bash"))
        .output()
        .unwrap();
    let answers = String::from_utf8_lossy(&bash.stdout).into_owned();
    assert!(bash.status.success(), "bash could not load the completion: {}", text(&bash));
    let lines: Vec<&str> = answers.lines().collect();
    assert_eq!(lines, ["status", "--check"], "bash completions: {}", text(&bash));
}

#[test]
fn packages_name_the_target_architecture_and_a_binary_of_another_is_refused() {
    build_packages(); // the tools are there, and target/debug/nodewarden is built
    let triple = "aarch64-unknown-linux-gnu";
    let target_dir = repo().join("target").join(triple);
    let _ = std::fs::remove_dir_all(&target_dir);
    std::fs::create_dir_all(target_dir.join("debug")).unwrap();
    let binary = target_dir.join("debug/nodewarden");
    std::fs::copy(repo().join("target/debug/nodewarden"), &binary).unwrap();
    let build = || Command::new(repo().join("packaging/build")).args(["--debug", "--target", triple]).output().unwrap();

    // This machine's x86-64 binary where the aarch64 one belongs: refused, nothing packaged.
    let refused = build();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("is not an aarch64 binary (ELF machine 62"), "{}", text(&refused));
    assert!(!target_dir.join("packages-debug").exists(), "packaged anyway");

    // An aarch64 binary (here the same file with its ELF header's machine set to AArch64: this
    // machine has no arm64 toolchain) is packaged, and both packages say arm64.
    let mut bytes = std::fs::read(&binary).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(&binary, bytes).unwrap();
    let built = build();
    assert!(built.status.success(), "{}", text(&built));
    let packages: Vec<PathBuf> = std::fs::read_dir(target_dir.join("packages-debug"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb" || x == "rpm"))
        .collect();
    let deb = packages.iter().find(|p| p.extension().is_some_and(|x| x == "deb")).expect("a .deb");
    let rpm = packages.iter().find(|p| p.extension().is_some_and(|x| x == "rpm")).expect("an .rpm");
    assert_eq!(run(Command::new("dpkg-deb").args(["-f"]).arg(deb).arg("Architecture")).trim(), "arm64");
    assert!(deb.to_string_lossy().ends_with("_arm64.deb"), "{}", deb.display());
    assert_eq!(run(Command::new("rpm").args(["-qp", "--qf", "%{ARCH}"]).arg(rpm)).trim(), "aarch64");
    assert!(rpm.to_string_lossy().ends_with(".aarch64.rpm"), "{}", rpm.display());
    std::fs::remove_dir_all(&target_dir).unwrap();
}

fn promtool() -> PathBuf {
    installed_tool("NODEWARDEN_PROMTOOL", DEFAULT_PROMTOOL, "promtool", "fetches it")
}

const DEFAULT_PROMTOOL: &str = "/opt/nodewarden-test/bin/promtool";

#[test]
fn the_shipped_alert_rules_load_and_fire_as_tested_and_every_dashboard_query_parses() {
    let monitoring = repo().join("packaging/monitoring");
    let check = run(Command::new(promtool()).args(["check", "rules"]).arg(monitoring.join("alerts.yml")));
    assert!(check.contains("SUCCESS: 10 rules found"), "{check}");
    // The unit tests: each alert fires on the series nodewarden exports, with its labels and text.
    run(Command::new(promtool()).args(["test", "rules", "alerts.test.yml"]).current_dir(&monitoring));

    // The dashboard: valid JSON Grafana imports (unique panel ids, a Prometheus data source
    // variable on every query), and each query parses as PromQL (as a recording rule).
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(monitoring.join("dashboard.json")).unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "nodewarden");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = std::collections::BTreeSet::new();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().expect("a panel id")), "duplicate panel id in {panel}");
        assert!(panel["gridPos"]["w"].as_u64().is_some_and(|w| w <= 24), "{panel}");
        for (n, target) in panel["targets"].as_array().expect("targets").iter().enumerate() {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{panel}");
            let expr = target["expr"].as_str().expect("an expr").replace("$instance", ".*");
            let record = format!("dashboard:panel_{}_{n}", panel["id"]);
            rules.push_str(&format!("      - record: {record}\n        expr: {}\n", serde_json::Value::from(expr)));
        }
    }
    let file = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    std::fs::write(file.path(), &rules).unwrap();
    let parsed = Command::new(promtool()).args(["check", "rules"]).arg(file.path()).output().unwrap();
    assert!(parsed.status.success(), "a dashboard query does not parse:\n{}\n{rules}", text(&parsed));
}

/// Builds a stand-in package `name` that provides `provides` (and ships `/bin/sh`, busybox, so
/// rpm can run scriptlets in the root), into `dir`; returns its path.
fn stub_rpm(dir: &Path, name: &str, provides: &[String], with_shell: bool) -> PathBuf {
    let top = dir.join(format!("build-{name}"));
    std::fs::create_dir_all(&top).unwrap();
    let mut spec = format!("Name: {name}\nVersion: 1\nRelease: 1\nSummary: stand-in\nLicense: none\nAutoReqProv: no\n");
    for provide in provides {
        spec.push_str(&format!("Provides: {provide}\n"));
    }
    spec.push_str("%description\nA stand-in for what an Amazon Linux 2023 host has installed.\n");
    if with_shell {
        spec.push_str("%install\nmkdir -p %{buildroot}/bin\ncp /bin/busybox %{buildroot}/bin/sh\n%files\n/bin/sh\n");
    } else {
        spec.push_str("%files\n");
    }
    let spec_file = top.join(format!("{name}.spec"));
    std::fs::write(&spec_file, spec).unwrap();
    run(Command::new("rpmbuild")
        .args(["-bb", "--quiet", "--define"])
        .arg(format!("_topdir {}", top.display()))
        .args(["--define", "_build_id_links none", "--define", "__os_install_post %{nil}"])
        .arg(&spec_file));
    let rpms = top.join("RPMS");
    let arch_dir = std::fs::read_dir(&rpms).unwrap().next().unwrap().unwrap().path();
    std::fs::read_dir(arch_dir).unwrap().next().unwrap().unwrap().path()
}

/// The .rpm installed for real with rpm into an rpm root (`rpm --root`, its own database):
/// its dependencies checked, not forced: without Docker it is refused naming it, with Amazon
/// Linux's `docker` (or Docker's `docker-ce`) it installs, its files and modes verify, its
/// scriptlets run, removal keeps an edited settings file. No dnf root can be had here (no
/// Amazon Linux repository is reachable), so what an AL2023 host provides is a stand-in
/// package; glibc's symbol versions are checked against AL2023's (2.34).
#[test]
fn the_rpm_installs_into_an_rpm_root_with_its_dependencies_checked() {
    require_root("rpm --root (it chroots into the root to run scriptlets)");
    require_tool("rpm", "rpm");
    require_tool("rpmbuild", "rpm");
    require_tool("busybox", "busybox-static");
    let (_, rpm) = build_packages();
    let requires: Vec<String> = run(Command::new("rpm").arg("-qpR").arg(&rpm)).lines().map(str::to_string).collect();
    let named: Vec<&str> = requires
        .iter()
        .map(String::as_str)
        .filter(|r| !r.contains(".so") && !["rpmlib(", "rtld(", "config("].iter().any(|p| r.starts_with(p)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        named,
        [
            "(docker or docker-ce or moby-engine)",
            "/bin/sh",
            "e2fsprogs",
            "iptables",
            "systemd",
            "util-linux",
            "xfsprogs"
        ],
        "{requires:#?}"
    );
    // The binary runs on Amazon Linux 2023's glibc 2.34 (not on Amazon Linux 2's 2.26).
    let newest = requires
        .iter()
        .filter_map(|r| r.strip_prefix("libc.so.6(GLIBC_")?.strip_suffix(")(64bit)"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            Some((parts.next()?, parts.next().unwrap_or(0)))
        })
        .max()
        .expect("glibc symbol versions");
    assert!(newest <= (2, 34), "needs glibc {newest:?}, newer than Amazon Linux 2023's 2.34");

    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    run(Command::new("rpm").arg("--root").arg(&root).arg("--initdb"));
    // What an AL2023 host provides, Docker aside: every other requirement of the package.
    let base: Vec<String> = requires
        .iter()
        .filter(|r| !r.contains("docker") && !r.starts_with("rpmlib(") && !r.starts_with("config("))
        .cloned()
        .collect();
    let base_rpm = stub_rpm(work.path(), "al2023-base", &base, true);
    let rpm_in = |args: &[&str], packages: &[&Path]| {
        let mut command = Command::new("rpm");
        command.arg("--root").arg(&root).args(args);
        for package in packages {
            command.arg(package);
        }
        command.output().unwrap()
    };
    let installed = rpm_in(&["-i"], &[&base_rpm]);
    assert!(installed.status.success(), "{}", text(&installed));

    let refused = rpm_in(&["-i", "--test"], &[&rpm]);
    assert!(!refused.status.success(), "installed without Docker:\n{}", text(&refused));
    assert!(
        text(&refused).contains("(docker or docker-ce or moby-engine) is needed by nodewarden"),
        "{}",
        text(&refused)
    );
    for (provider, name) in [("docker-ce", "docker-ce-standin"), ("docker", "docker-standin")] {
        let stub = stub_rpm(work.path(), name, &[provider.to_string()], false);
        let test = rpm_in(&["-i", "--test"], &[&rpm, &stub]);
        assert!(test.status.success(), "with {provider}: {}", text(&test));
    }
    // For real, with Amazon Linux's docker: files, modes, scriptlets (no systemctl in the root: a no-op).
    let docker = stub_rpm(work.path(), "docker-standin", &["docker".to_string()], false);
    let install = rpm_in(&["-i"], &[&docker, &rpm]);
    assert!(install.status.success(), "rpm -i:\n{}", text(&install));
    let verify = rpm_in(&["-V", "nodewarden"], &[]);
    assert!(verify.status.success(), "rpm -V: {}", text(&verify));
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &str| std::fs::metadata(root.join(path)).map(|m| m.permissions().mode() & 0o7777).ok();
    assert_eq!(mode("usr/bin/nodewarden"), Some(0o755));
    assert_eq!(mode("etc/nodewarden/settings.toml"), Some(0o600));
    for unit in ["nodewarden-setup.service", "nodewarden.service", "docker.service.d/nodewarden.conf"] {
        assert_eq!(mode(&format!("usr/lib/systemd/system/{unit}")), Some(0o644), "{unit}");
    }
    let drop_in =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/docker.service.d/nodewarden.conf")).unwrap();
    assert!(drop_in.contains("AssertPathExists=/run/nodewarden/docker-ready"), "{drop_in}");
    let version = Command::new(root.join("usr/bin/nodewarden")).arg("--version").output().unwrap();
    assert!(text(&version).starts_with("nodewarden "), "{}", text(&version));

    // An edited settings file survives removal (config(noreplace)); the rest goes.
    std::fs::write(root.join("etc/nodewarden/settings.toml"), "[ecs]\ncluster = \"mine\"\n").unwrap();
    let erase = rpm_in(&["-e", "nodewarden"], &[]);
    assert!(erase.status.success(), "rpm -e:\n{}", text(&erase));
    assert!(!root.join("usr/bin/nodewarden").exists());
    let kept = std::fs::read_to_string(root.join("etc/nodewarden/settings.toml.rpmsave")).unwrap_or_default();
    assert!(kept.contains("mine"), "the edited settings were lost: {}", text(&erase));
}
