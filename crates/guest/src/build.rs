//! A small, really bootable Linux guest disk, made from Debian packages on
//! this machine (nothing downloaded): raw, MBR, one ext4 partition, extlinux,
//! the kernel from `linux-image-cloud-amd64`, a `busybox-static` initramfs
//! that loads the virtio drivers, mounts the root named on the kernel command
//! line and switches to a busybox system whose getty prints a login prompt on
//! the serial port. Like a guest made on a cloud, it names its root by device
//! in `/etc/fstab` and pins a static address in netplan, so inspection and
//! preparation have something real to find.
//!
//! Needs root: extlinux installs only on a mounted filesystem (here a loop
//! device). The kernel itself is readable by anyone on Debian (0644); a
//! root-free build could fill the filesystem with `mkfs.ext4 -d` and run
//! extlinux inside libguestfs's appliance (which has it), not done yet.

use super::cpio::Archive;
use super::{GuestError, io, require, run};
use crate::units::Bytes;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The partition starts at 1 MiB, like every partitioning tool's default.
const PARTITION_OFFSET: u64 = 1 << 20;
const MBR_CODE: &str = "/usr/lib/syslinux/mbr/mbr.bin";
const LDLINUX: &str = "/usr/lib/syslinux/modules/bios/ldlinux.c32";
/// Drivers the guest ships, with what they need (from `modules.dep`).
const GUEST_DRIVERS: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_scsi",
    "ena",
];
/// Drivers the initramfs loads to reach a virtio root disk, in this order
/// after their dependencies.
const INITRAMFS_DRIVERS: &[&str] = &["virtio_pci", "virtio_blk"];

/// What the guest looks like.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub hostname: String,
    /// The static address its netplan pins, with prefix (`10.1.3.20/24`).
    pub address: String,
    pub gateway: String,
    /// How its fstab and kernel command line name the root (`/dev/vda1`).
    pub root_device: String,
    pub disk_size: Bytes,
}

impl GuestSpec {
    pub fn new(hostname: &str, address: &str, gateway: &str) -> GuestSpec {
        GuestSpec {
            hostname: hostname.to_string(),
            address: address.to_string(),
            gateway: gateway.to_string(),
            root_device: "/dev/vda1".into(),
            disk_size: Bytes::mib(128),
        }
    }
}

/// The pieces from this machine a guest is made of.
#[derive(Debug, Clone)]
pub struct Toolbox {
    pub kernel: PathBuf,
    pub kernel_version: String,
    pub busybox: PathBuf,
    mkfs: PathBuf,
    losetup: PathBuf,
    mount: PathBuf,
    umount: PathBuf,
    extlinux: PathBuf,
}

impl Toolbox {
    /// Finds every piece, or says which Debian package is missing.
    pub fn find() -> Result<Toolbox, GuestError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(GuestError::Other(
                "building the lab's bootable guest needs root: extlinux installs only on a \
                 mounted filesystem, mounted here from a loop device (a readable kernel in /boot \
                 is not enough); run `altishift lab init --guest` as root"
                    .into(),
            ));
        }
        let (kernel, kernel_version) = find_kernel(Path::new("/boot"))?;
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or(GuestError::Missing {
                what: "busybox".into(),
                package: "busybox-static",
            })?;
        if !is_static(&busybox)? {
            return Err(GuestError::Missing {
                what: format!("a static busybox ({} is dynamic)", busybox.display()),
                package: "busybox-static",
            });
        }
        for file in [MBR_CODE, LDLINUX] {
            if !Path::new(file).is_file() {
                return Err(GuestError::Missing {
                    what: file.into(),
                    package: "syslinux-common",
                });
            }
        }
        Ok(Toolbox {
            kernel,
            kernel_version,
            busybox,
            mkfs: require("mkfs.ext4", "e2fsprogs")?,
            losetup: require("losetup", "mount")?,
            mount: require("mount", "mount")?,
            umount: require("umount", "mount")?,
            extlinux: require("extlinux", "extlinux")?,
        })
    }

    fn modules(&self) -> PathBuf {
        Path::new("/lib/modules").join(&self.kernel_version)
    }
}

/// The newest kernel in `/boot` with its modules, a cloud kernel first.
fn find_kernel(boot: &Path) -> Result<(PathBuf, String), GuestError> {
    let missing = || GuestError::Missing {
        what: format!(
            "a Linux kernel with its modules ({}/vmlinuz-*)",
            boot.display()
        ),
        package: "linux-image-cloud-amd64",
    };
    let entries = std::fs::read_dir(boot).map_err(|_| missing())?;
    let mut found: Vec<(bool, String)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("vmlinuz-").map(str::to_string)
        })
        .filter(|version| {
            Path::new("/lib/modules")
                .join(version)
                .join("modules.dep")
                .is_file()
        })
        .map(|version| (version.contains("cloud"), version))
        .collect();
    found.sort();
    let (_, version) = found.pop().ok_or_else(missing)?;
    Ok((boot.join(format!("vmlinuz-{version}")), version))
}

/// An ELF file without a program interpreter (PT_INTERP) runs on its own.
fn is_static(path: &Path) -> Result<bool, GuestError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let word = |at: usize, len: usize| -> Option<u64> {
        let slice = bytes.get(at..at + len)?;
        let mut buf = [0u8; 8];
        buf[..len].copy_from_slice(slice);
        Some(u64::from_le_bytes(buf))
    };
    // 64-bit little-endian ELF only (what x86_64 Debian ships).
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Ok(false);
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (word(32, 8), word(54, 2), word(56, 2))
    else {
        return Ok(false);
    };
    for n in 0..phnum {
        match word((phoff + n * phentsize) as usize, 4) {
            Some(3) => return Ok(false), // PT_INTERP
            Some(_) => {}
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// `modules.dep`: module name → (path under the modules folder, the paths
/// it needs, in the order modprobe lists them).
fn module_deps(modules: &Path) -> Result<BTreeMap<String, (String, Vec<String>)>, GuestError> {
    let path = modules.join("modules.dep");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let Some((file, deps)) = line.split_once(':') else {
            continue;
        };
        map.insert(
            module_name(file),
            (
                file.to_string(),
                deps.split_whitespace().map(str::to_string).collect(),
            ),
        );
    }
    Ok(map)
}

fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// The module files `names` need, each after what it depends on (modprobe
/// loads a module's dependency list from last to first). Built-in drivers
/// are not in `modules.dep` and need nothing.
fn load_order(deps: &BTreeMap<String, (String, Vec<String>)>, names: &[&str]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for name in names {
        let Some((file, needs)) = deps.get(*name) else {
            continue;
        };
        for path in needs.iter().rev().chain(std::iter::once(file)) {
            if !order.contains(path) {
                order.push(path.clone());
            }
        }
    }
    order
}

/// Builds the guest disk at `out` (raw). Returns the kernel version in it.
pub fn build(spec: &GuestSpec, out: &Path) -> Result<String, GuestError> {
    let tools = Toolbox::find()?;
    let deps = module_deps(&tools.modules())?;
    let initramfs = initramfs(&tools, &deps)?;
    write_disk_layout(out, spec.disk_size)?;
    let sectors = (spec.disk_size.0 - PARTITION_OFFSET) / 512;
    run(crate::child::command(&tools.mkfs)
        .args([
            "-q",
            "-F",
            "-O",
            "^64bit,^metadata_csum",
            "-L",
            "root",
            "-E",
            &format!("offset={PARTITION_OFFSET}"),
        ])
        .arg(out)
        .arg(format!("{}k", sectors / 2)))?;
    let mounted = Mounted::new(&tools, out)?;
    fill_root(&tools, &deps, spec, mounted.dir(), &initramfs)?;
    run(crate::child::command(&tools.extlinux)
        .arg("--install")
        .arg(mounted.dir().join("boot/extlinux")))?;
    mounted.finish()?;
    Ok(tools.kernel_version)
}

/// A sparse raw file with an MBR: syslinux's boot code and one bootable
/// Linux partition from 1 MiB to the end.
fn write_disk_layout(out: &Path, size: Bytes) -> Result<(), GuestError> {
    let code = std::fs::read(MBR_CODE).map_err(io(Path::new(MBR_CODE)))?;
    let file = std::fs::File::create(out).map_err(io(out))?;
    file.set_len(size.0).map_err(io(out))?;
    let mut mbr = [0u8; 512];
    let len = code.len().min(440);
    mbr[..len].copy_from_slice(&code[..len]);
    mbr[440..444].copy_from_slice(&0x616c_7469u32.to_le_bytes()); // disk signature
    let entry = &mut mbr[446..462];
    entry[0] = 0x80; // bootable
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]); // CHS: use LBA
    entry[4] = 0x83; // Linux
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    let start = (PARTITION_OFFSET / 512) as u32;
    let sectors = ((size.0 - PARTITION_OFFSET) / 512).min(u64::from(u32::MAX)) as u32;
    entry[8..12].copy_from_slice(&start.to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    file.write_all_at(&mbr, 0).map_err(io(out))?;
    file.sync_all().map_err(io(out))
}

/// The partition on a loop device, mounted in a folder beside the image;
/// unmounted and detached on every path (drop), with errors on `finish`.
struct Mounted {
    dir: PathBuf,
    device: String,
    umount: PathBuf,
    losetup: PathBuf,
    mounted: bool,
}

impl Mounted {
    fn new(tools: &Toolbox, image: &Path) -> Result<Mounted, GuestError> {
        let dir = image.with_extension("mnt");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let out = run(crate::child::command(&tools.losetup)
            .args(["-f", "--show", "-o", &PARTITION_OFFSET.to_string()])
            .arg(image))?;
        let device = String::from_utf8_lossy(&out).trim().to_string();
        let mut mounted = Mounted {
            dir,
            device,
            umount: tools.umount.clone(),
            losetup: tools.losetup.clone(),
            mounted: false,
        };
        run(crate::child::command(&tools.mount)
            .arg(&mounted.device)
            .arg(&mounted.dir))?;
        mounted.mounted = true;
        Ok(mounted)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn finish(mut self) -> Result<(), GuestError> {
        self.mounted = false;
        run(crate::child::command(&self.umount).arg(&self.dir))?;
        run(crate::child::command(&self.losetup)
            .arg("-d")
            .arg(&self.device))?;
        self.device.clear();
        std::fs::remove_dir(&self.dir).map_err(io(&self.dir))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // Best effort on an error path: the error being returned says more.
        if self.mounted {
            let _ = crate::child::command(&self.umount).arg(&self.dir).output();
        }
        if !self.device.is_empty() {
            let _ = crate::child::command(&self.losetup)
                .arg("-d")
                .arg(&self.device)
                .output();
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// The initramfs: busybox, the virtio modules and an `/init` that mounts the
/// root named by `root=` (a device, `UUID=` or `LABEL=`) and switches to it.
/// When the root cannot be mounted it says so and powers off.
fn initramfs(
    tools: &Toolbox,
    deps: &BTreeMap<String, (String, Vec<String>)>,
) -> Result<Vec<u8>, GuestError> {
    let mut archive = Archive::default();
    for dir in ["bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"] {
        archive.dir(dir);
    }
    let busybox = std::fs::read(&tools.busybox).map_err(io(&tools.busybox))?;
    archive.file("bin/busybox", 0o755, &busybox);
    archive.symlink("bin/sh", "busybox");
    let mut insmod = String::new();
    for path in load_order(deps, INITRAMFS_DRIVERS) {
        let source = tools.modules().join(&path);
        let data = std::fs::read(&source).map_err(io(&source))?;
        let name = format!("{}.ko", module_name(&path));
        archive.file(&format!("lib/modules/{name}"), 0o644, &data);
        insmod.push_str(&format!("$b insmod /lib/modules/{name}\n"));
    }
    let init = format!(
        r#"#!/bin/sh
b=/bin/busybox
$b mount -t proc proc /proc
$b mount -t sysfs sysfs /sys
$b mount -t devtmpfs devtmpfs /dev
{insmod}root=
for arg in $($b cat /proc/cmdline); do
  case $arg in root=*) root=${{arg#root=}};; esac
done
dev=
n=0
while [ $n -lt 50 ]; do
  dev=$($b findfs "$root" 2>/dev/null)
  [ -z "$dev" ] && [ -b "$root" ] && dev=$root
  [ -n "$dev" ] && break
  $b sleep 0.2
  n=$((n+1))
done
if [ -z "$dev" ] || ! $b mount -o ro "$dev" /newroot; then
  echo "altishift-guest: cannot mount the root filesystem '$root'"
  exec $b poweroff -f
fi
$b umount /proc /sys
$b mount --move /dev /newroot/dev
exec $b switch_root /newroot /sbin/init
"#
    );
    archive.file("init", 0o755, init.as_bytes());
    Ok(archive.finish())
}

fn put(root: &Path, relative: &str, data: &[u8], mode: u32) -> Result<(), GuestError> {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&path, data).map_err(io(&path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io(&path))
}

/// The root filesystem: busybox with its applet links, kernel, initramfs,
/// extlinux config, drivers, and an `/etc` like a cloud guest's.
fn fill_root(
    tools: &Toolbox,
    deps: &BTreeMap<String, (String, Vec<String>)>,
    spec: &GuestSpec,
    root: &Path,
    initramfs: &[u8],
) -> Result<(), GuestError> {
    let version = &tools.kernel_version;
    for dir in ["proc", "sys", "dev", "tmp", "run", "root", "var/log"] {
        let path = root.join(dir);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
    }
    let busybox = std::fs::read(&tools.busybox).map_err(io(&tools.busybox))?;
    put(root, "bin/busybox", &busybox, 0o755)?;
    let list = run(crate::child::command(&tools.busybox).arg("--list-full"))?;
    for applet in String::from_utf8_lossy(&list).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" || applet.contains("..") {
            continue;
        }
        let link = root.join(applet);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        if !link.exists() {
            std::os::unix::fs::symlink("/bin/busybox", &link).map_err(io(&link))?;
        }
    }
    let kernel = std::fs::read(&tools.kernel).map_err(io(&tools.kernel))?;
    put(root, &format!("boot/vmlinuz-{version}"), &kernel, 0o644)?;
    put(
        root,
        &format!("boot/initrd.img-{version}"),
        initramfs,
        0o644,
    )?;
    let ldlinux = std::fs::read(LDLINUX).map_err(io(Path::new(LDLINUX)))?;
    put(root, "boot/extlinux/ldlinux.c32", &ldlinux, 0o644)?;
    // No serial console on the command line: a cloud image made for a
    // display; preparation adds it. The getty on ttyS0 prints the login.
    let extlinux = format!(
        "SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 1\n\nLABEL linux\n  \
         KERNEL /boot/vmlinuz-{version}\n  INITRD /boot/initrd.img-{version}\n  \
         APPEND root={} ro quiet\n",
        spec.root_device
    );
    put(
        root,
        "boot/extlinux/extlinux.conf",
        extlinux.as_bytes(),
        0o644,
    )?;
    let modules = tools.modules();
    for file in [
        "modules.dep",
        "modules.builtin",
        "modules.order",
        "modules.alias",
    ] {
        let source = modules.join(file);
        if let Ok(data) = std::fs::read(&source) {
            put(root, &format!("lib/modules/{version}/{file}"), &data, 0o644)?;
        }
    }
    for path in load_order(deps, GUEST_DRIVERS) {
        let source = modules.join(&path);
        let data = std::fs::read(&source).map_err(io(&source))?;
        put(root, &format!("lib/modules/{version}/{path}"), &data, 0o644)?;
    }
    for (file, text) in etc_files(spec) {
        let mode = if file.starts_with("etc/init.d/") {
            0o755
        } else {
            0o644
        };
        put(root, &file, text.as_bytes(), mode)?;
    }
    // The release files of the Debian the pieces come from.
    for file in ["etc/os-release", "etc/debian_version"] {
        if let Ok(data) = std::fs::read(Path::new("/").join(file)) {
            put(root, file, &data, 0o644)?;
        }
    }
    Ok(())
}

fn etc_files(spec: &GuestSpec) -> Vec<(String, String)> {
    let s = |f: &str, t: String| (f.to_string(), t);
    vec![
        s(
            "etc/fstab",
            format!(
                "# <file system> <mount point> <type> <options> <dump> <pass>\n\
                 {}  /  ext4  defaults,errors=remount-ro  0 1\n",
                spec.root_device
            ),
        ),
        s(
            "etc/netplan/50-cloud-init.yaml",
            format!(
                "network:\n  version: 2\n  ethernets:\n    eth0:\n      \
                 addresses: [{}]\n      routes:\n        - to: default\n          \
                 via: {}\n      nameservers:\n        addresses: [{}]\n",
                spec.address, spec.gateway, spec.gateway
            ),
        ),
        s(
            "etc/cloud/cloud.cfg.d/90_dpkg.cfg",
            "# to update this file, run dpkg-reconfigure cloud-init\n\
             datasource_list: [ NoCloud, ConfigDrive, None ]\n"
                .into(),
        ),
        s("etc/hostname", format!("{}\n", spec.hostname)),
        s("etc/passwd", "root::0:0:root:/root:/bin/sh\n".into()),
        s("etc/group", "root:x:0:\n".into()),
        s(
            "etc/inittab",
            "::sysinit:/etc/init.d/rcS\n\
             ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100\n\
             ::ctrlaltdel:/sbin/reboot\n"
                .into(),
        ),
        s(
            "etc/init.d/rcS",
            "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\n\
             mount -o remount,rw /\nmount -a\nhostname -F /etc/hostname\n\
             echo \"altishift-guest: $(hostname) up, kernel $(uname -r)\"\n"
                .into(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_load_before_the_module_and_once() {
        let mut deps = BTreeMap::new();
        let entry =
            |f: &str, d: &[&str]| (f.to_string(), d.iter().map(|s| s.to_string()).collect());
        deps.insert(
            "virtio_pci".to_string(),
            entry(
                "k/virtio_pci.ko",
                &["k/legacy.ko", "k/virtio.ko", "k/virtio_ring.ko"],
            ),
        );
        deps.insert(
            "virtio_blk".to_string(),
            entry("k/virtio_blk.ko", &["k/virtio.ko", "k/virtio_ring.ko"]),
        );
        let order = load_order(&deps, &["virtio_pci", "virtio_blk", "built_in"]);
        assert_eq!(
            order,
            [
                "k/virtio_ring.ko",
                "k/virtio.ko",
                "k/legacy.ko",
                "k/virtio_pci.ko",
                "k/virtio_blk.ko"
            ]
        );
        assert_eq!(
            module_name("kernel/drivers/nvme/host/nvme-core.ko.xz"),
            "nvme_core"
        );
    }

    #[test]
    fn a_dynamic_program_is_not_static() {
        // /bin/sh on any Debian is dynamically linked.
        assert!(!is_static(Path::new("/bin/sh")).unwrap());
    }
}
