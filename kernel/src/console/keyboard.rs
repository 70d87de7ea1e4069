//! The PS/2 keyboard: the i8042 (`i8042`) routed as ISA IRQ 1 (with any MADT source
//! override) through the I/O APIC, an edge flow, and a handler that decodes scancodes
//! (set 1 or 2, whichever the controller delivers) into keys for the shell.
//!
//! Page Up/Down are acted on in the handler itself: they move the screen's view (the
//! painting follows from task context), so history can be read even while a command
//! runs. Any other key brings the view back to the live screen and joins the queue.

use core::sync::atomic::{AtomicU32, Ordering};
use sluice_console::keys::{Key, KeyboardDecoder, ScancodeSetKind};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::{CpuMask, Virq};
use sluice_sync::IrqSpinLock;

use super::i8042::{self, Status};

const KEYBOARD_ISA_IRQ: u8 = 1;
/// Bytes taken at most per interrupt (the controller buffers one at a time).
const BYTES_PER_IRQ: usize = 16;

/// Scancode decoder. Protects: the scancode set's and layout's state (shift, caps
/// lock). Interrupt-safe: the handler decodes; `init` installs it. Lock order:
/// `sync::order` (the key queue and the screen's text are taken under it).
static DECODER: IrqSpinLock<Option<KeyboardDecoder>> =
    IrqSpinLock::new(&crate::sync::order::KBD_DECODER, None);
/// Keys waiting for the shell, as `Key::code`s. Interrupt-safe: the handler pushes, the
/// shell pops. Lock order: a leaf.
static KEYS: IrqSpinLock<Ring> = IrqSpinLock::new(&crate::sync::order::KBD_KEYS, Ring::new());
const NONE: u32 = u32::MAX;
static VIRQ: AtomicU32 = AtomicU32::new(NONE);

/// Key queue (behind `KEYS`).
struct Ring {
    buf: [u32; 64],
    head: usize,
    len: usize,
}

impl Ring {
    const fn new() -> Ring {
        Ring {
            buf: [0; 64],
            head: 0,
            len: 0,
        }
    }
    fn push(&mut self, v: u32) {
        if self.len < self.buf.len() {
            let tail = (self.head + self.len) % self.buf.len();
            self.buf[tail] = v;
            self.len += 1;
        }
    }
    fn pop(&mut self) -> Option<u32> {
        (self.len > 0).then(|| {
            let v = self.buf[self.head];
            self.head = (self.head + 1) % self.buf.len();
            self.len -= 1;
            v
        })
    }
}

/// What `init` found, for the `console` command: the setup, or why there is none.
static STATE: spin::Once<Result<i8042::Setup, alloc::string::String>> = spin::Once::new();

pub fn state() -> Option<&'static Result<i8042::Setup, alloc::string::String>> {
    STATE.get()
}

pub fn virq() -> Option<Virq> {
    match VIRQ.load(Ordering::Relaxed) {
        NONE => None,
        v => Some(v as Virq),
    }
}

/// Sets the controller up and routes its interrupt; on a PC without a working 8042
/// this says so and the console carries on with COM1 alone.
pub fn init() {
    let untranslated = crate::qemu::fw_cfg_file("opt/sluice/i8042-untranslated").is_some();
    let setup = match i8042::init(untranslated) {
        Ok(s) => s,
        Err(e) => {
            crate::log!("PS/2 keyboard: {}; keyboard input off", e);
            STATE.call_once(|| Err(alloc::format!("{e}")));
            return;
        }
    };
    *DECODER.lock() = Some(KeyboardDecoder::new(setup.set));
    let routed = crate::irq::request_isa(
        KEYBOARD_ISA_IRQ,
        "i8042 keyboard",
        CpuMask::single(0),
        on_irq,
    )
    .and_then(|virq| crate::irq::target(virq).map(|t| (virq, t)));
    let (virq, target) = match routed {
        Ok(r) => r,
        Err(e) => {
            crate::error!("PS/2 keyboard: IRQ 1 not routed: {}; keyboard input off", e);
            STATE.call_once(|| Err(alloc::format!("IRQ 1 not routed: {e}")));
            return;
        }
    };
    VIRQ.store(virq, Ordering::Relaxed);
    if let Err(e) = i8042::enable_irq(&setup) {
        crate::error!("PS/2 keyboard: {}; keyboard input off", e);
        STATE.call_once(|| Err(alloc::format!("{e}")));
        return;
    }
    STATE.call_once(|| Ok(setup));
    crate::log!(
        "PS/2 keyboard: i8042 config {:#04x} (translation {}), scancode set {}, ISA IRQ {} -> irq {} -> CPU {} vector {:#x}",
        setup.firmware_config.bits(),
        if setup.translated { "on" } else { "off" },
        match setup.set {
            ScancodeSetKind::One => 1,
            ScancodeSetKind::Two => 2,
        },
        KEYBOARD_ISA_IRQ,
        virq,
        target.cpu,
        target.vector.0
    );
}

fn on_irq(_virq: sluice_irq_core::Virq) -> IrqReturn {
    let mut handled = IrqReturn::NotHandled;
    let mut decoder = DECODER.lock();
    for _ in 0..BYTES_PER_IRQ {
        let s = i8042::status();
        if !s.contains(Status::OUTPUT_FULL) {
            break;
        }
        let byte = i8042::read_data();
        handled = IrqReturn::Handled;
        if s.contains(Status::AUX_DATA) {
            continue; // a mouse byte: no mouse driver
        }
        if let Some(key) = decoder.as_mut().and_then(|d| d.feed(byte)) {
            deliver(key);
        }
    }
    handled
}

fn deliver(key: Key) {
    match key {
        Key::PageUp => super::screen::scroll_pages(1),
        Key::PageDown => super::screen::scroll_pages(-1),
        k => {
            super::screen::scroll_to_live();
            KEYS.lock().push(k.code());
        }
    }
}

/// The next key typed on the keyboard, if any.
pub fn read_key() -> Option<Key> {
    KEYS.lock().pop().and_then(Key::from_code)
}
