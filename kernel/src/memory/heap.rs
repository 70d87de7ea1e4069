//! The kernel heap: `linked_list_allocator` over pages mapped at a fixed virtual range.
//!
//! Interrupt context allocates too (the interrupt core's move completion queues a
//! cleanup), so the heap lock is taken with interrupts off: an interrupt arriving on a
//! CPU inside `alloc` would otherwise spin forever on the lock its own CPU holds.

use core::alloc::{GlobalAlloc, Layout};
use linked_list_allocator::LockedHeap;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::structures::paging::{Mapper, Page, PageTableFlags, PhysFrame, Size2MiB, Size4KiB};
use x86_64::{PhysAddr, VirtAddr};

/// 32 MiB: ample for descriptor tables at 512 CPUs and IRTE tables (1 MiB each).
pub const HEAP_SIZE: u64 = 32 * 1024 * 1024;

/// `LockedHeap` with interrupts off around every use of its lock.
struct IrqSafeHeap(LockedHeap);

// SAFETY: delegates to `LockedHeap`'s implementation; disabling interrupts around it
// changes nothing about the memory it hands out.
unsafe impl GlobalAlloc for IrqSafeHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        without_interrupts(|| unsafe { self.0.alloc(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        without_interrupts(|| unsafe { self.0.dealloc(ptr, layout) })
    }
}

#[global_allocator]
static HEAP: IrqSafeHeap = IrqSafeHeap(LockedHeap::empty());

#[derive(Debug)]
pub enum HeapError {
    OutOfFrames,
    Map,
}

/// Maps the heap: 2 MiB pages where the frame allocator has 2 MiB-aligned runs, 4 KiB
/// frames for any stretch where it has not. Nothing is zeroed up front: the allocator
/// writes its own bookkeeping, `alloc_zeroed` zeroes what it hands out, and touching
/// 32 MiB at boot cost 10–50 ms of it under TCG (README "Where the time goes").
pub fn init() -> Result<(), HeapError> {
    let start = super::mmio::HEAP_BASE;
    let mut paging = super::PAGING.lock();
    let table = paging.as_mut().ok_or(HeapError::Map)?;
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    const HUGE: u64 = 2 * 1024 * 1024;
    for chunk in (0..HEAP_SIZE).step_by(HUGE as usize) {
        if let Some(phys) = super::frames::alloc_contiguous_uninit(HUGE / 4096, HUGE) {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(start + chunk));
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(phys));
            // SAFETY: the heap range is reserved for the heap (see mmio::HEAP_BASE) and
            // the 2 MiB run is fresh and aligned.
            unsafe { table.map_to(page, frame, flags, &mut super::frames::Allocator) }
                .map_err(|_| HeapError::Map)?
                .flush();
            continue;
        }
        for offset in (chunk..chunk + HUGE).step_by(4096) {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(start + offset));
            let frame = super::frames::alloc_uninit().ok_or(HeapError::OutOfFrames)?;
            // SAFETY: as above; the frame is fresh.
            unsafe { table.map_to(page, frame, flags, &mut super::frames::Allocator) }
                .map_err(|_| HeapError::Map)?
                .flush();
        }
    }
    // SAFETY: the range was just mapped writable and is used by nothing else.
    without_interrupts(|| unsafe { HEAP.0.lock().init(start as *mut u8, HEAP_SIZE as usize) });
    Ok(())
}

/// (used, free) bytes.
pub fn usage() -> (usize, usize) {
    without_interrupts(|| {
        let h = HEAP.0.lock();
        (h.used(), h.free())
    })
}
