use super::*;
use crate::config::CloudTable;
use std::path::PathBuf;

/// The config of `text`, loaded from a file named config.toml.
fn load(text: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, text).unwrap();
    let config = Config::load(&file).unwrap();
    (dir, config)
}

/// The error reading cloud `name`, with the file's folder cut off.
fn refused(text: &str, name: &str) -> String {
    let (dir, config) = load(text);
    let err = Profile::read(&config, name).unwrap_err().to_string();
    err.replace(&format!("{}/", dir.path().display()), "")
}

#[test]
fn a_key_of_another_provider_names_both_the_file_and_the_line() {
    let text = "theme = \"mono\"\n\n[clouds.prod]\nprovider = \"aws\"\nregion = \"eu-west-1\"\n\
                bucket = \"images\"\n";
    assert_eq!(
        refused(text, "prod"),
        "config.toml:6:1: [clouds.prod] is an aws profile; 'bucket' is a key of gcp and \
         digitalocean profiles"
    );
    let err = refused(
        "[clouds.l]\nprovider = \"lab\"\npath = \"x\"\nin_flight = 4\n",
        "l",
    );
    assert_eq!(
        err,
        "config.toml:4:1: [clouds.l] is a lab profile; 'in_flight' is a key of aws, gcp and \
         cloudstack profiles"
    );
}

#[test]
fn the_first_foreign_key_in_the_file_is_named() {
    let err = refused(
        "[clouds.h]\nprovider = \"ssh\"\nzone = \"z\"\nbucket = \"b\"\n",
        "h",
    );
    assert!(err.starts_with("config.toml:3:1: "), "{err}");
    assert!(
        err.contains("'zone' is a key of gcp and cloudstack"),
        "{err}"
    );
}

#[test]
fn a_key_of_no_provider_keeps_the_did_you_mean() {
    let err = refused(
        "theme = \"default\"\n\n[clouds.prod]\nprovider = \"aws\"\nregoin = \"eu-west-1\"\n",
        "prod",
    );
    assert_eq!(
        err,
        "config.toml:5:1: unknown key 'regoin' (did you mean 'region'?)"
    );
    let err = refused(
        "[clouds.x]\nprovider = \"lab\"\npassword = \"env:P\"\n",
        "x",
    );
    assert_eq!(
        err,
        "config.toml:3:1: unknown key 'password' (known keys: path, jurisdiction, token)"
    );
}

#[test]
fn a_wrong_type_names_the_line_and_the_key() {
    let err = refused(
        "[clouds.a]\nprovider = \"aws\"\nin_flight = \"many\"\n",
        "a",
    );
    assert!(err.starts_with("config.toml:3:"), "{err}");
    assert!(err.contains("in_flight"), "{err}");
}

#[test]
fn an_unknown_or_missing_provider_is_refused_with_the_known_ones() {
    let err = refused("[clouds.a]\nprovider = \"azure\"\n", "a");
    assert!(err.starts_with("config.toml:2:"), "{err}");
    assert!(
        err.contains("azure") && err.contains("digitalocean"),
        "{err}"
    );
    let err = refused("[clouds.a]\nprovider = 3\n", "a");
    assert!(err.starts_with("config.toml:2:"), "{err}");
    let err = refused("[clouds.a]\npath = \"lab\"\n", "a");
    assert!(err.contains("[clouds.a] needs 'provider'"), "{err}");
    assert!(err.contains("cloudstack or ssh"), "{err}");
}

#[test]
fn secret_values_are_refused_without_echo() {
    let err = refused(
        "[clouds.a]\nprovider = \"cloudstack\"\nsecret_key = \"abc123verysecret\"\n",
        "a",
    );
    assert!(err.starts_with("config.toml:3:"), "{err}");
    assert!(err.contains("never stored"), "{err}");
    assert!(!err.contains("abc123verysecret"), "{err}");
}

#[test]
fn a_full_profile_reads_typed() {
    let (_dir, config) = load(
        "theme = \"mono\"\nstate_dir = \"state\"\n[clouds.staging]\nprovider = \"cloudstack\"\n\
         endpoint = \"https://x/client/api\"\napi_key = \"env:CS_API_KEY\"\n\
         secret_key = \"prompt\"\njurisdiction = \"DE\"\n",
    );
    let profile = Profile::read(&config, "staging").unwrap();
    assert_eq!(profile.kind(), ProviderKind::Cloudstack);
    let Profile::Cloudstack(cs) = &profile else {
        panic!("{profile:?}")
    };
    assert_eq!(cs.secret_key, Some(SecretSource::Prompt));
    assert_eq!(cs.jurisdiction.as_deref(), Some("DE"));
    assert_eq!(
        profile.secrets(),
        [
            ("api_key", &SecretSource::Env("CS_API_KEY".into())),
            ("secret_key", &SecretSource::Prompt)
        ]
    );
    assert!(Profile::check_all(&config).is_ok());
}

/// A config is refused whole when one of its clouds is wrong, as before
/// profiles were typed.
#[test]
fn check_all_refuses_any_bad_cloud() {
    let (_dir, config) = load(
        "[clouds.a]\nprovider = \"lab\"\npath = \"a\"\n[clouds.b]\nprovider = \"ssh\"\nbucket = \"x\"\n",
    );
    let err = Profile::check_all(&config).unwrap_err().to_string();
    assert!(err.contains(":6:1: [clouds.b] is an ssh profile"), "{err}");
}

/// The keys each provider takes come from its struct.
#[test]
fn each_provider_lists_its_own_keys() {
    assert_eq!(ProviderKind::Lab.keys(), ["path", "jurisdiction", "token"]);
    assert!(ProviderKind::Aws.keys().contains(&"role_arn"));
    assert!(!ProviderKind::Aws.keys().contains(&"bucket"));
    assert!(ProviderKind::Gcp.keys().contains(&"worker_image"));
    for kind in ProviderKind::ALL {
        assert!(!kind.keys().is_empty(), "{kind}");
        assert!(!kind.keys().contains(&"provider"), "{kind}");
        assert_eq!(ProviderKind::from_name(kind.name()), Some(kind));
    }
}

/// What the plan's fingerprint reads (the table as written) is the same
/// JSON the one shared profile struct serialised to, for every provider:
/// approved plans stay valid.
#[test]
fn the_table_and_the_typed_profile_agree_for_the_fingerprint() {
    let (_dir, config) = load(
        "[clouds.g]\nprovider = \"gcp\"\nproject = \"p\"\ncredentials_file = \"k.json\"\n\
         zone = \"z\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:1\"\n\
         insecure_endpoint = true\nin_flight = 8\nuser = \"u\"\n\
         ssh_options = [\"-o\", \"Port=2\"]\nsudo = false\nworker_image = \"i\"\n\
         [clouds.d]\nprovider = \"digitalocean\"\ntoken = \"env:T\"\nregion = \"fra1\"\n\
         bucket = \"b\"\nstaging_endpoint = \"https://s\"\napi_key = \"prompt\"\n\
         secret_key = \"env:S\"\npath = \"stage\"\n\
         [clouds.s]\nprovider = \"ssh\"\nhost = \"h\"\npower_off_command = \"halt\"\n",
    );
    for name in ["g", "d", "s"] {
        let typed = serde_json::to_value(Profile::read(&config, name).unwrap()).unwrap();
        let written = serde_json::to_value(config.cloud(name).unwrap().values()).unwrap();
        assert_eq!(typed, written, "{name}");
    }
}

#[test]
fn a_profile_built_in_code_reads_back() {
    let lab = Profile::Lab(LabProfile {
        path: Some(PathBuf::from("lab-east")),
        jurisdiction: Some("DE".into()),
        token: None,
    });
    let mut config = Config::default();
    config.clouds.insert("east".into(), lab.table().unwrap());
    assert_eq!(Profile::read(&config, "east").unwrap(), lab);
    // A table built in code is checked like a file's.
    let mut wrong = toml::Table::new();
    wrong.insert("provider".into(), "lab".into());
    wrong.insert("host".into(), "h".into());
    config.clouds.insert("bad".into(), CloudTable::new(wrong));
    let err = Profile::read(&config, "bad").unwrap_err().to_string();
    assert!(err.contains("'host' is a key of ssh profiles"), "{err}");
}
