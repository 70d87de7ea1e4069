//! Other CPUs: bring-up (INIT–SIPI–SIPI through a real-mode trampoline), the online
//! mask, cross-CPU function calls, NMIs, parking and restarting, and stop_machine.
//!
//! CPU indices are dense: 0 is the boot CPU, then the MADT's enabled CPUs in table
//! order. Each index keeps its slot (APIC id, state, bring-up time) forever, so a CPU
//! that is parked can be restarted later with `ap::start` (INIT–SIPI again).
//!
//! API for other subsystems (and the hotplug layer that will build `cpu off/on`):
//! - `ipi::call_on(cpu, f, arg)`, `ipi::call_many(&set, f, arg, timeout)`,
//!   `ipi::call_on_others`, `ipi::call_on_all`, `ipi::call_async(..).wait(timeout)`:
//!   run `f: fn(u64) -> u64` on CPUs and collect (cpu, result); errors name the CPUs
//!   that were offline or did not answer. `send_nmi(cpu)`.
//! - `stop_machine::stop_machine(f, arg, &run_on)`: all online CPUs rendezvous with
//!   interrupts off, `f` runs on the CPUs of `run_on`; `Stragglers(set)` if some CPU
//!   did not arrive within `ARRIVE_TIMEOUT_NS` (nothing ran then).
//! - Offline shape: `stop_machine(take_down, n, &CpuMask::single(n))` where `take_down`
//!   (on CPU n) migrates its irqs, soft-disables its APIC and calls
//!   `park_self_on_return()`; then `wait_parked(n, timeout)`. Online: `ap::start(n)`
//!   (INIT–SIPI–SIPI again; the trampoline, per-CPU block, stacks and GDT are kept).
//!   `park(n)` is the raw park for a CPU with nothing to migrate.
//! - `online_mask()` (a `CpuMask`, the one mask type, shared with the interrupt core),
//!   `is_online`, `state(cpu)`, `apic_id(cpu)`.
//!
//! Locks: stop_machine's serialising lock and its rendezvous, ap::START before the page
//! tables, and hotplug's hand-over slot; their place in the kernel's lock order is in
//! `sync::order`. The call-function path takes no lock (atomics only), so it is usable
//! from interrupt handlers and inside stop_machine.

pub mod ap;
pub mod hotplug;
pub mod ipi;
pub mod nmi_wait;
pub mod start_delays;
pub mod stop_machine;
pub mod task;
pub(crate) mod trampoline;

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::apic::local::{self, IpiDest, IpiKind};
use crate::arch::cpu::MAX_CPUS;
use sluice_irq_core::MASK_WORDS;

pub use sluice_irq_core::{CpuId, CpuMask};

/// An atomic CPU bitmap (the online mask and stop_machine's bookkeeping), loaded and
/// stored as the one mask type, `CpuMask`.
pub(crate) struct AtomicCpuMask([AtomicU64; MASK_WORDS]);

impl AtomicCpuMask {
    pub const fn new() -> Self {
        AtomicCpuMask([const { AtomicU64::new(0) }; MASK_WORDS])
    }
    pub fn set(&self, cpu: usize, on: bool) {
        let bit = 1u64 << (cpu % 64);
        if on {
            self.0[cpu / 64].fetch_or(bit, Ordering::AcqRel);
        } else {
            self.0[cpu / 64].fetch_and(!bit, Ordering::AcqRel);
        }
    }
    pub fn get(&self, cpu: usize) -> bool {
        cpu < MAX_CPUS && self.0[cpu / 64].load(Ordering::Acquire) & (1 << (cpu % 64)) != 0
    }
    pub fn load(&self) -> CpuMask {
        CpuMask::from_words(core::array::from_fn(|i| self.0[i].load(Ordering::Acquire)))
    }
    pub fn store(&self, s: &CpuMask) {
        for (a, w) in self.0.iter().zip(s.words().iter()) {
            a.store(*w, Ordering::Release);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuState {
    /// No such CPU index.
    Absent = 0,
    /// Listed in the MADT, never started.
    Present,
    /// INIT–SIPI sent, not yet answered.
    Booting,
    Online,
    /// Did not answer a start within the bound (see `ap::StartError`).
    Failed,
    /// Asked to park; leaving the online mask.
    Parking,
    /// Halted with interrupts off and its local APIC soft-disabled; restartable.
    Parked,
}

impl CpuState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => CpuState::Present,
            2 => CpuState::Booting,
            3 => CpuState::Online,
            4 => CpuState::Failed,
            5 => CpuState::Parking,
            6 => CpuState::Parked,
            _ => CpuState::Absent,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            CpuState::Absent => "absent",
            CpuState::Present => "present",
            CpuState::Booting => "booting",
            CpuState::Online => "online",
            CpuState::Failed => "failed",
            CpuState::Parking => "parking",
            CpuState::Parked => "offline",
        }
    }
}

struct Slot {
    apic_id: AtomicU32,
    state: AtomicU8,
    /// Nanoseconds from the first INIT to the CPU reporting online, last start.
    bringup_ns: AtomicU64,
    park_requested: AtomicBool,
}

static SLOTS: [Slot; MAX_CPUS] = [const {
    Slot {
        apic_id: AtomicU32::new(0),
        state: AtomicU8::new(0),
        bringup_ns: AtomicU64::new(0),
        park_requested: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// Number of CPU indices in use (the MADT's enabled CPUs).
static POSSIBLE: AtomicUsize = AtomicUsize::new(1);
static ONLINE: AtomicCpuMask = AtomicCpuMask::new();

pub fn possible() -> usize {
    POSSIBLE.load(Ordering::Acquire)
}
pub fn state(cpu: usize) -> CpuState {
    SLOTS.get(cpu).map_or(CpuState::Absent, |s| {
        CpuState::from_u8(s.state.load(Ordering::Acquire))
    })
}
pub(crate) fn set_state(cpu: usize, st: CpuState) {
    SLOTS[cpu].state.store(st as u8, Ordering::Release);
}
pub fn apic_id(cpu: usize) -> Option<u32> {
    (cpu < possible()).then(|| SLOTS[cpu].apic_id.load(Ordering::Acquire))
}
pub fn bringup_ns(cpu: usize) -> u64 {
    SLOTS
        .get(cpu)
        .map_or(0, |s| s.bringup_ns.load(Ordering::Relaxed))
}
pub fn online_mask() -> CpuMask {
    ONLINE.load()
}
/// The online CPUs' indices, in order.
pub fn online_cpus() -> impl Iterator<Item = usize> {
    let m = ONLINE.load();
    (0..MAX_CPUS).filter(move |&c| m.contains(c as CpuId))
}
pub fn is_online(cpu: usize) -> bool {
    ONLINE.get(cpu)
}
pub fn online_count() -> usize {
    ONLINE.load().weight() as usize
}
pub fn this_cpu() -> usize {
    crate::arch::cpu::current_index() as usize
}

/// Moves `cpu` from `from` to `to` unless its state changed meanwhile. Booting is
/// left exactly once: by the AP (to Online) or by a starter that gave up on it (to
/// Failed), never both.
pub(crate) fn transition(cpu: usize, from: CpuState, to: CpuState) -> bool {
    SLOTS[cpu]
        .state
        .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Marks the calling CPU online (the last step of its bring-up). The online bit goes
/// first, so a CPU reported Online is always in the mask. Returns false, with the bit
/// cleared again, if the starter already gave up on it (it must not run on).
fn mark_online(cpu: usize) -> bool {
    ONLINE.set(cpu, true);
    if cpu == 0 {
        set_state(0, CpuState::Online);
        return true;
    }
    if transition(cpu, CpuState::Booting, CpuState::Online) {
        return true;
    }
    ONLINE.set(cpu, false);
    false
}

/// Sends a fixed-vector IPI to `cpu` with interrupts off (the xAPIC ICR is two
/// registers; an interrupt between the writes could send a half-written IPI).
pub(crate) fn send_vector(cpu: usize, vector: u8) -> bool {
    let Some(id) = apic_id(cpu) else { return false };
    x86_64::instructions::interrupts::without_interrupts(|| {
        local::send_ipi(IpiDest::Apic(id), IpiKind::Fixed(vector))
    })
}

/// Sends an NMI to `cpu`.
pub fn send_nmi(cpu: usize) -> Result<(), &'static str> {
    let id = apic_id(cpu).ok_or("no such CPU")?;
    if !is_online(cpu) {
        return Err("CPU is not online");
    }
    if x86_64::instructions::interrupts::without_interrupts(|| {
        local::send_ipi(IpiDest::Apic(id), IpiKind::Nmi)
    }) {
        Ok(())
    } else {
        Err("the local APIC did not accept the IPI")
    }
}

/// Brings up every enabled MADT CPU. Called once by the boot CPU with interrupts on,
/// after its local APIC, the clocks and the system vectors are set up.
pub fn init(boot: &'static bootloader_api::BootInfo) {
    let bsp_apic = local::id();
    SLOTS[0].apic_id.store(bsp_apic, Ordering::Release);
    let mut n = 1;
    for c in crate::acpi::platform()
        .cpus
        .iter()
        .filter(|c| c.apic_id != bsp_apic)
    {
        if n == MAX_CPUS {
            crate::warn!(
                "SMP: more than {} CPUs; ignoring APIC id {}",
                MAX_CPUS,
                c.apic_id
            );
            continue;
        }
        SLOTS[n].apic_id.store(c.apic_id, Ordering::Release);
        set_state(n, CpuState::Present);
        n += 1;
    }
    POSSIBLE.store(n, Ordering::Release);
    mark_online(0);
    task::init();
    if let Err(e) = ipi::init() {
        crate::error!("SMP: call-function vector: {}; staying on one CPU", e);
        return;
    }
    if n == 1 {
        return;
    }
    match trampoline::install(&boot.memory_regions) {
        Ok(page) => crate::log!(
            "SMP: trampoline at {:#x} (SIPI vector {:#x})",
            page,
            page >> 12
        ),
        Err(e) => {
            crate::error!("SMP: {}; staying on one CPU", e);
            return;
        }
    }
    let t0 = crate::time::nanos_since_boot();
    let cpus: alloc::vec::Vec<usize> = (1..n).collect();
    for (cpu, r) in ap::start_all(&cpus) {
        if let Err(e) = r {
            crate::error!(
                "SMP: CPU {} (APIC id {}) {}",
                cpu,
                SLOTS[cpu].apic_id.load(Ordering::Relaxed),
                e
            );
        }
    }
    let ms = (crate::time::nanos_since_boot() - t0) / 1_000_000;
    crate::log!(
        "SMP: {} of {} CPUs online ({} ms to start {} APs)",
        online_count(),
        n,
        ms,
        n - 1
    );
}

/// The idle loop of an application processor: sleep until an interrupt, serve it, and
/// park when asked. The check and the sleep are one `sti; hlt` pair so a wake-up IPI
/// that arrives after the check still ends the `hlt` (SDM vol. 2, STI).
pub(crate) fn idle(cpu: usize) -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        if SLOTS[cpu].park_requested.load(Ordering::Acquire) {
            park_this_cpu(cpu);
        }
        if stop_machine::join_from_idle(cpu) || task::run_pending(cpu) {
            continue;
        }
        IN_IDLE.set(cpu, true);
        x86_64::instructions::interrupts::enable_and_hlt();
        IN_IDLE.set(cpu, false);
    }
}

/// CPUs halted in their idle loop: an interrupt there returns straight into the loop,
/// so work that may sleep (joining stop_machine) is left to the loop.
static IN_IDLE: AtomicCpuMask = AtomicCpuMask::new();

pub(crate) fn in_idle(cpu: usize) -> bool {
    IN_IDLE.get(cpu)
}

/// Leaves the online mask, stops the tick, soft-disables the local APIC and halts with
/// interrupts off until an INIT–SIPI restarts the CPU (`ap::start`). Calls queued for
/// this CPU are dropped and reported to their senders as not run.
fn park_this_cpu(cpu: usize) -> ! {
    set_state(cpu, CpuState::Parking);
    ONLINE.set(cpu, false);
    ipi::drop_requests(cpu);
    local::stop_timer();
    local::soft_disable();
    SLOTS[cpu].park_requested.store(false, Ordering::Release);
    set_state(cpu, CpuState::Parked);
    loop {
        // NMIs return here; INIT resets the CPU out of this loop.
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkError {
    NoSuchCpu,
    BootCpu,
    NotOnline(CpuState),
    Timeout,
}

impl core::fmt::Display for ParkError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            ParkError::NoSuchCpu => f.write_str("no such CPU"),
            ParkError::BootCpu => f.write_str("the boot CPU runs the shell and cannot be parked"),
            ParkError::NotOnline(s) => write!(f, "CPU is {}, not online", s.name()),
            ParkError::Timeout => f.write_str("CPU did not park within 1 s"),
        }
    }
}

/// Asks the calling AP to park as soon as it is back in its idle loop. For the hotplug
/// layer: the function that takes a CPU down runs on it inside stop_machine (and may
/// already have soft-disabled its APIC, so no IPI could wake it); it calls this, and the
/// CPU parks on its way out of stop_machine. `wait_parked` then waits for it.
pub fn park_self_on_return() {
    SLOTS[this_cpu()]
        .park_requested
        .store(true, Ordering::Release);
}

/// Waits up to `timeout_ns` for `cpu` to reach the parked state.
pub fn wait_parked(cpu: usize, timeout_ns: u64) -> Result<(), ParkError> {
    let deadline = crate::time::nanos_since_boot() + timeout_ns;
    while state(cpu) != CpuState::Parked {
        if crate::time::nanos_since_boot() > deadline {
            return Err(ParkError::Timeout);
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Parks an application processor (the raw mechanism under `cpu off`; interrupts
/// targeted at it are NOT migrated here — that is the hotplug layer's job, run in
/// stop_machine before this). Waits until the CPU has halted.
pub fn park(cpu: usize) -> Result<(), ParkError> {
    if cpu >= possible() {
        return Err(ParkError::NoSuchCpu);
    }
    if cpu == 0 || cpu == this_cpu() {
        return Err(ParkError::BootCpu);
    }
    if state(cpu) != CpuState::Online {
        return Err(ParkError::NotOnline(state(cpu)));
    }
    SLOTS[cpu].park_requested.store(true, Ordering::Release);
    send_vector(cpu, crate::apic::vectors::CALL_FUNCTION);
    wait_parked(cpu, 1_000_000_000)
}

/// Stops every other CPU by NMI; they park in the NMI handler (the panic path).
pub fn stop_others() {
    if local::mode().is_some() && crate::arch::cpu::count() > 1 {
        local::send_ipi(IpiDest::AllExcludingSelf, IpiKind::Nmi);
    }
}
