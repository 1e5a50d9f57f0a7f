//! Who drained this instance and why, persisted under nodewarden's state directory, so a
//! restart never forgets whose drain it is (and never undoes an operator's).

use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::policy::DrainReason;
use crate::fsutil::{WriteError, write_atomic};
use crate::time::unix_seconds;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainRecord {
    pub reason: DrainReason,
    /// For people: "disk 93.1% used after garbage collection (drain-at 92%)".
    pub detail: String,
    #[serde(with = "unix_seconds")]
    pub since: SystemTime,
    pub cluster: String,
    pub container_instance_arn: String,
    /// Written before asking ECS to drain, cleared once ECS answered: a crash between the two
    /// leaves a drain that is still known to be ours (undone when the disk recovers), never one
    /// mistaken for an operator's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

/// Reads the record at `path` (`HostPaths::drain_record`).
pub fn load(path: &Path) -> Option<DrainRecord> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(record) => Some(record),
        Err(error) => {
            // Treat an unreadable record as an operator's drain: never undo what we cannot read.
            // It is moved aside (kept for a person, never read again in a loop).
            let aside = path.with_extension("json.unreadable");
            let _ = std::fs::rename(path, &aside);
            tracing::warn!(
                path = %path.display(), moved_to = %aside.display(), %error,
                "unreadable drain record; treating the drain as an operator's"
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// JSON numbers as a damaged or hand-edited file may hold them.
    fn json_number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f64>().prop_filter("JSON has no inf or NaN", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
            Just("1e308".to_string()),
            Just("-1e308".to_string()),
            Just("1e400".to_string()),
            Just("18446744073709551616".to_string()),
            (0u64..4_000_000_000).prop_map(|n| n.to_string()),
        ]
    }

    proptest! {
        /// A damaged drain record is never a panic: it reads or is moved aside.
        #[test]
        fn any_timestamp_reads_or_is_moved_aside(since in json_number()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("drain.json");
            let text = format!(
                r#"{{"reason":"disk-pressure","detail":"d","since":{since},"cluster":"c","container_instance_arn":"a"}}"#
            );
            std::fs::write(&path, &text).unwrap();
            match load(&path) {
                Some(record) => prop_assert!(record.since >= std::time::UNIX_EPOCH),
                None => prop_assert!(!path.exists() && dir.path().join("drain.json.unreadable").exists()),
            }
        }
    }

    #[test]
    fn a_time_no_clock_can_hold_is_unreadable_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drain.json");
        std::fs::write(
            &path,
            r#"{"reason":"operator","detail":"","since":1e300,"cluster":"c","container_instance_arn":"a"}"#,
        )
        .unwrap();
        assert!(load(&path).is_none());
        assert!(dir.path().join("drain.json.unreadable").exists());
    }
}
