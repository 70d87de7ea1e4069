//! GDT and TSS with separate interrupt stacks (IST) for the exceptions that can arrive
//! on a broken stack: double fault, NMI and machine check (Intel SDM vol. 3, 7.7 and 6.14.5).

use core::cell::UnsafeCell;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

pub const DOUBLE_FAULT_IST: u16 = 0;
pub const NMI_IST: u16 = 1;
pub const MACHINE_CHECK_IST: u16 = 2;
const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack(UnsafeCell<[u8; IST_STACK_SIZE]>);
// SAFETY: only the CPU that owns the stack ever runs on it; Rust never references the bytes.
unsafe impl Sync for IstStack {}

impl IstStack {
    const fn new() -> Self {
        IstStack(UnsafeCell::new([0; IST_STACK_SIZE]))
    }
    fn top(&self) -> VirtAddr {
        VirtAddr::from_ptr(self.0.get()) + IST_STACK_SIZE as u64
    }
}

/// A CPU's GDT and the selectors into it. Must live forever once loaded.
///
/// The table sits in an `UnsafeCell` so a parked CPU's GDT can be rebuilt before the CPU
/// is restarted: `ltr` marks the TSS descriptor busy (SDM vol. 3, 7.2.2), and loading a
/// busy TSS again faults, so a CPU coming back after INIT needs a fresh descriptor.
pub struct CpuGdt {
    gdt: UnsafeCell<GlobalDescriptorTable>,
    tss_ref: &'static TaskStateSegment,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

// SAFETY: the table is only written by `reset`, whose contract is that no CPU has it
// loaded; otherwise it is read by the CPU (through GDTR) and never by Rust.
unsafe impl Sync for CpuGdt {}

impl CpuGdt {
    /// Rebuilds the table (clearing the TSS busy bit) so a restarted CPU can load it.
    ///
    /// # Safety
    /// No CPU may have this GDT loaded (the owner is parked or was never started).
    pub unsafe fn reset(&self) {
        let fresh = make_gdt(self.tss_ref);
        // SAFETY: by contract nothing uses the old table; the layout is identical so the
        // selectors stay valid.
        unsafe { core::ptr::write(self.gdt.get(), fresh.gdt.into_inner()) };
    }
}

static BSP_STACKS: [IstStack; 3] = [IstStack::new(), IstStack::new(), IstStack::new()];
static BSP_TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static BSP_GDT: spin::Once<CpuGdt> = spin::Once::new();

/// A TSS whose IST slots point at the given stack tops.
pub fn make_tss(ist_tops: [VirtAddr; 3]) -> TaskStateSegment {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = ist_tops[0];
    tss.interrupt_stack_table[NMI_IST as usize] = ist_tops[1];
    tss.interrupt_stack_table[MACHINE_CHECK_IST as usize] = ist_tops[2];
    tss
}

/// A GDT with kernel code/data and the descriptor of `tss`.
pub fn make_gdt(tss: &'static TaskStateSegment) -> CpuGdt {
    let mut gdt = GlobalDescriptorTable::new();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    CpuGdt {
        gdt: UnsafeCell::new(gdt),
        tss_ref: tss,
        code,
        data,
        tss: tss_sel,
    }
}

/// Per-CPU tables for an application processor: three guarded IST stacks, a TSS and a
/// GDT (on the heap), allocated once and kept for the CPU's lifetime (also while
/// parked). Returns None when memory cannot supply them.
pub fn alloc_ap_tables() -> Option<&'static CpuGdt> {
    let mut tops = [VirtAddr::zero(); 3];
    for t in tops.iter_mut() {
        *t = VirtAddr::new(alloc_stack(IST_STACK_SIZE)?);
    }
    let tss: &'static TaskStateSegment = leak(make_tss(tops))?;
    leak(make_gdt(tss))
}

/// Moves `v` to the heap for good; None (instead of the allocation-failure abort of
/// `Box::new`) when the heap is exhausted.
fn leak<T>(v: T) -> Option<&'static T> {
    let layout = core::alloc::Layout::new::<T>();
    // SAFETY: T is not zero-sized here (TSS, GDT); null is handled; the memory is
    // initialised by `write` before the reference is formed and never freed.
    unsafe {
        let p = alloc::alloc::alloc(layout) as *mut T;
        if p.is_null() {
            return None;
        }
        p.write(v);
        Some(&*p)
    }
}

/// Maps a stack of `size` bytes with a guard page below it (`memory::stacks`) that lives
/// forever; returns its top (page aligned).
pub fn alloc_stack(size: usize) -> Option<u64> {
    match crate::memory::stacks::alloc(size) {
        Ok(s) => Some(s.top),
        Err(e) => {
            crate::error!("cannot allocate a {} KiB stack: {}", size / 1024, e);
            None
        }
    }
}

/// Loads the boot CPU's GDT and TSS.
pub fn init_bsp() {
    let tss = BSP_TSS.call_once(|| {
        make_tss([
            BSP_STACKS[0].top(),
            BSP_STACKS[1].top(),
            BSP_STACKS[2].top(),
        ])
    });
    load(BSP_GDT.call_once(|| make_gdt(tss)));
}

/// Loads `t` on the calling CPU and reloads every segment register from it.
pub fn load(t: &'static CpuGdt) {
    // SAFETY: `t` lives forever and is only rewritten while no CPU has it loaded.
    unsafe { (*t.gdt.get()).load_unsafe() };
    // SAFETY: the selectors index descriptors of the GDT just loaded; the TSS descriptor
    // is not yet busy (each CPU has its own).
    unsafe {
        CS::set_reg(t.code);
        DS::set_reg(t.data);
        ES::set_reg(t.data);
        SS::set_reg(t.data);
        load_tss(t.tss);
    }
}
