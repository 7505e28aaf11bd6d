//! The fault-injecting wrapper (crates/testkit/src/faulty.rs) stands in for the
//! cloud it wraps: every method of every role it does not fault reaches the
//! wrapped cloud — the ones with default bodies too — so a test through the wrapper
//! exercises that cloud, never the trait's defaults.

use altishift_testkit::faulty;
use altishift_testkit::run_kit;

use altishift::block::BlockDigest;
use altishift::cloud::ProviderKind;
use altishift::cloud::lab::generate::{self, LabScale};
use altishift::cloud::{
    Capability, Check, Cloud, CloudError, CreatedResource, CutoverSource, DeploySpec,
    DeployedInstance, DiskReader, DiskRef, DiskWriter, ResourceKind, Roles, SnapshotRef, Source,
    Target, TargetDiskSpec, WriteOrder, WrittenDisk,
};
use altishift::inventory::{DiskFormat, Inventory};
use altishift::plan::build::{self, Request, Side};
use altishift::units::{BlockIndex, Bytes};
use async_trait::async_trait;
use faulty::Faulty;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A cloud whose every optional method answers unlike the trait's default,
/// and which notes each call it receives.
#[derive(Default)]
struct Spy {
    calls: Mutex<Vec<String>>,
}

impl Spy {
    fn note(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    fn unused<T>(&self, what: &str) -> Result<T, CloudError> {
        Err(CloudError::Permanent(format!(
            "spy: {what} is not part of this test"
        )))
    }
}

#[async_trait]
impl Cloud for Spy {
    fn name(&self) -> &str {
        "spy"
    }
    fn provider(&self) -> ProviderKind {
        ProviderKind::Lab
    }
    fn jurisdiction(&self) -> Option<String> {
        None
    }
    fn default_in_flight(&self) -> usize {
        self.note("default_in_flight".into());
        3
    }
    async fn inventory(&self) -> Result<Inventory, CloudError> {
        self.unused("inventory")
    }
    async fn find_leftovers(
        &self,
        tag: &(String, String),
    ) -> Result<Vec<CreatedResource>, CloudError> {
        self.note(format!("find_leftovers {}={}", tag.0, tag.1));
        Ok(vec![CreatedResource {
            cloud: "spy".into(),
            kind: ResourceKind::Snapshot,
            id: format!("altishift-{}-left", tag.1),
            temporary: true,
        }])
    }
    async fn delete(&self, _: &Capability, _: &CreatedResource) -> Result<(), CloudError> {
        self.unused("delete")
    }
    async fn revoke(&self) -> Result<Vec<String>, CloudError> {
        self.unused("revoke")
    }
    fn as_source(&self) -> Option<&dyn Source> {
        Some(self)
    }
    fn as_target(&self) -> Option<&dyn Target> {
        Some(self)
    }
    fn as_cutover(&self) -> Option<&dyn CutoverSource> {
        Some(self)
    }
}

#[async_trait]
impl Source for Spy {
    async fn snapshot_disk(
        &self,
        _cap: &Capability,
        _disk: &DiskRef,
        _name: &str,
    ) -> Result<SnapshotRef, CloudError> {
        self.unused("snapshot_disk")
    }
    async fn open_disk_reader(&self, _: &SnapshotRef) -> Result<Box<dyn DiskReader>, CloudError> {
        self.unused("open_disk_reader")
    }
}

#[async_trait]
impl Target for Spy {
    fn write_order(&self, format: DiskFormat) -> Option<WriteOrder> {
        self.note(format!("write_order {format:?}"));
        Some(WriteOrder::Sequential)
    }
    async fn open_disk_writer(
        &self,
        _cap: &Capability,
        _spec: &TargetDiskSpec,
    ) -> Result<Box<dyn DiskWriter>, CloudError> {
        self.unused("open_disk_writer")
    }
    async fn create_config_object(
        &self,
        cap: &Capability,
        object: &altishift::cloud::configure::ConfigObject,
    ) -> Result<String, CloudError> {
        self.note(format!(
            "create_config_object {} for {}",
            object.describe(),
            cap.plan_hash().short()
        ));
        Ok("fw-1".into())
    }
    async fn deploy(&self, _: &Capability, _: &DeploySpec) -> Result<DeployedInstance, CloudError> {
        self.unused("deploy")
    }
    async fn read_back(&self, _: &WrittenDisk) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        self.unused("read_back")
    }
    async fn probe(
        &self,
        _instance: &DeployedInstance,
        _spec: &DeploySpec,
    ) -> Result<Vec<Check>, CloudError> {
        self.unused("probe")
    }
}

#[async_trait]
impl CutoverSource for Spy {
    async fn cutover_support(&self, instance: &str) -> Result<(), CloudError> {
        self.note(format!("cutover_support {instance}"));
        Ok(())
    }
    async fn open_delta_reader(
        &self,
        snapshot: &SnapshotRef,
        previous: &BTreeMap<BlockIndex, BlockDigest>,
    ) -> Result<Option<Box<dyn DiskReader>>, CloudError> {
        self.note(format!(
            "open_delta_reader {} against {} blocks",
            snapshot.id,
            previous.len()
        ));
        // Not the default's Ok(None): the wrapper must hand this back.
        Err(CloudError::Transient("spy: delta not ready".into()))
    }
    async fn quiesce(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
        thaw: Option<&str>,
    ) -> Result<(), CloudError> {
        self.note(format!(
            "quiesce {instance} {command:?} {thaw:?} for {}",
            cap.plan_hash().short()
        ));
        Ok(())
    }
    async fn thaw(
        &self,
        cap: &Capability,
        instance: &str,
        command: Option<&str>,
    ) -> Result<(), CloudError> {
        self.note(format!(
            "thaw {instance} {command:?} for {}",
            cap.plan_hash().short()
        ));
        Ok(())
    }
    async fn power_off(&self, cap: &Capability, instance: &str) -> Result<(), CloudError> {
        self.note(format!(
            "power_off {instance} for {}",
            cap.plan_hash().short()
        ));
        Ok(())
    }
}

/// An operator's approval of a small lab plan: the capability the mutating
/// calls take.
async fn capability(dir: &std::path::Path) -> Capability {
    let summary = generate::init(&dir.join("lab"), LabScale::Small).unwrap();
    let config = altishift::config::Config::load(&summary.config).unwrap();
    let mut sides = Vec::new();
    for name in ["lab-east", "lab-west"] {
        let cloud = altishift::cloud::connect(&config, name, &mut |_| None)
            .await
            .unwrap();
        sides.push((name, cloud.jurisdiction(), cloud.inventory().await.unwrap()));
    }
    fn side<'a>(
        (cloud, jurisdiction, inventory): &'a (&str, Option<String>, Inventory),
    ) -> Side<'a> {
        Side {
            cloud,
            provider: "lab".into(),
            jurisdiction: jurisdiction.clone(),
            inventory,
        }
    }
    let request = Request {
        select: vec!["db-1".into()],
        ..Request::default()
    };
    let plan = build::build(
        &side(&sides[0]),
        &side(&sides[1]),
        &request,
        &run_kit::throughput(),
        "tester",
    )
    .unwrap();
    run_kit::approve(plan).capability()
}

#[tokio::test]
async fn every_method_the_wrapper_does_not_fault_reaches_the_wrapped_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capability(dir.path()).await;
    let short = cap.plan_hash().short().to_string();
    let spy = Arc::new(Spy::default());
    let wrapper = Faulty {
        inner: Some(spy.clone() as Arc<dyn Cloud>),
        ..Faulty::default()
    };

    assert_eq!(wrapper.default_in_flight(), 3);
    // The wrapper takes the roles of the cloud it wraps, no more, no less.
    assert_eq!(
        wrapper.roles(),
        Roles {
            source: true,
            target: true
        }
    );
    assert!(wrapper.as_cutover().is_some());
    assert_eq!(
        wrapper.write_order(DiskFormat::Raw),
        Some(WriteOrder::Sequential)
    );
    let tag = ("altishift:plan".to_string(), short.clone());
    let leftovers = wrapper.find_leftovers(&tag).await.unwrap();
    assert_eq!(leftovers.len(), 1, "the spy's leftover, not none");
    assert_eq!(leftovers[0].id, format!("altishift-{short}-left"));
    wrapper
        .cutover_support("web-1")
        .await
        .expect("the spy supports cutover; the default refuses");
    let snapshot = SnapshotRef {
        id: "snap-1".into(),
        virtual_size: Bytes(1 << 20),
        format: DiskFormat::Raw,
        created_by_run: true,
    };
    let previous = BTreeMap::from([(BlockIndex(0), BlockDigest([7; 32]))]);
    let delta = wrapper.open_delta_reader(&snapshot, &previous).await;
    assert!(
        matches!(&delta, Err(CloudError::Transient(m)) if m == "spy: delta not ready"),
        "the spy's answer, not the default's Ok(None)"
    );
    wrapper
        .quiesce(&cap, "web-1", Some("sync"), Some("true"))
        .await
        .expect("the spy quiesces; the default refuses");
    wrapper
        .thaw(&cap, "web-1", Some("true"))
        .await
        .expect("the spy thaws; the default refuses");
    wrapper
        .power_off(&cap, "web-1")
        .await
        .expect("the spy powers off; the default refuses");
    let key = altishift::cloud::configure::ConfigObject::SshKey {
        name: "ops".into(),
        public_key: "ssh-ed25519 AAAA ops".into(),
    };
    assert_eq!(
        wrapper.create_config_object(&cap, &key).await.unwrap(),
        "fw-1",
        "the spy's id; the default refuses"
    );

    assert_eq!(
        *spy.calls.lock().unwrap(),
        vec![
            "default_in_flight".to_string(),
            "write_order Raw".into(),
            format!("find_leftovers altishift:plan={short}"),
            "cutover_support web-1".into(),
            "open_delta_reader snap-1 against 1 blocks".into(),
            format!("quiesce web-1 Some(\"sync\") Some(\"true\") for {short}"),
            format!("thaw web-1 Some(\"true\") for {short}"),
            format!("power_off web-1 for {short}"),
            format!("create_config_object ssh key 'ops' for {short}"),
        ]
    );
}
