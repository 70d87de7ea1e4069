//! Waiting for another CPU without holding the machine's time: halt until an NMI (or,
//! with interrupts on, any interrupt) says the thing waited for may have happened.
//!
//! Why: stop_machine and its kin wait with interrupts off, where spinning is the usual
//! way. Under QEMU's TCG every vCPU is a host thread, and this project's machines have
//! two host cores: with four or eight vCPUs spinning, the one CPU that has work to do (the
//! one migrating interrupts, or the last one still to acknowledge a stage) waits for a
//! host time slice, and every all-CPU barrier cost milliseconds (`stop-machine` saw single
//! CPUs see a new stage 5–14 ms after the others). A halted vCPU gives its host core
//! back. With interrupts off only an NMI ends a `hlt` (Intel SDM vol. 2A, HLT: "an
//! enabled interrupt (including NMI and SMI)"), so the CPU that changes what the others
//! wait for sends an NMI to each CPU that announced itself waiting. On real hardware the
//! short spin before halting catches the usual fast case, and a halted CPU wakes in
//! microseconds.
//!
//! No wake-up is lost. A waiter clears its `WOKEN` flag, announces itself in `WAITING`,
//! re-checks its condition, and only then enters `sluice_nmi_wait`
//! (`cmpb $0,(woken); jne done; [sti;] hlt; done: ret`). The waker sets the condition
//! first, then takes the CPU out of `WAITING` (exactly one waker does, with an atomic
//! test-and-clear), records that it owes that CPU an NMI, and sends it. The NMI handler
//! (`on_nmi`) recognises an owed NMI, sets `WOKEN`, and if it interrupted the three
//! instructions before the `hlt` returns past the `hlt` instead (so an NMI that lands
//! after the re-check but before the halt still ends the wait). A waiter arms again only
//! after the NMI it is owed has landed, so at most one wake-up NMI is in flight per CPU
//! and every one is consumed silently; any other NMI is still reported as before.

use core::sync::atomic::{AtomicBool, Ordering};

use super::AtomicCpuMask;
use crate::apic::local::{self, IpiDest, IpiKind};
use crate::arch::cpu::MAX_CPUS;

core::arch::global_asm!(
    r#"
    .pushsection .text.sluice_nmi_wait, "ax", @progbits
    .global sluice_nmi_wait
    .global sluice_nmi_wait_done
/* rdi: &WOKEN[cpu], rsi: non-zero to halt with interrupts enabled */
sluice_nmi_wait:
    cmpb $0, (%rdi)
    jne sluice_nmi_wait_done
    testq %rsi, %rsi
    jz 1f
    sti
1:
    hlt
sluice_nmi_wait_done:
    ret
    .popsection
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// Halts unless `*woken` is set; see the module comment. Returns with interrupts
    /// enabled if `irqs_on` was non-zero (whether or not it halted).
    fn sluice_nmi_wait(woken: *const AtomicBool, irqs_on: u64);
    /// The `ret` of `sluice_nmi_wait`: where a wake-up NMI that interrupted it resumes.
    fn sluice_nmi_wait_done();
}

/// Spin this long before halting: on hardware most waits end within it.
const SPIN_BEFORE_HALT_NS: u64 = 5_000;
/// Bound on waiting for an owed NMI to land before arming again (it was sent; an NMI
/// is delivered within microseconds unless the CPU is wedged).
const OWED_NMI_BOUND_NS: u64 = 10_000_000;

/// CPUs halted (or about to halt) in `wait_while`.
static WAITING: AtomicCpuMask = AtomicCpuMask::new();
/// CPUs a waker has sent a wake-up NMI that has not landed yet.
static OWED: AtomicCpuMask = AtomicCpuMask::new();
/// Per CPU: set by a wake-up NMI since the CPU last armed.
static WOKEN: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Waits on this CPU (`me`) while `waiting()` holds: spins briefly, then halts until a
/// `wake` (or, with `irqs_on`, any interrupt, which is served) and checks again. The
/// caller's interrupt flag is unchanged on return. `waiting` must become false only
/// through stores that are followed by `wake` of this CPU (or the wait lasts until the
/// next interrupt).
pub(crate) fn wait_while(me: usize, irqs_on: bool, mut waiting: impl FnMut() -> bool) {
    let spin_end = crate::time::nanos_since_boot() + SPIN_BEFORE_HALT_NS;
    while waiting() {
        if crate::time::nanos_since_boot() > spin_end {
            halt_while(me, irqs_on, &mut waiting);
            return;
        }
        core::hint::spin_loop();
    }
}

fn halt_while(me: usize, irqs_on: bool, waiting: &mut impl FnMut() -> bool) {
    let were_on = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    loop {
        settle_owed_nmi(me);
        WOKEN[me].store(false, Ordering::SeqCst);
        WAITING.set(me, true);
        core::sync::atomic::fence(Ordering::SeqCst);
        if !waiting() {
            break;
        }
        // SAFETY: `sluice_nmi_wait` only reads the flag and halts; with `irqs_on` it
        // enables interrupts first, which this function undoes below. The flag lives
        // forever.
        unsafe { sluice_nmi_wait(&WOKEN[me], u64::from(irqs_on)) };
        x86_64::instructions::interrupts::disable();
        WAITING.set(me, false);
        if !waiting() {
            break;
        }
    }
    WAITING.set(me, false);
    if were_on {
        x86_64::instructions::interrupts::enable();
    }
}

/// Waits (briefly) until a wake-up NMI already sent to this CPU has landed, so it is
/// never mistaken for another NMI later.
fn settle_owed_nmi(me: usize) {
    if !OWED.get(me) {
        return;
    }
    let end = crate::time::nanos_since_boot() + OWED_NMI_BOUND_NS;
    while OWED.get(me) {
        if crate::time::nanos_since_boot() > end {
            crate::warn!("wake-up NMI to CPU {} never landed; forgetting it", me);
            OWED.set(me, false);
            return;
        }
        core::hint::spin_loop();
    }
}

/// Wakes every CPU of `cpus` that is halted in `wait_while` (call after making their
/// condition false). CPUs that are not waiting are left alone.
pub(crate) fn wake(cpus: &super::CpuMask) {
    core::sync::atomic::fence(Ordering::SeqCst);
    let me = super::this_cpu();
    let waiting = WAITING.load();
    for c in cpus.iter().map(|c| c as usize) {
        if c == me || !waiting.contains(c as super::CpuId) || !WAITING.take(c) {
            continue;
        }
        OWED.set(c, true);
        let Some(apic) = super::apic_id(c) else {
            OWED.set(c, false);
            continue;
        };
        let sent = x86_64::instructions::interrupts::without_interrupts(|| {
            local::send_ipi(IpiDest::Apic(apic), IpiKind::Nmi)
        });
        if !sent {
            OWED.set(c, false);
            crate::warn!("wake-up NMI to CPU {} not accepted by the local APIC", c);
        }
    }
}

/// Called first thing by the NMI handler (after the panic check): true if this NMI was
/// a wake-up this CPU was owed, which it then consumes (and, if it interrupted
/// `sluice_nmi_wait` before its `hlt` completed, makes it return instead of halting).
pub fn on_nmi(frame: &mut x86_64::structures::idt::InterruptStackFrame) -> bool {
    if !crate::arch::cpu::ready() {
        return false;
    }
    let me = super::this_cpu();
    if me >= MAX_CPUS || !OWED.take(me) {
        return false;
    }
    WOKEN[me].store(true, Ordering::SeqCst);
    let start = sluice_nmi_wait as *const () as u64;
    let done = sluice_nmi_wait_done as *const () as u64;
    let rip = frame.instruction_pointer.as_u64();
    if (start..done).contains(&rip) {
        // SAFETY: the frame is this NMI's own; resuming at the `ret` of
        // `sluice_nmi_wait` skips only its check and `hlt`, which touch no state, and
        // keeps its stack and flags (interrupts stay as the block left them).
        unsafe {
            frame.as_mut().update(|f| {
                f.instruction_pointer = x86_64::VirtAddr::new(done);
            });
        }
    }
    true
}
