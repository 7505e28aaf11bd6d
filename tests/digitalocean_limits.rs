//! What DigitalOcean cannot take is refused by `altishift plan` itself,
//! through the real CLI, against the DigitalOcean fake and moto's S3 as the
//! staging bucket: a boot disk of 100 GB or more, a Windows guest, and an
//! instance with data disks. Each refusal exits non-zero, says why on
//! stderr, writes no plan file, and sends no mutating request to the API or
//! to the bucket.

use altishift_testkit::cli;
use altishift_testkit::do_fake;
use altishift_testkit::do_moto;

use altishift::cloud::Target;
use do_fake::{FakeDo, TOKEN};
use do_moto::Moto;
use std::process::Output;

const BUCKET: &str = "altishift-staging";

struct Setup {
    lab: cli::Lab,
    fake: FakeDo,
    moto: Moto,
}

impl Setup {
    /// A lab, the DigitalOcean fake and moto, and a `[clouds.do]` profile
    /// for them in the lab's config (secrets from the environment only).
    async fn new() -> Setup {
        let fake = FakeDo::start().await;
        let moto = tokio::task::spawn_blocking(Moto::start).await.unwrap();
        moto.s3()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let lab = tokio::task::spawn_blocking(cli::Lab::new).await.unwrap();
        let mut config = std::fs::read_to_string(lab.config()).unwrap();
        config.push_str(&format!(
            "\n[clouds.do]\nprovider = \"digitalocean\"\nendpoint = \"{}\"\ninsecure_endpoint = true\n\
             token = \"env:ALTISHIFT_TEST_DO_TOKEN\"\njurisdiction = \"DE\"\n\
             bucket = \"{BUCKET}\"\nstaging_endpoint = \"{}\"\nregion = \"us-east-1\"\n\
             api_key = \"env:ALTISHIFT_TEST_SPACES_KEY\"\n\
             secret_key = \"env:ALTISHIFT_TEST_SPACES_SECRET\"\n",
            fake.base, moto.endpoint
        ));
        std::fs::write(lab.config(), config).unwrap();
        moto.start_recording().await;
        Setup { lab, fake, moto }
    }

    /// `altishift plan --from FROM --to do --select NAME --region fra1 -o plan.toml`.
    async fn plan(&self, from: &str, name: &str) -> Output {
        self.plan_with(from, name, &["--region", "fra1"]).await
    }

    /// The binary on the lab's config, with the profile's secrets in the
    /// environment (where `env:NAME` reads them).
    fn cli(&self) -> std::process::Command {
        let mut command = cli::bin();
        command
            .arg("--config")
            .arg(self.lab.config())
            .env("ALTISHIFT_TEST_DO_TOKEN", TOKEN)
            .env("ALTISHIFT_TEST_SPACES_KEY", "testing")
            .env("ALTISHIFT_TEST_SPACES_SECRET", "testing");
        command
    }

    /// `altishift plan --from FROM --to do --select NAME EXTRA… -o plan.toml`.
    async fn plan_with(&self, from: &str, name: &str, extra: &[&str]) -> Output {
        let mut command = self.cli();
        command
            .args(["plan", "--from", from, "--to", "do", "--select", name])
            .args(extra)
            .arg("-o")
            .arg(self.lab.plan_path());
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// `altishift approve plan.toml --confirm HASH --ack-cross-border`, with
    /// the secrets in the environment: approval connects to both clouds to
    /// check them against the plan.
    async fn approve(&self) -> Output {
        let plan_path = self.lab.plan_path();
        let text = std::fs::read_to_string(&plan_path).unwrap();
        let plan: altishift::plan::Plan = toml::from_str(&text).unwrap();
        let mut command = self.cli();
        command.arg("approve").arg(&plan_path).args([
            "--confirm",
            plan.hash().short(),
            "--ack-cross-border",
            // altishift creates no configuration on DigitalOcean yet: lossy.
            "--ack-lossy",
        ]);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// Refused with `reason` on stderr, no plan file, nothing changed in the
    /// API or the bucket (the inventory was read: the refusal is the plan's).
    async fn assert_refused(&self, out: &Output, instance: &str, reason: &str) {
        let text = cli::text(out);
        assert!(!out.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{text}");
        assert!(!self.lab.plan_path().exists(), "a plan was written");
        assert!(
            self.fake
                .requests()
                .iter()
                .any(|r| r.starts_with("GET /v2/droplets")),
            "the target's inventory was not read: {:?}",
            self.fake.requests()
        );
        assert_eq!(self.fake.mutating(), Vec::<String>::new());
        assert_eq!(self.moto.mutating().await, Vec::<String>::new());
        assert!(
            stderr.contains(&format!("do cannot take '{instance}': ")),
            "{text}"
        );
        assert!(!stderr.contains(TOKEN), "the token leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_refuses_a_boot_disk_of_100_gb_or_more() {
    let setup = Setup::new().await;
    // The lab's monitor, declared with a 200 GiB boot disk (the file stays
    // sparse and small: planning reads the manifest).
    let manifest = setup.lab.root().join("lab-east/instances/monitor.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replace(
        "virtual_size = 2147483648",
        &format!("virtual_size = {}", 200u64 << 30),
    );
    assert!(text.contains("virtual_size = 214748364800"), "{text}");
    std::fs::write(&manifest, text).unwrap();
    let out = setup.plan("lab-east", "monitor").await;
    setup
        .assert_refused(
            &out,
            "monitor",
            "DigitalOcean custom images must be under 100 GB uncompressed",
        )
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("214748364800 bytes"),
        "{}",
        cli::text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_refuses_a_windows_guest() {
    let setup = Setup::new().await;
    let out = setup.plan("lab-west", "mail").await;
    setup
        .assert_refused(
            &out,
            "mail",
            "DigitalOcean custom images must be Linux; the source runs 'Windows Server 2022'",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_refuses_an_instance_with_data_disks() {
    let setup = Setup::new().await;
    let out = setup.plan("lab-east", "db-1").await;
    setup
        .assert_refused(
            &out,
            "db-1",
            "this version does not create volumes for data disks",
        )
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("'db-1' has 2 data disks"),
        "{}",
        cli::text(&out)
    );
}

/// The same setup plans a Linux guest with one small disk: the refusals
/// above are the limits', not a broken profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_accepts_a_small_linux_guest_with_one_disk() {
    let setup = Setup::new().await;
    let out = setup.plan("lab-east", "monitor").await;
    assert!(out.status.success(), "{}", cli::text(&out));
    assert!(setup.lab.plan_path().exists());
    // The public-read import window is part of what the operator approves.
    let plan = std::fs::read_to_string(setup.lab.plan_path()).unwrap();
    assert!(
        plan.contains("readable by anyone with its unguessable URL"),
        "{plan}"
    );
    assert_eq!(setup.fake.mutating(), Vec::<String>::new());
    assert_eq!(setup.moto.mutating().await, Vec::<String>::new());
    // The recorder does see writes to the bucket (the empty lists above
    // are not a deaf recorder).
    setup.moto.start_recording().await;
    setup
        .moto
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key("probe.txt")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    let seen = setup.moto.mutating().await;
    assert!(
        seen.iter()
            .any(|r| r.starts_with(&format!("PUT /{BUCKET}/probe.txt"))),
        "{seen:?}"
    );
}

/// A Frankfurt operator's profile says `region = "fra1"`; the API lists
/// `nyc1` first. With no `--region`, the plan goes to Frankfurt; with no
/// region anywhere, it is refused rather than sent to the first listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profiles_region_is_where_a_plan_goes_without_region() {
    let setup = Setup::new().await;
    let listed = setup.fake.first_region();
    assert_eq!(listed, "nyc1", "the API lists nyc1 first");
    let config = std::fs::read_to_string(setup.lab.config()).unwrap();
    let frankfurt = config.replace("region = \"us-east-1\"", "region = \"fra1\"");
    assert_ne!(frankfurt, config);
    std::fs::write(setup.lab.config(), &frankfurt).unwrap();
    let out = setup.plan_with("lab-east", "monitor", &[]).await;
    assert!(out.status.success(), "{}", cli::text(&out));
    let text = std::fs::read_to_string(setup.lab.plan_path()).unwrap();
    let plan: altishift::plan::Plan = toml::from_str(&text).unwrap();
    assert_eq!(plan.items[0].target_region, "fra1", "{text}");
    // No region in the profile and none given: refused, with the way out.
    std::fs::remove_file(setup.lab.plan_path()).unwrap();
    std::fs::write(
        setup.lab.config(),
        frankfurt.replace("region = \"fra1\"\n", ""),
    )
    .unwrap();
    let out = setup.plan_with("lab-east", "monitor", &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", cli::text(&out));
    assert!(stderr.contains("[clouds.do] has no 'region'"), "{stderr}");
    assert!(stderr.contains("--region"), "{stderr}");
    assert!(!setup.lab.plan_path().exists(), "a plan was written");
    assert_eq!(setup.fake.mutating(), Vec::<String>::new());
}

/// Defence in depth: a data disk that reaches the provider anyway (a plan
/// approved before this limit existed) is refused when its writer opens,
/// before any request to the API or the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_disk_writer_is_refused_before_any_request() {
    use altishift::cloud::digitalocean::{DigitalOceanCloud, DoClient, Staging};
    use altishift::cloud::{CloudError, TargetDiskSpec};
    use altishift::secret::Secret;
    let setup = Setup::new().await;
    let out = setup.plan("lab-east", "monitor").await;
    assert!(out.status.success(), "{}", cli::text(&out));
    let approve = setup.approve().await;
    assert!(approve.status.success(), "{}", cli::text(&approve));
    let text = std::fs::read_to_string(setup.lab.plan_path()).unwrap();
    let plan: altishift::plan::Plan = toml::from_str(&text).unwrap();
    let approved = altishift::plan::approval::verify(plan).unwrap();

    let client = DoClient::new(Some(&setup.fake.base), Secret::new(TOKEN.into())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cloud = DigitalOceanCloud::new("do", client).with_staging(Staging::new(
        &setup.moto.endpoint,
        "us-east-1",
        BUCKET,
        Secret::new("testing".into()),
        Secret::new("testing".into()),
        dir.path(),
    ));
    let before = setup.fake.requests().len();
    setup.moto.start_recording().await;
    let spec = TargetDiskSpec {
        name: "monitor-data".into(),
        virtual_size: altishift::units::Bytes::gib(10),
        format: altishift::inventory::DiskFormat::Qcow2,
        region: "fra1".into(),
        boot: false,
        resume: None,
        platform: Default::default(),
    };
    let refused = cloud
        .open_disk_writer(&approved.capability(), &spec)
        .await
        .err()
        .expect("a data disk writer is refused");
    assert!(matches!(refused, CloudError::Unsupported(_)), "{refused}");
    assert!(refused.to_string().contains("volumes"), "{refused}");
    assert_eq!(setup.fake.requests().len(), before);
    assert_eq!(setup.moto.recorded().await, Vec::<String>::new());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
