//! What the SSH source does on a host it does not own, told as the operator
//! would meet it: the copied agent runs only when the host computes the
//! SHA-256 that was sent; the plan lists the agent's install and `cleanup`
//! after a killed run finds the copy by the plan's tag; the default quiesce
//! never freezes `/` and always thaws what it froze; a hung remote command
//! is stopped with its name; programs we start inherit none of our secrets.

use altishift_testkit::ssh_kit;
use altishift_testkit::sshd;

use altishift::cloud::ssh::{AgentPolicy, Session, SshCloud};
use altishift::cloud::{Cloud, CutoverSource, DiskRef, Source};
use altishift::plan::ActionVerb;
use ssh_kit::*;
use sshd::Sshd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// A folder of shims that the test sshd puts first on its sessions' PATH.
fn shims(dir: &Path, scripts: &[(&str, &str)]) -> std::path::PathBuf {
    let bin = dir.join("shims");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in scripts {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn disk_ref(sshd: &Sshd) -> DiskRef {
    DiskRef {
        instance_id: sshd.target().host,
        disk_id: "disk-0".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_copy_whose_sha256_differs_on_the_host_is_removed_and_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("agent-ran");
    // The host's sha256sum sees other bytes than were sent (a copy altered
    // on the way or on the host).
    let bin = shims(
        dir.path(),
        &[(
            "sha256sum",
            &format!(
                "echo 00000000000000000000000000000000000000000000000000000000deadbeef \"$1\"\ntouch {}",
                ran.display()
            ),
        )],
    );
    let sshd = Sshd::start_with_path_first(&bin);
    let device = source_disk(dir.path(), &[1], &[]);
    let source = SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap();
    let err = source.stream_mode().await.unwrap_err().to_string();
    assert!(err.contains("SHA-256"), "{err}");
    assert!(
        err.contains("deadbeef"),
        "the host's answer is shown: {err}"
    );
    assert!(err.contains("did not run"), "{err}");
    assert!(ran.exists(), "the check ran on the host");
    let dirs = source.agent_dirs();
    assert_eq!(dirs.len(), 1, "one copy was made");
    assert!(!Path::new(&dirs[0]).exists(), "the bad copy was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_lists_the_agent_and_cleanup_after_a_killed_run_finds_it_by_the_plan_tag() {
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let device = source_disk(dir.path(), &[1, 2], &[]);
    let source = SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap();
    let lab = Lab::new(dir.path());
    let plan = plan_for_lab(&source, &lab, None).await;
    let install = plan
        .actions
        .iter()
        .find(|a| a.verb == ActionVerb::InstallAgent)
        .expect("the plan says the agent is installed");
    assert_eq!(install.cloud, "ssh-src");
    assert!(install.detail.contains("SHA-256"), "{}", install.detail);
    let approved = approve(plan);
    let cap = approved.capability();
    // The approved run's first step on the host copies the agent.
    source
        .snapshot_disk(&cap, &disk_ref(&sshd), "snap")
        .await
        .unwrap();
    let copied = source.agent_dirs();
    assert_eq!(copied.len(), 1);
    assert!(copied[0].contains(&cap.tag().1), "{copied:?}");
    assert!(Path::new(&copied[0]).exists());
    // Killed before revoking: the provider goes, the copy stays.
    drop(source);
    assert!(Path::new(&copied[0]).exists());
    // `cleanup` in a new process.
    let again = SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap();
    let found = again.find_leftovers(&cap.tag()).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec![copied[0].as_str()]);
    assert!(found.iter().all(|r| r.temporary && r.cloud == "ssh-src"));
    again.delete(&cap, &found[0]).await.unwrap();
    assert!(!Path::new(&copied[0]).exists(), "cleanup removed the copy");
    // Another plan's tag finds nothing, and nothing else may be removed.
    let other = ("altishift:plan".to_string(), "0123456789ab".to_string());
    assert!(again.find_leftovers(&other).await.unwrap().is_empty());
    let mut forged = found[0].clone();
    forged.id = dir.path().display().to_string();
    let err = again.delete(&cap, &forged).await.unwrap_err().to_string();
    assert!(err.contains("not an agent folder"), "{err}");
    assert!(dir.path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_quiesce_refuses_to_freeze_the_root_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fsfreeze.log");
    let bin = shims(
        dir.path(),
        &[
            ("lsblk", "echo /\necho /data"),
            ("fsfreeze", &format!("echo \"$@\" >> {}", log.display())),
        ],
    );
    let sshd = Sshd::start_with_path_first(&bin);
    let device = source_disk(dir.path(), &[1], &[]);
    let source = SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap();
    let lab = Lab::new(dir.path());
    let cap = approve(plan_for_lab(&source, &lab, None).await).capability();
    let err = CutoverSource::quiesce(&source, &cap, NAME, None, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("would freeze /"), "{err}");
    assert!(err.contains("quiesce command"), "says what to do: {err}");
    assert!(!log.exists(), "nothing was frozen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freeze_that_fails_half_way_thaws_what_it_froze() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fsfreeze.log");
    let bin = shims(
        dir.path(),
        &[
            ("lsblk", "echo /srv/a\necho /srv/b"),
            (
                "fsfreeze",
                &format!(
                    "echo \"$@\" >> {}\nif [ \"$1 $2\" = \"-f /srv/b\" ]; then echo 'fsfreeze: /srv/b: busy' >&2; exit 1; fi",
                    log.display()
                ),
            ),
        ],
    );
    let sshd = Sshd::start_with_path_first(&bin);
    let device = source_disk(dir.path(), &[1], &[]);
    let source = SshCloud::new("ssh-src", settings(&sshd, &device, AgentPolicy::Require)).unwrap();
    let lab = Lab::new(dir.path());
    let cap = approve(plan_for_lab(&source, &lab, None).await).capability();
    let err = CutoverSource::quiesce(&source, &cap, NAME, None, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("busy"), "{err}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls, vec!["-f /srv/a", "-f /srv/b", "-u /srv/a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_remote_command_is_stopped_and_named() {
    let sshd = Sshd::start();
    let session = Session::new(sshd.target()).unwrap();
    session.run("true", None).await.unwrap();
    session.set_timeout(Duration::from_secs(2));
    let err = session.run("sleep 30", None).await.unwrap_err().to_string();
    assert!(err.contains("'sleep 30'"), "names the command: {err}");
    assert!(err.contains("did not finish within 2 s"), "{err}");
    // The session still works afterwards.
    session.set_timeout(Duration::from_secs(60));
    let out = session.run("echo still here", None).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "still here");
}

#[test]
fn programs_we_start_inherit_none_of_our_secrets() {
    // A profile reads its token from this variable.
    altishift::secret::SecretSource::try_from("env:SSH_REMOTE_TEST_PROFILE_TOKEN".to_string())
        .unwrap();
    // SAFETY: this test binary's other tests do not read these variables,
    // and std serialises its own environment access.
    unsafe {
        std::env::set_var("SSH_REMOTE_TEST_PROFILE_TOKEN", "profile-secret");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "aws-secret");
        std::env::set_var("DIGITALOCEAN_TOKEN", "do-secret");
        std::env::set_var("ALTISHIFT_TEST_PASSPHRASE", "our-secret");
        std::env::set_var("SSH_REMOTE_TEST_HARMLESS", "kept");
    }
    let out = altishift::child::command("env").output().unwrap();
    let env = String::from_utf8_lossy(&out.stdout);
    for secret in ["profile-secret", "aws-secret", "do-secret", "our-secret"] {
        assert!(!env.contains(secret), "{secret} reached the child");
    }
    assert!(env.contains("SSH_REMOTE_TEST_HARMLESS=kept"), "{env}");
    assert!(env.contains("PATH="), "the rest stays");
}
