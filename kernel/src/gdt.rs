//! GDT and TSS with separate interrupt stacks (IST) for the exceptions that can arrive
//! on a broken stack: double fault, NMI and machine check (Intel SDM vol. 3, 7.7 and 6.14.5).

use core::cell::UnsafeCell;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

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
pub struct CpuGdt {
    gdt: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
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
    let tss = gdt.append(Descriptor::tss_segment(tss));
    CpuGdt { gdt, code, data, tss }
}

/// Loads the boot CPU's GDT and TSS.
pub fn init_bsp() {
    let tss = BSP_TSS.call_once(|| make_tss([BSP_STACKS[0].top(), BSP_STACKS[1].top(), BSP_STACKS[2].top()]));
    load(BSP_GDT.call_once(|| make_gdt(tss)));
}

/// Loads `t` on the calling CPU and reloads every segment register from it.
pub fn load(t: &'static CpuGdt) {
    t.gdt.load();
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
