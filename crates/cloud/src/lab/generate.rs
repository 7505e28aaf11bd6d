//! `altishift lab init DIR`: two lab clouds with size catalogues, instances
//! and real sparse disk images holding varied content (random data, repeated
//! patterns, partition tables, zero runs inside allocated extents), plus a
//! `config.toml` naming both.

use super::manifest::{self, CloudManifest, DiskManifest, InstanceManifest, NicManifest};
use crate::inventory::{DiskFormat, InstanceState, Platform, Region, Size};
use crate::local_disk;
use crate::units::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How much data the lab's disks hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabScale {
    /// Tens to a few hundred MiB per disk: a demo worth watching.
    Standard,
    /// A few MiB per disk: for tests.
    Small,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}: already holds a lab (config.toml exists); pick an empty folder")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct LabSummary {
    pub config: PathBuf,
    pub clouds: Vec<(String, usize, Bytes)>,
}

struct InstanceSpec {
    name: &'static str,
    size: &'static str,
    region: usize,
    state: InstanceState,
    /// (virtual GiB, allocated MiB at standard scale, format)
    disks: &'static [(u64, u64, DiskFormat)],
}

use DiskFormat::{Qcow2, Raw};

const EAST: &[InstanceSpec] = &[
    InstanceSpec {
        name: "web-1",
        size: "e2.medium",
        region: 0,
        state: InstanceState::Running,
        disks: &[(10, 120, Raw)],
    },
    InstanceSpec {
        name: "web-2",
        size: "e2.medium",
        region: 0,
        state: InstanceState::Running,
        disks: &[(10, 90, Raw), (4, 24, Qcow2)],
    },
    InstanceSpec {
        name: "db-1",
        size: "e4.xlarge",
        region: 0,
        state: InstanceState::Running,
        disks: &[(20, 60, Raw), (16, 180, Raw), (8, 30, Qcow2)],
    },
    InstanceSpec {
        name: "cache-1",
        size: "e2.large",
        region: 1,
        state: InstanceState::Running,
        disks: &[(6, 40, Qcow2)],
    },
    InstanceSpec {
        name: "batch-1",
        size: "e8.2xlarge",
        region: 1,
        state: InstanceState::Stopped,
        disks: &[(12, 70, Raw), (20, 40, Raw)],
    },
    InstanceSpec {
        name: "ci-runner",
        size: "e2.medium",
        region: 0,
        state: InstanceState::Running,
        disks: &[(8, 50, Raw)],
    },
    InstanceSpec {
        name: "legacy-app",
        size: "e1.small",
        region: 1,
        state: InstanceState::Running,
        disks: &[(5, 35, Qcow2), (2, 12, Raw)],
    },
    InstanceSpec {
        name: "monitor",
        size: "e1.micro",
        region: 0,
        state: InstanceState::Running,
        disks: &[(3, 20, Raw)],
    },
];

const WEST: &[InstanceSpec] = &[
    InstanceSpec {
        name: "api-us-1",
        size: "w.medium",
        region: 0,
        state: InstanceState::Running,
        disks: &[(10, 60, Raw)],
    },
    InstanceSpec {
        name: "api-us-2",
        size: "w.medium",
        region: 0,
        state: InstanceState::Running,
        disks: &[(10, 55, Raw)],
    },
    InstanceSpec {
        name: "worker-us",
        size: "w.cpu4",
        region: 0,
        state: InstanceState::Running,
        disks: &[(8, 40, Qcow2), (4, 20, Raw)],
    },
    InstanceSpec {
        name: "analytics",
        size: "w.mem4",
        region: 0,
        state: InstanceState::Stopped,
        disks: &[(20, 80, Raw)],
    },
    InstanceSpec {
        name: "bastion",
        size: "w.nano",
        region: 0,
        state: InstanceState::Running,
        disks: &[(1, 10, Raw)],
    },
    InstanceSpec {
        name: "mail",
        size: "w.small",
        region: 0,
        state: InstanceState::Running,
        disks: &[(4, 25, Qcow2)],
    },
    InstanceSpec {
        name: "queue",
        size: "w.medium",
        region: 0,
        state: InstanceState::Running,
        disks: &[(6, 30, Raw), (2, 10, Raw)],
    },
    InstanceSpec {
        name: "backup",
        size: "w.large",
        region: 0,
        state: InstanceState::Stopped,
        disks: &[(16, 40, Raw)],
    },
];

fn size(name: &str, vcpus: u32, memory_mib: u64) -> Size {
    Size {
        name: name.into(),
        vcpus,
        memory: Bytes::mib(memory_mib),
    }
}

fn east_catalogue() -> CloudManifest {
    CloudManifest {
        accel: None,
        name: "lab-east".into(),
        regions: vec![
            Region {
                name: "eu-central-lab".into(),
                jurisdiction: "DE".into(),
            },
            Region {
                name: "eu-west-lab".into(),
                jurisdiction: "FR".into(),
            },
        ],
        networks: Vec::new(),
        sizes: vec![
            size("e1.micro", 1, 1024),
            size("e1.small", 1, 2048),
            size("e2.medium", 2, 4096),
            size("e2.large", 2, 8192),
            size("e4.xlarge", 4, 16384),
            size("e8.2xlarge", 8, 32768),
        ],
    }
}

fn west_catalogue() -> CloudManifest {
    CloudManifest {
        accel: None,
        name: "lab-west".into(),
        regions: vec![Region {
            name: "us-west-lab".into(),
            jurisdiction: "US".into(),
        }],
        sizes: vec![
            size("w.nano", 1, 512),
            size("w.small", 1, 2048),
            size("w.medium", 2, 4096),
            size("w.cpu4", 4, 8192),
            size("w.large", 4, 16384),
            size("w.mem4", 4, 32768),
            size("w.xlarge", 8, 32768),
        ],
        networks: Vec::new(),
    }
}

/// Creates the lab in `dir` (which must not hold one already).
pub fn init(dir: &Path, scale: LabScale) -> Result<LabSummary, LabError> {
    let config = dir.join("config.toml");
    if config.exists() {
        return Err(LabError::Exists(dir.to_path_buf()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut clouds = Vec::new();
    for (catalogue, specs) in [(east_catalogue(), EAST), (west_catalogue(), WEST)] {
        let root = dir.join(&catalogue.name);
        let allocated = create_cloud(&root, &catalogue, specs, scale)?;
        clouds.push((catalogue.name.clone(), specs.len(), allocated));
    }
    let text = "# Written by `altishift lab init`: two local lab clouds, no account needed.\n\
                state_dir = \"state\"\n\n\
                [clouds.lab-east]\nprovider = \"lab\"\npath = \"lab-east\"\n\n\
                [clouds.lab-west]\nprovider = \"lab\"\npath = \"lab-west\"\n";
    crate::fsutil::write_atomic(&config, text.as_bytes()).map_err(io(&config))?;
    Ok(LabSummary { config, clouds })
}

fn create_cloud(
    root: &Path,
    catalogue: &CloudManifest,
    specs: &[InstanceSpec],
    scale: LabScale,
) -> Result<Bytes, LabError> {
    for folder in [
        "instances",
        "disks",
        "snapshots",
        "staging",
        "firewalls",
        "keys",
    ] {
        let path = root.join(folder);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
    }
    // 10.1.x.0/24 in the east, 10.2.x.0/24 in the west.
    let net = if catalogue.name.ends_with("east") {
        1
    } else {
        2
    };
    let mut catalogue = catalogue.clone();
    catalogue.networks = super::config::seed(root, net).map_err(LabError::Other)?;
    let catalogue = &catalogue;
    manifest::save(&root.join("cloud.toml"), catalogue).map_err(LabError::Other)?;
    let mut total = Bytes::ZERO;
    for (n, spec) in specs.iter().enumerate() {
        let mut disks = Vec::new();
        for (d, &(virtual_gib, allocated_mib, format)) in spec.disks.iter().enumerate() {
            let id = if d == 0 {
                "root".to_string()
            } else {
                format!("data{d}")
            };
            let file = format!("disks/{}-{id}.{}", spec.name, format.extension());
            let allocated = match scale {
                LabScale::Standard => Bytes::mib(allocated_mib),
                LabScale::Small => Bytes::mib(allocated_mib / 20 + 1),
            };
            let virtual_size = match scale {
                LabScale::Standard => Bytes::gib(virtual_gib),
                LabScale::Small => Bytes::gib(virtual_gib.min(2)),
            };
            let seed = seed_of(&catalogue.name, spec.name, d);
            write_disk(
                &root.join(&file),
                format,
                virtual_size,
                allocated,
                d == 0,
                seed,
            )?;
            total += allocated;
            disks.push(DiskManifest {
                id,
                device: format!("vd{}", (b'a' + d as u8) as char),
                file,
                format,
                virtual_size,
                boot: d == 0,
            });
        }
        let region = &catalogue.regions[spec.region.min(catalogue.regions.len() - 1)];
        let mut tags = BTreeMap::new();
        tags.insert(
            "role".to_string(),
            spec.name
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
                .to_string(),
        );
        tags.insert("env".to_string(), "lab".to_string());
        let (network, subnet, firewall, public) = super::config::placement(spec.name);
        let instance = InstanceManifest {
            id: format!("{}-i{:04}", &catalogue.name[4..], n + 1),
            name: spec.name.to_string(),
            state: spec.state,
            size: spec.size.to_string(),
            region: region.name.clone(),
            tags,
            nics: vec![NicManifest {
                name: "eth0".into(),
                network: network.into(),
                address: Some(format!("10.{net}.{subnet}.{}", n + 10)),
                public,
            }],
            disks,
            platform: platform_of(&catalogue.name, spec.name),
            firewalls: vec![firewall.into()],
            ssh_keys: vec!["ops".into()],
            user_data: Some(super::config::user_data(spec.name)),
        };
        let path = root.join("instances").join(format!("{}.toml", spec.name));
        manifest::save(&path, &instance).map_err(LabError::Other)?;
    }
    Ok(total)
}

/// Every boot disk carries a GPT (see `write_partition_table`), so the lab's
/// guests boot UEFI on x86_64. One guest in lab-west runs Windows, so plans
/// onto clouds that take only Linux images have something to refuse.
fn platform_of(cloud: &str, instance: &str) -> Platform {
    let os = match (cloud, instance) {
        ("lab-west", "mail") => "Windows Server 2022",
        ("lab-west", _) => "Ubuntu 24.04",
        _ => "Debian 12",
    };
    Platform {
        os: Some(os.into()),
        boot_mode: Some("uefi".into()),
        architecture: Some("x86_64".into()),
        ena: None,
    }
}

fn seed_of(cloud: &str, instance: &str, disk: usize) -> u64 {
    let mut seed = 0xcbf2_9ce4_8422_2325u64 ^ disk as u64;
    for b in cloud.bytes().chain(instance.bytes()) {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    seed
}

/// xorshift64*: fast, deterministic filler (not for anything secret).
struct Filler(u64);

impl Filler {
    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let word = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn below(&mut self, n: u64) -> u64 {
        let mut word = [0u8; 8];
        self.fill(&mut word);
        u64::from_le_bytes(word) % n.max(1)
    }
}

/// Writes a disk with about `allocated` bytes of data spread over extents.
fn write_disk(
    path: &Path,
    format: DiskFormat,
    virtual_size: Bytes,
    allocated: Bytes,
    boot: bool,
    seed: u64,
) -> Result<(), LabError> {
    let raw_path = if format == DiskFormat::Raw {
        path.to_path_buf()
    } else {
        path.with_extension("gen.raw")
    };
    let file = File::create(&raw_path).map_err(io(&raw_path))?;
    file.set_len(virtual_size.0).map_err(io(&raw_path))?;
    let mut filler = Filler(seed | 1);
    if boot {
        write_partition_table(&file, virtual_size).map_err(io(&raw_path))?;
    }
    // Extents of 1–8 MiB (not block aligned, so partial blocks occur), each
    // random data, a repeated text pattern or a mix with a zero run inside.
    let mut remaining = allocated.0;
    let mut buffer = Vec::new();
    // Start with the pattern that holds a zero run, so every disk has one.
    let mut kind = 2u64;
    while remaining > 0 {
        let len = ((1 + filler.below(8)) << 20).min(remaining) + filler.below(3) * 4096;
        let slots = virtual_size.0.saturating_sub(len + (1 << 20)) >> 20;
        let offset = ((1 + filler.below(slots.max(1))) << 20) + filler.below(64) * 4096;
        buffer.resize(len as usize, 0);
        match kind % 3 {
            0 => filler.fill(&mut buffer),
            1 => {
                let line = format!("altishift lab {} offset {offset}\n", path.display());
                for (i, b) in buffer.iter_mut().enumerate() {
                    *b = line.as_bytes()[i % line.len()];
                }
            }
            _ => {
                filler.fill(&mut buffer);
                // Zeros written explicitly: allocated on disk, skipped in transfer.
                let zero_start = buffer.len() / 4;
                let zero_end = (zero_start + (1 << 20) + 3 * 4096).min(buffer.len());
                buffer[zero_start..zero_end].fill(0);
            }
        }
        file.write_all_at(&buffer, offset.min(virtual_size.0 - len))
            .map_err(io(&raw_path))?;
        remaining -= len.min(remaining);
        kind += 1;
    }
    file.sync_all().map_err(io(&raw_path))?;
    drop(file);
    if format != DiskFormat::Raw {
        local_disk::convert(&raw_path, DiskFormat::Raw, path, format)
            .map_err(|e| LabError::Other(e.to_string()))?;
        std::fs::remove_file(&raw_path).map_err(io(&raw_path))?;
    }
    Ok(())
}

/// A protective MBR and a GPT header with one Linux partition, like a real
/// boot disk (the checksums are not computed: nothing here boots).
fn write_partition_table(file: &File, virtual_size: Bytes) -> std::io::Result<()> {
    let mut mbr = [0u8; 512];
    mbr[446 + 4] = 0xee; // protective partition type
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    let sectors = (virtual_size.0 / 512)
        .saturating_sub(1)
        .min(u64::from(u32::MAX)) as u32;
    mbr[446 + 12..446 + 16].copy_from_slice(&sectors.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    file.write_all_at(&mbr, 0)?;
    let mut gpt = [0u8; 512];
    gpt[..8].copy_from_slice(b"EFI PART");
    gpt[8..12].copy_from_slice(&[0, 0, 1, 0]);
    gpt[12..16].copy_from_slice(&92u32.to_le_bytes());
    gpt[24..32].copy_from_slice(&1u64.to_le_bytes());
    gpt[32..40].copy_from_slice(&(virtual_size.0 / 512 - 1).to_le_bytes());
    gpt[72..80].copy_from_slice(&2u64.to_le_bytes());
    gpt[80..84].copy_from_slice(&128u32.to_le_bytes());
    gpt[84..88].copy_from_slice(&128u32.to_le_bytes());
    file.write_all_at(&gpt, 512)?;
    let mut entry = [0u8; 128];
    // Linux filesystem data GUID, mixed-endian as GPT stores it.
    entry[..16].copy_from_slice(&[
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ]);
    entry[32..40].copy_from_slice(&2048u64.to_le_bytes());
    entry[40..48].copy_from_slice(&(virtual_size.0 / 512 - 34).to_le_bytes());
    for (i, c) in "root".encode_utf16().enumerate() {
        entry[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
    }
    file.write_all_at(&entry, 1024)
}
