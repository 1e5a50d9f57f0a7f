//! A sparse image file attached to a loop device, so disk pressure in tests is real.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::system::{self, require_root, require_tool, run, try_run};

pub struct LoopDisk {
    pub image: PathBuf,
    pub device: PathBuf,
    mount_point: Option<PathBuf>,
}

impl LoopDisk {
    /// Creates a sparse `size_mb` image under `dir` and attaches it to a free loop device.
    pub fn create(dir: &Path, name: &str, size_mb: u64) -> LoopDisk {
        require_root("a loop device");
        require_tool("losetup", "util-linux");
        let image = dir.join(format!("{name}.img"));
        let file = std::fs::File::create(&image).unwrap_or_else(|e| panic!("creating {}: {e}", image.display()));
        file.set_len(size_mb << 20).unwrap_or_else(|e| panic!("sizing {}: {e}", image.display()));
        let output = run(Command::new("losetup").arg("--find").arg("--show").arg(&image));
        let device = PathBuf::from(output.trim());
        assert!(
            device.to_string_lossy().starts_with("/dev/loop"),
            "losetup gave {device:?}: are loop devices available here?"
        );
        LoopDisk { image, device, mount_point: None }
    }

    /// Makes the device visible under a `--root`: nodewarden looks for devices only under its
    /// root (never the real /dev), so a test root carries a link to the loop device, by the
    /// same /dev path.
    pub fn link_into(&self, root: &Path) {
        let link = root.join(self.device.strip_prefix("/").expect("an absolute device path"));
        std::fs::create_dir_all(link.parent().expect("under /dev")).expect("creating the root's /dev");
        std::os::unix::fs::symlink(&self.device, &link).unwrap_or_else(|e| panic!("linking {}: {e}", link.display()));
    }

    /// Formats the whole device as xfs (xfs needs at least 300 MB).
    pub fn format_xfs(&self) {
        require_tool("mkfs.xfs", "xfsprogs");
        run(Command::new("mkfs.xfs").arg("-q").arg("-f").arg(&self.device));
    }

    pub fn mount(&mut self, at: &Path, options: &str) {
        std::fs::create_dir_all(at).unwrap_or_else(|e| panic!("creating {}: {e}", at.display()));
        let mut command = Command::new("mount");
        if !options.is_empty() {
            command.arg("-o").arg(options);
        }
        run(command.arg(&self.device).arg(at));
        self.mount_point = Some(at.to_path_buf());
    }

    /// Grows the image file and tells the loop device about the new size.
    pub fn grow(&self, new_size_mb: u64) {
        let file = std::fs::OpenOptions::new().write(true).open(&self.image).expect("the image file exists");
        file.set_len(new_size_mb << 20).expect("growing the image file");
        run(Command::new("losetup").arg("--set-capacity").arg(&self.device));
    }

    /// Marks the mount as owned by someone else (e.g. `nodewarden setup` mounted it itself)
    /// so it is still unmounted at drop.
    pub fn adopt_mount(&mut self, at: &Path) {
        self.mount_point = Some(at.to_path_buf());
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        if let Some(mount_point) = &self.mount_point {
            system::unmount_all_under(mount_point);
        }
        // Any other mount of this device (made by the code under test) goes too.
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let device = self.device.to_string_lossy().into_owned();
        for line in info.lines().filter(|l| l.split(" - ").nth(1).is_some_and(|r| r.split(' ').nth(1) == Some(&device)))
        {
            if let Some(point) = line.split(' ').nth(4) {
                system::unmount_all_under(Path::new(point));
            }
        }
        if !try_run(Command::new("losetup").arg("-d").arg(&self.device)) {
            eprintln!("warning: could not detach {}", self.device.display());
        }
    }
}
