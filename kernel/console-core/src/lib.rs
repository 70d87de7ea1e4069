//! The console's pure logic, shared by the kernel and the host (its tests, and the
//! launcher's image builder and screen checks):
//!
//! - `text`: the screen's text model: rows, scrollback ring, cursor, a VT100 subset;
//! - `paint`: glyphs into any framebuffer format; font choice per resolution;
//! - `read`: the text back out of a picture of the screen (tests read QEMU's screendump);
//! - `keys`: ANSI bytes and PS/2 scancodes (sets 1 and 2, US layout) to keys;
//! - `line`: the line editor both inputs feed, with history;
//! - `script`: the boot-script format a USB image carries.
//!
#![doc = include_str!("../README.md")]
#![no_std]

extern crate alloc;

pub mod keys;
pub mod line;
pub mod paint;
pub mod read;
pub mod script;
pub mod text;
