//! Theme colours on the buffer cells (snapshots omit colour): every
//! colour theme marks the selection, 16-colour terminals get ANSI colours
//! only, and under NO_COLOR the mono selection survives crossterm's output.

use altishift::tui::app::inventory::SideId;
use altishift::tui::harness::{Harness, synthetic_inventory};
use altishift::tui::theme::{ColorDepth, ThemeSource, parse_standalone};
use ratatui::Terminal;
use ratatui::style::{Color, Modifier};

fn browsing(theme: &str, depth: ColorDepth) -> Harness {
    let mut h = Harness::offline(theme, depth);
    h.load_east_west();
    h
}

fn selected_cell(h: &Harness) -> ratatui::buffer::Cell {
    let terminal = h.render(80, 24);
    let buffer = terminal.backend().buffer().clone();
    // Row 3 is the first data row of the focused (left) pane; column 4 is inside the name.
    buffer[(4, 3)].clone()
}

#[test]
fn selection_is_coloured_in_colour_themes() {
    for (name, depth) in [
        ("default", ColorDepth::TrueColor),
        ("light", ColorDepth::TrueColor),
        ("high-contrast", ColorDepth::Ansi256),
        ("ansi16", ColorDepth::Ansi16),
    ] {
        let h = browsing(name, depth);
        let cell = selected_cell(&h);
        let plain = {
            let terminal = h.render(80, 24);
            terminal.backend().buffer()[(4, 4)].clone()
        };
        assert_ne!(cell.bg, plain.bg, "{name}: the selected row stands out");
        if depth == ColorDepth::Ansi16 {
            assert!(
                !matches!(cell.bg, Color::Rgb(..) | Color::Indexed(_)),
                "{name}: 16 colours only"
            );
        }
    }
}

#[test]
fn no_color_selection_is_reverse_and_bold_and_survives_crossterm() {
    let h = browsing("default", ColorDepth::None);
    assert_eq!(h.app.theme.name, "mono");
    let cell = selected_cell(&h);
    assert!(
        cell.modifier.contains(Modifier::REVERSED | Modifier::BOLD),
        "{:?}",
        cell.modifier
    );
    assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset));
    // Every cell is colourless, so crossterm never writes a colour command
    // (which under NO_COLOR is a bare ESC[m that would drop the reverse).
    let terminal = h.render(80, 24);
    assert!(
        terminal
            .backend()
            .buffer()
            .content
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
    );

    // The bytes, with crossterm in its NO_COLOR mode.
    crossterm::style::force_color_output(false);
    let mut bytes: Vec<u8> = Vec::new();
    {
        let mut term = Terminal::with_options(
            ratatui::backend::CrosstermBackend::new(&mut bytes),
            ratatui::TerminalOptions {
                viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, 80, 24)),
            },
        )
        .expect("terminal");
        term.draw(|f| altishift::tui::views::draw(f, &h.app))
            .expect("draw");
    }
    crossterm::style::force_color_output(true);
    let out = String::from_utf8_lossy(&bytes).to_string();
    let name = h
        .app
        .pane(SideId::Source)
        .current()
        .map(|i| i.name.clone())
        .expect("row");
    let reverse = out.find("\x1b[7m").expect("reverse video is written");
    let row = reverse
        + out[reverse..]
            .find(&name)
            .expect("selected name after reverse");
    let between = &out[reverse..row];
    for reset in ["\x1b[m", "\x1b[;m", "\x1b[0m", "\x1b[27m"] {
        assert!(
            !between.contains(reset),
            "{reset:?} between reverse and the selected row: {between:?}"
        );
    }
}

#[test]
fn bad_theme_names_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mine.toml");
    std::fs::write(&file, "inherits = \"default\"\n[palette]\nfg = \"#fff\"\n").expect("write");
    let source = ThemeSource {
        user_dir: Some(dir.path().to_path_buf()),
    };
    let err = source
        .load("mine", ColorDepth::TrueColor)
        .expect_err("bad colour")
        .to_string();
    assert!(err.contains("mine.toml:3:"), "{err}");
    assert!(err.contains("[palette] fg"), "{err}");
    let err = parse_standalone(
        "x.toml",
        "[throughput]\nsparkline = { fg = \"green\", modifiers = [\"blinky\"] }\n",
        ColorDepth::TrueColor,
    )
    .expect_err("bad modifier")
    .to_string();
    assert!(
        err.contains("x.toml:2:") && err.contains("sparkline.modifiers") && err.contains("blinky"),
        "{err}"
    );
    let err = source
        .load("nope", ColorDepth::TrueColor)
        .expect_err("unknown")
        .to_string();
    assert!(err.contains("high-contrast"), "lists what exists: {err}");
}

#[test]
fn theme_command_switches_and_reports_errors() {
    let mut h = browsing("default", ColorDepth::TrueColor);
    h.keys(":theme light<Enter>");
    assert_eq!(h.app.theme.name, "light");
    h.keys(":theme neon<Enter>");
    assert_eq!(h.app.theme.name, "light");
    assert!(
        h.app
            .status
            .as_ref()
            .is_some_and(|(_, s)| s.contains("neon"))
    );
}

#[test]
fn credential_expiry_reads_without_colour() {
    // Under NO_COLOR (mono) a warning is reversed and an error underlined;
    // the signs tell them apart on terminals where both are one colour.
    let now = 1_795_860_000;
    let mut h = Harness::offline("mono", ColorDepth::None);
    h.set_clock(now);
    let mut east = synthetic_inventory("east", 3, &[("eu-central", "DE")]);
    east.access = Some(altishift::tui::harness::synthetic_access(
        "role",
        Some(now + 600),
    ));
    let mut west = synthetic_inventory("west", 3, &[("us-west", "US")]);
    west.access = Some(altishift::tui::harness::synthetic_access(
        "account",
        Some(now - 1),
    ));
    h.load(SideId::Source, "east", "DE", east);
    h.load(SideId::Target, "west", "US", west);
    let terminal = h.render(80, 24);
    let buffer = terminal.backend().buffer();
    let find = |symbol: &str| {
        (0..80u16)
            .map(|x| (x, 22u16))
            .find(|&p| buffer[p].symbol() == symbol)
            .map(|p| buffer[p].clone())
    };
    let warning = find("⚠").expect("warning sign on the bottom border");
    assert!(warning.modifier.contains(Modifier::REVERSED), "{warning:?}");
    let error = find("✖").expect("error sign on the bottom border");
    assert!(error.modifier.contains(Modifier::UNDERLINED), "{error:?}");
    assert_eq!(warning.fg, Color::Reset);
}
