//! The line editor: what each key does to the line and to the display.

use sluice_console::keys::Key;
use sluice_console::line::{Edit, LineEditor};

fn type_keys(e: &mut LineEditor, keys: &[Key]) -> (String, Edit) {
    let mut out = String::new();
    let mut last = Edit::Editing;
    for &k in keys {
        last = e.key(k, &mut out);
    }
    (out, last)
}

fn chars(s: &str) -> Vec<Key> {
    s.chars().map(Key::Char).collect()
}

#[test]
fn plain_typing_echoes_exactly_what_was_typed() {
    let mut e = LineEditor::new("> ", 256);
    let mut keys = chars("info");
    keys.push(Key::Enter);
    let (out, edit) = type_keys(&mut e, &keys);
    assert_eq!(out, "info\n");
    assert_eq!(edit, Edit::Done("info".into()));
}

#[test]
fn editing_in_the_middle_redraws_the_tail() {
    let mut e = LineEditor::new("> ", 256);
    let mut keys = chars("ifo");
    keys.extend([Key::Left, Key::Left, Key::Char('n')]);
    let (out, _) = type_keys(&mut e, &keys);
    assert_eq!(e.line(), "info");
    assert_eq!(e.cursor(), 2);
    assert!(out.ends_with("\x08\x08nfo\x08\x08"), "{out:?}");
    let (out, _) = type_keys(&mut e, &[Key::Backspace]);
    assert_eq!(e.line(), "ifo");
    assert_eq!(out, "\x08fo\x1b[K\x08\x08");
    type_keys(&mut e, &[Key::Home, Key::Delete, Key::End, Key::Char('x')]);
    assert_eq!(e.line(), "fox");
}

#[test]
fn history_recalls_previous_lines_and_the_draft() {
    let mut e = LineEditor::new("> ", 256);
    for l in ["one", "two"] {
        let mut k = chars(l);
        k.push(Key::Enter);
        type_keys(&mut e, &k);
    }
    type_keys(&mut e, &chars("dr"));
    let (out, _) = type_keys(&mut e, &[Key::Up]);
    assert_eq!(out, "\r> two\x1b[K");
    type_keys(&mut e, &[Key::Up, Key::Up]);
    assert_eq!(e.line(), "one", "stops at the oldest");
    type_keys(&mut e, &[Key::Down, Key::Down]);
    assert_eq!(e.line(), "dr", "back to the draft");
    let (_, edit) = type_keys(&mut e, &[Key::Up, Key::Enter]);
    assert_eq!(edit, Edit::Done("two".into()));
}

#[test]
fn control_keys() {
    let mut e = LineEditor::new("> ", 256);
    type_keys(&mut e, &chars("hello world"));
    type_keys(
        &mut e,
        &[Key::Char('\u{1}'), Key::Right, Key::Char('\u{b}')],
    );
    assert_eq!(e.line(), "h");
    type_keys(&mut e, &[Key::End]);
    type_keys(&mut e, &chars("ey"));
    type_keys(&mut e, &[Key::Left, Key::Char('\u{15}')]);
    assert_eq!(e.line(), "y");
    let (out, edit) = type_keys(&mut e, &[Key::Char('\u{3}')]);
    assert_eq!(edit, Edit::Cancelled);
    assert!(out.ends_with("^C\n"));
    assert_eq!(e.line(), "");
}

#[test]
fn lines_stop_at_the_limit_and_keep_ascii() {
    let mut e = LineEditor::new("> ", 3);
    type_keys(&mut e, &chars("abcdé\u{7}"));
    assert_eq!(e.line(), "abc");
}
