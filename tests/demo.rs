//! `altishift demo --headless`, the README's first command without a
//! terminal: a fresh lab with the bootable guest, a plan, an approval and a
//! migration that ends with the guest booted on the target, its serial log
//! in the report. Needs what `tests/guest.rs` needs (root, the kernel and
//! QEMU packages scripts/test installs); it fails, never skips, without them.

use altishift_testkit::cli as support;

use altishift::engine::report::RunReport;

#[test]
fn the_demo_ends_with_a_migrated_guest_that_booted_and_its_serial_log_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("demo");
    let out = support::bin()
        .args(["demo", "--headless", "--dir"])
        .arg(&lab)
        .output()
        .unwrap();
    let said = support::text(&out);
    assert!(out.status.success(), "{said}");
    // The guest was built into the lab, not skipped.
    assert!(said.contains("is a bootable Linux guest"), "{said}");
    assert!(!said.contains("migrates disks only"), "{said}");
    assert!(said.contains("✓ serial console: `tiny-1 login:`"), "{said}");

    let report_md = said
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("apply names its report:\n{said}"));
    let report = RunReport::load(&report_md.with_file_name("report.json")).unwrap();
    let names: Vec<&str> = report
        .instances
        .iter()
        .map(|i| i.instance.as_str())
        .collect();
    assert_eq!(
        report.instances.len(),
        3,
        "web-1, db-1 and tiny-1: {names:?}"
    );
    let tiny = report
        .instances
        .iter()
        .find(|i| i.instance.starts_with("tiny-1"))
        .unwrap_or_else(|| panic!("tiny-1 migrated: {names:?}"));
    let serial = tiny
        .checks
        .iter()
        .find(|c| c.name == "serial console")
        .unwrap_or_else(|| panic!("a serial console check: {:?}", tiny.checks));
    assert!(serial.passed, "{serial:?}");
    assert!(
        serial.evidence.iter().any(|l| l == "tiny-1 login:"),
        "{serial:?}"
    );
    // Every instance validated, the disk-only ones by their digests.
    for instance in &report.instances {
        assert!(
            instance.validated && instance.checks.iter().all(|c| c.passed),
            "{}: {:?}",
            instance.instance,
            instance.checks
        );
    }
    let markdown = std::fs::read_to_string(&report_md).unwrap();
    assert!(markdown.contains("  tiny-1 login:"), "{markdown}");
    // The serial log the report quotes is the target lab's.
    let log = lab.join("lab-west/consoles/tiny-1.log");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("tiny-1 login:"),
        "{}",
        log.display()
    );
}
