//! The shell's line editor, fed by either input. It edits one line of printable ASCII
//! and answers each key with the bytes that update a VT100-style display: a plain
//! append is echoed as itself (so a pipe sees exactly what it typed), a change in the
//! middle redraws the tail and backs the cursor up with `\x08`, and a recalled history
//! entry redraws the whole line (`\r`, prompt, text, `ESC [ K`). The screen console
//! understands the same subset.
//!
//! Keys: Left/Right, Home/End (also Ctrl-A/Ctrl-E), Backspace, Delete (also Ctrl-D on a
//! non-empty line), Up/Down through the history, Ctrl-U (erase to the start), Ctrl-K
//! (erase to the end), Ctrl-C (abandon the line), Enter.

use alloc::collections::VecDeque;
use alloc::string::String;

use crate::keys::Key;

/// Lines remembered for Up/Down.
pub const HISTORY: usize = 32;

/// What a key did to the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Still editing.
    Editing,
    /// Enter: the line to run (already added to the history if not blank).
    Done(String),
    /// Ctrl-C: the line was abandoned.
    Cancelled,
}

/// One line being edited, with its history: keys in, display updates out.
pub struct LineEditor {
    prompt: &'static str,
    max_len: usize,
    line: String,
    /// Byte index of the cursor (the line is ASCII, so also the column).
    cursor: usize,
    history: VecDeque<String>,
    /// Position while browsing the history (`history.len()`: the line being typed).
    browse: usize,
    /// The line being typed, kept while browsing.
    draft: String,
}

impl LineEditor {
    /// An empty line, at most `max_len` characters, shown after `prompt` (a recalled
    /// line is redrawn after it).
    pub fn new(prompt: &'static str, max_len: usize) -> LineEditor {
        LineEditor {
            prompt,
            max_len,
            line: String::new(),
            cursor: 0,
            history: VecDeque::new(),
            browse: 0,
            draft: String::new(),
        }
    }

    /// The line as typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }
    /// The cursor's column in the line.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Applies `key`, appending what the display needs to `out`.
    pub fn key(&mut self, key: Key, out: &mut String) -> Edit {
        match key {
            Key::Enter => return self.finish(out),
            Key::Char('\u{3}') => {
                out.push_str("^C\n");
                self.reset();
                return Edit::Cancelled;
            }
            Key::Char(c) if (' '..='~').contains(&c) => self.insert(c, out),
            Key::Char('\u{1}') | Key::Home => self.move_to(0, out),
            Key::Char('\u{5}') | Key::End => self.move_to(self.line.len(), out),
            Key::Char('\u{2}') | Key::Left => self.move_to(self.cursor.saturating_sub(1), out),
            Key::Char('\u{6}') | Key::Right => self.move_to(self.cursor + 1, out),
            Key::Backspace if self.cursor > 0 => {
                self.move_to(self.cursor - 1, out);
                self.delete(1, out);
            }
            Key::Delete | Key::Char('\u{4}') => self.delete(1, out),
            Key::Char('\u{b}') => self.delete(self.line.len() - self.cursor, out),
            Key::Char('\u{15}') => {
                let n = self.cursor;
                self.move_to(0, out);
                self.delete(n, out);
            }
            Key::Up => self.recall(self.browse.checked_sub(1), out),
            Key::Down => self.recall(Some(self.browse + 1), out),
            _ => {}
        }
        Edit::Editing
    }

    fn finish(&mut self, out: &mut String) -> Edit {
        out.push('\n');
        let line = core::mem::take(&mut self.line);
        if !line.trim().is_empty() && self.history.back() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        self.reset();
        Edit::Done(line)
    }

    fn reset(&mut self) {
        self.line.clear();
        self.draft.clear();
        self.cursor = 0;
        self.browse = self.history.len();
    }

    fn insert(&mut self, c: char, out: &mut String) {
        if self.line.len() >= self.max_len {
            return;
        }
        self.line.insert(self.cursor, c);
        self.cursor += 1;
        out.push_str(&self.line[self.cursor - 1..]);
        back(out, self.line.len() - self.cursor);
    }

    fn move_to(&mut self, to: usize, out: &mut String) {
        let to = to.min(self.line.len());
        if to < self.cursor {
            back(out, self.cursor - to);
        } else {
            out.push_str(&self.line[self.cursor..to]);
        }
        self.cursor = to;
    }

    /// Removes `n` characters at the cursor and redraws the tail.
    fn delete(&mut self, n: usize, out: &mut String) {
        let n = n.min(self.line.len() - self.cursor);
        if n == 0 {
            return;
        }
        self.line.replace_range(self.cursor..self.cursor + n, "");
        out.push_str(&self.line[self.cursor..]);
        out.push_str("\x1b[K");
        back(out, self.line.len() - self.cursor);
    }

    /// Shows history entry `at` (`history.len()`: the draft again).
    fn recall(&mut self, at: Option<usize>, out: &mut String) {
        let Some(at) = at.filter(|&a| a <= self.history.len()) else {
            return;
        };
        if at == self.browse {
            return;
        }
        if self.browse == self.history.len() {
            self.draft = self.line.clone();
        }
        self.browse = at;
        self.line = match self.history.get(at) {
            Some(h) => h.clone(),
            None => self.draft.clone(),
        };
        self.cursor = self.line.len();
        out.push('\r');
        out.push_str(self.prompt);
        out.push_str(&self.line);
        out.push_str("\x1b[K");
    }
}

fn back(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push('\x08');
    }
}
