//! Tiny sd_notify wrappers (zincati's style): READY only after initialisation, a STATUS line
//! people read in `systemctl status`, WATCHDOG pings from the main loop, STOPPING on SIGTERM.
//! Outside systemd (no NOTIFY_SOCKET) they do nothing; a failure is logged, never fatal.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::debug!(%error, "sd_notify failed");
    }
}

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn reloading() {
    send(&[NotifyState::Reloading]);
}

/// The watchdog timeout systemd set (WatchdogSec=), if any, for this process.
pub fn watchdog_timeout() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Whether `unit` is running or starting, as systemd says; `None` when this host does not run
/// systemd or `systemctl` cannot tell.
pub fn unit_running(unit: &str) -> Option<bool> {
    if !std::path::Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    let output = std::process::Command::new("systemctl").args(["is-active", unit]).output().ok()?;
    let state = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match state.as_str() {
        "active" | "activating" | "reloading" => Some(true),
        "inactive" | "failed" | "deactivating" => Some(false),
        _ => None,
    }
}
