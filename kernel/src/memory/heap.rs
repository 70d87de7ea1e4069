//! The kernel heap: `linked_list_allocator` over pages mapped at a fixed virtual range.

use linked_list_allocator::LockedHeap;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Mapper, Page, PageTableFlags, Size4KiB};

/// 32 MiB: ample for descriptor tables at 512 CPUs and IRTE tables (1 MiB each).
pub const HEAP_SIZE: u64 = 32 * 1024 * 1024;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

#[derive(Debug)]
pub enum HeapError {
    OutOfFrames,
    Map,
}

pub fn init() -> Result<(), HeapError> {
    let start = super::mmio::HEAP_BASE;
    let mut paging = super::PAGING.lock();
    let table = paging.as_mut().ok_or(HeapError::Map)?;
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for offset in (0..HEAP_SIZE).step_by(4096) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(start + offset));
        let frame = super::frames::alloc_zeroed().ok_or(HeapError::OutOfFrames)?;
        // SAFETY: the heap range is reserved for the heap (see mmio::HEAP_BASE) and the
        // frame is fresh.
        unsafe { table.map_to(page, frame, flags, &mut super::frames::Allocator) }
            .map_err(|_| HeapError::Map)?
            .flush();
    }
    // SAFETY: the range was just mapped writable and is used by nothing else.
    unsafe { HEAP.lock().init(start as *mut u8, HEAP_SIZE as usize) };
    Ok(())
}

/// (used, free) bytes.
pub fn usage() -> (usize, usize) {
    let h = HEAP.lock();
    (h.used(), h.free())
}
