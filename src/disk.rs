//! Docker's filesystem, measured: a statvfs sample (bytes and inodes) every check interval,
//! and a fill-rate estimate over a short window. statvfs is one syscall; nothing here asks
//! Docker, so a container filling its writable layer is seen within one interval.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One measurement of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiskSample {
    pub at: Instant,
    pub total_bytes: u64,
    /// Bytes available to unprivileged writers (`f_bavail`), as `df` and kubelet count them.
    pub available_bytes: u64,
    pub total_inodes: u64,
    pub available_inodes: u64,
}

impl DiskSample {
    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }

    /// Share of bytes in use, 0.0–1.0 (kubelet's `100 - available*100/capacity`).
    pub fn used_fraction(&self) -> f64 {
        if self.total_bytes == 0 { 0.0 } else { self.used_bytes() as f64 / self.total_bytes as f64 }
    }

    pub fn used_inodes(&self) -> u64 {
        self.total_inodes.saturating_sub(self.available_inodes)
    }

    /// Share of inodes in use; 0.0 on filesystems that report none (xfs reports plenty).
    pub fn used_inode_fraction(&self) -> f64 {
        if self.total_inodes == 0 { 0.0 } else { self.used_inodes() as f64 / self.total_inodes as f64 }
    }

    /// Bytes to free to bring usage down to `target` (a fraction of the total).
    pub fn bytes_above(&self, target: f64) -> u64 {
        let allowed = (self.total_bytes as f64 * target).floor() as u64;
        self.used_bytes().saturating_sub(allowed)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("measuring the filesystem at {path}: {source}")]
pub struct ProbeError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Measures the filesystem holding `path`.
pub fn probe(path: &Path) -> Result<DiskSample, ProbeError> {
    let stat = rustix::fs::statvfs(path).map_err(|e| ProbeError { path: path.to_path_buf(), source: e.into() })?;
    let block = stat.f_frsize.max(1);
    Ok(DiskSample {
        at: Instant::now(),
        total_bytes: stat.f_blocks.saturating_mul(block),
        available_bytes: stat.f_bavail.saturating_mul(block),
        total_inodes: stat.f_files,
        available_inodes: stat.f_favail,
    })
}

/// The recent part of the window, for a writer that just started.
const RECENT: Duration = Duration::from_secs(2);

/// Bytes per second written to the filesystem over a sliding window, from the oldest and
/// newest samples in it; frees show as a negative rate, except what nodewarden reclaimed
/// itself (`reclaimed`): a runaway's rate is what it writes, and GC removing the last junk
/// images must not read as the disk filling slower (nothing is left to remove next time).
#[derive(Debug, Clone)]
pub struct FillRate {
    window: Duration,
    /// Each sample with the bytes reclaimed by nodewarden before it was taken.
    samples: VecDeque<(DiskSample, u64)>,
    reclaimed: u64,
}

impl FillRate {
    pub fn new(window: Duration) -> Self {
        FillRate { window, samples: VecDeque::new(), reclaimed: 0 }
    }

    /// Nodewarden freed `bytes` (a GC run): later samples count them as still written.
    pub fn reclaimed(&mut self, bytes: u64) {
        self.reclaimed = self.reclaimed.saturating_add(bytes);
    }

    pub fn push(&mut self, sample: DiskSample) {
        self.samples.push_back((sample, self.reclaimed));
        while let Some((front, _)) = self.samples.front() {
            if sample.at.duration_since(front.at) > self.window && self.samples.len() > 2 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Bytes per second, once two samples at least 500 ms apart exist.
    pub fn bytes_per_second(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let elapsed = last.0.at.duration_since(first.0.at).as_secs_f64();
        if elapsed < 0.5 {
            return None;
        }
        Some(Self::written_between(first, last) / elapsed)
    }

    /// Bytes written from one sample to another: the change in use plus what nodewarden
    /// reclaimed in between.
    fn written_between(from: &(DiskSample, u64), to: &(DiskSample, u64)) -> f64 {
        (to.0.used_bytes() as f64 + to.1 as f64) - (from.0.used_bytes() as f64 + from.1 as f64)
    }

    /// The rate over the last two seconds (not one interval: xfs reserves a growing file's
    /// blocks ahead in jumps, which one interval would read as a writer several times as fast):
    /// what the next check will most likely see. A burst that ended is out of it soon.
    pub fn recent_bytes_per_second(&self) -> Option<f64> {
        let last = self.samples.back()?;
        let from =
            self.samples.iter().rev().skip(1).find(|s| last.0.at.duration_since(s.0.at) >= RECENT).or_else(|| {
                self.samples.front().filter(|s| last.0.at.duration_since(s.0.at) >= Duration::from_millis(100))
            })?;
        Some(Self::written_between(from, last) / last.0.at.duration_since(from.0.at).as_secs_f64())
    }

    /// The faster of the window's rate and the recent one: a writer that just started shows at
    /// once, a burst that ended still counts for the window.
    pub fn fastest_bytes_per_second(&self) -> Option<f64> {
        match (self.bytes_per_second(), self.recent_bytes_per_second()) {
            (Some(w), Some(r)) => Some(w.max(r)),
            (w, r) => w.or(r),
        }
    }

    /// Time until the filesystem is full at the fastest current rate; `None` when not filling.
    pub fn time_to_full(&self) -> Option<Duration> {
        let rate = self.fastest_bytes_per_second()?;
        let last = self.samples.back()?;
        (rate > 0.0).then(|| Duration::from_secs_f64(last.0.available_bytes as f64 / rate))
    }
}

/// A byte count for people: `59.1 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, available_mib: u64) -> DiskSample {
        DiskSample {
            at,
            total_bytes: 1000 << 20,
            available_bytes: available_mib << 20,
            total_inodes: 100,
            available_inodes: 40,
        }
    }

    #[test]
    fn usage_and_targets() {
        let s = sample(Instant::now(), 100);
        assert!((s.used_fraction() - 0.9).abs() < 1e-9);
        assert!((s.used_inode_fraction() - 0.6).abs() < 1e-9);
        assert_eq!(s.bytes_above(0.8), 100 << 20);
        assert_eq!(s.bytes_above(0.95), 0);
    }

    #[test]
    fn fill_rate_over_the_window() {
        let start = Instant::now();
        let mut rate = FillRate::new(Duration::from_secs(10));
        rate.push(sample(start, 500));
        assert_eq!(rate.bytes_per_second(), None, "one sample says nothing");
        for second in 1..=20u64 {
            rate.push(sample(start + Duration::from_secs(second), 500 - second * 10));
        }
        let bps = rate.bytes_per_second().unwrap();
        assert!((bps - (10 << 20) as f64).abs() < 1.0, "{bps}");
        // 300 MiB left at 10 MiB/s.
        assert_eq!(rate.time_to_full().unwrap().as_secs(), 30);
        rate.push(sample(start + Duration::from_secs(21), 500));
        assert!(rate.bytes_per_second().unwrap() < 0.0, "a big free reads as a negative rate");
        assert_eq!(rate.time_to_full(), None);
        // A writer that starts shows within two seconds, before the window notices it.
        rate.push(sample(start + Duration::from_secs(22), 400));
        rate.push(sample(start + Duration::from_secs(23), 300));
        assert_eq!(rate.fastest_bytes_per_second(), Some((100 << 20) as f64));
        assert_eq!(rate.time_to_full().unwrap().as_secs(), 3);
    }

    #[test]
    fn what_nodewarden_reclaimed_does_not_slow_the_rate() {
        // A writer at 50 MiB/s; GC frees 150 MiB of junk between the second and third sample.
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut rate = FillRate::new(Duration::from_secs(10));
        rate.push(sample(at(0), 500));
        rate.push(sample(at(1), 450));
        rate.reclaimed(150 << 20);
        rate.push(sample(at(2), 550));
        assert_eq!(rate.recent_bytes_per_second(), Some((50 << 20) as f64));
        assert_eq!(rate.bytes_per_second(), Some((50 << 20) as f64));
        assert_eq!(rate.time_to_full().unwrap().as_secs(), 11, "550 MiB left at 50 MiB/s");
        // Space that came back by other hands (a container removed) still reads as a free.
        rate.push(sample(at(3), 900));
        assert_eq!(rate.recent_bytes_per_second(), Some(-((150 << 20) as f64)));
    }

    #[test]
    fn human_bytes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(62_000_000), "59.1 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn probes_a_real_filesystem() {
        let s = probe(Path::new("/")).unwrap();
        assert!(s.total_bytes > 0 && s.available_bytes <= s.total_bytes);
        assert!(probe(Path::new("/nonexistent/path")).unwrap_err().to_string().contains("/nonexistent/path"));
    }
}
