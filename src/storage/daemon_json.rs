//! `/etc/docker/daemon.json`, merged rather than clobbered: nodewarden owns `data-root` only
//! when it prepared Docker's device, the bounds on container logs (only where the operator set
//! none) and `overlay2.size` in `storage-opts`; every other key is kept as it was.

use serde_json::{Map, Value};

use super::{Note, StorageError};

use crate::settings::values::ByteSize;

/// Why `overlay2.size` cannot work, if it cannot: dockerd refuses to start with it unless the
/// backing filesystem is xfs, mounted with project quota, and formatted with ftype=1.
pub(crate) fn overlay_size_unsupported(fs_type: &str, super_options: &str, ftype: Option<u8>) -> Option<String> {
    if fs_type != "xfs" {
        return Some(format!("the filesystem is {fs_type}; overlay2.size needs xfs"));
    }
    let options: Vec<&str> = super_options.split(',').collect();
    if !options.iter().any(|o| matches!(*o, "prjquota" | "pquota")) {
        return Some("xfs is mounted without project quota (prjquota); this kernel may not support it".into());
    }
    if ftype != Some(1) {
        return Some("the xfs filesystem lacks ftype=1 (d_type), which overlay2 needs".into());
    }
    None
}

/// Docker's size notation (`units.RAMInBytes`, 1024-based): `16m`, `10g`, or bytes.
pub fn docker_size(size: ByteSize) -> String {
    let bytes = size.bytes();
    for (suffix, unit) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// What nodewarden wants in daemon.json.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// Docker's device mount point, when nodewarden prepared one; else the operator's value stays.
    pub data_root: Option<String>,
    pub log_max_size: ByteSize,
    pub log_max_files: u32,
    /// `Some` only when verified supported.
    pub overlay_size: Option<ByteSize>,
}

/// Drivers Docker can read back itself; for the others it keeps a dual-logging cache.
const LOCAL_DRIVERS: &[&str] = &["json-file", "local"];

/// Merges `wanted` into an existing daemon.json object. Returns the new document and notes
/// for the operator.
pub fn merge(existing: Value, wanted: &Wanted) -> Result<(Value, Vec<Note>), StorageError> {
    let mut doc = match existing {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            return Err(StorageError::DaemonJsonShape(format!(
                "daemon.json must hold a JSON object, found {}",
                kind(&other)
            )));
        }
    };
    let mut notes = Vec::new();
    if let Some(root) = &wanted.data_root {
        if let Some(theirs) = doc.get("data-root").and_then(Value::as_str).filter(|theirs| theirs != root) {
            notes.push(Note::Warning(format!(
                "daemon.json had data-root {theirs:?}; Docker's data now goes to its own device, mounted at {root:?} \
                 (what {theirs:?} holds is left as it was). Set [docker] data-device = \"none\" to keep your data-root"
            )));
        }
        doc.insert("data-root".into(), Value::String(root.clone()));
    }
    let driver = doc.get("log-driver").and_then(Value::as_str).unwrap_or("json-file").to_string();
    if !doc.contains_key("log-driver") {
        doc.insert("log-driver".into(), Value::String(driver.clone()));
    }
    let (size_key, files_key) = if LOCAL_DRIVERS.contains(&driver.as_str()) {
        ("max-size", "max-file")
    } else {
        ("cache-max-size", "cache-max-file")
    };
    let opts = doc.entry("log-opts").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(opts) = opts else {
        return Err(StorageError::DaemonJsonShape("daemon.json: log-opts must be an object".into()));
    };
    // The operator's own bounds win; Docker wants strings here.
    opts.entry(size_key).or_insert_with(|| Value::String(docker_size(wanted.log_max_size)));
    opts.entry(files_key).or_insert_with(|| Value::String(wanted.log_max_files.to_string()));
    if opts.get("cache-disabled").and_then(Value::as_str) == Some("true") && size_key.starts_with("cache") {
        notes.push(Note::Info(format!("log driver {driver} with cache-disabled: container logs are not kept locally")));
    }

    let storage = doc.entry("storage-opts").or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(storage) = storage else {
        return Err(StorageError::DaemonJsonShape("daemon.json: storage-opts must be an array".into()));
    };
    let before = storage.len();
    storage.retain(|o| !o.as_str().is_some_and(|s| s.starts_with("overlay2.size=")));
    match wanted.overlay_size {
        Some(size) => storage.push(Value::String(format!("overlay2.size={}", docker_size(size)))),
        None if storage.len() != before => notes.push(Note::Info(
            "removed overlay2.size from storage-opts: dockerd would refuse to start without project quota".into(),
        )),
        None => {}
    }
    if storage.is_empty() {
        doc.remove("storage-opts");
    }
    Ok((Value::Object(doc), notes))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wanted(overlay: Option<u64>) -> Wanted {
        Wanted {
            data_root: Some("/var/lib/docker".into()),
            log_max_size: ByteSize::from_bytes(16 << 20),
            log_max_files: 4,
            overlay_size: overlay.map(ByteSize::from_bytes),
        }
    }

    #[test]
    fn unrelated_keys_survive_and_logs_are_bounded() {
        let existing =
            json!({"userland-proxy": false, "registry-mirrors": ["https://m"], "log-opts": {"labels": "team"}});
        let (doc, notes) = merge(existing, &wanted(None)).unwrap();
        assert_eq!(doc["userland-proxy"], false);
        assert_eq!(doc["registry-mirrors"][0], "https://m");
        assert_eq!(doc["data-root"], "/var/lib/docker");
        assert_eq!(doc["log-driver"], "json-file");
        assert_eq!(doc["log-opts"], json!({"labels": "team", "max-size": "16m", "max-file": "4"}));
        assert!(doc.get("storage-opts").is_none() && notes.is_empty());
    }

    #[test]
    fn the_operators_data_root_stays_unless_nodewarden_prepared_a_device() {
        let theirs = json!({"data-root": "/data/docker"});
        let without_device = Wanted { data_root: None, ..wanted(None) };
        let (doc, notes) = merge(theirs.clone(), &without_device).unwrap();
        assert_eq!(doc["data-root"], "/data/docker");
        assert!(notes.is_empty(), "{notes:?}");
        let (doc, notes) = merge(theirs, &wanted(None)).unwrap();
        assert_eq!(doc["data-root"], "/var/lib/docker");
        assert!(matches!(&notes[0], Note::Warning(text) if text.contains("\"/data/docker\"")), "{notes:?}");
        let (_, notes) = merge(json!({"data-root": "/var/lib/docker"}), &wanted(None)).unwrap();
        assert!(notes.is_empty(), "the same value is no conflict: {notes:?}");
        let (doc, _) = merge(json!({}), &without_device).unwrap();
        assert!(doc.get("data-root").is_none(), "Docker's own default stays implicit: {doc}");
    }

    #[test]
    fn the_operators_own_bounds_and_remote_drivers() {
        let (doc, _) = merge(json!({"log-opts": {"max-size": "100m"}}), &wanted(None)).unwrap();
        assert_eq!(doc["log-opts"]["max-size"], "100m");
        let (doc, _) =
            merge(json!({"log-driver": "awslogs", "log-opts": {"awslogs-group": "g"}}), &wanted(None)).unwrap();
        assert_eq!(doc["log-opts"], json!({"awslogs-group": "g", "cache-max-size": "16m", "cache-max-file": "4"}));
    }

    #[test]
    fn overlay_size_is_added_replaced_or_removed() {
        let (doc, _) =
            merge(json!({"storage-opts": ["overlay2.override_kernel_check=true"]}), &wanted(Some(10 << 30))).unwrap();
        assert_eq!(doc["storage-opts"], json!(["overlay2.override_kernel_check=true", "overlay2.size=10g"]));
        let (doc, notes) = merge(json!({"storage-opts": ["overlay2.size=5g"]}), &wanted(None)).unwrap();
        assert!(doc.get("storage-opts").is_none());
        assert!(matches!(&notes[0], Note::Info(text) if text.contains("removed overlay2.size")));
        assert!(merge(json!([1]), &wanted(None)).is_err());
    }

    #[test]
    fn the_quota_decision() {
        assert!(overlay_size_unsupported("xfs", "rw,noatime,attr2,inode64,prjquota", Some(1)).is_none());
        let why = |fs_type, options, ftype| overlay_size_unsupported(fs_type, options, ftype).unwrap_or_default();
        assert!(why("xfs", "rw,noatime,attr2,inode64,noquota", Some(1)).contains("project quota"));
        assert!(why("xfs", "rw,prjquota", Some(0)).contains("ftype=1"));
        assert!(why("ext4", "rw,prjquota", Some(1)).contains("needs xfs"));
    }

    #[test]
    fn docker_sizes() {
        assert_eq!(docker_size(ByteSize::from_bytes(16 << 20)), "16m");
        assert_eq!(docker_size(ByteSize::from_bytes(10 << 30)), "10g");
        assert_eq!(docker_size(ByteSize::from_bytes(1500)), "1500");
    }
}
