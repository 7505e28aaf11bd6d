//! Colour themes: `themes/*.toml` (embedded) or the operator's own in the
//! config folder, in the spirit of helix/yazi: a `[palette]` of named colours
//! and sections (`ui`, `table`, `plan`, `approval`, `throughput`) whose values
//! are `{ fg, bg, modifiers = [...] }`. A bad theme names file, line and key.

use crate::config::{ConfigError, line_and_column, parse_toml};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Themes shipped inside the binary: (name, file text).
pub const BUILT_IN: [(&str, &str); 5] = [
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("ansi16", include_str!("../../themes/ansi16.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
];

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    TrueColor,
    Ansi256,
    Ansi16,
    /// `NO_COLOR` or `--color never`: attributes only (the mono theme).
    None,
}

impl ColorDepth {
    /// From `COLORTERM` and `TERM`, the way most terminal apps decide.
    pub fn detect(colorterm: Option<&str>, term: Option<&str>) -> ColorDepth {
        let colorterm = colorterm.unwrap_or_default().to_ascii_lowercase();
        let term = term.unwrap_or_default().to_ascii_lowercase();
        if colorterm == "truecolor" || colorterm == "24bit" || term.contains("direct") {
            ColorDepth::TrueColor
        } else if term.contains("256") {
            ColorDepth::Ansi256
        } else if term == "dumb" {
            ColorDepth::None
        } else {
            ColorDepth::Ansi16
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error(transparent)]
    Parse(#[from] ConfigError),
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Value {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("no theme named '{name}' (built in: {known}; or put {name}.toml in {dir})")]
    Unknown {
        name: String,
        known: String,
        dir: String,
    },
    #[error("{file}: cannot read theme: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("theme '{0}' inherits from itself (directly or through others)")]
    Cycle(String),
}

/// One `{ fg, bg, modifiers }` value as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<Spanned<String>>,
    bg: Option<Spanned<String>>,
    #[serde(default)]
    modifiers: Vec<Spanned<String>>,
}

macro_rules! sections {
    ($( $section:ident : $raw:ident => $resolved:ident { $($field:ident),* $(,)? } )*) => {
        $(
            #[derive(Debug, Default, Deserialize)]
            #[serde(deny_unknown_fields, rename_all = "kebab-case")]
            struct $raw { $( $field: Option<StyleSpec>, )* }

            /// Resolved styles of one theme section.
            #[derive(Debug, Clone, Copy, Default, PartialEq)]
            pub struct $resolved { $( pub $field: Style, )* }

            impl $resolved {
                fn apply(&mut self, raw: &$raw, ctx: &Resolver<'_>) -> Result<(), ThemeError> {
                    $(
                        if let Some(spec) = &raw.$field {
                            let key = format!("[{}] {}", stringify!($section), stringify!($field).replace('_', "-"));
                            self.$field = ctx.style(spec, &key)?;
                        }
                    )*
                    Ok(())
                }
            }
        )*

        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ThemeFile {
            inherits: Option<String>,
            #[serde(default)]
            palette: BTreeMap<String, Spanned<String>>,
            $( #[serde(default)] $section: $raw, )*
        }

        /// A resolved theme: every style the views use.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            pub name: String,
            $( pub $section: $resolved, )*
        }

        impl Theme {
            fn apply(&mut self, file: &ThemeFile, ctx: &Resolver<'_>) -> Result<(), ThemeError> {
                $( self.$section.apply(&file.$section, ctx)?; )*
                Ok(())
            }

            fn empty(name: &str) -> Theme {
                Theme { name: name.to_string(), $( $section: $resolved::default(), )* }
            }
        }
    };
}

sections! {
    ui: RawUi => UiStyles { base, border, border_focused, title, bar, bar_key, status, error, info, popup, input }
    table: RawTable => TableStyles { header, row, selected, marked, running, stopped }
    plan: RawPlan => PlanStyles { item, action, total, warning }
    approval: RawApproval => ApprovalStyles { hash, ok, refused }
    throughput: RawThroughput => ThroughputStyles { gauge, sparkline, stage, done, failed, paused }
}

/// Resolves colour names of one file against its (inherited) palette.
struct Resolver<'a> {
    file: &'a str,
    text: &'a str,
    palette: &'a BTreeMap<String, Color>,
    depth: ColorDepth,
}

impl Resolver<'_> {
    fn error(&self, span: std::ops::Range<usize>, key: &str, message: String) -> ThemeError {
        let (line, column) = line_and_column(self.text, span.start);
        ThemeError::Value {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message,
        }
    }

    fn style(&self, spec: &StyleSpec, key: &str) -> Result<Style, ThemeError> {
        let mut style = Style::new();
        if let Some(fg) = &spec.fg {
            style = style.fg(self.color(fg, &format!("{key}.fg"))?);
        }
        if let Some(bg) = &spec.bg {
            style = style.bg(self.color(bg, &format!("{key}.bg"))?);
        }
        for name in &spec.modifiers {
            let modifier = parse_modifier(name.get_ref()).ok_or_else(|| {
                self.error(
                    name.span(),
                    &format!("{key}.modifiers"),
                    format!(
                        "unknown modifier '{}' (bold, dim, italic, underlined, reversed, crossed-out, slow-blink)",
                        name.get_ref()
                    ),
                )
            })?;
            style = style.add_modifier(modifier);
        }
        Ok(style)
    }

    fn color(&self, value: &Spanned<String>, key: &str) -> Result<Color, ThemeError> {
        let text = value.get_ref().as_str();
        let color = match self.palette.get(text) {
            Some(color) => *color,
            None => parse_color(text).ok_or_else(|| {
                let known: Vec<&str> = self.palette.keys().map(String::as_str).collect();
                self.error(
                    value.span(),
                    key,
                    format!(
                        "unknown colour '{text}' (palette: {}; or \"#rrggbb\", an ANSI name such as light-blue, 0-255, reset)",
                        if known.is_empty() { "empty".to_string() } else { known.join(", ") }
                    ),
                )
            })?,
        };
        Ok(downgrade(color, self.depth))
    }
}

fn parse_modifier(name: &str) -> Option<Modifier> {
    Some(match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" | "underline" => Modifier::UNDERLINED,
        "reversed" | "reverse" => Modifier::REVERSED,
        "crossed-out" => Modifier::CROSSED_OUT,
        "slow-blink" => Modifier::SLOW_BLINK,
        "hidden" => Modifier::HIDDEN,
        _ => return None,
    })
}

/// `#rrggbb`, an ANSI colour name, an index 0–255, or `reset`.
pub fn parse_color(text: &str) -> Option<Color> {
    if let Some(hex) = text.strip_prefix('#') {
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        return Some(Color::Rgb(byte(0)?, byte(2)?, byte(4)?));
    }
    if let Ok(index) = text.parse::<u8>() {
        return Some(Color::Indexed(index));
    }
    Some(match text.to_ascii_lowercase().replace('_', "-").as_str() {
        "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "dark-gray" | "dark-grey" => Color::DarkGray,
        "light-red" => Color::LightRed,
        "light-green" => Color::LightGreen,
        "light-yellow" => Color::LightYellow,
        "light-blue" => Color::LightBlue,
        "light-magenta" => Color::LightMagenta,
        "light-cyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

/// The 16 ANSI colours with their usual xterm values, for mapping down.
const ANSI16: [(Color, (u8, u8, u8)); 16] = [
    (Color::Black, (0, 0, 0)),
    (Color::Red, (205, 0, 0)),
    (Color::Green, (0, 205, 0)),
    (Color::Yellow, (205, 205, 0)),
    (Color::Blue, (0, 0, 238)),
    (Color::Magenta, (205, 0, 205)),
    (Color::Cyan, (0, 205, 205)),
    (Color::Gray, (229, 229, 229)),
    (Color::DarkGray, (127, 127, 127)),
    (Color::LightRed, (255, 0, 0)),
    (Color::LightGreen, (0, 255, 0)),
    (Color::LightYellow, (255, 255, 0)),
    (Color::LightBlue, (92, 92, 255)),
    (Color::LightMagenta, (255, 0, 255)),
    (Color::LightCyan, (0, 255, 255)),
    (Color::White, (255, 255, 255)),
];

/// Maps a colour to what the terminal can show.
pub fn downgrade(color: Color, depth: ColorDepth) -> Color {
    match (color, depth) {
        (_, ColorDepth::None) => Color::Reset,
        (Color::Rgb(r, g, b), ColorDepth::Ansi256) => Color::Indexed(rgb_to_256(r, g, b)),
        (Color::Rgb(r, g, b), ColorDepth::Ansi16) => nearest16(r, g, b),
        (Color::Indexed(i), ColorDepth::Ansi16) if i >= 16 => {
            let (r, g, b) = index_to_rgb(i);
            nearest16(r, g, b)
        }
        (other, _) => other,
    }
}

fn nearest16(r: u8, g: u8, b: u8) -> Color {
    let distance = |(cr, cg, cb): (u8, u8, u8)| {
        let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
        d(r, cr) + d(g, cg) + d(b, cb)
    };
    ANSI16
        .iter()
        .min_by_key(|(_, rgb)| distance(*rgb))
        .map(|(c, _)| *c)
        .unwrap_or(Color::Reset)
}

const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

fn rgb_to_256(r: u8, g: u8, b: u8) -> u8 {
    let level = |v: u8| {
        CUBE.iter()
            .enumerate()
            .min_by_key(|(_, c)| (i32::from(**c) - i32::from(v)).abs())
            .map(|(i, _)| i as u8)
            .unwrap_or(0)
    };
    let (ri, gi, bi) = (level(r), level(g), level(b));
    let cube = 16 + 36 * ri + 6 * gi + bi;
    // The grey ramp is often closer for near-greys.
    let grey_level = ((u16::from(r) + u16::from(g) + u16::from(b)) / 3) as u8;
    let grey_index = if grey_level < 8 {
        0
    } else {
        ((grey_level - 8) / 10).min(23)
    };
    let grey = 8 + 10 * grey_index;
    let dist = |(cr, cg, cb): (u8, u8, u8)| {
        let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
        d(r, cr) + d(g, cg) + d(b, cb)
    };
    let cube_rgb = (CUBE[ri as usize], CUBE[gi as usize], CUBE[bi as usize]);
    if dist((grey, grey, grey)) < dist(cube_rgb) {
        232 + grey_index
    } else {
        cube
    }
}

fn index_to_rgb(i: u8) -> (u8, u8, u8) {
    match i {
        0..=15 => ANSI16[usize::from(i)].1,
        16..=231 => {
            let n = i - 16;
            (
                CUBE[usize::from(n / 36)],
                CUBE[usize::from((n / 6) % 6)],
                CUBE[usize::from(n % 6)],
            )
        }
        _ => {
            let v = 8 + 10 * (i - 232);
            (v, v, v)
        }
    }
}

/// Where theme files come from: the operator's folder first, then built-ins.
#[derive(Debug, Clone, Default)]
pub struct ThemeSource {
    /// `<config dir>/themes`; `NAME.toml` there overrides a built-in.
    pub user_dir: Option<PathBuf>,
}

impl ThemeSource {
    fn text(&self, name: &str) -> Result<(String, String), ThemeError> {
        if let Some(dir) = &self.user_dir {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|source| ThemeError::Read {
                    file: path.display().to_string(),
                    source,
                })?;
                return Ok((path.display().to_string(), text));
            }
        }
        BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| (format!("themes/{n}.toml"), text.to_string()))
            .ok_or_else(|| ThemeError::Unknown {
                name: name.to_string(),
                known: BUILT_IN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
                dir: self
                    .user_dir
                    .as_ref()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "the config folder's themes/".into()),
            })
    }

    /// Loads a theme by name for a terminal of the given depth. With no
    /// colour at all, every theme becomes `mono`.
    pub fn load(&self, name: &str, depth: ColorDepth) -> Result<Theme, ThemeError> {
        let name = if depth == ColorDepth::None {
            "mono"
        } else {
            name
        };
        // Root first: a child's palette entries and styles override its parent's,
        // and every style resolves against the final palette (so `light` can
        // inherit `default`'s sections and only swap colours).
        let mut names: Vec<String> = Vec::new();
        let mut files: Vec<(String, String)> = Vec::new();
        let mut next = Some(name.to_string());
        while let Some(current) = next.take() {
            if names.len() > 8 || names.contains(&current) {
                return Err(ThemeError::Cycle(current));
            }
            let (file, text) = self.text(&current)?;
            let raw: ThemeFile = parse_toml(&text, Path::new(&file))?;
            next = raw.inherits.clone();
            names.push(current);
            files.insert(0, (file, text));
        }
        let mut theme = resolve(&files, depth)?;
        theme.name = name.to_string();
        Ok(theme)
    }
}

/// Resolves files (root first) into one theme.
fn resolve(files: &[(String, String)], depth: ColorDepth) -> Result<Theme, ThemeError> {
    let mut parsed = Vec::new();
    let mut palette = BTreeMap::new();
    for (file, text) in files {
        let raw: ThemeFile = parse_toml(text, Path::new(file))?;
        for (key, value) in &raw.palette {
            let color = parse_color(value.get_ref()).ok_or_else(|| {
                let (line, column) = line_and_column(text, value.span().start);
                ThemeError::Value {
                    file: file.clone(),
                    line,
                    column,
                    key: format!("[palette] {key}"),
                    message: format!(
                        "'{}' is not a colour (\"#rrggbb\", an ANSI name, 0-255, reset)",
                        value.get_ref()
                    ),
                }
            })?;
            palette.insert(key.clone(), downgrade(color, depth));
        }
        parsed.push((file, text, raw));
    }
    let mut theme = Theme::empty("custom");
    for (file, text, raw) in &parsed {
        let ctx = Resolver {
            file,
            text,
            palette: &palette,
            depth,
        };
        theme.apply(raw, &ctx)?;
    }
    Ok(theme)
}

/// Parses a theme from text; `inherits` refers to built-in themes.
pub fn parse_standalone(file: &str, text: &str, depth: ColorDepth) -> Result<Theme, ThemeError> {
    let raw: ThemeFile = parse_toml(text, Path::new(file))?;
    let mut files = vec![(file.to_string(), text.to_string())];
    let source = ThemeSource::default();
    let mut next = raw.inherits.clone();
    while let Some(name) = next.take() {
        if files.len() > 8 {
            return Err(ThemeError::Cycle(name));
        }
        let (parent_file, parent_text) = source.text(&name)?;
        let parent: ThemeFile = parse_toml(&parent_text, Path::new(&parent_file))?;
        next = parent.inherits.clone();
        files.insert(0, (parent_file, parent_text));
    }
    resolve(&files, depth)
}

impl Default for Theme {
    /// The built-in default at true colour; falls back to no styles at all,
    /// which cannot happen as long as the embedded file parses (a unit test
    /// checks every built-in).
    fn default() -> Theme {
        ThemeSource::default()
            .load("default", ColorDepth::TrueColor)
            .unwrap_or_else(|_| Theme::empty("default"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_parses_at_every_depth() {
        for (name, _) in BUILT_IN {
            for depth in [
                ColorDepth::TrueColor,
                ColorDepth::Ansi256,
                ColorDepth::Ansi16,
                ColorDepth::None,
            ] {
                ThemeSource::default()
                    .load(name, depth)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }

    #[test]
    fn bad_colour_names_file_line_and_key() {
        let text = "[palette]\nfg = \"#ffffff\"\n\n[table]\nselected = { fg = \"blu\" }\n";
        let err = parse_standalone("mine.toml", text, ColorDepth::TrueColor)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("mine.toml:5:"), "{err}");
        assert!(err.contains("[table] selected.fg"), "{err}");
        assert!(err.contains("'blu'"), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_a_suggestion() {
        let text = "[ui]\nborder = {}\nbordr-focused = { fg = \"red\" }\n";
        let err = parse_standalone("mine.toml", text, ColorDepth::TrueColor)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("mine.toml:3:"), "{err}");
        assert!(err.contains("bordr-focused"), "{err}");
    }

    #[test]
    fn sixteen_colour_terminals_get_ansi_colours_only() {
        let theme = ThemeSource::default()
            .load("default", ColorDepth::Ansi16)
            .unwrap();
        for style in [
            theme.ui.base,
            theme.table.selected,
            theme.throughput.sparkline,
        ] {
            for color in [style.fg, style.bg].into_iter().flatten() {
                assert!(
                    !matches!(color, Color::Rgb(..) | Color::Indexed(_)),
                    "{color:?}"
                );
            }
        }
    }

    #[test]
    fn no_colour_means_mono_with_reverse_selection() {
        let theme = ThemeSource::default()
            .load("high-contrast", ColorDepth::None)
            .unwrap();
        assert_eq!(theme.name, "mono");
        assert!(
            theme
                .table
                .selected
                .add_modifier
                .contains(Modifier::REVERSED)
        );
        assert_eq!(theme.table.selected.fg, None);
        assert_eq!(theme.table.selected.bg, None);
    }

    #[test]
    fn light_inherits_what_it_does_not_set() {
        let light = ThemeSource::default()
            .load("light", ColorDepth::TrueColor)
            .unwrap();
        let default = ThemeSource::default()
            .load("default", ColorDepth::TrueColor)
            .unwrap();
        assert_ne!(light.ui.base, default.ui.base);
        assert_eq!(
            light.approval.hash.add_modifier,
            default.approval.hash.add_modifier
        );
    }
}
