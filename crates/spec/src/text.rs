//! Text from files and the command line made safe to print: control characters escaped (so a
//! note or a value cannot move the cursor or fake an output line) and long values cut (so a
//! 50 MB `--set` value gives an error of a few hundred bytes, not 50 MB).

/// The longest run of non-blank characters printed whole; longer ones keep both ends.
const MAX_WORD: usize = 256;
/// Characters kept at the start and at the end of a cut word.
const KEEP_HEAD: usize = 120;
const KEEP_TAIL: usize = 40;
/// Lines of a message printed before the rest is counted instead.
const MAX_LINES: usize = 100;

/// One line: every control character escaped, newlines included (`\n`), long words cut.
pub fn one_line(s: &str) -> String {
    cut_words(&escape(s, false))
}

/// A message of one or more lines: control characters other than newline and tab escaped, long
/// words cut, at most [`MAX_LINES`] lines.
pub fn message(s: &str) -> String {
    let escaped = escape(s, true);
    let lines: Vec<&str> = escaped.lines().collect();
    let mut out: Vec<String> = lines.iter().take(MAX_LINES).map(|l| cut_words(l)).collect();
    if lines.len() > MAX_LINES {
        out.push(format!("... ({} more lines)", lines.len() - MAX_LINES));
    }
    out.join("\n")
}

fn escape(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && !(keep_newlines && (c == '\n' || c == '\t')) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Cuts each word (a run of non-blank characters) longer than [`MAX_WORD`] characters to its
/// head and tail around a note of how much was cut.
fn cut_words(line: &str) -> String {
    if line.chars().count() <= MAX_WORD {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len().min(4096));
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let n = word.chars().count();
        if n > MAX_WORD {
            let head: String = word.chars().take(KEEP_HEAD).collect();
            let tail: String = word.chars().skip(n - KEEP_TAIL).collect();
            let cut = n - KEEP_HEAD - KEEP_TAIL;
            out.push_str(&format!("{head}...[{cut} characters cut]...{tail}"));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(
            one_line("a\x1b[2Jb\nstatus: complete"),
            "a\\u{1b}[2Jb\\nstatus: complete"
        );
        assert_eq!(message("one\ntwo\tx\r"), "one\ntwo\tx\\r");
    }

    #[test]
    fn long_words_keep_their_ends_and_say_what_was_cut() {
        let value = format!("\"{}\"", "y".repeat(50_000_000));
        let msg = message(&format!("key 'name': {value} is too long\nsecond line"));
        assert!(msg.len() < 400, "{} bytes", msg.len());
        assert!(msg.contains(&format!("[{} characters cut]", 50_000_002 - 160)));
        assert!(
            msg.starts_with("key 'name': \"yyy") && msg.ends_with("yy\" is too long\nsecond line")
        );
        let short = "a path /x/y/z.toml: fine";
        assert_eq!(message(short), short);
    }

    #[test]
    fn many_lines_are_counted() {
        let msg = message(&"x\n".repeat(1000));
        assert_eq!(msg.lines().count(), MAX_LINES + 1);
        assert!(msg.ends_with("(900 more lines)"));
    }
}
