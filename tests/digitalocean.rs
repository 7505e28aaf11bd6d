//! DigitalOcean against a faithful API fake and moto's S3 as staging:
//! paginated inventory with 429 backoff, recorded shapes, a refused token
//! that is never echoed, no change before approval, and a lab → DigitalOcean
//! migration whose imported image (fetched by the fake, without credentials,
//! from the staged object's URL) is byte-identical to the source disk.

use altishift_testkit::do_fake;
use altishift_testkit::do_moto;
use altishift_testkit::sshd;

use altishift::cloud::digitalocean::{DigitalOceanCloud, DoClient, Pacing, Staging};
use altishift::cloud::lab::LabCloud;
use altishift::cloud::{Cloud, CloudError, Target, TargetDiskSpec};
use altishift::engine::{self, EngineOptions, RunReport};
use altishift::inventory::{DiskFormat, Inventory};
use altishift::plan::build::{Request, Side, Throughput, build};
use altishift::plan::{Approved, Plan, approval};
use altishift::secret::Secret;
use altishift::units::Bytes;
use do_fake::{FakeDo, TOKEN};
use do_moto::Moto;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const BUCKET: &str = "altishift-staging";

fn fast() -> Pacing {
    Pacing {
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        attempts: 6,
        poll_every: Duration::from_millis(10),
        poll_deadline: Duration::from_secs(120),
    }
}

fn client(fake: &FakeDo, token: &str) -> DoClient {
    let mut client = DoClient::new(Some(&fake.base), Secret::new(token.into())).unwrap();
    client.pacing = fast();
    client
}

fn cloud(fake: &FakeDo, moto: Option<&Moto>, staging_dir: &Path) -> DigitalOceanCloud {
    let mut cloud =
        DigitalOceanCloud::new("do-test", client(fake, TOKEN)).with_jurisdiction(Some("DE".into()));
    if let Some(moto) = moto {
        cloud = cloud.with_staging(Staging::new(
            &moto.endpoint,
            "us-east-1",
            BUCKET,
            Secret::new("testing".into()),
            Secret::new("testing".into()),
            staging_dir,
        ));
    }
    cloud
}

#[tokio::test]
async fn inventory_reads_every_page_and_backs_off_on_429() {
    let fake = FakeDo::start().await;
    fake.add_droplets("web", 450, "203.0.113.5");
    fake.throttle(2);
    let cloud = cloud(&fake, None, Path::new("/nonexistent"));
    let inventory = cloud.inventory().await.unwrap();
    assert_eq!(inventory.instances.len(), 450);
    assert_eq!(inventory.instances[449].name, "web-449");
    assert_eq!(inventory.sizes.len(), 5);
    // Listed as the API lists them: nyc1 first.
    assert_eq!(inventory.regions[0].name, "nyc1");
    assert_eq!(inventory.region("fra1").unwrap().jurisdiction, "DE");
    assert_eq!(inventory.region("nyc1").unwrap().jurisdiction, "US");
    let pages: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /v2/droplets"))
        .collect();
    // Two throttled attempts, then pages 1, 2 and 3 with per_page=200.
    assert_eq!(pages.len(), 5, "{pages:#?}");
    for (n, page) in pages[2..].iter().enumerate() {
        assert!(
            page.contains(&format!("page={}", n + 1)) && page.contains("per_page=200"),
            "{page}"
        );
    }
    assert_eq!(
        cloud
            .client()
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert!(fake.mutating().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_refused_clearly_and_never_echoed() {
    let fake = FakeDo::start().await;
    let secret = "dop_v1_wrong_token_do_not_print";
    let cloud = DigitalOceanCloud::new("do-test", client(&fake, secret));
    let err = cloud.inventory().await.unwrap_err();
    assert!(matches!(err, CloudError::Auth(_)), "{err}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("Unable to authenticate you"), "{text}");
    assert!(text.contains("request req-"), "{text}");
    assert!(!text.contains(secret), "the token leaked: {text}");
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/digitalocean")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every key the recorded answer has that the fake serves has the same JSON
/// type; the fake serves no key absent from the recording except the newer
/// fields the v2 reference documents.
fn same_shape(served: &Value, recorded: &Value, extra_ok: &[&str], context: &str) {
    let (Value::Object(served), Value::Object(recorded)) = (served, recorded) else {
        panic!("{context}: not two objects");
    };
    for (key, value) in served {
        match recorded.get(key) {
            Some(model) if !model.is_null() && !value.is_null() => assert_eq!(
                std::mem::discriminant(value),
                std::mem::discriminant(model),
                "{context}.{key}: {value} vs recorded {model}"
            ),
            Some(_) => {}
            None => assert!(
                extra_ok.contains(&key.as_str()),
                "{context}: served key '{key}' is in neither the recording nor the reference list"
            ),
        }
    }
}

#[tokio::test]
async fn served_answers_have_the_recorded_shapes() {
    let fake = FakeDo::start().await;
    fake.add_droplets("db", 1, "203.0.113.7");
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", fake.base))
            .bearer_auth(TOKEN)
            .send()
    };
    let droplets: Value = get("/v2/droplets").await.unwrap().json().await.unwrap();
    let recorded = fixture("list_nodes_page_1.json");
    same_shape(
        &droplets["droplets"][0],
        &recorded["droplets"][0],
        &["volume_ids"],
        "droplet",
    );
    same_shape(&droplets, &recorded, &[], "droplets page");
    let sizes: Value = get("/v2/sizes").await.unwrap().json().await.unwrap();
    same_shape(
        &sizes["sizes"][0],
        &fixture("list_sizes.json")["sizes"][0],
        &["available"],
        "size",
    );
    let regions: Value = get("/v2/regions").await.unwrap().json().await.unwrap();
    same_shape(
        &regions["regions"][0],
        &fixture("list_locations.json")["regions"][0],
        &[],
        "region",
    );
    let images: Value = get("/v2/images").await.unwrap().json().await.unwrap();
    let recorded = fixture("list_images.json");
    // Newer fields the v2 reference documents on every image.
    let newer = [
        "type",
        "size_gigabytes",
        "description",
        "tags",
        "status",
        "error_message",
    ];
    for image in images["images"].as_array().unwrap() {
        same_shape(image, &recorded["images"][0], &newer, "image");
    }
    same_shape(&images, &recorded, &["links"], "images page");
    let keys: Value = get("/v2/account/keys").await.unwrap().json().await.unwrap();
    same_shape(
        &keys["ssh_keys"][0],
        &fixture("list_key_pairs.json")["ssh_keys"][0],
        &[],
        "ssh key",
    );
    let account: Value = get("/v2/account").await.unwrap().json().await.unwrap();
    same_shape(
        &account["account"],
        &fixture("_v2_account.json")["account"],
        &["status"],
        "account",
    );
    let denied = http
        .get(format!("{}/v2/account", fake.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let denied: Value = denied.json().await.unwrap();
    same_shape(
        &denied,
        &fixture("_v2_account_UNAUTHORIZED.json"),
        &["request_id"],
        "401",
    );
    let missing: Value = get("/v2/images/1").await.unwrap().json().await.unwrap();
    same_shape(&missing, &fixture("error.json"), &["request_id"], "404");
}

struct Lab {
    root: PathBuf,
}

impl Lab {
    fn new(dir: &Path) -> Lab {
        let root = dir.join("lab");
        altishift::cloud::lab::generate::init(
            &root,
            altishift::cloud::lab::generate::LabScale::Small,
        )
        .unwrap();
        Lab { root }
    }

    fn east(&self) -> Arc<dyn Cloud> {
        Arc::new(
            LabCloud::open("lab-east", &self.root.join("lab-east"), Some("DE".into())).unwrap(),
        )
    }

    fn disk_of(&self, name: &str) -> (PathBuf, DiskFormat) {
        let dir = self.root.join("lab-east");
        let text =
            std::fs::read_to_string(dir.join("instances").join(format!("{name}.toml"))).unwrap();
        let manifest: altishift::cloud::lab::manifest::InstanceManifest =
            toml::from_str(&text).unwrap();
        (dir.join(&manifest.disks[0].file), manifest.disks[0].format)
    }
}

fn plan(source: &Inventory, target: &Inventory, select: &str) -> Approved {
    let s = Side {
        cloud: "lab-east",
        provider: "lab".into(),
        jurisdiction: Some("DE".into()),
        inventory: source,
    };
    let t = Side {
        cloud: "do-test",
        provider: "digitalocean".into(),
        jurisdiction: Some("DE".into()),
        inventory: target,
    };
    let request = Request {
        select: vec![select.into()],
        target_region: Some("fra1".into()),
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 100_000_000,
        basis: "test".into(),
    };
    let mut plan: Plan = build(&s, &t, &request, &throughput, "tester@localhost").unwrap();
    let short = plan.hash().short().to_string();
    // Lossy: DigitalOcean gets no firewall, key or user-data from altishift yet.
    let acks = approval::Acks {
        cross_border: true,
        lossy: true,
    };
    approval::approve_with(&mut plan, &short, acks, "tester@localhost").unwrap();
    approval::verify(plan).unwrap()
}

async fn objects(moto: &Moto) -> Vec<String> {
    let listed = moto
        .s3()
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

async fn run(
    approved: Approved,
    source: Arc<dyn Cloud>,
    target: Arc<dyn Cloud>,
    state: &Path,
) -> RunReport {
    let handle = engine::start(approved, source, target, state, EngineOptions::default()).unwrap();
    let mut events = handle.events;
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let outcome = handle.done.await.unwrap().unwrap();
    drain.abort();
    outcome.report
}

fn files_contain(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_contain(&path, needle));
        } else if std::fs::read(&path)
            .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_to_digitalocean_is_byte_identical_with_the_mapped_size() {
    let fake = FakeDo::start().await;
    let moto = Moto::start();
    moto.s3()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    moto.start_recording().await;
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::new(dir.path());
    let target = Arc::new(cloud(&fake, Some(&moto), &dir.path().join("do-staging")));
    let source_inventory = lab.east().inventory().await.unwrap();
    let target_inventory = target.inventory().await.unwrap();
    let approved = plan(&source_inventory, &target_inventory, "monitor");
    let size = approved.plan().items[0].target_size.clone();
    // Browsing and planning changed nothing, in the API or in the bucket.
    assert!(fake.mutating().is_empty(), "{:?}", fake.mutating());
    assert_eq!(moto.mutating().await, Vec::<String>::new());
    assert!(objects(&moto).await.is_empty());

    moto.start_recording().await;
    let state = dir.path().join("state");
    let report = run(approved, lab.east(), target.clone(), &state).await;
    // The object was public-read for the import only: one ACL change to
    // open the window after the upload, one to close it before cleanup.
    let writes = moto.mutating().await;
    let acl: Vec<usize> = (0..writes.len())
        .filter(|&i| writes[i].contains("?acl"))
        .collect();
    assert_eq!(acl.len(), 2, "{writes:#?}");
    assert!(
        writes[..acl[0]].iter().any(|w| w.contains("uploadId=")),
        "{writes:#?}"
    );
    assert!(
        writes[acl[1]..].iter().any(|w| w.starts_with("DELETE ")),
        "{writes:#?}"
    );
    assert!(report.ok, "{report:#?}");
    let disk = &report.disks[0];
    assert_eq!(disk.source_digest, disk.target_digest);

    let fetched = {
        let s = fake.state.lock().unwrap();
        let droplet = s
            .droplets
            .iter()
            .find(|d| d["name"] == report.instances[0].instance || d["status"] == "active")
            .expect("a droplet was created")
            .clone();
        assert_eq!(droplet["status"], "active");
        assert_eq!(droplet["size_slug"], size.as_str());
        let image_id = droplet["image"]["id"].as_u64().unwrap();
        s.fetched
            .get(&image_id)
            .expect("the fake fetched the image")
            .clone()
    };
    let posted: Vec<String> = fake.mutating();
    // The key and the cloud firewall of the plan come before the image.
    assert_eq!(
        posted,
        vec![
            "POST /v2/account/keys",
            "POST /v2/firewalls",
            "POST /v2/images",
            "POST /v2/droplets"
        ],
        "{posted:?}"
    );
    // The importer got a plain URL ending in the file name and fetched it
    // with no credentials: HEAD, then GET, both answered.
    let (url, asked) = {
        let s = fake.state.lock().unwrap();
        let (id, url) = s.import_urls.iter().next().expect("an import");
        (url.clone(), s.import_requests[id].clone())
    };
    assert!(
        url.starts_with(&format!("{}/{BUCKET}/altishift/monitor-", moto.endpoint))
            && url.ends_with(".qcow2")
            && !url.contains('?'),
        "{url}"
    );
    assert_eq!(asked, vec!["HEAD 200", "GET 200"]);
    // After the import the URL answers nobody.
    let after = reqwest::Client::new().head(&url).send().await.unwrap();
    assert!(after.status() == 403 || after.status() == 404, "{after:?}");

    // What the fake downloaded is the source disk, once converted back.
    let got = dir.path().join("fetched.qcow2");
    std::fs::write(&got, &fetched).unwrap();
    let (source_disk, format) = lab.disk_of("monitor");
    let compare = std::process::Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", format.qemu_name()])
        .arg(&got)
        .arg(&source_disk)
        .output()
        .unwrap();
    assert!(
        compare.status.success(),
        "the imported image differs: {}",
        String::from_utf8_lossy(&compare.stdout)
    );
    // The staged object is gone, and the token is in no file we wrote.
    assert!(objects(&moto).await.is_empty(), "staging left behind");
    // (The state folder and staging: what this tool writes; the lab's
    // sparse multi-GiB disks are not ours to scan.)
    for folder in ["state", "do-staging"] {
        let leaked = files_contain(&dir.path().join(folder), TOKEN);
        assert!(leaked.is_empty(), "the token is in {leaked:?}");
    }
}

#[tokio::test]
async fn a_disk_over_100_gb_is_refused_before_any_request() {
    let fake = FakeDo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let moto_less = cloud(&fake, None, dir.path());
    let spec = TargetDiskSpec {
        name: "big".into(),
        virtual_size: Bytes::gib(200),
        format: DiskFormat::Qcow2,
        region: "fra1".into(),
        boot: true,
        resume: None,
        platform: Default::default(),
    };
    let plan = plan_for_capability();
    let err = moto_less
        .open_disk_writer(&plan.capability(), &spec)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("100 GB"), "{err}");
    assert!(fake.requests().is_empty());
}

fn plan_for_capability() -> Approved {
    let lab_dir = tempfile::tempdir().unwrap();
    let lab = Lab::new(lab_dir.path());
    let inventory = futures::executor::block_on(lab.east().inventory()).unwrap();
    let mut target = inventory.clone();
    target.cloud = "do-test".into();
    plan(
        &inventory,
        &Inventory {
            regions: vec![altishift::inventory::Region {
                name: "fra1".into(),
                jurisdiction: "DE".into(),
            }],
            ..target
        },
        "monitor",
    )
}

/// DigitalOcean as a source: no snapshot download exists, so the droplet's
/// disk is read over SSH at its public address (here, a real sshd).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_droplet_reads_over_ssh_into_the_lab_byte_identical() {
    use altishift::cloud::digitalocean::SshAccess;
    use std::os::unix::fs::FileExt;
    let fake = FakeDo::start().await;
    let sshd = sshd::Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    // The droplet's "/dev/vda": a 1 GiB sparse file with some data.
    let device = dir.path().join("vda.raw");
    let file = std::fs::File::create(&device).unwrap();
    file.set_len(1 << 30).unwrap();
    for block in [0u64, 1, 100, 2047] {
        file.write_all_at(&vec![(block % 200) as u8 + 1; 1 << 19], block << 19)
            .unwrap();
    }
    drop(file);
    fake.add_droplet("db", 1, "127.0.0.1");
    let source = Arc::new(cloud(&fake, None, dir.path()).with_ssh(SshAccess {
        user: Some(sshd.user()),
        options: sshd.options_for_address(true),
        sudo: false,
        device: Some(device.display().to_string()),
        volume_dir: None,
        agent_binary: Some(sshd::agent_binary()),
    }));
    let lab = Lab::new(dir.path());
    let west: Arc<dyn Cloud> = Arc::new(
        LabCloud::open("lab-west", &lab.root.join("lab-west"), Some("DE".into())).unwrap(),
    );
    let source_inventory = source.inventory().await.unwrap();
    let target_inventory = west.inventory().await.unwrap();
    let s = Side {
        cloud: "do-test",
        provider: "digitalocean".into(),
        jurisdiction: Some("DE".into()),
        inventory: &source_inventory,
    };
    let t = Side {
        cloud: "lab-west",
        provider: "lab".into(),
        jurisdiction: Some("DE".into()),
        inventory: &target_inventory,
    };
    let request = Request {
        select: vec!["db".into()],
        ..Request::default()
    };
    let throughput = Throughput {
        bytes_per_second: 100_000_000,
        basis: "test".into(),
    };
    let mut plan: Plan = build(&s, &t, &request, &throughput, "tester@localhost").unwrap();
    let short = plan.hash().short().to_string();
    // Lossy: DigitalOcean gets no firewall, key or user-data from altishift yet.
    let acks = approval::Acks {
        cross_border: true,
        lossy: true,
    };
    approval::approve_with(&mut plan, &short, acks, "tester@localhost").unwrap();
    let approved = approval::verify(plan).unwrap();
    let report = run(approved, source.clone(), west, &dir.path().join("state")).await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.disks[0].blocks_sent, 4, "{:?}", report.disks[0]);
    let text = std::fs::read_to_string(lab.root.join("lab-west/instances/db.toml")).unwrap();
    let manifest: altishift::cloud::lab::manifest::InstanceManifest =
        toml::from_str(&text).unwrap();
    let copy = lab.root.join("lab-west").join(&manifest.disks[0].file);
    assert!(std::fs::read(&copy).unwrap() == std::fs::read(&device).unwrap());
    // Reading changed nothing at DigitalOcean.
    assert!(fake.mutating().is_empty(), "{:?}", fake.mutating());

    // Cutover: the source droplet is shut down with the run's capability.
    let droplet = &source_inventory.instances[0].id;
    let cap = plan_for_capability().capability();
    // (The run revoked its provider's token: a new one holds it again.)
    let revoked = source.shutdown_droplet(&cap, droplet).await.unwrap_err();
    assert!(matches!(revoked, CloudError::Auth(_)), "{revoked}");
    assert!(fake.mutating().is_empty());
    let fresh = cloud(&fake, None, dir.path());
    fresh.shutdown_droplet(&cap, droplet).await.unwrap();
    let s = fake.state.lock().unwrap();
    let d = s
        .droplets
        .iter()
        .find(|d| d["id"] == droplet.parse::<u64>().unwrap())
        .unwrap();
    assert_eq!(d["status"], "off");
    drop(s);
    assert_eq!(
        fake.mutating(),
        vec![format!("POST /v2/droplets/{droplet}/actions")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_to_digitalocean_carries_the_firewall_tags_key_and_user_data() {
    use altishift::cloud::lab::config::{OPS_KEY, user_data};
    let fake = FakeDo::start().await;
    let moto = Moto::start();
    moto.s3()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::new(dir.path());
    let target = Arc::new(cloud(&fake, Some(&moto), &dir.path().join("do-staging")));
    let source_inventory = lab.east().inventory().await.unwrap();
    let target_inventory = target.inventory().await.unwrap();
    let approved = plan(&source_inventory, &target_inventory, "web-1");
    // What the plan showed before approval: the firewall with every rule
    // (`out all` made of tcp, udp and icmp, said as lossy), the key under a
    // new name (the account has an `ops` of its own), tags, user-data.
    let c = approved.plan().items[0].configuration.clone();
    let short = approved.plan().hash().short().to_string();
    assert!(fake.mutating().is_empty(), "{:?}", fake.mutating());
    // The account has a firewall `web` of its own: ours is named apart.
    assert_eq!(c.firewalls[0].name, "web-lab-east");
    assert!(c.firewalls[0].rules.iter().all(|r| r.target.is_some()));
    assert!(
        c.lossy
            .iter()
            .any(|l| l.contains("out all") && l.contains("tcp, udp, icmp")),
        "{:?}",
        c.lossy
    );
    assert_eq!(c.ssh_keys[0].name, "ops-lab-east");
    assert_eq!(c.target_tags().get("env:lab").map(String::as_str), Some(""));

    let report = run(
        approved,
        lab.east(),
        target.clone(),
        &dir.path().join("state"),
    )
    .await;
    assert!(report.ok, "{report:#?}");
    let checks = &report.instances[0].checks;
    for name in ["firewalls", "tags"] {
        let check = checks.iter().find(|c| c.name == name);
        assert!(check.is_some_and(|c| c.passed), "{name}: {checks:#?}");
    }

    let s = fake.state.lock().unwrap();
    let tag = format!("altishift-{short}-web-lab-east");
    let fw = s
        .firewalls
        .iter()
        .find(|f| f["tags"] == serde_json::json!([tag]))
        .expect("the plan's cloud firewall");
    assert_eq!(fw["name"], "web-lab-east");
    let ports: Vec<&str> = fw["inbound_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["sources"]["addresses"], serde_json::json!(["0.0.0.0/0"]));
            r["ports"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ports, vec!["22", "80", "443"]);
    let out: Vec<(&str, Option<&str>)> = fw["outbound_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["protocol"].as_str().unwrap(), r["ports"].as_str()))
        .collect();
    assert_eq!(
        out,
        vec![("tcp", Some("0")), ("udp", Some("0")), ("icmp", None)]
    );
    let key = s
        .keys
        .iter()
        .find(|k| k["name"] == "ops-lab-east")
        .expect("the key was imported");
    assert_eq!(key["public_key"], OPS_KEY);
    let droplet = s
        .droplets
        .iter()
        .find(|d| d["name"] == "web-1")
        .expect("the droplet");
    let id = droplet["id"].as_u64().unwrap();
    let tags: Vec<&str> = droplet["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tags.contains(&tag.as_str()) && tags.contains(&"env:lab"),
        "{tags:?}"
    );
    assert_eq!(s.droplet_keys[&id], vec![key["id"].clone()]);
    assert_eq!(s.user_data.get(&id), Some(&user_data("web-1")));
}
