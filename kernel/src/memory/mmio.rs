//! Uncached mappings of device registers.
//!
//! The bootloader's physical-memory map is write-back cacheable and need not cover
//! 64-bit BARs, so every device register block is mapped here, in a window of its own,
//! with PCD|PWT set (UC with the default PAT, Intel SDM vol. 3 11.12.3).

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::structures::paging::{Mapper, Page, PageTableFlags, PhysFrame, Size2MiB, Size4KiB};
use x86_64::{PhysAddr, VirtAddr};

/// Kernel heap: PML4 slot 0x1f0 (chosen well clear of the bootloader's own mappings,
/// which live in low slots and its dynamic range; checked at boot).
pub const HEAP_BASE: u64 = 0xffff_f800_0000_0000;
/// MMIO window: PML4 slot 0x1f2, 512 GiB.
const MMIO_BASE: u64 = 0xffff_f900_0000_0000;
const MMIO_SIZE: u64 = 1 << 39;

static NEXT: AtomicU64 = AtomicU64::new(MMIO_BASE);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioError {
    WindowFull,
    OutOfFrames,
    AlreadyMapped,
    Unaligned,
}

impl core::fmt::Display for MmioError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(match self {
            MmioError::WindowFull => "MMIO window exhausted",
            MmioError::OutOfFrames => "no frames for page tables",
            MmioError::AlreadyMapped => "MMIO page already mapped",
            MmioError::Unaligned => "2 MiB mapping of an unaligned range",
        })
    }
}

/// A mapped register block.
#[derive(Clone, Copy, Debug)]
pub struct Mmio {
    base: u64,
    phys: u64,
    len: u64,
}

impl Mmio {
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Bytes mapped.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// The `len` bytes at `offset` of this mapping, as a mapping of their own (accesses
    /// are bounded by the smaller length). Panics past the end, like an access would.
    pub fn sub(&self, offset: u64, len: u64) -> Mmio {
        assert!(
            offset.checked_add(len).is_some_and(|e| e <= self.len),
            "MMIO sub-range past the mapping"
        );
        Mmio {
            base: self.base + offset,
            phys: self.phys + offset,
            len,
        }
    }

    /// Reads a 32-bit register. Offsets past the mapping panic (a driver bug, not data).
    pub fn read32(&self, offset: u64) -> u32 {
        assert!(offset + 4 <= self.len, "MMIO read past the mapping");
        // SAFETY: in bounds of an uncached mapping of device registers; volatile because
        // reads have side effects.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }
    pub fn write32(&self, offset: u64, value: u32) {
        assert!(offset + 4 <= self.len, "MMIO write past the mapping");
        // SAFETY: as in read32.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }
    pub fn read16(&self, offset: u64) -> u16 {
        assert!(offset + 2 <= self.len, "MMIO read past the mapping");
        // SAFETY: as in read32.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u16) }
    }
    pub fn write16(&self, offset: u64, value: u16) {
        assert!(offset + 2 <= self.len, "MMIO write past the mapping");
        // SAFETY: as in read32.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u16, value) }
    }
    pub fn read8(&self, offset: u64) -> u8 {
        assert!(offset < self.len, "MMIO read past the mapping");
        // SAFETY: as in read32.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u8) }
    }
    pub fn write8(&self, offset: u64, value: u8) {
        assert!(offset < self.len, "MMIO write past the mapping");
        // SAFETY: as in read32.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u8, value) }
    }
    pub fn read64(&self, offset: u64) -> u64 {
        assert!(offset + 8 <= self.len, "MMIO read past the mapping");
        // SAFETY: as in read32.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u64) }
    }
    pub fn write64(&self, offset: u64, value: u64) {
        assert!(offset + 8 <= self.len, "MMIO write past the mapping");
        // SAFETY: as in read32.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u64, value) }
    }
}

/// Typed registers (`sluice_regs::Reg`) read and write through these: one access of
/// the register's width each.
impl sluice_regs::RegisterBlock32 for Mmio {
    fn read32(&self, offset: usize) -> u32 {
        Mmio::read32(self, offset as u64)
    }
    fn write32(&self, offset: usize, value: u32) {
        Mmio::write32(self, offset as u64, value)
    }
}

impl sluice_regs::RegisterBlock64 for Mmio {
    fn read64(&self, offset: usize) -> u64 {
        Mmio::read64(self, offset as u64)
    }
    fn write64(&self, offset: usize, value: u64) {
        Mmio::write64(self, offset as u64, value)
    }
}

/// Device registers: uncached (PCD and PWT), never executed.
const REGISTER_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE)
    .union(PageTableFlags::NO_CACHE)
    .union(PageTableFlags::WRITE_THROUGH);

fn map_error<S: x86_64::structures::paging::PageSize>(
    e: x86_64::structures::paging::mapper::MapToError<S>,
) -> MmioError {
    match e {
        x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed => {
            MmioError::OutOfFrames
        }
        _ => MmioError::AlreadyMapped,
    }
}

/// Maps `len` bytes of device registers at physical `phys` (any address the CPU can
/// reach, including above 4 GiB) uncached, and returns the mapping.
pub fn map(phys: u64, len: u64) -> Result<Mmio, MmioError> {
    let first = phys & !0xfff;
    let pages = (phys + len.max(1) - first).div_ceil(4096);
    let size = pages * 4096;
    let base = NEXT.fetch_add(size, Ordering::SeqCst);
    if base + size > MMIO_BASE + MMIO_SIZE {
        return Err(MmioError::WindowFull);
    }
    let mut paging = super::PAGING.lock();
    let table = paging.as_mut().ok_or(MmioError::OutOfFrames)?;
    for i in 0..pages {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(base + i * 4096));
        let frame = PhysFrame::containing_address(PhysAddr::new(first + i * 4096));
        // SAFETY: the window belongs to this module and `base` was never handed out;
        // the frame is device memory, which nothing else maps writable-back.
        let r = unsafe { table.map_to(page, frame, REGISTER_FLAGS, &mut super::frames::Allocator) };
        r.map_err(map_error)?.flush();
    }
    Ok(Mmio {
        base: base + (phys - first),
        phys,
        len,
    })
}

/// Maps `len` bytes of device registers at `phys` uncached with 2 MiB pages; both must
/// be multiples of 2 MiB. For large windows read sparsely, such as ECAM (1 MiB per bus),
/// where 4 KiB pages would cost 512 mappings per 2 MiB.
pub fn map_2mib(phys: u64, len: u64) -> Result<Mmio, MmioError> {
    const HUGE: u64 = 2 * 1024 * 1024;
    if !phys.is_multiple_of(HUGE) || len == 0 || !len.is_multiple_of(HUGE) {
        return Err(MmioError::Unaligned);
    }
    // One spare 2 MiB of the window, so the start can be aligned.
    let base = NEXT
        .fetch_add(len + HUGE, Ordering::SeqCst)
        .next_multiple_of(HUGE);
    if base + len > MMIO_BASE + MMIO_SIZE {
        return Err(MmioError::WindowFull);
    }
    let mut paging = super::PAGING.lock();
    let table = paging.as_mut().ok_or(MmioError::OutOfFrames)?;
    for off in (0..len).step_by(HUGE as usize) {
        let page = Page::<Size2MiB>::containing_address(VirtAddr::new(base + off));
        let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(phys + off));
        // SAFETY: as in `map`: a never-used part of the window, device memory.
        let r = unsafe { table.map_to(page, frame, REGISTER_FLAGS, &mut super::frames::Allocator) };
        r.map_err(map_error)?.flush();
    }
    Ok(Mmio { base, phys, len })
}

/// Checks that the PML4 slots we claim are empty (the bootloader placed nothing there).
pub fn check_reserved_slots() -> Result<(), &'static str> {
    let paging = super::PAGING.lock();
    let table = paging.as_ref().ok_or("paging not initialised")?;
    let l4 = table.level_4_table();
    for addr in [HEAP_BASE, MMIO_BASE, super::stacks::STACKS_BASE] {
        let idx = (addr >> 39) & 0x1ff;
        if !l4[idx as usize].is_unused() {
            return Err("a PML4 slot reserved for the heap, MMIO or stacks is already in use");
        }
    }
    Ok(())
}
