//! The pair matrix's shared peers: one lab, one moto (EC2, EBS direct and the
//! S3 that stages DigitalOcean images), the Compute Engine fake with the real
//! Cloud Storage emulator, the CloudStack fake, the DigitalOcean fake and one
//! real sshd (an SSH host, a droplet and a Compute Engine worker all reach it).
//! One `config.toml` names them all; each pair adds the source profile it
//! needs and drives the real binary.

#![allow(dead_code)]

pub mod bench;
pub mod config;
pub mod sources;
pub mod targets;

use crate::cli;
use crate::cloudstack_fake::{self, FakeCloudStack};
use crate::do_fake::{self, FakeDo};
use crate::gce_fake::PROJECT;
use crate::gce_fake::testkit::{BUCKET, Gcp, ZONE};
use crate::moto::{ACCESS_KEY, Moto, SECRET_KEY};
use crate::sshd::{self, Sshd};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

/// Where DigitalOcean images are staged (a bucket on the shared moto).
pub const DO_BUCKET: &str = "altishift-do-staging";
/// The block the cutover variants' last guest write lands in (the quiesce
/// command's, or the fake's as the instance stops).
pub const QUIESCE_BLOCK: u64 = 700;
/// The region every AWS profile of the matrix works in.
pub const AWS_REGION: &str = "us-east-1";

/// A cloud kind of the matrix, as the plan's `--from`/`--to` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Lab,
    Aws,
    Gcp,
    CloudStack,
    DigitalOcean,
    Ssh,
}

impl Kind {
    pub const SOURCES: [Kind; 6] = [
        Kind::Lab,
        Kind::Aws,
        Kind::Gcp,
        Kind::CloudStack,
        Kind::DigitalOcean,
        Kind::Ssh,
    ];
    /// SSH hosts are sources only: there is no SSH target role.
    pub const TARGETS: [Kind; 5] = [
        Kind::Lab,
        Kind::Aws,
        Kind::Gcp,
        Kind::CloudStack,
        Kind::DigitalOcean,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Lab => "lab",
            Kind::Aws => "aws",
            Kind::Gcp => "gcp",
            Kind::CloudStack => "cloudstack",
            Kind::DigitalOcean => "digitalocean",
            Kind::Ssh => "ssh",
        }
    }

    /// The profile a plan targets (sources get one per pair, see sources.rs).
    pub fn target_profile(self) -> &'static str {
        match self {
            Kind::Lab => "lab-west",
            Kind::Aws => "aws",
            Kind::Gcp => "gcp",
            Kind::CloudStack => "cs",
            Kind::DigitalOcean => "do",
            Kind::Ssh => unreachable!("ssh is no target"),
        }
    }
}

/// Every peer of the matrix, started once.
pub struct Peers {
    pub lab: cli::Lab,
    pub moto: Moto,
    pub gcp: Gcp,
    pub cs: FakeCloudStack,
    pub do_fake: FakeDo,
    pub sshd: Sshd,
    /// Seed disks, device files, plans and read-back copies.
    pub work: tempfile::TempDir,
}

impl Peers {
    pub async fn start() -> Peers {
        let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
        let sshd = tokio::task::spawn_blocking(Sshd::start).await.unwrap();
        let lab = tokio::task::spawn_blocking(cli::Lab::new).await.unwrap();
        let gcp = Gcp::start().await;
        let cs = FakeCloudStack::start().await;
        let do_fake = FakeDo::start().await;
        let peers = Peers {
            lab,
            moto,
            gcp,
            cs,
            do_fake,
            sshd,
            work: tempfile::tempdir().unwrap(),
        };
        peers.create_do_bucket().await;
        // The worker VM's guest publishes the sshd's host key (guest attributes).
        let host_key = std::fs::read_to_string(peers.sshd.dir().join("host_key.pub")).unwrap();
        peers.gcp.fake.publish_host_keys(&[host_key]);
        // Many pairs create and wait for operations: let them finish at once.
        peers.gcp.fake.quick_operations();
        let mut config = std::fs::read_to_string(peers.lab.config()).unwrap();
        config.push_str(&peers.target_profiles());
        std::fs::write(peers.lab.config(), config).unwrap();
        peers
    }

    async fn create_do_bucket(&self) {
        let creds =
            aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(AWS_REGION))
            .endpoint_url(&self.moto.endpoint)
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
            .create_bucket()
            .bucket(DO_BUCKET)
            .send()
            .await
            .unwrap();
    }

    /// Profiles of the five targets (and the AWS, Compute Engine and
    /// CloudStack sources, which are the same accounts).
    fn target_profiles(&self) -> String {
        let sshd_dir = self.sshd.dir().display().to_string();
        let worker_options = toml_list(&self.sshd.options_for_address(false));
        format!(
            "\n[clouds.aws]\nprovider = \"aws\"\nregion = \"{AWS_REGION}\"\nendpoint = \"{moto}\"\n\
             insecure_endpoint = true\napi_key = \"env:ALTI_TEST_AWS_KEY\"\n\
             secret_key = \"env:ALTI_TEST_AWS_SECRET\"\n\
             \n[clouds.gcp]\nprovider = \"gcp\"\nproject = \"{PROJECT}\"\ninsecure_endpoint = true\n\
             credentials_file = \"{key}\"\nzone = \"{ZONE}\"\nbucket = \"{BUCKET}\"\n\
             endpoint = \"{compute}\"\nstorage_endpoint = \"{storage}\"\ntoken_uri = \"{token}\"\n\
             worker_machine_type = \"f1-micro\"\nworker_device_dir = \"{by_id}\"\n\
             worker_ssh_public_key = \"{sshd_dir}/id_user.pub\"\nuser = \"{user}\"\nsudo = false\n\
             ssh_options = {worker_options}\n\
             \n[clouds.cs]\nprovider = \"cloudstack\"\nendpoint = \"{cs}\"\ninsecure_endpoint = true\n\
             api_key = \"env:CS_TEST_API_KEY\"\nsecret_key = \"env:CS_TEST_SECRET_KEY\"\n\
             jurisdiction = \"DE\"\npath = \"cs-staging\"\n\
             \n[clouds.do]\nprovider = \"digitalocean\"\nendpoint = \"{do}\"\ninsecure_endpoint = true\n\
             token = \"env:ALTISHIFT_TEST_DO_TOKEN\"\njurisdiction = \"DE\"\n\
             bucket = \"{DO_BUCKET}\"\nstaging_endpoint = \"{moto}\"\n\
             api_key = \"env:ALTISHIFT_TEST_SPACES_KEY\"\n\
             secret_key = \"env:ALTISHIFT_TEST_SPACES_SECRET\"\n",
            moto = self.moto.endpoint,
            key = self.gcp.key.file.display(),
            compute = self.gcp.fake.base_url,
            storage = self.gcp.storage.base_url,
            token = self.gcp.fake.token_uri,
            by_id = self.gcp.fake.by_id_dir().display(),
            user = self.sshd.user(),
            cs = self.cs.endpoint,
            do = self.do_fake.base,
        )
    }

    /// Adds a profile (a per-pair source) to the config.
    pub fn add_profile(&self, text: &str) {
        let mut config = std::fs::read_to_string(self.lab.config()).unwrap();
        config.push_str(text);
        std::fs::write(self.lab.config(), config).unwrap();
    }

    /// The binary on the matrix's config, every profile's secret in the
    /// environment (where `env:NAME` reads it) and the agent it copies to
    /// SSH hosts and workers.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = cli::bin();
        command
            .arg("--config")
            .arg(self.lab.config())
            .args(args)
            .env("ALTI_TEST_AWS_KEY", ACCESS_KEY)
            .env("ALTI_TEST_AWS_SECRET", SECRET_KEY)
            .env("CS_TEST_API_KEY", cloudstack_fake::API_KEY)
            .env("CS_TEST_SECRET_KEY", cloudstack_fake::SECRET_KEY)
            .env("ALTISHIFT_TEST_DO_TOKEN", do_fake::TOKEN)
            .env("ALTISHIFT_TEST_SPACES_KEY", ACCESS_KEY)
            .env("ALTISHIFT_TEST_SPACES_SECRET", SECRET_KEY)
            .env("ALTISHIFT_AGENT", sshd::agent_binary());
        command
    }

    /// Runs the binary off the async workers (the fakes answer on them).
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().expect("run altishift"))
            .await
            .unwrap()
    }

    pub fn sshd_options(&self) -> String {
        toml_list(&self.sshd.options_for_address(true))
    }

    /// What every peer has seen of mutating requests so far.
    pub fn quiet_mark(&self) -> QuietMark {
        self.moto.start_recording();
        QuietMark {
            gce: self.gcp.fake.mutating_received().len(),
            storage: self.gcp.storage.mutating_received().len(),
            cs: self.cs.mutating_received().len(),
            digitalocean: self.do_fake.mutating().len(),
            lab: lab_tree(&self.lab.root()),
        }
    }

    /// The mutating requests every peer received since `mark`.
    pub fn mutating_since(&self, mark: &QuietMark) -> Vec<String> {
        let mut found = Vec::new();
        for (method, path, action) in self.moto.recorded() {
            let read = if action.is_empty() {
                method == "GET" || method == "HEAD"
            } else {
                ["Describe", "Get", "List"]
                    .iter()
                    .any(|verb| action.starts_with(verb))
            };
            if !read {
                found.push(format!("moto: {method} {path} {action}"));
            }
        }
        let tail = |all: Vec<String>, from: usize, peer: &str| {
            all.into_iter()
                .skip(from)
                .map(|r| format!("{peer}: {r}"))
                .collect::<Vec<_>>()
        };
        found.extend(tail(self.gcp.fake.mutating_received(), mark.gce, "compute"));
        found.extend(tail(
            self.gcp.storage.mutating_received(),
            mark.storage,
            "storage",
        ));
        found.extend(tail(self.cs.mutating_received(), mark.cs, "cloudstack"));
        found.extend(tail(
            self.do_fake.mutating(),
            mark.digitalocean,
            "digitalocean",
        ));
        let lab = lab_tree(&self.lab.root());
        if lab != mark.lab {
            found.push("lab: the clouds' files changed".into());
        }
        found
    }
}

/// Mutating requests seen per peer at a point in time.
pub struct QuietMark {
    gce: usize,
    storage: usize,
    cs: usize,
    digitalocean: usize,
    lab: BTreeMap<PathBuf, (u64, SystemTime)>,
}

/// The lab clouds' files (the state folder, where approvals are audited, aside).
fn lab_tree(root: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut all = cli::tree(&root.join("lab-east"));
    for (path, meta) in cli::tree(&root.join("lab-west")) {
        all.insert(Path::new("west").join(path), meta);
    }
    all
}

/// A TOML array of strings.
pub fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// A sparse raw disk of `size` with `pattern(seed, i)` in each block `i`.
pub fn raw_disk(path: &Path, size: u64, seed: u64, blocks: &[u64]) {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::create(path).unwrap();
    file.set_len(size).unwrap();
    for &i in blocks {
        file.write_all_at(
            &crate::aws_kit::pattern(seed, i),
            i * altishift::units::BLOCK_SIZE,
        )
        .unwrap();
    }
}

/// `qemu-img compare` (formats detected, a larger image's zero tail allowed):
/// None when the guest-visible contents are identical, else why not.
pub fn compare(expected: &Path, actual: &Path) -> Option<String> {
    let out = std::process::Command::new("qemu-img")
        .arg("compare")
        .arg(expected)
        .arg(actual)
        .output()
        .expect("qemu-img runs (run scripts/test: it installs qemu-utils)");
    (!out.status.success()).then(|| {
        format!(
            "{} differs from {}: {}{}",
            actual.display(),
            expected.display(),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

/// Block `index` (512 KiB) of the guest-visible contents of `image` (any
/// format `qemu-img` reads).
pub fn guest_block(image: &Path, index: u64, work: &Path) -> Vec<u8> {
    use std::os::unix::fs::FileExt as _;
    let out = work.join(format!(
        "guest-{}.raw",
        image.file_name().unwrap().to_string_lossy()
    ));
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(image)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "qemu-img convert of {}", image.display());
    let mut bytes = vec![0u8; 524288];
    std::fs::File::open(&out)
        .unwrap()
        .read_exact_at(&mut bytes, index * 524288)
        .unwrap();
    let _ = std::fs::remove_file(&out);
    bytes
}
