//! Logs go to journald with structured fields when stderr is the journal (systemd sets
//! JOURNAL_STREAM to stderr's device:inode), to stderr otherwise. NODEWARDEN_LOG filters.

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Whether stderr is the journal stream systemd connected us to.
fn connected_to_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = stream.split_once(':') else { return false };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(meta) => dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino()),
        Err(_) => false,
    }
}

pub fn init() {
    let filter = || EnvFilter::try_from_env("NODEWARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if connected_to_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        tracing_subscriber::registry().with(filter()).with(journald.with_syslog_identifier("nodewarden".into())).init();
        return;
    }
    // Colours only for a person at a terminal, never in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).with_ansi(ansi).init();
}
