//! Docker's data found on the root disk when setup first runs (an instance that ran Docker
//! before nodewarden, an AMI baked with images): setup keeps Docker where it is rather than hide
//! that data under a new mount, says so loudly, and leaves a marker under `/var/lib/nodewarden/`
//! so `/status` can carry it as a condition while it lasts. Every other feature (GC, drains, the
//! agent, health) runs as usual; only the own-disk one is off. Setup removes the marker once
//! Docker has a disk of its own (or `data-device = "none"` says the root disk on purpose).

use crate::fsutil::{remove_if_present, write_atomic};
use crate::host_paths::HostPaths;

use super::StorageError;

/// What setup found, as the marker holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedDisk {
    /// The data root, as a host path (`/var/lib/docker`).
    pub data_root: String,
    /// What it held: "3 images, 2 containers and 1 volume".
    pub holds: String,
    /// `[docker] data-device`, which stays unused.
    pub device: String,
    /// When setup decided (RFC 3339).
    pub since: String,
}

/// The `/status` message for a marker's text; `None` without a marker (Docker on its own disk,
/// or on the root disk on purpose) or for one that does not parse (said as such).
pub fn shared_disk_note(marker: Option<&str>) -> Option<String> {
    let text = marker?;
    Some(match serde_json::from_str::<SharedDisk>(text) {
        Ok(found) => format!(
            "Docker's data stays on the root disk: {} held {} when setup ran ({}), so [docker] data-device = \"{}\" \
             is not used and a container filling Docker's disk fills the root disk. GC and drains still act. To \
             move Docker onto its own disk, launch new instances (or drain this one, stop Docker, move or remove \
             {}'s contents, and reboot)",
            found.data_root, found.holds, found.since, found.device, found.data_root
        ),
        Err(_) => "Docker's data stays on the root disk (setup's marker is unreadable)".to_string(),
    })
}

/// The marker's text, if any (for [`shared_disk_note`]).
pub fn read_marker(paths: &HostPaths) -> Option<String> {
    std::fs::read_to_string(paths.shared_disk_marker()).ok()
}

pub fn write_marker(paths: &HostPaths, found: &SharedDisk) -> Result<(), StorageError> {
    let mut text = serde_json::to_string_pretty(found).map_err(StorageError::Encode)?;
    text.push('\n');
    Ok(write_atomic(&paths.shared_disk_marker(), text.as_bytes(), 0o644).map(drop)?)
}

pub fn remove_marker(paths: &HostPaths) -> Result<(), StorageError> {
    Ok(remove_if_present(&paths.shared_disk_marker())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_what_was_found_and_the_way_out() {
        assert_eq!(shared_disk_note(None), None);
        let found = SharedDisk {
            data_root: "/var/lib/docker".into(),
            holds: "3 images and 1 container".into(),
            device: "xvdcz".into(),
            since: "2026-12-04T20:00:00Z".into(),
        };
        let note = shared_disk_note(Some(&serde_json::to_string(&found).unwrap())).unwrap();
        for part in
            ["root disk", "3 images and 1 container", "data-device = \"xvdcz\"", "2026-12-04T20:00:00Z", "reboot"]
        {
            assert!(note.contains(part), "{part} missing from {note}");
        }
        assert!(shared_disk_note(Some("{broken")).unwrap().contains("unreadable"));
    }
}
