//! The disk loop's decisions with no Docker and no AWS: observations in, commands out.

use super::*;
use crate::settings::values::Percent;
use std::str::FromStr;

const GIB: u64 = 1 << 30;
const MB: f64 = 1_000_000.0;

fn settings() -> DiskSettings {
    DiskSettings {
        check_interval: Duration::from_secs(1),
        gc_start: Percent::from_str("85%").unwrap(),
        gc_stop: Percent::from_str("80%").unwrap(),
        drain_at: Percent::from_str("92%").unwrap(),
        drain_if_full_within: Duration::from_secs(600),
        recover_below: Percent::from_str("75%").unwrap(),
        recover_after: Duration::from_secs(5),
    }
}

/// A disk of `total` bytes and the step watching it, with a clock.
struct Disk {
    step: DiskStep,
    start: Instant,
    now: Duration,
    used: f64,
    total: u64,
    /// What the runaway of an episode wrote so far.
    written: u64,
}

impl Disk {
    fn new(action: OffenderAction, used: f64) -> Disk {
        let start = Instant::now();
        Disk {
            step: DiskStep::new("/var/lib/docker".into(), action, start),
            start,
            now: Duration::ZERO,
            used,
            total: GIB,
            written: 0,
        }
    }

    fn at(&self) -> Instant {
        self.start + self.now
    }

    fn sample(&self) -> DiskSample {
        let available = ((1.0 - self.used) * self.total as f64) as u64;
        DiskSample {
            at: self.at(),
            total_bytes: self.total,
            available_bytes: available,
            total_inodes: 1000,
            available_inodes: 900,
        }
    }

    /// Advances by `seconds` while `rate` bytes a second are written, then checks.
    fn tick(&mut self, seconds: f64, rate: f64) -> Vec<DiskCommand> {
        self.now += Duration::from_secs_f64(seconds);
        self.used = (self.used + rate * seconds / self.total as f64).min(1.0);
        let sample = self.sample();
        self.step.on_sample(sample, &settings(), self.at())
    }

    fn gc_done(&mut self, freed_to: f64, reached: bool) {
        let used_before = self.used;
        self.used = freed_to;
        let report = GcReport {
            started: SystemTime::now(),
            duration_seconds: 0.5,
            used_before,
            used_after: freed_to,
            bytes_freed: ((used_before - freed_to) * self.total as f64) as i64,
            containers_removed: 0,
            images_removed: 1,
            reached_target: reached,
            steps: Vec::new(),
            kept: Vec::new(),
        };
        self.step.on_gc_finished(Ok(report), self.at(), SystemTime::now());
    }

    fn outlook(&self) -> DiskOutlook {
        self.step.outlook(self.at())
    }
}

fn footprint(id: &str, writable: u64) -> Footprint {
    Footprint {
        container_id: id.into(),
        name: id.into(),
        image: "app:1".into(),
        task_arn: Some(format!("arn:aws:ecs:us-east-1:123456789012:task/web/{id}")),
        task_family: Some(format!("family-{id}")),
        ecs_agent: false,
        writable_bytes: writable,
        volume_bytes: 0,
        log_bytes: 0,
        cut_short: false,
        writable_from_quota: false,
    }
}

fn has_gc(commands: &[DiskCommand]) -> bool {
    commands.iter().any(|c| matches!(c, DiskCommand::StartGc { .. }))
}

#[test]
fn gc_starts_a_check_ahead_when_the_next_check_would_be_past_gc_start() {
    let mut disk = Disk::new(OffenderAction::None, 0.70);
    assert!(!has_gc(&disk.tick(1.0, 0.0)));
    // 10% of the disk a second: at 80% the next check would see 90%.
    let commands = disk.tick(1.0, 0.1 * GIB as f64);
    assert!(has_gc(&commands) && disk.used < 0.85, "GC at {:.1}%: {commands:?}", disk.used * 100.0);
    // A slow fill at the same usage waits for gc-start itself.
    let mut slow = Disk::new(OffenderAction::None, 0.80);
    slow.tick(1.0, 0.0);
    assert!(!has_gc(&slow.tick(1.0, 1000.0)));
}

#[test]
fn a_200_mb_a_second_writer_on_1_gib_asks_for_the_drain_with_more_than_a_tenth_free() {
    let mut disk = Disk::new(OffenderAction::None, 0.50);
    disk.tick(1.0, 0.0);
    let mut drained_at = None;
    for _ in 0..100 {
        let interval = disk.step.next_check_in(&settings()).as_secs_f64();
        let commands = disk.tick(interval, 200.0 * MB);
        if has_gc(&commands) {
            // GC runs and finds nothing to remove.
            disk.gc_done(disk.used, false);
        }
        if disk.outlook().must_drain {
            drained_at = Some(disk.used);
            break;
        }
    }
    let used = drained_at.expect("the drain is asked for");
    assert!(used < 0.90, "must drain at {:.1}% used", used * 100.0);
    let detail = disk.outlook().detail;
    assert!(detail.contains("filling") || detail.contains("by the next check"), "{detail}");
}

#[test]
fn gc_removing_the_last_junk_does_not_hide_a_runaway_and_the_drain_comes_with_a_tenth_free() {
    // CI's incident: 45 MiB/s on 1 GiB from 70%, three 30 MiB junk images. Each GC run removes
    // junk down to gc-stop's side (one image, then the last two), then finds nothing. The disk
    // moving backwards under GC must not read as a writer slowing down: nothing is left to free.
    let mut disk = Disk::new(OffenderAction::None, 0.70);
    disk.tick(1.0, 0.0);
    let mut junk = 90u64 << 20;
    let mut drained_at = None;
    for _ in 0..200 {
        let interval = disk.step.next_check_in(&settings()).as_secs_f64();
        let commands = disk.tick(interval, 45.0 * (1 << 20) as f64);
        if has_gc(&commands) {
            let above = ((disk.used - 0.78).max(0.0) * GIB as f64) as u64;
            let freed = above.min(junk).div_ceil(30 << 20) * (30 << 20);
            let freed = freed.min(junk);
            junk -= freed;
            let to = disk.used - freed as f64 / GIB as f64;
            disk.gc_done(to, to < 0.80);
        }
        if disk.outlook().must_drain {
            drained_at = Some(disk.used);
            break;
        }
    }
    let used = drained_at.expect("the drain is asked for");
    assert_eq!(junk, 0, "GC went first and removed all the junk");
    assert!(used <= 0.90, "drained at {:.1}% used", used * 100.0);
}

#[test]
fn checks_come_four_times_as_often_while_the_disk_would_reach_drain_at_within_ten_checks() {
    let mut disk = Disk::new(OffenderAction::None, 0.50);
    disk.tick(1.0, 0.0);
    assert_eq!(disk.step.next_check_in(&settings()), Duration::from_secs(1));
    disk.tick(1.0, 0.05 * GIB as f64);
    assert_eq!(disk.step.next_check_in(&settings()), Duration::from_millis(250));
    disk.tick(1.0, 0.0);
    disk.tick(10.5, 0.0);
    assert_eq!(disk.step.next_check_in(&settings()), Duration::from_secs(1), "no longer filling");
}

#[test]
fn after_a_shortfall_gc_waits_unless_usage_rises() {
    let mut disk = Disk::new(OffenderAction::None, 0.88);
    assert!(has_gc(&disk.tick(1.0, 0.0)));
    disk.gc_done(0.87, false);
    assert!(!has_gc(&disk.tick(1.0, 0.0)), "waits out the retry delay");
    assert!(has_gc(&disk.tick(1.0, 0.02 * GIB as f64)), "usage rose: GC again");
    disk.gc_done(0.89, false);
    let again = (1..=12).find(|_| has_gc(&disk.tick(1.0, 0.0)));
    assert_eq!(again, Some(10), "and again after the delay");
}

#[test]
fn pressure_ends_when_the_disk_recovers_and_held_below_recover_below() {
    let mut disk = Disk::new(OffenderAction::None, 0.95);
    disk.tick(1.0, 0.0);
    disk.gc_done(0.95, false);
    disk.tick(1.0, 0.0);
    assert!(disk.outlook().must_drain && disk.outlook().trouble);
    disk.used = 0.5;
    disk.tick(1.0, 0.0);
    assert!(disk.outlook().must_drain, "Recovering holds the drain");
    for _ in 0..6 {
        disk.tick(1.0, 0.0);
    }
    assert!(!disk.outlook().must_drain && !disk.outlook().trouble, "{:?}", disk.step.snapshot(disk.at()).phase);
}

/// A 100 GiB disk at 86% whose first GC run found nothing to remove: GC is behind.
fn big_disk_behind(action: OffenderAction) -> Disk {
    let mut disk = Disk::new(action, 0.86);
    disk.total = 100 * GIB;
    assert!(has_gc(&disk.tick(0.5, 0.0)));
    disk.gc_done(0.86, false);
    disk
}

/// Runs an offender episode: a writer `rate` bytes/s, footprints answered as sampled. Returns
/// the commands seen and the outlook after each tick.
fn episode(disk: &mut Disk, rate: f64, ticks: usize) -> Vec<(Vec<DiskCommand>, DiskOutlook)> {
    let mut seen = Vec::new();
    for _ in 0..ticks {
        let mut commands = disk.tick(0.5, rate);
        disk.written += (rate * 0.5) as u64;
        let written = disk.written;
        if has_gc(&commands) {
            disk.gc_done(disk.used, false);
        }
        if commands.contains(&DiskCommand::SampleFootprints) {
            let footprints = vec![footprint("runaway", written), footprint("quiet", 1 << 20)];
            commands.extend(disk.step.on_footprints(Ok(footprints), &settings(), disk.at()));
        }
        seen.push((commands, disk.outlook()));
    }
    seen
}

fn stops(seen: &[(Vec<DiskCommand>, DiskOutlook)]) -> Vec<StopRequest> {
    seen.iter()
        .flat_map(|(commands, _)| commands)
        .filter_map(|c| match c {
            DiskCommand::StopTask(request) => Some(request.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn with_stop_task_the_writer_is_stopped_first_and_the_drain_waits_for_it_while_there_is_time() {
    // 100 GiB at 30 MB/s from 86%: full in about 8 minutes (within drain-if-full-within), not
    // urgent.
    let mut disk = big_disk_behind(OffenderAction::StopTask);
    let seen = episode(&mut disk, 30.0 * MB, 40);
    let stops = stops(&seen);
    assert_eq!(stops.len(), 1, "one stop: {stops:?}");
    assert!(stops[0].task_arn.ends_with("/runaway") && stops[0].reason.starts_with("nodewarden: container runaway"));
    assert!(seen.iter().all(|(_, outlook)| !outlook.must_drain || outlook.hold), "the drain waits for the stop");
    assert_eq!(disk.step.top_writer().map(|t| t.footprint.name.as_str()), Some("runaway"));
    // The stop went through; the disk is relieved: no drain, the episode ends.
    disk.step.on_stop_answer(&stops[0], StopAnswer::Stopped, SystemTime::now());
    disk.used = 0.70;
    disk.tick(1.0, 0.0);
    disk.gc_done(0.70, true);
    for _ in 0..12 {
        disk.tick(1.0, 0.0);
    }
    assert!(!disk.outlook().must_drain && !disk.outlook().trouble);
    let snapshot = disk.step.snapshot(disk.at());
    assert_eq!(snapshot.offender.stops, 1);
    assert!(snapshot.offender.last_stop.is_some());
}

#[test]
fn with_stop_task_a_writer_about_to_fill_the_disk_is_stopped_and_the_drain_does_not_wait() {
    // 1 GiB at 200 MB/s: full within seconds.
    let mut disk = Disk::new(OffenderAction::StopTask, 0.60);
    disk.step.on_sample(disk.sample(), &settings(), disk.at());
    let seen = episode(&mut disk, 200.0 * MB, 4);
    let first_drain = seen.iter().position(|(_, outlook)| outlook.must_drain && !outlook.hold).expect("drains");
    let first_stop =
        seen.iter().position(|(commands, _)| commands.iter().any(|c| matches!(c, DiskCommand::StopTask(_))));
    assert!(first_drain <= 1, "the drain is not held: {first_drain}");
    assert!(first_stop.is_some_and(|at| at <= 2), "the stop goes out within a second: {first_stop:?}");
}

#[test]
fn a_task_ecs_does_not_list_here_is_never_asked_for_again_and_does_not_hold_the_drain() {
    let mut disk = big_disk_behind(OffenderAction::StopTask);
    let seen = episode(&mut disk, 30.0 * MB, 10);
    let stop = stops(&seen).pop().expect("asked once");
    disk.step.on_stop_answer(&stop, StopAnswer::NotPlacedHere, SystemTime::now());
    let later = episode(&mut disk, 30.0 * MB, 30);
    assert!(
        later.last().is_some_and(|(_, outlook)| outlook.must_drain && !outlook.hold),
        "the drain is not held for it"
    );
    assert!(stops(&later).is_empty(), "never asked again");
    let left = disk.step.snapshot(disk.at()).offender.left.unwrap_or_default();
    assert!(left.contains("not one ECS lists on this container instance"), "{left}");
}

#[test]
fn a_failed_stop_is_asked_for_again() {
    let mut disk = big_disk_behind(OffenderAction::StopTask);
    let seen = episode(&mut disk, 30.0 * MB, 10);
    let stop = stops(&seen).pop().expect("asked once");
    disk.step.on_stop_answer(&stop, StopAnswer::Failed("throttled".into()), SystemTime::now());
    assert_eq!(stops(&episode(&mut disk, 30.0 * MB, 10)).len(), 1, "asked again");
}

#[test]
fn a_burst_that_ended_does_not_drain_a_disk_below_gc_start() {
    // 36% at once (an image pulled, a file allocated) to just past gc-stop, then a slow writer
    // (1 MB/s) on a small disk. The window's rate says "full in seconds" for ten seconds; the
    // next check, predicted from the last two seconds, does not, once GC (slow here) is done.
    let mut disk = Disk::new(OffenderAction::None, 0.45);
    disk.total = GIB / 2;
    disk.tick(1.0, 0.0);
    assert!(has_gc(&disk.tick(1.0, 0.36 * (GIB / 2) as f64)), "reclaim starts a check ahead");
    let burst = disk.now;
    let mut gc_pending = true;
    for _ in 0..40 {
        let interval = disk.step.next_check_in(&settings()).as_secs_f64();
        let commands = disk.tick(interval, 1.0 * MB);
        if gc_pending && disk.now - burst >= Duration::from_millis(2500) {
            disk.gc_done(disk.used, false);
            gc_pending = false;
        } else if has_gc(&commands) {
            disk.gc_done(disk.used, false);
        }
        if disk.used < 0.85 {
            assert!(!disk.outlook().must_drain, "drained at {:.1}%, below gc-start", disk.used * 100.0);
        }
    }
}

#[test]
fn a_container_measured_only_in_part_is_never_named_nor_stopped_and_the_drain_still_comes() {
    // Counted partly, then fully, in turn: each full count looks like gigabytes of growth.
    let mut disk = big_disk_behind(OffenderAction::StopTask);
    let (mut named, mut stopped, mut drained) = (false, false, false);
    for i in 0..60 {
        let mut commands = disk.tick(0.5, 30.0 * MB);
        if has_gc(&commands) {
            disk.gc_done(disk.used, false);
        }
        if commands.contains(&DiskCommand::SampleFootprints) {
            let partly = i % 2 == 0;
            let many_files =
                Footprint { cut_short: partly, ..footprint("many-files", if partly { 1 << 20 } else { 8 * GIB }) };
            commands.extend(disk.step.on_footprints(Ok(vec![many_files]), &settings(), disk.at()));
        }
        named |= disk.step.top_writer().is_some();
        stopped |= commands.iter().any(|c| matches!(c, DiskCommand::StopTask(_)));
        drained |= disk.outlook().must_drain && !disk.outlook().hold;
    }
    assert!(!named && !stopped, "named {named}, stopped {stopped}");
    assert!(drained, "the drain is not held for a verdict that cannot come");
}
