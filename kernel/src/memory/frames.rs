//! Physical frame allocator over the usable regions of the boot memory map.
//!
//! Frames are handed out in address order; freed frames go on a free list and are
//! reused first. Runs skipped to satisfy an aligned contiguous request are kept as
//! ranges (`spare`), not linked through their frames: writing a link into every skipped
//! frame touched megabytes of guest RAM at boot. The regions array is copied out of the
//! boot info (at most `MAX_REGIONS`; the rest are reported and ignored).

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use x86_64::PhysAddr;
use x86_64::structures::paging::{FrameAllocator, FrameDeallocator, PhysFrame, Size4KiB};

const MAX_REGIONS: usize = 256;
const FRAME: u64 = 4096;
/// Frames below 1 MiB are kept for the AP start-up trampoline and firmware quirks.
const LOW_RESERVE: u64 = 0x10_0000;
/// Skipped runs kept as ranges; beyond this many, skipped frames join the free list.
const SPARE_RUNS: usize = 32;

struct Frames {
    regions: [(u64, u64); MAX_REGIONS],
    count: usize,
    /// Region being carved and the next frame in it.
    cursor: (usize, u64),
    /// Freed frames, linked through their first word (in the physical-memory map).
    free_head: u64,
    /// Unallocated runs the cursor skipped: [start, end).
    spare: [(u64, u64); SPARE_RUNS],
    allocated: u64,
    usable: u64,
}

/// Protects: the allocator state. Task context only (mapping and device set-up). Lock
/// order: after PAGING (`sync::order`).
static FRAMES: sluice_sync::SpinLock<Frames> = sluice_sync::SpinLock::new(
    &crate::sync::order::MEMORY_FRAMES,
    Frames {
        regions: [(0, 0); MAX_REGIONS],
        count: 0,
        cursor: (0, 0),
        free_head: 0,
        spare: [(0, 0); SPARE_RUNS],
        allocated: 0,
        usable: 0,
    },
);

pub fn init(map: &MemoryRegions) {
    let mut f = FRAMES.lock();
    for r in map.iter().filter(|r| r.kind == MemoryRegionKind::Usable) {
        let start = r.start.max(LOW_RESERVE).next_multiple_of(FRAME);
        let end = r.end & !(FRAME - 1);
        if end <= start {
            continue;
        }
        if f.count == MAX_REGIONS {
            crate::warn!(
                "memory map has more than {} usable regions; ignoring {:#x}..{:#x}",
                MAX_REGIONS,
                start,
                end
            );
            continue;
        }
        let i = f.count;
        f.regions[i] = (start, end);
        f.count += 1;
        f.usable += end - start;
    }
    f.cursor = (0, f.regions[0].0);
}

pub fn usable_bytes() -> u64 {
    FRAMES.lock().usable
}

pub fn allocated_frames() -> u64 {
    FRAMES.lock().allocated
}

impl Frames {
    fn alloc(&mut self) -> Option<PhysFrame> {
        if self.free_head != 0 {
            let frame = self.free_head;
            // SAFETY: freed frames hold the next link in their first word and are RAM
            // reachable through the physical-memory map.
            self.free_head = unsafe { *(super::phys_to_virt(frame) as *const u64) };
            self.allocated += 1;
            return Some(PhysFrame::containing_address(PhysAddr::new(frame)));
        }
        if let Some(run) = self.spare.iter_mut().find(|r| r.0 < r.1) {
            let frame = run.0;
            run.0 += FRAME;
            self.allocated += 1;
            return Some(PhysFrame::containing_address(PhysAddr::new(frame)));
        }
        while self.cursor.0 < self.count {
            let (_, end) = self.regions[self.cursor.0];
            if self.cursor.1 < end {
                let frame = self.cursor.1;
                self.cursor.1 += FRAME;
                self.allocated += 1;
                return Some(PhysFrame::containing_address(PhysAddr::new(frame)));
            }
            self.cursor.0 += 1;
            if self.cursor.0 < self.count {
                self.cursor.1 = self.regions[self.cursor.0].0;
            }
        }
        None
    }

    /// Keeps the unallocated frames [start, end) for later single-frame allocations: as
    /// a run while there is room, else on the free list.
    fn keep(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        if let Some(run) = self.spare.iter_mut().find(|r| r.0 >= r.1) {
            *run = (start, end);
            return;
        }
        let mut frame = start;
        while frame < end {
            // SAFETY: an unallocated RAM frame of a usable region, reachable through
            // the physical-memory map; it becomes the free list's head.
            unsafe { *(super::phys_to_virt(frame) as *mut u64) = self.free_head };
            self.free_head = frame;
            frame += FRAME;
        }
    }
}

/// Allocates one zeroed 4 KiB frame.
pub fn alloc_zeroed() -> Option<PhysFrame> {
    let frame = FRAMES.lock().alloc()?;
    // SAFETY: the frame is RAM we now own, mapped through the physical-memory map.
    unsafe {
        core::ptr::write_bytes(
            super::phys_to_virt(frame.start_address().as_u64()),
            0,
            FRAME as usize,
        )
    };
    Some(frame)
}

/// Allocates one 4 KiB frame with whatever it holds (for memory whose user initialises
/// what it uses, like the heap).
pub fn alloc_uninit() -> Option<PhysFrame> {
    FRAMES.lock().alloc()
}

/// Allocates `count` physically contiguous zeroed frames, aligned to `align` bytes (a
/// power of two, at least 4 KiB), for hardware that reads a table by physical address
/// (a VT-d unit's interrupt remapping table). Carved from the unallocated part of the
/// regions, never from the free list; frames skipped to reach the alignment are kept for
/// single-frame allocations (`Frames::keep`). Returns the first frame's physical address.
pub fn alloc_contiguous(count: u64, align: u64) -> Option<u64> {
    let start = alloc_contiguous_uninit(count, align)?;
    // SAFETY: the frames were just taken from a usable region and belong to the caller.
    unsafe { core::ptr::write_bytes(super::phys_to_virt(start), 0, (count * FRAME) as usize) };
    Some(start)
}

/// [`alloc_contiguous`] without the zeroing.
pub fn alloc_contiguous_uninit(count: u64, align: u64) -> Option<u64> {
    if count == 0 || !align.is_power_of_two() || align < FRAME {
        return None;
    }
    let mut f = FRAMES.lock();
    while f.cursor.0 < f.count {
        let (_, end) = f.regions[f.cursor.0];
        let start = f.cursor.1.next_multiple_of(align);
        if start.checked_add(count * FRAME).is_some_and(|e| e <= end) {
            // The skipped frames stay usable.
            let skipped = f.cursor.1;
            f.keep(skipped, start);
            f.cursor.1 = start + count * FRAME;
            f.allocated += count;
            return Some(start);
        }
        // It does not fit: keep what is left of this region.
        let rest = f.cursor.1;
        f.keep(rest, end);
        f.cursor.0 += 1;
        if f.cursor.0 < f.count {
            f.cursor.1 = f.regions[f.cursor.0].0;
        }
    }
    None
}

/// Returns a frame to the allocator.
///
/// # Safety
/// The frame must have come from this allocator and be unused.
pub unsafe fn free(frame: PhysFrame) {
    let mut f = FRAMES.lock();
    let addr = frame.start_address().as_u64();
    // SAFETY: the caller gives the frame back; we store the link in its first word.
    unsafe { *(super::phys_to_virt(addr) as *mut u64) = f.free_head };
    f.free_head = addr;
    f.allocated -= 1;
}

/// Adapter for the `x86_64` crate's page-table code.
pub struct Allocator;

// SAFETY: `alloc_zeroed` returns frames that are unused and owned by the caller.
unsafe impl FrameAllocator<Size4KiB> for Allocator {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        alloc_zeroed()
    }
}

impl FrameDeallocator<Size4KiB> for Allocator {
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { free(frame) }
    }
}
