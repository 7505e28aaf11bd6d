//! Configuration across clouds in the matrix (issue 12): the AWS → Compute
//! Engine and Compute Engine → AWS pairs' sources carry rules that translate
//! and one that cannot (so approval needs `--ack-lossy`), plus a tag or a
//! label; after the apply the target's API is read back directly (moto with
//! the raw SDK, the Compute Engine fake's state) for what was planned.

use super::{AWS_REGION, Kind, Peers};
use crate::aws_kit;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Tag, UserIdGroupPair};
use serde_json::{Value, json};

/// The port the translatable rule opens, per pair (one source per pair).
pub fn open_port(source: Kind) -> u16 {
    match source {
        Kind::Aws => 8443,
        _ => 8080,
    }
}

/// The port of the rule that cannot be carried (its peer has no
/// equivalent on the target).
pub fn lossy_port(source: Kind) -> u16 {
    match source {
        Kind::Aws => 9443,
        _ => 9090,
    }
}

/// Whether this pair carries the configuration the checks below expect.
pub fn covered(source: Kind, target: Kind) -> bool {
    matches!(
        (source, target),
        (Kind::Aws, Kind::Gcp) | (Kind::Gcp, Kind::Aws)
    )
}

/// Seeds the source instance's configuration (before planning).
pub async fn seed(peers: &Peers, source: Kind, instance: &str) {
    match source {
        Kind::Aws => seed_aws(peers, instance).await,
        Kind::Gcp => seed_gce(peers, instance),
        _ => {}
    }
}

/// A security group `<instance>-web` letting in the open port from
/// anywhere and the lossy port from a bastion group the instance is not
/// in (which the plan leaves behind), attached beside the default group;
/// and a tag `Env=Prod`, which Compute Engine labels take lowercased.
async fn seed_aws(peers: &Peers, instance: &str) {
    let (ec2, _) = aws_kit::sdk(&peers.moto, AWS_REGION);
    let id = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:Name").values(instance).build())
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    let group = |name: String| {
        let ec2 = ec2.clone();
        async move {
            ec2.create_security_group()
                .group_name(&name)
                .description("matrix")
                .send()
                .await
                .unwrap()
                .group_id()
                .unwrap()
                .to_string()
        }
    };
    let web = group(format!("{instance}-web")).await;
    let bastion = group(format!("{instance}-bastion")).await;
    let tcp = |port: u16| {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(i32::from(port))
            .to_port(i32::from(port))
    };
    ec2.authorize_security_group_ingress()
        .group_id(&web)
        .ip_permissions(
            tcp(open_port(Kind::Aws))
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .ip_permissions(
            tcp(lossy_port(Kind::Aws))
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(&bastion).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let described = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let vm = &described.reservations()[0].instances()[0];
    let mut groups: Vec<String> = vm
        .security_groups()
        .iter()
        .chain(vm.network_interfaces().iter().flat_map(|n| n.groups()))
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    groups.dedup();
    groups.push(web);
    ec2.modify_instance_attribute()
        .instance_id(&id)
        .set_groups(Some(groups))
        .send()
        .await
        .unwrap();
    ec2.create_tags()
        .resources(&id)
        .tags(Tag::builder().key("Env").value("Prod").build())
        .send()
        .await
        .unwrap();
}

/// A network tag `<instance>-app` and a label `env=prod` on the VM; a
/// firewall on its network letting in the open port from anywhere to that
/// tag, and one letting in the lossy port from the tag `lb` (EC2 security
/// groups name groups, not network tags).
fn seed_gce(peers: &Peers, instance: &str) {
    let mut s = peers.gcp.fake.state();
    let tag = format!("{instance}-app");
    let network = s.link("global/networks/default");
    let mut rules = vec![
        json!({"name": format!("{instance}-open"), "network": network, "direction": "INGRESS",
            "priority": 1000, "sourceRanges": ["0.0.0.0/0"], "targetTags": [tag],
            "allowed": [{"IPProtocol": "tcp", "ports": [open_port(Kind::Gcp).to_string()]}]}),
        json!({"name": format!("{instance}-from-lb"), "network": network,
            "direction": "INGRESS", "priority": 1000, "sourceTags": ["lb"],
            "targetTags": [tag],
            "allowed": [{"IPProtocol": "tcp", "ports": [lossy_port(Kind::Gcp).to_string()]}]}),
    ];
    for rule in &mut rules {
        let name = rule["name"].as_str().unwrap().to_string();
        rule["kind"] = "compute#firewall".into();
        rule["id"] = s.new_id().into();
        rule["creationTimestamp"] = "2026-12-04T05:34:15.077-07:00".into();
        rule["disabled"] = false.into();
        rule["selfLink"] = s.link(&format!("global/firewalls/{name}")).into();
    }
    s.firewalls.extend(rules);
    let vm = s
        .instances
        .iter_mut()
        .map(|(_, vm)| vm)
        .find(|vm| vm["name"] == instance)
        .unwrap();
    vm["tags"]["items"] = json!([tag]);
    vm["labels"] = json!({"env": "prod"});
}

/// Reads the target back: the instance carries the rule that translates
/// (on a firewall / security group this run made, tagged with the plan),
/// not the lossy one, and the tag or label. `plan_lines` is the plan as
/// printed: it must have shown both rules and the lossy mark.
pub async fn check(
    peers: &Peers,
    source: Kind,
    target: Kind,
    target_name: &str,
    plan_lines: &str,
) -> Result<(), String> {
    let (open, lossy) = (open_port(source), lossy_port(source));
    for wanted in [
        format!("tcp {open}"),
        format!("tcp {lossy}"),
        "LOSSY".into(),
    ] {
        if !plan_lines.contains(&wanted) {
            return Err(format!("the plan did not show '{wanted}':\n{plan_lines}"));
        }
    }
    let found = match target {
        Kind::Gcp => gce_rules(peers, target_name)?,
        Kind::Aws => aws_rules(peers, target_name).await?,
        _ => return Ok(()),
    };
    let (ports, tags) = found;
    if !ports.contains(&(open, "0.0.0.0/0".to_string())) {
        return Err(format!(
            "no tcp {open} from 0.0.0.0/0 on the target: {ports:?}"
        ));
    }
    if ports.iter().any(|(p, _)| *p == lossy) {
        return Err(format!(
            "the lossy rule (tcp {lossy}) was carried: {ports:?}"
        ));
    }
    if tags.get("env").map(String::as_str) != Some("prod") {
        return Err(format!("no env=prod on the target instance: {tags:?}"));
    }
    Ok(())
}

type Found = (
    Vec<(u16, String)>,
    std::collections::BTreeMap<String, String>,
);

/// The ingress (port, source range) pairs of the firewalls reaching the
/// instance by its network tags, and its labels.
fn gce_rules(peers: &Peers, name: &str) -> Result<Found, String> {
    let vm = peers
        .gcp
        .fake
        .instance(name)
        .ok_or_else(|| format!("no instance {name} on Compute Engine"))?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    let tags = strings(&vm["tags"]["items"]);
    let mut ports = Vec::new();
    for f in &peers.gcp.fake.state().firewalls {
        let ours = strings(&f["targetTags"]).iter().any(|t| tags.contains(t));
        if !ours || f["direction"] == "EGRESS" {
            continue;
        }
        if !f["description"]
            .as_str()
            .is_some_and(|d| d.contains("altishift:plan="))
        {
            return Err(format!(
                "{} reaches the instance but is not ours",
                f["name"]
            ));
        }
        for allowed in f["allowed"].as_array().into_iter().flatten() {
            for p in strings(&allowed["ports"]) {
                let first = p.split('-').next().unwrap_or_default();
                for range in strings(&f["sourceRanges"]) {
                    ports.push((first.parse().unwrap_or(0), range));
                }
            }
        }
    }
    let labels = vm["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok((ports, labels))
}

/// The ingress (port, CIDR) pairs of the security groups on the instance
/// deployed for `name` (found by the tag the run writes), and its tags.
async fn aws_rules(peers: &Peers, name: &str) -> Result<Found, String> {
    let (ec2, _) = aws_kit::sdk(&peers.moto, AWS_REGION);
    let all = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:Name").values(name).build())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let vm = all
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.tags().iter().any(|t| t.key() == Some("altishift:source")))
        .ok_or_else(|| format!("no instance {name} deployed on moto"))?;
    // moto lists a launch's groups on its interface (AWS on both).
    let ids: Vec<String> = vm
        .security_groups()
        .iter()
        .chain(vm.network_interfaces().iter().flat_map(|n| n.groups()))
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    let groups = ec2
        .describe_security_groups()
        .set_group_ids(Some(ids))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut ports = Vec::new();
    for g in groups.security_groups() {
        if !g.tags().iter().any(|t| t.key() == Some("altishift:plan")) {
            return Err(format!(
                "{:?} is on the instance but is not ours",
                g.group_name()
            ));
        }
        for p in g.ip_permissions() {
            for r in p.ip_ranges() {
                let port = p.from_port().and_then(|p| u16::try_from(p).ok());
                ports.push((port.unwrap_or(0), r.cidr_ip().unwrap_or("").to_string()));
            }
        }
    }
    let tags = vm
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    Ok((ports, tags))
}
