//! COM1, the console: a 16550 UART at I/O port 0x3F8, 115200 8N1.
//!
//! Output is polled (the console must work from panic and exception context); input is
//! interrupt driven: the receive interrupt (ISA IRQ 4 through the I/O APIC) drains the
//! FIFO into a ring buffer that the shell reads. We drive the UART ourselves rather than
//! through `uart_16550` because tests need the loopback bit (MCR.LOOP) to inject a byte
//! that raises a real receive interrupt.

use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3F8;

/// Register offsets from the base port (PC16550D datasheet, table 2).
mod reg {
    pub const DATA: u16 = 0; // RBR / THR, or DLL with DLAB
    pub const IER: u16 = 1; // or DLM with DLAB
    pub const FCR: u16 = 2; // write: FIFO control; read: IIR
    pub const LCR: u16 = 3;
    pub const MCR: u16 = 4;
    pub const LSR: u16 = 5;
}

bitflags::bitflags! {
    #[derive(Clone, Copy)]
    struct Lsr: u8 {
        const DATA_READY = 1 << 0;
        const THR_EMPTY = 1 << 5;
    }
    #[derive(Clone, Copy)]
    struct Mcr: u8 {
        const DTR = 1 << 0;
        const RTS = 1 << 1;
        /// On PCs OUT2 gates the UART's interrupt line onto the ISA bus.
        const OUT2 = 1 << 3;
        const LOOP = 1 << 4;
    }
}

const IER_RX_AVAILABLE: u8 = 1 << 0;
const LCR_DLAB: u8 = 1 << 7;
const LCR_8N1: u8 = 0x03;
/// Enable and clear both FIFOs, interrupt at 1 byte (so every typed key is seen at once).
const FCR_ENABLE_CLEAR: u8 = 0x07;
const DIVISOR_115200: u16 = 1;

fn port(offset: u16) -> Port<u8> {
    Port::new(COM1 + offset)
}

fn read(offset: u16) -> u8 {
    // SAFETY: COM1's registers are I/O ports owned by this module; reads have no side
    // effect beyond the UART's own (RBR pops the FIFO, which callers intend).
    unsafe { port(offset).read() }
}

fn write(offset: u16, value: u8) {
    // SAFETY: as in `read`; the UART is only programmed from this module.
    unsafe { port(offset).write(value) }
}

/// Programs the UART. Safe to call again (e.g. after the firmware used it).
pub fn init() {
    write(reg::IER, 0);
    write(reg::LCR, LCR_DLAB);
    write(reg::DATA, (DIVISOR_115200 & 0xff) as u8);
    write(reg::IER, (DIVISOR_115200 >> 8) as u8);
    write(reg::LCR, LCR_8N1);
    write(reg::FCR, FCR_ENABLE_CLEAR);
    write(reg::MCR, (Mcr::DTR | Mcr::RTS | Mcr::OUT2).bits());
}

/// Turns on the receive-data interrupt; the I/O APIC line must be routed first.
pub fn enable_rx_interrupt() {
    write(reg::IER, IER_RX_AVAILABLE);
}

/// Loopback mode: transmitted bytes come back as received ones (and raise the receive
/// interrupt) without reaching the wire. Used by tests to inject input.
pub fn set_loopback(on: bool) {
    let mut mcr = Mcr::DTR | Mcr::RTS | Mcr::OUT2;
    if on {
        mcr |= Mcr::LOOP;
    }
    write(reg::MCR, mcr.bits());
}

/// Upper bound on waiting for the transmitter; at 115200 baud one byte takes ~87 µs, so
/// this only trips if there is no UART at all (then output is dropped, not hung).
const TX_SPIN_LIMIT: u32 = 1_000_000;

fn put_byte(b: u8) {
    for _ in 0..TX_SPIN_LIMIT {
        if Lsr::from_bits_truncate(read(reg::LSR)).contains(Lsr::THR_EMPTY) {
            write(reg::DATA, b);
            return;
        }
        core::hint::spin_loop();
    }
}

/// Takes one byte out of the receive FIFO if there is one.
pub fn poll_byte() -> Option<u8> {
    if Lsr::from_bits_truncate(read(reg::LSR)).contains(Lsr::DATA_READY) {
        Some(read(reg::DATA))
    } else {
        None
    }
}

/// Writes raw bytes, translating `\n` to `\r\n`.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            put_byte(b'\r');
        }
        put_byte(b);
    }
}

/// Serialises whole lines from different CPUs and contexts. Protects: the transmitter.
/// Lock order: innermost (nothing is taken while it is held).
pub static CONSOLE: Mutex<Console> = Mutex::new(Console);

pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// 1 + the index of the CPU holding CONSOLE, 0 when free.
static CONSOLE_OWNER: AtomicU32 = AtomicU32::new(0);

/// Runs `f` with the console locked and interrupts off, so an interrupt handler that
/// logs cannot deadlock against the code it interrupted.
pub fn with_console<R>(f: impl FnOnce(&mut Console) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut c = CONSOLE.lock();
        CONSOLE_OWNER.store(crate::arch::cpu::current_index() + 1, Ordering::Relaxed);
        let r = f(&mut c);
        CONSOLE_OWNER.store(0, Ordering::Relaxed);
        r
    })
}

/// Is the console held by the CPU asking? An NMI cannot be masked, so one that lands
/// while its own CPU is printing must not log: it would wait on itself forever.
pub fn held_by_this_cpu() -> bool {
    CONSOLE_OWNER.load(Ordering::Relaxed) == crate::arch::cpu::current_index() + 1
}

/// Panic path: takes the console even if a crashed context holds it.
pub fn force_unlock() {
    if CONSOLE.is_locked() {
        // SAFETY: only called on the panic path after all other CPUs are stopped or
        // the holder is the panicking context itself, which will never release it.
        unsafe { CONSOLE.force_unlock() };
    }
}

/// Receive ring filled by the interrupt handler and drained by the shell.
/// Protects: the ring's contents. Lock order: innermost; taken with interrupts off.
static RX: Mutex<RxRing> = Mutex::new(RxRing {
    buf: [0; RX_CAP],
    head: 0,
    len: 0,
    dropped: 0,
});
const RX_CAP: usize = 1024;

struct RxRing {
    buf: [u8; RX_CAP],
    head: usize,
    len: usize,
    dropped: u64,
}

/// Interrupt handler body: moves every byte in the FIFO into the ring.
pub fn handle_rx_interrupt() -> usize {
    let mut n = 0;
    let mut rx = RX.lock();
    while let Some(b) = poll_byte() {
        n += 1;
        if rx.len == RX_CAP {
            rx.dropped += 1;
            continue;
        }
        let tail = (rx.head + rx.len) % RX_CAP;
        rx.buf[tail] = b;
        rx.len += 1;
    }
    n
}

/// Takes the next received byte, if any.
pub fn read_byte() -> Option<u8> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut rx = RX.lock();
        if rx.len == 0 {
            return None;
        }
        let b = rx.buf[rx.head];
        rx.head = (rx.head + 1) % RX_CAP;
        rx.len -= 1;
        Some(b)
    })
}

/// Removes and returns the newest byte in the ring (tests take back a byte they
/// injected without disturbing input that arrived before it).
pub fn take_newest() -> Option<u8> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut rx = RX.lock();
        if rx.len == 0 {
            return None;
        }
        rx.len -= 1;
        Some(rx.buf[(rx.head + rx.len) % RX_CAP])
    })
}

/// Bytes lost because the ring was full.
pub fn rx_dropped() -> u64 {
    x86_64::instructions::interrupts::without_interrupts(|| RX.lock().dropped)
}
