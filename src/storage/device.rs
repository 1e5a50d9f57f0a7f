//! Finding the block device `[docker] data-device` names: a /dev path, an EBS volume id
//! (through /dev/disk/by-id, where the NVMe serial is the id without its hyphen), or a launch
//! name such as `xvdcz` (the name itself, its xvd/sd twin that Amazon Linux's udev rules
//! link, or the NVMe identify data through `ebsnvme-id` where installed). A volume id is also
//! matched against the NVMe serials in sysfs, for hosts whose udev names it otherwise. Device paths are
//! looked up under `--root`. Waits a bounded time; a missing device is an error.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::host_paths::HostPaths;
use crate::settings::values::DeviceSpec;

use super::StorageError;

fn launch_name_twins(name: &str) -> Vec<String> {
    let bare = name.trim_start_matches("/dev/");
    let letters = bare.strip_prefix("xvd").or_else(|| bare.strip_prefix("sd")).unwrap_or(bare);
    let mut twins = vec![bare.to_string()];
    for twin in [format!("xvd{letters}"), format!("sd{letters}")] {
        if !twins.contains(&twin) {
            twins.push(twin);
        }
    }
    twins
}

/// Where to look, in order, all under `--root`: never the real /dev behind a test root's back
/// (a test naming `/dev/nvme1n1` must not find the host's disk); a test root carries links.
pub fn candidates(spec: &DeviceSpec, paths: &HostPaths) -> Vec<PathBuf> {
    match spec {
        DeviceSpec::None => vec![],
        DeviceSpec::Path(path) => {
            let mut found = vec![paths.host(path)];
            let name = path.to_string_lossy();
            let bare = name.trim_start_matches("/dev/");
            if bare.starts_with("xvd") || bare.starts_with("sd") {
                found.extend(launch_name_twins(bare).iter().skip(1).map(|n| paths.host(format!("/dev/{n}"))));
            }
            found
        }
        DeviceSpec::Volume(volume) => {
            let serial = volume.nvme_serial();
            vec![
                paths.host(format!("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{serial}")),
                paths.host(format!("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{serial}-ns-1")),
            ]
        }
        DeviceSpec::LaunchName(name) => {
            launch_name_twins(name).iter().map(|n| paths.host(format!("/dev/{n}"))).collect()
        }
    }
}

/// NVMe devices whose EBS identify data names `launch_name` (via amazon-ec2-utils' ebsnvme-id).
fn nvme_by_launch_name(launch_name: &str, paths: &HostPaths) -> Option<PathBuf> {
    let tool = ["/usr/sbin/ebsnvme-id", "/sbin/ebsnvme-id"].into_iter().find(|p| Path::new(p).exists())?;
    let twins = launch_name_twins(launch_name);
    let dev = paths.host("/dev");
    let entries = std::fs::read_dir(&dev).ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("nvme") && name.ends_with("n1")) {
            continue;
        }
        let output = Command::new(tool).args(["-b", "-u"]).arg(entry.path()).output().ok()?;
        let answer = String::from_utf8_lossy(&output.stdout).trim().trim_start_matches("/dev/").to_string();
        if output.status.success() && twins.contains(&answer) {
            return Some(entry.path());
        }
    }
    None
}

/// The NVMe namespace whose controller reports `serial` (EBS puts the volume id there), read
/// from sysfs: found even where udev's by-id link is missing or names another model.
fn nvme_by_serial(serial: &str, paths: &HostPaths) -> Option<PathBuf> {
    let entries = std::fs::read_dir(paths.host("/sys/block")).ok()?;
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    // Only namespaces with a device node: with native NVMe multipath the controller's own path
    // (`nvme0c0n1`) reports the serial too, but is hidden; `nvme0n1` is the one to use.
    names.into_iter().filter(|name| name.starts_with("nvme")).find_map(|name| {
        let reported = std::fs::read_to_string(paths.host(format!("/sys/block/{name}/device/serial"))).ok()?;
        let node = paths.host(format!("/dev/{name}"));
        (reported.trim() == serial && node.exists()).then_some(node)
    })
}

/// Resolves the device, waiting up to `wait` for it to appear (EBS attaches can lag at boot).
pub fn resolve(spec: &DeviceSpec, paths: &HostPaths, wait: Duration) -> Result<PathBuf, StorageError> {
    let candidates = candidates(spec, paths);
    let deadline = Instant::now() + wait;
    loop {
        // The identify data and sysfs are read anew each round: the device may attach meanwhile.
        let found = match spec {
            DeviceSpec::LaunchName(name) => nvme_by_launch_name(name, paths),
            DeviceSpec::Volume(volume) => nvme_by_serial(&volume.nvme_serial(), paths),
            DeviceSpec::None | DeviceSpec::Path(_) => None,
        };
        for candidate in candidates.iter().chain(&found) {
            if let Ok(real) = std::fs::canonicalize(candidate) {
                let metadata = std::fs::metadata(&real).map_err(|source| StorageError::io("reading", &real, source))?;
                if !metadata.file_type().is_block_device() {
                    return Err(StorageError::NotBlockDevice { device: candidate.clone(), real });
                }
                return Ok(real);
            }
        }
        if Instant::now() >= deadline {
            return Err(StorageError::NoDevice { wait, looked: candidates });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::values::VolumeId;
    use std::str::FromStr;

    #[test]
    fn candidates_cover_names_twins_and_volume_ids() {
        let paths = HostPaths::new("/r");
        let launch = candidates(&DeviceSpec::LaunchName("xvdcz".into()), &paths);
        assert_eq!(launch, ["/r/dev/xvdcz", "/r/dev/sdcz"].map(PathBuf::from), "never the real /dev under a root");
        let path = candidates(&DeviceSpec::Path("/dev/sdf".into()), &paths);
        assert!(path.contains(&PathBuf::from("/r/dev/xvdf")));
        let volume = candidates(&DeviceSpec::Volume(VolumeId::from_str("vol-0123456789abcdef0").unwrap()), &paths);
        assert_eq!(volume[0], PathBuf::from("/r/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"));
    }

    #[test]
    fn a_missing_device_is_an_error_naming_where_it_looked() {
        let root = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(root.path());
        let error = resolve(&DeviceSpec::LaunchName("xvdzz".into()), &paths, Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(error.contains("xvdzz") && error.contains("root disk"), "{error}");
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::write(root.path().join("dev/sdzz"), b"").unwrap();
        let error = resolve(&DeviceSpec::LaunchName("xvdzz".into()), &paths, Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a block device"), "{error}");
    }

    #[test]
    fn a_volume_is_found_by_its_nvme_serial_in_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(root.path());
        let volume = DeviceSpec::from_str("vol-0123456789abcdef0").unwrap();
        // nvme1c1n1 is multipath's hidden path to the same namespace: no device node.
        let devices = [
            ("nvme0n1", "vol0aaaaaaaaaaaaaaaa"),
            ("nvme1c1n1", "vol0123456789abcdef0"),
            ("nvme1n1", "vol0123456789abcdef0"),
        ];
        for (name, serial) in devices {
            let sys = root.path().join(format!("sys/block/{name}/device"));
            std::fs::create_dir_all(&sys).unwrap();
            // NVMe pads the serial with spaces.
            std::fs::write(sys.join("serial"), format!("{serial:<20}    \n")).unwrap();
        }
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::write(root.path().join("dev/nvme1n1"), b"").unwrap();
        let error = resolve(&volume, &paths, Duration::from_millis(100)).unwrap_err().to_string();
        assert!(error.contains("dev/nvme1n1") && error.contains("not a block device"), "{error}");
    }
}
