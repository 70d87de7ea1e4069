//! The shell's input: keys from the PS/2 keyboard and from COM1 (whose bytes pass an
//! ANSI decoder for the cursor and paging keys), merged into one stream for one line
//! editor. Paging keys from COM1 move the screen's view, as on the keyboard.

use sluice_console::keys::{AnsiDecoder, Key};

/// COM1's escape-sequence state. Protects: the decoder. Taken only by the shell (task
/// context, interrupts on). Lock order: `sync::order` (COM1's receive ring and the
/// screen are taken under it).
static ANSI: sluice_sync::SpinLock<AnsiDecoder> =
    sluice_sync::SpinLock::new(&crate::sync::order::ANSI, AnsiDecoder::new());

/// The next key from either input, if one is waiting.
pub fn read_key() -> Option<Key> {
    if let Some(k) = super::keyboard::read_key() {
        return Some(k);
    }
    let mut ansi = ANSI.lock();
    while let Some(b) = super::serial::read_byte() {
        match ansi.feed(b) {
            Some(Key::PageUp) => super::screen::scroll_pages(1),
            Some(Key::PageDown) => super::screen::scroll_pages(-1),
            Some(k) => return Some(k),
            None => {}
        }
    }
    None
}
