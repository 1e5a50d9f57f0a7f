//! Exponential backoff with jitter, shared by every retry loop (IMDS, Docker, AWS, the agent
//! supervisor) so they all behave the same way.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    /// Each delay is scaled by a random factor in [1 - jitter, 1 + jitter].
    jitter: f64,
    seed: RandomState,
    draws: u64,
}

impl Backoff {
    /// Doubles from `min` up to `max`, with ±20% jitter so restarts across a fleet spread out.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max: max.max(min), next: min, jitter: 0.2, seed: RandomState::new(), draws: 0 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let factor = 1.0 + self.jitter * (2.0 * self.random_unit() - 1.0);
        base.mul_f64(factor).min(self.max)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// A value in [0, 1) from the std hasher's random keys: jitter needs no crypto or crate.
    fn random_unit(&mut self) -> f64 {
        self.draws += 1;
        let mut hasher = self.seed.build_hasher();
        hasher.write_u64(self.draws);
        (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A random duration from zero up to `max`, to spread what many nodes would do at once.
pub fn random_up_to(max: Duration) -> Duration {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    max.mul_f64((hasher.finish() >> 11) as f64 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_within_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(400) && delays[0] <= Duration::from_millis(600), "{delays:?}");
        assert!(delays[1] >= Duration::from_millis(800) && delays[1] <= Duration::from_millis(1200), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(15)));
        assert!(delays[9] >= Duration::from_secs(12), "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(600));
    }

    #[test]
    fn jitter_varies() {
        // The first delay of fresh backoffs spreads out, so restarts across a fleet do too.
        let firsts: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| Backoff::new(Duration::from_secs(10), Duration::from_secs(60)).next_delay()).collect();
        assert!(firsts.len() > 10, "{firsts:?}");
    }
}
