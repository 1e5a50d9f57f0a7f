//! When each image was last used, which Docker does not record (moby#13621 was closed). Learnt
//! from the event stream like docuum, reconciled with full listings like kubelet, persisted
//! like the ECS agent so it survives restarts of nodewarden and of Docker (image ids are
//! stable across both). Stored under nodewarden's state directory, on the root disk.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::inventory::{ContainerState, Inventory, Usage, UsageMap};
use crate::fsutil::{WriteError, write_atomic};

const VERSION: u32 = 1;

/// What the event stream tells the store, already resolved to an image id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageEvent {
    /// A container was created, started, stopped or removed on this image.
    Used { image_id: String, at: SystemTime },
    /// The image was pulled, loaded, imported or tagged (someone put it here to use it).
    Arrived { image_id: String, at: SystemTime },
    /// The image was deleted.
    Deleted { image_id: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Persisted {
    version: u32,
    /// Time of the last event applied (unix seconds), to resume the stream with `since`.
    #[serde(default)]
    events_seen_until: Option<f64>,
    images: UsageMap,
}

#[derive(Debug)]
pub struct LastUseStore {
    path: PathBuf,
    data: Persisted,
    dirty: bool,
}

impl LastUseStore {
    /// Loads the store; a missing file is an empty store, and an unreadable one is moved aside
    /// (never silently overwritten) and replaced by an empty store.
    /// `path` is `HostPaths::image_usage`.
    pub fn load(path: &Path) -> LastUseStore {
        let path = path.to_path_buf();
        let data = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Persisted { version: VERSION, ..Persisted::default() }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read image usage; starting empty");
                Persisted { version: VERSION, ..Persisted::default() }
            }
            Ok(bytes) => match serde_json::from_slice::<Persisted>(&bytes) {
                Ok(data) if data.version == VERSION => data,
                result => {
                    let aside = path.with_extension("json.unreadable");
                    let _ = std::fs::rename(&path, &aside);
                    tracing::warn!(
                        path = %path.display(), moved_to = %aside.display(), error = ?result.err().map(|e| e.to_string()),
                        "image usage file unreadable or of another version; starting empty"
                    );
                    Persisted { version: VERSION, ..Persisted::default() }
                }
            },
        };
        LastUseStore { path, data, dirty: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn usage(&self) -> &UsageMap {
        &self.data.images
    }

    /// Where to resume the event stream.
    pub fn events_seen_until(&self) -> Option<SystemTime> {
        self.data.events_seen_until.and_then(crate::time::from_unix_seconds)
    }

    pub fn apply(&mut self, event: &UsageEvent) {
        match event {
            UsageEvent::Used { image_id, at } | UsageEvent::Arrived { image_id, at } => {
                let entry = self.data.images.entry(image_id.clone()).or_insert(Usage {
                    first_seen: *at,
                    last_used: None,
                    last_container_use: None,
                });
                entry.first_seen = entry.first_seen.min(*at);
                if entry.last_used.is_none_or(|last| last < *at) {
                    entry.last_used = Some(*at);
                }
                if matches!(event, UsageEvent::Used { .. }) && entry.last_container_use.is_none_or(|last| last < *at) {
                    entry.last_container_use = Some(*at);
                }
            }
            UsageEvent::Deleted { image_id } => {
                self.data.images.remove(image_id);
            }
        }
        self.dirty = true;
    }

    /// Records that events up to `at` were applied.
    pub fn seen_until(&mut self, at: SystemTime) {
        let secs = crate::time::to_unix_seconds(at);
        if self.data.events_seen_until.is_none_or(|s| s < secs) {
            self.data.events_seen_until = Some(secs);
            self.dirty = true;
        }
    }

    /// Aligns the store with a full listing: new images are first seen `now`, images a running
    /// container holds are used `now`, and images gone from Docker are forgotten.
    pub fn reconcile(&mut self, inventory: &Inventory, now: SystemTime) {
        let present: std::collections::BTreeSet<&str> = inventory.images.iter().map(|i| i.id.as_str()).collect();
        let before = self.data.images.len();
        self.data.images.retain(|id, _| present.contains(id.as_str()));
        let mut changed = self.data.images.len() != before;
        for image in &inventory.images {
            if !self.data.images.contains_key(&image.id) {
                self.data
                    .images
                    .insert(image.id.clone(), Usage { first_seen: now, last_used: None, last_container_use: None });
                changed = true;
            }
        }
        for container in inventory.containers.iter().filter(|c| !c.state.is_finished()) {
            if container.state == ContainerState::Created {
                continue;
            }
            if let Some(usage) = self.data.images.get_mut(&container.image_id) {
                usage.last_used = Some(now);
                usage.last_container_use = Some(now);
                changed = true;
            }
        }
        self.dirty |= changed;
    }

    /// Writes the store if it changed since the last save.
    pub fn save(&mut self) -> Result<(), WriteError> {
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.data).expect("usage data always serializes");
        write_atomic(&self.path, &bytes, 0o644)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::inventory::{Container, Image};
    use std::time::{Duration, UNIX_EPOCH};

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn image(id: &str) -> Image {
        Image {
            id: id.into(),
            parent_id: None,
            repo_tags: vec![],
            repo_digests: vec![],
            size: 1,
            shared_size: None,
            created: t(0),
            labels: Default::default(),
        }
    }

    #[test]
    fn events_move_last_use_forward_only_and_deletes_forget() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LastUseStore::load(&dir.path().join("image-usage.json"));
        store.apply(&UsageEvent::Used { image_id: "a".into(), at: t(10) });
        store.apply(&UsageEvent::Used { image_id: "a".into(), at: t(5) });
        assert_eq!(
            store.usage()["a"],
            Usage { first_seen: t(5), last_used: Some(t(10)), last_container_use: Some(t(10)) }
        );
        assert!(store.usage()["a"].used_by_a_container_since_it_arrived());
        // Pulled again after that use: a task may be about to start on it.
        store.apply(&UsageEvent::Arrived { image_id: "a".into(), at: t(20) });
        assert_eq!(
            store.usage()["a"],
            Usage { first_seen: t(5), last_used: Some(t(20)), last_container_use: Some(t(10)) }
        );
        assert!(!store.usage()["a"].used_by_a_container_since_it_arrived());
        store.apply(&UsageEvent::Deleted { image_id: "a".into() });
        assert!(store.usage().is_empty());
        store.apply(&UsageEvent::Arrived { image_id: "b".into(), at: t(3) });
        assert_eq!(store.usage()["b"].last_container_use, None);
        assert!(!store.usage()["b"].used_by_a_container_since_it_arrived());
    }

    #[test]
    fn reconcile_adds_marks_running_and_forgets_gone_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LastUseStore::load(&dir.path().join("image-usage.json"));
        store.apply(&UsageEvent::Used { image_id: "gone".into(), at: t(1) });
        store.apply(&UsageEvent::Used { image_id: "kept".into(), at: t(2) });
        let running = Container {
            id: "c".into(),
            name: "web".into(),
            image_id: "busy".into(),
            state: ContainerState::Running,
            created: t(0),
            finished_at: None,
            size_rw: None,
            labels: Default::default(),
        };
        let inventory =
            Inventory { images: vec![image("kept"), image("new"), image("busy")], containers: vec![running] };
        store.reconcile(&inventory, t(100));
        assert_eq!(store.usage().keys().collect::<Vec<_>>(), ["busy", "kept", "new"]);
        assert_eq!(store.usage()["kept"].last_used, Some(t(2)), "a known image keeps its history");
        assert_eq!(store.usage()["new"], Usage { first_seen: t(100), last_used: None, last_container_use: None });
        assert_eq!(store.usage()["busy"].last_used, Some(t(100)));
        assert_eq!(store.usage()["busy"].last_container_use, Some(t(100)), "a running container uses it");
    }

    #[test]
    fn persists_across_loads_and_moves_a_corrupt_file_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LastUseStore::load(&dir.path().join("image-usage.json"));
        store.apply(&UsageEvent::Used { image_id: "a".into(), at: t(10) });
        store.seen_until(t(11));
        store.save().unwrap();
        let again = LastUseStore::load(&dir.path().join("image-usage.json"));
        assert_eq!(again.usage()["a"].last_used, Some(t(10)));
        assert_eq!(again.usage()["a"].last_container_use, Some(t(10)));
        assert_eq!(again.events_seen_until(), Some(t(11)));

        std::fs::write(dir.path().join("image-usage.json"), b"{not json").unwrap();
        let fresh = LastUseStore::load(&dir.path().join("image-usage.json"));
        assert!(fresh.usage().is_empty());
        assert!(dir.path().join("image-usage.json.unreadable").exists(), "the unreadable file is kept for inspection");
    }

    #[test]
    fn a_file_from_before_container_use_was_recorded_loads_with_none_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image-usage.json");
        let text = format!(
            r#"{{"version":{VERSION},"events_seen_until":1700000011.0,"images":{{"sha256:a":{{"first_seen":1700000001.0,"last_used":1700000010.0}}}}}}"#
        );
        std::fs::write(&path, text).unwrap();
        let store = LastUseStore::load(&path);
        assert_eq!(store.usage()["sha256:a"].last_used, Some(t(10)), "the file was kept, not moved aside");
        assert_eq!(store.usage()["sha256:a"].last_container_use, None);
    }

    use proptest::prelude::*;

    proptest! {
        /// Any number in the usage file's timestamps: the store loads (or starts empty with the
        /// file moved aside), never panics, and resuming the event stream never panics either.
        #[test]
        fn damaged_timestamps_never_crash_the_store(
            seen in any::<f64>().prop_filter("finite", |f| f.is_finite()),
            used in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("image-usage.json");
            let text = format!(
                r#"{{"version":{VERSION},"events_seen_until":{seen:e},"images":{{"sha256:a":{{"first_seen":{used:e},"last_used":{used:e}}}}}}}"#
            );
            std::fs::write(&path, text).unwrap();
            let store = LastUseStore::load(&path);
            let _ = store.events_seen_until();
            prop_assert!(path.exists() || dir.path().join("image-usage.json.unreadable").exists());
        }
    }
}
