//! The kernel heap: `linked_list_allocator`'s `Heap` over pages mapped at a fixed
//! virtual range, behind one lock of the kernel's own.
//!
//! Interrupt context allocates too (the interrupt core's move completion queues a
//! cleanup), so the lock is an `IrqSpinLock`: an interrupt arriving on a CPU inside
//! `alloc` would otherwise spin forever on the lock its own CPU holds. The crate's own
//! `LockedHeap` is not used (its lock is invisible to the lock validator): the heap is
//! class `memory.heap`, a leaf of the lock order (`sync::order`) — every lock may
//! allocate under it, and nothing is taken inside it.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;
use sluice_sync::IrqSpinLock;
use x86_64::structures::paging::{Mapper, Page, PageTableFlags, PhysFrame, Size2MiB, Size4KiB};
use x86_64::{PhysAddr, VirtAddr};

/// 32 MiB: ample for descriptor tables at 512 CPUs and IRTE tables (1 MiB each).
pub const HEAP_SIZE: u64 = 32 * 1024 * 1024;

/// The allocator's state behind an interrupt-safe lock.
struct KernelHeap(IrqSpinLock<Heap>);

// SAFETY: `allocate_first_fit` hands out blocks of the mapped heap range that no other
// allocation overlaps, fitting `layout`, or fails (null); the lock gives each call the
// allocator alone.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(ptr) = NonNull::new(ptr) else {
            return;
        };
        // SAFETY: the caller's contract: `ptr` came from `alloc` with this `layout`.
        unsafe { self.0.lock().deallocate(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqSpinLock::new(
    &crate::sync::order::MEMORY_HEAP,
    Heap::empty(),
));

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
    unsafe { HEAP.0.lock().init(start as *mut u8, HEAP_SIZE as usize) };
    Ok(())
}

/// (used, free) bytes.
pub fn usage() -> (usize, usize) {
    let h = HEAP.0.lock();
    (h.used(), h.free())
}
