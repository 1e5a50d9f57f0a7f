//! Logs go to journald with structured fields when stderr is the journal (systemd sets
//! JOURNAL_STREAM to stderr's device:inode), to stderr otherwise. NODEWARDEN_LOG filters.
//!
//! Whatever NODEWARDEN_LOG says, the HTTP and API client crates log at most at info: at debug
//! and trace they log request and response bodies (bollard logs the agent container's create
//! body and its inspection, which carry `ECS_ENGINE_AUTH_DATA`, the registry credentials).

use std::os::unix::fs::MetadataExt;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::prelude::*;

/// The crates whose debug output may carry secrets (request and response bodies, headers):
/// the Docker client, the HTTP stack under it and under IMDS, and the AWS SDK's runtime.
const CAPPED_CRATES: &[&str] = &[
    "bollard",
    "hyper",
    "hyper_util",
    "hyper_rustls",
    "h2",
    "rustls",
    "tower",
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sigv4",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_sdk_ecs",
    "aws_sdk_ec2",
    "aws_sdk_autoscaling",
    "aws_sdk_sts",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
];

/// The most those crates may log.
const CAP: Level = Level::INFO;

/// Whether an event of `target` at `level` may be logged: anything but a capped crate's
/// debug and trace. `target` is a module path (`bollard::docker`), or a `log` record's target.
pub fn allowed(target: &str, level: &Level) -> bool {
    let crate_name = target.split("::").next().unwrap_or(target);
    *level <= CAP || !CAPPED_CRATES.contains(&crate_name)
}

/// The filter NODEWARDEN_LOG asks for (`info` when unset or unparsable), with the caps
/// appended after it: a directive for the same target replaces the user's, so
/// `NODEWARDEN_LOG=bollard=trace` still gets `bollard=info`. A more specific directive
/// (`bollard::docker=trace`) is caught by [`cap_layer`].
pub fn env_filter(spec: Option<&str>) -> EnvFilter {
    let mut filter = spec.and_then(|spec| EnvFilter::try_new(spec).ok()).unwrap_or_else(|| EnvFilter::new("info"));
    for name in CAPPED_CRATES {
        let directive = format!("{name}={}", CAP.as_str().to_ascii_lowercase());
        filter = filter.add_directive(directive.parse().expect("a crate name and a level make a directive"));
    }
    filter
}

/// Refuses what [`allowed`] refuses, whatever the filter let through.
pub fn cap_layer() -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    FilterFn::new(|metadata: &tracing::Metadata<'_>| allowed(metadata.target(), metadata.level()))
}

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
    let spec = std::env::var("NODEWARDEN_LOG").ok();
    let filter = || env_filter(spec.as_deref());
    if connected_to_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        tracing_subscriber::registry()
            .with(filter())
            .with(cap_layer())
            .with(journald.with_syslog_identifier("nodewarden".into()))
            .init();
        return;
    }
    // Colours only for a person at a terminal, never in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    tracing_subscriber::registry().with(filter()).with(cap_layer()).with(fmt).init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn client_crates_log_at_most_info_and_everything_else_as_asked() {
        let table: &[(&str, Level, bool)] = &[
            ("bollard::docker", Level::DEBUG, false),
            ("bollard::docker", Level::TRACE, false),
            ("bollard", Level::INFO, true),
            ("bollard::docker", Level::WARN, true),
            ("hyper::proto::h1::io", Level::TRACE, false),
            ("hyper_util::client::legacy", Level::DEBUG, false),
            ("aws_smithy_runtime::client::orchestrator", Level::DEBUG, false),
            ("aws_config::imds", Level::TRACE, false),
            ("aws_sdk_ecs::operation", Level::DEBUG, false),
            ("nodewarden::gc", Level::TRACE, true),
            ("nodewarden", Level::DEBUG, true),
            // Not a prefix match: only the crate's own name is capped.
            ("bollardish", Level::DEBUG, true),
            ("hyperion", Level::TRACE, true),
        ];
        for (target, level, expected) in table {
            assert_eq!(allowed(target, level), *expected, "{target} at {level}");
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("the capture lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the subscriber `init` builds writes for `spec`, with a debug event of bollard (as
    /// its create-container body), a more specific target, and nodewarden's own debug event.
    fn logged_with(spec: &str) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let fmt = tracing_subscriber::fmt::layer().with_writer(move || writer.clone()).with_ansi(false);
        let subscriber = tracing_subscriber::registry().with(env_filter(Some(spec))).with(cap_layer()).with(fmt);
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "bollard::docker", "{{\"Env\":[\"ECS_ENGINE_AUTH_DATA=hunter2\"]}}");
            tracing::trace!(target: "hyper::proto::h1::role", "body hunter2");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "response hunter2");
            tracing::info!(target: "bollard::docker", "an info line of bollard");
            tracing::debug!(target: "nodewarden::gc", "our own debug line");
        });
        String::from_utf8(captured.0.lock().expect("the capture lock").clone()).expect("utf-8 logs")
    }

    #[test]
    fn no_filter_lets_a_client_crates_debug_lines_through() {
        for spec in ["trace", "debug", "bollard=trace", "bollard::docker=trace,hyper=trace", "trace,bollard=debug"] {
            let logged = logged_with(spec);
            assert!(!logged.contains("hunter2"), "NODEWARDEN_LOG={spec} logged a body:\n{logged}");
            assert!(logged.contains("an info line of bollard"), "NODEWARDEN_LOG={spec}: info still logs\n{logged}");
        }
        assert!(logged_with("trace").contains("our own debug line"), "nodewarden's own debug lines are as asked");
        assert!(!logged_with("info").contains("our own debug line"));
    }
}
