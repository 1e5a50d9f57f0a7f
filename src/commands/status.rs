//! `nodewarden status [--json]`: the running daemon's /status, for a person (conditions first,
//! True ones on top, then the figures) or raw.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::{Context, exit, inputs};
use crate::disk::human_bytes;
use crate::http::HttpClient;
use crate::node::status::StatusDocument;

/// How `nodewarden status` shows the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Summary,
    Json,
    /// A monitoring plugin's answer (Nagios, Icinga, Sensu): one line and exit 0/1/2/3.
    Check,
    /// The summary, refreshed in place every two seconds.
    Watch,
}

/// Monitoring-plugin exit codes.
pub mod check_exit {
    pub const OK: u8 = 0;
    pub const WARNING: u8 = 1;
    pub const CRITICAL: u8 = 2;
    pub const UNKNOWN: u8 = 3;
}

pub fn run(context: &Context, mode: Mode) -> u8 {
    let loaded = match inputs::load_settings(context) {
        Ok(loaded) => loaded,
        Err(error) if mode == Mode::Check => {
            println!("NODEWARDEN UNKNOWN - {}", crate::error::chain(&error));
            return check_exit::UNKNOWN;
        }
        Err(error) => return super::fail_on(&error),
    };
    let listen = loaded.settings.health.listen;
    match mode {
        Mode::Json => match fetch(listen) {
            Ok(body) => {
                println!("{}", String::from_utf8_lossy(&body));
                exit::OK
            }
            Err(error) => super::fail_on(&error),
        },
        Mode::Summary => match fetch(listen).and_then(|body| parse(&body)) {
            Ok(doc) => {
                print!("{}", summary(&doc));
                exit::OK
            }
            Err(error) => super::fail_on(&error),
        },
        Mode::Check => {
            let (code, line) = match fetch(listen).and_then(|body| parse(&body)) {
                Ok(doc) => check(&doc),
                Err(message) => (check_exit::UNKNOWN, format!("NODEWARDEN UNKNOWN - {message}")),
            };
            println!("{line}");
            code
        }
        Mode::Watch => loop {
            let screen = match fetch(listen).and_then(|body| parse(&body)) {
                Ok(doc) => summary(&doc),
                Err(message) => format!("{message}\n"),
            };
            // Home and clear, then the page: a terminal redraws it in place.
            print!("\x1b[H\x1b[2J{screen}\n(every 2 s; Ctrl-C to stop)\n");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            std::thread::sleep(Duration::from_secs(2));
        },
    }
}

/// Why the daemon's /status could not be read, naming the address asked.
#[derive(Debug, thiserror::Error)]
enum StatusError {
    #[error("bad health address {listen}: {source}")]
    BadAddress { listen: SocketAddr, source: hyper::http::uri::InvalidUri },
    #[error("the daemon on {listen} answered /status with HTTP {status}")]
    Http { listen: SocketAddr, status: hyper::StatusCode },
    #[error(
        "nodewarden is not running: nothing answers on {listen} ([health] listen). \
         Check `systemctl status nodewarden` and `journalctl -u nodewarden`"
    )]
    NotRunning { listen: SocketAddr },
    #[error("the daemon's /status does not read as a status document: {source}")]
    Parse { source: serde_json::Error },
}

fn fetch(listen: SocketAddr) -> Result<Vec<u8>, StatusError> {
    let uri = format!("http://{listen}/status").parse().map_err(|source| StatusError::BadAddress { listen, source })?;
    let response = super::runtime().block_on(HttpClient::new().get(uri, &[], Duration::from_secs(5)));
    match response {
        Ok(r) if r.status.is_success() => Ok(r.body.to_vec()),
        Ok(r) => Err(StatusError::Http { listen, status: r.status }),
        Err(_) => Err(StatusError::NotRunning { listen }),
    }
}

fn parse(body: &[u8]) -> Result<StatusDocument, StatusError> {
    serde_json::from_slice(body).map_err(|source| StatusError::Parse { source })
}

/// Conditions that mean the node cannot do its work: disk or inodes past the point GC can
/// hold, Docker away, an agent that will not run. The other True ones are warnings.
const CRITICAL: &[&str] = &["DiskPressure", "InodePressure", "DockerUnavailable", "AgentTerminal"];

/// The monitoring plugin's verdict: the worst True condition decides, and a stalled main
/// loop is critical; the line names every True condition with its reason.
pub fn check(doc: &StatusDocument) -> (u8, String) {
    let bad: Vec<_> = doc.conditions.iter().filter(|c| c.status == "True").collect();
    let critical = !doc.alive || bad.iter().any(|c| CRITICAL.contains(&c.kind.as_str()));
    let (code, word) = match (critical, bad.is_empty()) {
        (true, _) => (check_exit::CRITICAL, "CRITICAL"),
        (false, false) => (check_exit::WARNING, "WARNING"),
        (false, true) => (check_exit::OK, "OK"),
    };
    let mut parts: Vec<String> = bad.iter().map(|c| format!("{} ({}): {}", c.kind, c.reason, c.message)).collect();
    if !doc.alive {
        parts.insert(0, "main loop stalled".into());
    }
    let detail = if parts.is_empty() { "no condition is True".to_string() } else { parts.join("; ") };
    let used = doc.disk.as_ref().map(|d| format!(" | docker_used={:.1}%", d.used_percent)).unwrap_or_default();
    (code, format!("NODEWARDEN {word} - {detail}{used}"))
}

fn ago(time: SystemTime) -> String {
    let elapsed = SystemTime::now().duration_since(time).unwrap_or_default();
    format!("{} ago", crate::settings::values::format_duration(Duration::from_secs(elapsed.as_secs())))
}

/// The human summary of a /status document.
pub fn summary(doc: &StatusDocument) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "nodewarden {}: {}, {}\n\nConditions:\n",
        doc.version,
        if doc.ready { "ready" } else { "not ready" },
        if doc.alive { "main loop alive" } else { "MAIN LOOP STALLED" }
    ));
    let mut conditions: Vec<_> = doc.conditions.iter().collect();
    conditions.sort_by_key(|c| c.status != "True");
    for c in conditions {
        let mark = if c.status == "True" { "!" } else { " " };
        out.push_str(&format!(
            " {mark} {:<18} {:<6} {:<26} {} ({})\n",
            c.kind,
            c.status,
            c.reason,
            c.message,
            ago(c.since),
        ));
    }
    if let Some(disk) = &doc.disk {
        let rate = disk.fill_rate_bytes_per_second.unwrap_or(0.0);
        let filling = if rate > 0.0 {
            let full = disk
                .time_to_full_seconds
                .map(|s| crate::settings::values::format_duration(Duration::from_secs(s as u64)));
            format!(", filling at {}/s, full in {}", human_bytes(rate as u64), full.unwrap_or_else(|| "?".into()))
        } else {
            String::new()
        };
        // {:?} prints floats as JSON did (6.0, 91.1).
        out.push_str(&format!(
            "\nDocker disk  {}: {:?}% used ({} of {}), inodes {:?}%{filling}\n",
            disk.path.display(),
            disk.used_percent,
            human_bytes(disk.used_bytes),
            human_bytes(disk.total_bytes),
            disk.inodes_used_percent,
        ));
    }
    let phase = serde_json::to_value(doc.pressure.phase).ok();
    out.push_str(&format!("Pressure     {}\n", phase.as_ref().and_then(|p| p.as_str()).unwrap_or("?")));
    let last_text = match &doc.gc.last {
        Some(last) => format!(
            "; last freed {} ({} images, {} containers) {}",
            human_bytes(last.bytes_freed.max(0) as u64),
            last.images_removed,
            last.containers_removed,
            ago(last.started)
        ),
        None => String::new(),
    };
    out.push_str(&format!(
        "GC           {} runs{}{last_text}; {} freed since start\n",
        doc.gc.runs,
        if doc.gc.running { ", running now" } else { "" },
        human_bytes(doc.gc.totals.freed_bytes_total),
    ));
    if let Some(top) = &doc.offender.top {
        out.push_str(&format!(
            "Offender     {}
",
            top.summary().trim_start_matches("top writer: ")
        ));
    }
    if let (Some(_), Some(cost)) = (&doc.offender.top, &doc.offender.last_sample) {
        out.push_str(&format!(
            "             sampled in {:.1} ms: {} of {} writable layers from project quotas, {} entries walked{}\n",
            cost.wall_seconds * 1000.0,
            cost.layers_from_quota,
            cost.containers,
            cost.entries_walked,
            if cost.cut_short > 0 { format!(", {} cut short", cost.cut_short) } else { String::new() },
        ));
    }
    if let Some(stop) = &doc.offender.last_stop {
        out.push_str(&format!("             stopped task {} {}: {}\n", stop.task_arn, ago(stop.at), stop.reason));
    }
    let drain = &doc.drain;
    let drain_text = if drain.draining {
        format!("DRAINING by {}: {}", drain.owner.map_or("?", |o| o.as_str()), drain.detail.as_deref().unwrap_or(""))
    } else {
        drain.ecs_status.clone().unwrap_or_else(|| "ECS status unknown".to_string())
    };
    out.push_str(&format!("Drain        {drain_text}\n"));
    if let Some(withheld) = &drain.withheld {
        out.push_str(&format!("             withheld: {withheld}\n"));
    }
    let agent = &doc.agent;
    let health = match agent.healthy {
        Some(true) => "healthy",
        Some(false) => "unhealthy",
        None => "starting",
    };
    out.push_str(&format!(
        "Agent        {}, {health}, {} restarts{}\n",
        if agent.running { "running" } else { "not running" },
        agent.restarts,
        agent.metadata.as_ref().and_then(|m| m.version.as_deref()).map(|v| format!(", {v}")).unwrap_or_default(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(true_ones: &[&str], alive: bool) -> StatusDocument {
        let mut doc: StatusDocument =
            serde_json::from_str(include_str!("../../docs/status-example.json")).expect("the example reads");
        for condition in &mut doc.conditions {
            condition.status = if true_ones.contains(&condition.kind.as_str()) { "True" } else { "False" }.into();
        }
        doc.alive = alive;
        doc
    }

    #[test]
    fn the_worst_true_condition_decides_the_plugin_answer() {
        let table: &[(&[&str], bool, u8, &str)] = &[
            (&[], true, check_exit::OK, "NODEWARDEN OK - no condition is True"),
            (&["Draining"], true, check_exit::WARNING, "NODEWARDEN WARNING - Draining"),
            (&["AgentUnhealthy"], true, check_exit::WARNING, "NODEWARDEN WARNING - AgentUnhealthy"),
            (&["ConfigInvalid"], true, check_exit::WARNING, "NODEWARDEN WARNING - ConfigInvalid"),
            (&["Draining", "DiskPressure"], true, check_exit::CRITICAL, "NODEWARDEN CRITICAL - DiskPressure"),
            (&["InodePressure"], true, check_exit::CRITICAL, "NODEWARDEN CRITICAL - InodePressure"),
            (&["DockerUnavailable"], true, check_exit::CRITICAL, "NODEWARDEN CRITICAL - DockerUnavailable"),
            (&["AgentTerminal"], true, check_exit::CRITICAL, "NODEWARDEN CRITICAL - AgentTerminal"),
            (&[], false, check_exit::CRITICAL, "NODEWARDEN CRITICAL - main loop stalled"),
        ];
        for (true_ones, alive, code, start) in table {
            let (got, line) = check(&example(true_ones, *alive));
            assert_eq!(got, *code, "{true_ones:?}: {line}");
            assert!(line.starts_with(start), "{true_ones:?}: {line}");
            assert!(line.contains("| docker_used="), "perfdata: {line}");
        }
    }
}
