//! `config.toml` and cloud profiles: where and how to reach a cloud, never a
//! secret value. Errors name the file, the line and the key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One `[clouds.NAME]` table as written. The model knows no provider: it
/// keeps the table generic, and the cloud crate reads it into the typed
/// profile of the provider it names, with errors at the key's line (which
/// is why the table keeps the text of the file it came from).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "toml::Table", into = "toml::Table")]
pub struct CloudTable {
    values: toml::Table,
    /// The whole file the table was read from; None when built in code.
    source: Option<Arc<str>>,
}

impl CloudTable {
    /// A table built in code (no file behind it).
    pub fn new(values: toml::Table) -> CloudTable {
        CloudTable {
            values,
            source: None,
        }
    }

    /// The keys and values as written.
    pub fn values(&self) -> &toml::Table {
        &self.values
    }

    /// The text of the config file this table was read from.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
}

impl From<toml::Table> for CloudTable {
    fn from(values: toml::Table) -> CloudTable {
        CloudTable::new(values)
    }
}

impl From<CloudTable> for toml::Table {
    fn from(table: CloudTable) -> toml::Table {
        table.values
    }
}

// Keys only: a value may be a secret pasted by mistake (refused when read).
impl std::fmt::Debug for CloudTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudTable")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    /// Where journals, audit log and reports go; relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Who may approve: signed approvals, a second person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::plan::signature::ApprovalPolicy>,
    /// `[clouds.NAME]`: read into a provider's profile by the cloud crate.
    #[serde(default)]
    pub clouds: BTreeMap<String, CloudTable>,
    /// Console keys rebound: `"plan.wave" = "W"` (see tui/keymap.rs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// The file this came from (relative paths resolve against its folder).
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: no cloud named '{name}' (configured: {known})")]
    UnknownCloud {
        file: String,
        name: String,
        known: String,
    },
    #[error("{file}: [clouds.{name}] {message}")]
    Profile {
        file: String,
        name: String,
        message: String,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        let mut config: Config = parse_toml(&text, path)?;
        config.file = Some(path.to_path_buf());
        let source: Arc<str> = Arc::from(text);
        for table in config.clouds.values_mut() {
            table.source = Some(source.clone());
        }
        Ok(config)
    }

    /// Folder that relative paths in this config are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir().join(path)
        }
    }

    pub fn file_label(&self) -> String {
        self.file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "built-in lab config".into())
    }

    pub fn cloud(&self, name: &str) -> Result<&CloudTable, ConfigError> {
        self.clouds
            .get(name)
            .ok_or_else(|| ConfigError::UnknownCloud {
                file: self.file_label(),
                name: name.to_string(),
                known: self.clouds.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

/// Parses TOML into `T`, turning serde's message into `file:line:col: …`
/// with a "did you mean" for a misspelt key.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|err| toml_error(text, &path.display().to_string(), &err))
}

/// A TOML error as `file:line:col: …`, naming the key of the line and
/// suggesting a known key for a misspelt one. `text` is the text the error's
/// span points into.
pub fn toml_error(text: &str, file: &str, err: &toml::de::Error) -> ConfigError {
    let (line, column) = err
        .span()
        .map(|span| line_and_column(text, span.start))
        .unwrap_or((1, 1));
    let mut message = explain(err.message());
    // serde names the expected type, not the key: add the key from the line.
    if let Some(key) = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !message.contains(&format!("'{k}'")))
    {
        message = format!("key '{key}': {message}");
    }
    ConfigError::Parse {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// 1-based line and column of a byte offset.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map(|nl| offset - nl)
        .unwrap_or(offset + 1);
    (line, column)
}

/// Adds a suggestion to serde's "unknown field `x`, expected one of …".
fn explain(message: &str) -> String {
    let message = message.trim().to_string();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message;
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message;
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    unknown_key(field, &candidates)
}

/// "unknown key 'x'" with the closest of `candidates` when one is close,
/// else the list of them.
pub fn unknown_key(field: &str, candidates: &[&str]) -> String {
    match candidates.iter().min_by_key(|c| edit_distance(field, c)) {
        Some(best) if edit_distance(field, best) <= 2 => {
            format!("unknown key '{field}' (did you mean '{best}'?)")
        }
        _ => format!(
            "unknown key '{field}' (known keys: {})",
            candidates.join(", ")
        ),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// Where things live when no `--config` is given.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    /// XDG paths through `directories`, with `ALTISHIFT_CONFIG` and
    /// `ALTISHIFT_DATA_DIR` overrides (tests and scripts use them).
    pub fn discover() -> Paths {
        let dirs = directories::ProjectDirs::from("", "", "altishift");
        let config_file = std::env::var_os("ALTISHIFT_CONFIG")
            .map(PathBuf::from)
            .or_else(|| dirs.as_ref().map(|d| d.config_dir().join("config.toml")))
            .unwrap_or_else(|| PathBuf::from("altishift.toml"));
        let data_dir = std::env::var_os("ALTISHIFT_DATA_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs.as_ref().map(|d| d.data_dir().to_path_buf()))
            .unwrap_or_else(|| PathBuf::from(".altishift"));
        Paths {
            config_file,
            data_dir,
        }
    }
}

impl Config {
    /// State folder: the config's `state_dir`, else `<data dir>/state`.
    pub fn state_dir(&self, paths: &Paths) -> PathBuf {
        match &self.state_dir {
            Some(dir) => self.resolve(dir),
            None => paths.data_dir.join("state"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_toml(text, Path::new("config.toml"))
    }

    #[test]
    fn misspelt_top_level_key_names_file_line_and_suggestion() {
        let err = parse("theme = \"default\"\nstat_dir = \"s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("config.toml:2:"), "{err}");
        assert!(err.contains("did you mean 'state_dir'"), "{err}");
    }

    /// The model reads no provider's keys: any key of a cloud table is kept
    /// as written (the cloud crate checks them), with the file's text.
    #[test]
    fn a_cloud_table_is_kept_as_written_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let text = "[clouds.staging]\nprovider = \"cloudstack\"\nwhatever = [1, 2]\n";
        std::fs::write(&file, text).unwrap();
        let config = Config::load(&file).unwrap();
        let table = config.cloud("staging").unwrap();
        assert_eq!(table.values()["provider"].as_str(), Some("cloudstack"));
        assert!(table.values().contains_key("whatever"));
        assert_eq!(table.source(), Some(text));
        let missing = config.cloud("nope").unwrap_err().to_string();
        assert!(missing.contains("no cloud named 'nope'"), "{missing}");
        assert!(missing.contains("staging"), "{missing}");
    }

    #[test]
    fn a_cloud_that_is_no_table_names_the_line() {
        let err = parse("[clouds]\nx = \"lab\"\n").unwrap_err().to_string();
        assert!(err.starts_with("config.toml:2:"), "{err}");
    }
}
