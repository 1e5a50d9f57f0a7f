//! Host helpers for the harness: root and tool checks that fail with the missing piece named,
//! commands that panic with their stderr, process trees, and mount cleanup.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Fails the test (never skips) when not root: loop devices, mounts and dockerd need it.
pub fn require_root(what: &str) {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
    assert_eq!(uid, 0, "{what} needs root (loop devices, mounts, dockerd): run the suite as root with scripts/test");
}

/// Finds `tool` on PATH or in the sbin directories; fails naming the Debian package to install.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path.split(':').map(PathBuf::from).chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{tool} not found: install Debian's {package} (scripts/install-test-deps does)");
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a command and returns whether it succeeded, for best-effort cleanup.
pub fn try_run(command: &mut Command) -> bool {
    command.output().map(|o| o.status.success()).unwrap_or(false)
}

pub fn signal(pid: u32, signal: &str) {
    try_run(Command::new("kill").arg("-s").arg(signal).arg(pid.to_string()));
}

pub fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root` (children, grandchildren…), found through /proc.
pub fn descendants(root: u32) -> Vec<u32> {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        let children: Vec<u32> =
            pids.iter().copied().filter(|&pid| parent_of(pid) == Some(parent) && !found.contains(&pid)).collect();
        found.extend(children);
        index += 1;
    }
    found.remove(0);
    found
}

/// Waits until `pid` is gone (or a zombie), up to `timeout`.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Mount points at or below `dir`, deepest first, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|escaped| PathBuf::from(unescape_mountinfo(escaped)))
        .filter(|mount| mount.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}

/// The mount point, fstype, source and super options of the mount holding `path`.
pub fn mount_of(path: &Path) -> Option<(PathBuf, String, String, String)> {
    let mounts = nodewarden::storage::mountinfo::current().expect("reading /proc/self/mountinfo");
    nodewarden::storage::mountinfo::holding(&mounts, path)
        .map(|m| (m.mount_point, m.fs_type, m.source, m.super_options))
}

fn unescape_mountinfo(text: &str) -> String {
    text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// Unmounts everything at or below `dir`, deepest first; lazily as a last resort.
pub fn unmount_all_under(dir: &Path) {
    for _ in 0..3 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for mount in mounts {
            if !try_run(Command::new("umount").arg(&mount)) {
                std::thread::sleep(Duration::from_millis(200));
                if !try_run(Command::new("umount").arg(&mount)) {
                    try_run(Command::new("umount").arg("-l").arg(&mount));
                }
            }
        }
    }
}

/// A tmpfs mounted for a test (so a loop device's backing file is off the root filesystem),
/// unmounted on drop.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size_mb: u64) -> Tmpfs {
        require_root("a tmpfs");
        std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        run(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"]).arg(path));
        Tmpfs { path: path.to_path_buf() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount_all_under(&self.path);
    }
}
