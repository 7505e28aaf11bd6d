//! Cutover on an SSH source: quiesce the guest (the operator's command, or
//! `fsfreeze` of the filesystems mounted from the device), let the caller run
//! the final delta pass, thaw or power off. Each step changes the source, so
//! each takes the approved plan's capability.

use super::SshCloud;
use super::reader::StreamMode;
use super::session::quote;
use crate::block::BlockDigest;
use crate::units::BlockIndex;
use crate::{Capability, CloudError};
use crate::{CutoverSource, DiskReader, SnapshotRef};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// What [`SshCloud::quiesce_guest`] did, so [`SshCloud::thaw_guest`] can undo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quiesced {
    /// The operator's command ran; their thaw command (if any) undoes it.
    Command { thaw: Option<String> },
    /// These mount points are frozen.
    Frozen(Vec<String>),
}

impl SshCloud {
    /// Quiesces the source before the final delta pass.
    pub async fn quiesce_guest(
        &self,
        _cap: &Capability,
        command: Option<&str>,
        thaw: Option<&str>,
    ) -> Result<Quiesced, CloudError> {
        let session = self.session();
        if let Some(command) = command {
            session.run(&self.operator_command(command), None).await?;
            return Ok(Quiesced::Command {
                thaw: thaw.map(str::to_string),
            });
        }
        let mounts = self.mounts().await?;
        if mounts.iter().any(|m| m == "/") {
            // Freezing / stops the host's own logging, sudo and sshd writes:
            // the host (and this connection) can hang until someone thaws it.
            return Err(CloudError::Permanent(format!(
                "the default quiesce would freeze / on {} ({} holds the root filesystem), \
                 which can hang the host and this connection: set the cutover's quiesce \
                 command (e.g. stop the service and sync) or power the source off for the \
                 final pass; nothing was frozen",
                self.settings.target.label(),
                self.settings.device
            )));
        }
        let mut frozen = Vec::new();
        for mount in &mounts {
            let done = session
                .run(
                    &session.remote(&format!("fsfreeze -f {}", quote(mount))),
                    None,
                )
                .await;
            if let Err(e) = done {
                // Leave nothing frozen behind a failure.
                return Err(match self.thaw_guest(&Quiesced::Frozen(frozen)).await {
                    Ok(()) => e,
                    Err(thaw) => CloudError::Permanent(format!("{e}; and thawing: {thaw}")),
                });
            }
            frozen.push(mount.clone());
        }
        Ok(Quiesced::Frozen(frozen))
    }

    /// Undoes [`SshCloud::quiesce_guest`] (when the source keeps running).
    pub async fn thaw_guest(&self, quiesced: &Quiesced) -> Result<(), CloudError> {
        let session = self.session();
        match quiesced {
            Quiesced::Command {
                thaw: Some(command),
            } => {
                session.run(&self.operator_command(command), None).await?;
            }
            Quiesced::Command { thaw: None } => {}
            Quiesced::Frozen(mounts) => {
                // Every mount gets its thaw, whatever happened to the others.
                let mut failed = Vec::new();
                for mount in mounts.iter().rev() {
                    let unfreeze = session.remote(&format!("fsfreeze -u {}", quote(mount)));
                    if let Err(e) = session.run(&unfreeze, None).await {
                        failed.push(format!("{mount}: {e}"));
                    }
                }
                if !failed.is_empty() {
                    return Err(CloudError::Permanent(format!(
                        "could not thaw on {}: {}",
                        self.settings.target.label(),
                        failed.join("; ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Thaws after a quiesce this process did not see (a resumed run): the
    /// operator's thaw command, or `fsfreeze -u` of whatever is mounted from
    /// the device (a filesystem that is not frozen refuses, harmlessly).
    pub async fn thaw_unknown(&self, command: Option<&str>) -> Result<(), CloudError> {
        if let Some(command) = command {
            return self
                .thaw_guest(&Quiesced::Command {
                    thaw: Some(command.to_string()),
                })
                .await;
        }
        for mount in self.mounts().await? {
            let session = self.session();
            let unfreeze = session.remote(&format!("fsfreeze -u {}", quote(&mount)));
            let _ = session.run(&unfreeze, None).await;
        }
        Ok(())
    }

    /// Powers the source off after the final pass. The default `poweroff`
    /// is detached and starts a second later, so the connection closes
    /// cleanly instead of being cut; the profile's `power_off_command` runs
    /// to its end and must succeed.
    pub async fn power_off_host(&self, _cap: &Capability) -> Result<(), CloudError> {
        self.remove_agent_before_power_off().await?;
        let session = self.session();
        if let Some(command) = &self.power_off_command {
            session.run(&self.operator_command(command), None).await?;
            return Ok(());
        }
        let command = session.remote("sh -c 'sleep 1; poweroff' >/dev/null 2>&1 &");
        session.run(&format!("nohup {command}"), None).await?;
        Ok(())
    }

    /// Removes the agent copy now, while the host still answers (a cloud
    /// that powers the host off through its own API calls this first);
    /// `revoke` still reports what was removed.
    pub async fn remove_agent_before_power_off(&self) -> Result<(), CloudError> {
        let removed = self.remove_agent_files().await?;
        self.removed_early
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(removed);
        Ok(())
    }

    /// An operator's shell command, run whole under sudo when the profile
    /// asks for it (`sudo -n a && b` would run `b` without it).
    fn operator_command(&self, command: &str) -> String {
        self.session().remote(&format!("sh -c {}", quote(command)))
    }

    /// Mount points of the device and its partitions.
    async fn mounts(&self) -> Result<Vec<String>, CloudError> {
        let session = self.session();
        let listed = session
            .run(
                &session.remote(&format!(
                    "lsblk -lnpo MOUNTPOINT {}",
                    quote(&self.settings.device)
                )),
                None,
            )
            .await?;
        Ok(String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(str::trim)
            .filter(|m| m.starts_with('/'))
            .map(str::to_string)
            .collect())
    }
}

#[async_trait]
impl CutoverSource for SshCloud {
    /// Whether delta passes can run on this host, asked without changing it:
    /// they need the agent (the digests are computed there).
    async fn cutover_support(&self, _instance: &str) -> Result<(), CloudError> {
        let host = self.settings.target.label();
        if self.settings.agent == super::AgentPolicy::Never {
            return Err(CloudError::Unsupported(format!(
                "{host}: the profile streams with dd only, and delta passes need the agent \
                 (per-block digests are computed on the host)"
            )));
        }
        if let Some((_, mode)) = &*self.mode.lock().await {
            return match mode {
                StreamMode::Agent { .. } => Ok(()),
                StreamMode::Dd => Err(CloudError::Unsupported(format!(
                    "{host}: the agent could not run there, and delta passes need it"
                ))),
            };
        }
        let uname = self.session.run("uname -sm", None).await?;
        let uname = String::from_utf8_lossy(&uname.stdout).trim().to_lowercase();
        let local = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
        if uname != local {
            return Err(CloudError::Unsupported(format!(
                "{host} runs '{uname}' and the agent is built for '{local}': without it \
                 there are no delta passes"
            )));
        }
        Ok(())
    }

    async fn open_delta_reader(
        &self,
        _snapshot: &SnapshotRef,
        previous: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        let (reader, _) = self.open_delta_stream(previous).await?;
        Ok(Some(Box::new(reader)))
    }

    async fn quiesce(
        &self,
        cap: &Capability,
        _instance: &str,
        command: Option<&str>,
        thaw: Option<&str>,
    ) -> Result<(), CloudError> {
        self.note_plan(cap);
        let done = self.quiesce_guest(cap, command, thaw).await?;
        *self.quiesced.lock().await = Some(done);
        Ok(())
    }

    async fn thaw(
        &self,
        _cap: &Capability,
        _instance: &str,
        command: Option<&str>,
    ) -> Result<(), CloudError> {
        let quiesced = self.quiesced.lock().await.take();
        match quiesced {
            Some(quiesced) => self.thaw_guest(&quiesced).await,
            None => self.thaw_unknown(command).await,
        }
    }

    async fn power_off(&self, cap: &Capability, _instance: &str) -> Result<(), CloudError> {
        self.power_off_host(cap).await
    }
}
