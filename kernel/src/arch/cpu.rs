//! Per-CPU state, reached through the GS base (one mechanism for every CPU).
//!
//! Each CPU owns one `PerCpu`, allocated once and never freed (a CPU that goes offline
//! keeps its block for when it returns). `IA32_GS_BASE` points at it; the first field
//! is a self pointer so `gs:[0]` yields the block's address without a MSR read.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

/// Largest number of CPUs Sluice manages (x2APIC machines in QEMU go to 288): the
/// interrupt core's, so every per-CPU table and every CPU mask have the same bound.
pub use sluice_irq_core::MAX_CPUS;

#[repr(C)]
pub struct PerCpu {
    /// Must stay first: read through `gs:[0]`.
    self_ptr: *const PerCpu,
    /// Dense CPU number (0 = the boot CPU), used in logs and masks.
    pub index: u32,
    /// Local APIC id (x2APIC id when x2APIC is on).
    pub apic_id: u32,
    /// Interrupts taken on this CPU, by vector.
    pub vector_counts: [AtomicU64; 256],
    /// Resume address for an expected fault (see `interrupts::expect_fault`); 0 = none.
    pub fault_resume: AtomicU64,
    /// Last fault recorded while `fault_resume` was armed: (vector << 56) | error code.
    pub fault_recorded: AtomicU64,
    pub fault_address: AtomicU64,
    /// Ticks of the local APIC timer.
    pub ticks: AtomicU64,
    pub nesting: AtomicU32,
    /// Interrupts taken by the dispatch benchmark's handlers on this CPU (`bench`).
    pub bench_hits: AtomicU64,
    /// A vector cleanup found an old vector still pending in this CPU's IRR and must run
    /// again from the tick.
    pub cleanup_retry: AtomicBool,
    /// Hard-interrupt handlers running on this CPU, and NMI handlers: the lock
    /// validator's context (`sync`).
    pub hardirq_depth: AtomicU32,
    pub nmi_depth: AtomicU32,
    /// The locks this CPU holds, for the lock validator (`sync`).
    pub held_locks: sluice_sync::HeldLocks,
}

// SAFETY: every field other than the immutable self pointer is atomic, written once
// before the block is published, or (the held-lock stack) Sync itself.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    pub const fn new(index: u32, apic_id: u32) -> Self {
        PerCpu {
            self_ptr: core::ptr::null(),
            index,
            apic_id,
            vector_counts: [const { AtomicU64::new(0) }; 256],
            fault_resume: AtomicU64::new(0),
            fault_recorded: AtomicU64::new(0),
            fault_address: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            nesting: AtomicU32::new(0),
            bench_hits: AtomicU64::new(0),
            cleanup_retry: AtomicBool::new(false),
            hardirq_depth: AtomicU32::new(0),
            nmi_depth: AtomicU32::new(0),
            held_locks: sluice_sync::HeldLocks::new(),
        }
    }
}

/// The boot CPU's block lives in the kernel image so it exists before the heap.
static BSP: PerCpu = PerCpu::new(0, 0);

/// Every CPU's block, by index, once installed.
static ALL: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Points GS at `block` on the calling CPU and records it in the table.
///
/// # Safety
/// `block` must live forever and be used by no other CPU.
pub unsafe fn install(block: &'static PerCpu) {
    let p = block as *const PerCpu as *mut PerCpu;
    // SAFETY: the caller gives exclusive use of a 'static block; the self pointer is
    // written before any reader can reach the block through GS.
    unsafe { core::ptr::addr_of_mut!((*p).self_ptr).write(p) };
    GsBase::write(VirtAddr::from_ptr(p));
    ALL[block.index as usize].store(p as u64, Ordering::Release);
}

/// Installs the boot CPU's block; the first thing the kernel does.
pub fn init_bsp() {
    // SAFETY: BSP is a static used only by the boot CPU.
    unsafe { install(&BSP) };
}

/// Records the boot CPU's APIC id once the local APIC is up.
pub fn set_bsp_apic_id(id: u32) {
    let p = &BSP as *const PerCpu as *mut PerCpu;
    // SAFETY: single-threaded boot; no reader depends on apic_id before this point.
    unsafe { core::ptr::addr_of_mut!((*p).apic_id).write(id) };
}

/// This CPU's block. Before `init_bsp` GS is 0 and this must not be called; `current_index`
/// guards the early-boot log path.
pub fn current() -> &'static PerCpu {
    let p: u64;
    // SAFETY: gs:[0] holds the self pointer written by `install`.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) p, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: the pointer came from a 'static block.
    unsafe { &*(p as *const PerCpu) }
}

/// True once the calling CPU has its per-CPU block.
pub fn ready() -> bool {
    GsBase::read().as_u64() != 0
}

/// This CPU's dense index; 0 before per-CPU state exists.
pub fn current_index() -> u32 {
    if GsBase::read().as_u64() == 0 {
        return 0;
    }
    current().index
}

/// The block of CPU `index`, if that CPU has been brought up.
pub fn get(index: usize) -> Option<&'static PerCpu> {
    let p = ALL.get(index)?.load(Ordering::Acquire);
    // SAFETY: non-zero entries are 'static blocks installed by `install`.
    (p != 0).then(|| unsafe { &*(p as *const PerCpu) })
}

/// One past the highest CPU index with a per-CPU block (indices are dense, but a CPU
/// that failed to start leaves a hole, which `get` reports as None).
pub fn count() -> usize {
    ALL.iter()
        .rposition(|p| p.load(Ordering::Acquire) != 0)
        .map_or(0, |i| i + 1)
}

/// Allocates a per-CPU block for an application processor on the heap; it is never
/// freed (a parked CPU keeps it). None when the heap is exhausted.
pub fn alloc_block(index: u32, apic_id: u32) -> Option<&'static PerCpu> {
    let layout = core::alloc::Layout::new::<PerCpu>();
    // SAFETY: PerCpu has non-zero size; null is handled; the block is initialised with
    // `write` before a reference is formed.
    unsafe {
        let p = alloc::alloc::alloc(layout) as *mut PerCpu;
        if p.is_null() {
            return None;
        }
        p.write(PerCpu::new(index, apic_id));
        Some(&*p)
    }
}
