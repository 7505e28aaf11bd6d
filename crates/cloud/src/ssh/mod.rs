//! The SSH source: any host the operator can log in to, its disk streamed
//! through the system `ssh`.
//!
//! Preferred path: the small `altishift-agent` binary is copied to the host
//! (when OS and architecture match), checked by SHA-256 there, and run; it
//! skips zero blocks there and sends each block with its SHA-256. Fallback:
//! `dd` of the device, zero detection here. The copied agent is removed when
//! access is revoked (or by `cleanup`, found by the plan's tag).
//!
//! Delta sync: [`SshCloud::open_delta_reader`] asks the agent for per-block
//! digests only, compares them with a previous pass (the journal's digests)
//! and reads just the blocks that differ.

pub mod cutover;
pub mod delta;
pub mod install;
mod netconf;
pub mod profile;
pub mod reader;
pub mod session;
mod source;
pub mod wire;

use super::{Capability, Cloud, CloudError, CreatedResource};
use crate::ProviderKind;
use crate::inventory::declared::{ProviderRules, SourceRules};
use crate::inventory::{Disk, DiskFormat, Instance, InstanceState, Inventory, Nic, Region, Size};
use crate::units::{BLOCK_SIZE, Bytes};
use crate::{CutoverSource, Source};
use async_trait::async_trait;
pub use cutover::Quiesced;
pub use delta::{DeltaSummary, to_ranges};
pub use reader::{SshDiskReader, StreamMode, WireStats};
pub use session::{Session, SshTarget, quote};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Whether to run the agent on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentPolicy {
    /// Copy and run the agent when the host can run it, else use `dd`.
    Auto,
    /// Always `dd` (hosts where nothing may be copied).
    Never,
    /// The agent or an error (tests, and operators who want the fast path).
    Require,
}

#[derive(Debug, Clone)]
pub struct SshSettings {
    pub target: SshTarget,
    /// Device (or file) to read, e.g. `/dev/vda`.
    pub device: String,
    /// Instance name in inventories and plans (default: the host).
    pub instance_name: Option<String>,
    pub agent: AgentPolicy,
    /// The agent binary to copy (default: `$ALTISHIFT_AGENT`, else
    /// `altishift-agent` next to this executable).
    pub agent_binary: Option<PathBuf>,
    pub jurisdiction: Option<String>,
}

/// What the host said about itself and its device.
#[derive(Debug, Clone)]
struct HostFacts {
    size: u64,
    vcpus: u32,
    memory: u64,
}

pub struct SshCloud {
    name: String,
    settings: SshSettings,
    session: Arc<Session>,
    /// Remote folder of the copied agent, and the mode readers use.
    mode: Mutex<Option<(Option<String>, StreamMode)>>,
    facts: Mutex<Option<HostFacts>>,
    /// Every remote folder an agent was copied to (for checks and reports).
    installed: std::sync::Mutex<Vec<String>>,
    /// Wire counters of every reader opened (benchmarks, reports, tests).
    opened: std::sync::Mutex<Vec<Arc<WireStats>>>,
    /// Cutover: what the last quiesce did, for the thaw.
    quiesced: Mutex<Option<Quiesced>>,
    /// Cutover: the command that powers the host off (default `poweroff`).
    power_off_command: Option<String>,
    /// Revocation steps done before a power-off, for `revoke` to report.
    removed_early: std::sync::Mutex<Vec<String>>,
    /// The approved plan's short hash, once a step under its capability ran:
    /// agent folders carry it so `cleanup` can find them.
    plan_tag: std::sync::Mutex<Option<String>>,
}

impl SshCloud {
    pub fn new(name: &str, settings: SshSettings) -> Result<SshCloud, CloudError> {
        if settings.device.is_empty() {
            return Err(CloudError::Permanent(format!(
                "[clouds.{name}] an ssh source needs 'device' (e.g. /dev/vda)"
            )));
        }
        let session = Arc::new(Session::new(settings.target.clone())?);
        Ok(SshCloud {
            name: name.to_string(),
            settings,
            session,
            mode: Mutex::new(None),
            facts: Mutex::new(None),
            installed: std::sync::Mutex::new(Vec::new()),
            opened: std::sync::Mutex::new(Vec::new()),
            quiesced: Mutex::new(None),
            power_off_command: None,
            removed_early: std::sync::Mutex::new(Vec::new()),
            plan_tag: std::sync::Mutex::new(None),
        })
    }

    /// Remembers the approved plan this provider works for.
    fn note_plan(&self, cap: &Capability) {
        *self.plan_tag.lock().unwrap_or_else(|p| p.into_inner()) = Some(cap.tag().1);
    }

    fn plan_tag(&self) -> Option<String> {
        self.plan_tag
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Powers the host off with `command` instead of `poweroff` (the
    /// profile's `power_off_command`; tests use a script). The command runs
    /// to its end and its exit status counts, unlike the default, which is
    /// detached because it ends the connection.
    pub fn with_power_off_command(mut self, command: Option<String>) -> SshCloud {
        self.power_off_command = command;
        self
    }

    /// Stops any one remote command after `limit` (the profile's, or a
    /// test's short one); a stream may be silent that long at most.
    pub fn with_command_timeout(self, limit: std::time::Duration) -> SshCloud {
        self.session.set_timeout(limit);
        self
    }

    /// Wire counters of the readers this provider opened, oldest first.
    pub fn reader_stats(&self) -> Vec<Arc<WireStats>> {
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Remote folders the agent was copied to by this provider.
    pub fn agent_dirs(&self) -> Vec<String> {
        self.installed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    fn instance_name(&self) -> String {
        self.settings
            .instance_name
            .clone()
            .unwrap_or_else(|| self.settings.target.host.clone())
    }

    /// Size of the device, CPUs and memory of the host (one round trip).
    /// The host's network attachments (`ip -j addr`, read-only); none when
    /// `ip` is missing or its answer is not iproute2's JSON (the plan then
    /// maps no network, as before this was read).
    async fn networks(&self) -> Vec<crate::inventory::config::Attachment> {
        match self
            .session
            .run("PATH=\"$PATH:/usr/sbin:/sbin\" ip -j addr", None)
            .await
        {
            Ok(out) => {
                netconf::attachments(&String::from_utf8_lossy(&out.stdout)).unwrap_or_default()
            }
            Err(_) => Vec::new(),
        }
    }

    async fn facts(&self) -> Result<HostFacts, CloudError> {
        let mut facts = self.facts.lock().await;
        if let Some(known) = &*facts {
            return Ok(known.clone());
        }
        if self.settings.target.sudo {
            self.session.run("sudo -n true", None).await?;
        }
        let device = quote(&self.settings.device);
        let size_cmd = self.session.remote(&format!(
            "blockdev --getsize64 {device} 2>/dev/null || stat -L -c %s {device}"
        ));
        let command = format!(
            "{size_cmd}; echo; nproc 2>/dev/null || echo 1; \
             awk '/^MemTotal:/ {{print $2}}' /proc/meminfo 2>/dev/null || echo 0"
        );
        let output = self.session.run(&command, None).await?;
        let text = String::from_utf8_lossy(&output.stdout);
        let numbers: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [size, vcpus, memory, ..] = numbers[..] else {
            if output.stderr.contains("No such file or directory") {
                return Err(CloudError::NotFound(format!(
                    "device {} on {} ({})",
                    self.settings.device,
                    self.settings.target.label(),
                    output.stderr.trim()
                )));
            }
            return Err(CloudError::Permanent(format!(
                "{}: could not read the size of {} ({})",
                self.settings.target.label(),
                self.settings.device,
                output.stderr.trim()
            )));
        };
        let found = HostFacts {
            size,
            vcpus: u32::try_from(vcpus).unwrap_or(1).max(1),
            // MemTotal is in KiB (awk would print bytes in exponent notation).
            memory: memory * 1024,
        };
        *facts = Some(found.clone());
        Ok(found)
    }

    /// Decides (once) between the agent and `dd`, copying the agent over.
    pub async fn stream_mode(&self) -> Result<StreamMode, CloudError> {
        let mut mode = self.mode.lock().await;
        if let Some((_, known)) = &*mode {
            return Ok(known.clone());
        }
        let chosen = match self.settings.agent {
            AgentPolicy::Never => (None, StreamMode::Dd),
            AgentPolicy::Require => {
                let (dir, path) = self.install_agent().await?;
                (Some(dir), StreamMode::Agent { path })
            }
            AgentPolicy::Auto => match self.install_agent().await {
                Ok((dir, path)) => (Some(dir), StreamMode::Agent { path }),
                Err(e @ (CloudError::Auth(_) | CloudError::Transient(_))) => return Err(e),
                Err(e) => {
                    tracing::warn!(host = %self.settings.target.label(), "agent unavailable, streaming with dd: {e}");
                    (None, StreamMode::Dd)
                }
            },
        };
        let result = chosen.1.clone();
        *mode = Some(chosen);
        Ok(result)
    }

    /// Block ranges that may hold data: the agent's map, or the whole device.
    async fn ranges(&self, mode: &StreamMode, size: u64) -> Result<Vec<Range<u64>>, CloudError> {
        let StreamMode::Agent { path } = mode else {
            let blocks = size.div_ceil(BLOCK_SIZE);
            return Ok((blocks > 0).then_some(0..blocks).into_iter().collect());
        };
        let command = self.session.remote(&format!(
            "{} map {}",
            quote(path),
            quote(&self.settings.device)
        ));
        let output = self.session.run(&command, None).await?;
        #[derive(serde::Deserialize)]
        struct Map {
            size: u64,
            ranges: Vec<[u64; 2]>,
        }
        let map: Map = serde_json::from_slice(&output.stdout)
            .map_err(|e| CloudError::Permanent(format!("the agent's map is unreadable: {e}")))?;
        if map.size != size {
            return Err(CloudError::Permanent(format!(
                "{} changed size from {size} to {} bytes: make a new plan",
                self.settings.device, map.size
            )));
        }
        // Never trusted: a range past the end would read (and write) past the disk.
        Ok(wire::clip_ranges(&map.ranges, size))
    }

    /// A full pass's reader (what the engine gets from `open_disk_reader`).
    pub async fn open_stream_reader(&self) -> Result<SshDiskReader, CloudError> {
        let size = self.facts().await?.size;
        let mode = self.stream_mode().await?;
        let ranges = self.ranges(&mode, size).await?;
        let reader = SshDiskReader::new(
            self.session.clone(),
            self.settings.device.clone(),
            size,
            mode,
            ranges,
        );
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reader.stats());
        Ok(reader)
    }

    /// Removes the copied agent and closes the connection.
    async fn remove_agent(&self) -> Result<Vec<String>, CloudError> {
        let mut done = self.remove_agent_files().await?;
        self.session.close().await;
        done.push(format!(
            "closed the ssh connection to {}",
            self.settings.target.label()
        ));
        Ok(done)
    }
}

impl SshCloud {
    /// Deletes the copied agent from the host (before a power-off, too:
    /// afterwards nobody can). Returns what was done, for the report.
    async fn remove_agent_files(&self) -> Result<Vec<String>, CloudError> {
        let mut done =
            std::mem::take(&mut *self.removed_early.lock().unwrap_or_else(|p| p.into_inner()));
        let mut mode = self.mode.lock().await;
        if let Some((Some(dir), _)) = &*mode {
            self.session
                .run(&format!("rm -rf {}", quote(dir)), None)
                .await?;
            done.push(format!(
                "removed the agent copied to {}:{dir}",
                self.settings.target.label()
            ));
        }
        *mode = None;
        Ok(done)
    }
}

/// What an SSH host declares: it is read live (no snapshot), through the
/// agent copied to it. It is no target (its hardware is unknown: a guest
/// needs nothing declared).
pub fn rules() -> ProviderRules {
    ProviderRules {
        source: SourceRules {
            snapshot: Some(super::digitalocean::LIVE_READ.into()),
            agent_host: Some("the source host".into()),
            quiesce: None,
        },
        ..Default::default()
    }
}

#[async_trait]
impl Cloud for SshCloud {
    fn as_source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    fn as_cutover(&self) -> Option<&dyn CutoverSource> {
        Some(self)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> ProviderKind {
        ProviderKind::Ssh
    }

    fn jurisdiction(&self) -> Option<String> {
        self.settings.jurisdiction.clone()
    }

    async fn inventory(&self) -> Result<Inventory, CloudError> {
        let facts = self.facts().await?;
        let region = "ssh".to_string();
        let size = format!("{}vcpu-{}", facts.vcpus, Bytes(facts.memory));
        let instance = Instance {
            id: self.settings.target.host.clone(),
            name: self.instance_name(),
            state: InstanceState::Running,
            size: size.clone(),
            vcpus: facts.vcpus,
            memory: Bytes(facts.memory),
            region: region.clone(),
            disks: vec![Disk {
                id: "disk-0".into(),
                device: self.settings.device.clone(),
                format: DiskFormat::Raw,
                virtual_size: Bytes(facts.size),
                allocated: None,
                boot: true,
            }],
            nics: vec![Nic {
                name: "ssh".into(),
                network: "ssh".into(),
                address: Some(self.settings.target.host.clone()),
            }],
            tags: Default::default(),
            platform: Default::default(),
            // Read-only hosts: their firewall (nft/iptables) is not read yet.
            config: crate::inventory::InstanceConfig {
                networks: self.networks().await,
                ..Default::default()
            },
        };
        Ok(Inventory {
            cloud: self.name.clone(),
            provider: ProviderKind::Ssh.to_string(),
            instances: vec![instance],
            sizes: vec![Size {
                name: size,
                vcpus: facts.vcpus,
                memory: Bytes(facts.memory),
            }],
            regions: vec![Region {
                name: region,
                jurisdiction: self
                    .settings
                    .jurisdiction
                    .clone()
                    .unwrap_or_else(|| "unknown".into()),
            }],
            rules: rules(),
            ..Default::default()
        })
    }

    /// Agent folders of this plan that a killed run left on the host.
    async fn find_leftovers(
        &self,
        tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        self.agent_leftovers(&tag.1).await
    }

    /// The only thing an ssh source creates is the agent's folder.
    async fn delete(
        &self,
        _cap: &Capability,
        resource: &CreatedResource,
    ) -> Result<(), CloudError> {
        self.remove_agent_dir(&resource.id).await
    }

    async fn revoke(&self) -> Result<Vec<String>, CloudError> {
        self.remove_agent().await
    }
}
