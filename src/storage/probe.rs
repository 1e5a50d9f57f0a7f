//! What a block device holds, from `blkid -p` (low-level probing: superblocks, partition
//! tables, RAID/LVM signatures), and the one decision that must never be wrong: format only
//! a device that holds nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::StorageError;

/// The filesystem label nodewarden gives the Docker device (xfs labels hold 12 characters).
pub const LABEL: &str = "nodewarden";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// Proven empty: blkid found no signature, ran without a word of error, and the device's
    /// first and last MiB read as zeros.
    Empty,
    /// `blkid -p -o export` tags: TYPE, LABEL, UUID, PTTYPE, USAGE…
    Found(BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Format,
    /// Our own filesystem (the reboot case), of this type.
    Reuse {
        fs_type: String,
        uuid: String,
    },
    Refuse(String),
}

/// Parses `KEY=value` lines of `blkid -o export`.
pub fn parse_export(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

/// How much of each end of the device must read as zeros before "no signature" counts as
/// empty: partition tables, superblocks and their backups live there.
const EDGE_BYTES: u64 = 1 << 20;

/// What the probe saw, as plain data for [`classify`].
#[derive(Debug)]
pub struct Observation {
    /// blkid's exit code (`None`: killed by a signal).
    pub blkid_exit: Option<i32>,
    pub blkid_stdout: String,
    pub blkid_stderr: String,
    /// Whether the first and last [`EDGE_BYTES`] are all zeros (`Err`: they could not be read).
    pub edges_zero: Result<bool, std::io::Error>,
}

/// Probes `device` while holding it open exclusively (`O_EXCL`: the kernel refuses while it is
/// mounted or claimed by md, LVM or another mkfs), so nothing can take it during the probe;
/// `mounted_by_us` (our filesystem at Docker's mount point, the reboot case) probes it shared.
pub fn probe(device: &Path, mounted_by_us: bool) -> Result<Contents, StorageError> {
    let mut held = open_for_probe(device, !mounted_by_us)?;
    let output = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(device)
        .output()
        .map_err(|source| StorageError::Blkid { device: device.to_path_buf(), source })?;
    let observation = Observation {
        blkid_exit: output.status.code(),
        blkid_stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        blkid_stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        edges_zero: edges_are_zero(&mut held),
    };
    classify(device, &observation)
}

/// blkid's verdict, trusted only as far as it goes: exit 2 means "nothing found" *or* "could not
/// read", so it counts as empty only with no error output and zeros at both ends (data blkid
/// does not recognise, a raw database or a headerless cipher, is refused, not formatted). 4
/// (usage) and 8 (ambivalent: several signatures) are errors, never "empty".
pub fn classify(device: &Path, seen: &Observation) -> Result<Contents, StorageError> {
    let refused = |reason: String| StorageError::Refused { device: device.to_path_buf(), reason };
    let device = device.display();
    match seen.blkid_exit {
        Some(0) => Ok(Contents::Found(parse_export(&seen.blkid_stdout))),
        Some(2) if !seen.blkid_stderr.is_empty() => Err(refused(format!(
            "blkid -p {device} could not read the device ({}); refusing to format it",
            seen.blkid_stderr
        ))),
        Some(2) => match &seen.edges_zero {
            Ok(true) => Ok(Contents::Empty),
            Ok(false) => Err(refused(format!(
                "{device} has no signature blkid knows, but its first or last MiB holds data (something blkid does not \
                 recognise); nodewarden formats only devices that hold nothing. If its data is not needed, wipe it \
                 yourself (blkdiscard {device}), or point [docker] data-device at an empty device"
            ))),
            Err(error) => {
                Err(refused(format!("reading the ends of {device} to prove it empty: {error}; refusing to format it")))
            }
        },
        Some(8) => {
            Err(refused(format!("{device} holds several conflicting signatures (blkid exit 8); refusing to touch it")))
        }
        code => Err(refused(format!("blkid -p {device} failed ({code:?}): {}", seen.blkid_stderr))),
    }
}

fn open_for_probe(device: &Path, exclusive: bool) -> Result<std::fs::File, StorageError> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = if exclusive { rustix::fs::OFlags::EXCL.bits() as i32 } else { 0 };
    std::fs::OpenOptions::new().read(true).custom_flags(flags).open(device).map_err(|source| {
        let device = device.to_path_buf();
        if source.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) {
            StorageError::InUse { device }
        } else {
            StorageError::Open { device, source }
        }
    })
}

fn edges_are_zero(device: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let size = device.seek(SeekFrom::End(0))?;
    let mut buffer = vec![0u8; EDGE_BYTES.min(size) as usize];
    for start in [0, size.saturating_sub(EDGE_BYTES)] {
        device.seek(SeekFrom::Start(start))?;
        device.read_exact(&mut buffer)?;
        if buffer.iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Format an empty device; reuse our own filesystem; refuse anything else, saying what it is.
pub fn decide(device: &Path, contents: &Contents) -> Verdict {
    let Contents::Found(tags) = contents else { return Verdict::Format };
    let get = |key: &str| tags.get(key).map(String::as_str);
    if let Some(pttype) = get("PTTYPE") {
        return Verdict::Refuse(format!(
            "{} holds a {pttype} partition table; nodewarden formats only devices that hold nothing. \
             Point [docker] data-device at an empty device, or wipe this one yourself if its data is not needed",
            device.display()
        ));
    }
    match (get("TYPE"), get("USAGE"), get("LABEL")) {
        (Some(fs_type), Some("filesystem"), Some(LABEL)) => {
            Verdict::Reuse { fs_type: fs_type.to_string(), uuid: get("UUID").unwrap_or_default().to_string() }
        }
        (Some(kind), usage, label) => Verdict::Refuse(format!(
            "{} holds {kind}{}{}; nodewarden formats only devices that hold nothing and reuses only its own \
             filesystem (label {LABEL:?}). Point [docker] data-device at an empty device",
            device.display(),
            usage.map(|u| format!(" ({u})")).unwrap_or_default(),
            label.map(|l| format!(" labelled {l:?}")).unwrap_or_default(),
        )),
        (None, _, _) => Verdict::Refuse(format!("{} holds an unrecognised signature: {tags:?}", device.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(pairs: &[(&str, &str)]) -> Contents {
        Contents::Found(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn only_empty_devices_are_formatted_and_only_ours_reused() {
        let dev = Path::new("/dev/nvme1n1");
        assert_eq!(decide(dev, &Contents::Empty), Verdict::Format);
        assert_eq!(
            decide(dev, &found(&[("TYPE", "xfs"), ("USAGE", "filesystem"), ("LABEL", "nodewarden"), ("UUID", "u-1")])),
            Verdict::Reuse { fs_type: "xfs".into(), uuid: "u-1".into() }
        );
        let refusals = [
            (found(&[("TYPE", "ext4"), ("USAGE", "filesystem"), ("UUID", "x")]), "holds ext4 (filesystem)"),
            (found(&[("TYPE", "xfs"), ("USAGE", "filesystem"), ("LABEL", "data")]), "labelled \"data\""),
            (found(&[("PTTYPE", "gpt")]), "gpt partition table"),
            (found(&[("TYPE", "LVM2_member"), ("USAGE", "raid")]), "holds LVM2_member (raid)"),
            (found(&[("TYPE", "linux_raid_member"), ("USAGE", "raid")]), "linux_raid_member"),
            (found(&[("TYPE", "crypto_LUKS"), ("USAGE", "crypto")]), "crypto_LUKS"),
            (found(&[("TYPE", "swap"), ("USAGE", "other"), ("LABEL", "nodewarden")]), "swap"),
        ];
        for (contents, expected) in refusals {
            match decide(dev, &contents) {
                Verdict::Refuse(message) => {
                    assert!(message.contains(expected) && message.contains("/dev/nvme1n1"), "{message}")
                }
                other => panic!("{contents:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn no_signature_is_empty_only_when_blkid_said_nothing_else_and_the_ends_are_zeros() {
        let dev = Path::new("/dev/nvme1n1");
        let seen = |exit: Option<i32>, stderr: &str, edges: Result<bool, std::io::Error>| Observation {
            blkid_exit: exit,
            blkid_stdout: if exit == Some(0) { "TYPE=xfs\n".into() } else { String::new() },
            blkid_stderr: stderr.into(),
            edges_zero: edges,
        };
        assert!(matches!(classify(dev, &seen(Some(2), "", Ok(true))), Ok(Contents::Empty)));
        assert!(matches!(classify(dev, &seen(Some(0), "", Ok(false))), Ok(Contents::Found(t)) if t["TYPE"] == "xfs"));
        let refusals = [
            (seen(Some(2), "", Ok(false)), "holds data"),
            (seen(Some(2), "error: /dev/nvme1n1: Input/output error", Ok(true)), "could not read"),
            (seen(Some(2), "", Err(std::io::Error::other("Input/output error"))), "reading the ends"),
            (seen(Some(8), "", Ok(true)), "several conflicting"),
            (seen(Some(4), "usage", Ok(true)), "failed"),
            (seen(None, "", Ok(true)), "failed"),
        ];
        for (observation, expected) in refusals {
            match classify(dev, &observation) {
                Err(error) => {
                    let message = error.to_string();
                    assert!(message.contains(expected) && message.contains("/dev/nvme1n1"), "{message}")
                }
                other => panic!("{observation:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn parses_blkid_export() {
        let tags = parse_export("DEVNAME=/dev/loop0\nUUID=abc\nTYPE=xfs\nUSAGE=filesystem\n");
        assert_eq!(tags["TYPE"], "xfs");
        assert_eq!(tags["UUID"], "abc");
    }
}
