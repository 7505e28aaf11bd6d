//! The configuration an instance carries besides its disks, in one shape for
//! every cloud: network attachments, the firewall rules that apply to it, its
//! SSH keys and user-data (tags stay on [`super::Instance::tags`]).
//!
//! Also what a target cloud can take of it ([`ConfigRules`]): each provider
//! declares these as data, the plan reads them and never names a provider.

use serde::{Deserialize, Serialize};

/// Everything but disks and tags that makes an instance reachable and
/// recognisable. Empty when the provider does not tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Attachment>,
    /// One per security group / firewall that applies to the instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_sets: Vec<RuleSet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<KeyRef>,
    /// cloud-init user-data as text; binary user-data (gzip) is kept
    /// base64-encoded behind a `base64:` prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// Parts the provider could not read (a refused call), with why: the
    /// plan lists them as not carried rather than guessing "none".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
}

impl InstanceConfig {
    pub fn is_empty(&self) -> bool {
        *self == InstanceConfig::default()
    }
}

/// One network interface: where it is attached and how it is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The network, VPC or subnet name (or id when it has no name).
    pub network: String,
    /// The subnet's id or name, when the cloud has subnets inside networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<String>,
    /// The interface has a public (external) address.
    #[serde(default)]
    pub public: bool,
}

/// A security group, firewall or network ACL: a named set of rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// Ports `from..=to`; for ICMP, `from` is the type and `to` the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

/// Who a rule lets in (or out to).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// An IPv4 or IPv6 CIDR block.
    Cidr(String),
    /// Another security group (by name or id).
    Group(String),
    /// Instances carrying a network tag (Compute Engine, DigitalOcean).
    Tag(String),
    /// Instances running as a service account (Compute Engine).
    ServiceAccount(String),
    /// A managed prefix list (AWS).
    PrefixList(String),
}

impl Peer {
    pub fn kind(&self) -> PeerKind {
        match self {
            Peer::Cidr(_) => PeerKind::Cidr,
            Peer::Group(_) => PeerKind::Group,
            Peer::Tag(_) => PeerKind::Tag,
            Peer::ServiceAccount(_) => PeerKind::ServiceAccount,
            Peer::PrefixList(_) => PeerKind::PrefixList,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Cidr(c) => f.write_str(c),
            Peer::Group(g) => write!(f, "group {g}"),
            Peer::Tag(t) => write!(f, "tag {t}"),
            Peer::ServiceAccount(s) => write!(f, "service account {s}"),
            Peer::PrefixList(p) => write!(f, "prefix list {p}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    Cidr,
    Group,
    Tag,
    ServiceAccount,
    PrefixList,
}

impl std::fmt::Display for PeerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerKind::Cidr => "address ranges",
            PeerKind::Group => "other security groups",
            PeerKind::Tag => "network tags",
            PeerKind::ServiceAccount => "service accounts",
            PeerKind::PrefixList => "prefix lists",
        })
    }
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub direction: Direction,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `all`, or an IP protocol number.
    pub protocol: String,
    /// None: every port (or every ICMP type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<PortRange>,
    pub peer: Peer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl std::fmt::Display for Rule {
    /// `in tcp 22 from 0.0.0.0/0`, `out all to 0.0.0.0/0`, `in icmp 8:0 from …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let direction = match self.direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        write!(f, "{direction} {}", self.protocol)?;
        match (self.ports, self.protocol.starts_with("icmp")) {
            (Some(p), true) => write!(f, " {}:{}", p.from, p.to)?,
            (Some(p), false) if p.from == p.to => write!(f, " {}", p.from)?,
            (Some(p), false) => write!(f, " {}-{}", p.from, p.to)?,
            (None, _) => {}
        }
        let word = match self.direction {
            Direction::In => "from",
            Direction::Out => "to",
        };
        write!(f, " {word} {}", self.peer)
    }
}

/// An SSH public key that may log in to the instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    pub name: String,
    /// `ssh-ed25519 AAAA… comment`, when the provider returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// What a target can take of an instance's configuration, declared by its
/// provider. The plan translates against these and lists what does not fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRules {
    /// altishift creates this target's firewalls and keys and passes
    /// tags, user-data and the network at deploy. False: the plan says what
    /// it would translate to, and that none of it is carried yet.
    pub creates: bool,
    pub tags: TagRules,
    pub firewall: FirewallRules,
    /// The kind of [`super::Network`] an instance is attached to (`subnet`).
    pub network_kind: String,
    /// SSH keys per instance (AWS: one key pair); None: any number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<usize>,
    /// Keys can be imported at all.
    pub ssh_keys: bool,
    /// Largest user-data in bytes (before any encoding); None: not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data_max: Option<u64>,
    /// A public address can be asked for (or refused) per instance.
    pub public_ip: bool,
}

/// How a target's tags (labels) must look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRules {
    /// What this cloud calls them: `tags`, `labels`.
    pub word: String,
    pub max_count: usize,
    /// Tags the provider writes itself on every instance (counted in
    /// `max_count`), e.g. AWS's `Name`, `altishift:plan`, `altishift:image`.
    pub own_tags: usize,
    pub key_max: usize,
    pub value_max: usize,
    pub lowercase: bool,
    /// Characters allowed besides ASCII letters and digits.
    pub extra_chars: String,
    /// Letters outside ASCII are allowed.
    pub unicode_letters: bool,
    pub key_starts_with_letter: bool,
    /// Prefixes of keys the cloud keeps for itself (compared ignoring case).
    #[serde(default)]
    pub reserved_prefixes: Vec<String>,
    /// Keys the provider sets itself from the plan (AWS: `Name`).
    #[serde(default)]
    pub reserved_keys: Vec<String>,
    /// Tags are single strings: a key and value become `key<sep>value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<String>,
}

/// What a target's firewalls can express.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallRules {
    /// What this cloud calls one rule set: `security group`, `firewall`.
    pub word: String,
    pub egress: bool,
    /// ICMP rules can name a type and code.
    pub icmp_types: bool,
    /// Protocols besides tcp/udp/icmp: `all`, numbers.
    pub any_protocol: bool,
    /// Without `any_protocol`: the protocols an `all` rule is made of
    /// instead (DigitalOcean: tcp, udp and icmp); other IP protocols are
    /// then not carried, and the plan says so. Empty: `all` is not carried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all_as: Vec<String>,
    pub peers: Vec<PeerKind>,
    /// Who an outbound rule can name, when fewer than `peers` (Compute
    /// Engine's egress rules take destination ranges only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_peers: Option<Vec<PeerKind>>,
    /// Rules per set and direction, when limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rules: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_one_line() {
        let rule = Rule {
            direction: Direction::In,
            protocol: "tcp".into(),
            ports: Some(PortRange { from: 22, to: 22 }),
            peer: Peer::Cidr("0.0.0.0/0".into()),
            description: None,
        };
        assert_eq!(rule.to_string(), "in tcp 22 from 0.0.0.0/0");
        let range = Rule {
            ports: Some(PortRange {
                from: 6000,
                to: 7000,
            }),
            peer: Peer::Group("web".into()),
            ..rule.clone()
        };
        assert_eq!(range.to_string(), "in tcp 6000-7000 from group web");
        let out = Rule {
            direction: Direction::Out,
            protocol: "all".into(),
            ports: None,
            ..rule
        };
        assert_eq!(out.to_string(), "out all to 0.0.0.0/0");
    }

    #[test]
    fn a_configuration_round_trips_through_toml() {
        let config = InstanceConfig {
            networks: vec![Attachment {
                network: "web-net".into(),
                subnet: None,
                cidr: Some("10.1.1.0/24".into()),
                private_address: Some("10.1.1.10".into()),
                public: true,
            }],
            rule_sets: vec![RuleSet {
                name: "web".into(),
                id: None,
                rules: vec![Rule {
                    direction: Direction::In,
                    protocol: "tcp".into(),
                    ports: Some(PortRange { from: 80, to: 80 }),
                    peer: Peer::ServiceAccount("a@b".into()),
                    description: Some("http".into()),
                }],
            }],
            ssh_keys: vec![KeyRef {
                name: "ops".into(),
                public_key: Some("ssh-ed25519 AAAA ops".into()),
                fingerprint: None,
            }],
            user_data: Some("#cloud-config\n".into()),
            unread: Vec::new(),
        };
        let text = toml::to_string(&config).unwrap();
        let back: InstanceConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config);
    }
}
