//! Credentials: held in memory only, zeroized on drop, never printed.
//!
//! A profile names where a secret comes from (`env:NAME` or `prompt`), never
//! the value. [`Secret`] is the only type a credential value lives in.

use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// A credential value. `Debug` and `Display` print `[redacted]`; the bytes are
/// wiped when the value is dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Secret {
        disable_core_dumps();
        Secret(Zeroizing::new(value))
    }

    /// The value, for the one place that must send it (a request signer).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from, as written in a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretSource {
    /// Read from an environment variable when needed.
    Env(String),
    /// Asked of the operator with a masked prompt.
    Prompt,
}

impl TryFrom<String> for SecretSource {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "prompt" {
            Ok(SecretSource::Prompt)
        } else if let Some(name) = text.strip_prefix("env:") {
            if name.is_empty() {
                Err("'env:' needs a variable name, e.g. env:CS_API_KEY".into())
            } else {
                // Children (ssh, qemu-img) must never inherit it.
                crate::child::register_secret_var(name);
                Ok(SecretSource::Env(name.to_string()))
            }
        } else {
            // Never echo the text back: it may be a pasted secret value.
            Err("a secret must be 'env:NAME' or 'prompt' (secret values are never stored in config)".into())
        }
    }
}

impl From<SecretSource> for String {
    fn from(source: SecretSource) -> String {
        match source {
            SecretSource::Env(name) => format!("env:{name}"),
            SecretSource::Prompt => "prompt".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set (the profile reads a secret from it)")]
    MissingEnv(String),
    #[error("the profile asks for '{0}' at a prompt, and there is no terminal to ask on")]
    NoTerminal(String),
}

/// Asks for a secret the headless way; the console has its own masked prompt.
pub type Prompter<'a> = &'a mut dyn FnMut(&str) -> Option<Secret>;

impl SecretSource {
    /// Resolves the source into a value. `label` names the secret for a prompt.
    pub fn resolve(&self, label: &str, prompt: Prompter<'_>) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Env(name) => std::env::var(name)
                .map(Secret::new)
                .map_err(|_| SecretError::MissingEnv(name.clone())),
            SecretSource::Prompt => {
                prompt(label).ok_or_else(|| SecretError::NoTerminal(label.to_string()))
            }
        }
    }
}

/// Keeps secrets out of core files: no core dump and no ptrace attach while
/// this process holds a credential. Idempotent and cheap.
pub fn disable_core_dumps() {
    #[cfg(target_os = "linux")]
    {
        let limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscalls with a valid pointer to a local; failure only
        // means dumps stay as they were, which we cannot do better about.
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
    }
}

/// True once [`disable_core_dumps`] has taken effect (used by tests and `doctor`).
pub fn core_dumps_disabled() -> bool {
    #[cfg(target_os = "linux")]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: getrlimit writes into the local we pass.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) } == 0;
        ok && limit.rlim_cur == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The answer to a provider's prompt `label` among `answers`: one recorded
/// under that very label (a headless prompt), else the profile field whose
/// words the label contains (`secret_key` answers "staging secret key",
/// as the console asks by field).
pub fn answer_for(label: &str, answers: &[(String, Secret)]) -> Option<Secret> {
    if let Some((_, secret)) = answers.iter().find(|(key, _)| key == label) {
        return Some(secret.clone());
    }
    let label = label.to_lowercase().replace('_', " ");
    answers
        .iter()
        .find(|(field, _)| label.contains(&field.to_lowercase().replace('_', " ")))
        .map(|(_, secret)| secret.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("hunter2-planted".into());
        assert_eq!(format!("{secret}"), "[redacted]");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-planted");
        assert!(core_dumps_disabled());
    }

    #[test]
    fn secret_source_parses_and_refuses_values() {
        assert_eq!(
            SecretSource::try_from("prompt".to_string()),
            Ok(SecretSource::Prompt)
        );
        assert_eq!(
            SecretSource::try_from("env:CS_KEY".to_string()),
            Ok(SecretSource::Env("CS_KEY".into()))
        );
        let err = SecretSource::try_from("AKIAREALKEY".to_string()).unwrap_err();
        assert!(
            !err.contains("AKIAREALKEY"),
            "error must not echo a pasted value: {err}"
        );
    }

    #[test]
    fn env_source_reads_the_variable() {
        // SAFETY: test-only environment change on a name no other test uses.
        unsafe { std::env::set_var("ALTISHIFT_TEST_SECRET_SOURCE", "s3cr3t") };
        let value = SecretSource::Env("ALTISHIFT_TEST_SECRET_SOURCE".into())
            .resolve("key", &mut |_| None)
            .unwrap();
        assert_eq!(value.expose(), "s3cr3t");
        let missing =
            SecretSource::Env("ALTISHIFT_TEST_NOT_SET".into()).resolve("key", &mut |_| None);
        assert!(matches!(missing, Err(SecretError::MissingEnv(_))));
    }
}
