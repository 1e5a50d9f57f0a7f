//! Whether dockerd will accept `overlay2.size` on a mounted filesystem, asked the way dockerd
//! asks at start (moby's `quota.NewControl`): a block device node for the filesystem is made
//! inside it, and `quotactl(Q_XGETQSTAT, PRJQUOTA)` through that node must report project
//! quota accounting and enforcement on. Through that node and not `/dev`, because that is
//! where dockerd fails: on a `nodev` mount the kernel refuses to open the node (EACCES), and
//! dockerd then refuses to start at all when `overlay2.size` is configured. Where the check
//! passed, each writable layer is a project whose block count the offender sampler reads
//! instead of walking the layer's files.
// Syscalls neither std nor rustix offer (quotactl, FS_IOC_FSGETXATTR and their XFS structures): the only
// unsafe code in nodewarden, each call on buffers owned here and sized past the kernel's.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{CWD, FileType, Mode};

/// Where the check makes its node; removed afterwards.
const SCRATCH_DIR: &str = ".nodewarden-quota-check";

// <linux/quota.h> and <linux/dqblk_xfs.h>.
const PRJQUOTA: i32 = 2;
const Q_XGETQSTAT: i32 = (('X' as i32) << 8) + 5;
const FS_QUOTA_PDQ_ACCT: u16 = 1 << 4;
const FS_QUOTA_PDQ_ENFD: u16 = 1 << 5;
/// `fs_quota_stat` is 80 bytes; `qs_flags` is the u16 at offset 2.
const QSTAT_BYTES: usize = 128;

const fn qcmd(command: i32, kind: i32) -> i32 {
    (command << 8) | (kind & 0xff)
}

/// `Ok(())` when dockerd's project-quota check would pass on the filesystem mounted at
/// `mount_point`; otherwise why not, in words for the operator.
pub fn dockerd_accepts_overlay_size(mount_point: &Path) -> Result<(), String> {
    let scratch = mount_point.join(SCRATCH_DIR);
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir(&scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    let verdict = check_in(&scratch);
    if let Err(error) = std::fs::remove_dir_all(&scratch) {
        tracing::warn!(dir = %scratch.display(), %error, "cannot remove the quota check's scratch directory");
    }
    verdict
}

fn check_in(dir: &Path) -> Result<(), String> {
    let device = std::fs::metadata(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?.dev();
    let node = dir.join("backingFsBlockDev");
    rustix::fs::mknodat(CWD, &node, FileType::BlockDevice, Mode::from_raw_mode(0o600), device)
        .map_err(|e| format!("making a device node in {} as dockerd does: {e}", dir.display()))?;
    let special =
        CString::new(node.as_os_str().as_bytes()).map_err(|_| format!("{} has a NUL byte", node.display()))?;
    let mut stat = [0u8; QSTAT_BYTES];
    // SAFETY: `special` is a NUL-terminated path and `stat` a writable buffer larger than the
    // `fs_quota_stat` the kernel fills for Q_XGETQSTAT.
    let rc = unsafe {
        libc::quotactl(qcmd(Q_XGETQSTAT, PRJQUOTA), special.as_ptr(), 0, stat.as_mut_ptr().cast::<libc::c_char>())
    };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::EACCES) => format!(
                "the kernel refuses the device node dockerd makes in its data root ({error}); is the filesystem \
                 mounted nodev?"
            ),
            Some(libc::ENOSYS | libc::EINVAL | libc::ENOTTY | libc::EOPNOTSUPP | libc::ENOENT) => {
                format!("the kernel or filesystem has no project quota ({error})")
            }
            _ => format!("quotactl through {} failed: {error}", node.display()),
        });
    }
    let flags = u16::from_ne_bytes([stat[2], stat[3]]);
    if flags & FS_QUOTA_PDQ_ACCT == 0 || flags & FS_QUOTA_PDQ_ENFD == 0 {
        return Err("project quota accounting or enforcement is off (mount the filesystem with prjquota)".into());
    }
    Ok(())
}

// <linux/dqblk_xfs.h> and <linux/fs.h>, for reading a writable layer's size.
const Q_XGETQUOTA: i32 = (('X' as i32) << 8) + 3;
/// `_IOR('X', 31, struct fsxattr)`: `fsxattr` is 28 bytes, `fsx_projid` the u32 at offset 12.
const FS_IOC_FSGETXATTR: libc::c_ulong = (2 << 30) | (28 << 16) | (('X' as libc::c_ulong) << 8) | 31;
const FSXATTR_BYTES: usize = 64;
/// `fs_disk_quota` is 112 bytes; `d_bcount` (512-byte blocks) is the u64 at offset 40.
const DISK_QUOTA_BYTES: usize = 256;

/// Bytes Docker's writable layer at `upper_dir` holds, from the XFS project quota dockerd
/// gave it (`overlay2.size` on a prjquota mount): the project's block count, in a handful of
/// syscalls however many files the layer has. `None` where the layer has no project id or the
/// quota cannot be read (no `overlay2.size`, another filesystem, a kernel without XFS quota):
/// the caller walks the layer instead.
pub fn writable_layer_bytes(upper_dir: &Path) -> Option<u64> {
    // dockerd sets the project (inherited) on `overlay2/<id>`, whose `diff` is the upper dir,
    // and makes the block device node quotactl needs in `overlay2` itself.
    let node = upper_dir.parent()?.parent()?.join("backingFsBlockDev");
    let project = project_id(upper_dir)?;
    if project == 0 {
        return None;
    }
    let special = CString::new(node.as_os_str().as_bytes()).ok()?;
    let mut quota = [0u8; DISK_QUOTA_BYTES];
    // SAFETY: `special` is a NUL-terminated path and `quota` a writable buffer larger than the
    // `fs_disk_quota` the kernel fills for Q_XGETQUOTA.
    let rc = unsafe {
        libc::quotactl(
            qcmd(Q_XGETQUOTA, PRJQUOTA),
            special.as_ptr(),
            project as i32,
            quota.as_mut_ptr().cast::<libc::c_char>(),
        )
    };
    if rc != 0 {
        tracing::debug!(dir = %upper_dir.display(), project, error = %std::io::Error::last_os_error(), "reading a writable layer's project quota; walking it instead");
        return None;
    }
    let blocks = u64::from_ne_bytes(quota[40..48].try_into().expect("eight bytes of a 256-byte buffer"));
    Some(blocks * 512)
}

/// The XFS project id of `dir` (`FS_IOC_FSGETXATTR`); `None` where it cannot be read.
fn project_id(dir: &Path) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(dir).ok()?;
    let mut attr = [0u8; FSXATTR_BYTES];
    // SAFETY: the descriptor is open for the call's duration and `attr` a writable buffer
    // larger than the `fsxattr` the kernel fills.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FSGETXATTR as _, attr.as_mut_ptr()) };
    (rc == 0).then(|| u32::from_ne_bytes(attr[12..16].try_into().expect("four bytes of a 64-byte buffer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_numbers_match_the_kernel_headers() {
        // Q_XGETQSTAT_PRJQUOTA in <linux/dqblk_xfs.h>.
        assert_eq!(qcmd(Q_XGETQSTAT, PRJQUOTA), 0x0058_0502);
        // Q_XGETQUOTA in <linux/dqblk_xfs.h>; FS_IOC_FSGETXATTR in <linux/fs.h>.
        assert_eq!(qcmd(Q_XGETQUOTA, PRJQUOTA), 0x0058_0302);
        assert_eq!(FS_IOC_FSGETXATTR, 0x801c_581f);
    }

    #[test]
    fn a_layer_without_a_project_quota_is_left_to_the_walk() {
        // No xfs project quota here (this machine's kernel has none; the boot test's VM reads
        // a real layer's): every case is `None`, never a wrong figure.
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("overlay2/abc/diff");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::write(upper.join("f"), vec![1u8; 8192]).unwrap();
        assert_eq!(writable_layer_bytes(&upper), None);
        assert_eq!(writable_layer_bytes(&dir.path().join("gone/x/diff")), None);
        assert_eq!(writable_layer_bytes(Path::new("/")), None);
    }

    #[test]
    fn a_filesystem_without_quota_is_refused_and_the_scratch_is_gone() {
        // tmpfs (or whatever holds the temp dir here) has no XFS project quota.
        let dir = tempfile::tempdir().unwrap();
        let verdict = dockerd_accepts_overlay_size(dir.path());
        assert!(verdict.is_err(), "a temp dir passed dockerd's project-quota check");
        assert!(!dir.path().join(SCRATCH_DIR).exists());
    }
}
