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
//! No wake-up is lost, and no wake-up NMI is mistaken for another. Each CPU has a wait
//! state: IDLE → WAITING (the waiter arms) → OWED (a waker claimed it and sends one NMI)
//! → IDLE (the NMI landed). A waiter clears its `WOKEN` flag, arms, re-checks its
//! condition, and only then enters `sluice_nmi_wait` (`cmpb $0,(woken); jne done; [sti;]
//! hlt; done: ret`). A waker makes the condition false first, then moves each waiting
//! CPU from WAITING to OWED with a compare-and-swap (so exactly one waker sends) and
//! sends it an NMI. The NMI handler (`on_nmi`) takes only an NMI its CPU is OWED, sets
//! `WOKEN`, and if it interrupted the instructions before the `hlt`, returns past the
//! `hlt` instead (so an NMI that lands after the re-check but before the halt still ends
//! the wait). A waiter arms again only from IDLE, that is once the NMI it was owed has
//! landed, so at most one wake-up NMI is ever in flight per CPU and every one is
//! consumed silently; any other NMI is still reported as before.

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

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

// SAFETY: both symbols are defined by the `global_asm!` block above, with these
// signatures (System V: `rdi`, `rsi`; no return value).
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

/// Per CPU: `IDLE`, `WAITING` (halted or about to halt in `wait_while`) or `OWED` (a
/// waker sent a wake-up NMI that has not landed yet).
static STATE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(IDLE) }; MAX_CPUS];
const IDLE: u8 = 0;
const WAITING: u8 = 1;
const OWED: u8 = 2;
/// Per CPU: set by a wake-up NMI since the CPU last armed.
static WOKEN: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Wake-up NMIs the handler took as such (for tests).
static TAKEN: AtomicU64 = AtomicU64::new(0);

pub(crate) fn wake_nmis_taken() -> u64 {
    TAKEN.load(Ordering::SeqCst)
}

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
        arm(me);
        core::sync::atomic::fence(Ordering::SeqCst);
        if !waiting() {
            break;
        }
        // SAFETY: `sluice_nmi_wait` only reads the flag and halts; with `irqs_on` it
        // enables interrupts first, which this function undoes below. The flag lives
        // forever.
        unsafe { sluice_nmi_wait(&WOKEN[me], u64::from(irqs_on)) };
        x86_64::instructions::interrupts::disable();
        disarm(me);
        if !waiting() {
            break;
        }
    }
    disarm(me);
    if were_on {
        x86_64::instructions::interrupts::enable();
    }
}

/// IDLE → WAITING, first waiting (briefly) for a wake-up NMI already on its way to land,
/// so it is never mistaken for another NMI later.
fn arm(me: usize) {
    let end = crate::time::nanos_since_boot() + OWED_NMI_BOUND_NS;
    loop {
        WOKEN[me].store(false, Ordering::SeqCst);
        match STATE[me].compare_exchange(IDLE, WAITING, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) | Err(WAITING) => return,
            Err(_) if crate::time::nanos_since_boot() > end => {
                crate::warn!("wake-up NMI to CPU {} never landed; forgetting it", me);
                let _ = STATE[me].compare_exchange(OWED, IDLE, Ordering::SeqCst, Ordering::SeqCst);
            }
            Err(_) => core::hint::spin_loop(),
        }
    }
}

/// WAITING → IDLE; a CPU already OWED stays so until its NMI lands.
fn disarm(me: usize) {
    let _ = STATE[me].compare_exchange(WAITING, IDLE, Ordering::SeqCst, Ordering::SeqCst);
}

/// Whether `cpu` has armed a wait (it is halted, or about to halt).
pub(crate) fn is_waiting(cpu: usize) -> bool {
    STATE
        .get(cpu)
        .is_some_and(|s| s.load(Ordering::SeqCst) == WAITING)
}

/// Wakes every CPU of `cpus` that is halted in `wait_while` (call after making their
/// condition false). CPUs that are not waiting are left alone.
pub(crate) fn wake(cpus: &super::CpuMask) {
    core::sync::atomic::fence(Ordering::SeqCst);
    let me = super::this_cpu();
    for c in cpus.iter().map(|c| c as usize).filter(|&c| c != me) {
        if STATE[c]
            .compare_exchange(WAITING, OWED, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            continue;
        }
        let sent = super::apic_id(c).is_some_and(|apic| {
            x86_64::instructions::interrupts::without_interrupts(|| {
                local::send_ipi(IpiDest::Apic(apic), IpiKind::Nmi)
            })
        });
        if !sent {
            let _ = STATE[c].compare_exchange(OWED, IDLE, Ordering::SeqCst, Ordering::SeqCst);
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
    if me >= MAX_CPUS
        || STATE[me]
            .compare_exchange(OWED, IDLE, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return false;
    }
    WOKEN[me].store(true, Ordering::SeqCst);
    TAKEN.fetch_add(1, Ordering::SeqCst);
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
