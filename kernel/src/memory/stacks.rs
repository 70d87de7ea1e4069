//! Kernel stacks with an unmapped guard page below each.
//!
//! Heap-allocated stacks sit next to other heap objects, so an overflow would silently
//! overwrite them. Here every stack is mapped in a window of its own with the page below
//! it left unmapped: an overflow touches the guard page and faults. The page fault
//! cannot push its frame onto the exhausted stack either, which makes it a double fault
//! (SDM vol. 3, "Interrupt 8—Double Fault Exception"), and #DF runs on its own IST
//! stack, so the overflow is reported instead of corrupting memory.
//!
//! Stacks live for the kernel's lifetime (an AP keeps its stacks while parked), so the
//! window is a bump allocator and nothing is ever unmapped.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::VirtAddr;
use x86_64::structures::paging::{Mapper, Page, PageTableFlags, Size4KiB};

/// Stack window: PML4 slot 0x1f4, 512 GiB (checked free at boot with the heap's and
/// the MMIO window's slots).
pub const STACKS_BASE: u64 = 0xffff_fa00_0000_0000;
const STACKS_SIZE: u64 = 1 << 39;
const PAGE: u64 = 4096;

static NEXT: AtomicU64 = AtomicU64::new(STACKS_BASE);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackError {
    /// Zero or absurd size.
    BadSize,
    WindowFull,
    OutOfFrames,
    /// The page table refused the mapping (the window is not ours after all).
    Map,
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(match self {
            StackError::BadSize => "bad stack size",
            StackError::WindowFull => "the stack window is full",
            StackError::OutOfFrames => "out of physical memory",
            StackError::Map => "the stack window is already mapped",
        })
    }
}

/// A mapped stack: `[bottom, top)`; the page `[bottom - 4096, bottom)` is the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stack {
    pub bottom: u64,
    pub top: u64,
}

impl Stack {
    /// The unmapped page an overflow of this stack runs into.
    pub fn guard_page(&self) -> u64 {
        self.bottom - PAGE
    }
}

/// Is `addr` in an unmapped page of the stack window (a guard page)?
pub fn is_guard(addr: u64) -> bool {
    (STACKS_BASE..NEXT.load(Ordering::SeqCst)).contains(&addr) && !super::is_mapped(addr)
}

/// Did a double fault come from running off a stack? The page fault it escalated from
/// left its address in CR2, inside a guard page and right next to the stack pointer.
/// Both are asked because CR2 is not cleared: a #DF of another cause would find the
/// address of whatever page fault came last on this CPU (a test's probe of a guard page).
pub fn overflowed(cr2: u64, rsp: u64) -> bool {
    is_guard(cr2) && cr2.abs_diff(rsp) <= PAGE
}

/// Maps a stack of at least `size` bytes (rounded up to pages) with a guard page below.
pub fn alloc(size: usize) -> Result<Stack, StackError> {
    let pages = (size as u64).div_ceil(PAGE);
    if pages == 0 || pages > 1024 {
        return Err(StackError::BadSize);
    }
    let span = (pages + 1) * PAGE;
    let guard = NEXT.fetch_add(span, Ordering::SeqCst);
    if guard + span > STACKS_BASE + STACKS_SIZE {
        return Err(StackError::WindowFull);
    }
    let bottom = guard + PAGE;
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let mut paging = super::PAGING.lock();
    let table = paging.as_mut().ok_or(StackError::Map)?;
    for i in 0..pages {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(bottom + i * PAGE));
        let frame = super::frames::alloc_zeroed().ok_or(StackError::OutOfFrames)?;
        // SAFETY: `page` lies in the stack window, which only this module maps, at an
        // address handed out once by NEXT; the frame is fresh and zeroed.
        unsafe { table.map_to(page, frame, flags, &mut super::frames::Allocator) }
            .map_err(|_| StackError::Map)?
            .flush();
    }
    Ok(Stack {
        bottom,
        top: bottom + pages * PAGE,
    })
}
