//! The lab's bootable guest, built once per test binary from this machine's
//! Debian packages (root, `linux-image-cloud-amd64`, `busybox-static`,
//! `extlinux`, `syslinux-common`), booted in QEMU (`qemu-system-x86`, TCG),
//! inspected and prepared through libguestfs (`libguestfs-tools`).
//! scripts/test installs them; a test fails (never skips) without them.

use altishift_testkit::cli as support;

use altishift::guest::build::{self, GuestSpec};
use altishift::guest::rehearse::{self, RehearsalSpec};
use altishift::inventory::DiskFormat;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// One built guest for every test here: QEMU boots and libguestfs starts
/// are slow, the image is never written (tests copy it to change it).
fn guest() -> &'static Path {
    static GUEST: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &GUEST
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let disk = dir.path().join("tiny.raw");
            let spec = GuestSpec::new("tiny-1", "10.1.3.40/24", "10.1.3.1");
            build::build(&spec, &disk).unwrap();
            (dir, disk)
        })
        .1
}

fn sha256(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// A copy of the shared guest to change.
fn copy_of_guest(dir: &Path) -> PathBuf {
    let copy = dir.join("copy.raw");
    let status = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(guest())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

/// Runs `f` on the partition of `image`, mounted read-write (as root).
fn with_mounted(image: &Path, f: impl FnOnce(&Path)) {
    let mnt = image.with_extension("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = std::process::Command::new("losetup")
        .args(["-f", "--show", "-o", "1048576"])
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let device = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let run = |args: &[&str]| {
        let status = std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}");
    };
    run(&["mount", &device, mnt.to_str().unwrap()]);
    f(&mnt);
    run(&["umount", mnt.to_str().unwrap()]);
    run(&["losetup", "-d", &device]);
}

/// Removes the kernel from a guest disk (a guest that cannot boot).
fn remove_kernel(image: &Path) {
    with_mounted(image, |root| {
        for entry in std::fs::read_dir(root.join("boot")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("vmlinuz-") {
                std::fs::remove_file(path).unwrap();
            }
        }
    });
}

/// Puts an AWS agent's program into a guest disk.
fn add_fake_agent(image: &Path) {
    with_mounted(image, |root| {
        let bin = root.join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("amazon-ssm-agent"), "#!/bin/sh\nexit 0\n").unwrap();
    });
}

/// Removes the kernel's modules too: a guest with no driver at all.
fn remove_modules(image: &Path) {
    with_mounted(image, |root| {
        let lib = root.join("lib");
        // Inside the image: an absolute link (merged /usr) is the image's.
        let lib = match std::fs::read_link(&lib) {
            Ok(link) => root.join(link.to_string_lossy().trim_start_matches('/')),
            Err(_) => lib,
        };
        assert!(lib.starts_with(root));
        std::fs::remove_dir_all(lib.join("modules")).unwrap();
    });
}

#[tokio::test]
async fn the_lab_guest_boots_to_its_login_prompt_and_its_disk_is_not_written() {
    let before = sha256(guest());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serial.log");
    let spec = RehearsalSpec::new(guest(), DiskFormat::Raw, &log);
    let rehearsal = rehearse::rehearse(&spec).await.unwrap();
    eprintln!(
        "rehearsal ({:?}): {:.1}s",
        rehearsal.accel,
        rehearsal.elapsed.as_secs_f64()
    );
    assert!(
        rehearsal.booted,
        "{}\n{}",
        rehearsal.detail,
        rehearse::serial_tail(&log, 20)
    );
    assert_eq!(rehearsal.matched.as_deref(), Some("tiny-1 login: "));
    // The boot loader and the getty both wrote to the captured console.
    let tail = rehearse::serial_tail(&log, 50);
    assert!(tail.contains("SYSLINUX"), "{tail}");
    // Without console=ttyS0 the system console is the screen, not the log.
    assert!(!tail.contains("altishift-guest:"), "{tail}");
    assert_eq!(sha256(guest()), before, "the rehearsal wrote the disk");
}

#[tokio::test]
async fn a_disk_whose_kernel_is_removed_never_reaches_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let copy = copy_of_guest(dir.path());
    remove_kernel(&copy);
    let log = dir.path().join("serial.log");
    let mut spec = RehearsalSpec::new(&copy, DiskFormat::Raw, &log);
    spec.timeout = Duration::from_secs(20);
    let rehearsal = rehearse::rehearse(&spec).await.unwrap();
    assert!(!rehearsal.booted);
    assert!(
        rehearsal.detail.contains("within 20s"),
        "{}",
        rehearsal.detail
    );
    // The boot loader ran and said what it could not load.
    let tail = rehearse::serial_tail(&log, 20);
    assert!(tail.contains("vmlinuz"), "{tail}");
}

/// One lab for the story, one boot each: the plan inspects tiny-1 (an
/// fstab by device name, a static netplan) and lists what lab-west needs,
/// `plan --rehearse` boots the prepared copy (an overlay) before any cloud
/// is touched, an edited preparation is refused at apply, the migration
/// applies the changes to lab-west's copy only and its deploy boots it with
/// a serial console; then, its kernel removed, the guest cannot be prepared
/// (refused, or recorded with `--unprepared`) and the rehearsal refuses it.
#[tokio::test]
async fn a_lab_migration_is_rehearsed_then_boots_on_the_target_and_a_kernelless_guest_is_refused() {
    use altishift::cloud::Cloud;
    let lab = support::Lab::new();
    let added = altishift::cloud::lab::guest::add_guest(&lab.root()).unwrap();
    let east =
        altishift::cloud::lab::LabCloud::open("lab-east", &lab.root().join("lab-east"), None)
            .unwrap();
    let inventory = east.inventory().await.unwrap();
    let tiny = inventory.instance("tiny-1").unwrap();
    assert!(tiny.disks[0].boot);
    assert_eq!(tiny.nics[0].address.as_deref(), Some("10.1.3.40"));
    assert_eq!(tiny.platform.boot_mode.as_deref(), Some("legacy-bios"));
    assert!(added.disk.is_file());
    // A second time is refused, not a second guest.
    assert!(altishift::cloud::lab::guest::add_guest(&lab.root()).is_err());

    // As if it came from AWS: its agent is to be disabled on lab-west.
    add_fake_agent(&added.disk);
    let source_before = sha256(&added.disk);
    let out = lab.plan(&["tiny-1"], &["--rehearse"]);
    let said = support::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("✓ tiny-1/root: `tiny-1 login:` after"),
        "{said}"
    );
    assert!(said.contains("tiny-1/root: 5 change(s)"), "{said}");
    assert!(
        said.contains("source-cloud agents disabled (systemd units masked): amazon-ssm-agent"),
        "{said}"
    );
    assert!(
        said.contains("/etc/fstab: mount / by filesystem UUID instead of device name"),
        "{said}"
    );
    let plan: altishift::plan::Plan =
        toml::from_str(&std::fs::read_to_string(lab.plan_path()).unwrap()).unwrap();
    let guest = &plan.preparation.guests[0];
    assert_eq!(guest.status, Status::Prepare, "{guest:?}");
    assert_eq!(
        guest.changes[2],
        Change::Datasource {
            list: vec!["NoCloud".into(), "None".into()]
        }
    );
    assert!(
        plan.actions
            .iter()
            .any(|a| a.verb == ActionVerb::PrepareGuest && a.detail.contains("/etc/netplan")),
        "{:?}",
        plan.actions
    );
    assert_eq!(plan.rehearsals.len(), 1);
    let rehearsal = &plan.rehearsals[0];
    eprintln!(
        "rehearsal of the prepared copy: {} ms, {} {}",
        rehearsal.elapsed_ms, rehearsal.accel, rehearsal.accel_note
    );
    assert!(rehearsal.booted);
    assert!(rehearsal.prepared, "the prepared copy was booted");
    // Where KVM failed, TCG booted it and the record says why.
    if !rehearsal.accel_note.is_empty() {
        assert_eq!(rehearsal.accel, "tcg");
        assert!(rehearsal.accel_note.contains("KVM failed"));
    }
    let overlays: Vec<_> = walk(lab.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".prepared.qcow2"))
        .collect();
    assert!(overlays.is_empty(), "overlays left: {overlays:?}");
    assert_eq!(
        sha256(&added.disk),
        source_before,
        "the plan wrote the source"
    );
    assert!(
        plan.rehearsals[0]
            .serial_tail
            .iter()
            .any(|l| l.contains("SYSLINUX")),
        "{:?}",
        plan.rehearsals[0].serial_tail
    );

    assert!(lab.approve().status.success());
    // The approval covers the changes: one dropped is refused.
    let approved = std::fs::read_to_string(lab.plan_path()).unwrap();
    let mut edited: altishift::plan::Plan = toml::from_str(&approved).unwrap();
    edited.preparation.guests[0].changes.pop();
    edited.save(&lab.plan_path()).unwrap();
    let out = lab.apply(&[]);
    let said = support::text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("plan changed since it was approved"),
        "{said}"
    );
    std::fs::write(lab.plan_path(), approved).unwrap();

    let out = lab.apply(&[]);
    let said = support::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("✓ serial console: `tiny-1 login:`"), "{said}");
    let run_dir = support::only_run_dir(&lab);
    let report = altishift::engine::report::RunReport::load(&run_dir.join("report.json")).unwrap();
    let check = report.instances[0]
        .checks
        .iter()
        .find(|c| c.name == "serial console")
        .expect("a serial console check");
    assert!(check.passed, "{check:?}");
    assert!(
        check.evidence.iter().any(|l| l == "tiny-1 login:"),
        "{check:?}"
    );
    let markdown = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(markdown.contains("  tiny-1 login:"), "{markdown}");
    // The console is the target's, not the source's.
    assert!(lab.root().join("lab-west/consoles/tiny-1.log").is_file());
    // The copy's digest was the source's before preparation; each change
    // is verified on the copy afterwards.
    let checks = &report.instances[0].checks;
    for name in [
        "digest tiny-1/root",
        "prepared: /etc/fstab: mount / by filesystem UUID instead of device name",
        "prepared: cloud-init: datasource_list [NoCloud, None]",
    ] {
        let check = checks.iter().find(|c| c.name == name);
        assert!(check.is_some_and(|c| c.passed), "{name}: {checks:?}");
    }
    assert_eq!(
        checks
            .iter()
            .filter(|c| c.name.starts_with("prepared: "))
            .count(),
        5
    );
    // Prepared, the kernel's own lines reach the target's serial console.
    let console = std::fs::read_to_string(lab.root().join("lab-west/consoles/tiny-1.log"))
        .unwrap_or_default();
    assert!(console.contains("altishift-guest: tiny-1 up"), "{console}");
    // Read back with libguestfs: the target's copy is prepared…
    let copy = walk(&lab.root().join("lab-west/disks"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("tiny-1")
        })
        .expect("tiny-1's disk on lab-west");
    let after = tokio::task::spawn_blocking(move || {
        let format = match copy.extension().and_then(|e| e.to_str()) {
            Some("qcow2") => DiskFormat::Qcow2,
            _ => DiskFormat::Raw,
        };
        inspect::inspect(&copy, format)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        after.fstab[0].spec.starts_with("UUID="),
        "{:?}",
        after.fstab
    );
    assert!(after.serial_console());
    assert_eq!(after.datasources, ["NoCloud", "None"]);
    assert_eq!(after.agents_masked, ["amazon-ssm-agent"]);
    assert!(after.static_addresses().is_empty(), "{:?}", after.network);
    assert!(
        after
            .backups
            .iter()
            .any(|b| b == "/etc/netplan/50-cloud-init.yaml.altishift-orig"),
        "{:?}",
        after.backups
    );
    // … and the source is byte for byte what it was.
    assert_eq!(
        sha256(&added.disk),
        source_before,
        "the run wrote the source"
    );

    remove_kernel(&added.disk);
    remove_modules(&added.disk);
    let refused_plan = lab.dir.path().join("refused.toml");
    // tiny-1 planned into refused.toml, with `extra` flags.
    let plan_tiny = |extra: &[&str]| {
        let mut args = vec!["plan", "--from", "lab-east", "--to", "lab-west", "-o"];
        args.extend([refused_plan.to_str().unwrap(), "--select", "tiny-1"]);
        args.extend_from_slice(extra);
        lab.run(&args)
    };
    // Without a kernel and its modules there are no drivers: it cannot be
    // prepared.
    let out = plan_tiny(&[]);
    let said = support::text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("plan refused: tiny-1/root cannot be prepared for lab-west"),
        "{said}"
    );
    assert!(
        said.contains("no virtio_blk or virtio_scsi driver"),
        "{said}"
    );
    assert!(!refused_plan.exists(), "a refused plan is not written");
    // With --unprepared the plan records it, and the rehearsal refuses it.
    let out = plan_tiny(&["--rehearse", "--rehearse-timeout", "10", "--unprepared"]);
    let said = support::text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("plan refused: tiny-1/root did not boot"),
        "{said}"
    );
    assert!(said.contains("within 10s"), "{said}");
    assert!(
        said.contains("--unprepared: guests that cannot be prepared"),
        "{said}"
    );
    assert!(said.contains("tiny-1/root: REFUSED"), "{said}");
    assert!(!refused_plan.exists(), "a refused plan is not written");
}

use altishift::cloud::ProviderKind;
use altishift::plan::ActionVerb;
use altishift::plan::preparation::Status;

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
use altishift::guest::inspect::{self, Inspection};
use altishift::guest::prepare::{self, Change};
use altishift::inventory::declared::GuestNeeds;

/// What a provider's targets declare a guest needs.
fn needs(provider: ProviderKind) -> GuestNeeds {
    provider.rules().target.guest
}

/// The shared guest's inspection (one libguestfs appliance for all).
fn inspection() -> &'static Inspection {
    static FOUND: OnceLock<Inspection> = OnceLock::new();
    FOUND.get_or_init(|| inspect::inspect(guest(), DiskFormat::Raw).unwrap())
}

fn driver(found: &Inspection, name: &str) -> String {
    found
        .drivers
        .iter()
        .find(|d| d.name == name)
        .map(|d| d.state.clone())
        .unwrap_or_default()
}

#[test]
fn inspection_finds_what_ties_the_lab_guest_to_its_source() {
    let found = inspection();
    eprintln!("{}", found.summary().join("\n"));
    assert_eq!(found.os_type, "linux");
    assert_eq!(found.distro, "debian");
    assert_eq!(found.hostname, "tiny-1");
    assert_eq!(found.partition_table, "msdos");
    assert_eq!(found.boot_mode, "bios");
    assert_eq!(found.kernels.len(), 1, "{:?}", found.kernels);
    assert!(found.kernels[0].starts_with("vmlinuz-"));
    assert_eq!(found.initramfs.len(), 1);
    assert_eq!(found.fstab.len(), 1);
    assert_eq!(found.fstab[0].spec, "/dev/vda1");
    assert!(found.fstab[0].by_device);
    assert_eq!(found.static_addresses(), ["10.1.3.40/24"]);
    assert_eq!(found.network[0].kind, "netplan");
    assert_eq!(found.datasources, ["NoCloud", "ConfigDrive", "None"]);
    assert!(found.agents.is_empty());
    assert!(!found.serial_console());
    assert_eq!(
        found.bootloader_config.as_deref(),
        Some("/boot/extlinux/extlinux.conf")
    );
    // The cloud kernel: virtio and ena as module files the guest really
    // holds, nvme built in, gve's module not copied into the guest.
    assert_eq!(driver(found, "virtio_blk"), "module");
    assert_eq!(driver(found, "ena"), "module");
    assert_eq!(driver(found, "nvme"), "built-in");
    assert_eq!(driver(found, "gve"), "missing");
    assert!(found.backups.is_empty());
}

#[test]
fn a_guest_without_a_driver_the_target_needs_or_not_linux_is_refused() {
    let mut found = inspection().clone();
    assert!(prepare::changes(&found, &needs(ProviderKind::Gcp), "gcp").is_ok());
    for d in &mut found.drivers {
        if d.name == "virtio_net" {
            d.state = "missing".into();
        }
    }
    let refused = prepare::changes(&found, &needs(ProviderKind::Gcp), "gcp").unwrap_err();
    assert!(refused.reason.contains("virtio_net or gve"), "{refused}");
    // AWS needs nvme and ena, which the guest has.
    assert!(prepare::changes(&found, &needs(ProviderKind::Aws), "aws").is_ok());
    found.os_type = "windows".into();
    let refused = prepare::changes(&found, &needs(ProviderKind::Aws), "aws").unwrap_err();
    assert!(refused.reason.contains("only Linux"), "{refused}");
}

#[tokio::test]
async fn preparation_changes_the_copy_only_and_the_prepared_copy_boots_with_a_serial_console() {
    let before = sha256(guest());
    let dir = tempfile::tempdir().unwrap();
    let copy = copy_of_guest(dir.path());
    let changes = prepare::changes(inspection(), &needs(ProviderKind::Aws), "aws").unwrap();
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| match c {
            Change::FstabByUuid { .. } => "fstab",
            Change::NetworkDhcp { .. } => "network",
            Change::Datasource { .. } => "datasource",
            Change::SerialConsole { .. } => "serial",
            Change::DisableAgents { .. } => "agents",
        })
        .collect();
    assert_eq!(kinds, ["fstab", "network", "datasource", "serial"]);
    for change in &changes {
        eprintln!("{change}");
    }
    let (path, applied) = (copy.clone(), changes.clone());
    tokio::task::spawn_blocking(move || prepare::apply(&path, DiskFormat::Raw, &applied))
        .await
        .unwrap()
        .unwrap();
    // Read back through a fresh appliance.
    let path = copy.clone();
    let after = tokio::task::spawn_blocking(move || inspect::inspect(&path, DiskFormat::Raw))
        .await
        .unwrap()
        .unwrap();
    assert!(
        after.fstab[0].spec.starts_with("UUID="),
        "{:?}",
        after.fstab
    );
    assert!(!after.fstab[0].by_device);
    assert!(after.static_addresses().is_empty(), "{:?}", after.network);
    assert!(after.network.iter().any(|n| n.dhcp));
    assert_eq!(after.datasources, ["Ec2", "None"]);
    assert!(after.serial_console());
    for kept in [
        "/etc/fstab.altishift-orig",
        "/etc/netplan/50-cloud-init.yaml.altishift-orig",
        "/boot/extlinux/extlinux.conf.altishift-orig",
    ] {
        assert!(
            after.backups.iter().any(|b| b == kept),
            "{:?}",
            after.backups
        );
    }
    assert_eq!(
        prepare::changes(&after, &needs(ProviderKind::Aws), "aws").unwrap(),
        [],
        "nothing is left to prepare"
    );
    assert_eq!(sha256(guest()), before, "the source disk was written");
    // The prepared copy still boots, and now the system console is the
    // serial port: the init's own line reaches the log.
    let log = dir.path().join("serial.log");
    let rehearsal = rehearse::rehearse(&RehearsalSpec::new(&copy, DiskFormat::Raw, &log))
        .await
        .unwrap();
    let tail = rehearse::serial_tail(&log, 400);
    assert!(rehearsal.booted, "{}\n{tail}", rehearsal.detail);
    assert!(tail.contains("altishift-guest: tiny-1 up"), "{tail}");
}
