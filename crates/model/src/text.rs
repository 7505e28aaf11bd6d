//! Text from providers and files, made safe to show.
//!
//! An instance name, a tag, a CloudStack `errortext` or a plan field can
//! hold terminal control sequences (`ESC [2J` clears the screen, `ESC ]0;`
//! retitles the window, a bare CR overwrites the line) or bidi overrides
//! that make text read differently from what it is. One rule, used by the
//! CLI, the console and the reports: such characters are shown escaped
//! (`\x1b`, `\u{202e}`), never sent raw.

use std::borrow::Cow;

/// True for characters that must not reach a terminal raw: C0 controls,
/// DEL, C1 controls (U+0080–U+009F), and the bidi marks, embeddings,
/// overrides and isolates.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn escape_into(out: &mut String, c: char) {
    use std::fmt::Write as _;
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

fn escape_where(s: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line of provider- or file-supplied text, safe for a terminal: every
/// control character (newlines too) and bidi control shown escaped.
pub fn safe(s: &str) -> Cow<'_, str> {
    escape_where(s, is_unsafe)
}

/// Like [`safe`], but keeps line breaks and tabs (a multi-line message we
/// composed, such as an error with its causes).
pub fn safe_lines(s: &str) -> Cow<'_, str> {
    escape_where(s, |c| c != '\n' && c != '\t' && is_unsafe(c))
}

/// A Markdown table cell: [`safe`], then `|` escaped (it would end the
/// cell) and `<`/`>` as entities (no HTML from a provider's text).
pub fn md_cell(s: &str) -> String {
    let safe = safe(s);
    let mut out = String::with_capacity(safe.len());
    for c in safe.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Inside a Markdown code span: [`safe`], with backticks replaced (a
/// backtick would end the span) and `|` escaped for table rows.
pub fn md_code(s: &str) -> String {
    safe(s).replace('`', "'").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_are_shown_escaped() {
        let name = "mon\u{1b}[2J\u{1b}]0;x\u{7}itor";
        assert_eq!(safe(name), "mon\\x1b[2J\\x1b]0;x\\x07itor");
        assert_eq!(safe("a\u{9b}31m"), "a\\u{9b}31m");
        assert_eq!(safe("x\u{7f}"), "x\\x7f");
        assert_eq!(safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(
            safe("\u{2066}a\u{2069}\u{200f}"),
            "\\u{2066}a\\u{2069}\\u{200f}"
        );
        assert_eq!(safe("one\ntwo\r"), "one\\ntwo\\r");
        assert_eq!(safe_lines("one\ntwo\r"), "one\ntwo\\r");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in ["web-01", "Zürich räume", "数据库", "a\\x1b"] {
            assert!(matches!(safe(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(md_cell("a|b\nc<script>"), "a\\|b\\nc&lt;script&gt;");
        assert_eq!(md_code("x`y|\u{1b}"), "x'y\\|\\x1b");
    }
}
