//! Writing files so a crash or a full disk never leaves a half-written one: a temporary file
//! in the same directory, fsync, rename over the target, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl WriteError {
    /// The filesystem is full (ENOSPC) or the writer's quota is spent (EDQUOT).
    pub fn is_out_of_space(&self) -> bool {
        matches!(self.source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
    }
}

/// For a write not worth failing over when its disk is full: `Ok(None)` when it worked,
/// `Ok(Some(warning))` (saying what failed, that the disk is full, and `consequence`) when its
/// filesystem is out of space, any other error as it is. The file stays as it was (the write
/// is atomic).
pub fn unless_out_of_space(
    result: Result<Written, WriteError>,
    consequence: &str,
) -> Result<Option<String>, WriteError> {
    match result {
        Ok(_) => Ok(None),
        Err(error) if error.is_out_of_space() => Ok(Some(format!(
            "{error}: that disk is full, so {consequence}; free space on it (old logs, `journalctl --vacuum-size=`)"
        ))),
        Err(error) => Err(error),
    }
}

/// What [`write_atomic`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Changed,
    /// The file already held exactly these bytes (and mode); nothing was touched.
    Unchanged,
}

/// Removes `path`; a file that is not there already is fine.
pub fn remove_if_present(path: &Path) -> Result<(), WriteError> {
    match fs::remove_file(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
            Err(WriteError { path: path.to_path_buf(), source })
        }
        _ => Ok(()),
    }
}

/// Writes `contents` to `path` atomically with permissions `mode`, creating parent
/// directories (0755). Leaves an identical file alone.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<Written, WriteError> {
    let error = |source| WriteError { path: path.to_path_buf(), source };
    if let (Ok(existing), Ok(meta)) = (fs::read(path), fs::metadata(path))
        && existing == contents
        && meta.permissions().mode() & 0o7777 == mode
    {
        return Ok(Written::Unchanged);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(error)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.nodewarden-tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temp)?;
        // The umask may have narrowed the mode at creation; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(error)?;
    Ok(Written::Changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_identical_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/ecs/ecs.config");
        assert_eq!(write_atomic(&path, b"A=1\n", 0o600).unwrap(), Written::Changed);
        assert_eq!(fs::read(&path).unwrap(), b"A=1\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(write_atomic(&path, b"A=1\n", 0o600).unwrap(), Written::Unchanged);
        assert_eq!(write_atomic(&path, b"A=1\n", 0o644).unwrap(), Written::Changed, "a mode change rewrites");
        assert_eq!(write_atomic(&path, b"A=2\n", 0o600).unwrap(), Written::Changed);
        assert_eq!(fs::read(&path).unwrap(), b"A=2\n");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn only_a_full_disk_is_a_warning_and_the_file_stays_as_it_was() {
        let full = |kind| Err(WriteError { path: "/var/lib/nodewarden/x".into(), source: std::io::Error::from(kind) });
        for kind in [std::io::ErrorKind::StorageFull, std::io::ErrorKind::QuotaExceeded] {
            let warning = unless_out_of_space(full(kind), "it is skipped").unwrap().expect("a warning");
            assert!(warning.starts_with("writing /var/lib/nodewarden/x: "), "{warning}");
            assert!(warning.contains("that disk is full, so it is skipped; free space on it"), "{warning}");
        }
        let from_errno = WriteError { path: "x".into(), source: std::io::Error::from_raw_os_error(libc::ENOSPC) };
        assert!(from_errno.is_out_of_space(), "ENOSPC from the kernel");
        assert!(unless_out_of_space(full(std::io::ErrorKind::PermissionDenied), "").is_err());
        assert_eq!(unless_out_of_space(Ok(Written::Unchanged), "").unwrap(), None);
    }

    #[test]
    fn errors_name_the_path() {
        let error = write_atomic(Path::new("/proc/nodewarden/x"), b"", 0o600).unwrap_err();
        assert!(error.to_string().contains("/proc/nodewarden/x"), "{error}");
    }
}
