//! A `[clouds.NAME]` table read as its provider's profile. The model keeps
//! the table generic; here the `provider` key picks the typed profile (each
//! provider's own struct, in its folder), so a key of another provider is
//! refused naming both, at the key's line.

use crate::aws::profile::AwsProfile;
use crate::cloudstack::profile::CloudStackProfile;
use crate::config::{Config, ConfigError, toml_error, unknown_key};
use crate::digitalocean::profile::DigitalOceanProfile;
use crate::gcp::profile::GcpProfile;
use crate::lab::profile::LabProfile;
use crate::secret::SecretSource;
use crate::ssh::profile::SshProfile;
use serde::de::{DeserializeOwned, Error as _, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// Which provider a cloud is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Lab,
    Aws,
    Gcp,
    Digitalocean,
    Cloudstack,
    Ssh,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Lab,
        ProviderKind::Aws,
        ProviderKind::Gcp,
        ProviderKind::Digitalocean,
        ProviderKind::Cloudstack,
        ProviderKind::Ssh,
    ];

    /// The name a config's `provider` key gives.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Lab => "lab",
            ProviderKind::Aws => "aws",
            ProviderKind::Gcp => "gcp",
            ProviderKind::Digitalocean => "digitalocean",
            ProviderKind::Cloudstack => "cloudstack",
            ProviderKind::Ssh => "ssh",
        }
    }

    pub fn from_name(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The keys of this provider's profile (besides `provider`).
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            ProviderKind::Lab => keys_of::<LabProfile>(),
            ProviderKind::Aws => keys_of::<AwsProfile>(),
            ProviderKind::Gcp => keys_of::<GcpProfile>(),
            ProviderKind::Digitalocean => keys_of::<DigitalOceanProfile>(),
            ProviderKind::Cloudstack => keys_of::<CloudStackProfile>(),
            ProviderKind::Ssh => keys_of::<SshProfile>(),
        }
    }

    /// "an aws profile", "a gcp profile".
    fn with_article(self) -> String {
        let article = match self {
            ProviderKind::Aws | ProviderKind::Ssh => "an",
            _ => "a",
        };
        format!("{article} {self} profile")
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One cloud's settings, typed by its provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum Profile {
    Lab(LabProfile),
    Aws(AwsProfile),
    Gcp(GcpProfile),
    Digitalocean(DigitalOceanProfile),
    Cloudstack(CloudStackProfile),
    Ssh(SshProfile),
}

impl Profile {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Profile::Lab(_) => ProviderKind::Lab,
            Profile::Aws(_) => ProviderKind::Aws,
            Profile::Gcp(_) => ProviderKind::Gcp,
            Profile::Digitalocean(_) => ProviderKind::Digitalocean,
            Profile::Cloudstack(_) => ProviderKind::Cloudstack,
            Profile::Ssh(_) => ProviderKind::Ssh,
        }
    }

    /// Reads `[clouds.NAME]` of `config` as its provider's profile. Errors
    /// name the file, the line and the key.
    pub fn read(config: &Config, name: &str) -> Result<Profile, ConfigError> {
        let table = config.cloud(name)?;
        let file = config.file_label();
        // Spans point into the file's text; a table built in code is written
        // out first (its errors are ours, not an operator's).
        let written;
        let text = match table.source() {
            Some(text) => text,
            None => {
                let mut clouds = toml::Table::new();
                clouds.insert(name.into(), table.values().clone().into());
                let mut root = toml::Table::new();
                root.insert("clouds".into(), clouds.into());
                written = toml::to_string(&root).map_err(|e| ConfigError::Profile {
                    file: file.clone(),
                    name: name.into(),
                    message: e.to_string(),
                })?;
                written.as_str()
            }
        };
        let at = |offset: usize, message: String| {
            let (line, column) = crate::config::line_and_column(text, offset);
            ConfigError::Parse {
                file: file.clone(),
                line,
                column,
                message,
            }
        };
        let root = DeTable::parse(text).map_err(|e| toml_error(text, &file, &e))?;
        let cloud = root
            .get_ref()
            .get("clouds")
            .and_then(|c| c.get_ref().as_table())
            .and_then(|c| c.get(name));
        let Some((span, mut keys)) = cloud.and_then(|c| match c.get_ref() {
            DeValue::Table(t) => Some((c.span(), t.clone())),
            _ => None,
        }) else {
            return Err(at(0, format!("[clouds.{name}] is not a table")));
        };
        let Some(provider) = keys.remove("provider") else {
            return Err(at(
                span.start,
                format!("[clouds.{name}] needs 'provider' (one of {})", kinds()),
            ));
        };
        let kind =
            ProviderKind::deserialize(ValueDeserializer::from(provider.clone())).map_err(|e| {
                at(
                    provider.span().start,
                    format!("key 'provider': {}", e.message()),
                )
            })?;
        foreign_key(name, kind, &keys).map_or(Ok(()), |(offset, m)| Err(at(offset, m)))?;
        let typed = toml::de::Deserializer::from(Spanned::new(span, keys));
        let error = |e: toml::de::Error| toml_error(text, &file, &e);
        Ok(match kind {
            ProviderKind::Lab => Profile::Lab(typed_as(typed).map_err(error)?),
            ProviderKind::Aws => Profile::Aws(typed_as(typed).map_err(error)?),
            ProviderKind::Gcp => Profile::Gcp(typed_as(typed).map_err(error)?),
            ProviderKind::Digitalocean => Profile::Digitalocean(typed_as(typed).map_err(error)?),
            ProviderKind::Cloudstack => Profile::Cloudstack(typed_as(typed).map_err(error)?),
            ProviderKind::Ssh => Profile::Ssh(typed_as(typed).map_err(error)?),
        })
    }

    /// Reads every cloud of `config`: a config is refused whole, at load,
    /// as it was when one struct held every key.
    pub fn check_all(config: &Config) -> Result<(), ConfigError> {
        for name in config.clouds.keys() {
            Profile::read(config, name)?;
        }
        Ok(())
    }

    /// The table this profile is written as (configs built in code).
    pub fn table(&self) -> Result<crate::config::CloudTable, toml::ser::Error> {
        Ok(crate::config::CloudTable::new(toml::Table::try_from(self)?))
    }

    /// The secrets the profile says where to find, by key, in the order
    /// they are asked for.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretSource)> {
        let (api_key, secret_key, token) = match self {
            Profile::Lab(p) => (None, None, p.token.as_ref()),
            Profile::Aws(p) => (p.api_key.as_ref(), p.secret_key.as_ref(), None),
            Profile::Gcp(_) | Profile::Ssh(_) => (None, None, None),
            Profile::Digitalocean(p) => {
                (p.api_key.as_ref(), p.secret_key.as_ref(), p.token.as_ref())
            }
            Profile::Cloudstack(p) => (p.api_key.as_ref(), p.secret_key.as_ref(), None),
        };
        [
            ("api_key", api_key),
            ("secret_key", secret_key),
            ("token", token),
        ]
        .into_iter()
        .filter_map(|(key, source)| source.map(|s| (key, s)))
        .collect()
    }

    /// The keys that say where credentials are sent, with their values,
    /// and whether plain http is allowed for them.
    pub fn endpoints(&self) -> (Vec<(&'static str, &str)>, bool) {
        let (keys, insecure) = match self {
            Profile::Lab(_) | Profile::Ssh(_) => (vec![], None),
            Profile::Aws(p) => (vec![("endpoint", &p.endpoint)], p.insecure_endpoint),
            Profile::Gcp(p) => (
                vec![
                    ("endpoint", &p.endpoint),
                    ("storage_endpoint", &p.storage_endpoint),
                    ("token_uri", &p.token_uri),
                ],
                p.insecure_endpoint,
            ),
            Profile::Digitalocean(p) => (
                vec![
                    ("endpoint", &p.endpoint),
                    ("staging_endpoint", &p.staging_endpoint),
                ],
                p.insecure_endpoint,
            ),
            Profile::Cloudstack(p) => (vec![("endpoint", &p.endpoint)], p.insecure_endpoint),
        };
        let set = keys
            .into_iter()
            .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
            .collect();
        (set, insecure.unwrap_or(false))
    }
}

fn typed_as<T: DeserializeOwned>(de: toml::de::Deserializer<'_>) -> Result<T, toml::de::Error> {
    T::deserialize(de)
}

/// "lab, aws, gcp, digitalocean, cloudstack or ssh".
fn kinds() -> String {
    let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.name()).collect();
    spoken_list(&names, "or")
}

fn spoken_list(items: &[&str], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

/// The first key (in the file's order) that `kind`'s profile does not take:
/// where it is, and the message — naming the providers whose key it is, or
/// the closest key of this provider.
fn foreign_key(name: &str, kind: ProviderKind, keys: &DeTable<'_>) -> Option<(usize, String)> {
    let own = kind.keys();
    let (key, _) = keys
        .iter()
        .filter(|(key, _)| !own.contains(&key.get_ref().as_ref()))
        .min_by_key(|(key, _)| key.span().start)?;
    let text: &str = key.get_ref().as_ref();
    let theirs: Vec<&str> = ProviderKind::ALL
        .into_iter()
        .filter(|other| other.keys().contains(&text))
        .map(ProviderKind::name)
        .collect();
    let message = if theirs.is_empty() {
        unknown_key(text, own)
    } else {
        format!(
            "[clouds.{name}] is {}; '{text}' is a key of {} profiles",
            kind.with_article(),
            spoken_list(&theirs, "and")
        )
    };
    Some((key.span().start, message))
}

/// The keys a profile struct takes, as its derived `Deserialize` lists them
/// (so the list cannot drift from the struct).
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut keys = None;
    // Always an error: the grabber only records the struct's field names.
    let _ = T::deserialize(KeyGrabber(&mut keys));
    keys.unwrap_or(&[])
}

struct KeyGrabber<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for KeyGrabber<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(Self::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(Self::Error::custom("keys read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
#[path = "profile_tests.rs"]
mod tests;
