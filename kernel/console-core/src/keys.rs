//! Keys, from either input: the bytes a serial terminal sends (ANSI escape sequences
//! for the cursor and paging keys) and the PS/2 keyboard's scancodes (set 1 when the
//! i8042 translates, else set 2), decoded with the US layout by `pc-keyboard`. Both
//! become one `Key`, so one line editor serves both.

use pc_keyboard::layouts::Us104Key;
use pc_keyboard::{
    DecodedKey, EventDecoder, HandleControl, KeyCode, KeyEvent, KeyState, ScancodeSet,
    ScancodeSet1, ScancodeSet2,
};

/// A key the console acts on. Control characters (Ctrl-A = '\u{1}' ...) are `Char`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A character, control characters included.
    Char(char),
    /// Enter (CR or LF from a terminal).
    Enter,
    /// Backspace (DEL or BS from a terminal).
    Backspace,
    /// Delete, the key right of the cursor's character.
    Delete,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Cursor up: the previous history line.
    Up,
    /// Cursor down: the next history line.
    Down,
    /// Home: the start of the line.
    Home,
    /// End: the end of the line.
    End,
    /// Page Up/Down scroll the screen's history (with or without Shift).
    PageUp,
    /// See `PageUp`.
    PageDown,
}

impl Key {
    /// A compact code for a lock-free ring (chars below 0x11_0000, keys above).
    pub fn code(self) -> u32 {
        match self {
            Key::Char(c) => c as u32,
            k => 0x11_0000 + k.index(),
        }
    }

    fn index(self) -> u32 {
        match self {
            Key::Char(_) => 0,
            Key::Enter => 1,
            Key::Backspace => 2,
            Key::Delete => 3,
            Key::Left => 4,
            Key::Right => 5,
            Key::Up => 6,
            Key::Down => 7,
            Key::Home => 8,
            Key::End => 9,
            Key::PageUp => 10,
            Key::PageDown => 11,
        }
    }

    /// The key a [`Key::code`] stands for; `None` for a code no key has.
    pub fn from_code(code: u32) -> Option<Key> {
        const KEYS: [Key; 11] = [
            Key::Enter,
            Key::Backspace,
            Key::Delete,
            Key::Left,
            Key::Right,
            Key::Up,
            Key::Down,
            Key::Home,
            Key::End,
            Key::PageUp,
            Key::PageDown,
        ];
        match code {
            0x11_0001..=0x11_000b => Some(KEYS[(code - 0x11_0001) as usize]),
            c => char::from_u32(c).map(Key::Char),
        }
    }
}

/// Decoder state for the bytes of a serial terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnsiDecoder {
    state: AnsiState,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum AnsiState {
    #[default]
    Ground,
    Esc,
    /// `ESC [` or `ESC O`, with the first numeric parameter so far; `true` once past
    /// it (further parameters, such as Shift's `;2`, are ignored).
    Csi(u16, bool),
}

impl AnsiDecoder {
    /// A decoder waiting for the first byte of a key.
    pub const fn new() -> AnsiDecoder {
        AnsiDecoder {
            state: AnsiState::Ground,
        }
    }

    /// Feeds one byte; a key when one is complete. Bytes outside printable ASCII and
    /// the editing controls are dropped (the shell's lines are ASCII).
    pub fn feed(&mut self, b: u8) -> Option<Key> {
        match self.state {
            AnsiState::Ground => match b {
                0x1b => {
                    self.state = AnsiState::Esc;
                    None
                }
                b'\r' | b'\n' => Some(Key::Enter),
                0x08 | 0x7f => Some(Key::Backspace),
                0x01..=0x1f => Some(Key::Char(b as char)),
                0x20..=0x7e => Some(Key::Char(b as char)),
                _ => None,
            },
            AnsiState::Esc => {
                self.state = match b {
                    b'[' | b'O' => AnsiState::Csi(0, false),
                    _ => AnsiState::Ground,
                };
                None
            }
            AnsiState::Csi(n, rest) => self.csi(n, rest, b),
        }
    }

    fn csi(&mut self, n: u16, rest: bool, b: u8) -> Option<Key> {
        if b.is_ascii_digit() {
            if !rest {
                let n = n.saturating_mul(10).saturating_add(u16::from(b - b'0'));
                self.state = AnsiState::Csi(n, false);
            }
            return None;
        }
        if b == b';' {
            // Modifier parameters (Shift+PgUp is `ESC [ 5 ; 2 ~`).
            self.state = AnsiState::Csi(n, true);
            return None;
        }
        self.state = AnsiState::Ground;
        match (b, n) {
            (b'A', _) => Some(Key::Up),
            (b'B', _) => Some(Key::Down),
            (b'C', _) => Some(Key::Right),
            (b'D', _) => Some(Key::Left),
            (b'H', _) | (b'~', 1 | 7) => Some(Key::Home),
            (b'F', _) | (b'~', 4 | 8) => Some(Key::End),
            (b'~', 3) => Some(Key::Delete),
            (b'~', 5) => Some(Key::PageUp),
            (b'~', 6) => Some(Key::PageDown),
            _ => None,
        }
    }
}

/// Which scancode set the keyboard's bytes arrive in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScancodeSetKind {
    /// Set 1: what an i8042 with translation on delivers.
    One,
    /// Set 2: the keyboard's own set, untranslated.
    Two,
}

enum Set {
    One(ScancodeSet1),
    Two(ScancodeSet2),
}

/// Scancode bytes to keys: the set's state machine, then the US layout with Shift,
/// Ctrl (letters become control characters) and Caps Lock.
pub struct KeyboardDecoder {
    set: Set,
    layout: EventDecoder<Us104Key>,
}

impl KeyboardDecoder {
    /// A decoder for scancode set `kind` (set 1 when the i8042 translates, else set 2).
    pub fn new(kind: ScancodeSetKind) -> KeyboardDecoder {
        KeyboardDecoder {
            set: match kind {
                ScancodeSetKind::One => Set::One(ScancodeSet1::new()),
                ScancodeSetKind::Two => Set::Two(ScancodeSet2::new()),
            },
            layout: EventDecoder::new(Us104Key, HandleControl::MapLettersToUnicode),
        }
    }

    /// Feeds one byte from the keyboard; a key when a press completes one. Malformed
    /// sequences reset the set's state (a lost byte costs one key, not the keyboard).
    pub fn feed(&mut self, byte: u8) -> Option<Key> {
        let event = match &mut self.set {
            Set::One(s) => s.advance_state(byte),
            Set::Two(s) => s.advance_state(byte),
        };
        let event = match event {
            Ok(Some(e)) => e,
            Ok(None) => return None,
            Err(_) => {
                self.reset_set();
                return None;
            }
        };
        self.key(event)
    }

    fn reset_set(&mut self) {
        self.set = match self.set {
            Set::One(_) => Set::One(ScancodeSet1::new()),
            Set::Two(_) => Set::Two(ScancodeSet2::new()),
        };
    }

    fn key(&mut self, event: KeyEvent) -> Option<Key> {
        let down = event.state == KeyState::Down;
        match self.layout.process_keyevent(event)? {
            DecodedKey::Unicode('\n') => Some(Key::Enter),
            DecodedKey::Unicode('\u{8}') => Some(Key::Backspace),
            DecodedKey::Unicode('\u{7f}') => Some(Key::Delete),
            DecodedKey::Unicode(c) => Some(Key::Char(c)),
            DecodedKey::RawKey(k) if down => raw_key(k),
            DecodedKey::RawKey(_) => None,
        }
    }
}

fn raw_key(k: KeyCode) -> Option<Key> {
    Some(match k {
        KeyCode::ArrowLeft => Key::Left,
        KeyCode::ArrowRight => Key::Right,
        KeyCode::ArrowUp => Key::Up,
        KeyCode::ArrowDown => Key::Down,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        _ => return None,
    })
}
