//! `nodewarden status [--json]`: the running daemon's /status, for a person (conditions first,
//! True ones on top, then the figures) or raw.

use std::time::{Duration, SystemTime};

use super::{Context, exit, inputs};
use crate::disk::human_bytes;
use crate::http::HttpClient;
use crate::node::status::StatusDocument;

pub fn run(context: &Context, json: bool) -> u8 {
    let loaded = match inputs::load_settings(context) {
        Ok(loaded) => loaded,
        Err(message) => return super::fail(&message),
    };
    let listen = loaded.settings.health.listen;
    let uri = match format!("http://{listen}/status").parse() {
        Ok(uri) => uri,
        Err(e) => return super::fail(&format!("bad health address {listen}: {e}")),
    };
    let response = super::runtime().block_on(HttpClient::new().get(uri, &[], Duration::from_secs(5)));
    let body = match response {
        Ok(r) if r.status.is_success() => r.body,
        Ok(r) => return super::fail(&format!("the daemon on {listen} answered /status with HTTP {}", r.status)),
        Err(_) => {
            return super::fail(&format!(
                "nodewarden is not running: nothing answers on {listen} ([health] listen). \
                 Check `systemctl status nodewarden` and `journalctl -u nodewarden`"
            ));
        }
    };
    if json {
        println!("{}", String::from_utf8_lossy(&body));
        return exit::OK;
    }
    match serde_json::from_slice::<StatusDocument>(&body) {
        Ok(doc) => {
            print!("{}", summary(&doc));
            exit::OK
        }
        Err(e) => super::fail(&format!("the daemon's /status does not read as a status document: {e}")),
    }
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
        "GC           {} runs{}{last_text}\n",
        doc.gc.runs,
        if doc.gc.running { ", running now" } else { "" }
    ));
    if let Some(top) = &doc.offender.top {
        out.push_str(&format!(
            "Offender     {}
",
            top.summary().trim_start_matches("top writer: ")
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
    out.push_str(&format!(
        "Host         CPU {:?}%, memory {} of {}\n",
        doc.host.cpu_percent,
        human_bytes(doc.host.memory_used_bytes),
        human_bytes(doc.host.memory_total_bytes)
    ));
    out
}
