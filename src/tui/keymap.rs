//! Keys as data: one table says which key does what on which screen, and the
//! same table drives key handling, the bottom bar and the `?` help, so they
//! cannot drift apart. The config's `[keys]` section rebinds an action
//! (`"plan.wave" = "W"`); a key taken twice on one screen is an error that
//! names both actions.
//!
//! Not in the table: typing into fields (approve screen, input lines), the
//! confirm questions (`y`/`n`), and the inventory panes' own cursor keys,
//! which the pane component handles (shown here, not rebindable).

use crate::tui::component::KeyHint;
use crossterm::event::KeyCode;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Where a binding applies. `Global` keys work on every screen whose own
/// keys did not take the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Global,
    Inventory,
    Plan,
    Transfers,
    Report,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Inventory => "inventory",
            Scope::Plan => "plan",
            Scope::Transfers => "transfers",
            Scope::Report => "report",
        }
    }
}

/// What a key does. Each is handled in `app/keys.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    ToggleLog,
    CommandLine,
    /// Handled by the inventory pane itself (shown, not rebindable).
    Pane,
    NextPane,
    SourcePane,
    TargetPane,
    Filter,
    ClearFilter,
    OpenPlan,
    Down,
    Up,
    First,
    Last,
    PageDown,
    PageUp,
    Resize,
    Rename,
    NextWave,
    Cutover,
    Rehearse,
    ToggleConfig,
    Approve,
    Back,
    Pause,
    Resume,
    CancelDisk,
    BudgetUp,
    BudgetDown,
    Results,
    Transfers,
    Inventory,
}

/// One binding: its keys, its label on the bar (bindings with the same label
/// in a row share one hint, `j/k item`), its line in the help.
#[derive(Debug, Clone)]
pub struct Binding {
    pub scope: Scope,
    /// `scope.name` in the config's `[keys]` section.
    pub name: &'static str,
    pub action: Action,
    pub keys: Vec<KeyCode>,
    pub bar: Option<&'static str>,
    pub help: &'static str,
}

use Action as A;
use KeyCode as K;
use Scope as S;

/// The default table, in the order the bar and help show it.
#[rustfmt::skip]
fn defaults() -> Vec<Binding> {
    let b = |scope, name, action, keys: &[KeyCode], bar, help| Binding {
        scope, name, action, keys: keys.to_vec(), bar, help,
    };
    vec![
        b(S::Inventory, "pane", A::NextPane, &[K::Tab, K::BackTab], Some("pane"), "switch pane"),
        b(S::Inventory, "source_pane", A::SourcePane, &[K::Char('h'), K::Left], None, "the source pane"),
        b(S::Inventory, "target_pane", A::TargetPane, &[K::Char('l'), K::Right], None, "the target pane"),
        b(S::Inventory, "filter", A::Filter, &[K::Char('/')], Some("filter"), "filter (substring, any case)"),
        b(S::Inventory, "clear_filter", A::ClearFilter, &[K::Esc], None, "clear the filter"),
        b(S::Inventory, "plan", A::OpenPlan, &[K::Char('p')], Some("plan"), "plan the marked instances"),
        b(S::Inventory, "down", A::Pane, &[K::Char('j'), K::Down], Some("move"), "move the cursor down"),
        b(S::Inventory, "up", A::Pane, &[K::Char('k'), K::Up], Some("move"), "move the cursor up"),
        b(S::Inventory, "first", A::Pane, &[K::Char('g'), K::Char('G')], None, "first / last row"),
        b(S::Inventory, "page", A::Pane, &[K::PageDown, K::PageUp], None, "page down / up"),
        b(S::Inventory, "mark", A::Pane, &[K::Char(' ')], None, "mark an instance for the plan (source)"),
        b(S::Inventory, "details", A::Pane, &[K::Enter], None, "details: disks, NICs, tags (or the entry's)"),
        b(S::Inventory, "lists", A::Pane, &[K::Char('c')], None, "show networks, firewalls, images, SSH keys (c: back)"),
        b(S::Inventory, "next_list", A::Pane, &[K::Char('['), K::Char(']')], None, "previous / next configuration list"),
        b(S::Inventory, "command", A::CommandLine, &[K::Char(':')], Some("command"), ":from NAME, :to NAME (clouds), :theme NAME, :plan, :quit"),

        b(S::Plan, "down", A::Down, &[K::Char('j'), K::Down], Some("item"), "next item"),
        b(S::Plan, "up", A::Up, &[K::Char('k'), K::Up], Some("item"), "previous item"),
        b(S::Plan, "resize", A::Resize, &[K::Char('e')], Some("resize"), "edit the item's target size (checked against the catalogue)"),
        b(S::Plan, "rename", A::Rename, &[K::Char('n')], Some("rename"), "rename the target instance (when the target has that name)"),
        b(S::Plan, "wave", A::NextWave, &[K::Char('w')], Some("wave"), "move the item to the next wave (wave N+1 starts once N is validated)"),
        b(S::Plan, "cutover", A::Cutover, &[K::Char('x')], Some("cutover"), "cutover: off → source powered off → kept running → off"),
        b(S::Plan, "config", A::ToggleConfig, &[K::Char('c')], Some("config"), "configuration of the item, source → target; ✗ marks what is lossy"),
        b(S::Plan, "approve", A::Approve, &[K::Char('a'), K::Enter], Some("approve"), "review and approve"),
        b(S::Plan, "back", A::Back, &[K::Esc], Some("back"), "back to the inventory (the plan is kept)"),
        b(S::Plan, "scroll_down", A::PageDown, &[K::Char('J'), K::PageDown], Some("scroll"), "scroll the action list down"),
        b(S::Plan, "scroll_up", A::PageUp, &[K::Char('K'), K::PageUp], Some("scroll"), "scroll the action list up"),
        b(S::Plan, "rehearse", A::Rehearse, &[K::Char('r')], Some("rehearse"), "boot each boot disk here in QEMU (no network) before approving; a guest that does not boot cannot be approved"),

        b(S::Transfers, "down", A::Down, &[K::Char('j'), K::Down], Some("disk"), "next disk (panes scroll)"),
        b(S::Transfers, "up", A::Up, &[K::Char('k'), K::Up], Some("disk"), "previous disk"),
        b(S::Transfers, "first", A::First, &[K::Char('g'), K::Home], None, "first disk"),
        b(S::Transfers, "last", A::Last, &[K::Char('G'), K::End], None, "last disk"),
        b(S::Transfers, "pause", A::Pause, &[K::Char('p')], Some("pause"), "pause the selected disk"),
        b(S::Transfers, "resume", A::Resume, &[K::Char('r')], Some("resume"), "resume it"),
        b(S::Transfers, "cancel", A::CancelDisk, &[K::Char('c')], Some("cancel"), "cancel it (asks first)"),
        b(S::Transfers, "faster", A::BudgetUp, &[K::Char('+')], Some("budget"), "raise the run's bandwidth budget (×1.25)"),
        b(S::Transfers, "slower", A::BudgetDown, &[K::Char('-')], Some("budget"), "lower it (÷1.25; starts from the measured rate)"),
        b(S::Transfers, "results", A::Results, &[K::Char('v'), K::Tab], Some("results"), "validation, cleanup and report"),

        b(S::Report, "down", A::Down, &[K::Char('j'), K::Down], Some("scroll"), "scroll down"),
        b(S::Report, "up", A::Up, &[K::Char('k'), K::Up], Some("scroll"), "scroll up"),
        b(S::Report, "page_down", A::PageDown, &[K::PageDown], None, "a page down"),
        b(S::Report, "page_up", A::PageUp, &[K::PageUp], None, "a page up"),
        b(S::Report, "top", A::First, &[K::Char('g'), K::Home], None, "to the top"),
        b(S::Report, "transfers", A::Transfers, &[K::Char('t'), K::Tab, K::Esc], Some("transfers"), "back to the transfer panes"),
        b(S::Report, "inventory", A::Inventory, &[K::Char('i')], Some("inventory"), "back to the inventory when the run is done"),

        b(S::Global, "command", A::CommandLine, &[K::Char(':')], None, "command line"),
        b(S::Global, "log", A::ToggleLog, &[K::Char('L')], Some("log"), "show or hide the log"),
        b(S::Global, "help", A::Help, &[K::Char('?')], Some("help"), "this help"),
        b(S::Global, "quit", A::Quit, &[K::Char('q')], Some("quit"), "quit (asks while work runs; Ctrl-C too)"),
    ]
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeymapError {
    #[error("[keys] '{name}': no such action (actions: {known})")]
    UnknownAction { name: String, known: String },
    #[error("[keys] '{name}': '{key}' is not a key (a character, or {named})")]
    UnknownKey {
        name: String,
        key: String,
        named: &'static str,
    },
    #[error("[keys] '{name}': give at least one key")]
    NoKey { name: String },
    #[error("[keys] '{key}' is bound twice on one screen: {first} and {second}")]
    Clash {
        key: String,
        first: String,
        second: String,
    },
    #[error("[keys] '{name}': the inventory pane's own keys cannot be rebound yet")]
    Fixed { name: String },
}

const NAMED_KEYS: &str =
    "Tab, S-Tab, Esc, Enter, Space, Up, Down, Left, Right, Home, End, PgUp, PgDn";

/// The table in use: the defaults with the config's `[keys]` applied.
#[derive(Debug, Clone)]
pub struct KeyMap {
    bindings: Vec<Binding>,
}

impl Default for KeyMap {
    fn default() -> Self {
        KeyMap {
            bindings: defaults(),
        }
    }
}

impl KeyMap {
    /// The defaults with `overrides` (`"plan.wave" → "W"`, several keys
    /// separated by spaces) applied and checked.
    pub fn with_overrides(overrides: &BTreeMap<String, String>) -> Result<KeyMap, KeymapError> {
        let mut map = KeyMap::default();
        for (name, keys) in overrides {
            let binding = map
                .bindings
                .iter_mut()
                .find(|b| format!("{}.{}", b.scope.name(), b.name) == *name)
                .ok_or_else(|| KeymapError::UnknownAction {
                    name: name.clone(),
                    known: defaults()
                        .iter()
                        .filter(|b| b.action != Action::Pane)
                        .map(|b| format!("{}.{}", b.scope.name(), b.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            if binding.action == Action::Pane {
                return Err(KeymapError::Fixed { name: name.clone() });
            }
            let parsed = keys
                .split_whitespace()
                .map(|k| {
                    parse_key(k).ok_or_else(|| KeymapError::UnknownKey {
                        name: name.clone(),
                        key: k.to_string(),
                        named: NAMED_KEYS,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if parsed.is_empty() {
                return Err(KeymapError::NoKey { name: name.clone() });
            }
            binding.keys = parsed;
        }
        map.check()?;
        Ok(map)
    }

    /// A key may do one thing per screen; a screen's key may hide a global
    /// one (the screen's wins), never another of the same screen.
    fn check(&self) -> Result<(), KeymapError> {
        for (i, a) in self.bindings.iter().enumerate() {
            for b in &self.bindings[i + 1..] {
                if a.scope != b.scope {
                    continue;
                }
                if let Some(key) = a.keys.iter().find(|k| b.keys.contains(k)) {
                    return Err(KeymapError::Clash {
                        key: key_name(*key).into_owned(),
                        first: format!("{}.{}", a.scope.name(), a.name),
                        second: format!("{}.{}", b.scope.name(), b.name),
                    });
                }
            }
        }
        Ok(())
    }

    /// What `code` does on `scope` (its own keys first, then the global
    /// ones). Pane keys are the pane's: None here.
    pub fn action(&self, scope: Scope, code: KeyCode) -> Option<Action> {
        let find = |s: Scope| {
            self.bindings
                .iter()
                .find(|b| b.scope == s && b.keys.contains(&code))
                .map(|b| b.action)
        };
        find(scope)
            .or_else(|| find(Scope::Global))
            .filter(|a| *a != Action::Pane)
    }

    /// The bar's hints for `scope`, then the global ones: bindings with the
    /// same label in a row share one hint (`j/k item`).
    pub fn bar(&self, scope: Scope) -> Vec<KeyHint> {
        let mut hints: Vec<KeyHint> = Vec::new();
        let mut last: Option<&str> = None;
        let shown = |s: Scope| self.bindings.iter().filter(move |b| b.scope == s);
        for b in shown(scope).chain(shown(Scope::Global)) {
            let Some(label) = b.bar else {
                last = None;
                continue;
            };
            let Some(first) = b.keys.first() else {
                continue;
            };
            let key = key_name(*first);
            match hints.last_mut() {
                Some(hint) if last == Some(label) => {
                    hint.key = Cow::Owned(format!("{}/{key}", hint.key));
                }
                _ => hints.push(KeyHint {
                    key,
                    action: Cow::Borrowed(label),
                }),
            }
            last = Some(label);
        }
        hints
    }

    /// Every binding of `scope` and the global ones, all keys, for `?`.
    pub fn help(&self, scope: Scope) -> Vec<KeyHint> {
        let shown = |s: Scope| self.bindings.iter().filter(move |b| b.scope == s);
        shown(scope)
            .chain(shown(Scope::Global))
            .map(|b| KeyHint {
                key: Cow::Owned(
                    b.keys
                        .iter()
                        .map(|k| key_name(*k))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                action: Cow::Borrowed(b.help),
            })
            .collect()
    }
}

/// How a key is written on the bar, in help and in the config.
pub fn key_name(code: KeyCode) -> Cow<'static, str> {
    Cow::Borrowed(match code {
        KeyCode::Tab => "Tab",
        KeyCode::BackTab => "S-Tab",
        KeyCode::Esc => "Esc",
        KeyCode::Enter => "Enter",
        KeyCode::Char(' ') => "Space",
        KeyCode::Up => "↑",
        KeyCode::Down => "↓",
        KeyCode::Left => "←",
        KeyCode::Right => "→",
        KeyCode::Home => "Home",
        KeyCode::End => "End",
        KeyCode::PageUp => "PgUp",
        KeyCode::PageDown => "PgDn",
        KeyCode::Char(c) => return Cow::Owned(c.to_string()),
        _ => "?",
    })
}

/// A key as the config writes it: one character, or a name.
pub fn parse_key(text: &str) -> Option<KeyCode> {
    let mut chars = text.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(KeyCode::Char(c));
    }
    Some(match text {
        "Tab" => KeyCode::Tab,
        "S-Tab" | "BackTab" => KeyCode::BackTab,
        "Esc" => KeyCode::Esc,
        "Enter" => KeyCode::Enter,
        "Space" => KeyCode::Char(' '),
        "Up" => KeyCode::Up,
        "Down" => KeyCode::Down,
        "Left" => KeyCode::Left,
        "Right" => KeyCode::Right,
        "Home" => KeyCode::Home,
        "End" => KeyCode::End,
        "PgUp" | "PageUp" => KeyCode::PageUp,
        "PgDn" | "PageDown" => KeyCode::PageDown,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_default_table_has_no_clash_and_the_bar_groups_pairs() {
        let map = KeyMap::with_overrides(&BTreeMap::new()).unwrap();
        let bar: Vec<String> = map
            .bar(Scope::Plan)
            .iter()
            .map(|h| format!("{} {}", h.key, h.action))
            .collect();
        assert_eq!(
            bar,
            [
                "j/k item",
                "e resize",
                "n rename",
                "w wave",
                "x cutover",
                "c config",
                "a approve",
                "Esc back",
                "J/K scroll",
                "r rehearse",
                "L log",
                "? help",
                "q quit"
            ]
        );
        assert_eq!(
            map.action(Scope::Plan, KeyCode::Char('w')),
            Some(Action::NextWave)
        );
        assert_eq!(
            map.action(Scope::Plan, KeyCode::Char('q')),
            Some(Action::Quit)
        );
        assert_eq!(map.action(Scope::Inventory, KeyCode::Char('j')), None);
    }

    #[test]
    fn a_rebound_action_moves_its_key_in_handling_bar_and_help() {
        let map = KeyMap::with_overrides(&overrides(&[("plan.wave", "W Tab")])).unwrap();
        assert_eq!(
            map.action(Scope::Plan, KeyCode::Char('W')),
            Some(Action::NextWave)
        );
        assert_eq!(
            map.action(Scope::Plan, KeyCode::Tab),
            Some(Action::NextWave)
        );
        assert_eq!(map.action(Scope::Plan, KeyCode::Char('w')), None);
        assert!(
            map.bar(Scope::Plan)
                .iter()
                .any(|h| h.key == "W" && h.action == "wave")
        );
        assert!(map.help(Scope::Plan).iter().any(|h| h.key == "W Tab"));
    }

    #[test]
    fn bad_keys_sections_are_refused_with_the_names() {
        let err = KeyMap::with_overrides(&overrides(&[("plan.wavee", "W")])).unwrap_err();
        assert!(
            err.to_string().contains("'plan.wavee': no such action"),
            "{err}"
        );
        assert!(err.to_string().contains("plan.wave,"), "{err}");
        let err = KeyMap::with_overrides(&overrides(&[("plan.wave", "Shift")])).unwrap_err();
        assert!(err.to_string().contains("'Shift' is not a key"), "{err}");
        let err = KeyMap::with_overrides(&overrides(&[("plan.wave", "e")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "[keys] 'e' is bound twice on one screen: plan.resize and plan.wave"
        );
        let err = KeyMap::with_overrides(&overrides(&[("inventory.down", "x")])).unwrap_err();
        assert!(matches!(err, KeymapError::Fixed { .. }), "{err}");
        let err = KeyMap::with_overrides(&overrides(&[("plan.wave", " ")])).unwrap_err();
        assert!(matches!(err, KeymapError::NoKey { .. }), "{err}");
    }

    #[test]
    fn a_screen_key_may_hide_a_global_one() {
        // `q` on the plan screen rebound from quit to the wave action.
        let map = KeyMap::with_overrides(&overrides(&[("plan.wave", "q")])).unwrap();
        assert_eq!(
            map.action(Scope::Plan, KeyCode::Char('q')),
            Some(Action::NextWave)
        );
        assert_eq!(
            map.action(Scope::Transfers, KeyCode::Char('q')),
            Some(Action::Quit)
        );
    }

    #[test]
    fn key_names_round_trip() {
        for name in [
            "Tab", "S-Tab", "Esc", "Enter", "Space", "Home", "End", "PgUp", "PgDn", "x",
        ] {
            let code = parse_key(name).unwrap();
            assert_eq!(
                parse_key(&key_name(code)).or(Some(code)),
                Some(code),
                "{name}"
            );
        }
    }
}
