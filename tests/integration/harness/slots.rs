//! A cross-process limit on heavy fixtures (dockerd + a loop device each): the machine has
//! 8 loop devices and 2 cores, and test binaries or nextest processes may run side by side.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SLOTS: usize = 3;
const WAIT: Duration = Duration::from_secs(900);

/// Held while a fixture runs; the file lock is released when dropped (or the process dies).
pub struct Slot {
    _file: File,
}

fn slot_file(kind: &str, index: usize) -> File {
    let dir = PathBuf::from("/tmp/nodewarden-test-slots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let path = dir.join(format!("{kind}-{index}.lock"));
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

pub fn acquire(kind: &str) -> Slot {
    let deadline = Instant::now() + WAIT;
    loop {
        for index in 0..SLOTS {
            let file = slot_file(kind, index);
            if file.try_lock().is_ok() {
                return Slot { _file: file };
            }
        }
        assert!(Instant::now() < deadline, "no free {kind} slot after {WAIT:?}: a stuck test holds them");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// All slots of `kind` but one, for a test that must run alone (the one left is for its own
/// fixture). Waits for running fixtures to finish.
pub fn acquire_all_but_one(kind: &str) -> Vec<Slot> {
    lock_each(kind, 1..SLOTS)
}

/// Every slot of `kind`, for a test that runs several fixtures of its own and must be alone.
pub fn acquire_all(kind: &str) -> Vec<Slot> {
    lock_each(kind, 0..SLOTS)
}

fn lock_each(kind: &str, indices: std::ops::Range<usize>) -> Vec<Slot> {
    indices
        .map(|index| {
            let file = slot_file(kind, index);
            file.lock().unwrap_or_else(|e| panic!("locking the {kind} slot {index}: {e}"));
            Slot { _file: file }
        })
        .collect()
}
