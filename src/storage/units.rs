//! systemd units that make the Docker disk persistent and ordered: a mount unit for
//! `/var/lib/docker` (by filesystem UUID, no `nofail`: Docker must not start on the root disk
//! by mistake) and `RequiresMountsFor=` drop-ins for docker.service and containerd.service.

pub const MOUNT_UNIT: &str = "var-lib-docker.mount";
pub const DROP_IN: &str = "10-nodewarden-disk.conf";
pub const SERVICES: &[&str] = &["docker.service", "containerd.service"];

pub fn mount_unit(uuid: &str, fs_type: &str, options: &str) -> String {
    format!(
        "# Written by nodewarden setup: Docker's data on a filesystem of its own.\n\
         [Unit]\n\
         Description=Docker data on its own filesystem (nodewarden)\n\
         Documentation=man:systemd.mount(5)\n\
         Before=docker.service containerd.service\n\
         \n\
         [Mount]\n\
         What=/dev/disk/by-uuid/{uuid}\n\
         Where=/var/lib/docker\n\
         Type={fs_type}\n\
         Options={options}\n\
         \n\
         [Install]\n\
         WantedBy=local-fs.target\n"
    )
}

pub fn drop_in() -> String {
    "# Written by nodewarden setup: never start on the root disk by mistake.\n\
     [Unit]\n\
     RequiresMountsFor=/var/lib/docker\n"
        .to_string()
}
