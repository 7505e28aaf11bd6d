//! CloudStack provider against the faithful fake.

#[path = "support/cloudstack_fake/mod.rs"]
mod cloudstack_fake;

use cloudstack_fake::FakeCloudStack;

#[tokio::test]
async fn fake_starts() {
    let fake = FakeCloudStack::start().await;
    assert!(fake.endpoint.ends_with("/client/api"));
}
