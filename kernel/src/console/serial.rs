//! COM1, the console: a 16550 UART at I/O port 0x3F8, 115200 8N1, driven through the
//! `uart_16550` crate.
//!
//! Output is polled (the console must work from panic and exception context); input is
//! interrupt driven: the receive interrupt (ISA IRQ 4 through the I/O APIC) drains the
//! FIFO into a ring buffer that the shell reads. A PC without a UART at 0x3F8 (most
//! laptops) fails the crate's presence check: output is then dropped, never waited on.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use sluice_sync::IrqSpinLock;
use uart_16550::backend::{Backend, PioBackend};
use uart_16550::spec::registers::{FifoTriggerLevel, IER, MCR, offsets};
use uart_16550::{BaudRate, Config, Uart16550};

const COM1: u16 = 0x3F8;

const fn com1() -> Uart16550<PioBackend> {
    // SAFETY: 0x3F8..0x3FF is COM1 on every PC (or nothing: the presence check in `init`
    // finds out); this module is its only user.
    match unsafe { Uart16550::new_port(COM1) } {
        Ok(u) => u,
        Err(_) => panic!("COM1's eight ports fit below 0x10000"),
    }
}

/// The UART was found and programmed; until then (and on PCs without one) output is
/// dropped and input polling finds nothing.
static PRESENT: AtomicBool = AtomicBool::new(false);

/// Programs the UART: 115200 8N1, FIFO on with a 1-byte receive trigger (so every
/// typed key is seen at once), interrupts off until `enable_rx_interrupt`. Safe to call
/// again (e.g. after the firmware used it).
pub fn init() {
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        fifo_trigger_level: Some(FifoTriggerLevel::One),
        interrupts: IER::empty(),
        ..Config::DEFAULT
    };
    let ok = CONSOLE.lock().uart.init(config).is_ok();
    PRESENT.store(ok, Ordering::Release);
}

/// Turns on the receive-data interrupt; the I/O APIC line must be routed first.
pub fn enable_rx_interrupt() {
    if PRESENT.load(Ordering::Acquire) {
        with_console(|c| c.uart.enable_interrupts(IER::DATA_READY));
    }
}

/// Loopback mode: transmitted bytes come back as received ones (and raise the receive
/// interrupt) without reaching the wire. Used by tests to inject input. The crate only
/// uses loopback inside its own self-test, so this pokes the one register (MCR) itself.
pub fn set_loopback(on: bool) {
    let mut mcr = MCR::DTR | MCR::RTS | MCR::OUT_2_INT_ENABLE;
    if on {
        mcr |= MCR::LOOP_BACK;
    }
    with_console(|c| {
        // SAFETY: MCR of COM1, whose port range the crate validated; only the modem
        // control lines and the loopback bit change.
        unsafe { c.uart.backend_mut().write(offsets::MCR as u8, mcr.bits()) }
    });
}

/// Upper bound on waiting for the transmitter; at 115200 baud one byte takes ~87 µs, so
/// this only trips if the UART stopped answering (then output is dropped, not hung).
const TX_SPIN_LIMIT: u32 = 1_000_000;

impl Console {
    fn put_byte(&mut self, b: u8) {
        if !PRESENT.load(Ordering::Relaxed) {
            return;
        }
        for _ in 0..TX_SPIN_LIMIT {
            if self.uart.try_send_byte(b).is_ok() {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Writes raw bytes, translating `\n` to `\r\n`.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put_byte(b'\r');
            }
            self.put_byte(b);
        }
    }

    /// Takes one byte out of the receive FIFO if there is one.
    fn poll_byte(&mut self) -> Option<u8> {
        if !PRESENT.load(Ordering::Relaxed) {
            return None;
        }
        self.uart.try_receive_byte().ok()
    }
}

/// Serialises whole lines from different CPUs and contexts. Protects: the transmitter.
/// Interrupt-safe: handlers log. Lock order: a leaf (every path may log); only the
/// receive ring is taken inside it (`sync::order`).
pub static CONSOLE: IrqSpinLock<Console> =
    IrqSpinLock::new(&crate::sync::order::CONSOLE, Console { uart: com1() });

pub struct Console {
    uart: Uart16550<PioBackend>,
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// 1 + the index of the CPU holding CONSOLE, 0 when free.
static CONSOLE_OWNER: AtomicU32 = AtomicU32::new(0);

/// Runs `f` with the console locked (and so interrupts off: a handler that logs cannot
/// deadlock against the code it interrupted). The lock is recorded at the caller's site.
#[track_caller]
pub fn with_console<R>(f: impl FnOnce(&mut Console) -> R) -> R {
    let mut c = CONSOLE.lock();
    CONSOLE_OWNER.store(crate::arch::cpu::current_index() + 1, Ordering::Relaxed);
    let r = f(&mut c);
    CONSOLE_OWNER.store(0, Ordering::Relaxed);
    r
}

/// Is the console held by the CPU asking? An NMI cannot be masked, so one that lands
/// while its own CPU is printing must not log: it would wait on itself forever.
pub fn held_by_this_cpu() -> bool {
    CONSOLE_OWNER.load(Ordering::Relaxed) == crate::arch::cpu::current_index() + 1
}

/// Panic path: takes the console even if a crashed context holds it. From here on lock
/// discipline is broken on purpose, so the lock validator stops (its picture of which
/// CPU holds what is no longer true).
pub fn force_unlock() {
    sluice_sync::validator::set_enabled(false);
    if CONSOLE.is_locked() {
        // SAFETY: only called on the panic path after all other CPUs are stopped or
        // the holder is the panicking context itself, which will never release it.
        unsafe { CONSOLE.force_unlock() };
    }
}

/// Receive ring filled by the interrupt handler and drained by the shell.
/// Protects: the ring's contents. Interrupt-safe. Lock order: innermost (under CONSOLE
/// in the handler).
static RX: IrqSpinLock<RxRing> = IrqSpinLock::new(
    &crate::sync::order::CONSOLE_RX,
    RxRing {
        buf: [0; RX_CAP],
        head: 0,
        len: 0,
        dropped: 0,
    },
);
const RX_CAP: usize = 1024;

struct RxRing {
    buf: [u8; RX_CAP],
    head: usize,
    len: usize,
    dropped: u64,
}

/// Interrupt handler body: moves every byte in the FIFO into the ring.
pub fn handle_rx_interrupt() -> usize {
    with_console(|console| {
        let mut n = 0;
        let mut rx = RX.lock();
        while let Some(b) = console.poll_byte() {
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
    })
}

/// Writes bytes to COM1 (`\n` becomes `\r\n`).
pub fn write_bytes(bytes: &[u8]) {
    with_console(|c| c.write_bytes(bytes));
}

/// Takes the next received byte, if any.
pub fn read_byte() -> Option<u8> {
    let mut rx = RX.lock();
    if rx.len == 0 {
        return None;
    }
    let b = rx.buf[rx.head];
    rx.head = (rx.head + 1) % RX_CAP;
    rx.len -= 1;
    Some(b)
}

/// Removes and returns the newest byte in the ring (tests take back a byte they
/// injected without disturbing input that arrived before it).
pub fn take_newest() -> Option<u8> {
    let mut rx = RX.lock();
    if rx.len == 0 {
        return None;
    }
    rx.len -= 1;
    Some(rx.buf[(rx.head + rx.len) % RX_CAP])
}

/// Bytes lost because the ring was full.
pub fn rx_dropped() -> u64 {
    RX.lock().dropped
}
