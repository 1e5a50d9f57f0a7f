//! Every host path nodewarden reads or writes, taken under `--root` the way `systemctl --root`
//! does, so tests and the demo run against a temporary root.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
}

impl HostPaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostPaths { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `absolute` (a host path such as `/etc/ecs`) under the root.
    pub fn host(&self, absolute: impl AsRef<Path>) -> PathBuf {
        let relative = absolute.as_ref().strip_prefix("/").unwrap_or(absolute.as_ref());
        self.root.join(relative)
    }

    pub fn settings_file(&self) -> PathBuf {
        self.host("/etc/nodewarden/settings.toml")
    }

    pub fn ecs_config(&self) -> PathBuf {
        self.host("/etc/ecs/ecs.config")
    }

    pub fn docker_daemon_json(&self) -> PathBuf {
        self.host("/etc/docker/daemon.json")
    }

    pub fn systemd_dir(&self) -> PathBuf {
        self.host("/etc/systemd/system")
    }

    /// nodewarden's own state, on the root disk (never on Docker's disk).
    pub fn state_dir(&self) -> PathBuf {
        self.host("/var/lib/nodewarden")
    }

    /// Who drained this instance and why (`drain::record`).
    pub fn drain_record(&self) -> PathBuf {
        self.state_dir().join("drain.json")
    }

    /// When each image was last used, learnt from Docker's events (`gc::last_use`).
    pub fn image_usage(&self) -> PathBuf {
        self.state_dir().join("image-usage.json")
    }

    /// The last good settings from userdata, saved by `nodewarden setup` for the other commands.
    pub fn saved_userdata(&self) -> PathBuf {
        self.state_dir().join("userdata.toml")
    }

    /// Left by `nodewarden setup` when it finished (for `/readyz`).
    pub fn setup_marker(&self) -> PathBuf {
        self.state_dir().join("setup-done")
    }

    /// Left by `nodewarden setup` while it keeps Docker's data on the root disk, where it found
    /// it (`storage::shared_disk`).
    pub fn shared_disk_marker(&self) -> PathBuf {
        self.state_dir().join("docker-on-root-disk.json")
    }

    /// Left by `nodewarden setup` in this boot (`/run` is emptied at boot) once Docker's disk
    /// and daemon.json are ready; the package's docker.service drop-in asserts it, so Docker
    /// never starts unprepared.
    pub fn docker_ready_marker(&self) -> PathBuf {
        self.host("/run/nodewarden/docker-ready")
    }

    pub fn docker_data_root(&self) -> PathBuf {
        self.host("/var/lib/docker")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_live_under_the_root() {
        let default = HostPaths::new("/");
        assert_eq!(default.ecs_config(), PathBuf::from("/etc/ecs/ecs.config"));
        let test = HostPaths::new("/tmp/root");
        assert_eq!(test.ecs_config(), PathBuf::from("/tmp/root/etc/ecs/ecs.config"));
        assert_eq!(test.docker_daemon_json(), PathBuf::from("/tmp/root/etc/docker/daemon.json"));
        assert_eq!(test.state_dir(), PathBuf::from("/tmp/root/var/lib/nodewarden"));
        for state_file in [
            test.drain_record(),
            test.image_usage(),
            test.saved_userdata(),
            test.setup_marker(),
            test.shared_disk_marker(),
        ] {
            assert!(state_file.starts_with(test.state_dir()), "{}", state_file.display());
        }
        assert_eq!(test.host("relative/x"), PathBuf::from("/tmp/root/relative/x"));
    }
}
