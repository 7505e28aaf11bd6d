//! Child processes (`ssh`, `qemu-img`, …) start with an environment that
//! holds none of our secrets: one helper, used for every program we spawn.
//!
//! Removed: every variable a profile names as a secret source (`env:NAME`,
//! registered when the config is read), our own `ALTISHIFT_*` variables, and
//! the well-known cloud credential variables. `SSH_AUTH_SOCK`, `HOME`, `PATH`
//! and the rest stay: `ssh` needs them.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::sync::Mutex;

/// Credential variables of the clouds we talk to (and their CLIs).
const KNOWN: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "DIGITALOCEAN_TOKEN",
    "DIGITALOCEAN_ACCESS_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "CLOUDSDK_AUTH_ACCESS_TOKEN",
    "CLOUDSTACK_KEY",
    "CLOUDSTACK_SECRET",
    "CLOUDSTACK_SECRET_KEY",
    "CLOUDSTACK_API_KEY",
];

static PROFILE_SECRETS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Remembers that a profile reads a secret from `name` (`env:NAME`).
pub fn register_secret_var(name: &str) {
    PROFILE_SECRETS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_string());
}

/// True for a variable no child may inherit.
pub fn is_secret_var(name: &str) -> bool {
    name.starts_with("ALTISHIFT_")
        || KNOWN.contains(&name)
        || PROFILE_SECRETS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(name)
}

/// Names of the secret variables set in this process right now.
pub fn secret_vars() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_str().is_some_and(is_secret_var))
        .collect()
}

/// A blocking command for `program`, without our secret variables.
pub fn command(program: impl AsRef<OsStr>) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    for name in secret_vars() {
        command.env_remove(name);
    }
    command
}

/// An async command for `program`, without our secret variables.
pub fn tokio_command(program: impl AsRef<OsStr>) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    for name in secret_vars() {
        command.env_remove(name);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_known_by_name_and_by_profile() {
        assert!(is_secret_var("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret_var("ALTISHIFT_AGENT"));
        assert!(!is_secret_var("SSH_AUTH_SOCK"));
        assert!(!is_secret_var("PATH"));
        assert!(!is_secret_var("CHILD_TEST_PROFILE_TOKEN"));
        register_secret_var("CHILD_TEST_PROFILE_TOKEN");
        assert!(is_secret_var("CHILD_TEST_PROFILE_TOKEN"));
    }
}
