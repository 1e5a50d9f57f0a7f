//! Docker's data on a filesystem of its own, prepared by `nodewarden setup` before Docker
//! starts: find the device, format it only when it holds nothing, mount it at
//! `/var/lib/docker` (`noatime,nodev,nosuid`; on xfs a fixed `allocsize`, see [`XFS_OPTIONS`],
//! and `prjquota` when the kernel allows, then without `nodev`, see [`QUOTA_OPTIONS`]), grow it
//! when the volume grew, write the mount unit and drop-ins, and merge daemon.json with
//! `overlay2.size` only where dockerd's own project-quota check passes on the mount.
//! nodewarden's own state, `/var/lib/ecs` and the journal stay on the root disk.

pub mod daemon_json;
pub mod device;
pub mod mountinfo;
pub mod probe;
pub mod quota;
pub mod shared_disk;
pub mod underneath;
pub mod units;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::fsutil::{WriteError, Written, unless_out_of_space, write_atomic};
use crate::host_paths::HostPaths;
use crate::settings::Settings;
use crate::settings::values::{DeviceSpec, Filesystem};
use probe::{Contents, Verdict};

const BASE_OPTIONS: &str = "noatime,nodev,nosuid";
/// xfs gets a fixed `allocsize`: by default it preallocates beyond the end of a file that keeps
/// growing, more the larger the file (hundreds of MiB for a runaway's log), and statfs counts
/// that space as used. Usage then jumps in steps no trend can foresee (measured in the boot
/// test's VM: 71 % to 97 % used in one step), and the drain comes late. With 4 MiB, usage stays
/// within 4 MiB per growing file (a runaway's, each container's log) of what was written, so
/// pressure and time-to-full follow the writes, while streaming writes still get extents of
/// 4 MiB and more. This is xfs without project quota (a kernel without XFS quota).
const XFS_OPTIONS: &str = "noatime,nodev,nosuid,allocsize=4m";
/// xfs with project quota, for the per-container writable-layer cap, and the `allocsize` of
/// [`XFS_OPTIONS`]. Without `nodev`: dockerd checks quota through a device node it makes in its
/// data root, which the kernel refuses on a `nodev` mount, and dockerd then does not start at
/// all with `overlay2.size`. Containers do not lose by it: their device nodes are governed by
/// the overlay mounts and the device cgroup.
const QUOTA_OPTIONS: &str = "noatime,nosuid,prjquota,allocsize=4m";

/// Why preparing Docker's disk or writing daemon.json failed, naming the device or path.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A tool (mkfs, mount, xfs_growfs, ...) could not be started.
    #[error("{what}: cannot run {program:?}: {source}")]
    Spawn { what: String, program: OsString, source: io::Error },
    /// A tool ran and failed: what it printed.
    #[error("{what}: {output}")]
    Tool { what: String, output: String },
    /// Reading, creating or linking `path`.
    #[error("{doing} {}: {source}", path.display())]
    Io { doing: &'static str, path: PathBuf, source: io::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Measure(#[from] crate::disk::ProbeError),
    #[error("reading {}: {source}; is /proc mounted? refusing to guess which disks are in use", mountinfo::MOUNTINFO)]
    Mountinfo { source: io::Error },
    #[error("{} lists no mounts; refusing to guess which disks are in use", mountinfo::MOUNTINFO)]
    NoMounts,
    #[error("cannot tell what {} holds: {source}", dir.display())]
    Survey { dir: PathBuf, source: io::Error },
    #[error(
        "{dir} on the root disk holds {what}; mounting Docker's device over it would hide them and keep their space \
         used. Stop Docker and move them away (or remove them: `rm -rf {dir}/*` if they are not needed), or set \
         [docker] data-device = \"none\" to keep Docker's data where it is",
        dir = dir.display()
    )]
    WouldHide { dir: PathBuf, what: String },
    #[error(
        "no block device for [docker] data-device after {wait:?} (looked at {}); Docker stays off \
         rather than fall back to the root disk. Attach the volume, or set data-device = \"none\" on purpose",
        looked.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoDevice { wait: Duration, looked: Vec<PathBuf> },
    #[error("{} ({}) is not a block device", device.display(), real.display())]
    NotBlockDevice { device: PathBuf, real: PathBuf },
    #[error("cannot stat {}", device.display())]
    Stat { device: PathBuf },
    #[error("{} is in use (mounted, or held by md, LVM or another program); refusing to touch it", device.display())]
    InUse { device: PathBuf },
    #[error("opening {} to probe it: {source}", device.display())]
    Open { device: PathBuf, source: io::Error },
    #[error("running blkid (util-linux) on {}: {source}", device.display())]
    Blkid { device: PathBuf, source: io::Error },
    /// What the device holds rules out using it (the reason names the device).
    #[error("{reason}")]
    Refused { device: PathBuf, reason: String },
    #[error("{} is mounted at {}; refusing to use a device in use", device.display(), mount_point.display())]
    MountedElsewhere { device: PathBuf, mount_point: PathBuf },
    #[error("{} still looks empty after formatting", device.display())]
    StillEmpty { device: PathBuf },
    #[error("{} changed while nodewarden was about to format it; refusing", device.display())]
    Changed { device: PathBuf },
    #[error("{} is already a mount of {mounted}, not of {}; unmount it first", mount_point.display(), device.display())]
    OtherMount { mount_point: PathBuf, mounted: String, device: PathBuf },
    #[error("{} is not mounted at {} after mounting", device.display(), mount_point.display())]
    NotMounted { device: PathBuf, mount_point: PathBuf },
    #[error("{} is not valid JSON ({source}); fix or remove it: nodewarden will not overwrite it", path.display())]
    InvalidJson { path: PathBuf, source: serde_json::Error },
    /// daemon.json holds a JSON value of the wrong shape.
    #[error("{0}")]
    DaemonJsonShape(String),
    #[error(transparent)]
    Encode(serde_json::Error),
}

impl StorageError {
    fn io(doing: &'static str, path: &Path, source: io::Error) -> Self {
        StorageError::Io { doing, path: path.to_path_buf(), source }
    }
}

/// What writing daemon.json has to tell the operator, by kind rather than by wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Something the settings ask for is not in effect (the writable-layer cap).
    Warning(String),
    /// What was done, and merge remarks.
    Info(String),
}

/// What `prepare` did to the Docker device.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub device: PathBuf,
    pub formatted: bool,
    pub fs_type: String,
    pub uuid: String,
    pub mount_point: PathBuf,
    /// Why `overlay2.size` cannot be used, if it cannot.
    pub quota_unavailable: Option<String>,
    pub grown_bytes: u64,
    /// Writes skipped because the root disk is full (the mount itself is done).
    pub warnings: Vec<String>,
}

fn run(command: &mut Command, what: &str) -> Result<String, StorageError> {
    let output = command.output().map_err(|source| StorageError::Spawn {
        what: what.to_string(),
        program: command.get_program().to_os_string(),
        source,
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(StorageError::Tool {
            what: what.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr).trim(),
                String::from_utf8_lossy(&output.stdout).trim()
            ),
        })
    }
}

fn device_number(device: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(device).ok()?.rdev();
    Some(format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev)))
}

/// Prepares the device; `Ok(None)` when `data-device = "none"`.
pub fn prepare(
    paths: &HostPaths,
    settings: &Settings,
    device_wait: Duration,
) -> Result<Option<Prepared>, StorageError> {
    let spec = &settings.docker.data_device;
    if *spec == DeviceSpec::None {
        tracing::warn!(
            "[docker] data-device = \"none\": Docker's data shares the root disk with the OS, the journal and the ECS agent's state"
        );
        return Ok(None);
    }
    let device = device::resolve(spec, paths, device_wait)?;
    let mount_point = paths.docker_data_root();
    let number = device_number(&device).ok_or_else(|| StorageError::Stat { device: device.clone() })?;
    let mounts = mountinfo::current()?;
    // Mounted already: at our mount point (the reboot case) it is fine, anywhere else it is not ours.
    let at_target = mounts.iter().find(|m| m.mount_point == mount_point);
    let elsewhere = mounts.iter().find(|m| m.device_number == number && m.mount_point != mount_point);
    if let Some(other) = elsewhere {
        return Err(StorageError::MountedElsewhere { device, mount_point: other.mount_point.clone() });
    }
    if at_target.is_none() {
        refuse_to_hide(&mount_point)?;
    }
    let mounted_here = at_target.is_some_and(|m| m.device_number == number);
    let (formatted, fs_type, uuid) = match probe::decide(&device, &probe::probe(&device, mounted_here)?) {
        Verdict::Refuse(reason) => return Err(StorageError::Refused { device, reason }),
        Verdict::Reuse { fs_type, uuid } => {
            tracing::info!(device = %device.display(), %fs_type, %uuid, "reusing nodewarden's filesystem");
            (false, fs_type, uuid)
        }
        Verdict::Format => {
            format(&device, settings.docker.filesystem)?;
            let Contents::Found(tags) = probe::probe(&device, false)? else {
                return Err(StorageError::StillEmpty { device });
            };
            let fs_type = tags.get("TYPE").cloned().unwrap_or_default();
            let uuid = tags.get("UUID").cloned().unwrap_or_default();
            tracing::info!(device = %device.display(), %fs_type, %uuid, "formatted the empty Docker device");
            (true, fs_type, uuid)
        }
    };
    std::fs::create_dir_all(&mount_point).map_err(|source| StorageError::io("creating", &mount_point, source))?;
    match at_target {
        Some(existing) if existing.device_number == number => {
            tracing::info!(mount_point = %mount_point.display(), "Docker's device is mounted already");
        }
        Some(existing) => {
            return Err(StorageError::OtherMount { mount_point, mounted: existing.source.clone(), device });
        }
        None => {
            let options = mount(&device, &mount_point, &fs_type)?;
            tracing::info!(mount_point = %mount_point.display(), %options, "mounted Docker's device");
        }
    }
    let mounted = || {
        mountinfo::holding(&mountinfo::current()?, &mount_point)
            .filter(|m| m.device_number == number)
            .ok_or_else(|| StorageError::NotMounted { device: device.clone(), mount_point: mount_point.clone() })
    };
    allow_device_nodes(&mounted()?)?;
    let mounted = mounted()?;
    let quota_unavailable = overlay_size_unavailable(&mounted, &mount_point);
    let grown_bytes = grow(&device, &mount_point, &fs_type)?;
    let mut warnings = write_units(paths, &uuid, &fs_type, unit_options(&fs_type, &mounted.super_options))?;
    warnings.extend(preallocation_note(&mounted, "the mount unit setup wrote adds it at the next boot"));
    Ok(Some(Prepared { device, formatted, fs_type, uuid, mount_point, quota_unavailable, grown_bytes, warnings }))
}

/// Docker's data already on the root disk, where a device is configured and nothing is mounted
/// at the data root yet: what it holds ("2 images and 1 container"), which mounting would hide.
/// Setup then keeps Docker where it is (`shared_disk`) instead of refusing.
pub fn found_on_root_disk(paths: &HostPaths, settings: &Settings) -> Result<Option<String>, StorageError> {
    if settings.docker.data_device == DeviceSpec::None {
        return Ok(None);
    }
    let mount_point = paths.docker_data_root();
    if mountinfo::own_filesystem_at(&mountinfo::current()?, &mount_point) {
        return Ok(None);
    }
    let found = underneath::survey(&mount_point)?;
    Ok((!found.is_empty()).then(|| found.describe()))
}

/// Mounting over a data root that holds images, containers, volumes or someone else's files
/// would hide them and keep their space used on the root disk: refuse, before touching the device.
fn refuse_to_hide(mount_point: &Path) -> Result<(), StorageError> {
    let found = underneath::survey(mount_point)?;
    if found.is_empty() {
        return Ok(());
    }
    Err(StorageError::WouldHide { dir: mount_point.to_path_buf(), what: found.describe() })
}

fn format(device: &Path, filesystem: Filesystem) -> Result<(), StorageError> {
    // mkfs claims the device exclusively itself (so our hold cannot last through it): probe once
    // more right before it, so the window in which something else could write is a few ms.
    if probe::probe(device, false)? != Contents::Empty {
        return Err(StorageError::Changed { device: device.to_path_buf() });
    }
    // No force flags: mkfs.xfs refuses a device that holds something, one more guard after
    // blkid (mkfs.ext4 asks only on a terminal, so for ext4 the probe above is the guard).
    match filesystem {
        Filesystem::Xfs => {
            run(Command::new("mkfs.xfs").args(["-q", "-n", "ftype=1", "-L", probe::LABEL]).arg(device), "mkfs.xfs")
        }
        Filesystem::Ext4 => run(Command::new("mkfs.ext4").args(["-q", "-L", probe::LABEL]).arg(device), "mkfs.ext4"),
    }
    .map(drop)
}

/// Mounts with project quota on xfs when the kernel supports it, else without (and says so).
fn mount(device: &Path, mount_point: &Path, fs_type: &str) -> Result<String, StorageError> {
    let attempt = |options: &str| {
        run(Command::new("mount").args(["-t", fs_type, "-o", options]).arg(device).arg(mount_point), "mount")
    };
    if fs_type == "xfs" {
        let options = mount_options(fs_type, true);
        match attempt(options) {
            Ok(_) => return Ok(options.to_string()),
            Err(error) => {
                tracing::warn!(%error, "mounting with prjquota failed (no XFS quota in this kernel?); mounting without")
            }
        }
    }
    let options = mount_options(fs_type, false);
    attempt(options).map(|_| options.to_string())
}

/// The options Docker's filesystem is mounted with: `quota` where xfs project quota took effect.
fn mount_options(fs_type: &str, quota: bool) -> &'static str {
    match (fs_type, quota) {
        ("xfs", true) => QUOTA_OPTIONS,
        ("xfs", false) => XFS_OPTIONS,
        _ => BASE_OPTIONS,
    }
}

fn has_project_quota(super_options: &str) -> bool {
    super_options.split(',').any(|o| o == "prjquota" || o == "pquota")
}

/// The options the mount unit should use: prjquota only where it took effect. A filesystem
/// mounted before (by an older nodewarden or by hand) gets them at its next mount, the boot.
fn unit_options(fs_type: &str, super_options: &str) -> &'static str {
    mount_options(fs_type, fs_type == "xfs" && has_project_quota(super_options))
}

/// Docker's xfs mounted without a fixed `allocsize` (by an older nodewarden, by hand, or the
/// root disk Docker stayed on): what that does to drains, and `remedy`. See [`XFS_OPTIONS`].
pub fn preallocation_note(mounted: &mountinfo::Mount, remedy: &str) -> Option<String> {
    if mounted.fs_type != "xfs" || mounted.super_options.split(',').any(|o| o.starts_with("allocsize=")) {
        return None;
    }
    Some(format!(
        "{} (xfs on {}) is mounted without allocsize: xfs then preallocates beyond growing files and counts it as \
         used, so the disk's use can jump in steps and a drain can come late; {remedy}",
        mounted.mount_point.display(),
        mounted.source
    ))
}

/// An xfs quota mount that an older nodewarden (or an operator) mounted `nodev` is remounted
/// `dev`, so dockerd's quota check can pass; a per-mount flag, changed in place.
fn allow_device_nodes(mounted: &mountinfo::Mount) -> Result<(), StorageError> {
    if mounted.fs_type != "xfs"
        || !has_project_quota(&mounted.super_options)
        || !mounted.mount_options.split(',').any(|o| o == "nodev")
    {
        return Ok(());
    }
    run(Command::new("mount").args(["-o", "remount,dev"]).arg(&mounted.mount_point), "mount -o remount,dev")?;
    tracing::info!(mount_point = %mounted.mount_point.display(), "remounted without nodev for dockerd's quota check");
    Ok(())
}

/// Why `overlay2.size` cannot be written for the filesystem `mount` holding `dir`, if it cannot:
/// the filesystem's own properties first, then dockerd's project-quota check made for real in `dir`.
fn overlay_size_unavailable(mount: &mountinfo::Mount, dir: &Path) -> Option<String> {
    let ftype = if mount.fs_type == "xfs" { xfs_ftype(&mount.mount_point) } else { None };
    daemon_json::overlay_size_unsupported(&mount.fs_type, &mount.super_options, ftype)
        .or_else(|| quota::dockerd_accepts_overlay_size(dir).err())
}

fn xfs_ftype(mount_point: &Path) -> Option<u8> {
    let info = run(Command::new("xfs_info").arg(mount_point), "xfs_info").ok()?;
    info.split(|c: char| c.is_whitespace() || c == ',')
        .find_map(|w| w.strip_prefix("ftype="))
        .and_then(|v| v.parse().ok())
}

/// Grows the filesystem to the device (a no-op when it already fills it); returns bytes gained.
fn grow(device: &Path, mount_point: &Path, fs_type: &str) -> Result<u64, StorageError> {
    let before = crate::disk::probe(mount_point)?.total_bytes;
    match fs_type {
        "xfs" => run(Command::new("xfs_growfs").arg(mount_point), "xfs_growfs")?,
        "ext4" => run(Command::new("resize2fs").arg(device), "resize2fs")?,
        _ => return Ok(0),
    };
    let after = crate::disk::probe(mount_point)?.total_bytes;
    if after > before {
        tracing::info!(before, after, "grew Docker's filesystem to its device");
    }
    Ok(after.saturating_sub(before))
}

/// The mount unit and its drop-ins. Docker's disk is mounted already (by setup, in every
/// boot), so a root disk too full for them is a warning, returned, and not a failure.
fn write_units(paths: &HostPaths, uuid: &str, fs_type: &str, options: &str) -> Result<Vec<String>, StorageError> {
    const CONSEQUENCE: &str = "the mount stays as setup made it in this boot (setup mounts it again at each boot)";
    let dir = paths.systemd_dir();
    let mut warnings = Vec::new();
    let unit = write_atomic(&dir.join(units::MOUNT_UNIT), units::mount_unit(uuid, fs_type, options).as_bytes(), 0o644);
    warnings.extend(unless_out_of_space(unit, CONSEQUENCE)?);
    for service in units::SERVICES {
        let drop_in = dir.join(format!("{service}.d")).join(units::DROP_IN);
        let written = write_atomic(&drop_in, units::drop_in().as_bytes(), 0o644);
        warnings.extend(unless_out_of_space(written, CONSEQUENCE)?);
    }
    if !warnings.is_empty() {
        return Ok(warnings);
    }
    // Enabled as `systemctl enable` would: a link in local-fs.target.wants.
    let wants = dir.join("local-fs.target.wants");
    std::fs::create_dir_all(&wants).map_err(|source| StorageError::io("creating", &wants, source))?;
    let link = wants.join(units::MOUNT_UNIT);
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(format!("../{}", units::MOUNT_UNIT), &link)
            .map_err(|source| StorageError::io("linking", &link, source))?;
    }
    Ok(warnings)
}

/// Merges daemon.json. `prepared` is the dedicated device, if any; without one the quota
/// check runs on whatever filesystem holds the data root.
pub fn write_daemon_json(
    paths: &HostPaths,
    settings: &Settings,
    prepared: Option<&Prepared>,
) -> Result<Vec<Note>, StorageError> {
    let path = paths.docker_daemon_json();
    let existing = match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => serde_json::Value::Null,
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| StorageError::InvalidJson { path: path.clone(), source })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
        Err(source) => return Err(StorageError::io("reading", &path, source)),
    };
    let mut notes = Vec::new();
    // Without a device of its own, Docker's data stays where the operator put it.
    let operator_root = existing.get("data-root").and_then(serde_json::Value::as_str).map(PathBuf::from);
    let overlay_size = match settings.docker.container_disk_limit {
        None => None,
        Some(limit) => {
            let unavailable = match prepared {
                Some(p) => p.quota_unavailable.clone(),
                None => {
                    let root = operator_root.clone().unwrap_or_else(|| paths.docker_data_root());
                    match mountinfo::holding(&mountinfo::current()?, &root) {
                        Some(m) => {
                            let dir = if root.is_dir() { root.clone() } else { m.mount_point.clone() };
                            overlay_size_unavailable(&m, &dir)
                        }
                        None => Some(format!("cannot tell which filesystem holds {}", root.display())),
                    }
                }
            };
            match unavailable {
                None => Some(limit),
                Some(why) => {
                    notes.push(Note::Warning(format!("the per-container writable-layer cap ({limit}) is off: {why}")));
                    None
                }
            }
        }
    };
    let wanted = daemon_json::Wanted {
        data_root: prepared.map(|p| p.mount_point.display().to_string()),
        log_max_size: settings.docker.log_max_size,
        log_max_files: settings.docker.log_max_files,
        overlay_size,
    };
    let (merged, merge_notes) = daemon_json::merge(existing, &wanted)?;
    notes.extend(merge_notes);
    let mut text = serde_json::to_string_pretty(&merged).map_err(StorageError::Encode)?;
    text.push('\n');
    let written = write_atomic(&path, text.as_bytes(), 0o644)?;
    let what = if written == Written::Changed { "written" } else { "unchanged" };
    notes.push(Note::Info(format!("{}: {what}", path.display())));
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_options_follow_the_filesystem_and_whether_quota_took_effect() {
        let table = [
            ("xfs", "rw,attr2,inode64,prjquota", "noatime,nosuid,prjquota,allocsize=4m"),
            ("xfs", "rw,attr2,inode64,logbufs=8,noquota", "noatime,nodev,nosuid,allocsize=4m"),
            ("ext4", "rw", "noatime,nodev,nosuid"),
            // ext4 has no allocsize and no prjquota mount option of nodewarden's.
            ("ext4", "rw,prjquota", "noatime,nodev,nosuid"),
        ];
        for (fs_type, super_options, want) in table {
            assert_eq!(unit_options(fs_type, super_options), want, "{fs_type} {super_options}");
        }
        assert_eq!(mount_options("xfs", false), XFS_OPTIONS);
    }

    #[test]
    fn only_an_xfs_without_a_fixed_allocsize_gets_the_preallocation_note() {
        let mount = |fs_type: &str, super_options: &str| mountinfo::Mount {
            device_number: "259:1".into(),
            mount_point: "/var/lib/docker".into(),
            mount_options: "rw,noatime".into(),
            fs_type: fs_type.into(),
            source: "/dev/nvme1n1".into(),
            super_options: super_options.into(),
        };
        let table = [
            ("xfs", "rw,attr2,inode64,logbufs=8,logbsize=32k,prjquota", true),
            ("xfs", "rw,attr2,inode64,allocsize=4096k,logbufs=8,prjquota", false),
            ("ext4", "rw", false),
        ];
        for (fs_type, super_options, noted) in table {
            let note = preallocation_note(&mount(fs_type, super_options), "reboot");
            assert_eq!(note.is_some(), noted, "{fs_type} {super_options}: {note:?}");
            if let Some(note) = note {
                assert!(note.contains("/var/lib/docker") && note.contains("/dev/nvme1n1") && note.ends_with("reboot"));
            }
        }
    }
}
