//! Validation's serial-console check against the GCE fake: the check reads
//! instances.getSerialPortOutput (serial port 1, following `next`), and the
//! fake answers as the Compute Engine reference describes the method.

use altishift_testkit::gce_fake;

use altishift::cloud::{CloudError, DeploySpec, Target};
use gce_fake::testkit::*;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test]
async fn the_serial_check_reads_the_deployed_instances_console_from_get_serial_port_output() {
    let gcp = Gcp::start().await;
    let cloud = gcp.cloud();
    let raw = gcp.dir.path().join("boot.raw");
    let disk = upload(&cloud, "app-disk0", 1 << 30, &[0, 1, 2], &raw)
        .await
        .unwrap();
    let spec = DeploySpec {
        name: "app".into(),
        size: "n1-standard-2".into(),
        region: ZONE.into(),
        disks: vec![disk],
        tags: BTreeMap::new(),
        platform: Default::default(),
        config: Default::default(),
    };
    let deployed = cloud.deploy(&capability(), &spec).await.unwrap();
    serial_console_validation(&gcp, &cloud, &deployed).await;
}

/// Validation reads serial port 1 with instances.getSerialPortOutput,
/// following `next`; the fake's console is what the test scripts the guest
/// to write. The marker passes once written, a marker never written fails
/// with the console's tail, an unknown instance is Google's 404.
async fn serial_console_validation(
    gcp: &Gcp,
    cloud: &altishift::cloud::gcp::GcpCloud,
    deployed: &altishift::cloud::DeployedInstance,
) {
    use altishift::engine::outside_checks::{self, Timing};
    let quick = Timing {
        deadline: Duration::from_millis(600),
        attempt: Duration::from_secs(5),
        interval: Duration::from_millis(200),
    };
    // Nothing written yet: the API answers empty contents.
    assert_eq!(
        cloud.serial_console(deployed).await.unwrap().as_deref(),
        Some("")
    );
    let login = altishift::guest::rehearse::DEFAULT_EXPECT;
    let check = outside_checks::serial(cloud, deployed, login, quick).await;
    assert!(!check.passed, "{check:?}");

    let boot = "SeaBIOS (version 1.8.2)\r\n[    0.000000] Linux version 6.1.0-28-cloud-amd64\r\n\r\nDebian GNU/Linux 12 app ttyS0\r\n\r\napp login: ";
    gcp.fake.write_console(ZONE, "app", boot);
    let before = gcp.fake.received().len();
    let check = outside_checks::serial(cloud, deployed, login, quick).await;
    assert!(check.passed, "{check:?}");
    assert!(check.detail.starts_with("`app login:`"), "{check:?}");
    assert_eq!(
        check.evidence.last().map(String::as_str),
        Some("app login:")
    );
    // Read from byte 0, then from `next` (the end), which brought nothing new.
    let reads: Vec<String> = gcp.fake.received()[before..]
        .iter()
        .filter(|r| r.path.ends_with("/instances/app/serialPort"))
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(
        reads,
        vec![
            "port=1&start=0".to_string(),
            format!("port=1&start={}", boot.len())
        ]
    );

    let cloud_init = r"Cloud-init v\. \S+ finished";
    let check = outside_checks::serial(cloud, deployed, cloud_init, quick).await;
    assert!(!check.passed, "{check:?}");
    assert!(
        check.evidence.iter().any(|l| l == "app login:"),
        "{check:?}"
    );

    serial_port_output_follows_the_reference(gcp, cloud, boot).await;

    let gone = altishift::cloud::DeployedInstance {
        id: format!("{ZONE}/nope"),
        name: "nope".into(),
        address: None,
    };
    let err = cloud.serial_console(&gone).await.unwrap_err();
    assert!(matches!(err, CloudError::NotFound(_)), "{err}");
}

/// The fake's getSerialPortOutput answers as the Compute Engine reference
/// says: `start` echoes the position returned, `next` is where to ask from
/// next, a negative `start` is the newest bytes, output older than the
/// 1 MB buffer is gone (the answer's `start` moves up), port defaults to 1
/// and must be 1..4.
async fn serial_port_output_follows_the_reference(
    gcp: &Gcp,
    cloud: &altishift::cloud::gcp::GcpCloud,
    boot: &str,
) {
    let path = format!("zones/{ZONE}/instances/app/serialPort");
    let client = cloud.client();
    let answer = client.get(&format!("{path}?start=7")).await.unwrap();
    assert_eq!(answer["kind"], "compute#serialPortOutput");
    assert_eq!(answer["contents"], boot[7..]);
    assert_eq!(answer["start"], "7");
    assert_eq!(answer["next"], boot.len().to_string());
    assert!(
        answer["selfLink"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{path}")),
        "{answer}"
    );
    let newest = client.get(&format!("{path}?start=-7")).await.unwrap();
    assert_eq!(newest["contents"], "login: ");
    assert_eq!(newest["start"], (boot.len() - 7).to_string());
    // Past the end: nothing, and `next` stays where it was asked.
    let past = client
        .get(&format!("{path}?start={}", boot.len() + 5))
        .await
        .unwrap();
    assert_eq!(past["contents"], "");
    assert_eq!(past["next"], (boot.len() + 5).to_string());
    // Another port holds nothing the guest wrote to port 1.
    let port2 = client.get(&format!("{path}?port=2")).await.unwrap();
    assert_eq!(port2["contents"], "");
    let err = client.get(&format!("{path}?port=5")).await.unwrap_err();
    assert!(err.to_string().contains("range [1, 4]"), "{err}");

    // More than the buffer: the oldest output is discarded.
    const MB: usize = 1 << 20;
    gcp.fake.write_console(ZONE, "app", &"x".repeat(MB));
    let total = boot.len() + MB;
    let answer = client.get(&format!("{path}?start=0")).await.unwrap();
    assert_eq!(answer["start"], (total - MB).to_string());
    assert_eq!(answer["next"], total.to_string());
    assert_eq!(answer["contents"].as_str().unwrap().len(), MB);
}
