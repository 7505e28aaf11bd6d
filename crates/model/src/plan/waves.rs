//! Waves: a plan moves its instances a group at a time (the database before
//! the app servers). Wave N+1 starts only once every instance of wave N is
//! validated. Waves come from `--wave NAME=N`, from a source tag
//! (`--waves-from-tag`), or from the console; they live in the plan's items
//! and in [`Waves`], so the plan hash covers them.

use super::{Plan, PlanItem};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

/// A wave's cutover window: its final pass (cutover plans) or its start
/// (other plans) waits until `not_before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveWindow {
    pub wave: u32,
    /// UTC, RFC 3339 (`2026-12-05T02:00:00Z`).
    pub not_before: String,
}

impl WaveWindow {
    pub fn time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.not_before).ok()
    }
}

/// What the plan says about its waves beyond each item's number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waves {
    /// The source tag whose values ordered the waves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_tag: Option<String>,
    /// Selected instances without that tag: they make up the last wave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untagged: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WaveWindow>,
}

impl Waves {
    pub fn is_empty(&self) -> bool {
        self.from_tag.is_none() && self.untagged.is_empty() && self.windows.is_empty()
    }

    pub fn window(&self, wave: u32) -> Option<&WaveWindow> {
        self.windows.iter().find(|w| w.wave == wave)
    }
}

/// The operator's wave settings when a plan is built.
#[derive(Debug, Clone, Default)]
pub struct WaveRequest {
    /// `--wave NAME=N`, in the order given.
    pub assign: Vec<(String, u32)>,
    /// `--waves-from-tag TAG`.
    pub from_tag: Option<String>,
    /// `--not-before N=TIME`, N as the operator numbered the waves.
    pub windows: Vec<WaveWindow>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WaveError {
    #[error("--wave {name}=…: '{name}' is not a selected instance (selected: {selected})")]
    UnknownInstance { name: String, selected: String },
    #[error("--wave {name}=…: '{name}' is given a wave twice")]
    Twice { name: String },
    #[error("--wave and --waves-from-tag cannot be combined: choose one way to order the waves")]
    TwoSources,
    #[error("--waves-from-tag '{tag}': no selected instance has this tag (their tags: {seen})")]
    TagUnused { tag: String, seen: String },
    #[error("--not-before {wave}=…: the plan has no wave {wave} (its waves: {waves})")]
    NoSuchWave { wave: u32, waves: String },
    #[error("--not-before {wave}=…: wave {wave} is given two windows")]
    WindowTwice { wave: u32 },
}

/// `--wave NAME=N` (clap value parser: its error is shown under the flag).
pub fn parse_assignment(text: &str) -> Result<(String, u32), String> {
    let (name, wave) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("'{text}': expected NAME=N, e.g. db-1=1"))?;
    if name.is_empty() {
        return Err(format!("'{text}': the instance name is empty"));
    }
    Ok((name.to_string(), parse_wave(text, wave)?))
}

/// `--not-before N=TIME` with TIME in UTC RFC 3339; seconds may be left out
/// (`2026-12-05T02:00Z`). Kept in the canonical `…T02:00:00Z` form.
pub fn parse_window(text: &str) -> Result<WaveWindow, String> {
    let (wave, time) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}': expected N=TIME, e.g. 2=2026-12-05T02:00:00Z"))?;
    let wave = parse_wave(text, wave)?;
    let time = time.trim();
    let with_seconds = match time.strip_suffix('Z') {
        // HH:MM only: the date part is 10 characters, then T, then 5.
        Some(bare) if bare.len() == 16 => format!("{bare}:00Z"),
        _ => time.to_string(),
    };
    let parsed = humantime::parse_rfc3339(&with_seconds).map_err(|e| {
        format!("'{text}': '{time}' is not a UTC RFC 3339 time like 2026-12-05T02:00:00Z ({e})")
    })?;
    Ok(WaveWindow {
        wave,
        not_before: humantime::format_rfc3339_seconds(parsed).to_string(),
    })
}

fn parse_wave(text: &str, wave: &str) -> Result<u32, String> {
    match wave.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{text}': wave '{wave}' must be a whole number from 1"
        )),
    }
}

/// Sets each item's wave from the request and returns what the plan keeps
/// about them. `tag_of(instance_id, tag)` reads the source inventory.
pub fn assign(
    items: &mut [PlanItem],
    request: &WaveRequest,
    tag_of: impl Fn(&str, &str) -> Option<String>,
    tags_of: impl Fn(&str) -> Vec<String>,
) -> Result<Waves, WaveError> {
    let mut waves = Waves::default();
    for item in items.iter_mut() {
        item.wave = 1;
    }
    if !request.assign.is_empty() && request.from_tag.is_some() {
        return Err(WaveError::TwoSources);
    }
    let mut seen = BTreeSet::new();
    for (name, wave) in &request.assign {
        let Some(item) = items
            .iter_mut()
            .find(|i| &i.instance_name == name || &i.instance_id == name)
        else {
            let selected: Vec<&str> = items.iter().map(|i| i.instance_name.as_str()).collect();
            return Err(WaveError::UnknownInstance {
                name: name.clone(),
                selected: selected.join(", "),
            });
        };
        if !seen.insert(item.instance_id.clone()) {
            return Err(WaveError::Twice { name: name.clone() });
        }
        item.wave = *wave;
    }
    if let Some(tag) = &request.from_tag {
        let values: Vec<Option<String>> =
            items.iter().map(|i| tag_of(&i.instance_id, tag)).collect();
        if values.iter().all(Option::is_none) {
            let seen: BTreeSet<String> =
                items.iter().flat_map(|i| tags_of(&i.instance_id)).collect();
            return Err(WaveError::TagUnused {
                tag: tag.clone(),
                seen: if seen.is_empty() {
                    "none".into()
                } else {
                    seen.into_iter().collect::<Vec<_>>().join(", ")
                },
            });
        }
        let mut distinct: Vec<&String> = values.iter().flatten().collect();
        distinct.sort_by(|a, b| natural_cmp(a, b));
        distinct.dedup();
        let last = distinct.len() as u32 + 1;
        for (item, value) in items.iter_mut().zip(&values) {
            item.wave = match value {
                Some(v) => distinct
                    .iter()
                    .position(|d| *d == v)
                    .map_or(last, |p| p as u32 + 1),
                None => {
                    waves.untagged.push(item.instance_name.clone());
                    last
                }
            };
        }
        waves.from_tag = Some(tag.clone());
    }
    let renumbered = renumber(items);
    for window in &request.windows {
        let Some(&wave) = renumbered.get(&window.wave) else {
            return Err(WaveError::NoSuchWave {
                wave: window.wave,
                waves: renumbered
                    .keys()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if waves.window(wave).is_some() {
            return Err(WaveError::WindowTwice { wave: window.wave });
        }
        waves.windows.push(WaveWindow {
            wave,
            not_before: window.not_before.clone(),
        });
    }
    waves.windows.sort_by_key(|w| w.wave);
    Ok(waves)
}

/// Numbers the waves 1, 2, 3… in their order, leaving no gaps; returns the
/// old number of each wave → its new one.
pub fn renumber(items: &mut [PlanItem]) -> BTreeMap<u32, u32> {
    let old: BTreeSet<u32> = items.iter().map(|i| i.wave).collect();
    let map: BTreeMap<u32, u32> = old.into_iter().zip(1..).collect();
    for item in items.iter_mut() {
        item.wave = map.get(&item.wave).copied().unwrap_or(1);
    }
    map
}

/// The console's key: item `index` moves to the next wave, a new last wave
/// after the last one, and back to wave 1 after that. Waves are numbered
/// again without gaps and windows follow their wave (a window whose wave
/// emptied goes). Tag-derived notes no longer hold once edited by hand.
pub fn cycle(plan: &mut Plan, index: usize) -> Option<u32> {
    let count = plan.items.len() as u32;
    let last = plan.items.iter().map(|i| i.wave).max().unwrap_or(1);
    let item = plan.items.get_mut(index)?;
    let next = item.wave + 1;
    item.wave = if next > last + 1 || next > count {
        1
    } else {
        next
    };
    let map = renumber(&mut plan.items);
    plan.waves.from_tag = None;
    plan.waves.untagged.clear();
    plan.waves.windows = plan
        .waves
        .windows
        .iter()
        .filter_map(|w| {
            map.get(&w.wave).map(|&wave| WaveWindow {
                wave,
                not_before: w.not_before.clone(),
            })
        })
        .collect();
    plan.items.get(index).map(|i| i.wave)
}

/// The plan's items grouped by wave, waves in order, items in plan order.
pub fn groups(items: &[PlanItem]) -> Vec<(u32, Vec<&PlanItem>)> {
    let mut by_wave: BTreeMap<u32, Vec<&PlanItem>> = BTreeMap::new();
    for item in items {
        by_wave.entry(item.wave).or_default().push(item);
    }
    by_wave.into_iter().collect()
}

/// Compares tag values as a person sorts them: runs of digits by their
/// number (`tier-2` before `tier-10`), the rest as text.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (ca, ra) = chunk(a);
        let (cb, rb) = chunk(b);
        let digits = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
        let order = if digits(ca) && digits(cb) {
            let (ta, tb) = (ca.trim_start_matches('0'), cb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            ca.cmp(cb)
        };
        if order != Ordering::Equal {
            return order;
        }
        (a, b) = (ra, rb);
    }
}

/// The leading run of digits or of non-digits, and the rest.
fn chunk(s: &str) -> (&str, &str) {
    let digit = s.starts_with(|c: char| c.is_ascii_digit());
    let end = s
        .find(|c: char| c.is_ascii_digit() != digit)
        .unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::sample_plan;

    fn items(names: &[&str]) -> Vec<PlanItem> {
        let base = sample_plan(false).items[0].clone();
        names
            .iter()
            .map(|n| PlanItem {
                instance_id: format!("i-{n}"),
                instance_name: n.to_string(),
                target_name: n.to_string(),
                ..base.clone()
            })
            .collect()
    }

    fn waves_of(items: &[PlanItem]) -> Vec<(&str, u32)> {
        items
            .iter()
            .map(|i| (i.instance_name.as_str(), i.wave))
            .collect()
    }

    #[test]
    fn tag_values_sort_naturally_and_untagged_instances_go_last() {
        let mut list = items(&["web", "db", "cache", "batch", "api"]);
        let tags: BTreeMap<&str, &str> = [
            ("i-web", "tier-10"),
            ("i-db", "tier-2"),
            ("i-cache", "tier-2"),
            ("i-api", "tier-9"),
        ]
        .into();
        let request = WaveRequest {
            from_tag: Some("app-tier".into()),
            ..WaveRequest::default()
        };
        let waves = assign(
            &mut list,
            &request,
            |id, _| tags.get(id).map(|v| v.to_string()),
            |_| vec![],
        )
        .unwrap();
        assert_eq!(
            waves_of(&list),
            vec![
                ("web", 3),
                ("db", 1),
                ("cache", 1),
                ("batch", 4),
                ("api", 2)
            ]
        );
        assert_eq!(waves.untagged, vec!["batch".to_string()]);
        assert_eq!(waves.from_tag.as_deref(), Some("app-tier"));
    }

    #[test]
    fn explicit_waves_are_numbered_densely_and_windows_follow_them() {
        let mut list = items(&["web", "db", "cache"]);
        let request = WaveRequest {
            assign: vec![("db".into(), 3), ("web".into(), 7)],
            windows: vec![parse_window("7=2026-12-05T02:00Z").unwrap()],
            ..WaveRequest::default()
        };
        let waves = assign(&mut list, &request, |_, _| None, |_| vec![]).unwrap();
        // cache was not named: wave 1 (as given), db 3 → 2, web 7 → 3.
        assert_eq!(waves_of(&list), vec![("web", 3), ("db", 2), ("cache", 1)]);
        assert_eq!(
            waves.windows,
            vec![WaveWindow {
                wave: 3,
                not_before: "2026-12-05T02:00:00Z".into()
            }]
        );
    }

    #[test]
    fn bad_wave_input_names_the_flag() {
        let mut list = items(&["web"]);
        let unknown = WaveRequest {
            assign: vec![("nosuch".into(), 2)],
            ..WaveRequest::default()
        };
        let err = assign(&mut list, &unknown, |_, _| None, |_| vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--wave nosuch=…: 'nosuch' is not a selected instance (selected: web)"
        );
        let window = WaveRequest {
            windows: vec![parse_window("2=2026-12-05T02:00:00Z").unwrap()],
            ..WaveRequest::default()
        };
        let err = assign(&mut list, &window, |_, _| None, |_| vec![]).unwrap_err();
        assert!(err.to_string().starts_with("--not-before 2=…"), "{err}");
        let tag = WaveRequest {
            from_tag: Some("tier".into()),
            ..WaveRequest::default()
        };
        let err = assign(&mut list, &tag, |_, _| None, |_| vec!["role".into()]).unwrap_err();
        assert!(err.to_string().contains("--waves-from-tag 'tier'"), "{err}");
        assert!(err.to_string().contains("role"), "{err}");
        for bad in ["web=0", "web=two", "web", "=1", "web=-1"] {
            assert!(parse_assignment(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_assignment("web=2"), Ok(("web".into(), 2)));
        for bad in [
            "1=tomorrow",
            "0=2026-12-05T02:00:00Z",
            "2026-12-05T02:00:00Z",
        ] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cycling_moves_an_item_through_the_waves_and_changes_the_hash() {
        let mut plan = sample_plan(false);
        plan.items = items(&["web", "db"]);
        let before = plan.hash();
        assert_eq!(cycle(&mut plan, 1), Some(2));
        assert_eq!(waves_of(&plan.items), vec![("web", 1), ("db", 2)]);
        let two_waves = plan.hash();
        assert_ne!(before, two_waves);
        // Two items make two waves at most: db goes back to wave 1.
        assert_eq!(cycle(&mut plan, 1), Some(1));
        assert_eq!(plan.hash(), before);
        // web joins db's wave 2, and the waves close up to 1.
        cycle(&mut plan, 1);
        assert_eq!(cycle(&mut plan, 0), Some(1));
        assert_eq!(waves_of(&plan.items), vec![("web", 1), ("db", 1)]);
    }

    #[test]
    fn windows_are_in_the_hash_and_a_plan_without_waves_keeps_its_form() {
        let plan = sample_plan(false);
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("waves"), "{json}");
        let mut windowed = plan.clone();
        windowed.waves.windows.push(WaveWindow {
            wave: 1,
            not_before: "2026-12-05T02:00:00Z".into(),
        });
        assert_ne!(windowed.hash(), plan.hash());
        let back: Plan = toml::from_str(&windowed.to_toml().unwrap()).unwrap();
        assert_eq!(back, windowed);
    }

    #[test]
    fn natural_order() {
        let mut values = vec!["b", "a10", "a2", "a02x", "10", "9", ""];
        values.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(values, vec!["", "9", "10", "a2", "a02x", "a10", "b"]);
    }
}
