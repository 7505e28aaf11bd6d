//! Bad answers give clear errors naming the call, never a panic and never
//! a silently shorter list: our real AWS provider against recorded answers
//! (tests/fixtures/ec2) that a loopback server cuts, strips or replaces.

use altishift_testkit::aws_replay as replay;

use altishift::cloud::{Cloud, CloudError, SnapshotRef, Source};
use altishift::inventory::{DiskFormat, InstanceState};
use altishift::units::{BLOCK_SIZE, BlockIndex, Bytes};
use replay::{Answer, Replay, fixture, provider, recorded_account};

/// A recorded account whose DescribeInstances always answers `answer`.
fn account_with_instances(answer: Answer) -> Replay {
    let replay = Replay::start();
    recorded_account(&replay);
    replay.always("DescribeInstances", answer);
    replay
}

/// `text` with the first occurrence of `from` replaced by `to`.
fn edit(name: &str, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture(name)).unwrap();
    assert!(text.contains(from), "{name} holds {from}");
    text.replacen(from, to, 1).into_bytes()
}

async fn inventory_error(replay: &Replay) -> CloudError {
    let cloud = provider(&replay.endpoint, "us-east-1").await;
    let err = cloud.inventory().await.unwrap_err();
    eprintln!("error: {err}");
    err
}

#[tokio::test]
async fn a_truncated_xml_answer_is_an_error_naming_the_call_not_a_shorter_list() {
    let page = fixture("describe_instances_page1.xml");
    // Cut after the first instance: the SDK's XML reader alone would
    // return that one instance and no error.
    let text = String::from_utf8(page.clone()).unwrap();
    let cut = text.find("<instanceId>i-8474834a").unwrap();
    let replay = account_with_instances(Answer::xml(page[..cut].to_vec()));
    let err = inventory_error(&replay).await;
    let text = err.to_string();
    assert!(text.starts_with("ec2 DescribeInstances: "), "{text}");
    assert!(
        text.contains("cut short: <DescribeInstancesResponse> is never closed"),
        "{text}"
    );
    // Retried like any unreadable answer, and bounded (4 attempts).
    let attempts = replay.seen_for("DescribeInstances").len();
    assert!((1..=4).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn an_item_without_its_id_is_an_error_naming_the_call() {
    let replay = account_with_instances(Answer::xml(edit(
        "describe_instances.xml",
        "<instanceId>i-4382922a</instanceId>",
        "",
    )));
    let err = inventory_error(&replay).await;
    assert!(matches!(err, CloudError::Permanent(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "ec2 DescribeInstances: the answer holds an instance without <instanceId> (address 10.211.11.211); not a usable answer"
    );

    let replay = Replay::start();
    recorded_account(&replay);
    replay.always(
        "DescribeSecurityGroups",
        Answer::xml(edit(
            "describe_security_groups.xml",
            "<groupId>sg-443d0a12</groupId>",
            "",
        )),
    );
    let err = inventory_error(&replay).await;
    assert!(
        err.to_string().starts_with(
            "ec2 DescribeSecurityGroups: the answer holds a group without <groupId> (named WebServers)"
        ),
        "{err}"
    );

    let replay = Replay::start();
    recorded_account(&replay);
    replay.always(
        "DescribeVolumes",
        Answer::xml(edit(
            "describe_volumes.xml",
            "<volumeId>vol-10ae5e2b</volumeId>",
            "<volumeId></volumeId>",
        )),
    );
    let err = inventory_error(&replay).await;
    assert!(
        err.to_string()
            .starts_with("ec2 DescribeVolumes: the answer holds a volume without <volumeId>"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_instance_state_is_unknown_not_a_failure() {
    let replay = account_with_instances(Answer::xml(edit(
        "describe_instances.xml",
        "<name>stopped</name>",
        "<name>hibernating-in-a-future-api</name>",
    )));
    let cloud = provider(&replay.endpoint, "us-east-1").await;
    let inv = cloud.inventory().await.unwrap();
    let states: Vec<(&str, InstanceState)> = inv
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("i-4382922a", InstanceState::Unknown),
            ("i-8474834a", InstanceState::Stopped),
        ]
    );
}

#[tokio::test]
async fn http_500_with_a_garbage_body_is_transient_names_the_call_and_retries_bounded() {
    let garbage = b"<html><body>upstream \x00\x01 exploded\n\n</body>".to_vec();
    let replay = account_with_instances(Answer::with(500, "text/html", garbage));
    let err = inventory_error(&replay).await;
    assert!(err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("ec2 DescribeInstances: HTTP 500"),
        "{text}"
    );
    assert!(text.contains("upstream"), "an excerpt of the body: {text}");
    assert!(
        !text.contains('\u{0}'),
        "control bytes never reach the screen"
    );
    // The SDK's standard retry, bounded at 4 attempts (client.rs).
    assert_eq!(replay.seen_for("DescribeInstances").len(), 4);
}

#[tokio::test]
async fn a_page_that_is_not_the_apis_xml_is_an_error_naming_the_call() {
    let replay = Replay::start();
    recorded_account(&replay);
    // A captive portal or a proxy's page: whole HTML, HTTP 200.
    replay.always(
        "DescribeRegions",
        Answer::with(
            200,
            "text/html",
            b"<html><head><title>Sign in to the hotel Wi-Fi</title></head></html>".to_vec(),
        ),
    );
    let err = inventory_error(&replay).await;
    let text = err.to_string();
    assert!(
        text.starts_with("ec2 DescribeRegions: HTTP 200: unreadable answer"),
        "{text}"
    );
    assert!(
        text.contains("DescribeRegionsResponse"),
        "says what was expected: {text}"
    );
}

#[tokio::test]
async fn a_failed_get_caller_identity_leaves_the_inventory_standing() {
    let replay = Replay::start();
    recorded_account(&replay);
    // STS's error shape (awsQuery), not EC2's.
    replay.always(
        "GetCallerIdentity",
        Answer::with(
            403,
            "text/xml",
            b"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no STS from this network</Message></Error><RequestId>r-1</RequestId></ErrorResponse>".to_vec(),
        ),
    );
    let cloud = provider(&replay.endpoint, "us-east-1").await;
    let inv = cloud.inventory().await.unwrap();
    assert_eq!(inv.instances.len(), 9);
    let access = inv.access.unwrap();
    assert_eq!(
        access.identity,
        "keys from the profile (identity unknown: not authorised: sts GetCallerIdentity: AccessDenied: no STS from this network)"
    );
    assert_eq!(access.expires_at, None);
}

const SNAPSHOT: &str = "snap-25393cb76249436ad";

async fn snapshot_reader(replay: &Replay) -> Box<dyn altishift::cloud::DiskReader> {
    replay.always(
        "DescribeSnapshots",
        Answer::xml(fixture("moto/describe_snapshots.xml")),
    );
    let cloud = provider(&replay.endpoint, "eu-west-1").await;
    cloud
        .open_disk_reader(&SnapshotRef {
            id: SNAPSHOT.into(),
            virtual_size: Bytes::gib(8),
            format: DiskFormat::Raw,
            created_by_run: false,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_truncated_ebs_json_answer_is_an_error_naming_the_call() {
    let replay = Replay::start();
    let whole = fixture("moto/ebs_list_snapshot_blocks.json");
    replay.always(
        &format!("GET /snapshots/{SNAPSHOT}/blocks"),
        Answer::json(whole[..whole.len() / 2].to_vec()),
    );
    let reader = snapshot_reader(&replay).await;
    let err = reader.allocated_blocks().await.unwrap_err();
    eprintln!("error: {err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("ebs ListSnapshotBlocks {SNAPSHOT}: ")),
        "{text}"
    );
    assert!(text.contains("HTTP 200"), "{text}");
}

#[tokio::test]
async fn a_short_ebs_block_is_an_error_naming_the_call_and_block() {
    let replay = Replay::start();
    replay.always(
        &format!("GET /snapshots/{SNAPSHOT}/blocks"),
        Answer::json(fixture("moto/ebs_list_snapshot_blocks.json")),
    );
    let short = vec![7u8; 1000];
    replay.always(
        &format!("GET /snapshots/{SNAPSHOT}/blocks/0"),
        Answer::with(200, "application/octet-stream", short)
            .header("x-amz-Data-Length", "1000")
            .header("x-amz-Checksum-Algorithm", "SHA256"),
    );
    let reader = snapshot_reader(&replay).await;
    assert_eq!(reader.allocated_blocks().await.unwrap(), vec![0..1]);
    let Err(err) = reader.read_block(BlockIndex(0)).await else {
        panic!("a 1000-byte block was taken for a whole one");
    };
    assert!(
        err.is_transient(),
        "a short block is worth another try: {err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "ebs GetSnapshotBlock {SNAPSHOT} #0: 1000 bytes, an EBS block is {BLOCK_SIZE} (transient)"
        )
    );
}

/// Why client.rs checks that XML answers are whole: the SDK alone reads a
/// DescribeInstances cut after its first instance as a one-instance page,
/// without an error. (Should a later SDK refuse it, this test says so and
/// the check in client.rs can go.)
#[tokio::test]
async fn the_sdk_alone_reads_a_cut_short_page_as_a_shorter_list() {
    let page = fixture("describe_instances.xml");
    let cut = String::from_utf8(page.clone())
        .unwrap()
        .find("<instanceId>i-8474834a")
        .unwrap();
    let replay = Replay::start();
    replay.always("DescribeInstances", Answer::xml(page[..cut].to_vec()));
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new("us-east-1"))
        .endpoint_url(&replay.endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "AKIAREPLAY",
            "replay-secret",
            None,
            None,
            "test",
        ))
        .build();
    let answer = aws_sdk_ec2::Client::from_conf(config)
        .describe_instances()
        .send()
        .await
        .expect("the SDK takes the cut-short page");
    let ids: Vec<&str> = answer
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(ids, vec!["i-4382922a"], "one of two instances, no error");
}
