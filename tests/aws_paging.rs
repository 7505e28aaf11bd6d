//! Pagination and parsing against RECORDED answers (moto never pages): our
//! real AWS provider, pointed by its profile's `endpoint` at a loopback
//! server (crates/testkit/src/aws_replay.rs) that serves recorded EC2 Query XML
//! pages (tests/fixtures/ec2, see its README) by the `NextToken` sent back,
//! and EBS direct JSON pages by `pageToken`.

use altishift_testkit::aws_replay as replay;

use altishift::cloud::{Cloud, SnapshotRef, Source};
use altishift::inventory::{DiskFormat, InstanceState, Platform};
use altishift::units::Bytes;
use replay::{Answer, Replay, chain, fixture, provider, recorded_account};

/// Ids of the instances on each recorded DescribeInstances page, in order.
const PAGE_1: [&str; 2] = ["i-4382922a", "i-8474834a"];
const PAGE_2: [&str; 2] = ["i-0a1b2c3d4e5f60001", "i-0a1b2c3d4e5f60002"];
const PAGE_3: [&str; 5] = [
    "i-10bbf5fd1dc95aad6",
    "i-41078a04a0b366ff5",
    "i-469926f59a97ed5a2",
    "i-c6329d3cf606cfca9",
    "i-f897ca9c84a209b04",
];

fn tokens_sent(replay: &Replay, action: &str) -> Vec<Option<String>> {
    replay
        .seen_for(action)
        .iter()
        .map(|s| s.token().map(str::to_string))
        .collect()
}

fn expected_tokens(handed: &[String]) -> Vec<Option<String>> {
    std::iter::once(None)
        .chain(handed.iter().cloned().map(Some))
        .collect()
}

#[tokio::test]
async fn every_page_of_every_listing_arrives_in_order_and_each_token_goes_back_as_received() {
    let replay = Replay::start();
    let handed = recorded_account(&replay);
    // Tokens with `+`, `/` and `=` must survive the form encoding both ways.
    assert!(handed.instances[0].ends_with('='), "{:?}", handed.instances);
    assert!(handed.subnets[0].contains('+'), "{:?}", handed.subnets);
    let cloud = provider(&replay.endpoint, "us-east-1").await;
    let inv = cloud.inventory().await.unwrap();

    let ids: Vec<&str> = inv.instances.iter().map(|i| i.id.as_str()).collect();
    let want: Vec<&str> = PAGE_1
        .iter()
        .chain(&PAGE_2)
        .chain(&PAGE_3)
        .copied()
        .collect();
    assert_eq!(ids, want, "every instance of every page, in page order");

    for (action, handed) in [
        ("DescribeInstances", &handed.instances),
        ("DescribeVolumes", &handed.volumes),
        ("DescribeSubnets", &handed.subnets),
        ("DescribeSecurityGroups", &handed.security_groups),
        ("DescribeImages", &handed.images),
    ] {
        assert_eq!(
            tokens_sent(&replay, action),
            expected_tokens(handed),
            "{action}: one request per page, each with the token the page before handed out"
        );
        for seen in replay.seen_for(action) {
            assert!(
                seen.params.contains_key("MaxResults"),
                "{action} asks for big pages: {seen:?}"
            );
        }
    }
    assert_eq!(handed.instances.len(), 2, "three DescribeInstances pages");
    assert_eq!(handed.volumes.len(), 2, "three DescribeVolumes pages");
    // Images of this account only.
    for seen in replay.seen_for("DescribeImages") {
        assert_eq!(seen.params.get("Owner.1").map(String::as_str), Some("self"));
    }

    // Volume sizes come from all three DescribeVolumes pages.
    let gib = |id: &str| {
        inv.instances
            .iter()
            .flat_map(|i| &i.disks)
            .find(|d| d.id == id)
            .map(|d| d.virtual_size)
    };
    assert_eq!(
        gib("vol-0d4e5f6a7b8c90002"),
        Some(Bytes::gib(100)),
        "page 2"
    );
    assert_eq!(gib("vol-826c950a530d91a42"), Some(Bytes::gib(8)), "page 3");

    let networks: Vec<(&str, &str)> = inv
        .networks
        .iter()
        .map(|n| (n.kind.as_str(), n.id.as_str()))
        .collect();
    assert_eq!(
        networks,
        vec![
            ("vpc", "vpc-532135d1"),
            ("vpc", "vpc-61dcd30e"),
            ("subnet", "subnet-ce0e7ce5"),
            ("subnet", "subnet-ce0e7ce6"),
            ("subnet", "subnet-5fd9d412"),
        ]
    );
    let groups: Vec<&str> = inv.firewalls.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(groups, vec!["sg-443d0a12", "sg-5ff8a023", "sg-495a9926"]);
    let images: Vec<&str> = inv.images.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        images,
        vec![
            "ami-57ba933a",
            "ami-85b2a8ae",
            "ami-85b2a8ac",
            "ami-d6fc8b0e0c86e0ce7"
        ]
    );
}

#[tokio::test]
async fn recorded_answers_become_the_neutral_inventory_with_the_right_values() {
    let replay = Replay::start();
    recorded_account(&replay);
    let cloud = provider(&replay.endpoint, "us-east-1").await;
    let inv = cloud.inventory().await.unwrap();
    assert_eq!(
        (inv.cloud.as_str(), inv.provider.as_str()),
        ("aws-recorded", "aws")
    );
    // The recording holds no DescribeInstanceAttribute answer: the call is
    // refused, the inventory stands, and each instance says its user-data
    // could not be read (the plan lists that as not carried, not as "none").
    for instance in &inv.instances {
        assert!(
            instance
                .config
                .unread
                .iter()
                .any(|u| u.starts_with("user-data:")),
            "{:?}",
            instance.config
        );
        assert_eq!(instance.config.user_data, None);
    }

    // Regions: the profile's first, each with its jurisdiction.
    let regions: Vec<(&str, &str)> = inv
        .regions
        .iter()
        .map(|r| (r.name.as_str(), r.jurisdiction.as_str()))
        .collect();
    assert_eq!(
        regions,
        vec![
            ("us-east-1", "US"),
            ("eu-west-1", "IE"),
            ("eu-central-1", "DE")
        ]
    );
    let m5 = inv.size("m5.large").unwrap();
    assert_eq!((m5.vcpus, m5.memory), (2, Bytes::gib(8)));

    // libcloud's capture: a VPC instance with a Name tag.
    let vpc = inv.instance("Test Server 2").unwrap();
    assert_eq!(vpc.id, "i-8474834a");
    assert_eq!(vpc.state, InstanceState::Stopped);
    assert_eq!(
        (vpc.size.as_str(), vpc.region.as_str()),
        ("t1.micro", "us-east-1")
    );
    assert_eq!(vpc.tags.get("Group").map(String::as_str), Some("VPC Test"));
    assert_eq!(vpc.nics.len(), 1);
    assert_eq!(vpc.nics[0].name, "eni-c5dffd83");
    assert_eq!(vpc.nics[0].network, "subnet-5fd9d412");
    assert_eq!(vpc.first_address(), Some("172.16.9.139"));
    assert_eq!(vpc.disks.len(), 1);
    assert_eq!(
        (vpc.disks[0].id.as_str(), vpc.disks[0].device.as_str()),
        ("vol-60124921", "/dev/sda1")
    );
    assert!(vpc.disks[0].boot);
    assert_eq!(
        vpc.platform,
        Platform {
            architecture: Some("x86_64".into()),
            ..Platform::default()
        },
        "a 2014 answer tells the architecture only"
    );
    // No Name tag: the id is the name; the address is on the instance only.
    let classic = inv.instance("i-4382922a").unwrap();
    assert_eq!(classic.name, "i-4382922a");
    assert_eq!(classic.first_address(), Some("10.211.11.211"));
    assert_eq!(classic.size, "m1.small");
    assert_eq!(
        (classic.vcpus, classic.memory),
        (0, Bytes::ZERO),
        "type not in the catalogue"
    );

    // Derived page 2: a Graviton instance and a Windows one.
    let arm = inv.instance("graviton-api").unwrap();
    assert_eq!(arm.state, InstanceState::Running);
    assert_eq!((arm.vcpus, arm.memory), (2, Bytes::gib(8)));
    let disks: Vec<(&str, &str, bool, Bytes)> = arm
        .disks
        .iter()
        .map(|d| (d.id.as_str(), d.device.as_str(), d.boot, d.virtual_size))
        .collect();
    assert_eq!(
        disks,
        vec![
            ("vol-0d4e5f6a7b8c90001", "/dev/xvda", true, Bytes::gib(20)),
            ("vol-0d4e5f6a7b8c90002", "/dev/sdf", false, Bytes::gib(100)),
        ],
        "boot disk first"
    );
    assert!(
        arm.disks
            .iter()
            .all(|d| d.format == DiskFormat::Raw && d.allocated.is_none())
    );
    assert_eq!(
        arm.platform,
        Platform {
            os: Some("Linux/UNIX".into()),
            boot_mode: Some("uefi".into()),
            architecture: Some("arm64".into()),
            ena: Some(true),
        }
    );
    assert_eq!(arm.tags.get("team").map(String::as_str), Some("payments"));
    let win = inv.instance("win-reports").unwrap();
    assert_eq!(
        win.platform,
        Platform {
            os: Some("Windows".into()),
            boot_mode: Some("legacy-bios".into()),
            architecture: Some("x86_64".into()),
            ena: Some(false),
        }
    );
    assert!(win.platform.is_windows());
    assert_eq!((win.vcpus, win.memory), (2, Bytes::gib(1)));

    // moto's recorded page: five running instances, 8 GiB gp2 roots.
    let moto = inv.instance("i-c6329d3cf606cfca9").unwrap();
    assert_eq!(moto.name, "i-c6329d3cf606cfca9");
    assert_eq!(moto.state, InstanceState::Running);
    assert_eq!(moto.size, "m5.large");
    assert_eq!(moto.first_address(), Some("10.111.72.180"));
    assert_eq!(moto.disks[0].virtual_size, Bytes::gib(8));
    // moto names the root /dev/xvda but maps /dev/sda1: a lone disk is the boot disk.
    assert!(moto.disks[0].boot);
    assert_eq!(moto.platform.os.as_deref(), Some("Linux/UNIX"));
    assert_eq!(
        inv.instances.iter().filter(|i| i.name == "src-web").count(),
        3
    );

    // Networks: VPCs with their CIDR; subnets with VPC, CIDR, zone.
    let net = |id: &str| inv.networks.iter().find(|n| n.id == id).unwrap();
    let v = net("vpc-532135d1");
    assert_eq!(
        (
            v.name.as_str(),
            v.kind.as_str(),
            v.cidr.as_deref(),
            v.region.as_deref(),
            v.parent.as_deref()
        ),
        (
            "Test VPC",
            "vpc",
            Some("192.168.51.0/24"),
            Some("us-east-1"),
            None
        )
    );
    let s = net("subnet-ce0e7ce5");
    assert_eq!(
        (
            s.name.as_str(),
            s.kind.as_str(),
            s.cidr.as_deref(),
            s.region.as_deref(),
            s.parent.as_deref()
        ),
        (
            "Test Subnet 1",
            "subnet",
            Some("192.168.51.0/25"),
            Some("us-east-1a"),
            Some("vpc-532135d1")
        )
    );
    // libcloud hand-edited this CIDR (/64 on IPv4): kept as the cloud said it.
    assert_eq!(
        net("subnet-ce0e7ce6").cidr.as_deref(),
        Some("192.168.51.128/64")
    );
    assert_eq!(
        net("subnet-5fd9d412").name,
        "subnet-5fd9d412",
        "no Name tag"
    );

    // Security groups: one line per rule and peer.
    let fw = |id: &str| inv.firewalls.iter().find(|f| f.id == id).unwrap();
    let web = fw("sg-443d0a12");
    assert_eq!(
        (web.name.as_str(), web.network.as_deref()),
        ("WebServers", None)
    );
    assert_eq!(web.rules, vec!["in tcp 80 from 0.0.0.0/0"]);
    assert_eq!(
        fw("sg-5ff8a023").rules,
        vec!["in tcp 6000-7000 from sg-99gh4012"]
    );
    let default = fw("sg-495a9926");
    assert_eq!(default.network.as_deref(), Some("vpc-61dcd30e"));
    assert_eq!(
        default.rules,
        vec![
            "in tcp 22 from 203.0.113.0/24",
            "in tcp 22 from 2001:db8::/32",
            "in icmp 8 from pl-63a5400a",
            "out all to 0.0.0.0/0",
        ]
    );

    // Images: this account's (private), size from their EBS mappings.
    let image = |id: &str| inv.images.iter().find(|i| i.id == id).unwrap();
    let test = image("ami-57ba933a");
    assert_eq!(
        (
            test.name.as_str(),
            test.size,
            test.private,
            test.region.as_deref()
        ),
        ("Test Image", Some(Bytes::gib(10)), true, Some("us-east-1"))
    );
    assert_eq!(image("ami-85b2a8ae").size, Some(Bytes::gib(20)));
    assert_eq!(image("ami-d6fc8b0e0c86e0ce7").name, "altishift-migrated");
    assert_eq!(image("ami-d6fc8b0e0c86e0ce7").size, Some(Bytes::gib(15)));

    // Who we act as: GetCallerIdentity's ARN; profile keys carry no expiry.
    let access = inv.access.unwrap();
    assert_eq!(
        access.identity,
        "arn:aws:iam::123456789098:user/migration-operator"
    );
    assert_eq!(access.expires_at, None);
    assert_eq!(replay.seen_for("GetCallerIdentity").len(), 1);
    // Browsing sent no mutating call.
    for seen in replay.seen() {
        assert!(
            seen.action.starts_with("Describe") || seen.action == "GetCallerIdentity",
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn ebs_block_listing_follows_its_pages() {
    let replay = Replay::start();
    replay.always(
        "DescribeSnapshots",
        Answer::xml(fixture("moto/describe_snapshots.xml")),
    );
    let snapshot = "snap-25393cb76249436ad";
    let key = format!("GET /snapshots/{snapshot}/blocks");
    let handed = chain(
        &replay,
        &key,
        vec![
            Answer::json(fixture("ebs_list_snapshot_blocks_page1.json")),
            Answer::json(fixture("ebs_list_snapshot_blocks_page2.json")),
            Answer::json(fixture("moto/ebs_list_snapshot_blocks.json")),
        ],
    );
    assert_eq!(handed.len(), 2);
    let cloud = provider(&replay.endpoint, "eu-west-1").await;
    let reader = cloud
        .open_disk_reader(&SnapshotRef {
            id: snapshot.into(),
            virtual_size: Bytes::gib(1),
            format: DiskFormat::Raw,
            created_by_run: false,
        })
        .await
        .unwrap();
    // The size comes from DescribeSnapshots (8 GiB), not from the plan.
    assert_eq!(reader.virtual_size(), Bytes::gib(8));
    assert_eq!(
        reader.allocated_blocks().await.unwrap(),
        vec![0..3, 7..8, 4096..4098],
        "blocks of all three pages"
    );
    assert_eq!(tokens_sent(&replay, &key), expected_tokens(&handed));
}
