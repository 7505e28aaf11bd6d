//! DigitalOcean inventory of images, SSH keys, VPCs and firewalls against
//! the fake: every listing paged with `per_page=200` and `links.pages.next`
//! to its end, each mapped into the neutral fields, and the fake's VPC and
//! firewall objects checked against the API v2 reference (no recorded
//! answer exists for them in the fixtures).

use altishift_testkit::do_fake;

use altishift::cloud::Cloud;
use altishift::cloud::digitalocean::{DigitalOceanCloud, DoClient, Pacing};
use altishift::inventory::{Access, SshKey};
use altishift::secret::Secret;
use do_fake::{FakeDo, TOKEN};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn cloud(fake: &FakeDo) -> DigitalOceanCloud {
    let mut client = DoClient::new(Some(&fake.base), Secret::new(TOKEN.into())).unwrap();
    client.pacing = Pacing {
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        attempts: 6,
        poll_every: Duration::from_millis(10),
        poll_deadline: Duration::from_secs(60),
    };
    DigitalOceanCloud::new("do-test", client)
}

/// The `GET` requests for `path`, asserting they walked pages 1..=n with
/// `per_page=200`.
fn assert_pages(fake: &FakeDo, path: &str, n: usize) {
    let pages: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.split('?').next() == Some(&format!("GET {path}")))
        .collect();
    assert_eq!(pages.len(), n, "{path}: {pages:#?}");
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.contains(&format!("page={}", i + 1)) && page.contains("per_page=200"),
            "{page}"
        );
    }
}

#[tokio::test]
async fn images_keys_vpcs_and_firewalls_are_read_to_the_last_page() {
    let fake = FakeDo::start().await;
    fake.add_many(450);
    let droplet = fake.add_droplet("db", 25, "203.0.113.7");
    let volume = fake.attach_volume(droplet, "pgdata", 100);
    fake.throttle(1);
    let inventory = cloud(&fake).inventory().await.unwrap();

    // Two public distribution images and 450 private snapshots.
    assert_eq!(inventory.images.len(), 452);
    assert_eq!(inventory.images.iter().filter(|i| i.private).count(), 450);
    let ubuntu = &inventory.images[0];
    assert_eq!(ubuntu.id, "119192817");
    assert_eq!(ubuntu.os.as_deref(), Some("Ubuntu 24.04 (LTS) x64"));
    assert_eq!(ubuntu.region.as_deref(), Some("fra1"));
    assert_eq!(ubuntu.size.map(|b| b.0), Some(2_360_000_000));
    assert!(!ubuntu.private);
    assert_eq!(inventory.images[451].name, "snap-449");

    assert_eq!(
        inventory.ssh_keys,
        vec![SshKey {
            id: "7717".into(),
            name: "ops".into(),
            fingerprint: Some("f5:d1:78:ed:28:72:5f:e1:ac:94:fd:1f:e0:a3:48:6d".into()),
        }]
    );

    assert_eq!(inventory.networks.len(), 451);
    assert!(inventory.networks.iter().all(|n| n.kind == "vpc"));
    let default = &inventory.networks[0];
    assert_eq!(default.name, "default-fra1");
    assert_eq!(default.cidr.as_deref(), Some("10.114.0.0/20"));
    assert_eq!(default.region.as_deref(), Some("fra1"));
    assert_eq!(inventory.networks[450].name, "vpc-449");

    assert_eq!(inventory.firewalls.len(), 451);
    let web = &inventory.firewalls[0];
    assert_eq!(web.name, "web");
    assert_eq!(
        web.rules,
        vec![
            "in tcp 443 from 0.0.0.0/0",
            "in tcp 22 from 0.0.0.0/0,::/0",
            "in icmp all from tag:monitoring",
            "out tcp all to 0.0.0.0/0,::/0",
            "out udp 53 to 0.0.0.0/0",
        ]
    );
    assert_eq!(
        inventory.firewalls[450].rules[0],
        "in tcp 471 from 0.0.0.0/0"
    );

    assert_eq!(
        inventory.access,
        Some(Access {
            identity: "ops@example.com".into(),
            expires_at: None,
            renews: false,
        })
    );
    let db = inventory.instance("db").unwrap();
    assert_eq!(db.platform.os.as_deref(), Some("Ubuntu 24.04 (LTS) x64"));
    assert_eq!(db.disks.len(), 2);
    assert_eq!(db.disks[1].id, volume);
    assert_eq!(db.disks[1].virtual_size.0, 100 << 30);

    // 452, 451 and 451 items: three pages each; one throttled request retried.
    assert_pages(&fake, "/v2/images", 3);
    assert_pages(&fake, "/v2/vpcs", 3);
    assert_pages(&fake, "/v2/firewalls", 3);
    assert_pages(&fake, "/v2/account/keys", 1);
    assert!(fake.mutating().is_empty(), "{:?}", fake.mutating());
}

fn keys(object: &Value) -> BTreeSet<String> {
    object.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// No recording exists for VPCs and firewalls: the fake's objects carry
/// exactly the fields the API v2 reference lists, with its types.
#[tokio::test]
async fn vpcs_and_firewalls_have_the_reference_fields() {
    let fake = FakeDo::start().await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", fake.base))
            .bearer_auth(TOKEN)
            .send()
    };
    let vpcs: Value = get("/v2/vpcs").await.unwrap().json().await.unwrap();
    let vpc = &vpcs["vpcs"][0];
    assert_eq!(
        keys(vpc),
        set(&[
            "id",
            "urn",
            "name",
            "description",
            "region",
            "ip_range",
            "default",
            "created_at"
        ])
    );
    assert!(vpc["id"].is_string() && vpc["default"].is_boolean());
    assert_eq!(
        vpc["urn"],
        format!("do:vpc:{}", vpc["id"].as_str().unwrap())
    );
    assert!(vpcs["links"].is_object() && vpcs["meta"]["total"] == 1);

    let firewalls: Value = get("/v2/firewalls").await.unwrap().json().await.unwrap();
    let firewall = &firewalls["firewalls"][0];
    assert_eq!(
        keys(firewall),
        set(&[
            "id",
            "status",
            "created_at",
            "pending_changes",
            "name",
            "droplet_ids",
            "tags",
            "inbound_rules",
            "outbound_rules"
        ])
    );
    assert!(["waiting", "succeeded", "failed"].contains(&firewall["status"].as_str().unwrap()));
    for (list, peers) in [
        ("inbound_rules", "sources"),
        ("outbound_rules", "destinations"),
    ] {
        for rule in firewall[list].as_array().unwrap() {
            assert_eq!(keys(rule), set(&["protocol", "ports", peers]), "{rule}");
            assert!(["tcp", "udp", "icmp"].contains(&rule["protocol"].as_str().unwrap()));
            assert!(rule["ports"].is_string(), "{rule}");
            let allowed = set(&[
                "addresses",
                "droplet_ids",
                "load_balancer_uids",
                "kubernetes_ids",
                "tags",
            ]);
            assert!(keys(&rule[peers]).is_subset(&allowed), "{rule}");
        }
    }
    // per_page above the reference's maximum is refused, as the API does.
    let too_many = get("/v2/firewalls?per_page=201").await.unwrap();
    assert_eq!(too_many.status(), 400);
}
