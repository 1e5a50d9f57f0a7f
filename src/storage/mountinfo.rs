//! `/proc/self/mountinfo`, parsed: which filesystem is mounted where, from which device, with
//! which superblock options (where xfs says `prjquota` or `noquota`).

use std::path::{Path, PathBuf};

use super::StorageError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted device.
    pub device_number: String,
    pub mount_point: PathBuf,
    pub mount_options: String,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

fn unescape(text: &str) -> String {
    text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            Some(Mount {
                device_number: left.get(2)?.to_string(),
                mount_point: PathBuf::from(unescape(left.get(4)?)),
                mount_options: left.get(5)?.to_string(),
                fs_type: right.next()?.to_string(),
                source: unescape(right.next()?),
                super_options: right.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

pub(crate) const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mounts now. Fails closed: without the list, nothing can tell whether a device is in use
/// or a directory is a mount point, so nothing that depends on it may proceed.
pub fn current() -> Result<Vec<Mount>, StorageError> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|source| StorageError::Mountinfo { source })?;
    let mounts = parse(&text);
    if mounts.is_empty() {
        return Err(StorageError::NoMounts);
    }
    Ok(mounts)
}

/// The mount holding `path` (the longest mount point it lies under; the last one if stacked).
pub fn holding(mounts: &[Mount], path: &Path) -> Option<Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mount_point))
        .max_by_key(|(index, m)| (m.mount_point.components().count(), *index))
        .map(|(_, m)| m.clone())
}

/// Whether `dir` is the root of a filesystem of its own: a mount there of another device than
/// its parent directory's. A running dockerd bind-mounts its data root onto itself (same
/// device): that is still the parent's filesystem, the root disk.
pub fn own_filesystem_at(mounts: &[Mount], dir: &Path) -> bool {
    let here = holding(mounts, dir).filter(|m| m.mount_point == dir);
    let parent = dir.parent().and_then(|parent| holding(mounts, parent));
    match (here, parent) {
        (Some(here), Some(parent)) => here.device_number != parent.device_number,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_bind_mount_is_not_a_filesystem_of_its_own() {
        let mount = |device: &str, at: &str| Mount {
            device_number: device.into(),
            mount_point: at.into(),
            mount_options: String::new(),
            fs_type: "ext4".into(),
            source: String::new(),
            super_options: String::new(),
        };
        let dir = Path::new("/var/lib/docker");
        assert!(!own_filesystem_at(&[mount("254:0", "/")], dir), "not a mount point");
        assert!(!own_filesystem_at(&[mount("254:0", "/"), mount("254:0", "/var/lib/docker")], dir), "dockerd's bind");
        assert!(own_filesystem_at(&[mount("254:0", "/"), mount("259:1", "/var/lib/docker")], dir), "a volume");
    }

    const SAMPLE: &str = "\
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
42 22 7:3 / /tmp/r/var/lib/docker rw,nosuid,nodev,noatime shared:30 - xfs /dev/loop3 rw,attr2,inode64,logbufs=8,logbsize=32k,noquota
43 42 0:50 / /tmp/r/var/lib/docker/overlay2/x/merged rw,relatime - overlay overlay rw,lowerdir=a
44 22 7:4 / /mnt/with\\040space rw - ext4 /dev/loop4 rw
";

    #[test]
    fn parses_and_finds_the_holding_mount() {
        let mounts = parse(SAMPLE);
        assert_eq!(mounts.len(), 4);
        let docker = holding(&mounts, Path::new("/tmp/r/var/lib/docker/containers")).unwrap();
        assert_eq!(
            (docker.fs_type.as_str(), docker.source.as_str(), docker.device_number.as_str()),
            ("xfs", "/dev/loop3", "7:3")
        );
        assert!(docker.super_options.contains("noquota") && docker.mount_options.contains("nodev"));
        assert_eq!(holding(&mounts, Path::new("/etc")).unwrap().mount_point, PathBuf::from("/"));
        assert_eq!(mounts[3].mount_point, PathBuf::from("/mnt/with space"));
    }
}
