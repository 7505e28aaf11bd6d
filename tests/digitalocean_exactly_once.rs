//! Creates that may have acted are never blindly repeated: the DigitalOcean
//! fake makes the droplet, then the answer is lost (a 500); the client looks
//! for what it made (by name and tags) before asking again, and exactly one
//! droplet exists afterwards.

use altishift_testkit::do_fake;

use altishift::cloud::digitalocean::{DoClient, Pacing, target};
use altishift::cloud::{DeploySpec, WrittenDisk};
use altishift::inventory::DiskFormat;
use altishift::secret::Secret;
use altishift::units::Bytes;
use do_fake::{FakeDo, TOKEN};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test]
async fn a_droplet_create_whose_answer_is_lost_leaves_exactly_one_droplet() {
    let fake = FakeDo::start().await;
    fake.add_many(1);
    let image = {
        let s = fake.state.lock().unwrap();
        s.images.iter().find(|i| i["name"] == "snap-0").unwrap()["id"].to_string()
    };
    let mut client = DoClient::new(Some(&fake.base), Secret::new(TOKEN.into())).unwrap();
    client.pacing = Pacing {
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        attempts: 6,
        poll_every: Duration::from_millis(10),
        poll_deadline: Duration::from_secs(60),
    };
    // A droplet of the same name from an earlier migration stays untouched.
    fake.add_droplet("app", 25, "203.0.113.9");
    let spec = DeploySpec {
        name: "app".into(),
        size: "s-1vcpu-1gb".into(),
        region: "fra1".into(),
        disks: vec![WrittenDisk {
            id: image,
            format: DiskFormat::Qcow2,
            virtual_size: Bytes::gib(1),
        }],
        tags: BTreeMap::from([("altishift:source".into(), "lab-east/app".into())]),
        platform: Default::default(),
        config: Default::default(),
    };
    fake.lose_answer("POST /v2/droplets");
    let deployed = target::deploy(&client, &spec).await.unwrap();
    let creates = fake
        .mutating()
        .into_iter()
        .filter(|r| r == "POST /v2/droplets")
        .count();
    assert_eq!(
        creates,
        1,
        "the create was sent again: {:?}",
        fake.requests()
    );
    let s = fake.state.lock().unwrap();
    let apps: Vec<&serde_json::Value> = s.droplets.iter().filter(|d| d["name"] == "app").collect();
    assert_eq!(apps.len(), 2, "one earlier droplet and exactly one new one");
    let made = apps
        .iter()
        .find(|d| d["tags"].as_array().is_some_and(|t| !t.is_empty()))
        .unwrap();
    assert_eq!(made["id"].to_string(), deployed.id);
}
