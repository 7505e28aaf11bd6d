//! Config files: bad TOML, unknown keys, wrong types, secrets written
//! inline, unknown providers, missing keys, absurd numbers. Each goes
//! through `altishift --config FILE inventory NAME` and must be refused
//! with the file, line and key, a non-zero exit, and the lab untouched.

use crate::cli::{self, Lab};
use crate::refused;

/// (what the operator did, config text, cloud asked for, pieces the error must hold).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const LAB: &str = "[clouds.x]\nprovider = \"lab\"\npath = \"LAB\"\n";

const TABLE: &[Case] = &[
    (
        "an unclosed table header",
        "[clouds.x\nprovider = \"lab\"\n",
        "x",
        &["hostile.toml:1:"],
    ),
    (
        "an unterminated string",
        "[clouds.x]\nprovider = \"lab\npath = \"a\"\n",
        "x",
        &["hostile.toml:2:"],
    ),
    (
        "a key given twice",
        "[clouds.x]\nprovider = \"lab\"\nprovider = \"aws\"\n",
        "x",
        &["hostile.toml:3:"],
    ),
    (
        "a table given twice",
        "[clouds.x]\nprovider = \"lab\"\n[clouds.x]\nprovider = \"lab\"\n",
        "x",
        &["hostile.toml:3:"],
    ),
    (
        "a misspelt top-level key",
        "stat_dir = \"s\"\n",
        "x",
        &["hostile.toml:1:", "did you mean 'state_dir'"],
    ),
    (
        "a misspelt profile key",
        "[clouds.x]\nprovider = \"aws\"\nregoin = \"eu\"\n",
        "x",
        &["hostile.toml:3:", "did you mean 'region'"],
    ),
    (
        "a key of another provider's profile",
        "[clouds.x]\nprovider = \"lab\"\npath = \"LAB\"\nbucket = \"b\"\n",
        "x",
        &[
            "hostile.toml:4:1: [clouds.x] is a lab profile; 'bucket' is a key of gcp and digitalocean profiles",
        ],
    ),
    (
        "a key no profile has",
        "[clouds.x]\nprovider = \"lab\"\npassword = \"env:P\"\n",
        "x",
        &["hostile.toml:3:", "unknown key 'password'"],
    ),
    (
        "a number for the provider",
        "[clouds.x]\nprovider = 3\n",
        "x",
        &["hostile.toml:2:", "provider"],
    ),
    (
        "an unknown provider",
        "[clouds.x]\nprovider = \"azure\"\n",
        "x",
        &["hostile.toml:2:", "azure", "digitalocean"],
    ),
    (
        "a provider in capitals",
        "[clouds.x]\nprovider = \"AWS\"\n",
        "x",
        &["hostile.toml:2:", "AWS"],
    ),
    (
        "no provider at all",
        "[clouds.x]\npath = \"lab\"\n",
        "x",
        &["hostile.toml:", "provider"],
    ),
    (
        "a list for a path",
        "[clouds.x]\nprovider = \"lab\"\npath = [\"a\"]\n",
        "x",
        &["hostile.toml:3:", "path"],
    ),
    (
        "a string for sudo",
        "[clouds.x]\nprovider = \"ssh\"\nsudo = \"yes\"\n",
        "x",
        &["hostile.toml:3:", "sudo"],
    ),
    (
        "a string for ssh options",
        "[clouds.x]\nprovider = \"ssh\"\nssh_options = \"-F cfg\"\n",
        "x",
        &["hostile.toml:3:", "ssh_options"],
    ),
    (
        "a string for security groups",
        "[clouds.x]\nprovider = \"aws\"\nsecurity_groups = \"sg-1\"\n",
        "x",
        &["hostile.toml:3:", "security_groups"],
    ),
    (
        "a table for the region",
        "[clouds.x]\nprovider = \"aws\"\nregion = { name = \"eu\" }\n",
        "x",
        &["hostile.toml:3:", "region"],
    ),
    (
        "a number for clouds",
        "clouds = 3\n",
        "x",
        &["hostile.toml:1:", "clouds"],
    ),
    (
        "a number for the theme",
        "theme = 7\n",
        "x",
        &["hostile.toml:1:", "theme"],
    ),
    (
        "a negative in_flight",
        "[clouds.x]\nprovider = \"aws\"\nin_flight = -1\n",
        "x",
        &["hostile.toml:3:", "in_flight"],
    ),
    (
        "an in_flight beyond 64 bits",
        "[clouds.x]\nprovider = \"aws\"\nin_flight = 99999999999999999999999\n",
        "x",
        &["hostile.toml:3:", "in_flight"],
    ),
    (
        "a fractional in_flight",
        "[clouds.x]\nprovider = \"aws\"\nin_flight = 1.5\n",
        "x",
        &["hostile.toml:3:", "in_flight"],
    ),
    (
        "an infinite in_flight",
        "[clouds.x]\nprovider = \"aws\"\nin_flight = inf\n",
        "x",
        &["hostile.toml:3:", "in_flight"],
    ),
    (
        "an API key pasted inline",
        "[clouds.x]\nprovider = \"cloudstack\"\napi_key = \"sk-live-PASTED\"\n",
        "x",
        &["hostile.toml:3:", "api_key", "never stored in config"],
    ),
    (
        "a secret key pasted inline",
        "[clouds.x]\nprovider = \"cloudstack\"\nsecret_key = \"sk-live-PASTED\"\n",
        "x",
        &["hostile.toml:3:", "secret_key"],
    ),
    (
        "a token pasted inline",
        "[clouds.x]\nprovider = \"digitalocean\"\ntoken = \"dop_v1_PASTED\"\n",
        "x",
        &["hostile.toml:3:", "token"],
    ),
    (
        "an env: secret without a name",
        "[clouds.x]\nprovider = \"digitalocean\"\ntoken = \"env:\"\n",
        "x",
        &["hostile.toml:3:", "variable name"],
    ),
    (
        "a number as a secret",
        "[clouds.x]\nprovider = \"digitalocean\"\ntoken = 12345\n",
        "x",
        &["hostile.toml:3:", "token"],
    ),
    (
        "a cloud that is not configured",
        LAB,
        "nosuch",
        &["hostile.toml", "no cloud named 'nosuch'", "x"],
    ),
    (
        "an empty file",
        "",
        "x",
        &["hostile.toml", "no cloud named 'x'"],
    ),
    (
        "a NUL byte",
        "[clouds.x]\nprovider = \"lab\0\"\n",
        "x",
        &["hostile.toml:2:"],
    ),
    ("a bare word", "hello\n", "x", &["hostile.toml:1:"]),
    (
        "a cloud that is a string",
        "[clouds]\nx = \"lab\"\n",
        "x",
        &["hostile.toml:2:"],
    ),
    (
        "a lab cloud without a path",
        "[clouds.x]\nprovider = \"lab\"\n",
        "x",
        &["[clouds.x]", "path"],
    ),
    (
        "a lab path that does not exist",
        "[clouds.x]\nprovider = \"lab\"\npath = \"no/such/folder\"\n",
        "x",
        &["no/such/folder"],
    ),
    ("arrays nested 5000 deep", "", "x", &["hostile.toml:"]),
    ("a key of a megabyte", "", "x", &["hostile.toml:"]),
];

/// Cases whose text is built, not written out.
fn text_of(name: &str, text: &str, lab: &Lab) -> String {
    match name {
        "arrays nested 5000 deep" => format!("a = {}{}\n", "[".repeat(5000), "]".repeat(5000)),
        "a key of a megabyte" => format!("{} = 1\n", "k".repeat(1 << 20)),
        _ => text.replace("LAB", &lab.root().join("lab-east").to_string_lossy()),
    }
}

pub const CASES: usize = TABLE.len() + 3;

#[test]
fn every_hostile_config_is_refused_with_its_file_line_and_key() {
    let lab = Lab::new();
    let before = cli::tree(&lab.root());
    let file = lab.dir.path().join("hostile.toml");
    for (name, text, cloud, wanted) in TABLE {
        std::fs::write(&file, text_of(name, text, &lab)).unwrap();
        let out = cli::bin()
            .arg("--config")
            .arg(&file)
            .args(["inventory", cloud])
            .output()
            .unwrap();
        eprintln!("case: {name}");
        let stderr = refused(&out, wanted);
        assert!(
            !stderr.contains("PASTED"),
            "{name}: a secret echoed: {stderr}"
        );
        assert!(
            stderr.lines().count() <= 4,
            "{name}: a short message: {stderr}"
        );
    }
    assert_eq!(cli::tree(&lab.root()), before, "no lab changed");
}

#[test]
fn a_config_that_is_not_utf8_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile.toml");
    std::fs::write(&file, b"[clouds.x]\nprovider = \"\xff\xfe\"\n").unwrap();
    let out = cli::bin()
        .arg("--config")
        .arg(&file)
        .args(["inventory", "x"])
        .output()
        .unwrap();
    refused(&out, &["hostile.toml"]);
}

#[test]
fn a_config_that_is_a_folder_or_missing_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().to_path_buf(), dir.path().join("missing.toml")] {
        let out = cli::bin()
            .arg("--config")
            .arg(&path)
            .args(["inventory", "x"])
            .output()
            .unwrap();
        refused(&out, &[&path.display().to_string()]);
    }
}
