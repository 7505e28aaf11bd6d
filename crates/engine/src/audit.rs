//! The audit log: one JSON line per mutating action, with the plan hash, the
//! operator, the time, the resource and the outcome. Never a secret.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    pub plan_hash: String,
    pub operator: String,
    pub cloud: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
}

pub struct AuditLog {
    path: PathBuf,
    lock: Mutex<()>,
    plan_hash: String,
    operator: String,
}

impl AuditLog {
    pub fn new(path: &Path, plan_hash: &str, operator: &str) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            lock: Mutex::new(()),
            plan_hash: plan_hash.into(),
            operator: operator.into(),
        }
    }

    /// Appends and fsyncs one entry. A failure to audit is reported, not
    /// ignored: the caller stops the action.
    pub fn record(
        &self,
        cloud: &str,
        action: &str,
        resource: &str,
        outcome: &str,
    ) -> std::io::Result<()> {
        let entry = AuditEntry {
            at: crate::fsutil::now_rfc3339(),
            plan_hash: self.plan_hash.clone(),
            operator: self.operator.clone(),
            cloud: cloud.into(),
            action: action.into(),
            resource: resource.into(),
            outcome: outcome.into(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = crate::fsutil::open_private_append(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()
    }
}
