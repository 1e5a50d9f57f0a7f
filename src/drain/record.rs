//! Who drained this instance and why, persisted under nodewarden's state directory, so a
//! restart never forgets whose drain it is (and never undoes an operator's).

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::policy::DrainReason;
use crate::fsutil::{WriteError, write_atomic};
use crate::gc::inventory::unix_seconds;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainRecord {
    pub reason: DrainReason,
    /// For people: "disk 93.1% used after garbage collection (drain-at 92%)".
    pub detail: String,
    #[serde(with = "unix_seconds")]
    pub since: SystemTime,
    pub cluster: String,
    pub container_instance_arn: String,
}

/// Reads the record at `path` (`HostPaths::drain_record`).
pub fn load(path: &Path) -> Option<DrainRecord> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(record) => Some(record),
        Err(error) => {
            // Treat an unreadable record as an operator's drain: never undo what we cannot read.
            tracing::warn!(path = %path.display(), %error, "unreadable drain record; treating the drain as an operator's");
            None
        }
    }
}

pub fn save(path: &Path, record: &DrainRecord) -> Result<(), WriteError> {
    let bytes = serde_json::to_vec_pretty(record).expect("a drain record always serializes");
    write_atomic(path, &bytes, 0o644).map(drop)
}

pub fn clear(path: &Path) -> Result<(), WriteError> {
    crate::fsutil::remove_if_present(path)
}
