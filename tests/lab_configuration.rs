//! Configuration from one lab cloud to the other through the real CLI:
//! the target lab's manifests carry the firewalls (a rule naming another
//! migrated group names the new group), the key, the network, a public
//! address and the user-data, read back through the lab provider.

use altishift_testkit::cli as support;

use altishift::cloud::Cloud;
use altishift::cloud::lab::LabCloud;
use altishift::inventory::config::Peer;
use support::{Lab, text};

#[tokio::test]
async fn lab_to_lab_carries_rules_keys_network_and_user_data() {
    let lab = Lab::new();
    let out = lab.plan(&["web-1", "legacy-app"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("LOSSY"), "{}", text(&out));
    assert!(lab.approve().status.success());
    let out = lab.apply(&[]);
    assert!(out.status.success(), "{}", text(&out));

    let west = LabCloud::open("lab-west", &lab.root().join("lab-west"), None).unwrap();
    let inventory = west.inventory().await.unwrap();
    let web = inventory.instance("web-1").expect("web-1 deployed");
    let config = &web.config;
    // lab-west has its own `web` firewall and `ops` key: ours are renamed.
    assert_eq!(config.rule_sets.len(), 1);
    assert_eq!(config.rule_sets[0].name, "web-lab-east");
    let rules: Vec<String> = config.rule_sets[0]
        .rules
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        rules,
        vec![
            "in tcp 22 from 0.0.0.0/0",
            "in tcp 80 from 0.0.0.0/0",
            "in tcp 443 from 0.0.0.0/0",
            "out all to 0.0.0.0/0",
        ]
    );
    assert_eq!(config.ssh_keys[0].name, "ops-lab-east");
    assert_eq!(
        config.ssh_keys[0].public_key.as_deref(),
        Some(altishift::cloud::lab::config::OPS_KEY)
    );
    assert_eq!(config.networks[0].network, "web-net");
    assert!(config.networks[0].public, "web-1 had a public address");
    assert_eq!(
        config.user_data.as_deref(),
        Some(altishift::cloud::lab::config::user_data("web-1").as_str())
    );
    assert_eq!(web.tags.get("role").map(String::as_str), Some("web"));

    let legacy = inventory
        .instance("legacy-app")
        .expect("legacy-app deployed");
    let set = &legacy.config.rule_sets[0];
    assert_eq!(set.name, "legacy-lab-east");
    assert!(
        set.rules
            .iter()
            .any(|r| r.peer == Peer::Group("web-lab-east".into())),
        "the rule names the migrated web group: {set:?}"
    );
    assert!(!legacy.config.networks[0].public);
    // The new objects are in the target's lists, beside its own.
    for name in ["web", "web-lab-east", "legacy-lab-east"] {
        assert!(
            inventory.firewalls.iter().any(|f| f.name == name),
            "{name} missing"
        );
    }
}

/// The plan's names on lab-west for web-1's firewall and key, for
/// legacy-app's firewall, and the plan's tag.
fn names(lab: &Lab) -> ([String; 3], (String, String)) {
    let plan: altishift::plan::Plan =
        toml::from_str(&std::fs::read_to_string(lab.plan_path()).unwrap()).unwrap();
    let item = |name: &str| {
        &plan
            .items
            .iter()
            .find(|i| i.instance_name == name)
            .unwrap()
            .configuration
    };
    let tag = (
        "altishift:plan".to_string(),
        plan.hash().short().to_string(),
    );
    (
        [
            item("web-1").firewalls[0].name.clone(),
            item("web-1").ssh_keys[0].name.clone(),
            item("legacy-app").firewalls[0].name.clone(),
        ],
        tag,
    )
}

/// A firewall a run made and was killed before journaling, and another
/// plan's firewall under the name this plan gives legacy-app's (made last:
/// it names web's), so the run stops after the key and web's firewall,
/// before any instance.
fn stage_a_killed_run(lab: &Lab) -> ([String; 3], std::path::PathBuf) {
    use altishift::cloud::lab::config;
    let out = lab.plan(&["web-1", "legacy-app"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(lab.approve().status.success());
    let (names, tag) = names(lab);
    let plan: altishift::plan::Plan =
        toml::from_str(&std::fs::read_to_string(lab.plan_path()).unwrap()).unwrap();
    let web = plan
        .items
        .iter()
        .find(|i| i.instance_name == "web-1")
        .unwrap();
    let rules: Vec<_> = web.configuration.firewalls[0]
        .rules
        .iter()
        .filter_map(|r| r.target.clone())
        .collect();
    let west = lab.root().join("lab-west");
    config::create_firewall(&west, &tag, &names[0], &rules).unwrap();
    let other = ("altishift:plan".to_string(), "0ther".to_string());
    config::create_firewall(&west, &other, &names[2], &[]).unwrap();
    (names, west)
}

/// Waits until the failed run's engine process has exited (it exits after
/// telling its viewer). Its run lock goes first, with the run; the error it
/// prints into `engine.log` comes after, so the process is what to wait for.
fn wait_for_engine_exit(lab: &Lab) {
    let run_dir = support::only_run_dir(lab);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("engine.json")).unwrap())
            .unwrap();
    let pid = info["pid"].as_u64().expect("engine.json names its pid");
    // Gone, or a zombie waiting to be reaped: either way it wrote its last.
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    let start = std::time::Instant::now();
    while altishift::engine::lock::RunLock::held(&run_dir) || running() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the engine never exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_rerun_reuses_the_firewall_a_killed_run_made_and_what_it_journaled() {
    let lab = Lab::new();
    let ([web, key, legacy], west) = stage_a_killed_run(&lab);
    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    wait_for_engine_exit(&lab);
    let log = std::fs::read_to_string(support::only_run_dir(&lab).join("engine.log")).unwrap();
    assert!(
        log.contains(&format!("firewall '{legacy}' already exists")),
        "{log}"
    );
    // This plan's leftover firewall was taken over and journaled.
    let journal =
        std::fs::read_to_string(support::only_run_dir(&lab).join("journal.jsonl")).unwrap();
    assert!(
        journal.contains(&format!("\"config/firewall/{web}\"")),
        "{journal}"
    );
    std::fs::remove_file(west.join("firewalls").join(format!("{legacy}.toml"))).unwrap();

    let out = lab.apply(&[]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    for line in [
        format!("reused firewall {web}"),
        format!("reused ssh key {key}"),
        format!("created firewall {legacy}"),
    ] {
        assert!(said.contains(&line), "no '{line}' in:\n{said}");
    }
    let run_dir = support::only_run_dir(&lab);
    let report = altishift::engine::RunReport::load(&run_dir.join("report.json")).unwrap();
    let created: Vec<(&str, &str, &str)> = report
        .created
        .iter()
        .map(|c| (c.kind.as_str(), c.name.as_str(), c.state.as_str()))
        .collect();
    for wanted in [
        ("firewall", web.as_str(), "in place"),
        ("firewall", legacy.as_str(), "in place"),
        ("ssh key", key.as_str(), "in place"),
        ("instance", "web-1", "in place"),
    ] {
        assert!(created.contains(&wanted), "{wanted:?} not in {created:?}");
    }
    let md = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(md.contains("## Created on the target"), "{md}");
    assert!(
        md.contains(&format!(
            "| firewall | {web} | `{web}` | lab-west | in place |"
        )),
        "{md}"
    );
}

#[test]
fn cleanup_removes_the_firewalls_and_keys_of_the_run_and_those_no_journal_names() {
    use altishift::cloud::lab::config;
    let lab = Lab::new();
    let ([web, key, legacy], west) = stage_a_killed_run(&lab);
    let out = lab.apply(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    wait_for_engine_exit(&lab);
    // Another one made and never journaled, after the journaled ones.
    let (_, tag) = names(&lab);
    config::create_firewall(&west, &tag, "stray", &[]).unwrap();

    let plan = lab.plan_path();
    let out = lab.run(&["cleanup", plan.to_str().unwrap()]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let file = |folder: &str, name: &str| west.join(folder).join(format!("{name}.toml"));
    for (folder, name) in [("firewalls", &web), ("keys", &key)] {
        assert!(!file(folder, name).exists(), "{name} left:\n{said}");
    }
    assert!(
        said.contains(&format!("cleanup firewall {web}: deleted\n")),
        "{said}"
    );
    assert!(
        said.contains(&format!("cleanup sshkey {key}: deleted\n")),
        "{said}"
    );
    assert!(!file("firewalls", "stray").exists(), "{said}");
    assert!(
        said.contains("cleanup firewall stray: deleted (found by the plan's tag"),
        "{said}"
    );
    assert!(
        file("firewalls", &legacy).exists(),
        "another plan's firewall was removed"
    );
    assert!(file("firewalls", "web").exists(), "lab-west's own firewall");
    assert!(file("keys", "ops").exists(), "lab-west's own key");
}
