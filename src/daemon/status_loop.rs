//! The status loop: it combines the loops' latest snapshots (disk, drain, agent, Docker, the
//! last reload) into the `/status` document, keeps the conditions' transition times, and says
//! the one-line summary to systemd (`STATUS=`) when it changes. The health endpoint serves what
//! it publishes; nothing here writes another loop's state.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::docker_link::DockerState;
use crate::agent::AgentState;
use crate::drain::DrainStatus;
use crate::node::DiskSnapshot;
use crate::node::conditions::{self, ConditionBook};
use crate::node::status::{self, Board};

/// Conditions are evaluated at least this often, so `since` and `alive` stay current.
const REFRESH: Duration = Duration::from_secs(1);

pub struct Sources {
    pub disk: watch::Receiver<DiskSnapshot>,
    pub drain: watch::Receiver<DrainStatus>,
    pub agent: watch::Receiver<AgentState>,
    pub docker: watch::Receiver<DockerState>,
    pub config_error: watch::Receiver<Option<String>>,
    /// Setup kept Docker's data on the root disk: why (read once at start; setup runs before).
    pub shared_disk: Option<String>,
}

pub fn empty_board(disk: &DiskSnapshot) -> Board {
    let parts =
        status::Parts { disk, drain: &DrainStatus::default(), agent: &AgentState::default(), conditions: Vec::new() };
    Board { document: status::document(parts, false, false), last_tick: None, docker_error: None, checked: false }
}

pub async fn run(mut sources: Sources, board: watch::Sender<Arc<Board>>, mut shutdown: watch::Receiver<bool>) {
    let mut book = ConditionBook::default();
    let mut last_line = String::new();
    let mut ticks = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = sources.disk.changed() => {}
            _ = sources.drain.changed() => {}
            _ = sources.agent.changed() => {}
            _ = sources.docker.changed() => {}
            _ = sources.config_error.changed() => {}
            _ = shutdown.changed() => return,
        }
        let disk = sources.disk.borrow_and_update().clone();
        let drain = sources.drain.borrow_and_update().clone();
        let agent = sources.agent.borrow_and_update().clone();
        let docker_error = sources.docker.borrow_and_update().error.clone();
        let config_error = sources.config_error.borrow_and_update().clone();
        let observed = conditions::evaluate(&conditions::Inputs {
            pressure: disk.phase,
            pressure_reason: &disk.reason,
            sample: disk.sample,
            gc_start: disk.gc_start,
            docker_error: docker_error.as_deref(),
            agent: &agent,
            drain: &drain,
            config_error: config_error.as_deref(),
            shared_disk: sources.shared_disk.as_deref(),
        });
        let conditions = book.update(observed, SystemTime::now());
        let mut checked = board.borrow().checked;
        if disk.sample.is_some() {
            let line = status_line(&disk, &agent, &drain);
            if line != last_line {
                crate::systemd::status(&line);
                last_line = line;
            }
            checked = true;
        }
        let parts = status::Parts { disk: &disk, drain: &drain, agent: &agent, conditions };
        let document = status::document(parts, false, false);
        board.send_replace(Arc::new(Board { document, last_tick: disk.last_tick, docker_error, checked }));
    }
}

/// `docker 87% used, agent healthy, DRAINING (disk-pressure)`, for `systemctl status`.
fn status_line(disk: &DiskSnapshot, agent: &AgentState, drain: &DrainStatus) -> String {
    let used = disk.sample.map_or(0.0, |s| s.used_fraction() * 100.0);
    let agent_word = if agent.terminal {
        "terminal"
    } else if agent.stopped {
        "stopped"
    } else if agent.healthy == Some(true) {
        "healthy"
    } else if agent.healthy == Some(false) || !agent.running {
        "unhealthy"
    } else {
        "starting"
    };
    let drain_word = match (&drain.ecs_status, drain.owner) {
        (_, Some(owner)) if drain.draining => format!("DRAINING ({})", owner.as_str()),
        (Some(status), _) => status.clone(),
        (None, _) => "ECS status unknown".into(),
    };
    format!("docker {used:.0}% used, agent {agent_word}, {drain_word}")
}
