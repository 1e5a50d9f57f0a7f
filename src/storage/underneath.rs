//! What a `/var/lib/docker` on the root disk holds before Docker's device is mounted over it:
//! mounting would hide its images, containers and volumes (and keep their space used on the
//! root disk), so only an empty directory or Docker's empty skeleton (a dockerd that started
//! once, as Debian's docker.io package does on install) is mounted over.

use std::path::Path;

use super::StorageError;

/// Entries dockerd makes in its data root; anything else there is someone else's.
const DOCKER_ENTRIES: &[&str] = &[
    "buildkit",
    "containerd",
    "containers",
    "engine-id",
    "image",
    "network",
    "plugins",
    "runtimes",
    "swarm",
    "tmp",
    "trust",
    "volumes",
    // Storage drivers' layer stores: they hold data only for images counted above.
    "overlay2",
    "fuse-overlayfs",
    "vfs",
    "btrfs",
    "zfs",
];

/// What mounting over the directory would hide.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Underneath {
    pub images: usize,
    pub containers: usize,
    pub volumes: usize,
    /// Top-level entries that are not Docker's.
    pub foreign: Vec<String>,
}

impl Underneath {
    pub fn is_empty(&self) -> bool {
        self.images == 0 && self.containers == 0 && self.volumes == 0 && self.foreign.is_empty()
    }

    /// "2 images, 1 container and notes.txt", for the refusal.
    pub fn describe(&self) -> String {
        let count = |n: usize, what: &str| match n {
            0 => None,
            1 => Some(format!("1 {what}")),
            n => Some(format!("{n} {what}s")),
        };
        let mut parts: Vec<String> =
            [count(self.images, "image"), count(self.containers, "container"), count(self.volumes, "volume")]
                .into_iter()
                .flatten()
                .collect();
        parts.extend(self.foreign.iter().cloned());
        match parts.split_last() {
            None => "nothing".to_string(),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }
}

/// Looks at `dir` as Docker lays it out; a directory that cannot be read fails closed.
pub fn survey(dir: &Path) -> Result<Underneath, StorageError> {
    let top = entries(dir)?;
    let mut found = Underneath {
        containers: entries(&dir.join("containers"))?.len(),
        // Volumes are directories; `metadata.db` and `backingFsBlockDev` are the store's own.
        volumes: entries(&dir.join("volumes"))?.iter().filter(|name| dir.join("volumes").join(name).is_dir()).count(),
        foreign: top.iter().filter(|name| !DOCKER_ENTRIES.contains(&name.as_str())).cloned().collect(),
        images: 0,
    };
    // The classic image store per storage driver, and the containerd image store's blobs.
    for driver in entries(&dir.join("image"))? {
        found.images += entries(&dir.join("image").join(driver).join("imagedb/content/sha256"))?.len();
    }
    found.images += entries(&dir.join("containerd/daemon/io.containerd.content.v1.content/blobs/sha256"))?.len();
    Ok(found)
}

/// Names in `dir`, sorted; none when it does not exist.
fn entries(dir: &Path) -> Result<Vec<String>, StorageError> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(source) => return Err(StorageError::Survey { dir: dir.to_path_buf(), source }),
    };
    let mut names = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| StorageError::Survey { dir: dir.to_path_buf(), source })?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(paths: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for path in paths {
            let full = dir.path().join(path);
            if let Some(file) = path.strip_suffix('!') {
                let full = dir.path().join(file);
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(full, b"x").unwrap();
            } else {
                std::fs::create_dir_all(full).unwrap();
            }
        }
        dir
    }

    #[test]
    fn an_empty_dir_and_dockers_empty_skeleton_hide_nothing() {
        assert!(survey(Path::new("/nonexistent/nodewarden")).unwrap().is_empty());
        let skeleton = tree(&[
            "buildkit",
            "containers",
            "engine-id!",
            "image/overlay2/imagedb/content/sha256",
            "image/overlay2/layerdb",
            "image/overlay2/repositories.json!",
            "network/files/local-kv.db!",
            "overlay2/l",
            "plugins",
            "runtimes",
            "swarm",
            "tmp",
            "volumes/metadata.db!",
            "volumes/backingFsBlockDev!",
        ]);
        assert_eq!(survey(skeleton.path()).unwrap(), Underneath::default());
    }

    #[test]
    fn images_containers_volumes_and_foreign_files_are_counted_and_named() {
        let used = tree(&[
            "containers/c1",
            "containers/c2",
            "image/overlay2/imagedb/content/sha256/i1!",
            "containerd/daemon/io.containerd.content.v1.content/blobs/sha256/b1!",
            "volumes/v1/_data",
            "volumes/metadata.db!",
            "notes.txt!",
        ]);
        let found = survey(used.path()).unwrap();
        assert_eq!(found, Underneath { images: 2, containers: 2, volumes: 1, foreign: vec!["notes.txt".to_string()] });
        assert_eq!(found.describe(), "2 images, 2 containers, 1 volume and notes.txt");
        assert_eq!(Underneath { containers: 1, ..Underneath::default() }.describe(), "1 container");
    }
}
