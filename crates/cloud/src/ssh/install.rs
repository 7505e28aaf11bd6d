//! Copying the agent to a source host: which binary, where it goes, and the
//! SHA-256 check on the host before it ever runs.
//!
//! The agent is the small `altishift-agent` binary (never this console). It
//! goes to a private `mktemp -d` folder named after the plan
//! (`/tmp/altishift-agent-<plan>.XXXXXX`), so `cleanup` after a killed run
//! finds and removes it by the plan's tag.

use super::SshCloud;
use super::session::quote;
use super::wire::PROTOCOL;
use crate::{CloudError, CreatedResource, ResourceKind};
use std::path::{Path, PathBuf};

/// The variable that names the agent binary to copy.
pub const AGENT_ENV: &str = "ALTISHIFT_AGENT";
/// The agent's file name next to the console.
pub const AGENT_FILE: &str = "altishift-agent";
/// Every agent folder starts so (the plan's short hash follows when known).
const DIR_PREFIX: &str = "/tmp/altishift-agent";

/// The agent binary to copy: the profile's (or a test's) path, else
/// `$ALTISHIFT_AGENT`, else `altishift-agent` next to this executable.
pub fn agent_binary(configured: Option<&Path>) -> Result<PathBuf, CloudError> {
    if let Some(path) = configured {
        return existing(path, "the profile's agent_binary");
    }
    if let Some(path) = std::env::var_os(AGENT_ENV) {
        return existing(Path::new(&path), AGENT_ENV);
    }
    let exe = std::env::current_exe().map_err(|e| CloudError::from_io("this executable", e))?;
    let beside = exe.with_file_name(AGENT_FILE);
    if beside.is_file() {
        return Ok(beside);
    }
    Err(CloudError::Unsupported(format!(
        "no agent to copy to the source host: set {AGENT_ENV} to the altishift-agent binary, \
         or put it next to this program as {} (build it with `cargo build -p altishift-agent \
         --profile agent`)",
        beside.display()
    )))
}

fn existing(path: &Path, said_by: &str) -> Result<PathBuf, CloudError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(CloudError::Unsupported(format!(
            "the agent binary {} (from {said_by}) does not exist",
            path.display()
        )))
    }
}

/// SHA-256 of a local file, as hex.
pub fn sha256_file(path: &Path) -> Result<String, CloudError> {
    use sha2::Digest as _;
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| CloudError::from_io(path.display(), e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| CloudError::from_io(path.display(), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(crate::block::to_hex(&hasher.finalize()))
}

/// The folder template for a plan's agent (`short` is the plan's short hash).
fn dir_template(plan: Option<&str>) -> String {
    match plan {
        Some(short) => format!("{DIR_PREFIX}-{short}.XXXXXX"),
        None => format!("{DIR_PREFIX}.XXXXXX"),
    }
}

/// True for a folder this tool makes for an agent, and nothing else: the
/// only paths `delete` will remove on a host.
pub fn is_agent_dir(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(DIR_PREFIX) else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    !rest.is_empty()
        && rest.contains('.')
        && !rest.contains("..")
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

/// A plan's short hash, when it is safe to put in a remote path.
fn plan_word(short: &str) -> Option<&str> {
    (!short.is_empty() && short.len() <= 64 && short.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(short)
}

impl SshCloud {
    /// Copies the agent to a private temp folder on the host, checks its
    /// SHA-256 there and that it runs. Returns (folder, agent path).
    pub(super) async fn install_agent(&self) -> Result<(String, String), CloudError> {
        let host = self.settings.target.label();
        let uname = self.session.run("uname -sm", None).await?;
        let uname = String::from_utf8_lossy(&uname.stdout).trim().to_lowercase();
        let local = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
        if uname != local {
            return Err(CloudError::Unsupported(format!(
                "{host} runs '{uname}', the agent is built for '{local}'"
            )));
        }
        // Found and hashed before the host is touched.
        let binary = agent_binary(self.settings.agent_binary.as_deref())?;
        let expected = sha256_file(&binary)?;
        let plan = self.plan_tag();
        let made = self
            .session
            .run(
                &format!(
                    "mktemp -d {}",
                    dir_template(plan.as_deref().and_then(plan_word))
                ),
                None,
            )
            .await?;
        let dir = String::from_utf8_lossy(&made.stdout).trim().to_string();
        if !is_agent_dir(&dir) {
            return Err(CloudError::Permanent(format!(
                "mktemp on {host} answered '{dir}'"
            )));
        }
        self.installed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dir.clone());
        let path = format!("{dir}/{AGENT_FILE}");
        let installed = async {
            let copy = format!("cat > {0} && chmod 700 {0}", quote(&path));
            self.session.run(&copy, Some(&binary)).await?;
            self.check_copy(&path, &expected).await?;
            let probe = self
                .session
                .run(
                    &self.session.remote(&format!("{} probe", quote(&path))),
                    None,
                )
                .await?;
            let said = String::from_utf8_lossy(&probe.stdout);
            if !said.starts_with(&format!("altishift-agent {PROTOCOL} ")) {
                return Err(CloudError::Unsupported(format!(
                    "the agent copied to {host} answered '{}'",
                    said.trim()
                )));
            }
            Ok(())
        }
        .await;
        if let Err(e) = installed {
            let _ = self
                .session
                .run(&format!("rm -rf {}", quote(&dir)), None)
                .await;
            return Err(e);
        }
        Ok((dir, path))
    }

    /// The copy's SHA-256 as the host computes it must be the binary's:
    /// anything else (a copy cut short, altered on the way or on the host)
    /// never runs.
    async fn check_copy(&self, path: &str, expected: &str) -> Result<(), CloudError> {
        let host = self.settings.target.label();
        let quoted = quote(path);
        let said = self
            .session
            .run(
                &format!("sha256sum {quoted} 2>/dev/null || shasum -a 256 {quoted}"),
                None,
            )
            .await
            .map_err(|e| {
                CloudError::Permanent(format!(
                    "cannot check the SHA-256 of the agent copied to {host} (sha256sum or \
                     shasum is needed there), so it will not run: {e}"
                ))
            })?;
        let text = String::from_utf8_lossy(&said.stdout);
        // The host's answer is untrusted text: keep what a digest may hold.
        let found: String = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .chars()
            .take(64)
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .to_lowercase();
        if found != expected {
            return Err(CloudError::Permanent(format!(
                "the agent copied to {host}:{path} has SHA-256 '{found}', not {expected} as \
                 sent: the copy was altered or cut short; it was removed and did not run"
            )));
        }
        Ok(())
    }

    /// Agent folders of the plan `short` left on the host (a run killed
    /// before it removed its copy).
    pub(super) async fn agent_leftovers(
        &self,
        short: &str,
    ) -> Result<Vec<CreatedResource>, CloudError> {
        let Some(word) = plan_word(short) else {
            return Ok(Vec::new());
        };
        let listed = self
            .session
            .run(
                &format!("ls -d {DIR_PREFIX}-{word}.* 2>/dev/null || true"),
                None,
            )
            .await?;
        Ok(String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(str::trim)
            .filter(|dir| is_agent_dir(dir))
            .map(|dir| CreatedResource {
                cloud: self.name.clone(),
                kind: ResourceKind::StagingDisk,
                id: dir.to_string(),
                temporary: true,
            })
            .collect())
    }

    /// Removes one agent folder (a leftover found by the plan's tag).
    pub(super) async fn remove_agent_dir(&self, dir: &str) -> Result<(), CloudError> {
        if !is_agent_dir(dir) {
            return Err(CloudError::Permanent(format!(
                "'{dir}' is not an agent folder this tool makes; not removing it"
            )));
        }
        self.session
            .run(&format!("rm -rf {}", quote(dir)), None)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_agent_folders_may_be_removed() {
        assert!(is_agent_dir("/tmp/altishift-agent-3f9a01.Xk2abc"));
        assert!(is_agent_dir("/tmp/altishift-agent.Xk2abc"));
        for not in [
            "/",
            "/tmp",
            "/tmp/altishift-agent",
            "/tmp/altishift-agent-",
            "/tmp/altishift-agent-abc/../../etc",
            "/tmp/altishift-agent-abc.x/y",
            "/tmp/altishift-agent-abc.x y",
            "/home/ops",
        ] {
            assert!(!is_agent_dir(not), "{not}");
        }
        assert_eq!(
            dir_template(plan_word("3f9a01")),
            "/tmp/altishift-agent-3f9a01.XXXXXX"
        );
        assert_eq!(
            dir_template(plan_word("a/b")),
            "/tmp/altishift-agent.XXXXXX"
        );
    }

    #[test]
    fn a_missing_agent_names_both_places_to_put_it() {
        let err = agent_binary(Some(Path::new("/nonexistent/agent")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/agent"), "{err}");
    }
}
