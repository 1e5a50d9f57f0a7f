//! One EC2-like VM under QEMU (TCG: KVM here runs only PVM guests): the cached Debian image
//! through a qcow2 overlay, the data volume as NVMe with an EBS serial, DMI that says Amazon
//! EC2 (so cloud-init's Ec2 datasource uses IMDSv2), user networking with `restrict=on` where
//! the guest reaches nothing but the forwarded loopback servers, results through a 9p share and
//! the serial console to a file. Bounded by `timeout`; killed by PID on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::system::{require_tool, run};

/// The guest's address plan inside QEMU's user network (169.254.0.0/16, as on EC2).
pub const IMDS_ADDRESS: &str = "169.254.169.254:80";
pub const ARTIFACTS_ADDRESS: &str = "169.254.0.4:80";
pub const MOTO_ADDRESS: &str = "169.254.0.5:5000";
pub const GUEST_MAC: &str = "52:54:00:12:34:56";
pub const GUEST_IPV4: &str = "169.254.0.15";

pub struct Image {
    pub dir: PathBuf,
}

impl Image {
    pub fn root(&self) -> PathBuf {
        self.dir.join("root.img")
    }
}

/// An instance: its root disk (an overlay of the image) and its EC2 identity in DMI.
pub struct Instance {
    pub overlay: PathBuf,
    pub instance_id: String,
}

impl Instance {
    pub fn create(image: &Image, dir: &Path, instance_id: &str) -> Instance {
        let overlay = dir.join(format!("{instance_id}.qcow2"));
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(image.root())
            .arg(&overlay));
        Instance { overlay, instance_id: instance_id.to_string() }
    }
}

pub struct Boot<'a> {
    pub image: &'a Image,
    pub instance: &'a Instance,
    pub volume: &'a Path,
    pub volume_serial: &'a str,
    pub share: &'a Path,
    pub console: PathBuf,
    /// Loopback ports of the servers behind IMDS_ADDRESS, ARTIFACTS_ADDRESS and MOTO_ADDRESS.
    pub imds_port: u16,
    pub artifacts_port: u16,
    pub moto_port: u16,
    pub limit: Duration,
}

/// A running QEMU; killed (with what it spawned) on drop.
pub struct Running {
    child: Child,
}

impl Boot<'_> {
    pub fn start(&self) -> Running {
        let qemu = require_tool("qemu-system-x86_64", "qemu-system-x86 (tests/boot/install-deps)");
        require_tool("socat", "socat");
        let forward = |address: &str, port: u16| {
            let (ip, guest_port) = address.split_once(':').expect("host:port");
            format!("guestfwd=tcp:{ip}:{guest_port}-cmd:socat - TCP:127.0.0.1:{port}")
        };
        let netdev = [
            "user,id=net0,restrict=on,net=169.254.0.0/16,host=169.254.0.1,dns=169.254.0.2,dhcpstart=169.254.0.15"
                .to_string(),
            forward(IMDS_ADDRESS, self.imds_port),
            forward(ARTIFACTS_ADDRESS, self.artifacts_port),
            forward(MOTO_ADDRESS, self.moto_port),
        ]
        .join(",");
        let uuid = "ec2e1f4b-9c0d-4a1e-8b2d-0123456789ab";
        let mut command = Command::new("timeout");
        command
            .args(["--kill-after=10", &self.limit.as_secs().to_string()])
            .arg(qemu)
            .args(["-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2", "-m", "2048"])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(self.image.dir.join("vmlinuz"))
            .arg("-initrd")
            .arg(self.image.dir.join("initrd.img"))
            // apparmor=0: its profile loading costs ~30 s a boot under TCG, and Docker runs without it.
            .args(["-append", "root=/dev/vda rw console=ttyS0 apparmor=0 systemd.show_status=1"])
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=qcow2", self.instance.overlay.display()))
            .arg("-drive")
            .arg(format!("file={},if=none,id=volume,format=raw", self.volume.display()))
            .args(["-device", &format!("nvme,drive=volume,serial={}", self.volume_serial)])
            .args(["-netdev", &netdev])
            .args(["-device", &format!("virtio-net-pci,netdev=net0,mac={GUEST_MAC}")])
            .arg("-virtfs")
            .arg(format!("local,path={},mount_tag=out,security_model=none,id=out", self.share.display()))
            .args(["-smbios", "type=0,vendor=Amazon EC2"])
            .args(["-smbios", &format!("type=1,manufacturer=Amazon EC2,product=m5.large,serial={uuid},uuid={uuid}")])
            .args(["-smbios", &format!("type=3,manufacturer=Amazon EC2,asset={}", self.instance.instance_id)])
            .arg("-serial")
            .arg(format!("file:{}", self.console.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = command.spawn().unwrap_or_else(|e| panic!("starting QEMU: {e}"));
        Running { child }
    }
}

impl Running {
    /// Waits for the guest to power off (or `timeout` to end QEMU); true when it powered off.
    /// Polls, so that the test's signal handler can drop (and so kill) a VM still running.
    pub async fn wait(&mut self) -> (bool, String) {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for QEMU") {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status.success(), stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // timeout(1) passes the signal on to QEMU, whose guestfwd socats die with it.
            crate::harness::system::signal(self.child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
