//! A private Docker daemon per test: its data-root on a loop-mounted xfs, its own socket,
//! exec-root and pidfile under a temp dir, no bridge and no iptables. Dropping it (also after
//! a panic) stops the daemon by PID, unmounts and detaches the loop device.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use nodewarden::environment::Environment;
use tempfile::TempDir;

use super::loopdisk::LoopDisk;
use super::slots::{self, Slot};
use super::system::{self, require_root, require_tool};

pub struct DockerOptions {
    /// Size of the loop-mounted xfs holding the data-root.
    pub disk_mb: u64,
    /// Extra daemon.json keys (the file is private: /etc/docker/daemon.json is never read).
    pub config: serde_json::Value,
    /// Take a slot (see `slots`). False only for a test that holds every slot itself.
    pub take_slot: bool,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions { disk_mb: 512, config: serde_json::json!({}), take_slot: true }
    }
}

pub struct TestDocker {
    pub client: Docker,
    pub data_root: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
    config_file: PathBuf,
    /// False when the config file names the data-root itself (dockerd refuses both).
    pass_data_root: bool,
    disk: Option<LoopDisk>,
    dir: Option<TempDir>,
    _slot: Option<Slot>,
}

impl TestDocker {
    pub async fn start() -> TestDocker {
        Self::start_with(DockerOptions::default()).await
    }

    pub async fn start_with(options: DockerOptions) -> TestDocker {
        require_root("a private dockerd");
        require_tool("dockerd", "docker.io");
        let slot = options.take_slot.then(|| slots::acquire("docker"));
        // Short paths: containerd's socket under exec-root must fit in 108 bytes.
        let dir = tempfile::Builder::new().prefix("nwd-").tempdir_in("/tmp").expect("creating a temp dir in /tmp");
        let data_root = dir.path().join("data");
        let mut disk = LoopDisk::create(dir.path(), "docker", options.disk_mb);
        disk.format_xfs();
        // As `nodewarden setup` mounts Docker's xfs (`allocsize`, see src/storage/mod.rs).
        disk.mount(&data_root, "noatime,allocsize=4m");
        let config_file = dir.path().join("daemon.json");
        std::fs::write(&config_file, options.config.to_string()).expect("writing daemon.json");
        let socket = dir.path().join("docker.sock");
        let mut docker = TestDocker {
            client: placeholder_client(),
            data_root,
            socket,
            child: None,
            config_file,
            pass_data_root: true,
            disk: Some(disk),
            dir: Some(dir),
            _slot: slot,
        };
        docker.launch().await;
        docker
    }

    /// A dockerd on a config file written by someone else (nodewarden setup), whose
    /// `data-root` is `data_root`; the caller owns that filesystem.
    pub async fn start_on(config_file: &Path, data_root: &Path) -> TestDocker {
        require_root("a private dockerd");
        require_tool("dockerd", "docker.io");
        let slot = Some(slots::acquire("docker"));
        let dir = tempfile::Builder::new().prefix("nwd-").tempdir_in("/tmp").expect("creating a temp dir in /tmp");
        let socket = dir.path().join("docker.sock");
        let mut docker = TestDocker {
            client: placeholder_client(),
            data_root: data_root.to_path_buf(),
            socket,
            child: None,
            config_file: config_file.to_path_buf(),
            pass_data_root: false,
            disk: None,
            dir: Some(dir),
            _slot: slot,
        };
        docker.launch().await;
        docker
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the temp dir lives as long as the daemon").path()
    }

    /// `DOCKER_HOST` for this daemon.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn environment(&self) -> Environment {
        let host = self.host();
        Environment::from_lookup(|name| (name == "DOCKER_HOST").then(|| host.clone())).expect("a valid DOCKER_HOST")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("dockerd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    async fn launch(&mut self) {
        let dir = self.dir().to_path_buf();
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("creating dockerd.log");
        let mut command = Command::new(require_tool("dockerd", "docker.io"));
        command.arg("--host").arg(self.host());
        if self.pass_data_root {
            command.arg("--data-root").arg(&self.data_root);
        }
        let child = command
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--config-file")
            .arg(&self.config_file)
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false", "--log-level=warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("dockerd exited with {status} while starting; its log:\n{}", self.log());
            }
            if self.socket.exists()
                && let Ok(client) = nodewarden::docker::connect(&self.environment()).await
                && client.ping().await.is_ok()
            {
                self.client = client;
                return;
            }
            assert!(Instant::now() < deadline, "dockerd did not answer within 60 s; its log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops dockerd (SIGTERM, then SIGKILL for it and everything it started).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = child.id();
        let family = system::descendants(pid);
        // A test may have frozen it (SIGSTOP, "Docker wedged"): a stopped process keeps SIGTERM pending.
        system::signal(pid, "CONT");
        system::signal(pid, "TERM");
        if !system::wait_gone(pid, Duration::from_secs(20)) {
            eprintln!("dockerd {pid} ignored SIGTERM; killing it and its children {family:?}");
            system::signal(pid, "KILL");
        }
        let _ = child.wait();
        for orphan in family.into_iter().filter(|p| system::alive(*p)) {
            system::signal(orphan, "KILL");
        }
    }

    /// Restarts dockerd on the same data-root (the "Docker restarted" case).
    pub async fn restart(&mut self) {
        self.stop();
        // Leftover mounts of the old daemon (netns, shm) would confuse the new one.
        system::unmount_all_under(&self.dir().join("exec"));
        self.launch().await;
    }
}

/// A client that is never used: replaced as soon as dockerd answers.
fn placeholder_client() -> Docker {
    Docker::connect_with_unix("/nonexistent", 1, bollard::API_DEFAULT_VERSION)
        .or_else(|_| Docker::connect_with_http("tcp://127.0.0.1:1", 1, bollard::API_DEFAULT_VERSION))
        .expect("building an unconnected client cannot fail")
}

impl Drop for TestDocker {
    fn drop(&mut self) {
        self.stop();
        let dir = self.dir().to_path_buf();
        system::unmount_all_under(&dir.join("exec"));
        // Container mounts below the data root; the data root itself only when it is ours.
        for mount in system::mounts_under(&self.data_root).into_iter().filter(|m| *m != self.data_root) {
            system::unmount_all_under(&mount);
        }
        if self.disk.is_some() {
            system::unmount_all_under(&self.data_root);
        }
        drop(self.disk.take());
        drop(self.dir.take());
    }
}
