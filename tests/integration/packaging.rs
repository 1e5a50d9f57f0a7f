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

/// Builds both packages from the debug binary (a release build takes too long for a test).
fn build_packages() -> (PathBuf, PathBuf) {
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

#[test]
fn the_cloud_init_example_is_valid_for_cloud_init_and_for_nodewarden() {
    let dir = repo().join("cloud-init");
    let check =
        crate::harness::run_nodewarden(&["check", "--userdata", dir.join("userdata.mime").to_str().unwrap()], None);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("cluster = \"prod-web\"  # userdata:"));

    // userdata.mime is exactly the three parts (rebuild it with cloud-init/make-userdata).
    let mime = std::fs::read(dir.join("userdata.mime")).unwrap();
    let message = mail_parser::MessageParser::default().parse(&mime).expect("userdata.mime is MIME");
    let parts: Vec<String> = message
        .parts
        .iter()
        .filter(|p| !matches!(p.body, mail_parser::PartType::Multipart(_)))
        .map(|p| String::from_utf8_lossy(p.contents()).trim_end().to_string())
        .collect();
    let expected: Vec<String> = ["cloud-config.yaml", "toml-part-handler.py", "settings.toml"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap().trim_end().to_string())
        .collect();
    assert_eq!(parts, expected, "userdata.mime is stale: run cloud-init/make-userdata");

    require_tool("cloud-init", "cloud-init");
    let schema = Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(dir.join("cloud-config.yaml"))
        .output()
        .unwrap();
    assert!(schema.status.success(), "cloud-init schema:\n{}", text(&schema));
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
