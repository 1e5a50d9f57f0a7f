//! `nodewarden status [--json]`: the running daemon's /status, for a person (conditions first,
//! True ones on top, then the figures) or raw.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Context, exit, inputs};
use crate::disk::human_bytes;
use crate::http::HttpClient;

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
    match serde_json::from_slice::<Value>(&body) {
        Ok(doc) => {
            print!("{}", summary(&doc));
            exit::OK
        }
        Err(e) => super::fail(&format!("the daemon's /status is not JSON: {e}")),
    }
}

fn ago(unix: f64) -> String {
    let then = UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0));
    let elapsed = SystemTime::now().duration_since(then).unwrap_or_default();
    format!("{} ago", crate::settings::values::format_duration(Duration::from_secs(elapsed.as_secs())))
}

/// The human summary of a /status document.
pub fn summary(doc: &Value) -> String {
    let mut out = String::new();
    let yes = |v: &Value| v.as_bool().unwrap_or(false);
    out.push_str(&format!(
        "nodewarden {}: {}, {}\n\nConditions:\n",
        doc["version"].as_str().unwrap_or("?"),
        if yes(&doc["ready"]) { "ready" } else { "not ready" },
        if yes(&doc["alive"]) { "main loop alive" } else { "MAIN LOOP STALLED" }
    ));
    let mut conditions: Vec<&Value> = doc["conditions"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    conditions.sort_by_key(|c| c["status"] != "True");
    for c in conditions {
        let mark = if c["status"] == "True" { "!" } else { " " };
        out.push_str(&format!(
            " {mark} {:<18} {:<6} {:<26} {} ({})\n",
            c["type"].as_str().unwrap_or(""),
            c["status"].as_str().unwrap_or(""),
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or(""),
            ago(c["since"].as_f64().unwrap_or(0.0)),
        ));
    }
    let disk = &doc["disk"];
    if disk.is_object() {
        let rate = disk["fill_rate_bytes_per_second"].as_f64().unwrap_or(0.0);
        let filling = if rate > 0.0 {
            let full = disk["time_to_full_seconds"]
                .as_f64()
                .map(|s| crate::settings::values::format_duration(Duration::from_secs(s as u64)));
            format!(", filling at {}/s, full in {}", human_bytes(rate as u64), full.unwrap_or_else(|| "?".into()))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "\nDocker disk  {}: {}% used ({} of {}), inodes {}%{filling}\n",
            disk["path"].as_str().unwrap_or(""),
            disk["used_percent"],
            human_bytes(disk["used_bytes"].as_u64().unwrap_or(0)),
            human_bytes(disk["total_bytes"].as_u64().unwrap_or(0)),
            disk["inodes_used_percent"],
        ));
    }
    out.push_str(&format!("Pressure     {}\n", doc["pressure"]["phase"].as_str().unwrap_or("?")));
    let gc = &doc["gc"];
    let last = &gc["last"];
    let last_text = if last.is_object() {
        format!(
            "; last freed {} ({} images, {} containers) {}",
            human_bytes(last["bytes_freed"].as_i64().unwrap_or(0).max(0) as u64),
            last["images_removed"],
            last["containers_removed"],
            ago(last["started"].as_f64().unwrap_or(0.0))
        )
    } else {
        String::new()
    };
    out.push_str(&format!(
        "GC           {} runs{}{last_text}\n",
        gc["runs"],
        if yes(&gc["running"]) { ", running now" } else { "" }
    ));
    let drain = &doc["drain"];
    let drain_text = if yes(&drain["draining"]) {
        format!("DRAINING by {}: {}", drain["owner"].as_str().unwrap_or("?"), drain["detail"].as_str().unwrap_or(""))
    } else {
        drain["ecs_status"].as_str().unwrap_or("ECS status unknown").to_string()
    };
    out.push_str(&format!("Drain        {drain_text}\n"));
    if let Some(withheld) = drain["withheld"].as_str() {
        out.push_str(&format!("             withheld: {withheld}\n"));
    }
    let agent = &doc["agent"];
    let health = match agent["healthy"].as_bool() {
        Some(true) => "healthy",
        Some(false) => "unhealthy",
        None => "starting",
    };
    out.push_str(&format!(
        "Agent        {}, {health}, {} restarts{}\n",
        if yes(&agent["running"]) { "running" } else { "not running" },
        agent["restarts"],
        agent["metadata"]["Version"].as_str().map(|v| format!(", {v}")).unwrap_or_default(),
    ));
    let host = &doc["host"];
    out.push_str(&format!(
        "Host         CPU {}%, memory {} of {}\n",
        host["cpu_percent"],
        human_bytes(host["memory_used_bytes"].as_u64().unwrap_or(0)),
        human_bytes(host["memory_total_bytes"].as_u64().unwrap_or(0))
    ));
    out
}
