//! Text from outside the runner's control (a plugin's messages and log, names from a job
//! file) made safe to print: control characters are spelled out as escapes, so such text
//! cannot redraw a terminal or break the one-problem-per-line and one-run-per-line layouts.

/// `text` with every control character except those in `keep` written as its escape
/// (`\n`, `\r`, `\u{1b}`).
pub fn spelled_out(text: &str, keep: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && !keep.contains(&c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_spelled_out_unless_kept() {
        assert_eq!(
            super::spelled_out("a\tb\nc\u{1b}[2Jé", &['\t']),
            "a\tb\\nc\\u{1b}[2Jé"
        );
    }
}
