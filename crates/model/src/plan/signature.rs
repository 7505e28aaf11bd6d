//! Signed approvals: an operator signs the plan hash with their SSH key
//! (`ssh-keygen -Y sign`, through the agent they already use on the jump
//! host), and `apply` checks every signature with `ssh-keygen -Y verify`
//! against the `allowed_signers` file the config names. Who signed is what
//! the signature proves (the key's fingerprint and the principal the file
//! gives it), never a name read from the plan.

use super::PlanHash;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The signature namespace: a signature made for something else (a git
/// commit, a file) never passes for a plan approval.
pub const NAMESPACE: &str = "altishift-plan";

/// `[approval]` in config.toml: who may approve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// `ssh-keygen` allowed-signers file (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_signers: Option<PathBuf>,
    /// Distinct signers an approval needs, none of them the plan's author
    /// when 2 or more (the four-eyes rule). 0 (the default without
    /// `allowed_signers`): the typed hash alone approves; with
    /// `allowed_signers` and no count: one signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<u32>,
}

impl ApprovalPolicy {
    pub fn required_signers(&self) -> u32 {
        match (self.approvers, &self.allowed_signers) {
            (Some(n), _) => n,
            (None, Some(_)) => 1,
            (None, None) => 0,
        }
    }
}

/// One signature over a plan hash, as stored with the approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSignature {
    /// Who ran `approve --sign` (for a person reading the plan; not trusted).
    pub operator: String,
    pub signed_at: String,
    /// The armored `SSH SIGNATURE` block.
    pub signature: String,
}

/// A signer as `ssh-keygen -Y verify` established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The principal the allowed-signers file gives the key.
    pub principal: String,
    /// `SHA256:…` of the signing key.
    pub key_fingerprint: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("ssh-keygen could not run ({0}): install OpenSSH's ssh-keygen (8.2 or later)")]
    Tool(String),
    #[error("signing with {key} failed: {message}")]
    Sign { key: String, message: String },
    #[error("signature {index} (by {operator}): {message}")]
    Invalid {
        index: usize,
        operator: String,
        message: String,
    },
    #[error(
        "this config requires {required} signed approval(s) from {file}; the plan has {valid} valid: sign with `altishift approve PLAN --sign KEY`"
    )]
    TooFew {
        required: u32,
        valid: u32,
        file: String,
    },
    #[error("the config requires signed approvals but names no allowed_signers file in [approval]")]
    NoSignersFile,
    #[error("the four-eyes rule: {principal} ({key}) made this plan and cannot also approve it")]
    Author { principal: String, key: String },
    #[error("{first} and {second} are the same signer ({key}): approvals need distinct people")]
    Duplicate {
        first: usize,
        second: usize,
        key: String,
    },
}

/// Signs `hash` with `key` (a private key file, or a public key whose
/// private half the ssh agent holds).
pub fn sign(key: &Path, hash: &PlanHash) -> Result<String, SignatureError> {
    let output = run_with_input(
        crate::child::command("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f"])
            .arg(key),
        hash.0.as_bytes(),
    )?;
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() || !text.contains("BEGIN SSH SIGNATURE") {
        return Err(SignatureError::Sign {
            key: key.display().to_string(),
            message: first_line(&String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(text)
}

/// Checks one signature over `hash` against the allowed-signers file.
pub fn verify(allowed_signers: &Path, hash: &PlanHash, signature: &str) -> Result<Signer, String> {
    let dir = tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let file = dir.path.join("plan.sig");
    crate::fsutil::write_atomic(&file, signature.as_bytes())
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    let found = crate::child::command("ssh-keygen")
        .args(["-Y", "find-principals", "-s"])
        .arg(&file)
        .arg("-f")
        .arg(allowed_signers)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ssh-keygen: {e}"))?;
    let principals = String::from_utf8_lossy(&found.stdout).to_string();
    let Some(principal) = principals.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(format!(
            "its key is not in {} ({})",
            allowed_signers.display(),
            first_line(&String::from_utf8_lossy(&found.stderr))
        ));
    };
    let checked = run_with_input(
        crate::child::command("ssh-keygen")
            .args(["-Y", "verify", "-n", NAMESPACE, "-f"])
            .arg(allowed_signers)
            .arg("-I")
            .arg(principal)
            .arg("-s")
            .arg(&file),
        hash.0.as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&checked.stdout).to_string();
    if !checked.status.success() {
        return Err(format!(
            "it does not sign this plan's hash ({})",
            first_line(&String::from_utf8_lossy(&checked.stderr))
        ));
    }
    // `Good "altishift-plan" signature for P with ED25519 key SHA256:…`
    let key_fingerprint = said
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(str::to_string)
        .ok_or_else(|| format!("ssh-keygen gave no key fingerprint: {}", said.trim()))?;
    Ok(Signer {
        principal: principal.to_string(),
        key_fingerprint,
    })
}

/// Checks the plan's signatures against the policy: at least the required
/// number of valid signatures by distinct keys and principals, none by the
/// plan's author when two or more are required. Returns the signers.
pub fn check_policy(
    policy: &ApprovalPolicy,
    signers_file: Option<&Path>,
    hash: &PlanHash,
    author: &str,
    signatures: &[PlanSignature],
) -> Result<Vec<Signer>, SignatureError> {
    let required = policy.required_signers();
    if required == 0 {
        return Ok(Vec::new());
    }
    let file = signers_file.ok_or(SignatureError::NoSignersFile)?;
    let mut signers: Vec<Signer> = Vec::new();
    for (i, sig) in signatures.iter().enumerate() {
        let signer =
            verify(file, hash, &sig.signature).map_err(|message| SignatureError::Invalid {
                index: i + 1,
                operator: crate::text::safe(&sig.operator).into_owned(),
                message,
            })?;
        if let Some(first) = signers.iter().position(|s| {
            s.key_fingerprint == signer.key_fingerprint || s.principal == signer.principal
        }) {
            return Err(SignatureError::Duplicate {
                first: first + 1,
                second: i + 1,
                key: signer.key_fingerprint,
            });
        }
        if required >= 2 && is_author(&signer.principal, author) {
            return Err(SignatureError::Author {
                principal: signer.principal,
                key: signer.key_fingerprint,
            });
        }
        signers.push(signer);
    }
    if (signers.len() as u32) < required {
        return Err(SignatureError::TooFew {
            required,
            valid: signers.len() as u32,
            file: file.display().to_string(),
        });
    }
    Ok(signers)
}

/// The plan's author (`user@host`, or `user@domain` from
/// ALTISHIFT_OPERATOR) against a principal (`user` or `user@domain`).
fn is_author(principal: &str, author: &str) -> bool {
    let user = |s: &str| s.split('@').next().unwrap_or(s).to_ascii_lowercase();
    principal.eq_ignore_ascii_case(author) || user(principal) == user(author)
}

fn run_with_input(
    command: &mut Command,
    input: &[u8],
) -> Result<std::process::Output, SignatureError> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SignatureError::Tool(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| SignatureError::Tool(e.to_string()))?;
    }
    child
        .wait_with_output()
        .map_err(|e| SignatureError::Tool(e.to_string()))
}

/// The first non-empty line of a tool's message.
fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_string()
}

/// A private temporary folder, removed on drop.
struct TempDir {
    path: PathBuf,
}

fn tempdir() -> std::io::Result<TempDir> {
    use std::os::unix::fs::DirBuilderExt;
    let path = std::env::temp_dir().join(format!(
        "altishift-sig-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&path)?;
    Ok(TempDir { path })
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair(dir: &Path, name: &str) -> PathBuf {
        let key = dir.join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success());
        key
    }

    fn allowed(dir: &Path, entries: &[(&str, &Path)]) -> PathBuf {
        let mut text = String::new();
        for (principal, key) in entries {
            let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
            text.push_str(&format!("{principal} {public}"));
        }
        let file = dir.join("allowed_signers");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn signed(key: &Path, hash: &PlanHash, operator: &str) -> PlanSignature {
        PlanSignature {
            operator: operator.into(),
            signed_at: "now".into(),
            signature: sign(key, hash).unwrap(),
        }
    }

    #[test]
    fn two_person_rule_needs_two_distinct_signers_neither_the_author() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, bob, carol) = (
            keypair(dir.path(), "alice"),
            keypair(dir.path(), "bob"),
            keypair(dir.path(), "carol"),
        );
        let file = allowed(
            dir.path(),
            &[("alice", &alice), ("bob", &bob), ("carol", &carol)],
        );
        let hash = PlanHash("ab".repeat(32));
        let policy = ApprovalPolicy {
            allowed_signers: Some(file.clone()),
            approvers: Some(2),
        };
        let check =
            |sigs: &[PlanSignature]| check_policy(&policy, Some(&file), &hash, "alice@jump", sigs);
        let (by_alice, by_bob, by_carol) = (
            signed(&alice, &hash, "alice"),
            signed(&bob, &hash, "bob"),
            signed(&carol, &hash, "carol"),
        );
        assert!(matches!(
            check(std::slice::from_ref(&by_bob)).unwrap_err(),
            SignatureError::TooFew {
                required: 2,
                valid: 1,
                ..
            }
        ));
        assert!(matches!(
            check(&[by_bob.clone(), by_bob.clone()]).unwrap_err(),
            SignatureError::Duplicate { .. }
        ));
        assert!(matches!(
            check(&[by_bob.clone(), by_alice]).unwrap_err(),
            SignatureError::Author { .. }
        ));
        let signers = check(&[by_bob, by_carol]).unwrap();
        assert_eq!(signers.len(), 2);
        assert!(
            signers
                .iter()
                .all(|s| s.key_fingerprint.starts_with("SHA256:"))
        );
        assert_eq!(signers[0].principal, "bob");
    }

    #[test]
    fn a_signature_over_another_hash_or_by_an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (bob, mallory) = (keypair(dir.path(), "bob"), keypair(dir.path(), "mallory"));
        let file = allowed(dir.path(), &[("bob", &bob)]);
        let hash = PlanHash("cd".repeat(32));
        let other = PlanHash("ef".repeat(32));
        let policy = ApprovalPolicy {
            allowed_signers: Some(file.clone()),
            approvers: None,
        };
        let wrong_plan = signed(&bob, &other, "bob");
        let err = check_policy(&policy, Some(&file), &hash, "ops", &[wrong_plan]).unwrap_err();
        assert!(
            matches!(err, SignatureError::Invalid { index: 1, .. }),
            "{err}"
        );
        let stranger = signed(&mallory, &hash, "bob");
        let err = check_policy(&policy, Some(&file), &hash, "ops", &[stranger]).unwrap_err();
        assert!(err.to_string().contains("not in"), "{err}");
        let good = signed(&bob, &hash, "bob");
        assert_eq!(
            check_policy(&policy, Some(&file), &hash, "ops", &[good]).unwrap()[0].principal,
            "bob"
        );
    }

    #[test]
    fn no_policy_needs_no_signature() {
        let policy = ApprovalPolicy::default();
        let hash = PlanHash("00".repeat(32));
        assert!(
            check_policy(&policy, None, &hash, "ops", &[])
                .unwrap()
                .is_empty()
        );
    }
}
