//! Drives the real app state and runtime without a terminal: key scripts,
//! waiting for answers, drawing into a `TestBackend`. Used by the console's
//! tests and benchmarks; it is the loop minus the terminal.

use crate::config::Config;
use crate::engine::event::Event;
use crate::inventory::{
    Access, Disk, DiskFormat, Firewall, Image, Instance, InstanceState, Inventory, Network, Nic,
    Region, Size, SshKey,
};
use crate::tui::app::inventory::{LoadedCloud, SideId};
use crate::tui::app::{App, AppInit, Clock, Msg};
use crate::tui::runtime::Runtime;
use crate::tui::theme::{ColorDepth, Theme, ThemeSource};
use crate::tui::views;
use crate::units::Bytes;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

pub struct Harness {
    pub app: App,
    pub runtime: Runtime,
    rx: UnboundedReceiver<Msg>,
}

impl Harness {
    /// An app on `config` (first two clouds), theme by name.
    pub fn new(config: Config, state_dir: PathBuf, theme: &str, depth: ColorDepth) -> Harness {
        let source = ThemeSource::default();
        let theme = source
            .load(theme, depth)
            .unwrap_or_else(|_| Theme::default());
        let (runtime, rx) = Runtime::new(config.clone(), state_dir, None);
        // Test harness: a bad [keys] in a test's config is that test's bug.
        #[allow(clippy::expect_used)]
        let keymap = crate::tui::keymap::KeyMap::with_overrides(&config.keys)
            .expect("the test config's [keys] section is valid");
        let app = App::new(AppInit {
            config,
            from: None,
            to: None,
            theme,
            theme_source: source,
            depth,
            throttle: None,
            bandwidth: None,
            operator: "ops@test".into(),
            note: None,
            keymap,
        });
        let mut harness = Harness { app, runtime, rx };
        harness.runtime.perform_all(&mut harness.app);
        harness
    }

    /// An app with no clouds to connect, for screens fed by hand.
    pub fn offline(theme: &str, depth: ColorDepth) -> Harness {
        Harness::new(
            Config::default(),
            PathBuf::from("/nonexistent"),
            theme,
            depth,
        )
    }

    /// Hands a side an inventory as if its (lab) cloud had answered.
    pub fn load(&mut self, side: SideId, cloud: &str, jurisdiction: &str, inventory: Inventory) {
        self.load_as(side, cloud, "lab", jurisdiction, inventory);
    }

    /// The console tests' usual pair: "east", 12 synthetic instances in
    /// Germany, as the source; "west", 6 in the US, as the target.
    pub fn load_east_west(&mut self) {
        self.load(
            SideId::Source,
            "east",
            "DE",
            synthetic_inventory("east", 12, &[("eu-central", "DE")]),
        );
        self.load(
            SideId::Target,
            "west",
            "US",
            synthetic_inventory("west", 6, &[("us-west", "US")]),
        );
    }

    /// The same for a cloud of another provider (its limits apply to plans).
    pub fn load_as(
        &mut self,
        side: SideId,
        cloud: &str,
        provider: &str,
        jurisdiction: &str,
        inventory: Inventory,
    ) {
        self.app.pane_mut(side).connecting(cloud);
        self.send(Msg::Loaded {
            side,
            cloud: cloud.to_string(),
            result: Ok(Box::new(LoadedCloud {
                provider: provider.into(),
                jurisdiction: Some(jurisdiction.into()),
                inventory,
                fingerprint: crate::plan::trust::CloudFingerprint(
                    [("provider".to_string(), provider.to_string())].into(),
                ),
                // Synthetic clouds hold no disks here.
                plans_guests: false,
            })),
        });
    }

    /// Stops the app's clock at `now_unix` (expiry reads the same every
    /// run); the app reads it at its next message.
    pub fn set_clock(&mut self, now_unix: u64) {
        self.app.clock = Clock::Fixed(now_unix);
    }

    /// The pieces the real loop takes.
    pub fn into_parts(self) -> (App, Runtime, UnboundedReceiver<Msg>) {
        (self.app, self.runtime, self.rx)
    }

    pub fn send(&mut self, msg: Msg) {
        self.app.update(msg);
        self.runtime.perform_all(&mut self.app);
    }

    /// Applies the runtime's answers that are already waiting.
    pub fn drain(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.send(msg);
        }
    }

    pub fn engine(&mut self, event: Event) {
        self.send(Msg::Engine(event));
    }

    pub fn key(&mut self, key: KeyEvent) {
        self.send(Msg::Key(key));
    }

    /// Types a key script: plain characters, plus `<Enter> <Esc> <Tab> <Space>
    /// <Up> <Down> <BS> <C-c>`.
    pub fn keys(&mut self, script: &str) {
        let mut rest = script;
        while let Some(c) = rest.chars().next() {
            if c == '<'
                && let Some(end) = rest.find('>')
                && let Some(key) = named_key(&rest[1..end])
            {
                self.key(key);
                rest = &rest[end + 1..];
                continue;
            }
            self.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
            rest = &rest[c.len_utf8()..];
        }
    }

    /// Applies runtime answers until `done` holds; `Err` names what was
    /// awaited, with the app's last status, when `limit` passes first.
    pub async fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        done: impl Fn(&App) -> bool,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        while !done(&self.app) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(msg)) => self.send(msg),
                Ok(None) => return Err(format!("{what}: channel closed")),
                Err(_) => {
                    return Err(format!(
                        "{what}: not reached; status {:?}; log tail {:?}",
                        self.app.status,
                        self.app.log.back()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Draws the current state into a fresh test terminal.
    pub fn render(&self, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
            Ok(terminal) => terminal,
            Err(never) => match never {},
        };
        let drawn = terminal.draw(|frame| views::draw(frame, &self.app));
        if let Err(never) = drawn {
            match never {}
        }
        terminal
    }
}

fn named_key(name: &str) -> Option<KeyEvent> {
    let code = match name {
        "Enter" => KeyCode::Enter,
        "Esc" => KeyCode::Esc,
        "Tab" => KeyCode::Tab,
        "Space" => KeyCode::Char(' '),
        "Up" => KeyCode::Up,
        "Down" => KeyCode::Down,
        "BS" => KeyCode::Backspace,
        "PgDn" => KeyCode::PageDown,
        "C-c" => return Some(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        _ => return None,
    };
    Some(KeyEvent::new(code, KeyModifiers::NONE))
}

/// A made-up inventory of `count` instances: same shape as a lab, any size.
pub fn synthetic_inventory(cloud: &str, count: usize, regions: &[(&str, &str)]) -> Inventory {
    let sizes = vec![
        Size {
            name: "t.small".into(),
            vcpus: 1,
            memory: Bytes::gib(2),
        },
        Size {
            name: "t.medium".into(),
            vcpus: 2,
            memory: Bytes::gib(4),
        },
        Size {
            name: "t.large".into(),
            vcpus: 2,
            memory: Bytes::gib(8),
        },
        Size {
            name: "t.xlarge".into(),
            vcpus: 4,
            memory: Bytes::gib(16),
        },
    ];
    let roles = ["web", "db", "cache", "batch", "api", "queue"];
    let instances = (0..count)
        .map(|n| {
            let role = roles[n % roles.len()];
            let size = &sizes[n % 3];
            let mut tags = BTreeMap::new();
            tags.insert("role".to_string(), role.to_string());
            Instance {
                id: format!("{cloud}-i{n:05}"),
                name: format!("{role}-{n}"),
                state: if n % 5 == 4 {
                    InstanceState::Stopped
                } else {
                    InstanceState::Running
                },
                size: size.name.clone(),
                vcpus: size.vcpus,
                memory: size.memory,
                region: regions[n % regions.len()].0.to_string(),
                disks: (0..(1 + n % 2))
                    .map(|d| Disk {
                        id: if d == 0 {
                            "root".into()
                        } else {
                            format!("data{d}")
                        },
                        device: format!("vd{}", (b'a' + d as u8) as char),
                        format: if d == 0 {
                            DiskFormat::Raw
                        } else {
                            DiskFormat::Qcow2
                        },
                        virtual_size: Bytes::gib(10 + d as u64 * 10),
                        allocated: Some(Bytes::mib(100 + 7 * n as u64 % 900)),
                        boot: d == 0,
                    })
                    .collect(),
                nics: vec![Nic {
                    name: "eth0".into(),
                    network: "net".into(),
                    address: Some(format!("10.0.{}.{}", n / 250, n % 250 + 2)),
                }],
                tags,
                platform: Default::default(),
                config: Default::default(),
            }
        })
        .collect();
    Inventory {
        cloud: cloud.into(),
        provider: "lab".into(),
        instances,
        sizes,
        regions: regions
            .iter()
            .map(|(name, j)| Region {
                name: name.to_string(),
                jurisdiction: j.to_string(),
            })
            .collect(),
        // A lab's: its tags carry over as they are.
        config_rules: Some(crate::cloud::lab::config::config_rules()),
        ..Default::default()
    }
}

/// Credentials for `identity` ending at `expires_at` (Unix seconds).
pub fn synthetic_access(identity: &str, expires_at: Option<u64>) -> Access {
    Access {
        identity: identity.into(),
        expires_at,
        renews: false,
    }
}

/// Gives `inventory` made-up configuration lists: a VPC with two subnets,
/// firewalls, public and private images, and SSH keys.
pub fn with_configuration(mut inventory: Inventory) -> Inventory {
    let cloud = inventory.cloud.clone();
    let region = inventory.regions.first().map(|r| r.name.clone());
    let network = |id: &str, name: &str, kind: &str, cidr: &str, parent: Option<&str>| Network {
        id: format!("{cloud}-{id}"),
        name: name.into(),
        kind: kind.into(),
        cidr: Some(cidr.into()),
        region: parent.and(region.clone()),
        parent: parent.map(|p| format!("{cloud}-{p}")),
    };
    inventory.networks = vec![
        network("vpc1", "main", "vpc", "10.0.0.0/16", None),
        network("sub1", "web", "subnet", "10.0.1.0/24", Some("vpc1")),
        network("sub2", "data", "subnet", "10.0.2.0/24", Some("vpc1")),
    ];
    inventory.firewalls = vec![
        Firewall {
            id: format!("{cloud}-sg1"),
            name: "ssh-admin".into(),
            network: Some(format!("{cloud}-vpc1")),
            rules: vec!["in tcp 22 from 192.0.2.0/24".into()],
        },
        Firewall {
            id: format!("{cloud}-sg2"),
            name: "web-public".into(),
            network: Some(format!("{cloud}-vpc1")),
            rules: vec![
                "in tcp 80 from 0.0.0.0/0".into(),
                "in tcp 443 from 0.0.0.0/0".into(),
                "out all to 0.0.0.0/0".into(),
            ],
        },
    ];
    inventory.images = vec![
        Image {
            id: format!("{cloud}-img1"),
            name: "ubuntu-24.04".into(),
            os: Some("Ubuntu 24.04".into()),
            region: region.clone(),
            size: Some(Bytes::gib(3)),
            private: false,
        },
        Image {
            id: format!("{cloud}-img2"),
            name: "web-golden-2026-11".into(),
            os: Some("Debian 12".into()),
            region,
            size: Some(Bytes::gib(8)),
            private: true,
        },
    ];
    inventory.ssh_keys = vec![
        SshKey {
            id: format!("{cloud}-key1"),
            name: "ops-2026".into(),
            fingerprint: Some("SHA256:q3Jt0Zb9nGZ6cFJ1sUOQd0mR4oT5x2Vb8k7aYwE1pLc".into()),
        },
        SshKey {
            id: format!("{cloud}-key2"),
            name: "deploy".into(),
            fingerprint: None,
        },
    ];
    inventory
}
