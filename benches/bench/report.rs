//! What a benchmark run prints: each benchmark's lines as it goes, and with `--markdown` the
//! whole run as BENCHMARKS.md's tables, headed by the commit, date and machine measured.

use std::process::Command;
use std::time::SystemTime;

/// How big and how long: `--quick` (what `scripts/test` runs, seconds each, figures printed
/// but not judged) or the full sizes the figures in BENCHMARKS.md come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Quick,
    Full,
}

impl Size {
    /// `full` in a full run, `quick` in a quick one.
    pub fn pick<T>(self, full: T, quick: T) -> T {
        match self {
            Size::Full => full,
            Size::Quick => quick,
        }
    }
}

/// One figure against its peer.
pub struct Row {
    pub benchmark: String,
    pub ours: String,
    pub peer: String,
    pub ratio: String,
    /// The target and whether it was met, in words.
    pub target: String,
}

pub struct Report {
    pub size: Size,
    rows: Vec<Row>,
}

impl Report {
    pub fn new(size: Size) -> Report {
        Report { size, rows: Vec::new() }
    }

    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// The run as Markdown: provenance, then one table row per figure.
    pub fn markdown(&self, command: &str) -> String {
        let mut out = String::new();
        out.push_str("# Benchmarks\n\n");
        out.push_str(&format!(
            "Printed by `{command}` (benches/bench.rs). Every figure below is from that one run: commit {}, {}, \
             {} build; {}.\n\n",
            commit(),
            humantime::format_rfc3339_seconds(SystemTime::now()),
            if cfg!(debug_assertions) { "debug" } else { "release (bench profile)" },
            machine()
        ));
        out.push_str(
            "Each benchmark runs nodewarden and its peer in the same run, on the same kind of private dockerd \
             (its data-root on a loop-mounted xfs), one after the other. The machine is shared and noisy: \
             the ratios are what matter, absolute times are context.\n\n",
        );
        out.push_str(
            "Figures from elsewhere, each with its own command: the drain on a booted EC2-like host and the \
             offender read from its writable layer's XFS project quota (`scripts/boot-test`, which prints them); \
             the incident on one node (`cargo test --test integration -- incident --nocapture`); the fleet \
             simulation at 10 to 10,000 nodes (`cargo bench --bench fleet_sim -- --nodes 10,100,1000,10000`; \
             `scripts/bench --markdown` appends that run's table below).\n\n",
        );
        out.push_str("| benchmark | nodewarden | peer | ratio | target |\n| --- | --- | --- | --- | --- |\n");
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&row.benchmark),
                cell(&row.ours),
                cell(&row.peer),
                cell(&row.ratio),
                cell(&row.target)
            ));
        }
        out
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The commit measured, `-dirty` when the tree differs from it.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else { return "(not a git checkout)".into() };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

/// Cores, CPU model, memory, kernel and Docker, as this machine reports them.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|v| v.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let docker = Command::new(crate::harness::system::require_tool("dockerd", "docker.io"))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "dockerd (version unknown)".into());
    format!(
        "{} cores ({model}), {:.0} GiB, Linux {}, {docker}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        mem_kib as f64 / (1 << 20) as f64,
        kernel.trim()
    )
}
