//! What ecs-init's pre-start does to the host network: route_localnet so 127.0.0.1 can be a
//! DNAT target, the task credentials endpoint 169.254.170.2:80 → 127.0.0.1:51679, and rules
//! that keep the introspection port 51678 and other loopback services off the network. Every
//! rule carries the comment `nodewarden`, so undo removes exactly ours; applying twice is a
//! no-op. Runs in the caller's network namespace.

use std::path::Path;
use std::process::Command;

use super::AgentError;

const COMMENT: &str = "nodewarden";
const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";
const ROUTE_LOCALNET_DEFAULT: &str = "/proc/sys/net/ipv4/conf/default/route_localnet";

/// (table, chain, rule) as ecs-init sets them up.
fn rules() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        (
            "nat",
            "PREROUTING",
            vec![
                "-p",
                "tcp",
                "-d",
                "169.254.170.2",
                "--dport",
                "80",
                "-j",
                "DNAT",
                "--to-destination",
                "127.0.0.1:51679",
            ],
        ),
        (
            "nat",
            "OUTPUT",
            vec!["-p", "tcp", "-d", "169.254.170.2", "--dport", "80", "-j", "REDIRECT", "--to-ports", "51679"],
        ),
        ("filter", "INPUT", vec!["-p", "tcp", "--dport", "51678", "!", "-i", "lo", "-j", "DROP"]),
        (
            "filter",
            "INPUT",
            vec![
                "--dst",
                "127.0.0.0/8",
                "!",
                "--src",
                "127.0.0.0/8",
                "-m",
                "conntrack",
                "!",
                "--ctstate",
                "RELATED,ESTABLISHED,DNAT",
                "-j",
                "DROP",
            ],
        ),
    ]
}

fn iptables() -> Result<&'static str, AgentError> {
    ["/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or(AgentError::NoIptables)
}

fn run(binary: &'static str, table: &str, op: &str, chain: &str, rule: &[&str]) -> Result<bool, AgentError> {
    let output = Command::new(binary)
        .args(["-w", "-t", table, op, chain])
        .args(rule)
        .args(["-m", "comment", "--comment", COMMENT])
        .output()
        .map_err(|source| AgentError::Iptables { binary, source })?;
    if op == "-C" {
        return Ok(output.status.success());
    }
    if output.status.success() {
        Ok(true)
    } else {
        Err(AgentError::Rule {
            command: format!("{binary} -t {table} {op} {chain} {}", rule.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

fn write_sysctl(path: &'static str, value: &str) -> Result<(), AgentError> {
    std::fs::write(path, value).map_err(|source| AgentError::Sysctl { path, value: value.to_string(), source })
}

/// Applies the settings; returns how many rules were added (0 when all were there). The filter
/// rules go in first and route_localnet last: route_localnet=1 without the drops makes every
/// loopback service (the health endpoint, 51678/51679, a dockerd on tcp://127.0.0.1) reachable
/// from the subnet (the CVE-2020-8558 pattern). Any failure removes what this call added and
/// leaves route_localnet as it was.
pub fn apply() -> Result<usize, AgentError> {
    let binary = iptables()?;
    let mut ordered = rules();
    ordered.sort_by_key(|(table, _, _)| *table != "filter");
    let mut added = Vec::new();
    let result = (|| {
        for (table, chain, rule) in &ordered {
            if !run(binary, table, "-C", chain, rule)? {
                // Drops go first in INPUT, like ecs-init's -I; the NAT rules append.
                let op = if *table == "filter" { "-I" } else { "-A" };
                run(binary, table, op, chain, rule)?;
                added.push((*table, *chain, rule.clone()));
            }
        }
        write_sysctl(ROUTE_LOCALNET, "1")
    })();
    match result {
        Ok(()) => Ok(added.len()),
        Err(error) => {
            for (table, chain, rule) in added.iter().rev() {
                if let Err(undo) = run(binary, table, "-D", chain, rule) {
                    tracing::error!(%undo, "rolling back a host network rule failed");
                }
            }
            Err(AgentError::RolledBack(Box::new(error)))
        }
    }
}

/// Removes what `apply` added and restores route_localnet to the namespace's default.
pub fn undo() -> Result<usize, AgentError> {
    let binary = iptables()?;
    let mut removed = 0;
    for (table, chain, rule) in rules() {
        while run(binary, table, "-C", chain, &rule)? {
            run(binary, table, "-D", chain, &rule)?;
            removed += 1;
        }
    }
    let default = std::fs::read_to_string(ROUTE_LOCALNET_DEFAULT).unwrap_or_else(|_| "0".into());
    write_sysctl(ROUTE_LOCALNET, default.trim())?;
    Ok(removed)
}
