//! Keys from a serial terminal and from PS/2 scancodes of both sets.

use sluice_console::keys::{AnsiDecoder, Key, KeyboardDecoder, ScancodeSetKind};

fn ansi(bytes: &[u8]) -> Vec<Key> {
    let mut d = AnsiDecoder::default();
    bytes.iter().filter_map(|&b| d.feed(b)).collect()
}

#[test]
fn terminal_sequences() {
    assert_eq!(
        ansi(b"a\x1b[A\x1b[B\x1b[C\x1b[D\x1bOH\x1b[4~\x1b[3~\x1b[5~\x1b[6;2~\r\x7f"),
        [
            Key::Char('a'),
            Key::Up,
            Key::Down,
            Key::Right,
            Key::Left,
            Key::Home,
            Key::End,
            Key::Delete,
            Key::PageUp,
            Key::PageDown,
            Key::Enter,
            Key::Backspace
        ]
    );
    assert_eq!(
        ansi(b"\x1b[99~x\xc3\xa9"),
        [Key::Char('x')],
        "unknown and non-ASCII dropped"
    );
}

fn ps2(kind: ScancodeSetKind, bytes: &[u8]) -> Vec<Key> {
    let mut d = KeyboardDecoder::new(kind);
    bytes.iter().filter_map(|&b| d.feed(b)).collect()
}

#[test]
fn set1_letters_shift_ctrl_caps_and_extended_keys() {
    use ScancodeSetKind::One;
    // a, Shift+a, Ctrl+c, Caps Lock then b, Enter, Backspace, Up, PgUp (E0 49), Left
    let bytes = [
        0x1e, 0x9e, 0x2a, 0x1e, 0x9e, 0xaa, 0x1d, 0x2e, 0xae, 0x9d, 0x3a, 0xba, 0x30, 0xb0, 0x3a,
        0xba, 0x1c, 0x9c, 0x0e, 0x8e, 0xe0, 0x48, 0xe0, 0xc8, 0xe0, 0x49, 0xe0, 0xc9, 0xe0, 0x4b,
    ];
    assert_eq!(
        ps2(One, &bytes),
        [
            Key::Char('a'),
            Key::Char('A'),
            Key::Char('\u{3}'),
            Key::Char('B'),
            Key::Enter,
            Key::Backspace,
            Key::Up,
            Key::PageUp,
            Key::Left
        ]
    );
}

#[test]
fn set2_the_same_keys() {
    use ScancodeSetKind::Two;
    // a, Shift+1 ('!'), Enter, Down (E0 72), Home (E0 6C)
    let bytes = [
        0x1c, 0xf0, 0x1c, 0x12, 0x16, 0xf0, 0x16, 0xf0, 0x12, 0x5a, 0xf0, 0x5a, 0xe0, 0x72, 0xe0,
        0xf0, 0x72, 0xe0, 0x6c,
    ];
    assert_eq!(
        ps2(Two, &bytes),
        [
            Key::Char('a'),
            Key::Char('!'),
            Key::Enter,
            Key::Down,
            Key::Home
        ]
    );
}

#[test]
fn key_codes_round_trip() {
    for k in [
        Key::Char('q'),
        Key::Char('\u{3}'),
        Key::Enter,
        Key::PageDown,
        Key::End,
    ] {
        assert_eq!(Key::from_code(k.code()), Some(k));
    }
}
