//! Configuration from the lab to AWS (moto), through the real CLI: the
//! plan shows the security group, key, tags, user-data and subnet before
//! approval; apply creates them before the instance; everything is read
//! back with the raw AWS SDK (independent of the code under test). A plan
//! whose rules cannot all be carried is refused without --ack-lossy.

use altishift_testkit::aws_kit as kit;
use altishift_testkit::cli;
use altishift_testkit::moto;

use altishift::engine::report::RunReport;
use altishift::plan::Plan;
use base64::Engine as _;
use kit::*;
use moto::Moto;

const REGION: &str = "eu-central-1";

/// A lab with an AWS target on moto, and a subnet named like the lab's web
/// network (so the plan maps it by name).
async fn setup(moto: &Moto) -> (cli::Lab, aws_sdk_ec2::Client, String) {
    let lab = cli::Lab::new();
    let config = lab.config();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[clouds.aws-target]\nprovider = \"aws\"\nregion = \"{REGION}\"\nendpoint = \"{}\"\ninsecure_endpoint = true\napi_key = \"env:ALTI_TEST_AWS_KEY\"\nsecret_key = \"env:ALTI_TEST_AWS_SECRET\"\n",
        moto.endpoint
    ));
    std::fs::write(&config, text).unwrap();
    let (ec2, _) = sdk(moto, REGION);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.40.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.40.1.0/24")
        .availability_zone("eu-central-1a")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Subnet)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value("web-net")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_string();
    (lab, ec2, subnet)
}

fn plan(lab: &cli::Lab, select: &str, path: &std::path::Path) -> std::process::Output {
    let mut args = vec![
        "plan",
        "--from",
        "lab-east",
        "--to",
        "aws-target",
        "-o",
        path.to_str().unwrap(),
        "--format",
        "raw",
        "--select",
        select,
    ];
    args.extend(cli::fake_target_checks("aws"));
    altishift(&lab.config(), &args)
}

fn approve(lab: &cli::Lab, path: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let plan: Plan = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let short = plan.hash().short().to_string();
    let mut args = vec![
        "approve",
        path.to_str().unwrap(),
        "--confirm",
        &short,
        "--ack-cross-border",
    ];
    args.extend_from_slice(extra);
    altishift(&lab.config(), &args)
}

#[tokio::test]
async fn lab_to_aws_carries_group_rules_key_tags_user_data_and_subnet() {
    let moto = Moto::start();
    let (lab, ec2, subnet) = setup(&moto).await;
    let path = lab.plan_path();

    // The plan shows each part before approval.
    let out = plan(&lab, "web-1", &path);
    let shown = cli::text(&out);
    assert!(out.status.success(), "{shown}");
    for line in [
        format!("network   web-net (10.1.1.0/24) → {subnet} (same name)"),
        "firewall  web → web".to_string(),
        "rule    in tcp 443 from 0.0.0.0/0 → in tcp 443 from 0.0.0.0/0".to_string(),
        "key       ops → imported as ops".to_string(),
        "import ssh key ops".to_string(),
        "create firewall web".to_string(),
    ] {
        assert!(shown.contains(&line), "plan lacks '{line}':\n{shown}");
    }
    assert!(!shown.contains("LOSSY"), "{shown}");
    let out = approve(&lab, &path, &[]);
    assert!(out.status.success(), "{}", cli::text(&out));

    let out = altishift(&lab.config(), &["apply", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", cli::text(&out));
    let run_dir = std::fs::read_dir(lab.state().join("runs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let report = RunReport::load(&run_dir.join("report.json")).unwrap();
    assert!(report.ok, "{report:#?}");
    let checks: Vec<&str> = report.instances[0]
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for name in [
        "network",
        "public address",
        "firewalls",
        "ssh keys",
        "tags",
        "user-data",
    ] {
        assert!(checks.contains(&name), "no '{name}' check: {checks:?}");
    }
    let instance_id = report.instances[0].target_id.clone().unwrap();

    // Read back with the AWS API.
    let described = ec2
        .describe_instances()
        .instance_ids(&instance_id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(
        instance.subnet_id(),
        Some(subnet.as_str()),
        "the mapped subnet"
    );
    assert_eq!(instance.key_name(), Some("ops"));
    assert!(
        instance.public_ip_address().is_some(),
        "the source had a public address"
    );
    let tags: std::collections::BTreeMap<&str, &str> = instance
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?, t.value()?)))
        .collect();
    assert_eq!(tags.get("env"), Some(&"lab"));
    assert_eq!(tags.get("role"), Some(&"web"));
    assert_eq!(tags.get("altishift:source"), Some(&"lab-east/web-1"));
    // moto difference: the groups of an interface given at launch are listed
    // on the interface, not on the instance (AWS lists them on both).
    let group_id = instance.network_interfaces()[0].groups()[0]
        .group_id()
        .unwrap()
        .to_string();
    let groups = ec2
        .describe_security_groups()
        .group_ids(&group_id)
        .send()
        .await
        .unwrap();
    let group = &groups.security_groups()[0];
    assert_eq!(group.group_name(), Some("web"));
    assert_eq!(group.vpc_id(), instance.vpc_id(), "in the subnet's VPC");
    let mut ingress: Vec<(String, i32, String)> = group
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            p.ip_ranges().iter().map(move |r| {
                (
                    p.ip_protocol().unwrap_or("").to_string(),
                    p.from_port().unwrap_or(-1),
                    r.cidr_ip().unwrap_or("").to_string(),
                )
            })
        })
        .collect();
    ingress.sort();
    let anywhere = "0.0.0.0/0".to_string();
    assert_eq!(
        ingress,
        vec![
            ("tcp".to_string(), 22, anywhere.clone()),
            ("tcp".to_string(), 80, anywhere.clone()),
            ("tcp".to_string(), 443, anywhere.clone()),
        ]
    );
    // The source's "out all to 0.0.0.0/0" is the group's default: kept once.
    let egress: Vec<(&str, &str)> = group
        .ip_permissions_egress()
        .iter()
        .flat_map(|p| {
            p.ip_ranges()
                .iter()
                .map(move |r| (p.ip_protocol().unwrap_or(""), r.cidr_ip().unwrap_or("")))
        })
        .collect();
    assert_eq!(egress, vec![("-1", "0.0.0.0/0")]);
    assert!(
        group
            .tags()
            .iter()
            .any(|t| t.key() == Some("altishift:plan")),
        "the group carries the plan's tag"
    );
    let pairs = ec2
        .describe_key_pairs()
        .key_names("ops")
        .send()
        .await
        .unwrap();
    assert_eq!(pairs.key_pairs().len(), 1, "the key pair was imported");
    let attribute = ec2
        .describe_instance_attribute()
        .instance_id(&instance_id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let user_data = base64::engine::general_purpose::STANDARD
        .decode(attribute.user_data().unwrap().value().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(user_data).unwrap(),
        altishift::cloud::lab::config::user_data("web-1")
    );
}

#[tokio::test]
async fn a_rule_naming_a_group_left_behind_is_lossy_and_needs_ack_lossy() {
    let moto = Moto::start();
    let (lab, ec2, _) = setup(&moto).await;
    let path = lab.plan_path();
    // legacy-app's rule lets in its port from the web group, which this plan
    // leaves behind.
    let out = plan(&lab, "legacy-app", &path);
    let shown = cli::text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("LOSSY"), "{shown}");
    assert!(
        shown.contains("names group 'web', which this plan does not migrate"),
        "{shown}"
    );
    let out = approve(&lab, &path, &[]);
    assert!(!out.status.success(), "approved without --ack-lossy");
    assert!(
        cli::text(&out).contains("--ack-lossy"),
        "{}",
        cli::text(&out)
    );
    let plan: Plan = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(plan.approval.is_none(), "nothing approved");
    let out = approve(&lab, &path, &["--ack-lossy"]);
    assert!(out.status.success(), "{}", cli::text(&out));
    let plan: Plan = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(plan.approval.unwrap().lossy_acknowledged);
    cleanup_removes_a_tagged_group_and_key_pair_no_journal_names(&lab, &ec2, &path).await;
}

#[tokio::test]
async fn a_test_migration_removes_the_group_and_key_it_made() {
    let moto = Moto::start();
    let (lab, ec2, _) = setup(&moto).await;
    let path = lab.plan_path();
    let mut args = vec![
        "plan",
        "--from",
        "lab-east",
        "--to",
        "aws-target",
        "-o",
        path.to_str().unwrap(),
        "--format",
        "raw",
        "--test-migration",
        "--select",
        "web-1",
    ];
    args.extend(cli::fake_target_checks("aws"));
    let out = altishift(&lab.config(), &args);
    assert!(out.status.success(), "{}", cli::text(&out));
    let out = approve(&lab, &path, &[]);
    assert!(out.status.success(), "{}", cli::text(&out));
    let out = altishift(&lab.config(), &["apply", path.to_str().unwrap()]);
    let said = cli::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("firewall"), "{said}");
    let groups = ec2
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("web")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(groups.security_groups().is_empty(), "the group is left");
    let keys = ec2.describe_key_pairs().send().await.unwrap();
    assert!(
        keys.key_pairs().iter().all(|k| k.key_name() != Some("ops")),
        "the key pair is left"
    );
}

/// A run killed after CreateSecurityGroup / ImportKeyPair and before its
/// journal line leaves them behind: `cleanup` finds them by the plan's tag
/// (in the profile's region) and removes them, and nothing of another plan.
/// (Run on the approved plan of the lossy test: one moto, one lab.)
async fn cleanup_removes_a_tagged_group_and_key_pair_no_journal_names(
    lab: &cli::Lab,
    ec2: &aws_sdk_ec2::Client,
    path: &std::path::Path,
) {
    use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
    let plan: Plan = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let short = plan.hash().short().to_string();
    let tagged = |resource: ResourceType, value: &str| {
        TagSpecification::builder()
            .resource_type(resource)
            .tags(Tag::builder().key("altishift:plan").value(value).build())
            .build()
    };
    let group = |name: &'static str, value: &str| {
        ec2.create_security_group()
            .group_name(name)
            .description("altishift: from lab-east/web")
            .tag_specifications(tagged(ResourceType::SecurityGroup, value))
            .send()
    };
    let ours = group("web", &short)
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let theirs = group("web-other", "0ther").await.unwrap();
    let theirs = theirs.group_id().unwrap().to_string();
    ec2.import_key_pair()
        .key_name("ops")
        .public_key_material(aws_sdk_ec2::primitives::Blob::new(
            altishift::cloud::lab::config::OPS_KEY.as_bytes(),
        ))
        .tag_specifications(tagged(ResourceType::KeyPair, &short))
        .send()
        .await
        .unwrap();

    let out = altishift(&lab.config(), &["cleanup", path.to_str().unwrap()]);
    let said = cli::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "cleanup firewall {ours}: deleted (found by the plan's tag"
        )),
        "{said}"
    );
    assert!(
        said.contains("cleanup sshkey ops: deleted (found by the plan's tag"),
        "{said}"
    );
    let left: Vec<String> = ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("group-name")
                .values("web")
                .values("web-other")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    assert_eq!(left, vec![theirs], "ours removed, the other plan's kept");
    let keys = ec2.describe_key_pairs().send().await.unwrap();
    assert!(
        keys.key_pairs().iter().all(|k| k.key_name() != Some("ops")),
        "the key pair is left"
    );
}
