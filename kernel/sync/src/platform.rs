//! What the locks need from the machine: the local CPU's interrupt flag, which context
//! it runs in, its held-lock stack, and where reports go. The kernel sets these once at
//! boot ([`set_platform`]); until then (and on the host) defaults apply.
//!
//! The hooks sit behind one atomic pointer, so reading them takes no lock and a lock can
//! be taken before, during and after the kernel installs its own.

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::held::HeldLocks;
use crate::validator::Report;

/// What the local CPU is executing, as far as locking is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// Ordinary code (the shell, boot, a task).
    Task,
    /// A hardware interrupt's handler (and whatever it calls).
    HardIrq,
    /// A non-maskable interrupt: nothing can be kept out of it, so the validator leaves
    /// it alone (its locks must be of a kind that never waits on its own CPU).
    Nmi,
}

/// The machine's side of locking. Every hook acts on the calling CPU.
pub struct Platform {
    /// Whether interrupts are enabled.
    pub irqs_enabled: fn() -> bool,
    /// Disables interrupts; returns whether they were enabled.
    pub disable_irqs: fn() -> bool,
    /// Re-enables interrupts if `was_enabled` (what `disable_irqs` returned).
    pub restore_irqs: fn(was_enabled: bool),
    /// What this CPU is executing.
    pub context: fn() -> Context,
    /// This CPU's index (reports name it).
    pub cpu: fn() -> u32,
    /// This CPU's held-lock stack, `None` while it has none (early boot): the validator
    /// then skips the acquisition. The stack must belong to this CPU alone.
    pub held_locks: fn() -> Option<&'static HeldLocks>,
    /// Called once per violation after it is recorded, with validation suspended on this
    /// CPU (the sink may take locks, e.g. the console's).
    pub report: fn(&Report),
}

static PLATFORM: AtomicPtr<Platform> =
    AtomicPtr::new(&DEFAULT_PLATFORM as *const Platform as *mut Platform);

/// Installs the machine's hooks (once, at boot, before other CPUs start).
pub fn set_platform(p: &'static Platform) {
    PLATFORM.store(p as *const Platform as *mut Platform, Ordering::Release);
}

/// The hooks in force.
pub(crate) fn platform() -> &'static Platform {
    // SAFETY: PLATFORM only ever holds a pointer made from a `&'static Platform`.
    unsafe { &*PLATFORM.load(Ordering::Acquire) }
}

/// Whether interrupts are enabled on this CPU (through the hooks).
pub fn irqs_enabled() -> bool {
    (platform().irqs_enabled)()
}

/// What this CPU is executing (through the hooks).
pub fn context() -> Context {
    (platform().context)()
}

/// The defaults: on the host, thread-local state that tests drive (`crate::host`); on
/// the bare-metal target, the real interrupt flag and no validation until the kernel
/// installs its hooks.
#[cfg(not(target_os = "none"))]
static DEFAULT_PLATFORM: Platform = crate::host::PLATFORM;

#[cfg(target_os = "none")]
static DEFAULT_PLATFORM: Platform = Platform {
    irqs_enabled: bare::irqs_enabled,
    disable_irqs: bare::disable_irqs,
    restore_irqs: bare::restore_irqs,
    context: || Context::Task,
    cpu: || 0,
    held_locks: || None,
    report: |_| {},
};

/// The interrupt flag of the CPU we run on, so an interrupt-safe lock taken before the
/// kernel installs its hooks still keeps interrupts out.
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod bare {
    /// RFLAGS.IF (SDM vol. 1, 3.4.3.3).
    const IF: u64 = 1 << 9;

    pub fn irqs_enabled() -> bool {
        let flags: u64;
        // SAFETY: reads RFLAGS through the stack; changes nothing else.
        unsafe {
            core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags))
        };
        flags & IF != 0
    }

    pub fn disable_irqs() -> bool {
        let was = irqs_enabled();
        // SAFETY: CLI only clears IF; no memory clobber is declared away, so the compiler
        // keeps the critical section's accesses after it.
        unsafe { core::arch::asm!("cli", options(nostack, preserves_flags)) };
        was
    }

    pub fn restore_irqs(was_enabled: bool) {
        if was_enabled {
            // SAFETY: STI sets IF; they were enabled when `disable_irqs` ran.
            unsafe { core::arch::asm!("sti", options(nostack, preserves_flags)) };
        }
    }
}

/// A bare-metal target we have no interrupt code for: nothing to disable.
#[cfg(all(target_os = "none", not(target_arch = "x86_64")))]
mod bare {
    pub fn irqs_enabled() -> bool {
        false
    }
    pub fn disable_irqs() -> bool {
        false
    }
    pub fn restore_irqs(_was_enabled: bool) {}
}
