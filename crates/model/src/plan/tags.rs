//! Tags (labels) fitted to the target's rules, which its provider declares
//! ([`TagRules`]): renames are shown, what cannot be kept is said with the
//! reason.

use crate::inventory::config::TagRules;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One source tag and what the target gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagPlan {
    pub source_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_value: String,
    /// None: not written (the note says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// A rename or why the tag is not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Information is lost (cut, dropped for lack of room, a collision).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lossy: bool,
}

impl TagPlan {
    /// `env=lab → env=lab`, `Team=Web Ops → team=web_ops (renamed: …)`.
    pub fn line(&self) -> String {
        let source = pair(&self.source_key, &self.source_value);
        let target = match &self.key {
            Some(key) => pair(key, &self.value),
            None => "(not written)".into(),
        };
        match &self.note {
            Some(note) => format!("{source} → {target} ({note})"),
            None => format!("{source} → {target}"),
        }
    }
}

fn pair(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key}={value}")
    }
}

/// Tags the tool writes itself (`altishift:source`, `altishift:plan`) are
/// never carried from a source: an earlier migration's would mislead.
const OURS: &str = "altishift:";

/// Fits every source tag to `rules`, in key order. `room` is how many the
/// target still takes after the tags the tool writes.
pub fn fit(tags: &BTreeMap<String, String>, rules: &TagRules, room: usize) -> Vec<TagPlan> {
    let mut out = Vec::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in tags {
        let mut plan = TagPlan {
            source_key: key.clone(),
            source_value: value.clone(),
            key: None,
            value: String::new(),
            note: None,
            lossy: false,
        };
        if key.starts_with(OURS) {
            plan.note = Some("written by altishift for this run instead".into());
            out.push(plan);
            continue;
        }
        if rules.reserved_keys.iter().any(|k| k == key) {
            plan.note = Some(format!(
                "the target sets '{key}' itself from the plan's target name"
            ));
            out.push(plan);
            continue;
        }
        let lower = key.to_ascii_lowercase();
        if let Some(prefix) = rules
            .reserved_prefixes
            .iter()
            .find(|p| lower.starts_with(&p.to_ascii_lowercase()))
        {
            plan.note = Some(format!(
                "'{prefix}' is reserved for the target cloud's own {}",
                rules.word
            ));
            out.push(plan);
            continue;
        }
        let (new_key, new_value, cut) = match &rules.joined {
            Some(sep) => {
                let whole = if value.is_empty() {
                    key.clone()
                } else {
                    format!("{key}{sep}{value}")
                };
                let (text, cut) = clean(&whole, rules, rules.key_max, false);
                (text, String::new(), cut)
            }
            None => {
                let (k, cut_key) = clean(key, rules, rules.key_max, rules.key_starts_with_letter);
                let (v, cut_value) = clean(value, rules, rules.value_max, false);
                (k, v, cut_key || cut_value)
            }
        };
        if new_key.is_empty() {
            plan.note = Some(format!("nothing of the key is allowed in {}", rules.word));
            plan.lossy = true;
            out.push(plan);
            continue;
        }
        if let Some(first) = taken.get(&new_key) {
            plan.note = Some(format!(
                "would become '{new_key}' like '{first}' before it; only the first is kept"
            ));
            plan.lossy = true;
            out.push(plan);
            continue;
        }
        if taken.len() >= room {
            plan.note = Some(format!(
                "the target takes {} {} per instance and altishift writes {} of them",
                rules.max_count,
                rules.word,
                rules.max_count - room.min(rules.max_count)
            ));
            plan.lossy = true;
            out.push(plan);
            continue;
        }
        let renamed = rules.joined.is_some() || new_key != *key || new_value != *value;
        if cut {
            plan.note = Some(format!(
                "cut to {} characters (keys) / {} (values)",
                rules.key_max, rules.value_max
            ));
            plan.lossy = true;
        } else if renamed && rules.joined.is_none() {
            plan.note = Some(format!("renamed to fit {}", rules.word));
        } else if renamed {
            plan.note = Some(format!("{} are single words", rules.word));
        }
        taken.insert(new_key.clone(), key.clone());
        plan.key = Some(new_key);
        plan.value = new_value;
        out.push(plan);
    }
    out
}

/// `text` with the target's case and characters (others become `_`), cut
/// to `max` characters; true when it was cut.
fn clean(text: &str, rules: &TagRules, max: usize, starts_with_letter: bool) -> (String, bool) {
    let mut out: String = text
        .chars()
        .map(|c| if rules.lowercase { lower(c) } else { c })
        .map(|c| {
            let ok = c.is_ascii_alphanumeric()
                || rules.extra_chars.contains(c)
                || (rules.unicode_letters && c.is_alphanumeric());
            if ok { c } else { '_' }
        })
        .collect();
    if starts_with_letter && !out.chars().next().is_some_and(char::is_alphabetic) && !out.is_empty()
    {
        out.insert(0, 'k');
    }
    let cut = out.chars().count() > max;
    if cut {
        out = out.chars().take(max).collect();
    }
    (out, cut)
}

fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gce() -> TagRules {
        TagRules {
            word: "labels".into(),
            max_count: 64,
            own_tags: 1,
            key_max: 63,
            value_max: 63,
            lowercase: true,
            extra_chars: "_-".into(),
            unicode_letters: false,
            key_starts_with_letter: true,
            reserved_prefixes: vec!["goog".into()],
            reserved_keys: vec![],
            joined: None,
        }
    }

    #[test]
    fn labels_are_lowercased_and_renames_are_shown() {
        let mut tags = BTreeMap::new();
        tags.insert("Team".to_string(), "Web Ops".to_string());
        tags.insert("2fa".to_string(), "on".to_string());
        tags.insert("team".to_string(), "other".to_string());
        tags.insert("altishift:source".to_string(), "x/y".to_string());
        let fitted = fit(&tags, &gce(), 63);
        let lines: Vec<String> = fitted.iter().map(TagPlan::line).collect();
        assert_eq!(
            lines,
            vec![
                "2fa=on → k2fa=on (renamed to fit labels)",
                "Team=Web Ops → team=web_ops (renamed to fit labels)",
                "altishift:source=x/y → (not written) (written by altishift for this run instead)",
                "team=other → (not written) (would become 'team' like 'Team' before it; only the first is kept)",
            ]
        );
        assert!(fitted[3].lossy && !fitted[1].lossy);
    }

    #[test]
    fn too_long_values_are_cut_and_said_lossy() {
        let mut tags = BTreeMap::new();
        tags.insert("note".to_string(), "x".repeat(70));
        let fitted = fit(&tags, &gce(), 63);
        assert_eq!(fitted[0].value.len(), 63);
        assert!(fitted[0].lossy);
    }

    #[test]
    fn joined_tags_become_one_word_and_room_runs_out() {
        let rules = TagRules {
            word: "tags".into(),
            max_count: 2,
            own_tags: 1,
            key_max: 255,
            value_max: 255,
            lowercase: false,
            extra_chars: ":-_".into(),
            unicode_letters: false,
            key_starts_with_letter: false,
            reserved_prefixes: vec![],
            reserved_keys: vec![],
            joined: Some(":".into()),
        };
        let mut tags = BTreeMap::new();
        tags.insert("env".to_string(), "lab".to_string());
        tags.insert("role".to_string(), "web server".to_string());
        let fitted = fit(&tags, &rules, 1);
        assert_eq!(fitted[0].key.as_deref(), Some("env:lab"));
        assert_eq!(fitted[1].key, None);
        assert!(fitted[1].lossy);
    }
}
