//! Panic: report, stop the other CPUs, then exit QEMU with the panic code (tests) or
//! halt forever (hardware).

use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

pub fn in_progress() -> bool {
    PANICKING.load(Ordering::Relaxed)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    if PANICKING.swap(true, Ordering::SeqCst) {
        park_this_cpu(); // a second CPU (or a nested panic): the first one reports
    }
    crate::console::serial::force_unlock();
    crate::error!("KERNEL PANIC: {}", info);
    crate::arch::backtrace::print_from_here();
    stop(crate::qemu::ExitCode::Panicked)
}

/// Stops the machine after a fatal error.
pub fn stop(code: crate::qemu::ExitCode) -> ! {
    PANICKING.store(true, Ordering::SeqCst);
    crate::smp::stop_others();
    // The report was only appended to the screen's text (interrupts are off here): with
    // every other CPU stopped, paint it, or a PC without COM1 shows nothing.
    crate::console::screen::panic_flush();
    crate::qemu::exit(code);
    park_this_cpu()
}

/// Halts this CPU forever with interrupts off (NMIs return into the loop).
pub fn park_this_cpu() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}
