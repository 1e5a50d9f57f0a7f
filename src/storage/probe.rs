//! What a block device holds, from `blkid -p` (low-level probing: superblocks, partition
//! tables, RAID/LVM signatures), and the one decision that must never be wrong: format only
//! a device that holds nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The filesystem label nodewarden gives the Docker device (xfs labels hold 12 characters).
pub const LABEL: &str = "nodewarden";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// No signature at all (blkid exit 2).
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

/// Runs `blkid -p`. Exit 2 means nothing found; 4 (usage) and 8 (ambivalent probe: several
/// signatures) are errors, never "empty".
pub fn probe(device: &Path) -> Result<Contents, String> {
    let output = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(device)
        .output()
        .map_err(|e| format!("running blkid (util-linux) on {}: {e}", device.display()))?;
    match output.status.code() {
        Some(0) => Ok(Contents::Found(parse_export(&String::from_utf8_lossy(&output.stdout)))),
        Some(2) => Ok(Contents::Empty),
        Some(8) => Err(format!(
            "{} holds several conflicting signatures (blkid exit 8); refusing to touch it",
            device.display()
        )),
        code => Err(format!(
            "blkid -p {} failed ({code:?}): {}",
            device.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
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
    fn parses_blkid_export() {
        let tags = parse_export("DEVNAME=/dev/loop0\nUUID=abc\nTYPE=xfs\nUSAGE=filesystem\n");
        assert_eq!(tags["TYPE"], "xfs");
        assert_eq!(tags["UUID"], "abc");
    }
}
