//! `nodewarden setup` preparing Docker's disk on real loop devices (as root): format only an
//! empty device, reuse our own after a reboot, refuse anything holding data (bytes unchanged),
//! grow with the volume, units that systemd accepts, and a daemon.json a real dockerd uses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nodewarden::storage::mountinfo;

use crate::harness::docker::TestDocker;
use crate::harness::images;
use crate::harness::loopdisk::LoopDisk;
use crate::harness::system::{self, require_tool, run};

struct Rig {
    // Fields drop in this order: the disk (unmounted, detached) before the directory it is
    // mounted in, which could not be removed while it was.
    disk: LoopDisk,
    root: tempfile::TempDir,
    settings: PathBuf,
}

fn rig(size_mb: u64, docker_settings: &str) -> Rig {
    let root = tempfile::Builder::new().prefix("nwdisk-").tempdir().unwrap();
    let disk = LoopDisk::create(root.path(), "data", size_mb);
    disk.link_into(root.path());
    let settings = root.path().join("settings.toml");
    std::fs::write(
        &settings,
        format!("[ecs]\ncluster = \"c\"\n[docker]\ndata-device = \"{}\"\n{docker_settings}", disk.device.display()),
    )
    .unwrap();
    Rig { disk, root, settings }
}

impl Rig {
    fn setup(&self) -> Output {
        crate::harness::nodewarden()
            .args(["setup", "--no-userdata", "--device-wait", "2s", "--root"])
            .arg(self.root.path())
            .arg("--settings")
            .arg(&self.settings)
            .output()
            .unwrap()
    }

    fn mount_point(&self) -> PathBuf {
        self.root.path().join("var/lib/docker")
    }

    fn mount(&self) -> Option<mountinfo::Mount> {
        mountinfo::current().unwrap().into_iter().find(|m| m.mount_point == self.mount_point())
    }

    fn unmount(&self) {
        system::unmount_all_under(&self.mount_point());
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn blkid(device: &Path, tag: &str) -> String {
    run(Command::new("blkid").args(["-p", "-s", tag, "-o", "value"]).arg(device)).trim().to_string()
}

fn checksum(device: &Path) -> String {
    run(Command::new("sha256sum").arg(device)).split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn a_blank_device_is_formatted_mounted_ordered_and_reused_after_a_reboot() {
    require_tool("mkfs.xfs", "xfsprogs");
    let rig = rig(400, "");
    let output = rig.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(blkid(&rig.disk.device, "TYPE"), "xfs");
    assert_eq!(blkid(&rig.disk.device, "LABEL"), "nodewarden");
    let uuid = blkid(&rig.disk.device, "UUID");
    let mount = rig.mount().expect("mounted at var/lib/docker");
    assert_eq!(mount.source, rig.disk.device.display().to_string());
    for option in ["noatime", "nodev", "nosuid"] {
        assert!(mount.mount_options.split(',').any(|o| o == option), "{option} missing: {}", mount.mount_options);
    }
    // A fixed preallocation, so usage follows a runaway's writes (xfs reports it in KiB).
    assert!(mount.super_options.split(',').any(|o| o == "allocsize=4096k"), "{}", mount.super_options);
    // This kernel has no XFS quota: the cap stays off, with the reason.
    assert!(text(&output).contains("writable-layer cap (10GiB) is off"), "{}", text(&output));
    // Docker may start in this boot (the package's docker.service drop-in asserts this).
    assert!(rig.root.path().join("run/nodewarden/docker-ready").exists());

    let units = rig.root.path().join("etc/systemd/system");
    let unit = std::fs::read_to_string(units.join("var-lib-docker.mount")).unwrap();
    assert!(
        unit.contains(&format!("What=/dev/disk/by-uuid/{uuid}")) && unit.contains("Where=/var/lib/docker"),
        "{unit}"
    );
    assert!(!unit.contains("nofail"));
    for service in ["docker.service", "containerd.service"] {
        let drop_in = std::fs::read_to_string(units.join(format!("{service}.d/10-nodewarden-disk.conf"))).unwrap();
        assert!(drop_in.contains("RequiresMountsFor=/var/lib/docker"));
    }
    require_tool("systemd-analyze", "systemd");
    let verify =
        Command::new("systemd-analyze").arg("verify").arg(units.join("var-lib-docker.mount")).output().unwrap();
    assert!(verify.status.success(), "{}", text(&verify));
    // docker.service with our drop-in, as systemd would load it.
    let verify = Command::new("systemd-analyze")
        .args(["verify", "docker.service"])
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", text(&verify));

    // A reboot: unmounted, set up again. No format, same filesystem, the files are there.
    std::fs::write(rig.mount_point().join("before-reboot"), b"kept").unwrap();
    rig.unmount();
    let output = rig.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(!text(&output).contains("formatted"), "{}", text(&output));
    assert_eq!(blkid(&rig.disk.device, "UUID"), uuid);
    assert_eq!(std::fs::read(rig.mount_point().join("before-reboot")).unwrap(), b"kept");
    // And once more while mounted: nothing changes, and nothing to warn about.
    let output = rig.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(!text(&output).contains("allocsize"), "{}", text(&output));

    // Mounted as an older nodewarden did, without allocsize: setup keeps the mount (Docker may
    // be running on it), says what that costs, and the unit mounts it right at the next boot.
    rig.unmount();
    run(Command::new("mount")
        .args(["-t", "xfs", "-o", "noatime,nodev,nosuid"])
        .arg(&rig.disk.device)
        .arg(rig.mount_point()));
    let output = rig.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("is mounted without allocsize"), "{}", text(&output));
    assert!(text(&output).contains("adds it at the next boot"), "{}", text(&output));
    let unit = std::fs::read_to_string(units.join("var-lib-docker.mount")).unwrap();
    assert!(unit.contains("allocsize=4m"), "{unit}");
}

/// LVM2's label checksum: CRC-32 (reflected, 0xEDB88320) from 0xf597a6cf, without final xor.
fn lvm_crc(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xf597_a6cf;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    crc
}

/// Puts something on a rig's device.
type Prepare = dyn Fn(&Rig);

#[test]
fn devices_holding_anything_are_refused_and_left_byte_for_byte() {
    require_tool("mkfs.ext4", "e2fsprogs");
    require_tool("sfdisk", "fdisk");
    // Data blkid has no name for: records written straight to the device, as a database on a
    // raw device or a headerless cipher leaves it. blkid exits 2 ("nothing found") on it.
    let records_at = |offset: Option<u64>| {
        move |rig: &Rig| {
            use std::io::{Seek, SeekFrom, Write};
            let mut device = std::fs::OpenOptions::new().write(true).open(&rig.disk.device).unwrap();
            let records: Vec<u8> = (0..64).flat_map(|i| format!("order {i:06}: 3 widgets\n").into_bytes()).collect();
            let end = device.seek(SeekFrom::End(0)).unwrap();
            device.seek(SeekFrom::Start(offset.unwrap_or(end - records.len() as u64))).unwrap();
            device.write_all(&records).unwrap();
            device.sync_all().unwrap();
            let probe = Command::new("blkid").arg("-p").arg(&rig.disk.device).output().unwrap();
            assert_eq!(probe.status.code(), Some(2), "blkid should find no signature in plain records");
        }
    };
    let cases: Vec<(&str, Box<Prepare>, &str)> = vec![
        ("records blkid does not know, at the start", Box::new(records_at(Some(4096))), "holds data"),
        ("records blkid does not know, at the end", Box::new(records_at(None)), "holds data"),
        (
            "ext4 with a file",
            Box::new(|rig: &Rig| {
                run(Command::new("mkfs.ext4").args(["-q", "-L", "data"]).arg(&rig.disk.device));
                let at = rig.root.path().join("peek");
                std::fs::create_dir_all(&at).unwrap();
                run(Command::new("mount").arg(&rig.disk.device).arg(&at));
                std::fs::write(at.join("precious"), b"customer data").unwrap();
                run(Command::new("umount").arg(&at));
            }),
            "holds ext4",
        ),
        (
            "a partition table only",
            Box::new(|rig: &Rig| {
                let mut child = Command::new("sfdisk")
                    .arg("-q")
                    .arg(&rig.disk.device)
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(b"label: gpt\n").unwrap();
                assert!(child.wait().unwrap().success());
            }),
            "gpt partition table",
        ),
        (
            "an LVM physical volume signature",
            Box::new(|rig: &Rig| {
                // An LVM2 PV label: "LABELONE" in sector 1, type "LVM2 001" at byte 24 of it.
                use std::io::{Seek, SeekFrom, Write};
                let mut device = std::fs::OpenOptions::new().write(true).open(&rig.disk.device).unwrap();
                let mut sector = [0u8; 512];
                sector[..8].copy_from_slice(b"LABELONE");
                sector[8..16].copy_from_slice(&1u64.to_le_bytes());
                sector[20..24].copy_from_slice(&32u32.to_le_bytes());
                sector[24..32].copy_from_slice(b"LVM2 001");
                sector[32..64].copy_from_slice(b"0123456789abcdefghijklmnopqrstuv");
                let crc = lvm_crc(&sector[20..]);
                sector[16..20].copy_from_slice(&crc.to_le_bytes());
                device.seek(SeekFrom::Start(512)).unwrap();
                device.write_all(&sector).unwrap();
                device.sync_all().unwrap();
            }),
            "LVM2_member",
        ),
    ];
    // ext4 too: mkfs.ext4 asks before overwriting only on a terminal, so the probe is the only guard.
    let runs = cases.iter().flat_map(|case| ["xfs", "ext4"].map(|filesystem| (case, filesystem)));
    for ((what, make, expected), filesystem) in runs {
        let rig = rig(320, &format!("filesystem = \"{filesystem}\"\n"));
        make(&rig);
        let before = checksum(&rig.disk.device);
        let output = rig.setup();
        let what = format!("{what} (filesystem {filesystem})");
        assert_eq!(output.status.code(), Some(1), "{what}: {}", text(&output));
        let message = text(&output);
        assert!(
            message.contains(expected) && message.contains(&rig.disk.device.display().to_string()),
            "{what}: {message}"
        );
        assert_eq!(checksum(&rig.disk.device), before, "{what}: the device's bytes changed");
        assert!(rig.mount().is_none(), "{what}: mounted anyway");
        assert!(!rig.root.path().join("run/nodewarden/docker-ready").exists(), "{what}: Docker may start anyway");
    }
}

#[test]
fn the_filesystem_grows_with_its_device() {
    let rig = rig(400, "");
    assert_eq!(rig.setup().status.code(), Some(0));
    let before = nodewarden::disk::probe(&rig.mount_point()).unwrap().total_bytes;
    rig.unmount();
    rig.disk.grow(600);
    let output = rig.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("grown by"), "{}", text(&output));
    let after = nodewarden::disk::probe(&rig.mount_point()).unwrap().total_bytes;
    assert!(after as f64 >= before as f64 * 1.45, "{before} → {after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn daemon_json_keeps_other_keys_and_a_real_dockerd_uses_it() {
    let rig = rig(512, "log-max-size = \"16MiB\"\nlog-max-files = 4\n");
    let daemon_json = rig.root.path().join("etc/docker/daemon.json");
    std::fs::create_dir_all(daemon_json.parent().unwrap()).unwrap();
    std::fs::write(
        &daemon_json,
        r#"{"userland-proxy": false, "labels": ["team=web"], "log-opts": {"labels": "team"}}"#,
    )
    .unwrap();
    let output = rig.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&daemon_json).unwrap()).unwrap();
    assert_eq!(written["userland-proxy"], false);
    assert_eq!(written["labels"][0], "team=web");
    assert_eq!(written["data-root"], rig.mount_point().display().to_string());
    assert_eq!(written["log-opts"]["labels"], "team");
    assert!(written.get("storage-opts").is_none(), "no overlay2.size without project quota: {written}");
    let modified = std::fs::metadata(&daemon_json).unwrap().modified().unwrap();
    assert_eq!(rig.setup().status.code(), Some(0));
    assert_eq!(
        std::fs::metadata(&daemon_json).unwrap().modified().unwrap(),
        modified,
        "unchanged content was rewritten"
    );

    let docker = TestDocker::start_on(&daemon_json, &rig.mount_point()).await;
    let info = docker.client.info().await.unwrap();
    let root_dir = PathBuf::from(info.docker_root_dir.unwrap());
    assert_eq!(root_dir, rig.mount_point());
    let holder = mountinfo::holding(&mountinfo::current().unwrap(), &root_dir).unwrap();
    assert_eq!(holder.source, rig.disk.device.display().to_string(), "dockerd's root is on the dedicated device");
    let base = images::base_image(&docker.client).await;
    let id = images::create_container(&docker.client, base, Some("logged"), &["true"]).await;
    let log = docker.client.inspect_container(&id, None).await.unwrap().host_config.unwrap().log_config.unwrap();
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    let options = log.config.unwrap();
    assert_eq!((options["max-size"].as_str(), options["max-file"].as_str()), ("16m", "4"), "{options:?}");
}

#[test]
fn a_data_root_holding_images_containers_or_volumes_is_not_mounted_over() {
    // A dockerd that ran once (Debian's docker.io starts one on install) leaves an empty
    // skeleton: mounting over that loses nothing.
    let skeleton = rig(320, "");
    for dir in ["containers", "image/overlay2/imagedb/content/sha256", "overlay2/l", "volumes", "network/files"] {
        std::fs::create_dir_all(skeleton.mount_point().join(dir)).unwrap();
    }
    std::fs::write(skeleton.mount_point().join("volumes/metadata.db"), b"bolt").unwrap();
    std::fs::write(skeleton.mount_point().join("engine-id"), b"id").unwrap();
    let output = skeleton.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(skeleton.mount().is_some(), "the skeleton was not mounted over");
    skeleton.unmount();

    // Images, a container and a volume (an AMI baked with pre-pulled images, a host that ran
    // Docker before nodewarden): kept where they are, loudly, the device never touched, and
    // Docker may start (everything but the own-disk feature runs).
    let used = rig(320, "");
    let root = used.mount_point();
    for file in [
        "image/overlay2/imagedb/content/sha256/0a1b2c",
        "containers/4f5e6d/config.v2.json",
        "volumes/pgdata/_data/PG_VERSION",
        "volumes/metadata.db",
    ] {
        std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
        std::fs::write(root.join(file), b"precious").unwrap();
    }
    let before = checksum(&used.disk.device);
    let output = used.setup();
    let message = text(&output);
    assert_eq!(output.status.code(), Some(0), "{message}");
    assert!(message.contains("WARNING: Docker's data stays on the root disk"), "{message}");
    assert!(message.contains("1 image, 1 container and 1 volume") && message.contains("data-device"), "{message}");
    assert!(used.mount().is_none(), "mounted over the data anyway");
    assert_eq!(checksum(&used.disk.device), before, "the device was touched");
    assert_eq!(std::fs::read(root.join("volumes/pgdata/_data/PG_VERSION")).unwrap(), b"precious");
    assert!(used.root.path().join("run/nodewarden/docker-ready").exists(), "Docker could not start");
    assert!(!used.root.path().join("etc/systemd/system/var-lib-docker.mount").exists(), "a mount unit would hide it");
    let marker = used.root.path().join("var/lib/nodewarden/docker-on-root-disk.json");
    let note = nodewarden::storage::shared_disk::shared_disk_note(std::fs::read_to_string(&marker).ok().as_deref());
    assert!(note.is_some_and(|n| n.contains("1 image, 1 container and 1 volume")), "the marker for /status");

    // Someone else's file there is named, and kept too.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("backup.tar"), b"x").unwrap();
    let output = used.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("/var/lib/docker held backup.tar"), "{}", text(&output));
    assert_eq!(std::fs::read(root.join("backup.tar")).unwrap(), b"x");

    // Once it is gone, the next setup (the next boot) moves Docker onto its own disk.
    std::fs::remove_file(root.join("backup.tar")).unwrap();
    let output = used.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(used.mount().is_some(), "{}", text(&output));
    assert!(!marker.exists(), "the condition outlived its cause");
    used.unmount();
}

/// A running instance whose Docker already holds images, containers and volumes on the root
/// disk: setup keeps Docker there, never stops it (same dockerd, containers running), and a
/// Docker restart afterwards comes back on the same data.
#[tokio::test(flavor = "multi_thread")]
async fn docker_data_on_the_root_disk_keeps_its_data_and_docker_through_setup_and_a_restart() {
    let rig = rig(320, "");
    let data_root = rig.mount_point();
    std::fs::create_dir_all(&data_root).unwrap();
    let daemon_json = rig.root.path().join("etc/docker/daemon.json");
    std::fs::create_dir_all(daemon_json.parent().unwrap()).unwrap();
    std::fs::write(&daemon_json, format!("{{\"data-root\": \"{}\"}}", data_root.display())).unwrap();
    let mut docker = TestDocker::start_on(&daemon_json, &data_root).await;
    let base = images::base_image(&docker.client).await;
    let sleeper = images::start_sleeper(&docker.client, base, "long-running-task").await;
    let volume = bollard::models::VolumeCreateRequest { name: Some("pgdata".into()), ..Default::default() };
    docker.client.create_volume(volume).await.unwrap();
    let pid = docker.pid();
    let before = checksum(&rig.disk.device);

    let output = crate::harness::nodewarden()
        .args(["setup", "--no-userdata", "--device-wait", "2s", "--root"])
        .arg(rig.root.path())
        .arg("--settings")
        .arg(&rig.settings)
        .env("DOCKER_HOST", docker.host())
        .output()
        .unwrap();
    let message = text(&output);
    assert_eq!(output.status.code(), Some(0), "{message}");
    assert!(message.contains("WARNING: Docker's data stays on the root disk"), "{message}");
    assert_eq!(docker.pid(), pid, "setup stopped Docker");
    let running = docker.client.inspect_container(&sleeper, None).await.unwrap().state.unwrap().running;
    assert_eq!(running, Some(true), "the task's container stopped");
    // (dockerd bind-mounts its data root onto itself: a mount there of the root disk, not ours.)
    let mounts = mountinfo::current().unwrap();
    assert!(!mountinfo::own_filesystem_at(&mounts, &data_root), "mounted over Docker's data: {:?}", rig.mount());
    assert_eq!(checksum(&rig.disk.device), before, "the device was touched");
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&daemon_json).unwrap()).unwrap();
    assert_eq!(written["data-root"], data_root.display().to_string(), "Docker's data root moved: {written}");
    assert!(rig.root.path().join("run/nodewarden/docker-ready").exists(), "a Docker restart would be refused");

    // Docker restarts (an upgrade of Docker, an operator) on the daemon.json setup wrote: all there.
    docker.restart().await;
    let info = docker.client.info().await.unwrap();
    assert_eq!(info.docker_root_dir.map(PathBuf::from), Some(data_root.clone()));
    assert!(docker.client.inspect_container(&sleeper, None).await.is_ok(), "the container is gone");
    assert!(docker.client.inspect_volume("pgdata").await.is_ok(), "the volume is gone");
    assert!(docker.client.inspect_image(base).await.is_ok(), "the image is gone");
}

#[test]
fn the_operators_data_root_stays_without_a_device_and_a_conflict_is_said() {
    let rig = rig(320, "");
    let daemon_json = rig.root.path().join("etc/docker/daemon.json");
    std::fs::create_dir_all(daemon_json.parent().unwrap()).unwrap();
    std::fs::write(&daemon_json, r#"{"data-root": "/data/docker"}"#).unwrap();
    let read = || serde_json::from_slice::<serde_json::Value>(&std::fs::read(&daemon_json).unwrap()).unwrap();

    std::fs::write(&rig.settings, "[ecs]\ncluster = \"c\"\n[docker]\ndata-device = \"none\"\n").unwrap();
    let output = rig.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(read()["data-root"], "/data/docker", "the operator's data-root was replaced");

    // With a device of its own, nodewarden's mount wins, and says what it replaced.
    std::fs::write(
        &rig.settings,
        format!("[ecs]\ncluster = \"c\"\n[docker]\ndata-device = \"{}\"\n", rig.disk.device.display()),
    )
    .unwrap();
    let output = rig.setup();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(read()["data-root"], rig.mount_point().display().to_string());
    assert!(text(&output).contains("daemon.json had data-root \"/data/docker\""), "{}", text(&output));
}

/// Fills the filesystem holding `dir` to the brim with one file.
fn fill_to_the_brim(dir: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(dir.join("brim")).expect("creating the filler");
    let chunk = vec![0u8; 64 << 10];
    while file.write_all(&chunk).is_ok() {}
    let mut byte = [0u8; 1];
    while file.write_all(&byte).is_ok() {
        byte[0] = byte[0].wrapping_add(1);
    }
    let _ = file.sync_all();
}

/// The root disk is full (a running node's journal and logs took it) when the instance
/// reboots: the state directory and the systemd unit directory sit on tiny full filesystems.
/// Setup still mounts Docker's disk and lets Docker start; what it could not write is a
/// warning naming the file.
#[test]
fn setup_on_a_full_root_disk_still_prepares_dockers_disk_and_warns() {
    require_tool("mkfs.xfs", "xfsprogs");
    let rig = rig(400, "");
    let state = rig.root.path().join("var/lib/nodewarden");
    let units = rig.root.path().join("etc/systemd/system");
    let _state_fs = system::Tmpfs::mount(&state, 1);
    let _units_fs = system::Tmpfs::mount(&units, 1);
    fill_to_the_brim(&state);
    fill_to_the_brim(&units);
    let userdata = rig.root.path().join("userdata.toml");
    std::fs::write(&userdata, "[ecs]\ncluster = \"from-userdata\"\n").unwrap();
    let output = crate::harness::nodewarden()
        .args(["setup", "--device-wait", "2s", "--userdata"])
        .arg(&userdata)
        .arg("--root")
        .arg(rig.root.path())
        .arg("--settings")
        .arg(&rig.settings)
        .output()
        .unwrap();
    let all = text(&output);
    rig.unmount();
    assert_eq!(output.status.code(), Some(0), "setup failed on a full root disk:\n{all}");
    let skipped = [
        state.join("userdata.toml"),
        state.join("setup-done"),
        units.join("var-lib-docker.mount"),
        units.join("nodewarden.service.d/20-agent-owner.conf"),
    ];
    for file in skipped {
        let warning = format!("warning: writing {}: ", file.display());
        let line = all.lines().find(|l| l.starts_with(&warning)).unwrap_or_else(|| panic!("no {warning}:\n{all}"));
        assert!(line.contains("that disk is full"), "{line}");
    }
    assert!(all.contains("formatted and mounted at"), "Docker's disk was not prepared:\n{all}");
    assert!(rig.root.path().join("run/nodewarden/docker-ready").exists(), "Docker may not start:\n{all}");
    let config = std::fs::read_to_string(rig.root.path().join("etc/ecs/ecs.config")).unwrap();
    assert!(config.contains("ECS_CLUSTER=from-userdata\n"), "{config}");
}
