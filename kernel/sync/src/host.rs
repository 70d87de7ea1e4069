//! The host's platform, the default wherever there is an operating system: each thread
//! is a CPU, and its interrupt flag, its context and its held-lock stack are
//! thread-locals. Tests (and the interrupt core's simulator, which delivers interrupts
//! as function calls) say when code runs in hard-interrupt context with [`hardirq`], and
//! read the reports their own thread caused with [`take_reports`].

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::sync::Mutex;
use std::vec::Vec;

use crate::held::HeldLocks;
use crate::platform::{Context, Platform};
use crate::validator::Report;

std::thread_local! {
    static IRQS_ON: Cell<bool> = const { Cell::new(true) };
    static HARDIRQ: Cell<u32> = const { Cell::new(0) };
    static NMI: Cell<u32> = const { Cell::new(0) };
    static CPU: Cell<u32> = const { Cell::new(0) };
    static HELD: ThreadHeld = ThreadHeld::take();
    static REPORTS: RefCell<Vec<Report>> = const { RefCell::new(Vec::new()) };
}

/// Held-lock stacks of threads that have exited, for the next thread to reuse (a
/// simulator starts many threads; each stack lives forever once made).
static SPARE: Mutex<Vec<&'static HeldLocks>> = Mutex::new(Vec::new());

/// A thread's stack, handed back to `SPARE` when the thread exits.
struct ThreadHeld(&'static HeldLocks);

impl ThreadHeld {
    fn take() -> ThreadHeld {
        let spare = SPARE.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let held = spare.unwrap_or_else(|| Box::leak(Box::new(HeldLocks::new())));
        // A thread that exited holding (leaked) guards left entries behind.
        held.with(|s| *s = HeldLocks::new().into_stack());
        ThreadHeld(held)
    }
}

impl Drop for ThreadHeld {
    fn drop(&mut self) {
        SPARE.lock().unwrap_or_else(|e| e.into_inner()).push(self.0);
    }
}

fn irqs_enabled() -> bool {
    IRQS_ON.with(Cell::get)
}

fn disable_irqs() -> bool {
    IRQS_ON.with(|c| c.replace(false))
}

fn restore_irqs(was_enabled: bool) {
    if was_enabled {
        IRQS_ON.with(|c| c.set(true));
    }
}

fn context() -> Context {
    if NMI.with(Cell::get) > 0 {
        Context::Nmi
    } else if HARDIRQ.with(Cell::get) > 0 {
        Context::HardIrq
    } else {
        Context::Task
    }
}

fn cpu() -> u32 {
    CPU.with(Cell::get)
}

fn held_locks() -> Option<&'static HeldLocks> {
    // During thread teardown the stack may be gone: nothing is validated then.
    HELD.try_with(|h| h.0).ok()
}

fn report(r: &Report) {
    std::eprintln!("lockdep: {r}");
    let _ = REPORTS.try_with(|v| v.borrow_mut().push(*r));
}

/// The host platform (the default on the host; see the module documentation).
pub(crate) const PLATFORM: Platform = Platform {
    irqs_enabled,
    disable_irqs,
    restore_irqs,
    context,
    cpu,
    held_locks,
    report,
};

/// Restores a thread's simulated interrupt state, even if the handler panicked.
struct Restore {
    irqs_on: bool,
    counter: &'static std::thread::LocalKey<Cell<u32>>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        self.counter.with(|c| c.set(c.get() - 1));
        IRQS_ON.with(|c| c.set(self.irqs_on));
    }
}

/// Runs `f` as this thread's CPU would run an interrupt handler: in hard-interrupt
/// context with interrupts disabled (as an interrupt gate leaves them), restored after.
pub fn hardirq<R>(f: impl FnOnce() -> R) -> R {
    HARDIRQ.with(|c| c.set(c.get() + 1));
    let _restore = Restore {
        irqs_on: IRQS_ON.with(|c| c.replace(false)),
        counter: &HARDIRQ,
    };
    f()
}

/// Runs `f` as a non-maskable interrupt's handler (the validator ignores it).
pub fn nmi<R>(f: impl FnOnce() -> R) -> R {
    NMI.with(|c| c.set(c.get() + 1));
    let _restore = Restore {
        irqs_on: IRQS_ON.with(|c| c.replace(false)),
        counter: &NMI,
    };
    f()
}

/// Sets this thread's simulated interrupt flag (`cli` / `sti`).
pub fn set_irqs_enabled(on: bool) {
    IRQS_ON.with(|c| c.set(on))
}

/// Names this thread's CPU in reports.
pub fn set_cpu(cpu: u32) {
    CPU.with(|c| c.set(cpu))
}

/// The reports this thread's acquisitions caused since the last call.
pub fn take_reports() -> Vec<Report> {
    REPORTS.with(|v| core::mem::take(&mut *v.borrow_mut()))
}
