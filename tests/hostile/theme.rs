//! Theme files (themes/*.toml format): every bad one is refused with its
//! file, line and key, both on its own and as a user theme by name.

use altishift::tui::theme::{ColorDepth, ThemeSource, parse_standalone};

/// (what is wrong, theme text, pieces the error must hold).
const TABLE: &[(&str, &str, &[&str])] = &[
    ("not TOML", "[ui\nbase = {}\n", &["bad.toml:1:"]),
    (
        "an unknown section",
        "[sidebar]\nbase = {}\n",
        &["bad.toml:1:", "sidebar"],
    ),
    (
        "an unknown style in a section",
        "[ui]\nbanner = { fg = \"red\" }\n",
        &["bad.toml:2:", "banner"],
    ),
    (
        "an unknown key in a style",
        "[ui]\nbase = { colour = \"red\" }\n",
        &["bad.toml:2:", "colour"],
    ),
    (
        "an unknown colour name",
        "[ui]\nbase = { fg = \"reddish\" }\n",
        &["bad.toml:2:", "[ui] base.fg", "reddish"],
    ),
    (
        "a colour index past 255",
        "[ui]\nbase = { fg = \"300\" }\n",
        &["bad.toml:2:", "300"],
    ),
    (
        "a negative colour index",
        "[ui]\nbase = { bg = \"-1\" }\n",
        &["bad.toml:2:", "base.bg"],
    ),
    (
        "a short hex colour",
        "[ui]\nbase = { fg = \"#12\" }\n",
        &["bad.toml:2:", "#12"],
    ),
    (
        "a long hex colour",
        "[ui]\nbase = { fg = \"#1234567\" }\n",
        &["bad.toml:2:", "#1234567"],
    ),
    (
        "hex that is not hex",
        "[ui]\nbase = { fg = \"#gggggg\" }\n",
        &["bad.toml:2:", "#gggggg"],
    ),
    (
        "hex with a multi-byte character",
        "[ui]\nbase = { fg = \"#ééé\" }\n",
        &["bad.toml:2:"],
    ),
    (
        "an empty colour",
        "[ui]\nbase = { fg = \"\" }\n",
        &["bad.toml:2:", "base.fg"],
    ),
    (
        "a number for a colour",
        "[ui]\nbase = { fg = 3 }\n",
        &["bad.toml:2:"],
    ),
    (
        "an unknown modifier",
        "[ui]\ntitle = { modifiers = [\"blinking\"] }\n",
        &["bad.toml:2:", "blinking"],
    ),
    (
        "modifiers as a string",
        "[ui]\ntitle = { modifiers = \"bold\" }\n",
        &["bad.toml:2:", "title", "expected a sequence"],
    ),
    (
        "a style that is a string",
        "[ui]\ntitle = \"bold\"\n",
        &["bad.toml:2:", "title"],
    ),
    (
        "a palette entry that is not a colour",
        "[palette]\naccent = \"sparkly\"\n",
        &["bad.toml:2:", "accent", "sparkly"],
    ),
    (
        "a palette entry that is a table",
        "[palette]\naccent = { fg = \"red\" }\n",
        &["bad.toml:2:", "accent"],
    ),
    (
        "a palette name used before it exists",
        "[ui]\nbase = { fg = \"accent\" }\n",
        &["bad.toml:2:", "accent", "palette: empty"],
    ),
    (
        "inheriting a theme that does not exist",
        "inherits = \"nosuch\"\n",
        &["nosuch"],
    ),
    (
        "inherits as a number",
        "inherits = 3\n",
        &["bad.toml:1:", "inherits"],
    ),
    (
        "a NUL byte",
        "[ui]\nbase = { fg = \"re\0d\" }\n",
        &["bad.toml:2:"],
    ),
];

pub const CASES: usize = TABLE.len() + 3;

#[test]
fn every_bad_theme_is_refused_with_its_file_line_and_key() {
    for (name, text, wanted) in TABLE {
        let err = parse_standalone("bad.toml", text, ColorDepth::TrueColor)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"))
            .to_string();
        for piece in *wanted {
            assert!(err.contains(piece), "{name}: {err:?} lacks {piece:?}");
        }
    }
}

#[test]
fn a_user_theme_that_inherits_itself_through_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "inherits = \"b\"\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "inherits = \"a\"\n").unwrap();
    let source = ThemeSource {
        user_dir: Some(dir.path().to_path_buf()),
    };
    let err = source
        .load("a", ColorDepth::TrueColor)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inherits from itself"), "{err}");
}

#[test]
fn a_user_theme_with_a_bad_colour_names_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        "inherits = \"default\"\n[ui]\ntitle = { fg = \"chartreuse-ish\" }\n",
    )
    .unwrap();
    let source = ThemeSource {
        user_dir: Some(dir.path().to_path_buf()),
    };
    let err = source
        .load("mine", ColorDepth::Ansi16)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mine.toml:3:") && err.contains("chartreuse-ish"),
        "{err}"
    );
}

#[test]
fn a_user_theme_that_is_not_utf8_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bin.toml"),
        b"[ui]\nbase = { fg = \"\xff\" }\n",
    )
    .unwrap();
    let source = ThemeSource {
        user_dir: Some(dir.path().to_path_buf()),
    };
    let err = source
        .load("bin", ColorDepth::TrueColor)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bin.toml"), "{err}");
}
