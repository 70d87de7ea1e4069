//! Starting an application processor: INIT–SIPI–SIPI (Intel SDM vol. 3, 9.4.4.1 and
//! 11.6.1; as Linux's `wakeup_secondary_cpu_via_init`: INIT assert, INIT de-assert, then
//! up to two STARTUP IPIs, with the waits `start_delays` chooses for this CPU: none after
//! INIT and 20 µs per STARTUP on modern CPUs, the MP specification's 10 ms and 200 µs on
//! old ones), then the AP's own set-up in `ap_entry`. The same path restarts a parked
//! CPU: INIT resets it whatever it was doing.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{CpuState, SLOTS, trampoline};
use crate::apic::local::{self, IpiDest, IpiKind, reg};

/// Kernel stack per AP (plus 3 × 16 KiB IST stacks), each with a guard page below it;
/// they come from physical frames, not the heap.
pub(crate) const AP_STACK_SIZE: usize = 64 * 1024;
/// How long a started CPU has to report online. Linux waits 10 s; TCG with 8 vCPUs on
/// two host cores answers in milliseconds.
pub const ANSWER_TIMEOUT_NS: u64 = 2_000_000_000;

/// One start at a time: the trampoline page (and its stack) is shared. Protects: the
/// trampoline's parameter block. Task context only. Lock order (`sync::order`): before
/// PAGING.
static START: sluice_sync::SpinLock<()> =
    sluice_sync::SpinLock::new(&crate::sync::order::AP_START, ());

/// Control registers the APs copy from the boot CPU (CR0, CR4, EFER).
static BSP_CR0: AtomicU64 = AtomicU64::new(0);
static BSP_CR4: AtomicU64 = AtomicU64::new(0);
static BSP_EFER: AtomicU64 = AtomicU64::new(0);

/// Resources an AP keeps for life: per-CPU block, GDT/TSS/IST stacks, kernel stack.
struct Resources {
    block: &'static crate::arch::cpu::PerCpu,
    gdt: &'static crate::arch::gdt::CpuGdt,
    stack_top: u64,
}

static RESOURCES: [spin::Once<Resources>; crate::arch::cpu::MAX_CPUS] =
    [const { spin::Once::new() }; crate::arch::cpu::MAX_CPUS];

/// The top of `cpu`'s kernel stack, once it has been started.
pub(crate) fn kernel_stack_top(cpu: usize) -> Option<u64> {
    RESOURCES.get(cpu)?.get().map(|r| r.stack_top)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    NoSuchCpu,
    /// Its APIC id is beyond what an I/O APIC entry or MSI can name without interrupt
    /// remapping: online, it could take no device interrupt and a migration could strand
    /// one. Linux leaves such CPUs offline too.
    Unaddressable(u32),
    AlreadyRunning(CpuState),
    NoTrampoline,
    OutOfMemory,
    /// The kernel's mappings collide with the trampoline's identity slot.
    Layout,
    /// The local APIC never accepted the INIT or STARTUP IPI (xAPIC delivery status).
    IpiNotSent(&'static str),
    /// The CPU did not report online in time. `stage` says how far it got:
    /// 0 never ran the trampoline, 1 real mode, 2 protected mode, 3 long mode,
    /// 4 reached the kernel's entry.
    NoAnswer {
        stage: u32,
        ms: u64,
    },
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            StartError::NoSuchCpu => f.write_str("no such CPU"),
            StartError::Unaddressable(id) => write!(
                f,
                "has APIC id {id}: without interrupt remapping device interrupts reach APIC ids 0-{MAX_DEVICE_APIC_ID} only; left offline"
            ),
            StartError::AlreadyRunning(s) => write!(
                f,
                "is {}; only a present, failed or offline CPU can be started",
                s.name()
            ),
            StartError::NoTrampoline => f.write_str("no start-up trampoline (see the boot log)"),
            StartError::OutOfMemory => f.write_str("no heap for its stacks and tables"),
            StartError::Layout => {
                f.write_str("kernel mappings collide with the trampoline's identity map")
            }
            StartError::IpiNotSent(which) => {
                write!(f, "the local APIC did not send the {which} IPI")
            }
            StartError::NoAnswer { stage, ms } => write!(
                f,
                "never answered within {} ms (reached: {})",
                ms,
                match stage {
                    0 => "nothing; it never ran the trampoline",
                    1 => "real mode",
                    2 => "protected mode",
                    3 => "long mode",
                    _ => "the kernel entry",
                }
            ),
        }
    }
}

/// The largest APIC id a compatibility-format device interrupt can name: 8-bit physical
/// destinations, 0xff being broadcast. Interrupt remapping in extended interrupt mode
/// (32-bit IRTE destinations) lifts it.
pub const MAX_DEVICE_APIC_ID: u32 = 0xfe;

/// A CPU is only started if device interrupts can reach it (see `Unaddressable`): any
/// APIC id with remapping in x2APIC mode (EIM), else 0..=254.
pub fn check_addressable(apic_id: u32) -> Result<(), StartError> {
    let eim = crate::iommu::remapping().is_ok_and(|r| r.eim);
    if apic_id > MAX_DEVICE_APIC_ID && !eim {
        return Err(StartError::Unaddressable(apic_id));
    }
    Ok(())
}

/// Starts (or restarts) CPU `cpu` and waits until it is online. Returns the bring-up time
/// in nanoseconds.
pub fn start(cpu: usize) -> Result<u64, StartError> {
    let apic = super::apic_id(cpu).ok_or(StartError::NoSuchCpu)?;
    check_addressable(apic)?;
    if cpu == 0 {
        return Err(StartError::AlreadyRunning(super::state(0)));
    }
    match super::state(cpu) {
        CpuState::Present | CpuState::Failed | CpuState::Parked => {}
        s => return Err(StartError::AlreadyRunning(s)),
    }
    start_on(cpu, apic, ANSWER_TIMEOUT_NS, false)
}

/// Boot-time start of many CPUs: one INIT (and its wait, if this CPU needs one) for all
/// of them, then STARTUP IPIs one CPU at a time (they share the trampoline). The SDM's own MP initialisation example
/// (vol. 3, 9.4.4.1) INITs all APs together. Returns (cpu, result) per CPU.
pub fn start_all(cpus: &[usize]) -> alloc::vec::Vec<(usize, Result<u64, StartError>)> {
    let send = |apic, kind| {
        x86_64::instructions::interrupts::without_interrupts(|| {
            local::send_ipi(IpiDest::Apic(apic), kind)
        })
    };
    let ready: alloc::vec::Vec<(usize, u32)> = cpus
        .iter()
        .filter_map(|c| super::apic_id(*c).map(|a| (*c, a)))
        .filter(|(_, a)| check_addressable(*a).is_ok())
        .filter(|(c, _)| {
            matches!(
                super::state(*c),
                CpuState::Present | CpuState::Failed | CpuState::Parked
            )
        })
        .collect();
    let mut inited = alloc::vec::Vec::new();
    for (c, a) in &ready {
        inited.push((*c, send(*a, IpiKind::Init)));
    }
    crate::time::spin_for_ns(super::start_delays::get().init_assert_ns);
    for (_, a) in &ready {
        send(*a, IpiKind::InitDeassert);
    }
    cpus.iter()
        .map(|c| match ready.iter().find(|(r, _)| r == c) {
            None => (*c, start(*c)),
            Some((_, a)) if inited.iter().any(|(i, ok)| i == c && *ok) => {
                (*c, start_on(*c, *a, ANSWER_TIMEOUT_NS, true))
            }
            Some(_) => (*c, Err(StartError::IpiNotSent("INIT"))),
        })
        .collect()
}

fn resources(cpu: usize, apic: u32) -> Result<&'static Resources, StartError> {
    if let Some(r) = RESOURCES[cpu].get() {
        return Ok(r);
    }
    let block = crate::arch::cpu::alloc_block(cpu as u32, apic).ok_or(StartError::OutOfMemory)?;
    let gdt = crate::arch::gdt::alloc_ap_tables().ok_or(StartError::OutOfMemory)?;
    let stack_top = crate::arch::gdt::alloc_stack(AP_STACK_SIZE).ok_or(StartError::OutOfMemory)?;
    super::ipi::prepare(cpu).map_err(|_| StartError::OutOfMemory)?;
    Ok(RESOURCES[cpu].call_once(|| Resources {
        block,
        gdt,
        stack_top,
    }))
}

/// Everything the AP needs before the first IPI: the boot CPU's control registers to
/// copy, a fresh GDT, the trampoline pointed at this CPU's stack and entry. Returns the
/// trampoline's code page (the SIPI vector).
fn prepare_start(cpu: usize, apic: u32) -> Result<u64, StartError> {
    let page = trampoline::code_page().ok_or(StartError::NoTrampoline)?;
    let res = resources(cpu, apic)?;
    if !trampoline::kernel_avoids_slot0(ap_entry as *const () as u64, res.stack_top) {
        return Err(StartError::Layout);
    }
    BSP_CR0.store(
        x86_64::registers::control::Cr0::read_raw(),
        Ordering::Relaxed,
    );
    BSP_CR4.store(
        x86_64::registers::control::Cr4::read_raw(),
        Ordering::Relaxed,
    );
    BSP_EFER.store(
        x86_64::registers::model_specific::Efer::read_raw(),
        Ordering::Relaxed,
    );
    let (cr3, _) = x86_64::registers::control::Cr3::read_raw();
    // SAFETY: the CPU is not running (never started, failed and re-INITed, or parked),
    // so nothing has its GDT loaded.
    unsafe { res.gdt.reset() };
    trampoline::prepare(
        cr3.start_address().as_u64(),
        res.stack_top,
        ap_entry as *const () as u64,
        cpu as u64,
    )
    .map_err(|_| StartError::NoTrampoline)?;
    Ok(page)
}

fn send(apic: u32, kind: IpiKind, what: &'static str) -> Result<(), StartError> {
    if x86_64::instructions::interrupts::without_interrupts(|| {
        local::send_ipi(IpiDest::Apic(apic), kind)
    }) {
        Ok(())
    } else {
        Err(StartError::IpiNotSent(what))
    }
}

/// INIT (unless `init_done`) then up to two STARTUP IPIs (SDM vol. 3A §9.4.4.1), the
/// gap between them; the second is skipped once the trampoline has been entered, since
/// a running CPU ignores it anyway. Nothing waits after the last one: `wait_online`
/// watches for the CPU from then on.
fn send_start_ipis(apic: u32, page: u64, init_done: bool) -> Result<(), StartError> {
    let delays = super::start_delays::get();
    local::write(reg::ESR, 0);
    if !init_done {
        send(apic, IpiKind::Init, "INIT")?;
        crate::time::spin_for_ns(delays.init_assert_ns);
        send(apic, IpiKind::InitDeassert, "INIT de-assert")?;
    }
    for attempt in 0..2 {
        if attempt > 0 {
            crate::time::spin_for_ns(delays.sipi_gap_ns);
        }
        if trampoline::stage() != 0 {
            break;
        }
        local::write(reg::ESR, 0);
        send(apic, IpiKind::Startup((page >> 12) as u8), "STARTUP")?;
    }
    Ok(())
}

/// Waits until `cpu` reports online, or says how far it got by `deadline`.
fn wait_online(cpu: usize, deadline: u64, timeout_ns: u64) -> Result<(), StartError> {
    while super::state(cpu) != CpuState::Online {
        if crate::time::nanos_since_boot() > deadline {
            let stage = match trampoline::stage() {
                3 if super::state(cpu) == CpuState::Booting
                    && ENTERED.load(Ordering::Acquire) == cpu as u64 + 1 =>
                {
                    4
                }
                s => s,
            };
            return Err(StartError::NoAnswer {
                stage,
                ms: timeout_ns / 1_000_000,
            });
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// INIT–SIPI–SIPI to `apic` as CPU index `cpu` (SIPI–SIPI only when `init_done`: the
/// caller has INITed it). Also used by tests with an APIC id that no CPU has, to prove
/// that a silent CPU is reported.
pub(crate) fn start_on(
    cpu: usize,
    apic: u32,
    timeout_ns: u64,
    init_done: bool,
) -> Result<u64, StartError> {
    let _guard = START.lock();
    let page = prepare_start(cpu, apic)?;
    super::set_state(cpu, CpuState::Booting);
    let t0 = crate::time::nanos_since_boot();
    let result = send_start_ipis(apic, page, init_done)
        .and_then(|()| wait_online(cpu, t0 + timeout_ns, timeout_ns));
    match result {
        Ok(()) => {
            let ns = crate::time::nanos_since_boot() - t0;
            SLOTS[cpu].bringup_ns.store(ns, Ordering::Relaxed);
            Ok(ns)
        }
        // It came online between the last check and the deadline: a success.
        Err(_) if !super::transition(cpu, CpuState::Booting, CpuState::Failed) => {
            let ns = crate::time::nanos_since_boot() - t0;
            SLOTS[cpu].bringup_ns.store(ns, Ordering::Relaxed);
            Ok(ns)
        }
        Err(e) => {
            // Put a half-started CPU back into wait-for-SIPI so it cannot run on in the
            // shared trampoline while the next CPU uses it.
            let _ = send(apic, IpiKind::Init, "INIT");
            Err(e)
        }
    }
}

/// Which CPU reached `ap_entry` last (index + 1), for the failure report.
static ENTERED: AtomicU64 = AtomicU64::new(0);

/// First Rust code on an AP, called by the trampoline on its kernel stack with the
/// trampoline's page table still loaded.
extern "C" fn ap_entry(cpu: u64, kernel_cr3: u64) -> ! {
    // SAFETY: the kernel's top-level table maps this code and this stack exactly as the
    // trampoline's table does (the trampoline copied its kernel slots). CR0/CR4/EFER
    // take the boot CPU's values so paging features (WP, PGE, NXE) match.
    unsafe {
        core::arch::asm!("mov cr3, {}", in(reg) kernel_cr3, options(nostack, preserves_flags));
        x86_64::registers::control::Cr4::write_raw(BSP_CR4.load(Ordering::Relaxed));
        x86_64::registers::control::Cr0::write_raw(BSP_CR0.load(Ordering::Relaxed));
        let efer = x86_64::registers::model_specific::Efer::read_raw();
        // LMA (bit 10) is status, not control.
        x86_64::registers::model_specific::Efer::write_raw(
            efer | (BSP_EFER.load(Ordering::Relaxed) & !(1 << 10)),
        );
    }
    ENTERED.store(cpu + 1, Ordering::Release);
    let cpu = cpu as usize;
    let res = RESOURCES[cpu]
        .get()
        .expect("resources are allocated before the SIPI");
    // SAFETY: the block is this CPU's alone and lives forever.
    unsafe { crate::arch::cpu::install(res.block) };
    crate::arch::gdt::load(res.gdt);
    crate::arch::idt::load();
    local::init_this_cpu();
    let id = local::id();
    if id != res.block.apic_id {
        crate::warn!(
            "CPU {} has APIC id {} but the MADT said {}",
            cpu,
            id,
            res.block.apic_id
        );
    }
    // Requests queued while this CPU was down timed out at their senders; drop them.
    super::ipi::drop_requests(cpu);
    if !super::mark_online(cpu) {
        // Too late: the starter reported this CPU failed and is INITing it.
        loop {
            x86_64::instructions::interrupts::disable();
            x86_64::instructions::hlt();
        }
    }
    if crate::time::lapic_timer_hz() != 0 {
        crate::time::start_tick();
    }
    super::idle(cpu)
}
