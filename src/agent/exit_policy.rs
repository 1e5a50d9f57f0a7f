//! What to do when the agent's container exits, by exit code (amazon-ecs-agent
//! `sighandlers/exitcodes`, and what ecs-init does with them).

/// The agent's own codes.
pub const EXIT_TERMINAL: i64 = 5;
pub const EXIT_UPGRADE: i64 = 42;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// 0: stopped on purpose; leave it stopped and say so.
    StayStopped,
    /// 5: the agent cannot run here (cluster missing, registration refused); do not loop.
    Terminal,
    /// 42: the agent asked for a new image: load the tarball again and restart at once.
    ReloadAndRestart,
    /// Anything else: restart after a backoff.
    RestartWithBackoff,
}

pub fn after_exit(code: i64) -> AfterExit {
    match code {
        0 => AfterExit::StayStopped,
        EXIT_TERMINAL => AfterExit::Terminal,
        EXIT_UPGRADE => AfterExit::ReloadAndRestart,
        _ => AfterExit::RestartWithBackoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(after_exit(0), AfterExit::StayStopped);
        assert_eq!(after_exit(5), AfterExit::Terminal);
        assert_eq!(after_exit(42), AfterExit::ReloadAndRestart);
        for code in [1, 2, 137, 143, -1, 255] {
            assert_eq!(after_exit(code), AfterExit::RestartWithBackoff, "{code}");
        }
    }
}
