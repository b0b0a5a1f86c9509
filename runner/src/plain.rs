//! Text from outside the runner's control (a plugin's messages and log, names from a job
//! file) made safe to print: control characters are spelled out as escapes, so such text
//! cannot redraw a terminal or break the one-problem-per-line and one-run-per-line layouts.
//! Errors are printed on one line too, each cause once ([`error_line`]).

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

/// An error and its causes on one line, joined by `: `, leaving out a cause whose text the
/// line already holds (many libraries repeat their source's text in their own message).
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        // "Error code 5: database is locked" repeats "database is locked" with a prefix.
        let gist = text.rsplit(": ").next().unwrap_or(&text);
        if line.contains(&text) || line.ends_with(gist) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("(code: 5) database is locked")]
        struct Inner;
        #[derive(Debug, thiserror::Error)]
        #[error("error returned from database: {0}")]
        struct Middle(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("run history: {0}")]
        struct Outer(#[source] Middle);
        let error = anyhow::Error::new(Outer(Middle(Inner))).context("cannot record the step");
        assert_eq!(
            super::error_line(&error),
            "cannot record the step: run history: error returned from database: \
             (code: 5) database is locked"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("Error code 5: database is locked")]
        struct Coded;
        #[derive(Debug, thiserror::Error)]
        #[error("database is locked")]
        struct Driver(#[source] Coded);
        #[derive(Debug, thiserror::Error)]
        #[error("run history: {0}")]
        struct History(#[source] Driver);
        assert_eq!(
            super::error_line(&anyhow::Error::new(History(Driver(Coded)))),
            "run history: database is locked"
        );
        let plain = anyhow::anyhow!("disk full").context("cannot write `out.csv`");
        assert_eq!(
            super::error_line(&plain),
            "cannot write `out.csv`: disk full"
        );
    }

    #[test]
    fn control_characters_are_spelled_out_unless_kept() {
        assert_eq!(
            super::spelled_out("a\tb\nc\u{1b}[2Jé", &['\t']),
            "a\tb\\nc\\u{1b}[2Jé"
        );
    }
}
