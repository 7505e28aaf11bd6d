//! Deploying on AWS (moto): RegisterImage carries the source's boot mode,
//! architecture and ENA support (or the stated defaults when the source did
//! not tell), RunInstances lands in the profile's subnet with its security
//! groups (ids, or names looked up before anything is made).
//!
//! moto difference made explicit: its RegisterImage keeps only the name and
//! description, so what we asked for is read from moto's request recorder
//! (what reached the server), and the AMI moto describes afterwards is
//! checked only for what moto keeps.

use altishift_testkit::aws_kit as kit;
use altishift_testkit::moto;

use altishift::cloud::aws::AwsCloud;
use altishift::cloud::lab::LabCloud;
use altishift::cloud::{Capability, Cloud, CloudError, DeploySpec, Target, WrittenDisk};
use altishift::inventory::{DiskFormat, Platform};
use altishift::secret::Secret;
use altishift::units::Bytes;
use kit::*;
use moto::{ACCESS_KEY, Moto, Recorded, SECRET_KEY};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A VPC with a subnet and two security groups, made with the raw SDK.
struct Network {
    vpc: String,
    subnet: String,
    ssh: String,
    web: String,
}

async fn network(ec2: &aws_sdk_ec2::Client) -> Network {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.20.0.0/16")
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
        .cidr_block("10.20.1.0/24")
        .availability_zone("us-east-1b")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_string();
    let mut groups = Vec::new();
    for name in ["altishift-ssh", "altishift-web"] {
        let id = ec2
            .create_security_group()
            .group_name(name)
            .description(name)
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string();
        groups.push(id);
    }
    Network {
        vpc,
        subnet,
        ssh: groups[0].clone(),
        web: groups[1].clone(),
    }
}

async fn target(moto: &Moto, subnet: &str, groups: &[&str]) -> AwsCloud {
    let mut p = profile(moto, "us-east-1");
    p.subnet = Some(subnet.into());
    p.security_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    let mut prompt = |label: &str| {
        Some(Secret::new(if label.contains("secret") {
            SECRET_KEY.into()
        } else {
            ACCESS_KEY.into()
        }))
    };
    let mut cloud = AwsCloud::from_profile("aws-target", &p, &mut prompt)
        .await
        .unwrap();
    cloud.poll.first = Duration::from_millis(5);
    cloud.poll.max = Duration::from_millis(50);
    cloud
}

/// An approval's capability (a lab plan; the deploy below uses only its hash).
async fn capability(cloud: &AwsCloud, dir: &std::path::Path) -> Capability {
    let root = lab(dir);
    let east = LabCloud::open("lab-east", &root.join("lab-east"), None).unwrap();
    let source = east.inventory().await.unwrap();
    let name = source.instances[0].name.clone();
    let plan = plan_between(
        ("lab-east", "lab", &source),
        ("aws-target", "aws", &cloud.inventory().await.unwrap()),
        &[&name],
        None,
    );
    approve(plan).capability()
}

fn spec(name: &str, snapshot: &str, platform: Platform) -> DeploySpec {
    DeploySpec {
        name: name.into(),
        size: "t3.micro".into(),
        region: "us-east-1".into(),
        disks: vec![WrittenDisk {
            id: snapshot.into(),
            format: DiskFormat::Raw,
            virtual_size: Bytes::gib(1),
        }],
        tags: BTreeMap::new(),
        platform,
        config: Default::default(),
    }
}

fn the_call<'a>(requests: &'a [Recorded], action: &str) -> &'a BTreeMap<String, String> {
    let calls: Vec<&Recorded> = requests.iter().filter(|r| r.action == action).collect();
    assert_eq!(calls.len(), 1, "one {action}: {requests:#?}");
    &calls[0].params
}

fn param<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str)
}

#[tokio::test]
async fn the_image_carries_the_platform_and_the_instance_lands_in_the_profiles_subnet_and_groups() {
    let moto = Moto::start();
    let (ec2, ebs) = sdk(&moto, "us-east-1");
    let net = network(&ec2).await;
    let snapshot = seed_snapshot(&ebs, 7, &[0, 1], &[]).await;
    // One group by id, one by name (looked up in the subnet's VPC).
    let cloud = target(&moto, &net.subnet, &[&net.ssh, "altishift-web"]).await;
    let dir = tempfile::tempdir().unwrap();
    let cap = capability(&cloud, dir.path()).await;

    let graviton = Platform {
        os: Some("Linux/UNIX".into()),
        boot_mode: Some("uefi".into()),
        architecture: Some("arm64".into()),
        ena: Some(true),
    };
    moto.start_recording();
    let deployed = cloud
        .deploy(&cap, &spec("web-arm", &snapshot, graviton))
        .await
        .unwrap();
    let requests = moto.requests();
    let register = the_call(&requests, "RegisterImage");
    assert_eq!(param(register, "Architecture"), Some("arm64"));
    assert_eq!(param(register, "BootMode"), Some("uefi"));
    assert_eq!(param(register, "EnaSupport"), Some("true"));
    assert_eq!(param(register, "VirtualizationType"), Some("hvm"));
    assert_eq!(
        param(register, "BlockDeviceMapping.1.Ebs.SnapshotId"),
        Some(snapshot.as_str())
    );
    let run = the_call(&requests, "RunInstances");
    assert_eq!(param(run, "SubnetId"), Some(net.subnet.as_str()));
    assert_eq!(param(run, "SecurityGroupId.1"), Some(net.ssh.as_str()));
    assert_eq!(param(run, "SecurityGroupId.2"), Some(net.web.as_str()));
    let lookup = the_call(&requests, "DescribeSecurityGroups");
    assert_eq!(param(lookup, "Filter.1.Name"), Some("group-name"));
    assert_eq!(param(lookup, "Filter.1.Value.1"), Some("altishift-web"));
    assert_eq!(param(lookup, "Filter.2.Value.1"), Some(net.vpc.as_str()));

    // The instance, described afterwards: in the subnet, with both groups.
    let described = ec2
        .describe_instances()
        .instance_ids(&deployed.id)
        .send()
        .await
        .unwrap();
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(instance.subnet_id(), Some(net.subnet.as_str()));
    assert_eq!(instance.vpc_id(), Some(net.vpc.as_str()));
    let groups: BTreeSet<&str> = instance
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, BTreeSet::from([net.ssh.as_str(), net.web.as_str()]));
    assert_eq!(
        instance.state().unwrap().name().unwrap().as_str(),
        "running"
    );
    // The AMI, described afterwards: ours, available (moto keeps no more).
    let image = instance.image_id().unwrap();
    let images = ec2.describe_images().image_ids(image).send().await.unwrap();
    let ami = &images.images()[0];
    assert!(
        ami.name().unwrap().starts_with("altishift-web-arm-"),
        "{ami:?}"
    );
    assert_eq!(ami.state().unwrap().as_str(), "available");

    // The address validation reaches it at: the public IP, else the private.
    assert_eq!(
        deployed.address.as_deref(),
        instance
            .public_ip_address()
            .or(instance.private_ip_address())
    );
    assert!(deployed.address.is_some());
    serial_console_validation(&moto, &cloud, &deployed).await;
}

/// Validation reads the console with GetConsoleOutput (`Latest`, base64
/// decoded). moto answers every instance with one fixed kernel log (no
/// login prompt, see moto/ec2/responses/general.py): a marker from that log
/// passes, the default login-prompt marker does not, with the console's
/// tail as evidence. A port check without an address is not available.
async fn serial_console_validation(
    moto: &Moto,
    cloud: &AwsCloud,
    deployed: &altishift::cloud::DeployedInstance,
) {
    use altishift::engine::outside_checks::{self, Timing};
    let quick = Timing {
        deadline: Duration::from_millis(600),
        attempt: Duration::from_secs(5),
        interval: Duration::from_millis(200),
    };
    moto.start_recording();
    let check = outside_checks::serial(cloud, deployed, r"Linux version \S+", quick).await;
    assert!(check.passed, "{check:?}");
    assert_eq!(check.name, "serial console");
    assert!(
        check.detail.starts_with("`Linux version 2.6.16-xenU`"),
        "{check:?}"
    );
    assert!(
        check
            .evidence
            .iter()
            .any(|l| l == "Kernel command line: root=/dev/sda1 ro 4"),
        "{check:?}"
    );
    let requests = moto.requests();
    let read = the_call(&requests, "GetConsoleOutput");
    assert_eq!(param(read, "Latest"), Some("true"));
    assert_eq!(param(read, "InstanceId"), deployed.id.rsplit('/').next());

    let login = altishift::guest::rehearse::DEFAULT_EXPECT;
    let check = outside_checks::serial(cloud, deployed, login, quick).await;
    assert!(!check.passed, "{check:?}");
    assert!(check.detail.contains("not seen in 0.6s"), "{check:?}");
    assert_eq!(
        check.evidence.last().map(String::as_str),
        Some("Enabling fast FPU save and restore... done.")
    );

    let nowhere = altishift::cloud::DeployedInstance {
        address: None,
        ..deployed.clone()
    };
    let plan = altishift::plan::checks::OutsideChecks {
        ports: vec![22],
        ..Default::default()
    };
    let checks = outside_checks::run(cloud, &nowhere, &plan).await;
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(checks[0].passed, "{checks:?}");
    assert!(
        checks[0].detail.starts_with("not available: "),
        "{checks:?}"
    );
}

#[tokio::test]
async fn a_source_that_did_not_tell_gets_the_stated_defaults_and_a_wrong_group_stops_before_any_change()
 {
    let moto = Moto::start();
    let (ec2, ebs) = sdk(&moto, "us-east-1");
    let net = network(&ec2).await;
    let snapshot = seed_snapshot(&ebs, 8, &[3], &[]).await;
    let cloud = target(&moto, &net.subnet, &[&net.web]).await;
    let dir = tempfile::tempdir().unwrap();
    let cap = capability(&cloud, dir.path()).await;

    // A lab disk: no platform known → x86_64, legacy BIOS, ENA on.
    moto.start_recording();
    cloud
        .deploy(&cap, &spec("from-lab", &snapshot, Platform::default()))
        .await
        .unwrap();
    let requests = moto.requests();
    let register = the_call(&requests, "RegisterImage");
    assert_eq!(param(register, "Architecture"), Some("x86_64"));
    assert_eq!(param(register, "BootMode"), Some("legacy-bios"));
    assert_eq!(param(register, "EnaSupport"), Some("true"));
    let run = the_call(&requests, "RunInstances");
    assert_eq!(param(run, "SecurityGroupId.1"), Some(net.web.as_str()));
    assert!(
        requests
            .iter()
            .all(|r| r.action != "DescribeSecurityGroups"),
        "ids need no lookup"
    );

    // A group name that matches nothing: an error before RegisterImage.
    let wrong = target(&moto, &net.subnet, &["no-such-group"]).await;
    moto.start_recording();
    let err = wrong
        .deploy(&cap, &spec("nowhere", &snapshot, Platform::default()))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::NotFound(_)), "{err}");
    assert!(
        err.to_string().contains("security group 'no-such-group'"),
        "{err}"
    );
    assert!(err.to_string().contains(&net.vpc), "{err}");
    let requests = moto.requests();
    for action in ["RegisterImage", "RunInstances"] {
        assert!(
            requests.iter().all(|r| r.action != action),
            "{action} sent despite the bad group"
        );
    }
}
