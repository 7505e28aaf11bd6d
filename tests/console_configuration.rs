//! The plan screen's configuration view (`c`): source beside target, lossy
//! lines marked; the approve screen's lossy field, without which a lossy
//! plan is refused.

use altishift::inventory::config::{
    Direction, InstanceConfig, KeyRef, Peer, PortRange, Rule, RuleSet,
};
use altishift::tui::app::Screen;
use altishift::tui::app::inventory::SideId;
use altishift::tui::harness::{Harness, synthetic_inventory};
use altishift::tui::theme::ColorDepth;

fn text(h: &Harness, w: u16, ht: u16) -> String {
    format!("{}", h.render(w, ht).backend())
}

fn rule(port: u16, peer: Peer) -> Rule {
    Rule {
        direction: Direction::In,
        protocol: "tcp".into(),
        ports: Some(PortRange {
            from: port,
            to: port,
        }),
        peer,
        description: None,
    }
}

/// East (a lab) → an AWS target; east's first instance has a web rule set
/// whose ssh rule names a bastion group the plan does not migrate.
fn planned() -> Harness {
    let mut h = Harness::offline("default", ColorDepth::TrueColor);
    let mut east = synthetic_inventory("east", 3, &[("eu-central", "DE")]);
    east.instances[0].config = InstanceConfig {
        rule_sets: vec![RuleSet {
            name: "web".into(),
            id: None,
            rules: vec![
                rule(443, Peer::Cidr("0.0.0.0/0".into())),
                rule(22, Peer::Group("bastion".into())),
            ],
        }],
        ssh_keys: vec![KeyRef {
            name: "ops".into(),
            public_key: Some("ssh-ed25519 AAAA ops".into()),
            fingerprint: None,
        }],
        ..InstanceConfig::default()
    };
    h.load(SideId::Source, "east", "DE", east);
    let mut aws = synthetic_inventory("aws", 2, &[("eu-central-1", "DE")]);
    aws.config_rules = Some(altishift::cloud::aws::config::config_rules());
    h.load_as(SideId::Target, "aws", "aws", "DE", aws);
    h.keys("<Space>p");
    assert_eq!(h.app.screen, Screen::Plan);
    h
}

#[test]
fn c_shows_source_beside_target_with_the_lossy_rule_marked() {
    let mut h = planned();
    let before = text(&h, 120, 40);
    assert!(
        before.contains("⚠ LOSSY: 1 part(s)"),
        "the summary warns: {before}"
    );
    assert!(!before.contains("SOURCE"), "actions first: {before}");
    h.keys("c");
    let shown = text(&h, 120, 40);
    for part in [
        "configuration of",
        "1 lossy",
        "SOURCE",
        "rule set web",
        "firewall web",
        "in tcp 443 from 0.0.0.0/0",
        "in tcp 22 from group bastion",
        "✗ not carried",
        "key ops",
        "imported as ops",
        "names group 'bastion', which this plan does not",
    ] {
        assert!(shown.contains(part), "'{part}' missing:\n{shown}");
    }
    // The key bar names the view; `c` again is the action list.
    assert!(shown.contains("config"), "{shown}");
    h.keys("c");
    assert!(!text(&h, 120, 40).contains("SOURCE"));
}

#[test]
fn a_lossy_plan_is_refused_until_the_lossy_field_says_yes() {
    let mut h = planned();
    let short = h
        .app
        .plan
        .as_ref()
        .map(|p| p.plan.hash().short().to_string())
        .unwrap_or_default();
    h.keys("a");
    assert!(
        text(&h, 120, 40).contains("acknowledge the LOSSY configuration"),
        "{}",
        text(&h, 120, 40)
    );
    h.keys(&format!("{short}<Enter>"));
    assert!(h.app.run.is_none(), "started without the acknowledgement");
    let refused = h.app.approve.refused.clone().unwrap_or_default();
    assert!(refused.contains("--ack-lossy"), "{refused}");
    // The refusal moved the cursor to the lossy field.
    h.keys("yes<Enter>");
    assert!(
        h.app
            .plan
            .as_ref()
            .and_then(|p| p.plan.approval.as_ref())
            .is_some_and(|a| a.lossy_acknowledged),
        "{:?}",
        h.app.approve.refused
    );
}

/// The results screen lists the firewalls and keys the run made on the
/// target (or reused from an interrupted try), beside the deployment.
#[test]
fn the_results_screen_lists_what_was_created_on_the_target() {
    use altishift::block::DiskDigest;
    use altishift::cloud::Check;
    use altishift::engine::report::CreatedReport;
    use altishift::engine::{DiskInfo, Event, Stage};
    use altishift::units::Bytes;
    let mut h = planned();
    h.app.run = Some(Default::default());
    h.app.screen = Screen::Transfers;
    h.engine(Event::RunStarted {
        run_id: "run-config".into(),
        plan_hash: "ab".repeat(32),
        resumed: true,
        run_dir: "/state/runs/run-config".into(),
        disks: vec![DiskInfo {
            disk: "east-0/root".into(),
            virtual_size: Bytes::gib(8),
            allocated: Bytes::mib(600),
        }],
    });
    let created = |kind: &str, name: &str, id: &str, state: &str| {
        Event::Created(CreatedReport {
            kind: kind.into(),
            name: name.into(),
            id: id.into(),
            cloud: "aws".into(),
            state: state.into(),
        })
    };
    h.engine(created("ssh key", "ops", "ops", "reused"));
    h.engine(created("firewall", "web", "sg-0a1b2c3d", "created"));
    h.engine(Event::DiskFinished {
        disk: "east-0/root".into(),
        digest: DiskDigest {
            linear_sha256: "cd".repeat(32),
            blocks: 1600,
        },
    });
    h.engine(Event::Stage {
        disk: "east-0/root".into(),
        stage: Stage::Done,
    });
    h.engine(Event::InstanceDeployed {
        instance: "east-0".into(),
        id: "i-0123456789".into(),
    });
    h.engine(Event::Validated {
        instance: "east-0".into(),
        checks: vec![
            Check::new("firewalls", true, "sg-0a1b2c3d"),
            Check::new("ssh keys", true, "ops"),
        ],
    });
    h.engine(Event::RunFinished {
        ok: true,
        report: "/state/runs/run-config/report.md".into(),
        summary: "1 of 1 disks migrated, 1 of 1 instances validated".into(),
    });
    assert_eq!(h.app.screen, Screen::Report);
    let shown = text(&h, 120, 40);
    for line in [
        "Created on the target",
        "created firewall web → sg-0a1b2c3d on aws",
        "reused ssh key ops → ops on aws",
    ] {
        assert!(shown.contains(line), "'{line}' missing:\n{shown}");
    }
    for (w, ht) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(
            format!("results_configuration_{w}x{ht}"),
            h.render(w, ht).backend()
        );
    }
}
