//! Tiny sd_notify wrappers (zincati's style): READY only after initialisation, a STATUS line
//! people read in `systemctl status`, WATCHDOG pings from the main loop, STOPPING on SIGTERM.
//! Outside systemd (no NOTIFY_SOCKET) they do nothing; a failure is logged, never fatal, and
//! nothing here ever blocks.

use std::fmt::Write as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use sd_notify::NotifyState;

/// Sends without blocking: a notify socket nobody reads (a wedged manager, a test) holds a few
/// datagrams, and a blocking send on a full one would stall the thread, and with it the
/// daemon's runtime. A message that does not fit is dropped (systemd reads promptly, so only
/// a socket nobody serves fills up).
fn send(states: &[NotifyState<'_>]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let mut message = String::new();
    for state in states {
        let _ = writeln!(message, "{state}");
    }
    let sent = (|| {
        let address = notify_address(&path)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        socket.send_to_addr(message.as_bytes(), &address)
    })();
    match sent {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
            tracing::debug!(message = message.trim(), "the notify socket is full; dropped")
        }
        Err(error) => tracing::debug!(%error, "sd_notify failed"),
    }
}

/// `NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
fn notify_address(path: &std::ffi::OsStr) -> std::io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    match path.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(path),
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
