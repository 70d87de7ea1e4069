//! Physical frames, the kernel heap, uncached MMIO mappings, and guarded stacks.
//!
//! Lock order: PAGING → FRAMES (mapping a page may allocate page-table frames); the
//! heap's lock is a leaf. The whole kernel's order is `sync::order`.

pub mod frames;
pub mod heap;
pub mod mmio;
pub mod stacks;

use x86_64::VirtAddr;
use x86_64::structures::paging::{OffsetPageTable, PageTable, Translate};

/// Offset at which the bootloader maps all physical memory (cacheable, RAM only is
/// guaranteed). Device registers go through `mmio` instead.
static PHYS_OFFSET: spin::Once<u64> = spin::Once::new();

/// The active page table. Protects: every change to the kernel's mappings. Task context
/// only (an exception handler only try-locks it, `is_mapped`).
pub(crate) static PAGING: sluice_sync::SpinLock<Option<OffsetPageTable<'static>>> =
    sluice_sync::SpinLock::new(&crate::sync::order::MEMORY_PAGING, None);

pub fn phys_offset() -> u64 {
    *PHYS_OFFSET.get().expect("memory::init has run")
}

/// Physical RAM address → its address in the bootloader's physical-memory map.
pub fn phys_to_virt(phys: u64) -> *mut u8 {
    (phys_offset() + phys) as *mut u8
}

/// Brings up frames, paging and the heap from the bootloader's memory map.
pub fn init(boot: &'static bootloader_api::BootInfo) {
    let offset = boot
        .physical_memory_offset
        .into_option()
        .expect("the kernel's BootloaderConfig asks for a physical-memory mapping");
    PHYS_OFFSET.call_once(|| offset);
    let (cr3, _) = x86_64::registers::control::Cr3::read();
    let l4 = (offset + cr3.start_address().as_u64()) as *mut PageTable;
    // SAFETY: CR3's table is mapped at `offset` by the bootloader, and from here on only
    // PAGING's holder touches it.
    let table = unsafe { OffsetPageTable::new(&mut *l4, VirtAddr::new(offset)) };
    *PAGING.lock() = Some(table);
    frames::init(&boot.memory_regions);
    if let Err(e) = mmio::check_reserved_slots() {
        panic!("cannot place the heap: {e}");
    }
    heap::init().expect("kernel heap");
}

/// True if `addr` is mapped (used to make stack walking safe).
pub fn is_mapped(addr: u64) -> bool {
    let Ok(va) = VirtAddr::try_new(addr) else {
        return false;
    };
    // An exception can arrive while PAGING is held; then we cannot look, so say no.
    match PAGING.try_lock() {
        Some(g) => g.as_ref().is_some_and(|t| t.translate_addr(va).is_some()),
        None => false,
    }
}

/// Usable RAM in bytes according to the boot memory map.
pub fn usable_bytes() -> u64 {
    frames::usable_bytes()
}
