//! `qemu-img` for local images: map, info, check and convert, and the check
//! that an image a server handed us stands alone (no backing file, data file
//! or extent that would pull a local file into a migrated disk).

use crate::CloudError;
use crate::inventory::DiskFormat;
use serde::Deserialize;
use std::fs::File;
use std::path::Path;

/// One entry of `qemu-img map --output=json`.
#[derive(Debug, Clone, Deserialize)]
pub struct MapEntry {
    pub start: u64,
    pub length: u64,
    pub data: bool,
    #[serde(default)]
    pub zero: bool,
    #[serde(default)]
    pub depth: u32,
    /// Host offset of the data in the image file (absent when compressed).
    #[serde(default)]
    pub offset: Option<u64>,
}

/// `qemu-img map` of an image already checked by [`inspect`].
pub fn qemu_img_map(path: &Path, format: DiskFormat) -> Result<Vec<MapEntry>, CloudError> {
    let output = run_qemu_img(&[
        "map",
        "--output=json",
        "-f",
        format.qemu_name(),
        &qemu_path(path),
    ])?;
    serde_json::from_slice(&output).map_err(|e| {
        CloudError::Permanent(format!(
            "qemu-img map {}: unexpected output: {e}",
            path.display()
        ))
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImageInfo {
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    #[serde(rename = "actual-size", default)]
    pub actual_size: u64,
    /// What `qemu-img info` says about files besides the image itself.
    #[serde(rename = "backing-filename", default)]
    backing: Option<String>,
    #[serde(rename = "full-backing-filename", default)]
    full_backing: Option<String>,
    #[serde(default)]
    filename: String,
    #[serde(default)]
    children: Vec<ChildInfo>,
    #[serde(rename = "format-specific", default)]
    specific: Option<FormatSpecific>,
}

#[derive(Debug, Clone, Deserialize)]
struct ChildInfo {
    #[serde(default)]
    name: String,
    info: ImageInfo,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct FormatSpecific {
    #[serde(default)]
    data: SpecificData,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct SpecificData {
    /// qcow2: an external data file holds the guest data.
    #[serde(rename = "data-file", default)]
    data_file: Option<String>,
    /// vmdk: the extent files (a descriptor may name any file).
    #[serde(default)]
    extents: Vec<Extent>,
}

#[derive(Debug, Clone, Deserialize)]
struct Extent {
    #[serde(default)]
    filename: String,
}

/// `qemu-img info` with the format given (qemu never guesses it from the
/// bytes, which a server chose).
pub fn qemu_img_info(path: &Path, format: DiskFormat) -> Result<ImageInfo, CloudError> {
    let output = run_qemu_img(&[
        "info",
        "--output=json",
        "-f",
        format.qemu_name(),
        &qemu_path(path),
    ])?;
    serde_json::from_slice(&output).map_err(|e| {
        CloudError::Permanent(format!(
            "qemu-img info {}: unexpected output: {e}",
            path.display()
        ))
    })
}

/// Checks that an image we did not make stands alone before qemu-img reads
/// or converts it: a qcow2 backing file or data file, a VMDK descriptor's
/// extents or parent, would pull a local file (`/etc/shadow`, a key) into
/// the migrated disk. Returns the image's info.
pub fn inspect(path: &Path, format: DiskFormat) -> Result<ImageInfo, CloudError> {
    if format == DiskFormat::Vmdk {
        refuse_vmdk_descriptor(path)?;
    }
    let info = qemu_img_info(path, format)?;
    if format == DiskFormat::Raw {
        return Ok(info); // read as bytes: nothing in it is interpreted
    }
    match external_reference(&info, path) {
        None => Ok(info),
        Some(what) => Err(CloudError::Permanent(format!(
            "{format} image {} refers to {what}; an image that names other files is refused \
             (no local file may be pulled into a migrated disk)",
            path.display()
        ))),
    }
}

/// A VMDK that is a text descriptor names its extents: any file, even a
/// `nbd:` address qemu would connect to while merely reading the header.
/// Only the single-file kinds (sparse `KDMV`, old `COWD`) are let through
/// to qemu-img, which then reports any parent they name.
fn refuse_vmdk_descriptor(path: &Path) -> Result<(), CloudError> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = File::open(path)
        .map_err(|e| CloudError::from_io(format!("image {}", path.display()), e))?;
    let read = file
        .read(&mut magic)
        .map_err(|e| CloudError::from_io(format!("image {}", path.display()), e))?;
    if read == 4 && (&magic == b"KDMV" || &magic == b"COWD") {
        return Ok(());
    }
    Err(CloudError::Permanent(format!(
        "vmdk image {} is a descriptor file that names extent files; only single-file \
         VMDK images are accepted (no local file may be pulled into a migrated disk)",
        path.display()
    )))
}

/// The first file outside the image that `info` names, described.
fn external_reference(info: &ImageInfo, image: &Path) -> Option<String> {
    let shown = |name: &str| format!("{name:?}");
    if let Some(backing) = info.backing.as_ref().or(info.full_backing.as_ref()) {
        return Some(format!("the backing file {}", shown(backing)));
    }
    let data = info.specific.clone().unwrap_or_default().data;
    if let Some(file) = &data.data_file {
        return Some(format!("the external data file {}", shown(file)));
    }
    if let Some(extent) = data.extents.iter().find(|e| !same_file(&e.filename, image)) {
        return Some(format!("the extent file {}", shown(&extent.filename)));
    }
    for child in &info.children {
        if !same_file(&child.info.filename, image) {
            return Some(format!(
                "the file {} ({})",
                shown(&child.info.filename),
                child.name
            ));
        }
        if let Some(what) = external_reference(&child.info, image) {
            return Some(what);
        }
    }
    None
}

/// True when qemu's `name` for a file is the image itself.
fn same_file(name: &str, image: &Path) -> bool {
    if name == qemu_path(image) || Path::new(name) == image {
        return true;
    }
    match (std::fs::canonicalize(name), std::fs::canonicalize(image)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A path as qemu-img must get it: `./` before a relative one, so a name
/// such as `nbd:host:10809` or `json:{…}` is a file, never a protocol.
fn qemu_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    if path.is_absolute() || text.starts_with("./") {
        text.into_owned()
    } else {
        format!("./{text}")
    }
}

/// `qemu-img check`: Ok(()) when the image is consistent.
pub fn qemu_img_check(path: &Path, format: DiskFormat) -> Result<(), CloudError> {
    if format == DiskFormat::Raw {
        return Ok(()); // raw has no metadata to check
    }
    run_qemu_img(&["check", "-q", "-f", format.qemu_name(), &qemu_path(path)]).map(|_| ())
}

/// Converts an image, keeping holes (`-S 4k` is qemu-img's default
/// detection). A source that is not raw is [`inspect`]ed first.
pub fn convert(
    src: &Path,
    src_format: DiskFormat,
    dst: &Path,
    dst_format: DiskFormat,
) -> Result<(), CloudError> {
    if src_format != DiskFormat::Raw {
        inspect(src, src_format)?;
    }
    run_qemu_img(&[
        "convert",
        "-f",
        src_format.qemu_name(),
        "-O",
        dst_format.qemu_name(),
        &qemu_path(src),
        &qemu_path(dst),
    ])
    .map(|_| ())
}

fn run_qemu_img(args: &[&str]) -> Result<Vec<u8>, CloudError> {
    let output = crate::child::command("qemu-img")
        .args(args)
        .output()
        .map_err(|e| {
            CloudError::Permanent(format!("cannot run qemu-img ({e}): install qemu-utils"))
        })?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(CloudError::Permanent(format!(
            "qemu-img {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_disk::LocalDiskReader;
    use std::path::PathBuf;

    fn qemu(args: &[&str], dir: &Path) {
        let status = std::process::Command::new("qemu-img")
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(status.success(), "qemu-img {args:?}");
    }

    /// A secret the operator's machine holds, which a hostile image names.
    fn secret_file(dir: &Path) -> (PathBuf, Vec<u8>) {
        let secret = dir.join("secret.key");
        let bytes = b"-----BEGIN PRIVATE KEY----- not for export".repeat(40);
        std::fs::write(&secret, &bytes).unwrap();
        (secret, bytes)
    }

    #[test]
    fn a_qcow2_with_a_backing_file_is_refused_and_nothing_of_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, bytes) = secret_file(dir.path());
        let image = dir.path().join("download.qcow2");
        qemu(
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                &secret.to_string_lossy(),
                "-F",
                "raw",
                &image.to_string_lossy(),
            ],
            dir.path(),
        );
        let err = LocalDiskReader::open(&image, DiskFormat::Qcow2)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("download.qcow2"), "{err}");
        assert!(
            err.contains("backing file") && err.contains("secret.key"),
            "{err}"
        );

        let out = dir.path().join("out.raw");
        let err = convert(&image, DiskFormat::Qcow2, &out, DiskFormat::Raw)
            .unwrap_err()
            .to_string();
        assert!(err.contains("backing file"), "{err}");
        assert!(!out.exists(), "nothing may be written");
        assert_eq!(std::fs::read(&secret).unwrap(), bytes);
    }

    #[test]
    fn a_qcow2_with_an_external_data_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("download.qcow2");
        qemu(
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-o",
                "data_file=elsewhere.raw",
                &image.to_string_lossy(),
                "1M",
            ],
            dir.path(),
        );
        let err = LocalDiskReader::open(&image, DiskFormat::Qcow2)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("external data file") && err.contains("elsewhere.raw"),
            "{err}"
        );
    }

    #[test]
    fn a_vmdk_descriptor_naming_an_extent_is_refused_and_nothing_reaches_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, bytes) = secret_file(dir.path());
        let image = dir.path().join("download.vmdk");
        std::fs::write(
            &image,
            format!(
                "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
                 createType=\"monolithicFlat\"\nRW 2048 FLAT \"{}\" 0\n",
                secret.display()
            ),
        )
        .unwrap();
        let out = dir.path().join("download.raw");
        let err = convert(&image, DiskFormat::Vmdk, &out, DiskFormat::Raw)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("download.vmdk") && err.contains("extent"),
            "{err}"
        );
        assert!(!out.exists(), "nothing may be written");
        // And a descriptor naming /etc/hostname, as a server could send.
        std::fs::write(
            &image,
            "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n\
             RW 2048 FLAT \"/etc/hostname\" 0\n",
        )
        .unwrap();
        assert!(convert(&image, DiskFormat::Vmdk, &out, DiskFormat::Raw).is_err());
        assert!(!out.exists());
        assert_eq!(std::fs::read(&secret).unwrap(), bytes);
    }

    #[test]
    fn the_extent_check_reads_what_qemu_reports() {
        // qemu-img 10's answer for a descriptor naming /etc/hostname.
        let info: ImageInfo = serde_json::from_str(
            r#"{"virtual-size":1048576,"filename":"d.vmdk","format":"vmdk",
               "children":[{"name":"extents.0","info":{"virtual-size":512,
                 "filename":"/etc/hostname","format":"file","children":[]}}],
               "format-specific":{"type":"vmdk","data":{"create-type":"monolithicFlat",
                 "extents":[{"virtual-size":1048576,"filename":"/etc/hostname","format":"FLAT"}]}}}"#,
        )
        .unwrap();
        let what = external_reference(&info, Path::new("d.vmdk")).unwrap();
        assert!(what.contains("/etc/hostname"), "{what}");
    }

    #[test]
    fn single_file_vmdk_and_vhd_images_still_convert() {
        let dir = tempfile::tempdir().unwrap();
        for (format, name) in [(DiskFormat::Vmdk, "d.vmdk"), (DiskFormat::Vhd, "d.vhd")] {
            let image = dir.path().join(name);
            qemu(
                &["create", "-q", "-f", format.qemu_name(), name, "4M"],
                dir.path(),
            );
            let out = dir.path().join(format!("{name}.raw"));
            convert(&image, format, &out, DiskFormat::Raw).unwrap();
            // VHD rounds the size up to its disk geometry.
            let size = std::fs::metadata(&out).unwrap().len();
            assert!((4 << 20..5 << 20).contains(&size), "{name}: {size}");
        }
    }

    #[test]
    fn a_relative_name_never_reaches_qemu_as_a_protocol() {
        assert_eq!(qemu_path(Path::new("nbd:evil:10809")), "./nbd:evil:10809");
        assert_eq!(qemu_path(Path::new("/tmp/x.qcow2")), "/tmp/x.qcow2");
    }
}
