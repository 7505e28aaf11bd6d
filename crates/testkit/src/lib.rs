//! What the integration tests share, compiled once rather than into each of
//! the 50-odd test binaries: the CLI driver and lab helpers, the peers (moto,
//! a throwaway sshd, the Cloud Storage emulator) and the fakes written from
//! the providers' API references (Compute Engine, CloudStack, DigitalOcean).
//! A dev-only crate: nothing here ships in the console.

pub mod aws_kit;
pub mod aws_replay;
pub mod cli;
pub mod cloudstack_fake;
pub mod do_fake;
pub mod do_moto;
pub mod ebs_volume;
pub mod faulty;
pub mod gce_fake;
pub mod matrix;
pub mod moto;
pub mod run_kit;
pub mod ssh_kit;
pub mod sshd;

/// The repository's root: where `tests/fixtures/` and `.venv/` are.
pub fn repo_root() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `altishift` binary cargo built for the running tests: beside the
/// `deps/` folder that holds the test executables (this crate is not the
/// binary's package, so it gets no `CARGO_BIN_EXE_altishift`).
pub fn altishift_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executables live in <target>/<profile>/deps");
    profile_dir.join("altishift")
}
