//! Credentials of the AWS provider against moto: who the tool acts as and
//! until when (`Inventory.access`), STS AssumeRole with `role_arn`, an
//! expiry carried by the credentials themselves (credential_process), and
//! never a key on screen.

use altishift_testkit::aws_kit as kit;
use altishift_testkit::cli;
use altishift_testkit::moto;

use altishift::cloud::Cloud;
use altishift::cloud::aws::AwsCloud;
use altishift::secret::Secret;
use kit::*;
use moto::{ACCESS_KEY, Moto, SECRET_KEY};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn role_arn_assumes_a_role_and_shows_its_expiry_never_the_keys() {
    let moto = Moto::start();
    let mut p = profile(&moto, "us-east-1");
    p.role_arn = Some("arn:aws:iam::123456789012:role/altishift-migrator".into());
    let mut prompt = |label: &str| {
        Some(Secret::new(if label.contains("secret") {
            SECRET_KEY.into()
        } else {
            ACCESS_KEY.into()
        }))
    };
    let before = now();
    let cloud = AwsCloud::from_profile("aws-role", &p, &mut prompt)
        .await
        .unwrap();
    let access = cloud.access().clone();
    assert!(access.source.contains("assumed role"), "{access:?}");
    assert!(
        access.source.contains("altishift-migration"),
        "session name"
    );
    let expires = access.expires.clone().expect("an expiry to show");
    assert!(humantime::parse_rfc3339(&expires).is_ok(), "{expires}");

    // The inventory says who we act as: the assumed role's session, and
    // when the AssumeRole credentials expire (SESSION_SECONDS = 1 h).
    moto.start_recording();
    let inv = cloud.inventory().await.unwrap();
    let acting = inv.access.clone().expect("access in the inventory");
    assert_eq!(
        acting.identity,
        "arn:aws:sts::123456789012:assumed-role/altishift-migrator/altishift-migration"
    );
    let at = acting.expires_at.expect("the session's expiry");
    assert!(
        (before + 3600 - 5..=now() + 3600 + 5).contains(&at),
        "expires {at}, asked at {before} for 3600 s"
    );
    // The session is renewed before it ends (AssumeRoleProvider), and the
    // operator is told so rather than warned.
    assert!(acting.renews, "{acting:?}");
    assert!(
        acting.describe(now()).contains("(renewed automatically)"),
        "{}",
        acting.describe(now())
    );
    assert!(
        moto.recorded()
            .iter()
            .all(|(_, _, action)| action != "GetCallerIdentity"),
        "the assumed role is known from AssumeRole; no further call"
    );

    let revoked = cloud.revoke().await.unwrap();
    assert!(revoked.iter().any(|r| r.contains(&expires)), "{revoked:?}");
    let shown = format!("{access:?} {acting:?} {revoked:?}");
    assert!(!shown.contains(SECRET_KEY) && !shown.contains(ACCESS_KEY));
}

#[tokio::test]
async fn profile_keys_act_as_the_caller_identity_without_expiry() {
    let moto = Moto::start();
    let cloud = aws(&moto, "aws-keys", "eu-central-1").await;
    moto.start_recording();
    let inv = cloud.inventory().await.unwrap();
    let access = inv.access.expect("access in the inventory");
    // moto's answer for keys it did not issue (AWS names the key's IAM user).
    assert_eq!(access.identity, "arn:aws:sts::123456789012:user/moto");
    assert_eq!(access.expires_at, None, "long-term keys do not expire");
    assert_eq!(
        access.describe(now()),
        format!("{} · no expiry", access.identity)
    );
    let calls = moto.recorded();
    assert_eq!(
        calls
            .iter()
            .filter(|(_, _, a)| a == "GetCallerIdentity")
            .count(),
        1
    );
}

#[test]
fn credentials_that_carry_an_expiry_show_it_in_the_cli() {
    let moto = Moto::start();
    let lab = cli::Lab::new();
    let dir = lab.dir.path();
    // A credential_process (AWS shared config) handing out session
    // credentials with an Expiration, as SSO helpers and vaults do.
    let script = dir.join("issue-creds.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESSTEST0001\", \"SecretAccessKey\": \"process-secret-Hh7\", \"SessionToken\": \"process-session-token\", \"Expiration\": \"2099-12-31T23:59:00Z\"}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let aws_config = dir.join("aws-config");
    std::fs::write(
        &aws_config,
        format!(
            "[profile expiring]\ncredential_process = {}\n",
            script.display()
        ),
    )
    .unwrap();
    let config = lab.config();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[clouds.aws-proc]\nprovider = \"aws\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\ninsecure_endpoint = true\nprofile = \"expiring\"\n",
        moto.endpoint
    ));
    std::fs::write(&config, text).unwrap();
    let out = cli::bin()
        .arg("--config")
        .arg(&config)
        .args(["inventory", "aws-proc"])
        .env("AWS_CONFIG_FILE", &aws_config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let shown = cli::text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(
            "acting as arn:aws:sts::123456789012:user/moto · expires 2099-12-31 23:59 UTC (in "
        ),
        "{shown}"
    );
    for secret in ["process-secret-Hh7", "process-session-token"] {
        assert!(!shown.contains(secret), "{secret} on screen: {shown}");
    }
}
