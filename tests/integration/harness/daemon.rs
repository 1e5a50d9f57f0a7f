//! `nodewarden run` as a child process with its own temp root, settings file and environment;
//! stopped by PID (SIGTERM, then SIGKILL) when dropped.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use tempfile::TempDir;

use super::system;

pub struct Nodewarden {
    pub root: TempDir,
    pub settings: PathBuf,
    /// The health endpoint's port (a free one, so daemons of parallel tests do not collide).
    pub health_port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
}

impl Nodewarden {
    /// A root with `settings` written to it (plus a `[health]` on a free port unless the
    /// settings have one); nothing runs until `start`.
    pub fn new(settings: &str, env: Vec<(String, String)>) -> Nodewarden {
        let root = tempfile::Builder::new().prefix("nwroot-").tempdir().expect("creating a temp root");
        let path = root.path().join("settings.toml");
        let health_port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut text = settings.to_string();
        if !text.contains("[health]") {
            text.push_str(&format!("\n[health]\nlisten = \"127.0.0.1:{health_port}\"\n"));
        }
        std::fs::write(&path, text).expect("writing settings");
        let log = root.path().join("nodewarden.log");
        Nodewarden { root, settings: path, health_port, env, child: None, log }
    }

    /// Sets an environment variable for the commands started from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// GETs a path of the health endpoint: (status code, body).
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let uri = format!("http://127.0.0.1:{}{path}", self.health_port).parse().ok()?;
        let response = nodewarden::http::HttpClient::new().get(uri, &[], Duration::from_secs(5)).await.ok()?;
        Some((response.status.as_u16(), String::from_utf8_lossy(&response.body).into_owned()))
    }

    /// The live /status document (null while nothing answers).
    pub async fn status(&self) -> serde_json::Value {
        let body = self.get("/status").await.map(|(_, body)| body).unwrap_or_default();
        serde_json::from_str(&body).unwrap_or_default()
    }

    /// Waits until /readyz answers 200, failing after `timeout` with the log.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while self.get("/readyz").await.map(|(code, _)| code) != Some(200) {
            self.assert_running();
            assert!(std::time::Instant::now() < deadline, "never ready; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until /status says condition `kind` is True, failing after `timeout` with the log.
    pub async fn wait_condition(&mut self, kind: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let doc = self.status().await;
            let conditions = doc["conditions"].as_array().cloned().unwrap_or_default();
            if conditions.iter().any(|c| c["type"] == kind && c["status"] == "True") {
                return;
            }
            self.assert_running();
            assert!(std::time::Instant::now() < deadline, "{kind} never True: {doc}\nlog:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the log holds every one of `lines`, failing after `timeout` with the log.
    pub async fn wait_log(&mut self, lines: &[&str], timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let log = self.log();
            if lines.iter().all(|line| log.contains(line)) {
                return;
            }
            self.assert_running();
            assert!(std::time::Instant::now() < deadline, "never logged {lines:?}; log:\n{log}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("var/lib/nodewarden")
    }

    /// The command line every nodewarden invocation of this fixture shares.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = super::nodewarden();
        command
            .args(args)
            .arg("--root")
            .arg(self.root.path())
            .arg("--settings")
            .arg(&self.settings)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NODEWARDEN_LOG", "nodewarden=debug,info");
        command
    }

    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// `nodewarden setup --no-userdata` (Docker's disk as the settings say), asserted to
    /// succeed: the daemon is ready only once setup has run, as on a host.
    pub fn setup(&self) {
        let setup = self.command(&["setup", "--no-userdata"]).output().expect("running nodewarden setup");
        assert!(
            setup.status.success(),
            "nodewarden setup failed: {}{}",
            String::from_utf8_lossy(&setup.stdout),
            String::from_utf8_lossy(&setup.stderr)
        );
    }

    /// Starts with extra environment variables (NOTIFY_SOCKET, WATCHDOG_USEC…).
    pub fn start_with(&mut self, extra_env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("opening the log");
        let child = self
            .command(&["run"])
            .envs(extra_env.iter().copied())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting nodewarden run");
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts the daemon is still running (it should never exit on its own).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            panic!("nodewarden run exited with {status}; its log:\n{}", self.log());
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        system::signal(child.id(), "TERM");
        if !system::wait_gone(child.id(), Duration::from_secs(20)) {
            system::signal(child.id(), "KILL");
        }
        child.wait().ok().and_then(|s| s.code())
    }

    /// Waits up to `timeout` for `file` under the state dir to exist.
    pub async fn wait_for_state_file(&mut self, file: &str, timeout: Duration) -> PathBuf {
        let path = self.state_dir().join(file);
        let deadline = tokio::time::Instant::now() + timeout;
        while !path.exists() {
            self.assert_running();
            assert!(tokio::time::Instant::now() < deadline, "{} did not appear; log:\n{}", path.display(), self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        path
    }
}

impl Drop for Nodewarden {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `bytes` of zeros into a new file at `path` (real blocks, not sparse).
pub fn fill(path: &Path, bytes: u64) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    let chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap_or_else(|e| panic!("filling {}: {e}", path.display()));
        left -= n as u64;
    }
    file.sync_all().expect("syncing the filler");
}
